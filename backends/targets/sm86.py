"""Ampere GA10x (sm_86: RTX 30xx, A10, A40): the sm_80 instruction sets; its smaller shared
memory (99 KB per block, 100 KB per SM) is in tlc.arch."""
from dataclasses import replace

from tlc.backends.targets.sm80 import SM80

SM86 = replace(SM80, arch="sm_86")
