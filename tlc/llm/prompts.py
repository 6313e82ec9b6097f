"""The prompts: versioned templates (prompts/v1/*.md) filled from the tables the compiler
itself uses, so a prompt cannot state a fact about the language or a GPU that the checker
does not hold."""
from __future__ import annotations

from importlib import resources

from tlc import ir
from tlc.arch import ARCHS, Arch
from tlc.language import CLAUSE_EXAMPLES, FORMS, FRAGMENT_LAYOUTS, OPS, STATEMENT_CLAUSES

VERSION = "v1"

# What `tlc check --sketch` holds a sketch to (passes/resolve.py, with ctx.sketch set).
SKETCH_CHECKS = (
    "A sketch (first line `sketch NAME`) leaves parameters open: tile sizes, warps, MMA "
    "shapes, the header. tlc checks it for the syntax, the words (levels, dtypes, operations, "
    "clauses), each Compute's operands and result, and the buffers it names: one that no line "
    "allocates, declares or computes but that is spelled like one that is (`Kx` where `K` is "
    "allocated) is an error. Other names stay open, as do names in expressions (BM, BN, L, "
    "i). `Allocate Q in global (L, D)` stands for a global tensor in a sketch; TL code "
    "declares it in the header as `input`/`output` instead. Shapes, levels, "
    "`^T`, the online softmax, the target's limits are checked in TL code.")


def template(name: str) -> str:
    return resources.files("tlc.llm").joinpath(f"prompts/{VERSION}/{name}.md").read_text(
        encoding="utf-8")


def language_card() -> str:
    """The language in a page: line forms, words, operations, clauses, semantics."""
    lines = ["One declaration or statement per line; `#` starts a comment. Action words are "
             "capitalized (Allocate, Copy, Compute, Reshape); structure words are lowercase "
             "(kernel, sketch, input, output, param, grid, for, end). Header lines come first.",
             "", "Line forms:"]
    lines += [f"  {form}" for form in FORMS.values()]
    lines += ["", f"Memory levels: {', '.join(level.value for level in ir.Level)}.",
              f"Dtypes: {', '.join(dtype.value for dtype in ir.DType)}.",
              f"Functions in expressions: {', '.join(ir.FUNCTIONS)}; `/` on integers truncates.",
              f"Reshape layouts: {', '.join(FRAGMENT_LAYOUTS)} (A operand, B operand, "
              "accumulator).", "", "Compute operations:"]
    for spec in OPS.values():
        clauses = ", ".join(f"`with {CLAUSE_EXAMPLES[key]}`" for key in spec.clauses)
        result = ("needs `and get X` or `and accumulate X`" if spec.name == "GEMM" else
                  "needs `and get X` (`and get new X` to overwrite an operand)") \
            if spec.result else "works in place"
        lines.append(f"  {spec.name}: {spec.summary}; {spec.operands} operand(s); {result}"
                     + (f"; clauses {clauses}" if clauses else "") + f". E.g. `{spec.example}`")
    lines += ["", "Clauses of other statements:"]
    for statement, clauses in STATEMENT_CLAUSES.items():
        lines.append(f"  {statement}: " + ", ".join(f"`with {CLAUSE_EXAMPLES[k]}`"
                                                    for k in clauses))
    lines += ["", "Meaning:",
              "  A name may live at several levels: `Allocate Q in shared (BM, D)` and "
              "`Allocate Q in register (BM, D)` are two buffers of Q; `Copy Q from shared to "
              "register` moves it. Global tensors are the header's inputs and outputs.",
              "  `Copy Q (BM, D) in coordinate [B = b, H = h, Nq = m] from global to shared` "
              "copies tile number m along Nq (tile extents cover the tensor's last dims).",
              "  `Compute GEMM A, B^T and get S` is S = A·Bᵀ; accumulators are fp32.",
              "  Softmax inside the loop over key blocks, followed by a GEMM that accumulates "
              "into O, is online softmax (running max and sum, O rescaled, normalised at the "
              "end). Between the two GEMMs, `Reshape S from (MMA_C, BM, BN) to (MMA_A, BM, BN) "
              "with dtype fp16` turns the fp32 scores into the next GEMM's A operand.",
              "  Masks are aligned bottom-right, like FlashAttention's: query row i lines up "
              "with key column i + Nk - Nq. `with causal` shows key j to query i when j <= i + "
              "Nk - Nq. `with window (left, right)` shows key j when i + Nk - Nq - left <= j <= "
              "i + Nk - Nq + right, both ends inclusive. Several clauses on one Mask, or "
              "several Masks, combine: a key is visible only if every one of them shows it "
              "(`Compute Mask S with causal, window (256, 0)` is a causal sliding window).",
              "  `Compute ALiBi S, slopes` adds -slopes[h] * |i + Nk - Nq - j| to the scores: "
              "the distance is measured from the same bottom-right diagonal; `slopes` is an "
              "input of shape (H) fp32.",
              "  The score statements (Multiply, Softcap, ALiBi, Mask) stand between the first "
              "GEMM and the Softmax, in the order they apply: Multiply by the scale first (a "
              "softcap caps the scaled scores), Softcap before any Mask; a score statement "
              "after the Softmax, or a Softcap after a Mask, is refused (score-order).",
              "  Grouped-query attention: declare K and V with their own head dimension, "
              "`input K (B, Hkv, Nk, D) fp16`, a param `GROUP` (query heads per K/V head), and "
              "select the K/V head with `Hkv = h / GROUP` in their Copy coordinates; a call "
              "must then have H = Hkv * GROUP.",
              "  `with warps (a, b)` splits a GEMM's tile over a warps along its rows (M) and b "
              "along its columns (N): the block has a * b warps, 32 * a * b threads, and every "
              "GEMM of a plan uses the same layout. M must be a multiple of a * the MMA's m, N "
              "of b * its n.",
              "  The grid has at most three extents, one index name each: `grid (cdiv(Nq, BM), "
              "H, B) as (m, h, b)`. Use cdiv, not `/`, for a runtime size: `Nq / BM` rounds "
              "down and leaves the last rows uncomputed (refused as grid-coverage).",
              "  The key loop's bounds are the author's, and tlc checks them against the masks "
              "rather than deriving them: a loop that skips a key some query can see is "
              "refused (mask-coverage); one that visits blocks every query is masked from gets "
              "a warning (masked-blocks). A causal loop ends at "
              "`cdiv(min(Nk, (m + 1) * BM + Nk - Nq), BN)`.",
              "  Header forms: a tensor is `input NAME (dims) DTYPE`, a scalar argument "
              "`input NAME DTYPE` (e.g. `input scale fp32`), a compile-time integer `param NAME "
              "= VALUE`. Names in dims that are not params are runtime sizes (B, H, Nq, Nk).",
              "  A shared -> register Copy of a GEMM operand inside the GEMM's loop is streamed "
              "one k-step at a time; outside the loop the operand is held whole in registers.",
              "", "Sketches:", "  " + SKETCH_CHECKS]
    return "\n".join(lines)


def lowered_mma_shapes(arch: str) -> tuple[str, ...]:
    """The MMA shapes tlc generates code for on a target: the backend's data, so the card
    never offers a shape the backend refuses."""
    from tlc.backends import target_for

    target = target_for(arch)
    return tuple(target.gemm.shapes) if target is not None and target.lowers else ()


def hardware_card(arch: Arch) -> str:
    """The target's limits and features, from the arch table and the backend's data."""
    from tlc.backends import target_for
    from tlc.backends.resources import OVERHEAD_REGISTERS

    lowered = lowered_mma_shapes(arch.name)
    padding = target_for(arch.name).smem_padding
    lines = [f"Shared memory per block: {arch.smem_per_block} bytes: all shared buffers times "
             f"their copy stages, each row padded by {padding} elements (so a "
             f"(BN, D) fp16 tile takes BN * (D + {padding}) * 2 bytes).",
             f"Registers per thread: at most {arch.regs_per_thread}, estimated by tlc from what "
             f"is live at each statement: accumulator tiles spread over the block's threads, "
             f"operands held in registers, the online softmax's row statistics, tiles on their "
             f"way to shared memory where there is no cp.async, and a fixed "
             f"{OVERHEAD_REGISTERS} for addresses, indices and loop counters. Threads per "
             f"block: at most {arch.max_threads_per_block} (32 per warp).",
             "Tensor-core MMA shapes tlc generates code for, by input dtype:"]
    for dtype in arch.mma_dtypes:
        shapes = ", ".join(shape.name for shape in arch.mma_shapes_for(dtype)
                           if shape.name in lowered)
        if shapes:
            lines.append(f"  {dtype.value}: {shapes}")
    if not lowered:
        lines.append(f"  none yet: tlc checks plans for {arch.name} but does not generate code "
                     f"for it ({target_for(arch.name).note})")
    if target_for(arch.name).copies.swizzles:
        lines.append(f"Warpgroup MMA ({arch.name}): `with warps (W, 1)` with W a multiple of 4, "
                     "each warpgroup of 4 computing 64 rows (BM = 16 * W); the instruction's N "
                     "is the GEMM's N or a part of it. GEMM operands are read from shared "
                     "memory (no Copy into registers), P from the Reshape's registers. tlc adds "
                     "a producer warpgroup that copies every tile from global memory by TMA: "
                     "those tiles take no padding (BN * D * 2 bytes a stage, fp16).")
        lines.append(f"  Registers a thread of the W warps may use: {arch.register_limit(256)} "
                     f"with W = 8, {arch.register_limit(384)} with W = 12.")
    lines.append("Asynchronous copies (cp.async, `with stages N` above 1): " +
                 ("yes" if arch.has_cp_async else "no: give copies no stages above 1"))
    return "\n".join(lines)


# Shipped plans a code prompt may show, closest to the usual task first.
def example_for(arch: str, sketch: bool) -> str:
    """The shipped example plan closest to the target, one that passes `tlc check` for it,
    with its `kernel … for` line naming the target (the D = 128 plan does not fit sm_86's
    shared memory; the D = 64 one does)."""
    import re

    import tlc
    from tlc import examples

    if sketch:
        return examples.read("paper_sketch")
    from tlc.backends import target_for

    texts = [examples.read(name) for name in target_for(arch).examples]
    text = next((t for t in texts if tlc.check(t, arch=arch).ok), texts[0])
    return re.sub(r"^(kernel \w+ for )\w+", rf"\g<1>{arch}", text, count=1, flags=re.M)


def system_prompt(arch: str) -> str:
    target = ARCHS[arch]
    return template("system").format(language=language_card(), arch=arch,
                                     family=target.family, hardware=hardware_card(target))


def sketch_prompt(task: str, arch: str, rounds: int = 4) -> str:
    return template("sketch").format(task=task, example=example_for(arch, sketch=True).strip(),
                                     rounds=rounds)


def code_prompt(sketch: str, arch: str, rounds: int = 4) -> str:
    return template("code").format(sketch=sketch.strip(), arch=arch, rounds=rounds,
                                   example=example_for(arch, sketch=False).strip())


def repair_prompt(plan: str, diagnostics_json: str, diagnostics_text: str) -> str:
    return template("repair").format(plan=plan.strip(), diagnostics_json=diagnostics_json,
                                     diagnostics_text=diagnostics_text)


def reject_prompt(reason: str) -> str:
    return template("reject").format(reason=reason)


def wrong_prompt(plan: str, device: str, problems: str) -> str:
    return template("wrong").format(plan=plan.strip(), device=device, problems=problems)


def faster_prompt(device: str, tflops: float, shape: dict, best: float) -> str:
    sizes = ", ".join(f"{k}={v}" for k, v in shape.items())
    return template("faster").format(device=device, tflops=tflops, shape=sizes, best=best)
