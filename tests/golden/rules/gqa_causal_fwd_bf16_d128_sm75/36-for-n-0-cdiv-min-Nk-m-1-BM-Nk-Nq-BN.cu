    const int p_n_start = 0, p_n_stop = tlc::cdiv(min(p_Nk, ((((p_m + 1) * p_BM) + p_Nk) - p_Nq)), p_BN);
    uint4 K_next[4];  // the next K tile, on its way to shared memory
    uint4 V_next[4];  // the next V tile, on its way to shared memory
    if (p_n_start < p_n_stop) {
        // Copy K (32 x 128) from global, into registers
        {
            const __nv_bfloat16* tlc_src = K_g + (long long)((p_n_start) * 32) * K_stride2 + (long long)((p_h / p_GROUP)) * K_stride1 + (long long)(p_b) * K_stride0;
            const int tlc_rows_left = p_Nk - (p_n_start) * 32;
            _Pragma("unroll") for (int tlc_v = 0; tlc_v < 4; ++tlc_v) {
                const int tlc_r = threadIdx.x / 16 + tlc_v * 8, tlc_col = (threadIdx.x % 16) * 8;
                const bool tlc_valid = true && tlc_r < tlc_rows_left;
                K_next[tlc_v] = tlc::load_16(tlc_src + (long long)tlc_r * K_stride2 + tlc_col, tlc_valid);
            }
        }
    }
    for (int p_n = p_n_start; p_n < p_n_stop; ++p_n) {
        // Copy K into shared memory, bf16 to fp16
        {
            _Pragma("unroll") for (int tlc_v = 0; tlc_v < 4; ++tlc_v) {
                *reinterpret_cast<uint4*>(K_s + (threadIdx.x / 16 + tlc_v * 8) * 136 + (threadIdx.x % 16) * 8) = tlc::bf16x8_to_f16x8(K_next[tlc_v]);
            }
        }
        __syncthreads();
        // Copy V (32 x 128) from global, into registers
        {
            const __nv_bfloat16* tlc_src = V_g + (long long)((p_n) * 32) * V_stride2 + (long long)((p_h / p_GROUP)) * V_stride1 + (long long)(p_b) * V_stride0;
            const int tlc_rows_left = p_Nk - (p_n) * 32;
            _Pragma("unroll") for (int tlc_v = 0; tlc_v < 4; ++tlc_v) {
                const int tlc_r = threadIdx.x / 16 + tlc_v * 8, tlc_col = (threadIdx.x % 16) * 8;
                const bool tlc_valid = true && tlc_r < tlc_rows_left;
                V_next[tlc_v] = tlc::load_16(tlc_src + (long long)tlc_r * V_stride2 + tlc_col, tlc_valid);
            }
        }
        // Copy V into shared memory, bf16 to fp16
        {
            _Pragma("unroll") for (int tlc_v = 0; tlc_v < 4; ++tlc_v) {
                *reinterpret_cast<uint4*>(V_s + (threadIdx.x / 16 + tlc_v * 8) * 136 + (threadIdx.x % 16) * 8) = tlc::bf16x8_to_f16x8(V_next[tlc_v]);
            }
        }
        __syncthreads();
        if (p_n + 1 < p_n_stop) {
            // Copy K (32 x 128) from global, into registers
            {
                const __nv_bfloat16* tlc_src = K_g + (long long)(((p_n + 1)) * 32) * K_stride2 + (long long)((p_h / p_GROUP)) * K_stride1 + (long long)(p_b) * K_stride0;
                const int tlc_rows_left = p_Nk - ((p_n + 1)) * 32;
                _Pragma("unroll") for (int tlc_v = 0; tlc_v < 4; ++tlc_v) {
                    const int tlc_r = threadIdx.x / 16 + tlc_v * 8, tlc_col = (threadIdx.x % 16) * 8;
                    const bool tlc_valid = true && tlc_r < tlc_rows_left;
                    K_next[tlc_v] = tlc::load_16(tlc_src + (long long)tlc_r * K_stride2 + tlc_col, tlc_valid);
                }
            }
        }
    }
