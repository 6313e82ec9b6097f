            // Compute GEMM S, V accumulating into O
            {
                const uint32_t tlc_b_base = tlc::smem_address(V_s) + ((((tlc_lane / 8) % 2) * 8 + tlc_lane % 8) * 136 + (tlc_lane / 16) * 8) * 2;
                _Pragma("unroll") for (int kk = 0; kk < 0; ++kk) {
                    #define TLC_A(i) S_frag[i][kk]
                    _Pragma("unroll") for (int j = 0; j + 1 < 16; j += 2) {
                        uint32_t b[4];
                        tlc::ldmatrix_x4_trans(b, tlc_b_base + (kk * 2176 + j * 8) * 2);
                        const uint32_t tlc_b0[2] = {b[0], b[1]}, tlc_b1[2] = {b[2], b[3]};
                        _Pragma("unroll") for (int i = 0; i < 1; ++i) {
                            tlc::mma_k16_f16_as_two_k8(O_acc[i][j], TLC_A(i), tlc_b0, O_acc[i][j]);
                            tlc::mma_k16_f16_as_two_k8(O_acc[i][j + 1], TLC_A(i), tlc_b1, O_acc[i][j + 1]);
                        }
                    }
                    #undef TLC_A
                }
                // the last 8 of K: one m16n8k8 step
                {
                    uint32_t a[1][2];
                    _Pragma("unroll") for (int i = 0; i < 1; ++i) { a[i][0] = S_frag[i][0][0]; a[i][1] = S_frag[i][0][1]; }
                    _Pragma("unroll") for (int j = 0; j < 16; ++j) {
                        uint32_t b[2];
                        tlc::ldmatrix_x2_trans(b, tlc::smem_address(V_s) + ((0 + tlc_lane % 8) * 136 + j * 8) * 2);
                        const uint32_t tlc_b0[1] = {b[0]};
                        _Pragma("unroll") for (int i = 0; i < 1; ++i) tlc::mma_m16n8k8_f16(O_acc[i][j], a[i], tlc_b0, O_acc[i][j]);
                    }
                }
            }
