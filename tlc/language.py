"""The vocabulary of LLM-TL as data: Compute operations and the `with` clauses each statement
takes. The resolver checks plans against it, and docs/language.md and the LLM prompts describe
it; one table, so they cannot drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tlc.arch import MMA_SHAPES as MMA_SHAPE_TABLE

# The form of each line, keyed by its first word: syntax errors quote it, prompts list it.
FORMS = {
    "kernel": "kernel NAME [for ARCH]",
    "sketch": "sketch NAME [for ARCH]",
    "input": "input NAME (dims) DTYPE [with pages (table, PAGE)]",
    "output": "output NAME (dims) DTYPE",
    "param": "param NAME = integer expression",
    "grid": "grid (extents) as (indices)",
    "Allocate": "Allocate NAME in LEVEL (dims) [with clauses]",
    "Copy": "Copy NAME [(tile)] [in coordinate [dim = index, ...]] from LEVEL to LEVEL "
            "[with clauses]",
    "Compute": "Compute OP operands [and get NAME | and get new NAME | and accumulate NAME] "
               "[with clauses]",
    "Reshape": "Reshape NAME from (LAYOUT, dims) to (LAYOUT, dims) [with clauses]",
    "for": "for i = start: stop [with splits N]",
    "end": "end",
}

# What a clause's value must be:
#   flag   no value (`causal`)           expr   any expression (`vector 8`, `cap 30.0`)
#   name   a bare name (`mma m16n8k16`)  dtype  a data type (`dtype fp32`)
#   pair   two expressions (`window (256, 0)`)
#   layout one expression or a tuple (`warps 4`, `warps (4, 1)`)
CLAUSE_KINDS = ("flag", "expr", "name", "dtype", "pair", "layout")


@dataclass(frozen=True)
class OpSpec:
    name: str
    operands: int
    result: bool  # True: `and get`/`and accumulate` is required; False: works in place
    clauses: dict[str, str] = field(default_factory=dict)
    required_in_code: tuple[str, ...] = ()  # clauses TL code must give (a sketch may omit)
    one_of: tuple[str, ...] = ()  # at least one of these clauses, in sketches too
    summary: str = ""
    example: str = ""  # a correct use, quoted by diagnostics


OPS: dict[str, OpSpec] = {spec.name: spec for spec in (
    OpSpec("GEMM", 2, True, {"warps": "layout", "mma": "name"}, ("warps", "mma"),
           summary="matrix product on tensor cores; `K^T` marks a transposed operand",
           example="Compute GEMM Q, K^T and get S"),
    OpSpec("Multiply", 2, True,
           summary="elementwise product, broadcasting a scalar or a per-row vector",
           example="Compute Multiply S, scale and get new S"),
    OpSpec("Softmax", 1, False,
           summary="row softmax in place; online softmax inside a loop over key blocks",
           example="Compute Softmax S"),
    OpSpec("Logsumexp", 1, True,
           summary="each row's log-sum-exp of the scores the Softmax saw (natural log; "
                   "-inf for a row that sees no key), into a per-row register vector",
           example="Compute Logsumexp S and get L"),
    OpSpec("Mask", 1, False, {"causal": "flag", "window": "pair"}, one_of=("causal", "window"),
           summary="hide scores: causal (bottom-right aligned) and/or a sliding window",
           example="Compute Mask S with causal"),
    OpSpec("Softcap", 1, False, {"cap": "expr"}, ("cap",), one_of=("cap",),
           summary="cap * tanh(S / cap), in place",
           example="Compute Softcap S with cap 30.0"),
    OpSpec("ALiBi", 2, True,
           summary="add -slope[h] * |i - j| to the scores, slopes an input of shape (H)",
           example="Compute ALiBi S, slopes and get new S"),
    OpSpec("Exp", 2, True,
           summary="exp(S - L[row]) for L a per-row vector: the probabilities again from the "
                   "forward's log-sum-exp (0 in a row whose L is -inf, and for a hidden score)",
           example="Compute Exp S, L and get P"),
    OpSpec("Subtract", 2, True,
           summary="elementwise difference, taking away a scalar, a per-row vector or a tile "
                   "of the same shape",
           example="Compute Subtract dP, Delta and get new dP"),
    OpSpec("SoftcapGrad", 2, True, {"cap": "expr"}, ("cap",), one_of=("cap",),
           summary="dS * (1 - (S / cap)^2): a gradient through the softcap, S the capped "
                   "scores (0 where a score is hidden)",
           example="Compute SoftcapGrad dS, S and get new dS with cap 30.0"),
    OpSpec("Rowsum", 1, True,
           summary="each row's sum, into a per-row register vector",
           example="Compute Rowsum T and get Delta"),
)}

# A correct use of each clause, quoted by diagnostics.
CLAUSE_EXAMPLES = {
    "warps": "warps (4, 1)", "mma": "mma m16n8k16", "causal": "causal",
    "window": "window (256, 0)", "cap": "cap 30.0", "dtype": "dtype fp32",
    "offset": "offset batch_offset", "vector": "vector 8", "stages": "stages 2",
    "splits": "splits SPLITS", "add": "add", "rows": "rows lengths[b]", "start": "start q_start[b]", "pages": "pages (table, PAGE)",
}

STATEMENT_CLAUSES: dict[str, dict[str, str]] = {
    "Allocate": {"dtype": "dtype", "offset": "expr"},
    "Copy": {"vector": "expr", "stages": "expr", "rows": "expr", "start": "expr", "add": "flag"},
    "input": {"pages": "pair"},
    "Reshape": {"dtype": "dtype"},
    "for": {"splits": "expr"},
}

# Layout tags a Reshape names as the first entry of each shape: which MMA fragment the data is
# laid out as (operand A, operand B, or the accumulator C).
FRAGMENT_LAYOUTS = ("MMA_A", "MMA_B", "MMA_C")

# Tensor-core MMA shapes a GEMM may name; which one an architecture and dtype allow is the
# arch table's business (tlc/arch.py).
MMA_SHAPES = tuple(MMA_SHAPE_TABLE)
