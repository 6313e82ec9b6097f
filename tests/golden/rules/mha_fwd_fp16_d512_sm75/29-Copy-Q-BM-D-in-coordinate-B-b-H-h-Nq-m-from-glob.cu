    // Copy Q (32 x 512) from global to shared, through registers
    {
        const __half* tlc_src = Q_g + (long long)((p_m) * 32) * Q_stride2 + (long long)(p_h) * Q_stride1 + (long long)(p_b) * Q_stride0;
        const int tlc_rows_left = p_Nq - (p_m) * 32;
        _Pragma("unroll 1") for (int tlc_c = threadIdx.x; tlc_c < 2048; tlc_c += 64) {
            const int tlc_r = tlc_c / 64, tlc_col = (tlc_c % 64) * 8;
            const bool tlc_valid = tlc_r < tlc_rows_left;
            const uint4 tlc_raw = tlc::load_16(tlc_src + (tlc_valid ? (long long)tlc_r * Q_stride2 + tlc_col : 0), tlc_valid);
            *reinterpret_cast<uint4*>(Q_s + tlc_r * 520 + tlc_col) = tlc_raw;
        }
    }
    __syncthreads();
