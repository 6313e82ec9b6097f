#include "tlc_sm90a.cuh"

// mha_fwd_fp16_d512: lowered by tlc for sm_90a
extern "C" __global__ void __launch_bounds__(256, 1) mha_fwd_fp16_d512(const __half* __restrict__ Q_g, const __half* __restrict__ K_g, const __half* __restrict__ V_g, __half* __restrict__ O_g, const __grid_constant__ CUtensorMap Q_map, const __grid_constant__ CUtensorMap K_map, const __grid_constant__ CUtensorMap V_map, const float p_scale, const int p_B, const int p_H, const int p_Nq, const int p_Nk, const long long Q_stride0, const long long Q_stride1, const int Q_stride2, const long long K_stride0, const long long K_stride1, const int K_stride2, const long long V_stride0, const long long V_stride1, const int V_stride2, const long long O_stride0, const long long O_stride1, const int O_stride2) {
    constexpr int p_D = 512;
    constexpr int p_BM = 64;
    constexpr int p_BN = 64;
    constexpr int p_WARPS = 4;
    constexpr int p_STAGES = 2;
    constexpr int p_DC = 128;
    const int p_m = blockIdx.x;
    const int p_h = blockIdx.y;
    const int p_b = blockIdx.z;
    const int tlc_warp = threadIdx.x / 32, tlc_lane = threadIdx.x % 32;
    const int tlc_group = tlc::fragment_group(tlc_lane), tlc_pair = tlc::fragment_pair(tlc_lane);
    extern __shared__ __align__(1024) unsigned char tlc_smem_base[];
    unsigned char* tlc_smem = tlc_smem_base + (-tlc::smem_address(tlc_smem_base) % 1024);
    __half* Q_s = reinterpret_cast<__half*>(tlc_smem + 0);  // 1 x 64 x 512, rows 512 apart
    __half* K_s = reinterpret_cast<__half*>(tlc_smem + 65536);  // 2 x 64 x 512, rows 512 apart
    __half* V_s = reinterpret_cast<__half*>(tlc_smem + 196608);  // 2 x 64 x 128, rows 128 apart
    uint64_t* tlc_bar = reinterpret_cast<uint64_t*>(tlc_smem + 229376);
    if (threadIdx.x == 0) {
        _Pragma("unroll") for (int i = 0; i < 5; ++i) tlc::sm90a::mbarrier_init(&tlc_bar[i], 1);
        _Pragma("unroll") for (int i = 5; i < 9; ++i) tlc::sm90a::mbarrier_init(&tlc_bar[i], 4);  // each consumer warp
        tlc::sm90a::fence_barrier_init();
    }
    __syncthreads();
    if (tlc_warp >= 4) {
        // the producer warpgroup: one thread issues every copy from global memory
        if (threadIdx.x == 128) {
            tlc::sm90a::prefetch_tensormap(&Q_map);
            tlc::sm90a::prefetch_tensormap(&K_map);
            tlc::sm90a::prefetch_tensormap(&V_map);
            int tlc_ring = 0;  // iterations of the ring that earlier chunks ran
            tlc::sm90a::mbarrier_arrive_expect_tx(&tlc_bar[0], 65536);  // Copy Q (64 x 512)
            tlc::sm90a::tma_load_4d(Q_s + (0) * 32768 + 0, &Q_map, &tlc_bar[0], 0, (p_m) * 64, p_h, p_b);
            tlc::sm90a::tma_load_4d(Q_s + (0) * 32768 + 4096, &Q_map, &tlc_bar[0], 64, (p_m) * 64, p_h, p_b);
            tlc::sm90a::tma_load_4d(Q_s + (0) * 32768 + 8192, &Q_map, &tlc_bar[0], 128, (p_m) * 64, p_h, p_b);
            tlc::sm90a::tma_load_4d(Q_s + (0) * 32768 + 12288, &Q_map, &tlc_bar[0], 192, (p_m) * 64, p_h, p_b);
            tlc::sm90a::tma_load_4d(Q_s + (0) * 32768 + 16384, &Q_map, &tlc_bar[0], 256, (p_m) * 64, p_h, p_b);
            tlc::sm90a::tma_load_4d(Q_s + (0) * 32768 + 20480, &Q_map, &tlc_bar[0], 320, (p_m) * 64, p_h, p_b);
            tlc::sm90a::tma_load_4d(Q_s + (0) * 32768 + 24576, &Q_map, &tlc_bar[0], 384, (p_m) * 64, p_h, p_b);
            tlc::sm90a::tma_load_4d(Q_s + (0) * 32768 + 28672, &Q_map, &tlc_bar[0], 448, (p_m) * 64, p_h, p_b);
            const int p_c_start = 0, p_c_stop = tlc::cdiv(p_D, p_DC);
            for (int p_c = p_c_start; p_c < p_c_stop; ++p_c) {
                const int p_n_start = 0, p_n_stop = tlc::cdiv(p_Nk, p_BN);
                for (int p_n = p_n_start; p_n < p_n_stop; ++p_n) {
                    const int tlc_i = tlc_ring + p_n - p_n_start, tlc_stage = tlc_i % 2;
                    if (tlc_i >= 2) tlc::sm90a::mbarrier_wait(&tlc_bar[5 + tlc_stage], (tlc_i / 2 - 1) & 1);  // K's stage, freed in iteration i - 2
                    tlc::sm90a::mbarrier_arrive_expect_tx(&tlc_bar[1 + tlc_stage], 65536);  // Copy K (64 x 512)
                    tlc::sm90a::tma_load_4d(K_s + (tlc_stage) * 32768 + 0, &K_map, &tlc_bar[1 + tlc_stage], 0, (p_n) * 64, p_h, p_b);
                    tlc::sm90a::tma_load_4d(K_s + (tlc_stage) * 32768 + 4096, &K_map, &tlc_bar[1 + tlc_stage], 64, (p_n) * 64, p_h, p_b);
                    tlc::sm90a::tma_load_4d(K_s + (tlc_stage) * 32768 + 8192, &K_map, &tlc_bar[1 + tlc_stage], 128, (p_n) * 64, p_h, p_b);
                    tlc::sm90a::tma_load_4d(K_s + (tlc_stage) * 32768 + 12288, &K_map, &tlc_bar[1 + tlc_stage], 192, (p_n) * 64, p_h, p_b);
                    tlc::sm90a::tma_load_4d(K_s + (tlc_stage) * 32768 + 16384, &K_map, &tlc_bar[1 + tlc_stage], 256, (p_n) * 64, p_h, p_b);
                    tlc::sm90a::tma_load_4d(K_s + (tlc_stage) * 32768 + 20480, &K_map, &tlc_bar[1 + tlc_stage], 320, (p_n) * 64, p_h, p_b);
                    tlc::sm90a::tma_load_4d(K_s + (tlc_stage) * 32768 + 24576, &K_map, &tlc_bar[1 + tlc_stage], 384, (p_n) * 64, p_h, p_b);
                    tlc::sm90a::tma_load_4d(K_s + (tlc_stage) * 32768 + 28672, &K_map, &tlc_bar[1 + tlc_stage], 448, (p_n) * 64, p_h, p_b);
                    if (tlc_i >= 2) tlc::sm90a::mbarrier_wait(&tlc_bar[7 + tlc_stage], (tlc_i / 2 - 1) & 1);  // V's stage, freed in iteration i - 2
                    tlc::sm90a::mbarrier_arrive_expect_tx(&tlc_bar[3 + tlc_stage], 16384);  // Copy V (64 x 128)
                    tlc::sm90a::tma_load_4d(V_s + (tlc_stage) * 8192 + 0, &V_map, &tlc_bar[3 + tlc_stage], (p_c) * 128 + 0, (p_n) * 64, p_h, p_b);
                    tlc::sm90a::tma_load_4d(V_s + (tlc_stage) * 8192 + 4096, &V_map, &tlc_bar[3 + tlc_stage], (p_c) * 128 + 64, (p_n) * 64, p_h, p_b);
                }
                if (p_n_stop > p_n_start) tlc_ring += p_n_stop - p_n_start;
            }
        }
    }
    else {
        // the consumer warpgroups: every statement but the copies from global memory
        int tlc_ring = 0;  // iterations of the ring that earlier chunks ran
        float S_acc[1][8][4] = {};
        float O_acc[1][16][4] = {};
        float S_max[1][2], S_sum[1][2];
        _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) { S_max[i][h] = -INFINITY; S_sum[i][h] = 0.f; }
        tlc::sm90a::mbarrier_wait(&tlc_bar[0], 0);  // Copy Q: issued by the producer
        const int p_c_start = 0, p_c_stop = tlc::cdiv(p_D, p_DC);
        for (int p_c = p_c_start; p_c < p_c_stop; ++p_c) {
            // O and the online softmax of S start afresh
            _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int j = 0; j < 16; ++j) _Pragma("unroll") for (int e = 0; e < 4; ++e) O_acc[i][j][e] = 0.f;
            _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) { S_max[i][h] = -INFINITY; S_sum[i][h] = 0.f; }
            const int p_n_start = 0, p_n_stop = tlc::cdiv(p_Nk, p_BN);
            // Reshape S: accumulator pairs of n-tiles become A fragments
            uint32_t S_frag[1][4][4];
            float tlc_alphas[1][2]; bool tlc_rescale = false;
            if (p_n_start < p_n_stop) {
                // key block p_n_start: its scores, softmax and P before the loop
                const int p_n = p_n_start, tlc_stage = tlc_ring % 2;
                const uint32_t tlc_phase = (tlc_ring / 2) & 1;
                tlc::sm90a::mbarrier_wait(&tlc_bar[1 + tlc_stage], tlc_phase);  // K's tile of this iteration
                // Compute GEMM Q, K^T into S: wgmma, A and B from shared memory
                {
                    tlc::sm90a::wgmma_fence();  // the accumulators' and A's registers are written
                    _Pragma("unroll") for (int kk = 0; kk < 32; ++kk) {
                        const uint64_t tlc_a = tlc::sm90a::smem_descriptor(Q_s + (kk / 4) * 4096 + (tlc_warp / 4 * 64) * 64 + (kk % 4) * 16, 16, 1024, tlc::sm90a::SWIZZLE_128B);
                        tlc::sm90a::wgmma_m64n64k16_ss_fp16<0>(*reinterpret_cast<float(*)[32]>(&S_acc[0][0][0]), tlc_a, tlc::sm90a::smem_descriptor((K_s + tlc_stage * 32768) + (kk / 4) * 4096 + (0) * 64 + (kk % 4) * 16, 16, 1024, tlc::sm90a::SWIZZLE_128B), kk > 0);
                    }
                    tlc::sm90a::wgmma_commit();
                    tlc::sm90a::wgmma_wait<0>();  // S is written
                    tlc::sm90a::wgmma_hold(*reinterpret_cast<float(*)[32]>(&S_acc[0][0][0]));
                }
                __syncwarp();
                if (tlc_lane == 0) tlc::sm90a::mbarrier_arrive(&tlc_bar[5 + tlc_stage]);  // this warp is done with K
                // Compute Multiply S by a scalar
                _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int j = 0; j < 8; ++j) _Pragma("unroll") for (int e = 0; e < 4; ++e) {
                    float& x = S_acc[i][j][e];
                    const int tlc_row = tlc_warp * 16 + i * 16 + tlc_group + (e / 2) * 8;
                    const int tlc_col = j * 8 + tlc_pair + (e % 2);
                    x *= (float)(p_scale); (void)tlc_row; (void)tlc_col;
                }
                // Compute Softmax S: online, rescaling O when a row's maximum grows past 2^8
                {
                    // the last key tile: hide the keys past the end
                    if (((p_n) * 64) + 64 > p_Nk) {
                        _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int j = 0; j < 8; ++j) _Pragma("unroll") for (int e = 0; e < 4; ++e) {
                            float& x = S_acc[i][j][e];
                            const int tlc_row = tlc_warp * 16 + i * 16 + tlc_group + (e / 2) * 8;
                            const int tlc_col = j * 8 + tlc_pair + (e % 2);
                            if (((p_n) * 64) + tlc_col >= p_Nk) x = -INFINITY; (void)tlc_row;
                        }
                    }
                    float tlc_keep[1][2]; bool tlc_moves = false;
                    _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) {
                        float tlc_top = -INFINITY;
                        _Pragma("unroll") for (int j = 0; j < 8; ++j) tlc_top = fmaxf(tlc_top, fmaxf(S_acc[i][j][2 * h], S_acc[i][j][2 * h + 1]));
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
                            tlc_alphas[i][h] = tlc_alpha;
                        }
                        tlc_rescale = true;
                    }
                    _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) {
                        const float tlc_base = S_max[i][h] == -INFINITY ? 0.f : S_max[i][h] * 1.4426950408889634f;
                        float tlc_sum = 0.f;
                        _Pragma("unroll") for (int j = 0; j < 8; ++j) _Pragma("unroll") for (int e = 2 * h; e < 2 * h + 2; ++e) {
                            float& x = S_acc[i][j][e];
                            x = tlc::exp2_approx(x * 1.4426950408889634f - tlc_base);
                            tlc_sum += x;
                        }
                        S_sum[i][h] += tlc_sum;
                    }
                }
                _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int kk = 0; kk < 4; ++kk) {
                    S_frag[i][kk][0] = tlc::pack_half2(S_acc[i][2 * kk][0], S_acc[i][2 * kk][1]);
                    S_frag[i][kk][1] = tlc::pack_half2(S_acc[i][2 * kk][2], S_acc[i][2 * kk][3]);
                    S_frag[i][kk][2] = tlc::pack_half2(S_acc[i][2 * kk + 1][0], S_acc[i][2 * kk + 1][1]);
                    S_frag[i][kk][3] = tlc::pack_half2(S_acc[i][2 * kk + 1][2], S_acc[i][2 * kk + 1][3]);
                }
            }
            for (int p_n = p_n_start + 1; p_n < p_n_stop; ++p_n) {
                const int tlc_stage = (tlc_ring + p_n - p_n_start) % 2, tlc_before = (tlc_ring + p_n - 1 - p_n_start) % 2;
                const uint32_t tlc_phase = ((tlc_ring + p_n - p_n_start) / 2) & 1, tlc_before_phase = ((tlc_ring + p_n - 1 - p_n_start) / 2) & 1;
                tlc::sm90a::mbarrier_wait(&tlc_bar[1 + tlc_stage], tlc_phase);  // K's tile of this iteration
                // Compute GEMM Q, K^T into S: wgmma, A and B from shared memory
                {
                    tlc::sm90a::wgmma_fence();  // the accumulators' and A's registers are written
                    _Pragma("unroll") for (int kk = 0; kk < 32; ++kk) {
                        const uint64_t tlc_a = tlc::sm90a::smem_descriptor(Q_s + (kk / 4) * 4096 + (tlc_warp / 4 * 64) * 64 + (kk % 4) * 16, 16, 1024, tlc::sm90a::SWIZZLE_128B);
                        tlc::sm90a::wgmma_m64n64k16_ss_fp16<0>(*reinterpret_cast<float(*)[32]>(&S_acc[0][0][0]), tlc_a, tlc::sm90a::smem_descriptor((K_s + tlc_stage * 32768) + (kk / 4) * 4096 + (0) * 64 + (kk % 4) * 16, 16, 1024, tlc::sm90a::SWIZZLE_128B), kk > 0);
                    }
                    tlc::sm90a::wgmma_commit();
                }
                if (tlc_rescale) {
                    _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) {
                        _Pragma("unroll") for (int j = 0; j < 16; ++j) { O_acc[i][j][2 * h] *= tlc_alphas[i][h]; O_acc[i][j][2 * h + 1] *= tlc_alphas[i][h]; }
                    }
                    tlc_rescale = false;
                }
                // block p_n - 1's P·V, in flight with block p_n's scores
                {
                    const int tlc_stage = tlc_before;
                    const uint32_t tlc_phase = tlc_before_phase;
                    tlc::sm90a::mbarrier_wait(&tlc_bar[3 + tlc_stage], tlc_phase);  // V's tile of this iteration
                    // Compute GEMM S, V accumulating into O: wgmma, A from registers and B from shared memory
                    {
                        tlc::sm90a::wgmma_fence();  // the accumulators' and A's registers are written
                        _Pragma("unroll") for (int kk = 0; kk < 4; ++kk) {
                            tlc::sm90a::wgmma_m64n128k16_rs_fp16<1>(*reinterpret_cast<float(*)[64]>(&O_acc[0][0][0]), S_frag[0][kk], tlc::sm90a::smem_descriptor((V_s + tlc_stage * 8192) + 0 + kk * 1024, 8192, 1024, tlc::sm90a::SWIZZLE_128B), 1);
                        }
                        tlc::sm90a::wgmma_commit();
                    }
                }
                tlc::sm90a::wgmma_wait<1>();  // S is written
                tlc::sm90a::wgmma_hold(*reinterpret_cast<float(*)[32]>(&S_acc[0][0][0]));
                __syncwarp();
                if (tlc_lane == 0) tlc::sm90a::mbarrier_arrive(&tlc_bar[5 + tlc_stage]);  // this warp is done with K
                // Compute Multiply S by a scalar
                _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int j = 0; j < 8; ++j) _Pragma("unroll") for (int e = 0; e < 4; ++e) {
                    float& x = S_acc[i][j][e];
                    const int tlc_row = tlc_warp * 16 + i * 16 + tlc_group + (e / 2) * 8;
                    const int tlc_col = j * 8 + tlc_pair + (e % 2);
                    x *= (float)(p_scale); (void)tlc_row; (void)tlc_col;
                }
                // Compute Softmax S: online, rescaling O when a row's maximum grows past 2^8
                {
                    // the last key tile: hide the keys past the end
                    if (((p_n) * 64) + 64 > p_Nk) {
                        _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int j = 0; j < 8; ++j) _Pragma("unroll") for (int e = 0; e < 4; ++e) {
                            float& x = S_acc[i][j][e];
                            const int tlc_row = tlc_warp * 16 + i * 16 + tlc_group + (e / 2) * 8;
                            const int tlc_col = j * 8 + tlc_pair + (e % 2);
                            if (((p_n) * 64) + tlc_col >= p_Nk) x = -INFINITY; (void)tlc_row;
                        }
                    }
                    float tlc_keep[1][2]; bool tlc_moves = false;
                    _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) {
                        float tlc_top = -INFINITY;
                        _Pragma("unroll") for (int j = 0; j < 8; ++j) tlc_top = fmaxf(tlc_top, fmaxf(S_acc[i][j][2 * h], S_acc[i][j][2 * h + 1]));
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
                            tlc_alphas[i][h] = tlc_alpha;
                        }
                        tlc_rescale = true;
                    }
                    _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) {
                        const float tlc_base = S_max[i][h] == -INFINITY ? 0.f : S_max[i][h] * 1.4426950408889634f;
                        float tlc_sum = 0.f;
                        _Pragma("unroll") for (int j = 0; j < 8; ++j) _Pragma("unroll") for (int e = 2 * h; e < 2 * h + 2; ++e) {
                            float& x = S_acc[i][j][e];
                            x = tlc::exp2_approx(x * 1.4426950408889634f - tlc_base);
                            tlc_sum += x;
                        }
                        S_sum[i][h] += tlc_sum;
                    }
                }
                tlc::sm90a::wgmma_wait<0>();  // O is written
                tlc::sm90a::wgmma_hold(*reinterpret_cast<float(*)[64]>(&O_acc[0][0][0]));
                __syncwarp();
                if (tlc_lane == 0) tlc::sm90a::mbarrier_arrive(&tlc_bar[7 + tlc_before]);  // this warp is done with V
                _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int kk = 0; kk < 4; ++kk) {
                    S_frag[i][kk][0] = tlc::pack_half2(S_acc[i][2 * kk][0], S_acc[i][2 * kk][1]);
                    S_frag[i][kk][1] = tlc::pack_half2(S_acc[i][2 * kk][2], S_acc[i][2 * kk][3]);
                    S_frag[i][kk][2] = tlc::pack_half2(S_acc[i][2 * kk + 1][0], S_acc[i][2 * kk + 1][1]);
                    S_frag[i][kk][3] = tlc::pack_half2(S_acc[i][2 * kk + 1][2], S_acc[i][2 * kk + 1][3]);
                }
            }
            if (p_n_start < p_n_stop) {
                // the last key block's P·V
                const int tlc_stage = (tlc_ring + p_n_stop - 1 - p_n_start) % 2;
                const uint32_t tlc_phase = ((tlc_ring + p_n_stop - 1 - p_n_start) / 2) & 1;
                if (tlc_rescale) {
                    _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) {
                        _Pragma("unroll") for (int j = 0; j < 16; ++j) { O_acc[i][j][2 * h] *= tlc_alphas[i][h]; O_acc[i][j][2 * h + 1] *= tlc_alphas[i][h]; }
                    }
                    tlc_rescale = false;
                }
                tlc::sm90a::mbarrier_wait(&tlc_bar[3 + tlc_stage], tlc_phase);  // V's tile of this iteration
                // Compute GEMM S, V accumulating into O: wgmma, A from registers and B from shared memory
                {
                    tlc::sm90a::wgmma_fence();  // the accumulators' and A's registers are written
                    _Pragma("unroll") for (int kk = 0; kk < 4; ++kk) {
                        tlc::sm90a::wgmma_m64n128k16_rs_fp16<1>(*reinterpret_cast<float(*)[64]>(&O_acc[0][0][0]), S_frag[0][kk], tlc::sm90a::smem_descriptor((V_s + tlc_stage * 8192) + 0 + kk * 1024, 8192, 1024, tlc::sm90a::SWIZZLE_128B), 1);
                    }
                    tlc::sm90a::wgmma_commit();
                    tlc::sm90a::wgmma_wait<0>();  // O is written
                    tlc::sm90a::wgmma_hold(*reinterpret_cast<float(*)[64]>(&O_acc[0][0][0]));
                }
                __syncwarp();
                if (tlc_lane == 0) tlc::sm90a::mbarrier_arrive(&tlc_bar[7 + tlc_stage]);  // this warp is done with V
            }
            if (p_n_stop > p_n_start) tlc_ring += p_n_stop - p_n_start;
            // Copy O from register to global
            {
                __half* tlc_dst = O_g + (long long)((p_c) * 128) * 1LL + (long long)((p_m) * 64) * O_stride2 + (long long)(p_h) * O_stride1 + (long long)(p_b) * O_stride0;
                const int tlc_rows_left = p_Nq - (p_m) * 64;
                _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) {
                    const int tlc_row = tlc_warp * 16 + i * 16 + tlc_group + h * 8;
                    const float tlc_total = tlc::quad_sum(S_sum[i][h]);
                    const float tlc_inverse = tlc_total > 0.f ? 1.f / tlc_total : 0.f;
                    if (tlc_row < tlc_rows_left) _Pragma("unroll") for (int j = 0; j < 16; ++j) *reinterpret_cast<uint32_t*>(tlc_dst + (long long)tlc_row * O_stride2 + j * 8 + tlc_pair) = tlc::pack_half2(O_acc[i][j][2 * h] * tlc_inverse, O_acc[i][j][2 * h + 1] * tlc_inverse);
                }
            }
        }
    }
}
