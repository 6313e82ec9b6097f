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
