"""Hopper run as Ampere (sm_90): the sm_80 instruction sets, built for the H100/H200's own
arch. Warpgroup MMA and TMA need sm_90a (backends/targets/sm90a.py)."""
from dataclasses import replace

from tlc.backends.targets.sm80 import SM80

SM90 = replace(SM80, arch="sm_90")
