"""What a copy engine (an instruction-set module for copies from global to shared memory)
does where it does not say otherwise: the kernel's statements in order, one role for every
thread, tiles in padded rows, no tensor maps."""
from __future__ import annotations


class CopyEngine:
    swizzles = False  # whether it lays its tiles out swizzled, with mbarriers (isa/tma.py)
    long_rows_first = False  # causal row tiles launched longest first (isa/tma.py)

    def emit_body(self, em) -> None:
        """The kernel body after the prologue: every statement's rule, in order."""
        em.emit_state()
        em.emit_statements()

    def tensor_maps(self, kernel, schedule) -> tuple:
        """Launch arguments the engine adds after the tensors: TMA descriptors."""
        return ()
