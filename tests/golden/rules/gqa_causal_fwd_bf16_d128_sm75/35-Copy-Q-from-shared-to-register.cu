    uint32_t Q_frag[1][8][4];
    // Copy Q from shared to register, held whole
    {
        const uint32_t tlc_base = tlc::smem_address(Q_s) + ((tlc_warp * 16 + tlc_lane % 16) * 136 + (tlc_lane / 16) * 8) * 2;
        _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int kk = 0; kk < 8; ++kk) tlc::ldmatrix_x4(Q_frag[i][kk], tlc_base + (i * 2176 + kk * 16) * 2);
    }
