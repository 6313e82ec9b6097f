"""backward_recipe: a backward plan (docs/language.md §5.9) computes the gradients.

Its statements are traced once, in order, as terms over what they load (Q, K, V, dO, L,
Delta, the scale), each register and shared tile holding the term last written to it, a loop's
body once with the accumulators it adds into carried in. The terms of the tiles stored are
then compared with the chain of FlashAttention-2's backward built from the plan's own score
chain (the Multiply by the scale and any Softcap, Mask and ALiBi, in the plan's order, on
Q·Kᵀ; each modifier once):

    P = Exp(scores, L),  dP = dO·Vᵀ − Delta,  dS = scale · [SoftcapGrad(P ∘ dP, capped S)]
    dV += Pᵀ·dO,  dK += dSᵀ·Q  (in the loop, stored once after it),  dQ = dS·K (added once
    an iteration; or, in a plan whose blocks own a query tile and walk the key tiles, summed
    in registers and stored once after the loop, as the deterministic mode's dQ plan does)

and Q, dO, L and Delta must be loaded, and dQ added, at one coordinate (one query tile), as
K, V, dK and dV at another. A plan that computes anything else is refused at the store whose
tile differs, with the part that differs; that is how a plan that `tlc check` accepts computes
the gradients whatever statements an LLM or a person moved, repeated or dropped.
"""
from __future__ import annotations

from tlc import ir
from tlc.diagnostics import Diagnostic
from tlc.passes.facts import text

CODE = "backward-recipe"


def backward_recipe(kernel: ir.Kernel, ctx) -> ir.Kernel:
    if not ir.is_backward(kernel) or any(isinstance(op, ir.Rowsum) for op in ir.walk(kernel.body)):
        return kernel  # not a backward pass, or the step before it (Delta), judged by sim
    if ctx.has_errors:
        return kernel  # a plan wrong in its shapes or stores: those errors say it first
    missing = [n for n in ("Q", "K", "V", "L", "Delta") if kernel.tensor(n) is None]
    if missing:  # the names tlc/backward.py's conventions give the pass's tensors
        ctx.report(Diagnostic(CODE, f"a backward plan takes Q, K, V, dO, L and Delta; this one "
                              f"has no {', '.join(missing)}", kernel.span,
                              help="declare them as docs/language.md §5.9 does"))
        return kernel
    _Trace(kernel, ctx.report).run()
    return kernel


def show(term) -> str:
    """A term as the reader would write it."""
    if not isinstance(term, tuple):
        return str(term)
    kind, *args = term
    if kind == "gemm":
        (a, ta), (b, tb) = args
        return f"{show(a)}{'ᵀ' if ta else ''}·{show(b)}{'ᵀ' if tb else ''}"
    if kind == "sum":
        return f"Σ {show(args[0])}"
    if kind == "acc":
        return " + ".join(show(a) for a in args)
    return f"{kind}({', '.join(show(a) for a in args)})"


class _Trace:
    def __init__(self, kernel: ir.Kernel, report):
        self.kernel, self._report = kernel, report
        self.registers: dict[str, object] = {}
        self.shared: dict[str, object] = {}
        self.coords: dict[str, tuple] = {}  # tensor -> the coordinate of its copies
        self.stores: list[tuple[ir.Copy, object, int]] = []  # (store, term, loop depth)
        self.scores = None  # the term Exp takes, and the capped scores' for SoftcapGrad
        self.capped = {}
        self.reported = False

    def report(self, op, message, help) -> None:
        if not self.reported:  # the first divergence explains the rest
            self._report(Diagnostic(CODE, message, op.span, help=help))
            self.reported = True

    def run(self) -> None:
        self._body(self.kernel.body, 0)
        if not self.reported:
            self._judge()

    def _body(self, ops, depth: int) -> None:
        for op in ops:
            if isinstance(op, ir.Loop):
                for gemm in (g for g in op.body if isinstance(g, ir.Gemm) and g.accumulate):
                    self.registers[gemm.out] = ("carried", gemm.out)
                self._body(op.body, depth + 1)
                for name, term in list(self.registers.items()):
                    if isinstance(term, tuple) and term[:1] == ("acc",) and \
                            term[1] == ("carried", name):
                        self.registers[name] = ("sum", term[2]) if len(term) == 3 else term
            else:
                self._op(op, depth)

    def _read(self, name: str):
        return self.registers.get(name, ("unset", name))

    def _op(self, op, depth: int) -> None:
        if isinstance(op, ir.Copy):
            return self._copy(op, depth)
        if isinstance(op, ir.Gemm):
            product = ("gemm", (self._read(op.a.name), op.a.transposed),
                       (self._read(op.b.name), op.b.transposed))
            before = self.registers.get(op.out, "0")
            self.registers[op.out] = ("acc", before, product) if op.accumulate else product
        elif isinstance(op, (ir.Multiply, ir.Subtract)):
            a = self._read(op.a.name) if isinstance(op.a, ir.Ref) else text(op.a)
            b = self._operand(op.b)
            kind = "mul" if isinstance(op, ir.Multiply) else "sub"
            pair = (a, b)
            if kind == "mul":  # a product is the same whichever side each factor is on
                pair = tuple(sorted(pair, key=repr))
            self.registers[op.out] = (kind,) + pair
        elif isinstance(op, ir.Softcap):
            term = ("softcap", self._read(op.target), text(op.cap))
            self.registers[op.target] = term
            self.capped[op.target] = term
        elif isinstance(op, ir.Mask):
            window = "" if op.window is None else ", ".join(text(w) for w in op.window)
            self.registers[op.target] = ("mask", self._read(op.target),
                                         "causal" if op.causal else "", window)
        elif isinstance(op, ir.Alibi):
            self.registers[op.out] = ("alibi", self._read(op.target), op.slopes)
        elif isinstance(op, ir.Exp):
            self.scores = self._read(op.target)
            self.registers[op.out] = ("exp", self.scores, self._read(op.vector))
        elif isinstance(op, ir.SoftcapGrad):
            self.registers[op.out] = ("softcapgrad", self._read(op.gradient),
                                      self._read(op.scores), text(op.cap))
        elif isinstance(op, (ir.Softmax, ir.Logsumexp)):
            self.report(op, f"a backward plan recomputes the probabilities with Exp from the "
                        f"forward's L; {type(op).__name__} has no place in it",
                        "write `Compute Exp S, L and get P` (docs/language.md §5.9)")
        # Reshape converts a tile's dtype, not its value; Allocate holds nothing

    def _operand(self, b):
        if isinstance(b, ir.Ref):
            tensor = self.kernel.tensor(b.name)
            if tensor is not None and not tensor.shape:
                return b.name  # a scalar argument
            return self._read(b.name)
        return text(b)

    def _copy(self, op: ir.Copy, depth: int) -> None:
        levels = (op.src, op.dst)
        if op.src is ir.Level.GLOBAL:
            self.coords.setdefault(op.name, op.coord)
            if op.coord != self.coords[op.name]:
                self.report(op, f"`{op.name}` is copied from two coordinates", "copy each "
                            "tensor from one coordinate")
            target = self.shared if op.dst is ir.Level.SHARED else self.registers
            target[op.name] = op.name
        elif levels == (ir.Level.SHARED, ir.Level.REGISTER):
            self.registers[op.name] = self.shared.get(op.name, ("unset", op.name))
        elif levels == (ir.Level.REGISTER, ir.Level.SHARED):
            self.shared[op.name] = self._read(op.name)
        elif op.dst is ir.Level.GLOBAL:
            source = self.shared if op.src is ir.Level.SHARED else self.registers
            self.stores.append((op, source.get(op.name, ("unset", op.name)), depth))

    # ---- the verdict ----

    def _expected(self) -> dict:
        scale = next((t.name for t in self.kernel.tensors if not t.shape and
                      t.dtype is ir.DType.FP32), "scale")
        scores = self.scores
        p = ("exp", scores, "L")
        dp = ("sub", ("gemm", ("dO", False), ("V", True)), "Delta")
        ds = ("mul",) + tuple(sorted((p, dp), key=repr))
        capped = _capped(scores)
        if capped is not None:  # through the cap: 1 - (S / cap)^2 of the scores Exp took
            ds = ("softcapgrad", ds, scores, capped[2])
        ds = ("mul",) + tuple(sorted((ds, scale), key=repr))
        return {"dV": ("sum", ("gemm", (p, True), ("dO", False))),
                "dK": ("sum", ("gemm", (ds, True), ("Q", False))),
                "dQ": ("gemm", (ds, False), ("K", False))}

    def _judge(self) -> None:
        if self.scores is None or not _is_scores(self.scores):
            self.report(self._first_store(), "the plan's probabilities are not Exp of the "
                        "scores Q·Kᵀ (scaled once, with any Softcap, Mask and ALiBi) against L",
                        "write `Compute Exp S, L and get P` after the scores' statements")
            return
        kinds = _modifiers(self.scores)
        if "softcap" in kinds and "alibi" in kinds:
            self.report(self._first_store(), "a backward plan with both Softcap and ALiBi: the "
                        "scores SoftcapGrad takes would carry the bias, not the capped scores",
                        "drop the ALiBi or the Softcap")
            return
        expected, seen = self._expected(), {}
        for store, term, depth in self.stores:
            name = store.name
            if name not in expected:
                continue
            seen[name] = seen.get(name, 0) + 1
            want = expected[name]
            if name == "dQ" and not store.add and depth == 0:
                want = ("sum", want)  # a block that owns its query tile sums dQ itself
            if name == "dQ" and not (store.add and depth > 0) and not (
                    not store.add and depth == 0):
                self.report(store, "dQ is summed over the K/V blocks: added in the loop, once "
                            "an iteration, or summed in registers and stored once after it",
                            "store it `with add` inside the loop, or accumulate it and store "
                            "it after `end`")
            elif name != "dQ" and depth > 0:
                self.report(store, f"{name} is summed over the loop: stored once, after it",
                            f"move `Copy {name} ... from register to global` after `end`")
            elif term != want:
                where = _difference(term, want)
                self.report(store, f"the plan stores {name} = {show(term)}, not the gradient "
                            f"{show(want)}" + (f": {where}" if where else ""),
                            "compare the statements with examples/mha_bwd_fp16_d64_sm80.tl "
                            "(docs/language.md §5.9)")
        for name, count in seen.items():
            if count > 1:
                store = [s for s, _, _ in self.stores if s.name == name][1]
                self.report(store, f"{name} is stored {count} times", f"keep one store of {name}")
        self._coordinates()

    def _coordinates(self) -> None:
        query = [n for n in ("Q", "dO", "L", "Delta") if n in self.coords]
        keys = [n for n in ("K", "V") if n in self.coords]
        stores = {s.name: s for s, _, _ in self.stores}
        for group, extra in ((query, ["dQ"]), (keys, ["dK", "dV"])):
            coords = [(n, self.coords[n]) for n in group] + [
                (n, stores[n].coord) for n in extra if n in stores]
            first = coords[0] if coords else None
            for name, coord in coords[1:]:
                if coord != first[1]:
                    op = stores.get(name) or next(
                        o for o in ir.walk(self.kernel.body) if isinstance(o, ir.Copy)
                        and o.name == name and o.src is ir.Level.GLOBAL)
                    self.report(op, f"`{name}` is copied at another coordinate than "
                                f"`{first[0]}`: the gradient pairs rows of different tiles",
                                f"give `{name}` the coordinate of `{first[0]}`")
                    return

    def _first_store(self):
        return self.stores[0][0] if self.stores else self.kernel.body[-1]


def _is_scores(term) -> bool:
    """Q·Kᵀ with the scale once and each of Softcap, Mask, ALiBi at most once."""
    seen = []
    while isinstance(term, tuple) and term[0] in ("mul", "softcap", "mask", "alibi"):
        kind = term[0]
        if kind == "mul":
            factors = [t for t in term[1:] if isinstance(t, tuple)]
            scalars = [t for t in term[1:] if isinstance(t, str)]
            if len(factors) != 1 or len(scalars) != 1:
                return False
            term = factors[0]
        else:
            term = term[1]
        if kind in seen:
            return False
        seen.append(kind)
    return "mul" in seen and term == ("gemm", ("Q", False), ("K", True))


def _modifiers(term) -> list[str]:
    kinds = []
    while isinstance(term, tuple) and term[0] in ("mul", "softcap", "mask", "alibi"):
        kinds.append(term[0])
        term = next(t for t in term[1:] if isinstance(t, tuple))
    return kinds


def _capped(scores):
    """The softcapped scores within a score term, or None."""
    while isinstance(scores, tuple) and scores[0] in ("mul", "mask", "alibi", "softcap"):
        if scores[0] == "softcap":
            return scores
        scores = next(t for t in scores[1:] if isinstance(t, tuple))
    return None


def _difference(got, want) -> str:
    """The smallest part in which two terms differ, as text."""
    if isinstance(got, tuple) and isinstance(want, tuple) and got[0] == want[0] and \
            len(got) == len(want):
        parts = [(g, w) for g, w in zip(got[1:], want[1:]) if g != w]
        if got[0] == "gemm":  # operands are (term, transposed): the terms, where read alike
            parts = [(g[0], w[0]) for g, w in parts if g[1] == w[1]] if all(
                g[1] == w[1] for g, w in parts) else []
        if len(parts) == 1:
            inner = _difference(*parts[0])
            if inner:
                return inner
    if got == want:
        return ""
    return f"{show(got)} where the gradient has {show(want)}"

