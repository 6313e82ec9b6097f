"""Ada (sm_89: RTX 40xx, L4, L40S): the sm_80 instruction sets; its limits are in tlc.arch
(99 KB of shared memory per block). Its FP8 MMA is not lowered."""
from dataclasses import replace

from tlc.backends.targets.sm80 import SM80

SM89 = replace(SM80, arch="sm_89")
