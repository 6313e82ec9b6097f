    const int p_n_start = 0, p_n_stop = tlc::cdiv(p_Nk, p_BN);
    if (p_n_start + 0 < p_n_stop) {
        // Copy K (32 x 128) from global to shared
        {
            __half* tlc_dst = K_s + (0) * 4352;
            const __half* tlc_src = K_g + (long long)(((p_n_start + 0)) * 32) * K_stride2 + (long long)(p_h) * K_stride1 + (long long)(p_b) * K_stride0;
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
            const __half* tlc_src = V_g + (long long)(((p_n_start + 0)) * 32) * V_stride2 + (long long)(p_h) * V_stride1 + (long long)(p_b) * V_stride0;
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
                const __half* tlc_src = K_g + (long long)((tlc_next) * 32) * K_stride2 + (long long)(p_h) * K_stride1 + (long long)(p_b) * K_stride0;
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
                const __half* tlc_src = V_g + (long long)((tlc_next) * 32) * V_stride2 + (long long)(p_h) * V_stride1 + (long long)(p_b) * V_stride0;
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
    }
    tlc::cp_async_wait<0>();  // Q: in case the loop ran no iteration
    __syncthreads();  // what follows may refill the stages
