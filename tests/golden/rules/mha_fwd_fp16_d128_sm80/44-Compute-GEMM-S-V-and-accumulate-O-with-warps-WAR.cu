        // Compute GEMM S, V accumulating into O
        {
            const uint32_t tlc_b_base = tlc::smem_address((V_s + tlc_stage * 4352)) + ((((tlc_lane / 8) % 2) * 8 + tlc_lane % 8) * 136 + (tlc_lane / 16) * 8) * 2;
            _Pragma("unroll") for (int kk = 0; kk < 2; ++kk) {
                #define TLC_A(i) S_frag[i][kk]
                _Pragma("unroll") for (int j = 0; j + 1 < 16; j += 2) {
                    uint32_t b[4];
                    tlc::ldmatrix_x4_trans(b, tlc_b_base + (kk * 2176 + j * 8) * 2);
                    const uint32_t tlc_b0[2] = {b[0], b[1]}, tlc_b1[2] = {b[2], b[3]};
                    _Pragma("unroll") for (int i = 0; i < 2; ++i) {
                        tlc::mma_m16n8k16_f16(O_acc[i][j], TLC_A(i), tlc_b0, O_acc[i][j]);
                        tlc::mma_m16n8k16_f16(O_acc[i][j + 1], TLC_A(i), tlc_b1, O_acc[i][j + 1]);
                    }
                }
                #undef TLC_A
            }
        }
