    const int p_c_start = 0, p_c_stop = tlc::cdiv(p_D, p_DC);
    for (int p_c = p_c_start; p_c < p_c_stop; ++p_c) {
    }
