"""Reports on a checked plan: its resource figures (`tlc check --report`) and how it fares on
every target (`tlc check --arch all`)."""
from __future__ import annotations

from tlc.arch import ARCH_NAMES, ARCHS


def resources_json(result) -> dict:
    """The figures of one check, as JSON-ready data."""
    facts, arch = result.facts, ARCHS.get(result.arch or "")
    smem, regs = facts.get("shared_memory"), facts.get("registers")
    data = {"arch": result.arch, "threads": facts.get("threads"),
            "shared_memory": None, "registers": None,
            "online_softmax": [vars(f) for f in facts.get("online_softmax", ())],
            "partial_tiles": list(facts.get("remainders", ())),
            "column_chunks": [vars(c) for c in facts.get("column_chunks", ())],
            "splits": list(facts.get("splits", ()))}
    if smem is not None:
        data["shared_memory"] = {
            "bytes": smem.total, "limit": arch.smem_per_block if arch else None,
            "buffers": [{"name": n, "bytes": b, "stages": s} for n, b, s in smem.parts]}
    if regs is not None:
        from tlc.passes.resources import register_limit

        limit = register_limit(arch, facts["threads"], smem.total if smem else None,
                               regs.peak) \
            if arch and facts.get("threads") else None
        data["registers"] = {"estimate": regs.peak, "limit": limit,
                             "peak_line": regs.at.span.line,
                             "live": [{"what": w, "registers": r} for w, r in regs.parts]}
    if arch and smem is not None and facts.get("threads") and regs is not None:
        data["blocks_per_sm"] = blocks_per_sm(arch, smem.total, regs.peak, facts["threads"])
    return data


def blocks_per_sm(arch, smem: int, regs: int, threads: int) -> dict:
    """How many blocks of this size an SM of arch holds, and which resource limits it."""
    per_block_smem = smem + arch.smem_reserved_per_block
    limits = {"shared memory": arch.smem_per_sm // per_block_smem if per_block_smem else
              arch.max_blocks_per_sm,
              "registers": arch.regs_per_sm // (max(regs, 1) * threads),
              "threads": arch.max_threads_per_sm // threads,
              "blocks": arch.max_blocks_per_sm}
    limiter = min(limits, key=limits.get)
    return {"blocks": limits[limiter], "limited_by": limiter}


def resources_text(result) -> str:
    """The figures of one check, for people."""
    data = resources_json(result)
    kernel = result.kernel
    name = getattr(kernel, "name", None) or "?"
    lines = [f"{result.source.path}: kernel {name}" +
             (f" for {data['arch']}" if data["arch"] else " (no target: give --arch)")]
    if kernel is None or data["threads"] is None:
        lines.append("  no figures: the plan has errors or no GEMM warp layout")
        return "\n".join(lines)
    grid = kernel.grid
    if grid is not None:
        from tlc.passes.facts import text

        extents = ", ".join(text(e) for e in grid.extents)
        lines.append(f"  grid            ({extents}) as ({', '.join(grid.indices)})")
    lines.append(f"  threads         {data['threads']} ({data['threads'] // 32} warps)")
    smem = data["shared_memory"]
    if smem:
        parts = ", ".join(f"{b['name']} {b['bytes']} B" + (f" × {b['stages']}" if
                          b["stages"] > 1 else "") for b in smem["buffers"])
        limit = f" of {smem['limit']} B" if smem["limit"] else ""
        lines.append(f"  shared memory   {smem['bytes']} B{limit} ({parts})")
    regs = data["registers"]
    if regs:
        limit = f" of {regs['limit']}" if regs["limit"] else ""
        live = ", ".join(f"{p['what']} {p['registers']}" for p in regs["live"])
        lines.append(f"  registers       ~{regs['estimate']}{limit} per thread, estimated; peak "
                     f"at line {regs['peak_line']}: {live}")
    if "blocks_per_sm" in data:
        occupancy = data["blocks_per_sm"]
        lines.append(f"  occupancy       {occupancy['blocks']} block(s) per SM, limited by "
                     f"{occupancy['limited_by']}")
    for found in data["online_softmax"]:
        lines.append(f"  online softmax  {found['scores']} over the loop on {found['loop_var']}, "
                     f"into {found['output']}")
    for split in data["column_chunks"]:
        times = split["chunks"] if split["chunks"] is not None else "cdiv(D, DC)"
        lines.append(f"  head dim split  D = {split['dim']} in {times} column chunks of "
                     f"{split['width']} (the loop on {split['loop_var']}): what is inside runs "
                     f"{times} times, Q·K^T and the softmax included")
    for split in data["splits"]:
        lines.append(f"  key split       the loop on {split['loop_var']} runs in "
                     f"{split['splits']} parts, a block each; a second kernel merges their "
                     f"{split['output']} by log-sum-exp (fp32 workspaces of {split['splits']} "
                     f"times {split['output']} and its rows)")
    for remainder in data["partial_tiles"]:
        lines.append(f"  partial tiles   {remainder}")
    return "\n".join(lines)


def portability(source, sketch: bool = False) -> list:
    """One check of the plan per known target."""
    from tlc.driver import check_source

    return [check_source(source, arch=name, sketch=sketch) for name in ARCH_NAMES]


def portability_text(results) -> str:
    """A table: for each target, whether the plan fits, its figures, and what must change."""
    path = results[0].source.path
    rows = [("arch", "fits", "smem B", "regs", "threads", "what must change")]
    for result in results:
        data = resources_json(result) if result.kernel is not None else {}
        smem = (data.get("shared_memory") or {}).get("bytes", "-")
        regs = (data.get("registers") or {}).get("estimate", "-")
        changes = "; ".join(dict.fromkeys(
            (d.help or d.message) for d in result.diagnostics if d.is_error))
        fits = "yes" if result.ok else "no"
        if result.ok and getattr(result.kernel, "sketch", False):
            fits = "sketch"  # a sketch leaves the parameters open: nothing to fit yet
        rows.append((result.arch, fits, str(smem), str(regs),
                     str(data.get("threads") or "-"), changes))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    out = [path]
    for row in rows:
        out.append("  " + "  ".join(cell.ljust(width) for cell, width in
                                     zip(row[:5], widths)) + "  " + row[5])
    return "\n".join(line.rstrip() for line in out)
