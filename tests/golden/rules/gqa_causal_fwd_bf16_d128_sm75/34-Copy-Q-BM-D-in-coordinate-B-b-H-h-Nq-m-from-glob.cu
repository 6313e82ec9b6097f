    // Copy Q (64 x 128) from global to shared, through registers, bf16 to fp16
    {
        const __nv_bfloat16* tlc_src = Q_g + (long long)((p_m) * 64) * Q_stride2 + (long long)(p_h) * Q_stride1 + (long long)(p_b) * Q_stride0;
        const int tlc_rows_left = p_Nq - (p_m) * 64;
        _Pragma("unroll 1") for (int tlc_c = threadIdx.x; tlc_c < 1024; tlc_c += 128) {
            const int tlc_r = tlc_c / 16, tlc_col = (tlc_c % 16) * 8;
            const bool tlc_valid = tlc_r < tlc_rows_left;
            const uint4 tlc_raw = tlc::load_16(tlc_src + (tlc_valid ? (long long)tlc_r * Q_stride2 + tlc_col : 0), tlc_valid);
            *reinterpret_cast<uint4*>(Q_s + tlc_r * 136 + tlc_col) = tlc::bf16x8_to_f16x8(tlc_raw);
        }
    }
    __syncthreads();
