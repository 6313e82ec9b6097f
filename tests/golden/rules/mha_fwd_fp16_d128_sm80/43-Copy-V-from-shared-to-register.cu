        // Copy V: streamed into its GEMM one k-step at a time
