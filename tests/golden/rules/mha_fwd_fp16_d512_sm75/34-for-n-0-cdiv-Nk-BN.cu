        // O and the online softmax of S start afresh
        _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int j = 0; j < 16; ++j) _Pragma("unroll") for (int e = 0; e < 4; ++e) O_acc[i][j][e] = 0.f;
        _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) { S_max[i][h] = -INFINITY; S_sum[i][h] = 0.f; }
        const int p_n_start = 0, p_n_stop = tlc::cdiv(p_Nk, p_BN);
        uint4 K_next[8];  // the next K tile, on its way to shared memory
        uint4 V_next[2];  // the next V tile, on its way to shared memory
        if (p_n_start < p_n_stop) {
            // Copy K (8 x 512) from global, into registers
            {
                const __half* tlc_src = K_g + (long long)((p_n_start) * 8) * K_stride2 + (long long)(p_h) * K_stride1 + (long long)(p_b) * K_stride0;
                const int tlc_rows_left = p_Nk - (p_n_start) * 8;
                _Pragma("unroll") for (int tlc_v = 0; tlc_v < 8; ++tlc_v) {
                    const int tlc_r = threadIdx.x / 64 + tlc_v * 1, tlc_col = (threadIdx.x % 64) * 8;
                    const bool tlc_valid = true && tlc_r < tlc_rows_left;
                    K_next[tlc_v] = tlc::load_16(tlc_src + (long long)tlc_r * K_stride2 + tlc_col, tlc_valid);
                }
            }
        }
        for (int p_n = p_n_start; p_n < p_n_stop; ++p_n) {
            // Copy K into shared memory
            {
                _Pragma("unroll") for (int tlc_v = 0; tlc_v < 8; ++tlc_v) {
                    *reinterpret_cast<uint4*>(K_s + (threadIdx.x / 64 + tlc_v * 1) * 520 + (threadIdx.x % 64) * 8) = K_next[tlc_v];
                }
            }
            __syncthreads();
            // Copy V (8 x 128) from global, into registers
            {
                const __half* tlc_src = V_g + (long long)((p_c) * 128) * 1LL + (long long)((p_n) * 8) * V_stride2 + (long long)(p_h) * V_stride1 + (long long)(p_b) * V_stride0;
                const int tlc_rows_left = p_Nk - (p_n) * 8;
                _Pragma("unroll") for (int tlc_v = 0; tlc_v < 2; ++tlc_v) {
                    const int tlc_r = threadIdx.x / 16 + tlc_v * 4, tlc_col = (threadIdx.x % 16) * 8;
                    const bool tlc_valid = true && tlc_r < tlc_rows_left;
                    V_next[tlc_v] = tlc::load_16(tlc_src + (long long)tlc_r * V_stride2 + tlc_col, tlc_valid);
                }
            }
            // Copy V into shared memory
            {
                _Pragma("unroll") for (int tlc_v = 0; tlc_v < 2; ++tlc_v) {
                    *reinterpret_cast<uint4*>(V_s + (threadIdx.x / 16 + tlc_v * 4) * 136 + (threadIdx.x % 16) * 8) = V_next[tlc_v];
                }
            }
            __syncthreads();
            if (p_n + 1 < p_n_stop) {
                // Copy K (8 x 512) from global, into registers
                {
                    const __half* tlc_src = K_g + (long long)(((p_n + 1)) * 8) * K_stride2 + (long long)(p_h) * K_stride1 + (long long)(p_b) * K_stride0;
                    const int tlc_rows_left = p_Nk - ((p_n + 1)) * 8;
                    _Pragma("unroll") for (int tlc_v = 0; tlc_v < 8; ++tlc_v) {
                        const int tlc_r = threadIdx.x / 64 + tlc_v * 1, tlc_col = (threadIdx.x % 64) * 8;
                        const bool tlc_valid = true && tlc_r < tlc_rows_left;
                        K_next[tlc_v] = tlc::load_16(tlc_src + (long long)tlc_r * K_stride2 + tlc_col, tlc_valid);
                    }
                }
            }
        }
