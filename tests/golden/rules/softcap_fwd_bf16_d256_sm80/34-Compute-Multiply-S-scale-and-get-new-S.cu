        // Compute Multiply S by a scalar
        _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int j = 0; j < 4; ++j) _Pragma("unroll") for (int e = 0; e < 4; ++e) {
            float& x = S_acc[i][j][e];
            const int tlc_row = tlc_warp * 16 + i * 16 + tlc_group + (e / 2) * 8;
            const int tlc_col = j * 8 + tlc_pair + (e % 2);
            x *= (float)(p_scale); (void)tlc_row; (void)tlc_col;
        }
