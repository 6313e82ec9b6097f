        // Compute Mask S, on the tiles that cross a boundary
        if (((p_n) * 32) + 31 > (((p_m) * 128) + p_Nk - p_Nq)) {
            _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int j = 0; j < 4; ++j) _Pragma("unroll") for (int e = 0; e < 4; ++e) {
                float& x = S_acc[i][j][e];
                const int tlc_row = tlc_warp * 32 + i * 16 + tlc_group + (e / 2) * 8;
                const int tlc_col = j * 8 + tlc_pair + (e % 2);
                const int tlc_key = ((p_n) * 32) + tlc_col; if (tlc_key > (((p_m) * 128) + tlc_row + p_Nk - p_Nq)) x = -INFINITY;
            }
        }
