            // Copy V: issued by the loop's pipeline
