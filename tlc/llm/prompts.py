"""The prompts: versioned templates (prompts/v1/*.md) filled from the tables the compiler
itself uses, so a prompt cannot state a fact about the language or a GPU that the checker
does not hold."""
from __future__ import annotations

from importlib import resources

from tlc import ir
from tlc.arch import ARCHS, Arch
from tlc.language import CLAUSE_EXAMPLES, FORMS, FRAGMENT_LAYOUTS, OPS, STATEMENT_CLAUSES

VERSION = "v1"


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
              "  Causal masks are aligned bottom-right: query i sees key j when j <= i + Nk - "
              "Nq. With GQA, query head h reads K/V head h / GROUP.",
              "  A shared -> register Copy of a GEMM operand inside the GEMM's loop is streamed "
              "one k-step at a time; outside the loop the operand is held whole in registers."]
    return "\n".join(lines)


def hardware_card(arch: Arch) -> str:
    """The target's limits and features, from the arch table."""
    lines = [f"Shared memory per block: {arch.smem_per_block} bytes (all shared buffers times "
             "their copy stages).",
             f"Registers per thread: at most {arch.regs_per_thread} (estimated by tlc); threads "
             f"per block: at most {arch.max_threads_per_block} (32 per warp).",
             "Tensor-core MMA shapes by input dtype:"]
    for dtype in arch.mma_dtypes:
        shapes = ", ".join(shape.name for shape in arch.mma_shapes_for(dtype))
        lines.append(f"  {dtype.value}: {shapes}")
    lines.append("Asynchronous copies (cp.async, `with stages N` above 1): " +
                 ("yes" if arch.has_cp_async else "no: give copies no stages above 1"))
    return "\n".join(lines)


def example_for(arch: str, sketch: bool) -> str:
    """The shipped example plan closest to the target."""
    from tlc import examples

    if sketch:
        return examples.read("paper_sketch")
    from tlc.backends import target_for

    return examples.read(target_for(arch).example)


def system_prompt(arch: str) -> str:
    target = ARCHS[arch]
    return template("system").format(language=language_card(), arch=arch,
                                     family=target.family, hardware=hardware_card(target))


def sketch_prompt(task: str, arch: str) -> str:
    return template("sketch").format(task=task, example=example_for(arch, sketch=True).strip())


def code_prompt(sketch: str, arch: str) -> str:
    return template("code").format(sketch=sketch.strip(), arch=arch,
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
