"""The example plans, shipped with tlc as package data (`tlc.examples`): the LLM prompts quote
them, so an installed tlc has them too."""
from __future__ import annotations

from importlib import resources


def read(name: str) -> str:
    """The text of an example plan, e.g. read("mha_fwd_fp16_d128_sm80")."""
    return resources.files(__name__).joinpath(f"{name}.tl").read_text(encoding="utf-8")
