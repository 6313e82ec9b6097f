#include "tlc_sm80.cuh"

// window_causal_gqa_fwd_fp16_d128: lowered by tlc for sm_80
extern "C" __global__ void __launch_bounds__(128, 1) window_causal_gqa_fwd_fp16_d128(const __half* __restrict__ Q_g, const __half* __restrict__ K_g, const __half* __restrict__ V_g, __half* __restrict__ O_g, const float p_scale, const int p_B, const int p_H, const int p_Nq, const int p_Hkv, const int p_Nk, const long long Q_stride0, const long long Q_stride1, const int Q_stride2, const long long K_stride0, const long long K_stride1, const int K_stride2, const long long V_stride0, const long long V_stride1, const int V_stride2, const long long O_stride0, const long long O_stride1, const int O_stride2) {
    constexpr int p_D = 128;
    constexpr int p_GROUP = 4;
    constexpr int p_BM = 128;
    constexpr int p_BN = 32;
    constexpr int p_WARPS = 4;
    constexpr int p_STAGES = 2;
    constexpr int p_LEFT = 1024;
    constexpr int p_RIGHT = 0;
    const int p_m = blockIdx.x;
    const int p_h = blockIdx.y;
    const int p_b = blockIdx.z;
    const int tlc_warp = threadIdx.x / 32, tlc_lane = threadIdx.x % 32;
    const int tlc_group = tlc::fragment_group(tlc_lane), tlc_pair = tlc::fragment_pair(tlc_lane);
    extern __shared__ __align__(16) unsigned char tlc_smem[];
    __half* Q_s = reinterpret_cast<__half*>(tlc_smem + 0);  // 1 x 128 x 128, rows 136 apart
    __half* K_s = reinterpret_cast<__half*>(tlc_smem + 34816);  // 2 x 32 x 128, rows 136 apart
    __half* V_s = reinterpret_cast<__half*>(tlc_smem + 52224);  // 2 x 32 x 128, rows 136 apart
    __half* O_s = reinterpret_cast<__half*>(tlc_smem + 69632);  // 1 x 128 x 128, rows 136 apart
    float S_acc[2][4][4] = {};
    float O_acc[2][16][4] = {};
    float S_max[2][2], S_sum[2][2];
    _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) { S_max[i][h] = -INFINITY; S_sum[i][h] = 0.f; }
    // Copy Q (128 x 128) from global to shared
    {
        __half* tlc_dst = Q_s + (0) * 17408;
        const __half* tlc_src = Q_g + (long long)((p_m) * 128) * Q_stride2 + (long long)(p_h) * Q_stride1 + (long long)(p_b) * Q_stride0;
        const int tlc_rows_left = p_Nq - (p_m) * 128;
        const int tlc_r0 = threadIdx.x / 16, tlc_col = (threadIdx.x % 16) * 8;
        const auto* tlc_from = tlc_src + (long long)tlc_r0 * Q_stride2 + tlc_col;
        const uint32_t tlc_to = tlc::smem_address(tlc_dst + tlc_r0 * 136 + tlc_col);
        _Pragma("unroll") for (int tlc_t = 0; tlc_t < 16; ++tlc_t) {
            const bool tlc_valid = tlc_r0 + tlc_t * 8 < tlc_rows_left;
            tlc::cp_async_16(tlc_to + tlc_t * 2176, tlc_valid ? tlc_from + (long long)tlc_t * 8 * Q_stride2 : tlc_src, tlc_valid);
        }
    }
    tlc::cp_async_commit();
    // Q: waited for with the first tiles of the loop that follows
    const int p_n_start = max(0, (((((p_m * p_BM) + p_Nk) - p_Nq) - p_LEFT) / p_BN)), p_n_stop = tlc::cdiv(min(p_Nk, ((((p_m + 1) * p_BM) + p_Nk) - p_Nq)), p_BN);
    if (p_n_start + 0 < p_n_stop) {
        // Copy K (32 x 128) from global to shared
        {
            __half* tlc_dst = K_s + (0) * 4352;
            const __half* tlc_src = K_g + (long long)(((p_n_start + 0)) * 32) * K_stride2 + (long long)((p_h / p_GROUP)) * K_stride1 + (long long)(p_b) * K_stride0;
            const int tlc_rows_left = p_Nk - ((p_n_start + 0)) * 32;
            const int tlc_r0 = threadIdx.x / 16, tlc_col = (threadIdx.x % 16) * 8;
            const auto* tlc_from = tlc_src + (long long)tlc_r0 * K_stride2 + tlc_col;
            const uint32_t tlc_to = tlc::smem_address(tlc_dst + tlc_r0 * 136 + tlc_col);
            _Pragma("unroll") for (int tlc_t = 0; tlc_t < 4; ++tlc_t) {
                const bool tlc_valid = tlc_r0 + tlc_t * 8 < tlc_rows_left;
                tlc::cp_async_16(tlc_to + tlc_t * 2176, tlc_valid ? tlc_from + (long long)tlc_t * 8 * K_stride2 : tlc_src, tlc_valid);
            }
        }
        // Copy V (32 x 128) from global to shared
        {
            __half* tlc_dst = V_s + (0) * 4352;
            const __half* tlc_src = V_g + (long long)(((p_n_start + 0)) * 32) * V_stride2 + (long long)((p_h / p_GROUP)) * V_stride1 + (long long)(p_b) * V_stride0;
            const int tlc_rows_left = p_Nk - ((p_n_start + 0)) * 32;
            const int tlc_r0 = threadIdx.x / 16, tlc_col = (threadIdx.x % 16) * 8;
            const auto* tlc_from = tlc_src + (long long)tlc_r0 * V_stride2 + tlc_col;
            const uint32_t tlc_to = tlc::smem_address(tlc_dst + tlc_r0 * 136 + tlc_col);
            _Pragma("unroll") for (int tlc_t = 0; tlc_t < 4; ++tlc_t) {
                const bool tlc_valid = tlc_r0 + tlc_t * 8 < tlc_rows_left;
                tlc::cp_async_16(tlc_to + tlc_t * 2176, tlc_valid ? tlc_from + (long long)tlc_t * 8 * V_stride2 : tlc_src, tlc_valid);
            }
        }
    }
    tlc::cp_async_commit();
    for (int p_n = p_n_start; p_n < p_n_stop; ++p_n) {
        tlc::cp_async_wait<0>();
        __syncthreads();
        const int tlc_stage = (p_n - p_n_start) % 2;
        const int tlc_next = p_n + 1;
        if (tlc_next < p_n_stop) {
            // Copy K (32 x 128) from global to shared
            {
                __half* tlc_dst = K_s + (((tlc_next - p_n_start) % 2)) * 4352;
                const __half* tlc_src = K_g + (long long)((tlc_next) * 32) * K_stride2 + (long long)((p_h / p_GROUP)) * K_stride1 + (long long)(p_b) * K_stride0;
                const int tlc_rows_left = p_Nk - (tlc_next) * 32;
                const int tlc_r0 = threadIdx.x / 16, tlc_col = (threadIdx.x % 16) * 8;
                const auto* tlc_from = tlc_src + (long long)tlc_r0 * K_stride2 + tlc_col;
                const uint32_t tlc_to = tlc::smem_address(tlc_dst + tlc_r0 * 136 + tlc_col);
                _Pragma("unroll") for (int tlc_t = 0; tlc_t < 4; ++tlc_t) {
                    const bool tlc_valid = tlc_r0 + tlc_t * 8 < tlc_rows_left;
                    tlc::cp_async_16(tlc_to + tlc_t * 2176, tlc_valid ? tlc_from + (long long)tlc_t * 8 * K_stride2 : tlc_src, tlc_valid);
                }
            }
            // Copy V (32 x 128) from global to shared
            {
                __half* tlc_dst = V_s + (((tlc_next - p_n_start) % 2)) * 4352;
                const __half* tlc_src = V_g + (long long)((tlc_next) * 32) * V_stride2 + (long long)((p_h / p_GROUP)) * V_stride1 + (long long)(p_b) * V_stride0;
                const int tlc_rows_left = p_Nk - (tlc_next) * 32;
                const int tlc_r0 = threadIdx.x / 16, tlc_col = (threadIdx.x % 16) * 8;
                const auto* tlc_from = tlc_src + (long long)tlc_r0 * V_stride2 + tlc_col;
                const uint32_t tlc_to = tlc::smem_address(tlc_dst + tlc_r0 * 136 + tlc_col);
                _Pragma("unroll") for (int tlc_t = 0; tlc_t < 4; ++tlc_t) {
                    const bool tlc_valid = tlc_r0 + tlc_t * 8 < tlc_rows_left;
                    tlc::cp_async_16(tlc_to + tlc_t * 2176, tlc_valid ? tlc_from + (long long)tlc_t * 8 * V_stride2 : tlc_src, tlc_valid);
                }
            }
        }
        tlc::cp_async_commit();
        // Copy K: issued by the loop's pipeline
        // Copy V: issued by the loop's pipeline
        // Copy Q: streamed into its GEMM one k-step at a time
        // Copy K: streamed into its GEMM one k-step at a time
        // Compute GEMM Q, K^T into S
        {
            _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int j = 0; j < 4; ++j) _Pragma("unroll") for (int e = 0; e < 4; ++e) S_acc[i][j][e] = 0.f;
            const uint32_t tlc_a_base = tlc::smem_address(Q_s) + ((tlc_warp * 32 + tlc_lane % 16) * 136 + (tlc_lane / 16) * 8) * 2;
            const uint32_t tlc_b_base = tlc::smem_address((K_s + tlc_stage * 4352)) + (((tlc_lane / 16) * 8 + tlc_lane % 8) * 136 + ((tlc_lane / 8) % 2) * 8) * 2;
            _Pragma("unroll") for (int kk = 0; kk < 8; ++kk) {
                uint32_t a[2][4];
                _Pragma("unroll") for (int i = 0; i < 2; ++i) tlc::ldmatrix_x4(a[i], tlc_a_base + (i * 2176 + kk * 16) * 2);
                #define TLC_A(i) a[i]
                _Pragma("unroll") for (int j = 0; j + 1 < 4; j += 2) {
                    uint32_t b[4];
                    tlc::ldmatrix_x4(b, tlc_b_base + (j * 1088 + kk * 16) * 2);
                    const uint32_t tlc_b0[2] = {b[0], b[1]}, tlc_b1[2] = {b[2], b[3]};
                    _Pragma("unroll") for (int i = 0; i < 2; ++i) {
                        tlc::mma_m16n8k16_f16(S_acc[i][j], TLC_A(i), tlc_b0, S_acc[i][j]);
                        tlc::mma_m16n8k16_f16(S_acc[i][j + 1], TLC_A(i), tlc_b1, S_acc[i][j + 1]);
                    }
                }
                #undef TLC_A
            }
        }
        // Compute Multiply S by a scalar
        _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int j = 0; j < 4; ++j) _Pragma("unroll") for (int e = 0; e < 4; ++e) {
            float& x = S_acc[i][j][e];
            const int tlc_row = tlc_warp * 32 + i * 16 + tlc_group + (e / 2) * 8;
            const int tlc_col = j * 8 + tlc_pair + (e % 2);
            x *= (float)(p_scale); (void)tlc_row; (void)tlc_col;
        }
        // Compute Mask S, on the tiles that cross a boundary
        if (((p_n) * 32) + 31 > (((p_m) * 128) + p_Nk - p_Nq) || ((p_n) * 32) < (((p_m) * 128) + 127 + p_Nk - p_Nq) - (p_LEFT) || ((p_n) * 32) + 31 > (((p_m) * 128) + p_Nk - p_Nq) + (p_RIGHT)) {
            _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int j = 0; j < 4; ++j) _Pragma("unroll") for (int e = 0; e < 4; ++e) {
                float& x = S_acc[i][j][e];
                const int tlc_row = tlc_warp * 32 + i * 16 + tlc_group + (e / 2) * 8;
                const int tlc_col = j * 8 + tlc_pair + (e % 2);
                const int tlc_key = ((p_n) * 32) + tlc_col; if (tlc_key > (((p_m) * 128) + tlc_row + p_Nk - p_Nq) || tlc_key < (((p_m) * 128) + tlc_row + p_Nk - p_Nq) - (p_LEFT) || tlc_key > (((p_m) * 128) + tlc_row + p_Nk - p_Nq) + (p_RIGHT)) x = -INFINITY;
            }
        }
        // Compute Softmax S: online, rescaling O when a row's maximum grows past 2^8
        {
            // the last key tile: hide the keys past the end
            if (((p_n) * 32) + 32 > p_Nk) {
                _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int j = 0; j < 4; ++j) _Pragma("unroll") for (int e = 0; e < 4; ++e) {
                    float& x = S_acc[i][j][e];
                    const int tlc_row = tlc_warp * 32 + i * 16 + tlc_group + (e / 2) * 8;
                    const int tlc_col = j * 8 + tlc_pair + (e % 2);
                    if (((p_n) * 32) + tlc_col >= p_Nk) x = -INFINITY; (void)tlc_row;
                }
            }
            float tlc_keep[2][2]; bool tlc_moves = false;
            _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) {
                float tlc_top = -INFINITY;
                _Pragma("unroll") for (int j = 0; j < 4; ++j) tlc_top = fmaxf(tlc_top, fmaxf(S_acc[i][j][2 * h], S_acc[i][j][2 * h + 1]));
                tlc_top = tlc::quad_max(tlc_top);
                // from -inf (nothing seen yet) any finite maximum moves; -inf to -inf (a row all masked so far) gives NaN > x, false
                const bool tlc_up = (tlc_top - S_max[i][h]) * 1.4426950408889634f > 8.f;
                tlc_keep[i][h] = tlc_up ? tlc_top : S_max[i][h];
                tlc_moves |= tlc_up;
            }
            if (__any_sync(0xffffffffu, tlc_moves)) {
                _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) {
                    const float tlc_alpha = tlc_keep[i][h] == S_max[i][h] ? 1.f : tlc::exp2_approx((S_max[i][h] - tlc_keep[i][h]) * 1.4426950408889634f);
                    S_sum[i][h] *= tlc_alpha;
                    S_max[i][h] = tlc_keep[i][h];
                    _Pragma("unroll") for (int j = 0; j < 16; ++j) { O_acc[i][j][2 * h] *= tlc_alpha; O_acc[i][j][2 * h + 1] *= tlc_alpha; }
                }
            }
            _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) {
                const float tlc_base = S_max[i][h] == -INFINITY ? 0.f : S_max[i][h] * 1.4426950408889634f;
                float tlc_sum = 0.f;
                _Pragma("unroll") for (int j = 0; j < 4; ++j) _Pragma("unroll") for (int e = 2 * h; e < 2 * h + 2; ++e) {
                    float& x = S_acc[i][j][e];
                    x = tlc::exp2_approx(x * 1.4426950408889634f - tlc_base);
                    tlc_sum += x;
                }
                S_sum[i][h] += tlc_sum;
            }
        }
        // Reshape S: accumulator pairs of n-tiles become A fragments
        uint32_t S_frag[2][2][4];
        _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int kk = 0; kk < 2; ++kk) {
            S_frag[i][kk][0] = tlc::pack_half2(S_acc[i][2 * kk][0], S_acc[i][2 * kk][1]);
            S_frag[i][kk][1] = tlc::pack_half2(S_acc[i][2 * kk][2], S_acc[i][2 * kk][3]);
            S_frag[i][kk][2] = tlc::pack_half2(S_acc[i][2 * kk + 1][0], S_acc[i][2 * kk + 1][1]);
            S_frag[i][kk][3] = tlc::pack_half2(S_acc[i][2 * kk + 1][2], S_acc[i][2 * kk + 1][3]);
        }
        // Copy V: streamed into its GEMM one k-step at a time
        // Compute GEMM S, V accumulating into O
        {
            const uint32_t tlc_b_base = tlc::smem_address((V_s + tlc_stage * 4352)) + ((((tlc_lane / 8) % 2) * 8 + tlc_lane % 8) * 136 + (tlc_lane / 16) * 8) * 2;
            _Pragma("unroll") for (int kk = 0; kk < 2; ++kk) {
                #define TLC_A(i) S_frag[i][kk]
                _Pragma("unroll") for (int j = 0; j + 1 < 16; j += 2) {
                    uint32_t b[4];
                    tlc::ldmatrix_x4_trans(b, tlc_b_base + (kk * 2176 + j * 8) * 2);
                    const uint32_t tlc_b0[2] = {b[0], b[1]}, tlc_b1[2] = {b[2], b[3]};
                    _Pragma("unroll") for (int i = 0; i < 2; ++i) {
                        tlc::mma_m16n8k16_f16(O_acc[i][j], TLC_A(i), tlc_b0, O_acc[i][j]);
                        tlc::mma_m16n8k16_f16(O_acc[i][j + 1], TLC_A(i), tlc_b1, O_acc[i][j + 1]);
                    }
                }
                #undef TLC_A
            }
        }
    }
    tlc::cp_async_wait<0>();  // Q: in case the loop ran no iteration
    __syncthreads();  // what follows may refill the stages
    // Copy O from register to shared
    {
        _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) {
            const int tlc_row = tlc_warp * 32 + i * 16 + tlc_group + h * 8;
            const float tlc_total = tlc::quad_sum(S_sum[i][h]);
            const float tlc_inverse = tlc_total > 0.f ? 1.f / tlc_total : 0.f;
            _Pragma("unroll") for (int j = 0; j < 16; ++j) *reinterpret_cast<uint32_t*>(O_s + tlc_row * 136 + j * 8 + tlc_pair) = tlc::pack_half2(O_acc[i][j][2 * h] * tlc_inverse, O_acc[i][j][2 * h + 1] * tlc_inverse);
        }
    }
    __syncthreads();
    // Copy O (128 x 128) from shared to global
    {
        __half* tlc_dst = O_g + (long long)((p_m) * 128) * O_stride2 + (long long)(p_h) * O_stride1 + (long long)(p_b) * O_stride0;
        const int tlc_rows_left = p_Nq - (p_m) * 128;
        _Pragma("unroll 1") for (int tlc_c = threadIdx.x; tlc_c < 2048; tlc_c += 128) {
            const int tlc_r = tlc_c / 16, tlc_col = (tlc_c % 16) * 8;
            if (tlc_r < tlc_rows_left) *reinterpret_cast<int4*>(tlc_dst + (long long)tlc_r * O_stride2 + tlc_col) = *reinterpret_cast<const int4*>(O_s + tlc_r * 136 + tlc_col);
        }
    }
}
