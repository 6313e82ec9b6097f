"""The resolved plan: levels, dtypes and operations as enums and typed nodes.

The IR is what passes and backends read. Every name in it has been checked against a
declaration (in TL code; a sketch may leave names open), every expression's names carry their
kind, and every buffer has a shape and, where one can be known, a dtype. Nodes are frozen;
passes return new modules rather than editing old ones.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Union

from tlc.source import NO_SPAN, Span


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)


class Level(str, enum.Enum):
    GLOBAL = "global"
    SHARED = "shared"
    REGISTER = "register"


LEVEL_ALIASES = {"gmem": "global", "hbm": "global", "dram": "global", "smem": "shared",
                 "reg": "register", "regs": "register", "registers": "register",
                 "rmem": "register", "local": "register", "fragment": "register"}


class DType(str, enum.Enum):
    FP16 = "fp16"
    BF16 = "bf16"
    FP32 = "fp32"
    TF32 = "tf32"
    FP8E4M3 = "fp8e4m3"
    FP8E5M2 = "fp8e5m2"
    INT32 = "int32"  # index tables (a paged cache's block table, sequence lengths): inputs

    @property
    def bytes(self) -> int:
        return {"fp16": 2, "bf16": 2, "fp32": 4, "tf32": 4, "int32": 4}.get(self.value, 1)


DTYPE_ALIASES = {"float16": "fp16", "half": "fp16", "f16": "fp16", "bfloat16": "bf16",
                 "float32": "fp32", "float": "fp32", "f32": "fp32", "e4m3": "fp8e4m3",
                 "e5m2": "fp8e5m2", "float8_e4m3fn": "fp8e4m3", "float8_e5m2": "fp8e5m2"}


class SymKind(str, enum.Enum):
    PARAM = "param"      # compile-time integer, `param BM = 128`
    SIZE = "size"        # runtime problem size, a dimension of an input or output
    BLOCK = "block"      # a block index of the grid
    LOOP = "loop"        # a loop variable
    SCALAR = "scalar"    # a scalar input, `input scale fp32`
    OPEN = "open"        # a name a sketch leaves undeclared


# ---- expressions ----

@dataclass(frozen=True)
class Const:
    value: Union[int, float]
    span: Span = _span()


@dataclass(frozen=True)
class Sym:
    name: str
    kind: SymKind
    span: Span = _span()


@dataclass(frozen=True)
class BinOp:
    op: str
    left: "Expr"
    right: "Expr"
    span: Span = _span()


@dataclass(frozen=True)
class Neg:
    operand: "Expr"
    span: Span = _span()


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple["Expr", ...]
    span: Span = _span()


@dataclass(frozen=True)
class Element:
    """`lengths[b]`: one element of an int32 input, a value known only at run time (an
    environment that holds the input's array evaluates it)."""

    tensor: str
    args: tuple["Expr", ...]
    span: Span = _span()


Expr = Union[Const, Sym, BinOp, Neg, Call, Element]

# Functions an expression may call, with their arity. Integer ones take part in params and
# indices; the float ones are for scales (`rsqrt(D)`).
FUNCTIONS = {"cdiv": 2, "min": 2, "max": 2, "sqrt": 1, "rsqrt": 1, "log2": 1, "exp2": 1}


class NotConstant(Exception):
    """An expression that names something only known at run time."""

    def __init__(self, sym: Sym):
        super().__init__(sym.name)
        self.sym = sym


def evaluate(expr: Expr, env: dict[str, int]) -> Union[int, float]:
    """The value of an expression whose symbols are all in env (param values).

    Integer `/` truncates toward zero as in C; raises NotConstant for a symbol outside env and
    ZeroDivisionError, ValueError or OverflowError for arithmetic that has no value.
    """
    if isinstance(expr, Const):
        return expr.value
    if isinstance(expr, Sym):
        if expr.name in env:
            return env[expr.name]
        raise NotConstant(expr)
    if isinstance(expr, Neg):
        return -evaluate(expr.operand, env)
    if isinstance(expr, Call):
        args = [evaluate(arg, env) for arg in expr.args]
        return call(expr.func, args)
    if isinstance(expr, Element):
        table = env.get(expr.tensor)
        if table is None or isinstance(table, (int, float)):
            raise NotConstant(Sym(expr.tensor, SymKind.OPEN, expr.span))
        index = tuple(evaluate(arg, env) for arg in expr.args)
        if any(not 0 <= i < n for i, n in zip(index, table.shape)):
            raise ValueError(f"{expr.tensor}{list(index)} is outside its shape {table.shape}")
        return int(table[index])
    left, right = evaluate(expr.left, env), evaluate(expr.right, env)
    if expr.op == "+":
        return left + right
    if expr.op == "-":
        return left - right
    if expr.op == "*":
        return left * right
    if isinstance(left, int) and isinstance(right, int):
        if right == 0:
            raise ZeroDivisionError(expr.op)
        quotient = abs(left) // abs(right) * (1 if (left >= 0) == (right >= 0) else -1)
        return quotient if expr.op == "/" else left - right * quotient
    return left / right if expr.op == "/" else math.fmod(left, right)


def children(expr: Expr) -> tuple:
    """The expressions an expression is made of, in the order written."""
    if isinstance(expr, BinOp):
        return (expr.left, expr.right)
    if isinstance(expr, Neg):
        return (expr.operand,)
    if isinstance(expr, (Call, Element)):
        return tuple(expr.args)
    return ()


def symbols(expr: Expr) -> list[Sym]:
    """The symbols an expression names, in the order written (repeats kept)."""
    if isinstance(expr, Sym):
        return [expr]
    return [s for child in children(expr) for s in symbols(child)]


def call(func: str, args: list) -> Union[int, float]:
    if func == "cdiv":
        if args[1] == 0:
            raise ZeroDivisionError("cdiv")
        return -(-args[0] // args[1])
    if func == "min":
        return min(args)
    if func == "max":
        return max(args)
    if func == "sqrt":
        return math.sqrt(args[0])
    if func == "rsqrt":
        return 1.0 / math.sqrt(args[0])
    if func == "log2":
        return math.log2(args[0])
    return 2.0 ** args[0]


# ---- declarations ----

@dataclass(frozen=True)
class Tensor:
    """A kernel argument in global memory (`input`/`output`); shape () is a scalar."""

    name: str
    role: str
    shape: tuple[Expr, ...]
    dtype: DType | None
    span: Span = _span()
    # `with pages (table, PAGE)`: the rows (the second-to-last dimension) are stored in pages
    # of PAGE rows, page table[i, r / PAGE] holding rows r of entry i of the first dimension.
    pages: tuple[str, "Expr"] | None = None


@dataclass(frozen=True)
class Buffer:
    """A tile allocated in shared memory or registers (or, in a sketch, a global view)."""

    name: str
    level: Level
    shape: tuple[Expr, ...] | None
    dtype: DType | None
    offset: Expr | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Param:
    name: str
    value: int
    span: Span = _span()
    value_span: Span = _span()  # where the value is written, for fixes that change it


@dataclass(frozen=True)
class Grid:
    extents: tuple[Expr, ...]
    indices: tuple[str, ...]
    span: Span = _span()


# ---- operations ----

@dataclass(frozen=True)
class Ref:
    """A tensor or buffer named as an operand; transposed for `K^T`."""

    name: str
    transposed: bool = False
    span: Span = _span()


@dataclass(frozen=True)
class Allocate:
    buffer: Buffer
    span: Span = _span()


@dataclass(frozen=True)
class Copy:
    name: str
    src: Level
    dst: Level
    tile: tuple[Expr, ...] | None
    coord: tuple[tuple[str, Expr], ...]
    vector: Expr | None = None
    stages: Expr | None = None
    span: Span = _span()
    rows: Expr | None = None  # `with rows N`: the tensor's rows past N are not there (read 0)
    start: Expr | None = None  # `with start S`: the rows the copy sees begin at row S
    add: bool = False  # `with add`: a store adds into the tensor (which starts at zero)


@dataclass(frozen=True)
class Gemm:
    a: Ref
    b: Ref
    out: str
    accumulate: bool
    warps: tuple[Expr, ...] | None = None
    mma: str | None = None
    span: Span = _span()


@dataclass(frozen=True)
class _Elementwise:
    """A Compute of two operands, element by element: `a` a tile, `b` a scalar, a per-row
    vector or a tile of a's shape; in_place when the result is written over `a` (`new`)."""
    a: Union[Ref, Expr]
    b: Union[Ref, Expr]
    out: str
    in_place: bool
    span: Span = _span()


@dataclass(frozen=True)
class Multiply(_Elementwise):
    """out = a * b"""


@dataclass(frozen=True)
class Softmax:
    target: str
    span: Span = _span()


@dataclass(frozen=True)
class Logsumexp:
    """out[row] = log(sum over the keys of exp(score)) of `target`'s softmax, after it."""
    target: str
    out: str
    span: Span = _span()


@dataclass(frozen=True)
class Mask:
    target: str
    causal: bool
    window: tuple[Expr, Expr] | None
    span: Span = _span()


@dataclass(frozen=True)
class Softcap:
    target: str
    cap: Expr | None
    span: Span = _span()


@dataclass(frozen=True)
class Alibi:
    target: str
    slopes: str
    out: str
    span: Span = _span()


@dataclass(frozen=True)
class Exp:
    """out = exp(target - vector[row]); 0 where vector[row] is -inf or the score is hidden."""
    target: str
    vector: str
    out: str
    span: Span = _span()


@dataclass(frozen=True)
class Subtract(_Elementwise):
    """out = a - b"""


@dataclass(frozen=True)
class SoftcapGrad:
    """out = gradient * (1 - (scores / cap)^2), scores the capped ones: d(cap tanh(s / cap))
    / ds; 0 where a score is hidden."""
    gradient: str
    scores: str
    cap: Expr | None
    out: str
    span: Span = _span()


@dataclass(frozen=True)
class Rowsum:
    """out[row] = the sum of target's row."""
    target: str
    out: str
    span: Span = _span()


@dataclass(frozen=True)
class Reshape:
    name: str
    src: tuple[Expr, ...]
    dst: tuple[Expr, ...]
    dtype: DType | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Loop:
    var: str
    start: Expr
    stop: Expr
    body: tuple["Op", ...]
    span: Span = _span()
    # `with splits N`: the iterations are cut into N contiguous parts, each run by its own
    # block; their partial results are merged by log-sum-exp in a second kernel.
    splits: Expr | None = None


Op = Union[Allocate, Copy, Gemm, Multiply, Softmax, Logsumexp, Mask, Softcap, Alibi, Exp,
           Subtract, SoftcapGrad, Rowsum, Reshape, Loop]


@dataclass(frozen=True)
class Kernel:
    name: str | None
    target: str | None
    tensors: tuple[Tensor, ...]
    params: tuple[Param, ...]
    grid: Grid | None
    body: tuple[Op, ...]
    sketch: bool
    span: Span = _span()

    def tensor(self, name: str) -> Tensor | None:
        return next((t for t in self.tensors if t.name == name), None)

    @property
    def size_names(self) -> tuple[str, ...]:
        """The runtime sizes (dimensions of inputs and outputs, then int32 scalar inputs), each
        once, in plan order."""
        dims = [d.name for t in self.tensors for d in t.shape
                if isinstance(d, Sym) and d.kind is SymKind.SIZE]
        counts = [t.name for t in self.tensors if not t.shape and t.dtype is DType.INT32]
        return tuple(dict.fromkeys(dims + counts))

    @property
    def buffers(self) -> tuple[Buffer, ...]:
        return tuple(op.buffer for op in walk(self.body) if isinstance(op, Allocate))


def walk(ops: tuple[Op, ...]):
    """Every operation in program order, a loop before its body."""
    for op in ops:
        yield op
        if isinstance(op, Loop):
            yield from walk(op.body)


def is_backward(kernel: Kernel) -> bool:
    """Whether a plan is a backward pass: it takes an output gradient `dO` (tlc/backward.py
    holds the rest of the convention)."""
    tensor = kernel.tensor("dO")
    return tensor is not None and tensor.role == "input"
