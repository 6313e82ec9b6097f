        // Reshape S: accumulator pairs of n-tiles become A fragments
        uint32_t S_frag[2][2][4];
        _Pragma("unroll") for (int i = 0; i < 2; ++i) _Pragma("unroll") for (int kk = 0; kk < 2; ++kk) {
            S_frag[i][kk][0] = tlc::pack_bf162(S_acc[i][2 * kk][0], S_acc[i][2 * kk][1]);
            S_frag[i][kk][1] = tlc::pack_bf162(S_acc[i][2 * kk][2], S_acc[i][2 * kk][3]);
            S_frag[i][kk][2] = tlc::pack_bf162(S_acc[i][2 * kk + 1][0], S_acc[i][2 * kk + 1][1]);
            S_frag[i][kk][3] = tlc::pack_bf162(S_acc[i][2 * kk + 1][2], S_acc[i][2 * kk + 1][3]);
        }
