        // Copy K: issued by the loop's pipeline
