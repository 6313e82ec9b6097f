#include "tlc_sm80.cuh"

// gqa_causal_bwd_bf16_d64_sm80: lowered by tlc for sm_80
extern "C" __global__ void __launch_bounds__(128, 1) gqa_causal_bwd_bf16_d64_sm80(const __nv_bfloat16* __restrict__ Q_g, const __nv_bfloat16* __restrict__ K_g, const __nv_bfloat16* __restrict__ V_g, const __nv_bfloat16* __restrict__ dO_g, const float* __restrict__ L_g, const float* __restrict__ Delta_g, float* __restrict__ dQ_g, __nv_bfloat16* __restrict__ dK_g, __nv_bfloat16* __restrict__ dV_g, const float p_scale, const int p_B, const int p_H, const int p_Nq, const int p_Hkv, const int p_Nk, const long long Q_stride0, const long long Q_stride1, const int Q_stride2, const long long K_stride0, const long long K_stride1, const int K_stride2, const long long V_stride0, const long long V_stride1, const int V_stride2, const long long dO_stride0, const long long dO_stride1, const int dO_stride2, const long long L_stride0, const int L_stride1, const long long Delta_stride0, const int Delta_stride1, const long long dQ_stride0, const long long dQ_stride1, const int dQ_stride2, const long long dK_stride0, const long long dK_stride1, const int dK_stride2, const long long dV_stride0, const long long dV_stride1, const int dV_stride2) {
    constexpr int p_D = 64;
    constexpr int p_GROUP = 4;
    constexpr int p_BM = 64;
    constexpr int p_BN = 64;
    constexpr int p_WARPS = 2;
    constexpr int p_WARPS_N = 2;
    const int p_n = blockIdx.x;
    const int p_h = blockIdx.y;
    const int p_b = blockIdx.z;
    const int tlc_warp = threadIdx.x / 32, tlc_lane = threadIdx.x % 32;
    const int tlc_group = tlc::fragment_group(tlc_lane), tlc_pair = tlc::fragment_pair(tlc_lane);
    extern __shared__ __align__(16) unsigned char tlc_smem[];
    __nv_bfloat16* K_s = reinterpret_cast<__nv_bfloat16*>(tlc_smem + 0);  // 1 x 64 x 64, rows 72 apart
    __nv_bfloat16* V_s = reinterpret_cast<__nv_bfloat16*>(tlc_smem + 9216);  // 1 x 64 x 64, rows 72 apart
    __nv_bfloat16* Q_s = reinterpret_cast<__nv_bfloat16*>(tlc_smem + 18432);  // 1 x 64 x 64, rows 72 apart
    __nv_bfloat16* dO_s = reinterpret_cast<__nv_bfloat16*>(tlc_smem + 27648);  // 1 x 64 x 64, rows 72 apart
    __nv_bfloat16* P_s = reinterpret_cast<__nv_bfloat16*>(tlc_smem + 36864);  // 1 x 64 x 64, rows 72 apart
    __nv_bfloat16* dS_s = reinterpret_cast<__nv_bfloat16*>(tlc_smem + 46080);  // 1 x 64 x 64, rows 72 apart
    float S_acc[2][4][4] = {};
    float dP_acc[2][4][4] = {};
    float dV_acc[2][4][4] = {};
    float dK_acc[2][4][4] = {};
    float dQ_acc[2][4][4] = {};
    float P_acc[2][4][4] = {};
    float dS_acc[2][4][4] = {};
    // Copy K (64 x 64) from global to shared
    {
        __nv_bfloat16* tlc_dst = K_s + (0) * 4608;
        const __nv_bfloat16* tlc_src = K_g + (long long)((p_n) * 64) * K_stride2 + (long long)(p_h) * K_stride1 + (long long)(p_b) * K_stride0;
        const int tlc_rows_left = p_Nk - (p_n) * 64;
        const int tlc_r0 = threadIdx.x / 8, tlc_col = (threadIdx.x % 8) * 8;
        const auto* tlc_from = tlc_src + (long long)tlc_r0 * K_stride2 + tlc_col;
        const uint32_t tlc_to = tlc::smem_address(tlc_dst + tlc_r0 * 72 + tlc_col);
        _Pragma("unroll") for (int tlc_t = 0; tlc_t < 4; ++tlc_t) {
            const bool tlc_valid = tlc_r0 + tlc_t * 16 < tlc_rows_left;
            tlc::cp_async_16(tlc_to + tlc_t * 2304, tlc_valid ? tlc_from + (long long)tlc_t * 16 * K_stride2 : tlc_src, tlc_valid);
        }
    }
    tlc::cp_async_commit();
    // K: waited for with the first tiles of the loop that follows
    // Copy V (64 x 64) from global to shared
    {
        __nv_bfloat16* tlc_dst = V_s + (0) * 4608;
        const __nv_bfloat16* tlc_src = V_g + (long long)((p_n) * 64) * V_stride2 + (long long)(p_h) * V_stride1 + (long long)(p_b) * V_stride0;
        const int tlc_rows_left = p_Nk - (p_n) * 64;
        const int tlc_r0 = threadIdx.x / 8, tlc_col = (threadIdx.x % 8) * 8;
        const auto* tlc_from = tlc_src + (long long)tlc_r0 * V_stride2 + tlc_col;
        const uint32_t tlc_to = tlc::smem_address(tlc_dst + tlc_r0 * 72 + tlc_col);
        _Pragma("unroll") for (int tlc_t = 0; tlc_t < 4; ++tlc_t) {
            const bool tlc_valid = tlc_r0 + tlc_t * 16 < tlc_rows_left;
            tlc::cp_async_16(tlc_to + tlc_t * 2304, tlc_valid ? tlc_from + (long long)tlc_t * 16 * V_stride2 : tlc_src, tlc_valid);
        }
    }
    tlc::cp_async_commit();
    // V: waited for with the first tiles of the loop that follows
    float L_row[2][2];  // loaded an iteration ahead
    // Copy L from global to register for the loop's first iteration, the rows of S
    {
        const float* tlc_src = L_g + (long long)(p_b) * L_stride0 + (long long)(((p_h * p_GROUP) + ((0) / (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * L_stride1 + (long long)(((max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)) + ((0) % (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * 64) * 1LL;
        const int tlc_rows_left = p_Nq - ((max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)) + ((0) % (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * 64;
        const bool tlc_load = (0) < (p_GROUP * (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM))));
        _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) {
            const int tlc_row = (tlc_warp / 2) * 32 + i * 16 + tlc_group + h * 8;
            L_row[i][h] = tlc_load && tlc_row < tlc_rows_left ? tlc_src[tlc_row] : 0.f;
        }
    }
    float Delta_row[2][2];  // loaded an iteration ahead
    // Copy Delta from global to register for the loop's first iteration, the rows of dP
    {
        const float* tlc_src = Delta_g + (long long)(p_b) * Delta_stride0 + (long long)(((p_h * p_GROUP) + ((0) / (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * Delta_stride1 + (long long)(((max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)) + ((0) % (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * 64) * 1LL;
        const int tlc_rows_left = p_Nq - ((max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)) + ((0) % (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * 64;
        const bool tlc_load = (0) < (p_GROUP * (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM))));
        _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) {
            const int tlc_row = (tlc_warp / 2) * 32 + i * 16 + tlc_group + h * 8;
            Delta_row[i][h] = tlc_load && tlc_row < tlc_rows_left ? tlc_src[tlc_row] : 0.f;
        }
    }
    const int p_t_start = 0, p_t_stop = (p_GROUP * (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM))));
    if (p_t_start < p_t_stop) {
        // Copy Q (64 x 64) from global to shared
        {
            __nv_bfloat16* tlc_dst = Q_s + (0) * 4608;
            const __nv_bfloat16* tlc_src = Q_g + (long long)(((max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)) + (p_t_start % (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * 64) * Q_stride2 + (long long)(((p_h * p_GROUP) + (p_t_start / (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * Q_stride1 + (long long)(p_b) * Q_stride0;
            const int tlc_rows_left = p_Nq - ((max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)) + (p_t_start % (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * 64;
            const int tlc_r0 = threadIdx.x / 8, tlc_col = (threadIdx.x % 8) * 8;
            const auto* tlc_from = tlc_src + (long long)tlc_r0 * Q_stride2 + tlc_col;
            const uint32_t tlc_to = tlc::smem_address(tlc_dst + tlc_r0 * 72 + tlc_col);
            _Pragma("unroll") for (int tlc_t = 0; tlc_t < 4; ++tlc_t) {
                const bool tlc_valid = tlc_r0 + tlc_t * 16 < tlc_rows_left;
                tlc::cp_async_16(tlc_to + tlc_t * 2304, tlc_valid ? tlc_from + (long long)tlc_t * 16 * Q_stride2 : tlc_src, tlc_valid);
            }
        }
        // Copy dO (64 x 64) from global to shared
        {
            __nv_bfloat16* tlc_dst = dO_s + (0) * 4608;
            const __nv_bfloat16* tlc_src = dO_g + (long long)(((max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)) + (p_t_start % (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * 64) * dO_stride2 + (long long)(((p_h * p_GROUP) + (p_t_start / (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * dO_stride1 + (long long)(p_b) * dO_stride0;
            const int tlc_rows_left = p_Nq - ((max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)) + (p_t_start % (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * 64;
            const int tlc_r0 = threadIdx.x / 8, tlc_col = (threadIdx.x % 8) * 8;
            const auto* tlc_from = tlc_src + (long long)tlc_r0 * dO_stride2 + tlc_col;
            const uint32_t tlc_to = tlc::smem_address(tlc_dst + tlc_r0 * 72 + tlc_col);
            _Pragma("unroll") for (int tlc_t = 0; tlc_t < 4; ++tlc_t) {
                const bool tlc_valid = tlc_r0 + tlc_t * 16 < tlc_rows_left;
                tlc::cp_async_16(tlc_to + tlc_t * 2304, tlc_valid ? tlc_from + (long long)tlc_t * 16 * dO_stride2 : tlc_src, tlc_valid);
            }
        }
    }
    tlc::cp_async_commit();
    for (int p_t = p_t_start; p_t < p_t_stop; ++p_t) {
        tlc::cp_async_wait<0>();
        __syncthreads();
        const int tlc_stage = 0;
        // Copy Q: issued by the loop's pipeline
        // Copy dO: issued by the loop's pipeline
        // Copy L from global to register: loaded an iteration ahead
        // Copy Delta from global to register: loaded an iteration ahead
        // Copy Q: streamed into its GEMM one k-step at a time
        // Copy dO: streamed into its GEMM one k-step at a time
        // Copy K: streamed into its GEMM one k-step at a time
        // Copy V: streamed into its GEMM one k-step at a time
        // Compute GEMM Q, K^T into S
        {
            _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int j = 0; j < 4; ++j) _Pragma("unroll") for (int e = 0; e < 4; ++e) S_acc[i][j][e] = 0.f;
            const uint32_t tlc_a_base = tlc::smem_address(Q_s) + (((tlc_warp / 2) * 32 + tlc_lane % 16) * 72 + (tlc_lane / 16) * 8) * 2;
            const uint32_t tlc_b_base = tlc::smem_address(K_s) + (((tlc_warp % 2) * 32 + (tlc_lane / 16) * 8 + tlc_lane % 8) * 72 + ((tlc_lane / 8) % 2) * 8) * 2;
            _Pragma("unroll") for (int kk = 0; kk < 4; ++kk) {
                uint32_t a[2][4];
                _Pragma("unroll") for (int i = 0; i < 2; ++i) tlc::ldmatrix_x4(a[i], tlc_a_base + (i * 1152 + kk * 16) * 2);
                #define TLC_A(i) a[i]
                _Pragma("unroll") for (int j = 0; j + 1 < 4; j += 2) {
                    uint32_t b[4];
                    tlc::ldmatrix_x4(b, tlc_b_base + (j * 576 + kk * 16) * 2);
                    const uint32_t tlc_b0[2] = {b[0], b[1]}, tlc_b1[2] = {b[2], b[3]};
                    _Pragma("unroll") for (int i = 0; i < 2; ++i) {
                        tlc::mma_m16n8k16_bf16(S_acc[i][j], TLC_A(i), tlc_b0, S_acc[i][j]);
                        tlc::mma_m16n8k16_bf16(S_acc[i][j + 1], TLC_A(i), tlc_b1, S_acc[i][j + 1]);
                    }
                }
                #undef TLC_A
            }
        }
        // Compute Multiply S by a scalar: in the FFMA of the Exp below
        // Compute Mask S: on the probabilities, after the Exp below
        // Compute Exp S, L and get P
        {
            const int tlc_keys_left = p_Nk - ((p_n) * 64), tlc_queries_left = p_Nq - (((max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)) + (p_t % (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * 64);
            const float tlc_log2_factor = (float)(p_scale) * 1.4426950408889634f;
            float tlc_row_term[2][2];
            _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) {
                const int tlc_row = (tlc_warp / 2) * 32 + i * 16 + tlc_group + h * 8;
                const float tlc_l = L_row[i][h];
                tlc_row_term[i][h] = tlc_row < tlc_queries_left && tlc_l != -INFINITY ? tlc_l * 1.4426950408889634f : INFINITY;
            }
            _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int j = 0; j < 4; ++j) _Pragma("unroll") for (int e = 0; e < 4; ++e) P_acc[i][j][e] = tlc::exp2_approx(fmaf(S_acc[i][j][e], tlc_log2_factor, -tlc_row_term[i][e / 2]));
            if (tlc_keys_left < 64) {
                _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int j = 0; j < 4; ++j) _Pragma("unroll") for (int e = 0; e < 4; ++e) {
                    float& x = P_acc[i][j][e];
                    const int tlc_row = (tlc_warp / 2) * 32 + i * 16 + tlc_group + (e / 2) * 8;
                    const int tlc_col = (tlc_warp % 2) * 32 + j * 8 + tlc_pair + (e % 2);
                    if (tlc_col >= tlc_keys_left) x = 0.f; (void)tlc_row;
                }
            }
            // Compute Mask S (on P), on the tiles that cross a boundary
            if (((p_n) * 64) + 63 > ((((max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)) + (p_t % (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * 64) + p_Nk - p_Nq)) {
                _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int j = 0; j < 4; ++j) _Pragma("unroll") for (int e = 0; e < 4; ++e) {
                    float& x = P_acc[i][j][e];
                    const int tlc_row = (tlc_warp / 2) * 32 + i * 16 + tlc_group + (e / 2) * 8;
                    const int tlc_col = (tlc_warp % 2) * 32 + j * 8 + tlc_pair + (e % 2);
                    const int tlc_key = ((p_n) * 64) + tlc_col; if (tlc_key > ((((max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)) + (p_t % (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * 64) + tlc_row + p_Nk - p_Nq)) x = 0.f;
                }
            }
        }
        // Copy L for the next iteration (its last reader is done)
        {
            const float* tlc_src = L_g + (long long)(p_b) * L_stride0 + (long long)(((p_h * p_GROUP) + ((p_t + 1) / (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * L_stride1 + (long long)(((max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)) + ((p_t + 1) % (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * 64) * 1LL;
            const int tlc_rows_left = p_Nq - ((max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)) + ((p_t + 1) % (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * 64;
            const bool tlc_load = p_t + 1 < p_t_stop;
            _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) {
                const int tlc_row = (tlc_warp / 2) * 32 + i * 16 + tlc_group + h * 8;
                L_row[i][h] = tlc_load && tlc_row < tlc_rows_left ? tlc_src[tlc_row] : 0.f;
            }
        }
        // Reshape P: accumulator pairs of n-tiles become A fragments
        uint32_t P_frag[2][2][4];
        _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int kk = 0; kk < 2; ++kk) {
            P_frag[i][kk][0] = tlc::pack_bf162(P_acc[i][2 * kk][0], P_acc[i][2 * kk][1]);
            P_frag[i][kk][1] = tlc::pack_bf162(P_acc[i][2 * kk][2], P_acc[i][2 * kk][3]);
            P_frag[i][kk][2] = tlc::pack_bf162(P_acc[i][2 * kk + 1][0], P_acc[i][2 * kk + 1][1]);
            P_frag[i][kk][3] = tlc::pack_bf162(P_acc[i][2 * kk + 1][2], P_acc[i][2 * kk + 1][3]);
        }
        // Copy P from register to shared, fragment by fragment
        {
            __nv_bfloat16* tlc_dst = P_s + ((tlc_warp / 2) * 32 + tlc_group) * 72 + (tlc_warp % 2) * 32 + tlc_pair;
            _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int kk = 0; kk < 2; ++kk) _Pragma("unroll") for (int r = 0; r < 4; ++r) {
                *reinterpret_cast<uint32_t*>(tlc_dst + (i * 16 + (r % 2) * 8) * 72 + kk * 16 + (r / 2) * 8) = P_frag[i][kk][r];
            }
        }
        // Compute GEMM dO, V^T into dP
        {
            _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int j = 0; j < 4; ++j) _Pragma("unroll") for (int e = 0; e < 4; ++e) dP_acc[i][j][e] = 0.f;
            const uint32_t tlc_a_base = tlc::smem_address(dO_s) + (((tlc_warp / 2) * 32 + tlc_lane % 16) * 72 + (tlc_lane / 16) * 8) * 2;
            const uint32_t tlc_b_base = tlc::smem_address(V_s) + (((tlc_warp % 2) * 32 + (tlc_lane / 16) * 8 + tlc_lane % 8) * 72 + ((tlc_lane / 8) % 2) * 8) * 2;
            _Pragma("unroll") for (int kk = 0; kk < 4; ++kk) {
                uint32_t a[2][4];
                _Pragma("unroll") for (int i = 0; i < 2; ++i) tlc::ldmatrix_x4(a[i], tlc_a_base + (i * 1152 + kk * 16) * 2);
                #define TLC_A(i) a[i]
                _Pragma("unroll") for (int j = 0; j + 1 < 4; j += 2) {
                    uint32_t b[4];
                    tlc::ldmatrix_x4(b, tlc_b_base + (j * 576 + kk * 16) * 2);
                    const uint32_t tlc_b0[2] = {b[0], b[1]}, tlc_b1[2] = {b[2], b[3]};
                    _Pragma("unroll") for (int i = 0; i < 2; ++i) {
                        tlc::mma_m16n8k16_bf16(dP_acc[i][j], TLC_A(i), tlc_b0, dP_acc[i][j]);
                        tlc::mma_m16n8k16_bf16(dP_acc[i][j + 1], TLC_A(i), tlc_b1, dP_acc[i][j + 1]);
                    }
                }
                #undef TLC_A
            }
        }
        // Compute Subtract dP, Delta and get dP, times p_scale (a Multiply below)
        _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int j = 0; j < 4; ++j) _Pragma("unroll") for (int e = 0; e < 4; ++e) {
            float& x = dP_acc[i][j][e];
            const int tlc_row = (tlc_warp / 2) * 32 + i * 16 + tlc_group + (e / 2) * 8;
            const int tlc_col = (tlc_warp % 2) * 32 + j * 8 + tlc_pair + (e % 2);
            x = fmaf(x, (float)(p_scale), -Delta_row[i][e / 2] * (float)(p_scale)); (void)tlc_row; (void)tlc_col;
        }
        // Copy Delta for the next iteration (its last reader is done)
        {
            const float* tlc_src = Delta_g + (long long)(p_b) * Delta_stride0 + (long long)(((p_h * p_GROUP) + ((p_t + 1) / (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * Delta_stride1 + (long long)(((max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)) + ((p_t + 1) % (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * 64) * 1LL;
            const int tlc_rows_left = p_Nq - ((max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)) + ((p_t + 1) % (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * 64;
            const bool tlc_load = p_t + 1 < p_t_stop;
            _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) {
                const int tlc_row = (tlc_warp / 2) * 32 + i * 16 + tlc_group + h * 8;
                Delta_row[i][h] = tlc_load && tlc_row < tlc_rows_left ? tlc_src[tlc_row] : 0.f;
            }
        }
        // Compute Multiply P, dP and get dS
        _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int j = 0; j < 4; ++j) _Pragma("unroll") for (int e = 0; e < 4; ++e) {
            float& x = dS_acc[i][j][e];
            const int tlc_row = (tlc_warp / 2) * 32 + i * 16 + tlc_group + (e / 2) * 8;
            const int tlc_col = (tlc_warp % 2) * 32 + j * 8 + tlc_pair + (e % 2);
            x = tlc::unpack_bf162(P_frag[i][j / 2][(j % 2) * 2 + e / 2], e % 2) * dP_acc[i][j][e]; (void)tlc_row; (void)tlc_col;
        }
        // Compute Multiply dS by a scalar: in the FFMA of the Subtract above
        // Reshape dS: accumulator pairs of n-tiles become A fragments
        uint32_t dS_frag[2][2][4];
        _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int kk = 0; kk < 2; ++kk) {
            dS_frag[i][kk][0] = tlc::pack_bf162(dS_acc[i][2 * kk][0], dS_acc[i][2 * kk][1]);
            dS_frag[i][kk][1] = tlc::pack_bf162(dS_acc[i][2 * kk][2], dS_acc[i][2 * kk][3]);
            dS_frag[i][kk][2] = tlc::pack_bf162(dS_acc[i][2 * kk + 1][0], dS_acc[i][2 * kk + 1][1]);
            dS_frag[i][kk][3] = tlc::pack_bf162(dS_acc[i][2 * kk + 1][2], dS_acc[i][2 * kk + 1][3]);
        }
        // Copy dS from register to shared, fragment by fragment
        {
            __nv_bfloat16* tlc_dst = dS_s + ((tlc_warp / 2) * 32 + tlc_group) * 72 + (tlc_warp % 2) * 32 + tlc_pair;
            _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int kk = 0; kk < 2; ++kk) _Pragma("unroll") for (int r = 0; r < 4; ++r) {
                *reinterpret_cast<uint32_t*>(tlc_dst + (i * 16 + (r % 2) * 8) * 72 + kk * 16 + (r / 2) * 8) = dS_frag[i][kk][r];
            }
        }
        __syncthreads();
        // Copy P: streamed into its GEMM one k-step at a time
        // Compute GEMM P^T, dO accumulating into dV
        {
            const uint32_t tlc_a_base = tlc::smem_address(P_s) + (((tlc_lane / 16) * 8 + tlc_lane % 8) * 72 + (tlc_warp / 2) * 32 + ((tlc_lane / 8) % 2) * 8) * 2;
            const uint32_t tlc_b_base = tlc::smem_address(dO_s) + ((((tlc_lane / 8) % 2) * 8 + tlc_lane % 8) * 72 + (tlc_warp % 2) * 32 + (tlc_lane / 16) * 8) * 2;
            _Pragma("unroll") for (int kk = 0; kk < 4; ++kk) {
                uint32_t a[2][4];
                _Pragma("unroll") for (int i = 0; i < 2; ++i) tlc::ldmatrix_x4_trans(a[i], tlc_a_base + (kk * 1152 + i * 16) * 2);
                #define TLC_A(i) a[i]
                _Pragma("unroll") for (int j = 0; j + 1 < 4; j += 2) {
                    uint32_t b[4];
                    tlc::ldmatrix_x4_trans(b, tlc_b_base + (kk * 1152 + j * 8) * 2);
                    const uint32_t tlc_b0[2] = {b[0], b[1]}, tlc_b1[2] = {b[2], b[3]};
                    _Pragma("unroll") for (int i = 0; i < 2; ++i) {
                        tlc::mma_m16n8k16_bf16(dV_acc[i][j], TLC_A(i), tlc_b0, dV_acc[i][j]);
                        tlc::mma_m16n8k16_bf16(dV_acc[i][j + 1], TLC_A(i), tlc_b1, dV_acc[i][j + 1]);
                    }
                }
                #undef TLC_A
            }
        }
        // Copy dS: streamed into its GEMM one k-step at a time
        // Compute GEMM dS^T, Q accumulating into dK
        {
            const uint32_t tlc_a_base = tlc::smem_address(dS_s) + (((tlc_lane / 16) * 8 + tlc_lane % 8) * 72 + (tlc_warp / 2) * 32 + ((tlc_lane / 8) % 2) * 8) * 2;
            const uint32_t tlc_b_base = tlc::smem_address(Q_s) + ((((tlc_lane / 8) % 2) * 8 + tlc_lane % 8) * 72 + (tlc_warp % 2) * 32 + (tlc_lane / 16) * 8) * 2;
            _Pragma("unroll") for (int kk = 0; kk < 4; ++kk) {
                uint32_t a[2][4];
                _Pragma("unroll") for (int i = 0; i < 2; ++i) tlc::ldmatrix_x4_trans(a[i], tlc_a_base + (kk * 1152 + i * 16) * 2);
                #define TLC_A(i) a[i]
                _Pragma("unroll") for (int j = 0; j + 1 < 4; j += 2) {
                    uint32_t b[4];
                    tlc::ldmatrix_x4_trans(b, tlc_b_base + (kk * 1152 + j * 8) * 2);
                    const uint32_t tlc_b0[2] = {b[0], b[1]}, tlc_b1[2] = {b[2], b[3]};
                    _Pragma("unroll") for (int i = 0; i < 2; ++i) {
                        tlc::mma_m16n8k16_bf16(dK_acc[i][j], TLC_A(i), tlc_b0, dK_acc[i][j]);
                        tlc::mma_m16n8k16_bf16(dK_acc[i][j + 1], TLC_A(i), tlc_b1, dK_acc[i][j + 1]);
                    }
                }
                #undef TLC_A
            }
        }
        __syncthreads();  // every warp is done with Q, dO: load the next ones under what follows
        if (p_t + 1 < p_t_stop) {
            // Copy Q (64 x 64) from global to shared
            {
                __nv_bfloat16* tlc_dst = Q_s + (0) * 4608;
                const __nv_bfloat16* tlc_src = Q_g + (long long)(((max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)) + ((p_t + 1) % (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * 64) * Q_stride2 + (long long)(((p_h * p_GROUP) + ((p_t + 1) / (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * Q_stride1 + (long long)(p_b) * Q_stride0;
                const int tlc_rows_left = p_Nq - ((max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)) + ((p_t + 1) % (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * 64;
                const int tlc_r0 = threadIdx.x / 8, tlc_col = (threadIdx.x % 8) * 8;
                const auto* tlc_from = tlc_src + (long long)tlc_r0 * Q_stride2 + tlc_col;
                const uint32_t tlc_to = tlc::smem_address(tlc_dst + tlc_r0 * 72 + tlc_col);
                _Pragma("unroll") for (int tlc_t = 0; tlc_t < 4; ++tlc_t) {
                    const bool tlc_valid = tlc_r0 + tlc_t * 16 < tlc_rows_left;
                    tlc::cp_async_16(tlc_to + tlc_t * 2304, tlc_valid ? tlc_from + (long long)tlc_t * 16 * Q_stride2 : tlc_src, tlc_valid);
                }
            }
            // Copy dO (64 x 64) from global to shared
            {
                __nv_bfloat16* tlc_dst = dO_s + (0) * 4608;
                const __nv_bfloat16* tlc_src = dO_g + (long long)(((max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)) + ((p_t + 1) % (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * 64) * dO_stride2 + (long long)(((p_h * p_GROUP) + ((p_t + 1) / (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * dO_stride1 + (long long)(p_b) * dO_stride0;
                const int tlc_rows_left = p_Nq - ((max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)) + ((p_t + 1) % (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * 64;
                const int tlc_r0 = threadIdx.x / 8, tlc_col = (threadIdx.x % 8) * 8;
                const auto* tlc_from = tlc_src + (long long)tlc_r0 * dO_stride2 + tlc_col;
                const uint32_t tlc_to = tlc::smem_address(tlc_dst + tlc_r0 * 72 + tlc_col);
                _Pragma("unroll") for (int tlc_t = 0; tlc_t < 4; ++tlc_t) {
                    const bool tlc_valid = tlc_r0 + tlc_t * 16 < tlc_rows_left;
                    tlc::cp_async_16(tlc_to + tlc_t * 2304, tlc_valid ? tlc_from + (long long)tlc_t * 16 * dO_stride2 : tlc_src, tlc_valid);
                }
            }
        }
        tlc::cp_async_commit();
        // Compute GEMM dS, K into dQ
        {
            _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int j = 0; j < 4; ++j) _Pragma("unroll") for (int e = 0; e < 4; ++e) dQ_acc[i][j][e] = 0.f;
            const uint32_t tlc_a_base = tlc::smem_address(dS_s) + (((tlc_warp / 2) * 32 + tlc_lane % 16) * 72 + (tlc_lane / 16) * 8) * 2;
            const uint32_t tlc_b_base = tlc::smem_address(K_s) + ((((tlc_lane / 8) % 2) * 8 + tlc_lane % 8) * 72 + (tlc_warp % 2) * 32 + (tlc_lane / 16) * 8) * 2;
            _Pragma("unroll") for (int kk = 0; kk < 4; ++kk) {
                uint32_t a[2][4];
                _Pragma("unroll") for (int i = 0; i < 2; ++i) tlc::ldmatrix_x4(a[i], tlc_a_base + (i * 1152 + kk * 16) * 2);
                #define TLC_A(i) a[i]
                _Pragma("unroll") for (int j = 0; j + 1 < 4; j += 2) {
                    uint32_t b[4];
                    tlc::ldmatrix_x4_trans(b, tlc_b_base + (kk * 1152 + j * 8) * 2);
                    const uint32_t tlc_b0[2] = {b[0], b[1]}, tlc_b1[2] = {b[2], b[3]};
                    _Pragma("unroll") for (int i = 0; i < 2; ++i) {
                        tlc::mma_m16n8k16_bf16(dQ_acc[i][j], TLC_A(i), tlc_b0, dQ_acc[i][j]);
                        tlc::mma_m16n8k16_bf16(dQ_acc[i][j + 1], TLC_A(i), tlc_b1, dQ_acc[i][j + 1]);
                    }
                }
                #undef TLC_A
            }
        }
        // Copy dQ from register to global with add
        {
            float* tlc_dst = dQ_g + (long long)(((max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)) + (p_t % (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * 64) * dQ_stride2 + (long long)(((p_h * p_GROUP) + (p_t / (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * dQ_stride1 + (long long)(p_b) * dQ_stride0;
            const int tlc_rows_left = p_Nq - ((max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)) + (p_t % (tlc::cdiv(p_Nq, p_BM) - max(0, ((((p_n * p_BN) + p_Nq) - p_Nk) / p_BM)))))) * 64;
            if (tlc::pair_reductions(tlc_dst, dQ_stride2)) {
                _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) {
                    const int tlc_row = (tlc_warp / 2) * 32 + i * 16 + tlc_group + h * 8;
                    if (tlc_row < tlc_rows_left) _Pragma("unroll") for (int j = 0; j < 4; ++j) {
                        float* tlc_at = tlc_dst + (long long)tlc_row * dQ_stride2 + (tlc_warp % 2) * 32 + j * 8 + tlc_pair;
                        if (true) tlc::add_pair(tlc_at, dQ_acc[i][j][2 * h], dQ_acc[i][j][2 * h + 1], true);
                    }
                }
            }
            else {
                _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) {
                    const int tlc_row = (tlc_warp / 2) * 32 + i * 16 + tlc_group + h * 8;
                    if (tlc_row < tlc_rows_left) _Pragma("unroll") for (int j = 0; j < 4; ++j) {
                        float* tlc_at = tlc_dst + (long long)tlc_row * dQ_stride2 + (tlc_warp % 2) * 32 + j * 8 + tlc_pair;
                        if (true) tlc::add_pair(tlc_at, dQ_acc[i][j][2 * h], dQ_acc[i][j][2 * h + 1], false);
                    }
                }
            }
        }
    }
    tlc::cp_async_wait<0>();  // K, V: in case the loop ran no iteration
    __syncthreads();
    // Copy dK from register to global
    {
        __nv_bfloat16* tlc_dst = dK_g + (long long)((p_n) * 64) * dK_stride2 + (long long)(p_h) * dK_stride1 + (long long)(p_b) * dK_stride0;
        const int tlc_rows_left = p_Nk - (p_n) * 64;
        _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) {
            const int tlc_row = (tlc_warp / 2) * 32 + i * 16 + tlc_group + h * 8;
            const float tlc_inverse = 1.f;
            if (tlc_row < tlc_rows_left) _Pragma("unroll") for (int j = 0; j < 4; ++j) *reinterpret_cast<uint32_t*>(tlc_dst + (long long)tlc_row * dK_stride2 + (tlc_warp % 2) * 32 + j * 8 + tlc_pair) = tlc::pack_bf162(dK_acc[i][j][2 * h] * tlc_inverse, dK_acc[i][j][2 * h + 1] * tlc_inverse);
        }
    }
    // Copy dV from register to global
    {
        __nv_bfloat16* tlc_dst = dV_g + (long long)((p_n) * 64) * dV_stride2 + (long long)(p_h) * dV_stride1 + (long long)(p_b) * dV_stride0;
        const int tlc_rows_left = p_Nk - (p_n) * 64;
        _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) {
            const int tlc_row = (tlc_warp / 2) * 32 + i * 16 + tlc_group + h * 8;
            const float tlc_inverse = 1.f;
            if (tlc_row < tlc_rows_left) _Pragma("unroll") for (int j = 0; j < 4; ++j) *reinterpret_cast<uint32_t*>(tlc_dst + (long long)tlc_row * dV_stride2 + (tlc_warp % 2) * 32 + j * 8 + tlc_pair) = tlc::pack_bf162(dV_acc[i][j][2 * h] * tlc_inverse, dV_acc[i][j][2 * h + 1] * tlc_inverse);
        }
    }
}
