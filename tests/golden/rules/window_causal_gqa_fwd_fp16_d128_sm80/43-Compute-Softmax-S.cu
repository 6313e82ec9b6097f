        // Compute Softmax S: online, rescaling O when a row's maximum grows past 2^8
        {
            // the last key tile: hide the keys past the end
            if (((p_n) * 32) + 32 > p_Nk) {
                _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int j = 0; j < 4; ++j) _Pragma("unroll") for (int e = 0; e < 4; ++e) {
                    float& x = S_acc[i][j][e];
                    const int tlc_row = tlc_warp * 32 + i * 16 + tlc_group + (e / 2) * 8;
                    const int tlc_col = j * 8 + tlc_pair + (e % 2);
                    if (((p_n) * 32) + tlc_col >= p_Nk) x = -INFINITY; (void)tlc_row;
                }
            }
            float tlc_keep[2][2]; bool tlc_moves = false;
            _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) {
                float tlc_top = -INFINITY;
                _Pragma("unroll") for (int j = 0; j < 4; ++j) tlc_top = fmaxf(tlc_top, fmaxf(S_acc[i][j][2 * h], S_acc[i][j][2 * h + 1]));
                tlc_top = tlc::quad_max(tlc_top);
                // from -inf (nothing seen yet) any finite maximum moves; -inf to -inf (a row all masked so far) gives NaN > x, false
                const bool tlc_up = (tlc_top - S_max[i][h]) * 1.4426950408889634f > 8.f;
                tlc_keep[i][h] = tlc_up ? tlc_top : S_max[i][h];
                tlc_moves |= tlc_up;
            }
            if (__any_sync(0xffffffffu, tlc_moves)) {
                _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) {
                    const float tlc_alpha = tlc_keep[i][h] == S_max[i][h] ? 1.f : tlc::exp2_approx((S_max[i][h] - tlc_keep[i][h]) * 1.4426950408889634f);
                    S_sum[i][h] *= tlc_alpha;
                    S_max[i][h] = tlc_keep[i][h];
                    _Pragma("unroll") for (int j = 0; j < 16; ++j) { O_acc[i][j][2 * h] *= tlc_alpha; O_acc[i][j][2 * h + 1] *= tlc_alpha; }
                }
            }
            _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) {
                const float tlc_base = S_max[i][h] == -INFINITY ? 0.f : S_max[i][h] * 1.4426950408889634f;
                float tlc_sum = 0.f;
                _Pragma("unroll") for (int j = 0; j < 4; ++j) _Pragma("unroll") for (int e = 2 * h; e < 2 * h + 2; ++e) {
                    float& x = S_acc[i][j][e];
                    x = tlc::exp2_approx(x * 1.4426950408889634f - tlc_base);
                    tlc_sum += x;
                }
                S_sum[i][h] += tlc_sum;
            }
        }
