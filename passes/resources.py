"""resources: the plan's shared memory, registers and threads against the target's limits.

Figures come from the target's resource model (ctx.resource_model: backends/resources.py,
handed in by the driver, so this pass imports no backend) and are kept in ctx.facts for
`tlc check --report`.
Every rejection states the figure, the limit and the change that brings the plan under it,
found by asking the same model what the change would cost (params halved in turn, an operand
streamed instead of held), never a rule of thumb; the first change carries its edit.
"""
from __future__ import annotations

from tlc import ir
from tlc.arch import ARCHS, Arch
from tlc.diagnostics import Diagnostic
from tlc.fixes import Edit
from tlc.passes.facts import Facts, column_chunks
from tlc.passes.tiling import mma_fits


def resources(kernel: ir.Kernel, ctx) -> ir.Kernel:
    """Record the resource figures; report those over the target's limits."""
    facts = Facts(kernel)
    online = ctx.facts.get("online_softmax", ())
    arch = ARCHS.get(ctx.arch or kernel.target or "")
    model = ctx.resource_model(ctx.arch or kernel.target)
    ctx.facts["shared_memory"] = model.shared_memory(facts)
    ctx.facts["registers"] = model.registers(facts, online)
    ctx.facts["threads"] = facts.threads
    ctx.facts["column_chunks"] = column_chunks(facts)
    if arch is None:
        return kernel
    ctx.facts["arch"] = arch.name
    _threads(facts, arch, ctx.report)
    _shared(facts, arch, model, ctx.report)
    _registers(facts, arch, online, model, ctx)
    return kernel


def register_limit(arch: Arch, threads: int, shared: int | None = None,
                   registers: int | None = None) -> int:
    """Registers a thread may use: the per-thread maximum, and the block's share of the file
    (less a producer warpgroup's, where the target adds one; half the file where the block's
    `shared` bytes and estimated `registers` let the lowering ask for two blocks an SM,
    Arch.resident_blocks)."""
    return arch.register_limit(threads, arch.resident_blocks(threads, shared, registers))


def _threads(facts: Facts, arch: Arch, report) -> None:
    threads = facts.threads
    if threads is not None and threads > arch.max_threads_per_block:
        report(Diagnostic(
            "thread-budget", f"the warp layout {facts.warps} makes {threads} threads; "
            f"{arch.name} allows {arch.max_threads_per_block} per block", facts.gemms[0].span,
            help=f"use at most {arch.max_threads_per_block // 32} warps in `with warps (…)`"))


def _shared(facts: Facts, arch: Arch, model, report) -> None:
    use = model.shared_memory(facts)
    limit = arch.smem_per_block
    if use is None or use.total <= limit:
        return
    parts = " + ".join(f"{name} {size} B" if stages == 1 else f"{name} {stages} × {size} B"
                       for name, size, stages in use.parts)
    changes = _param_changes(facts, lambda f: (model.shared_memory(f).total <= limit,
                                               use.total - model.shared_memory(f).total))
    report(Diagnostic(
        "smem-budget", f"shared memory: {parts} = {use.total} B; {arch.name} allows {limit} B "
        "per block", _allocation_span(facts), help=_options(changes, "B") or
        "use smaller tiles or fewer stages", fixes=changes[0][2] if changes else ()))


def _registers(facts: Facts, arch: Arch, online, model, ctx) -> None:
    use = model.registers(facts, online)
    if use is None:
        return
    shared = model.shared_memory(facts)
    limit = register_limit(arch, facts.threads, shared.total if shared else None, use.peak)
    if use.peak <= limit:
        return
    live = ", ".join(f"{label} {regs}" for label, regs in use.parts)
    changes = _stream_changes(facts, use, limit, online, ctx.source, model)
    changes += _param_changes(facts, lambda f: (model.registers(f, online).peak <= limit,
                                                use.peak - model.registers(f, online).peak))
    ctx.report(Diagnostic(
        "register-budget", f"an estimated {use.peak} registers per thread are live here ({live}); "
        f"{arch.name} allows {limit} with {facts.threads} threads", use.at.span,
        help=_options(changes, "registers") or _split_hint(facts, use, limit) or
        "use smaller tiles",
        fixes=changes[0][2] if changes else ()))


def _split_hint(facts: Facts, use, limit: int) -> str | None:
    """When the accumulator of the output is what overflows and no param change helps: the
    head dim split into column chunks, with the widest chunk that fits (a change of the plan's
    structure, so the help describes it rather than editing)."""
    if column_chunks(facts):
        return None
    for gemm in facts.gemms:
        acc = dict(use.parts).get(gemm.out)
        buffer = facts.buffers.get((gemm.out, ir.Level.REGISTER))
        shape = facts.shape(buffer) if buffer is not None and buffer.shape else ()
        if not gemm.accumulate or acc is None or len(shape) != 2 or not isinstance(shape[1], int):
            continue
        width = shape[1]
        for chunk in (256, 128, 64, 32, 16, 8):
            if chunk < width and use.peak - acc + acc * chunk // width <= limit:
                return (f"split the head dim: allocate {gemm.out} and {gemm.b.name} with "
                        f"DC = {chunk} columns (`param DC = {chunk}`), give their copies "
                        f"`D = c` in the coordinate, and wrap the key loop and the store of "
                        f"{gemm.out} in `for c = 0: cdiv(D, DC)`; {gemm.out} then takes about "
                        f"{acc * chunk // width} registers, and Q·K^T runs cdiv(D, DC) times "
                        "(examples/mha_fwd_fp16_d512_sm80.tl)")
    return None


def _param_changes(facts: Facts, fits) -> list[tuple[str, int, tuple]]:
    """(description, saving, edits) for each tunable param halved until the plan fits; when no
    single param does it, one stage first and then each other param halved."""
    staged = {n for op in ir.walk(facts.kernel.body) if isinstance(op, ir.Copy) and op.stages
              for n in [getattr(op.stages, "name", None)] if n}
    # Fewer stages first: it costs overlap, not the tile shape the rest of the plan relies on.
    names = sorted(facts.tunable_params(), key=lambda n: n not in staged)
    changes = _halvings(facts, fits, names, {})
    single_stage = {n: 1 for n in staged if n in facts.env and facts.env[n] > 1}
    if not changes and single_stage:
        changes = _halvings(facts, fits, [n for n in names if n not in staged], single_stage)
    return changes


def _halvings(facts: Facts, fits, names, base: dict) -> list[tuple[str, int, tuple]]:
    changes = []
    for name in names:
        candidate = facts.env[name] // 2
        while candidate >= 1:
            trial = Facts(facts.kernel, base | {name: candidate})
            ok, saving = fits(trial) if mma_fits(trial) else (False, 0)
            if ok:
                settings = base | {name: candidate}
                edits = tuple(Edit(facts.params[n].value_span, str(v)) for n, v in
                              settings.items())
                what = " and ".join(f"{n} = {v}" for n, v in settings.items())
                changes.append((f"set {what}", saving, edits))
                break
            candidate //= 2
    return changes


def _stream_changes(facts: Facts, use, limit, online, source,
                    model) -> list[tuple[str, int, tuple]]:
    """Moving a held operand's Copy into its GEMM's loop, when that alone makes room."""
    changes = []
    for copy, gemm, loop in _held_operand_copies(facts):
        label = f"{copy.name} (held operand)"
        held = dict(use.parts).get(label)
        if held is None:
            continue
        moved = _moved_kernel(facts.kernel, copy, loop, gemm)
        after = model.registers(Facts(moved), online)
        if after is None or after.peak > limit:
            continue
        edits = _move_edits(source, copy, gemm) if source else ()
        changes.append((f"stream `{copy.name}`: move `Copy {copy.name} from shared to register` "
                        f"into the loop over `{loop.var}`, just before its GEMM",
                        use.peak - after.peak, edits))
    return changes


def _held_operand_copies(facts: Facts):
    """(copy, gemm, loop) for each register Copy of a GEMM operand made outside the GEMM's
    loop."""
    for loop in ir.walk(facts.kernel.body):
        if not isinstance(loop, ir.Loop):
            continue
        for gemm in (op for op in loop.body if isinstance(op, ir.Gemm)):
            for copy in facts.kernel.body:
                if isinstance(copy, ir.Copy) and copy.dst is ir.Level.REGISTER and \
                        copy.name in (gemm.a.name, gemm.b.name):
                    yield copy, gemm, loop


def _moved_kernel(kernel: ir.Kernel, copy: ir.Copy, loop: ir.Loop, gemm: ir.Gemm):
    import dataclasses

    body = []
    for op in loop.body:
        if op is gemm:
            body.append(copy)
        body.append(op)
    new_loop = dataclasses.replace(loop, body=tuple(body))
    top = tuple(new_loop if op is loop else op for op in kernel.body if op is not copy)
    return dataclasses.replace(kernel, body=top)


def _move_edits(source, copy: ir.Copy, gemm: ir.Gemm) -> tuple[Edit, ...]:
    text = source.text
    start = copy.span.start - (copy.span.column - 1)
    end = text.find("\n", copy.span.end)
    end = len(text) if end < 0 else end + 1
    at = gemm.span.start - (gemm.span.column - 1)
    statement = text[copy.span.start:copy.span.end]
    return (Edit(source.span(start, end), ""),
            Edit(source.span(at, at), " " * (gemm.span.column - 1) + statement + "\n"))


def _options(changes, unit: str) -> str:
    return " or ".join(f"{what} (saves {saving} {unit})" for what, saving, _ in changes[:3])


def _allocation_span(facts: Facts):
    shared = [b for b in facts.kernel.buffers if b.level is ir.Level.SHARED]
    return shared[0].span if shared else facts.kernel.span
