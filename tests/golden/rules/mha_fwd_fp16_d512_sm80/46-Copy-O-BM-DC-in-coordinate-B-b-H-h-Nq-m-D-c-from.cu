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
