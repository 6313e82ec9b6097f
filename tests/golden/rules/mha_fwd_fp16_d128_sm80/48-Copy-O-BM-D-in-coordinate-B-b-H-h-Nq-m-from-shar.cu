    // Copy O (128 x 128) from shared to global
    {
        __half* tlc_dst = O_g + (long long)((p_m) * 128) * O_stride2 + (long long)(p_h) * O_stride1 + (long long)(p_b) * O_stride0;
        const int tlc_rows_left = p_Nq - (p_m) * 128;
        _Pragma("unroll 1") for (int tlc_c = threadIdx.x; tlc_c < 2048; tlc_c += 128) {
            const int tlc_r = tlc_c / 16, tlc_col = (tlc_c % 16) * 8;
            if (tlc_r < tlc_rows_left) *reinterpret_cast<int4*>(tlc_dst + (long long)tlc_r * O_stride2 + tlc_col) = *reinterpret_cast<const int4*>(O_s + tlc_r * 136 + tlc_col);
        }
    }
