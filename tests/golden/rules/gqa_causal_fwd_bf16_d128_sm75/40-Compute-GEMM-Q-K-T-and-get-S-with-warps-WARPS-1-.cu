        // Compute GEMM Q, K^T into S
        {
            _Pragma("unroll") for (int i = 0; i < 1; ++i) _Pragma("unroll") for (int j = 0; j < 4; ++j) _Pragma("unroll") for (int e = 0; e < 4; ++e) S_acc[i][j][e] = 0.f;
            const uint32_t tlc_b_base = tlc::smem_address(K_s) + (((tlc_lane / 16) * 8 + tlc_lane % 8) * 136 + ((tlc_lane / 8) % 2) * 8) * 2;
            _Pragma("unroll") for (int kk = 0; kk < 8; ++kk) {
                #define TLC_A(i) Q_frag[i][kk]
                _Pragma("unroll") for (int j = 0; j + 1 < 4; j += 2) {
                    uint32_t b[4];
                    tlc::ldmatrix_x4(b, tlc_b_base + (j * 1088 + kk * 16) * 2);
                    const uint32_t tlc_b0[2] = {b[0], b[1]}, tlc_b1[2] = {b[2], b[3]};
                    _Pragma("unroll") for (int i = 0; i < 1; ++i) {
                        tlc::mma_k16_f16_as_two_k8(S_acc[i][j], TLC_A(i), tlc_b0, S_acc[i][j]);
                        tlc::mma_k16_f16_as_two_k8(S_acc[i][j + 1], TLC_A(i), tlc_b1, S_acc[i][j + 1]);
                    }
                }
                #undef TLC_A
            }
        }
