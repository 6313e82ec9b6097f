#include "tlc_sm80.cuh"

// softcap_fwd_bf16_d256: lowered by tlc for sm_80
extern "C" __global__ void __launch_bounds__(128, 1) softcap_fwd_bf16_d256(const __nv_bfloat16* __restrict__ Q_g, const __nv_bfloat16* __restrict__ K_g, const __nv_bfloat16* __restrict__ V_g, __nv_bfloat16* __restrict__ O_g, const float p_scale, const int p_B, const int p_H, const int p_Nq, const int p_Nk, const long long Q_stride0, const long long Q_stride1, const int Q_stride2, const long long K_stride0, const long long K_stride1, const int K_stride2, const long long V_stride0, const long long V_stride1, const int V_stride2, const long long O_stride0, const long long O_stride1, const int O_stride2) {
    constexpr int p_D = 256;
    constexpr int p_BM = 64;
    constexpr int p_BN = 32;
    constexpr int p_WARPS = 4;
    constexpr int p_STAGES = 2;
    const int p_m = blockIdx.x;
    const int p_h = blockIdx.y;
    const int p_b = blockIdx.z;
    const int tlc_warp = threadIdx.x / 32, tlc_lane = threadIdx.x % 32;
    const int tlc_group = tlc::fragment_group(tlc_lane), tlc_pair = tlc::fragment_pair(tlc_lane);
    extern __shared__ __align__(16) unsigned char tlc_smem[];
    __nv_bfloat16* Q_s = reinterpret_cast<__nv_bfloat16*>(tlc_smem + 0);  // 1 x 64 x 256, rows 264 apart
    __nv_bfloat16* K_s = reinterpret_cast<__nv_bfloat16*>(tlc_smem + 33792);  // 2 x 32 x 256, rows 264 apart
    __nv_bfloat16* V_s = reinterpret_cast<__nv_bfloat16*>(tlc_smem + 67584);  // 2 x 32 x 256, rows 264 apart
    float S_acc[1][4][4] = {};
    float O_acc[1][32][4] = {};
    float S_max[1][2], S_sum[1][2];
    _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) { S_max[i][h] = -INFINITY; S_sum[i][h] = 0.f; }
    // Copy Q (64 x 256) from global to shared
    {
        __nv_bfloat16* tlc_dst = Q_s + (0) * 16896;
        const __nv_bfloat16* tlc_src = Q_g + (long long)((p_m) * 64) * Q_stride2 + (long long)(p_h) * Q_stride1 + (long long)(p_b) * Q_stride0;
        const int tlc_rows_left = p_Nq - (p_m) * 64;
        const int tlc_r0 = threadIdx.x / 32, tlc_col = (threadIdx.x % 32) * 8;
        const auto* tlc_from = tlc_src + (long long)tlc_r0 * Q_stride2 + tlc_col;
        const uint32_t tlc_to = tlc::smem_address(tlc_dst + tlc_r0 * 264 + tlc_col);
        _Pragma("unroll") for (int tlc_t = 0; tlc_t < 16; ++tlc_t) {
            const bool tlc_valid = tlc_r0 + tlc_t * 4 < tlc_rows_left;
            tlc::cp_async_16(tlc_to + tlc_t * 2112, tlc_valid ? tlc_from + (long long)tlc_t * 4 * Q_stride2 : tlc_src, tlc_valid);
        }
    }
    tlc::cp_async_commit();
    // Q: waited for with the first tiles of the loop that follows
    const int p_n_start = 0, p_n_stop = tlc::cdiv(p_Nk, p_BN);
    if (p_n_start + 0 < p_n_stop) {
        // Copy K (32 x 256) from global to shared
        {
            __nv_bfloat16* tlc_dst = K_s + (0) * 8448;
            const __nv_bfloat16* tlc_src = K_g + (long long)(((p_n_start + 0)) * 32) * K_stride2 + (long long)(p_h) * K_stride1 + (long long)(p_b) * K_stride0;
            const int tlc_rows_left = p_Nk - ((p_n_start + 0)) * 32;
            const int tlc_r0 = threadIdx.x / 32, tlc_col = (threadIdx.x % 32) * 8;
            const auto* tlc_from = tlc_src + (long long)tlc_r0 * K_stride2 + tlc_col;
            const uint32_t tlc_to = tlc::smem_address(tlc_dst + tlc_r0 * 264 + tlc_col);
            _Pragma("unroll") for (int tlc_t = 0; tlc_t < 8; ++tlc_t) {
                const bool tlc_valid = tlc_r0 + tlc_t * 4 < tlc_rows_left;
                tlc::cp_async_16(tlc_to + tlc_t * 2112, tlc_valid ? tlc_from + (long long)tlc_t * 4 * K_stride2 : tlc_src, tlc_valid);
            }
        }
        // Copy V (32 x 256) from global to shared
        {
            __nv_bfloat16* tlc_dst = V_s + (0) * 8448;
            const __nv_bfloat16* tlc_src = V_g + (long long)(((p_n_start + 0)) * 32) * V_stride2 + (long long)(p_h) * V_stride1 + (long long)(p_b) * V_stride0;
            const int tlc_rows_left = p_Nk - ((p_n_start + 0)) * 32;
            const int tlc_r0 = threadIdx.x / 32, tlc_col = (threadIdx.x % 32) * 8;
            const auto* tlc_from = tlc_src + (long long)tlc_r0 * V_stride2 + tlc_col;
            const uint32_t tlc_to = tlc::smem_address(tlc_dst + tlc_r0 * 264 + tlc_col);
            _Pragma("unroll") for (int tlc_t = 0; tlc_t < 8; ++tlc_t) {
                const bool tlc_valid = tlc_r0 + tlc_t * 4 < tlc_rows_left;
                tlc::cp_async_16(tlc_to + tlc_t * 2112, tlc_valid ? tlc_from + (long long)tlc_t * 4 * V_stride2 : tlc_src, tlc_valid);
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
            // Copy K (32 x 256) from global to shared
            {
                __nv_bfloat16* tlc_dst = K_s + (((tlc_next - p_n_start) % 2)) * 8448;
                const __nv_bfloat16* tlc_src = K_g + (long long)((tlc_next) * 32) * K_stride2 + (long long)(p_h) * K_stride1 + (long long)(p_b) * K_stride0;
                const int tlc_rows_left = p_Nk - (tlc_next) * 32;
                const int tlc_r0 = threadIdx.x / 32, tlc_col = (threadIdx.x % 32) * 8;
                const auto* tlc_from = tlc_src + (long long)tlc_r0 * K_stride2 + tlc_col;
                const uint32_t tlc_to = tlc::smem_address(tlc_dst + tlc_r0 * 264 + tlc_col);
                _Pragma("unroll") for (int tlc_t = 0; tlc_t < 8; ++tlc_t) {
                    const bool tlc_valid = tlc_r0 + tlc_t * 4 < tlc_rows_left;
                    tlc::cp_async_16(tlc_to + tlc_t * 2112, tlc_valid ? tlc_from + (long long)tlc_t * 4 * K_stride2 : tlc_src, tlc_valid);
                }
            }
            // Copy V (32 x 256) from global to shared
            {
                __nv_bfloat16* tlc_dst = V_s + (((tlc_next - p_n_start) % 2)) * 8448;
                const __nv_bfloat16* tlc_src = V_g + (long long)((tlc_next) * 32) * V_stride2 + (long long)(p_h) * V_stride1 + (long long)(p_b) * V_stride0;
                const int tlc_rows_left = p_Nk - (tlc_next) * 32;
                const int tlc_r0 = threadIdx.x / 32, tlc_col = (threadIdx.x % 32) * 8;
                const auto* tlc_from = tlc_src + (long long)tlc_r0 * V_stride2 + tlc_col;
                const uint32_t tlc_to = tlc::smem_address(tlc_dst + tlc_r0 * 264 + tlc_col);
                _Pragma("unroll") for (int tlc_t = 0; tlc_t < 8; ++tlc_t) {
                    const bool tlc_valid = tlc_r0 + tlc_t * 4 < tlc_rows_left;
                    tlc::cp_async_16(tlc_to + tlc_t * 2112, tlc_valid ? tlc_from + (long long)tlc_t * 4 * V_stride2 : tlc_src, tlc_valid);
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
            _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int j = 0; j < 4; ++j) _Pragma("unroll") for (int e = 0; e < 4; ++e) S_acc[i][j][e] = 0.f;
            const uint32_t tlc_a_base = tlc::smem_address(Q_s) + ((tlc_warp * 16 + tlc_lane % 16) * 264 + (tlc_lane / 16) * 8) * 2;
            const uint32_t tlc_b_base = tlc::smem_address((K_s + tlc_stage * 8448)) + (((tlc_lane / 16) * 8 + tlc_lane % 8) * 264 + ((tlc_lane / 8) % 2) * 8) * 2;
            _Pragma("unroll") for (int kk = 0; kk < 16; ++kk) {
                uint32_t a[1][4];
                _Pragma("unroll") for (int i = 0; i < 1; ++i) tlc::ldmatrix_x4(a[i], tlc_a_base + (i * 4224 + kk * 16) * 2);
                #define TLC_A(i) a[i]
                _Pragma("unroll") for (int j = 0; j + 1 < 4; j += 2) {
                    uint32_t b[4];
                    tlc::ldmatrix_x4(b, tlc_b_base + (j * 2112 + kk * 16) * 2);
                    const uint32_t tlc_b0[2] = {b[0], b[1]}, tlc_b1[2] = {b[2], b[3]};
                    _Pragma("unroll") for (int i = 0; i < 1; ++i) {
                        tlc::mma_m16n8k16_bf16(S_acc[i][j], TLC_A(i), tlc_b0, S_acc[i][j]);
                        tlc::mma_m16n8k16_bf16(S_acc[i][j + 1], TLC_A(i), tlc_b1, S_acc[i][j + 1]);
                    }
                }
                #undef TLC_A
            }
        }
        // Compute Multiply S by a scalar
        _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int j = 0; j < 4; ++j) _Pragma("unroll") for (int e = 0; e < 4; ++e) {
            float& x = S_acc[i][j][e];
            const int tlc_row = tlc_warp * 16 + i * 16 + tlc_group + (e / 2) * 8;
            const int tlc_col = j * 8 + tlc_pair + (e % 2);
            x *= (float)(p_scale); (void)tlc_row; (void)tlc_col;
        }
        // Compute Softcap S: cap * tanh(s / cap)
        {
            const float tlc_cap = (float)(50.0f), tlc_inverse_cap = 1.f / tlc_cap;
            _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int j = 0; j < 4; ++j) _Pragma("unroll") for (int e = 0; e < 4; ++e) {
                float& x = S_acc[i][j][e];
                const int tlc_row = tlc_warp * 16 + i * 16 + tlc_group + (e / 2) * 8;
                const int tlc_col = j * 8 + tlc_pair + (e % 2);
                x = tlc::softcap(x, tlc_cap, tlc_inverse_cap); (void)tlc_row; (void)tlc_col;
            }
        }
        // Compute Softmax S: online, rescaling O when a row's maximum grows past 2^8
        {
            // the last key tile: hide the keys past the end
            if (((p_n) * 32) + 32 > p_Nk) {
                _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int j = 0; j < 4; ++j) _Pragma("unroll") for (int e = 0; e < 4; ++e) {
                    float& x = S_acc[i][j][e];
                    const int tlc_row = tlc_warp * 16 + i * 16 + tlc_group + (e / 2) * 8;
                    const int tlc_col = j * 8 + tlc_pair + (e % 2);
                    if (((p_n) * 32) + tlc_col >= p_Nk) x = -INFINITY; (void)tlc_row;
                }
            }
            float tlc_keep[1][2]; bool tlc_moves = false;
            _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) {
                float tlc_top = -INFINITY;
                _Pragma("unroll") for (int j = 0; j < 4; ++j) tlc_top = fmaxf(tlc_top, fmaxf(S_acc[i][j][2 * h], S_acc[i][j][2 * h + 1]));
                tlc_top = tlc::quad_max(tlc_top);
                // from -inf (nothing seen yet) any finite maximum moves; -inf to -inf (a row all masked so far) gives NaN > x, false
                const bool tlc_up = (tlc_top - S_max[i][h]) * 1.4426950408889634f > 8.f;
                tlc_keep[i][h] = tlc_up ? tlc_top : S_max[i][h];
                tlc_moves |= tlc_up;
            }
            if (__any_sync(0xffffffffu, tlc_moves)) {
                _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) {
                    const float tlc_alpha = tlc_keep[i][h] == S_max[i][h] ? 1.f : tlc::exp2_approx((S_max[i][h] - tlc_keep[i][h]) * 1.4426950408889634f);
                    S_sum[i][h] *= tlc_alpha;
                    S_max[i][h] = tlc_keep[i][h];
                    _Pragma("unroll") for (int j = 0; j < 32; ++j) { O_acc[i][j][2 * h] *= tlc_alpha; O_acc[i][j][2 * h + 1] *= tlc_alpha; }
                }
            }
            _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) {
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
        uint32_t S_frag[1][2][4];
        _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int kk = 0; kk < 2; ++kk) {
            S_frag[i][kk][0] = tlc::pack_bf162(S_acc[i][2 * kk][0], S_acc[i][2 * kk][1]);
            S_frag[i][kk][1] = tlc::pack_bf162(S_acc[i][2 * kk][2], S_acc[i][2 * kk][3]);
            S_frag[i][kk][2] = tlc::pack_bf162(S_acc[i][2 * kk + 1][0], S_acc[i][2 * kk + 1][1]);
            S_frag[i][kk][3] = tlc::pack_bf162(S_acc[i][2 * kk + 1][2], S_acc[i][2 * kk + 1][3]);
        }
        // Copy V: streamed into its GEMM one k-step at a time
        // Compute GEMM S, V accumulating into O
        {
            const uint32_t tlc_b_base = tlc::smem_address((V_s + tlc_stage * 8448)) + ((((tlc_lane / 8) % 2) * 8 + tlc_lane % 8) * 264 + (tlc_lane / 16) * 8) * 2;
            _Pragma("unroll") for (int kk = 0; kk < 2; ++kk) {
                #define TLC_A(i) S_frag[i][kk]
                _Pragma("unroll") for (int j = 0; j + 1 < 32; j += 2) {
                    uint32_t b[4];
                    tlc::ldmatrix_x4_trans(b, tlc_b_base + (kk * 4224 + j * 8) * 2);
                    const uint32_t tlc_b0[2] = {b[0], b[1]}, tlc_b1[2] = {b[2], b[3]};
                    _Pragma("unroll") for (int i = 0; i < 1; ++i) {
                        tlc::mma_m16n8k16_bf16(O_acc[i][j], TLC_A(i), tlc_b0, O_acc[i][j]);
                        tlc::mma_m16n8k16_bf16(O_acc[i][j + 1], TLC_A(i), tlc_b1, O_acc[i][j + 1]);
                    }
                }
                #undef TLC_A
            }
        }
    }
    tlc::cp_async_wait<0>();  // Q: in case the loop ran no iteration
    __syncthreads();  // what follows may refill the stages
    // Copy O from register to global
    {
        __nv_bfloat16* tlc_dst = O_g + (long long)((p_m) * 64) * O_stride2 + (long long)(p_h) * O_stride1 + (long long)(p_b) * O_stride0;
        const int tlc_rows_left = p_Nq - (p_m) * 64;
        _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) {
            const int tlc_row = tlc_warp * 16 + i * 16 + tlc_group + h * 8;
            const float tlc_total = tlc::quad_sum(S_sum[i][h]);
            const float tlc_inverse = tlc_total > 0.f ? 1.f / tlc_total : 0.f;
            if (tlc_row < tlc_rows_left) _Pragma("unroll") for (int j = 0; j < 32; ++j) *reinterpret_cast<uint32_t*>(tlc_dst + (long long)tlc_row * O_stride2 + j * 8 + tlc_pair) = tlc::pack_bf162(O_acc[i][j][2 * h] * tlc_inverse, O_acc[i][j][2 * h + 1] * tlc_inverse);
        }
    }
}
