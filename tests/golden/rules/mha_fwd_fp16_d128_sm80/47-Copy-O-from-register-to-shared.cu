    // Copy O from register to shared
    {
        _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int h = 0; h < 2; ++h) {
            const int tlc_row = tlc_warp * 32 + i * 16 + tlc_group + h * 8;
            const float tlc_total = tlc::quad_sum(S_sum[i][h]);
            const float tlc_inverse = tlc_total > 0.f ? 1.f / tlc_total : 0.f;
            _Pragma("unroll") for (int j = 0; j < 16; ++j) *reinterpret_cast<uint32_t*>(O_s + tlc_row * 136 + j * 8 + tlc_pair) = tlc::pack_half2(O_acc[i][j][2 * h] * tlc_inverse, O_acc[i][j][2 * h + 1] * tlc_inverse);
        }
    }
    __syncthreads();
