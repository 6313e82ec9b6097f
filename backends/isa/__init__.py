"""Instruction-set modules, one per family of PTX: each lowers the statements its family
carries (GEMMs, or copies from global to shared memory) and owns its terms of the register
model. A target (backends/targets) picks one of each."""
