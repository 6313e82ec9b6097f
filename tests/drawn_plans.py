"""Plans drawn by editing the examples, as a person or an LLM tuning one would.

A draw is one example plan (examples/*.tl, not the paper sketch) with 1 to 3 edits applied,
each one of EDITS: a param set to another sensible value; Q held in registers or streamed in
the key loop, or K/V held as Q is; the output staged through shared memory or stored from
registers (or only the final copy's level switched); a statement dropped, duplicated or moved
up or down one line (into or out of a loop where it passes `for` or `end`); `stages` dropped on
one copy; Q's global load moved into the loop; the mask, softcap or ALiBi clauses changed; the
row log-sum-exp added as an output; the GQA coordinate or the head-dim chunk loop's bound
rewritten; a copy's vector width changed; the dtype switched; or the plan ported between sm_80
and sm_75. The target (`tlc check --arch`) is
the one the edited plan's header names. Draws are pure functions of a `random.Random`: the same
seed gives the same plans, anywhere, and nothing here imports tlc.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
# Forward plans: the edits below are a forward plan's (the backward examples have their own
# sweep of tiles and variants, tests/backends/test_backward_lowering.py)
EXAMPLES = {p.stem: p.read_text() for p in sorted(EXAMPLES_DIR.glob("*.tl"))
            if p.stem != "paper_sketch" and "_bwd_" not in p.stem}
PARAM_VALUES = {"D": (32, 64, 96, 128, 256), "BM": (16, 32, 64, 128), "BN": (8, 16, 32, 64, 128),
                "WARPS": (1, 2, 4, 8), "STAGES": (1, 2, 3, 4), "DC": (32, 64, 128, 256),
                "GROUP": (1, 2, 8), "LEFT": (0, 64, 256), "RIGHT": (0, 32)}
STATEMENT = re.compile(r"^\s*(Allocate|Copy|Compute|Reshape) ")


@dataclass(frozen=True)
class DrawnPlan:
    text: str
    arch: str
    example: str
    edits: tuple[str, ...]


# ---- line helpers: a plan as a list of lines, statements indented two spaces a loop ----

def _lines(text):
    return text.split("\n")


def _indent(line):
    return line[:len(line) - len(line.lstrip())]


def _find(lines, needle):
    return [i for i, line in enumerate(lines) if needle in line and not line.lstrip().startswith("#")]


def _statements(lines):
    return [i for i, line in enumerate(lines) if STATEMENT.match(line)]


def _code_replace(text, old, new, word=True):
    """Replace `old` (a whole word, unless word=False) in code only; comments keep their text."""
    out = []
    for line in _lines(text):
        code, hash_, comment = line.partition("#")
        pattern = rf"\b{re.escape(old)}\b" if word else re.escape(old)
        out.append(re.sub(pattern, new.replace("\\", "\\\\"), code) + hash_ + comment)
    return "\n".join(out)


def _move_line(lines, i, target, indent):
    """Remove line i and insert it, re-indented, before the line now at `target`."""
    line = indent + lines[i].lstrip()
    lines = lines[:i] + lines[i + 1:]
    lines.insert(target - (target > i), line)
    return "\n".join(lines)


# ---- the edits: (name, fn(text, rng) -> text | None) ----

def _set_param(name):
    def edit(text, rng):
        match = re.search(rf"^param {name} = (\d+)", text, re.M)
        if not match:
            return None
        value = rng.choice([v for v in PARAM_VALUES[name] if v != int(match.group(1))])
        return text[:match.start(1)] + str(value) + text[match.end(1):]
    return edit


def hold_q(text, rng):
    lines = _lines(text)
    inside, load = _find(lines, "Copy Q from shared to register"), _find(lines, "Copy Q (")
    if not inside or not load or not _indent(lines[inside[0]]) or _indent(lines[load[0]]):
        return None
    return _move_line(lines, inside[0], load[0] + 1, "")


def stream_q(text, rng):
    lines = _lines(text)
    held, k = _find(lines, "Copy Q from shared to register"), _find(lines, "Copy K from shared")
    if not held or not k or _indent(lines[held[0]]):
        return None
    return _move_line(lines, held[0], k[0], _indent(lines[k[0]]))


def hold_kv(text, rng):
    """Hold K or V in registers as Q is held: its copy to registers moves before the loop."""
    lines = _lines(text)
    loops = _find(lines, "for n = ")
    copies = [i for name in "KV" for i in _find(lines, f"Copy {name} from shared to register")]
    if not loops or not copies:
        return None
    return _move_line(lines, rng.choice(copies), loops[0], _indent(lines[loops[0]]))


def stage_o(text, rng):
    lines = _lines(text)
    store = _find(lines, "from register to global")
    alloc = _find(lines, "Allocate O in register")
    if not store or not alloc or _find(lines, "Allocate O in shared"):
        return None
    i = store[0]
    lines[i] = lines[i].replace("from register to global", "from shared to global with vector 8")
    lines.insert(i, _indent(lines[i]) + "Copy O from register to shared")
    lines.insert(alloc[0] + 1, lines[alloc[0]].replace("in register", "in shared"))
    return "\n".join(lines)


def unstage_o(text, rng):
    if "Allocate O in shared" not in text:
        return None
    lines = [line for line in _lines(text) if "Allocate O in shared" not in line
             and "Copy O from register to shared" not in line]
    return "\n".join(lines).replace("from shared to global with vector 8", "from register to global")


def final_copy_level(text, rng):
    """Switch only the final copy's source level, leaving the rest as it is."""
    if "from shared to global with vector 8" in text and "Copy O (" in text:
        return text.replace("from shared to global with vector 8", "from register to global")
    if "from register to global" in text:
        return text.replace("from register to global", "from shared to global with vector 8")
    return None


def drop_statement(text, rng):
    lines = _lines(text)
    i = rng.choice(_statements(lines))
    return "\n".join(lines[:i] + lines[i + 1:])


def duplicate_statement(text, rng):
    lines = _lines(text)
    i = rng.choice(_statements(lines))
    return "\n".join(lines[:i + 1] + lines[i:])


def _move(direction):
    def edit(text, rng):
        lines = _lines(text)
        body = [i for i in _statements(lines) if i > _find(lines, "grid (")[0]]
        i = rng.choice(body)
        j = i + direction
        while 0 <= j < len(lines) and (not lines[j].strip() or lines[j].lstrip().startswith("#")):
            j += direction
        if not 0 <= j < len(lines) or lines[j].startswith("grid"):
            return None
        word, indent = lines[j].split()[0] if lines[j].strip() else "", _indent(lines[j])
        enters = (word == "end") == (direction < 0)  # up past `end`, down past `for`
        if word in ("for", "end"):
            indent = indent + "  " if enters else indent
        return _move_line(lines, i, j if direction < 0 else j + 1, indent)
    return edit


def drop_stages_one(text, rng):
    lines = _lines(text)
    staged = _find(lines, ", stages ")
    if not staged:
        return None
    i = rng.choice(staged)
    lines[i] = re.sub(r", stages \w+", "", lines[i])
    return "\n".join(lines)


def q_load_in_loop(text, rng):
    lines = _lines(text)
    load, k = _find(lines, "Copy Q ("), _find(lines, "Copy K (")
    if not load or not k or _indent(lines[load[0]]):
        return None
    return _move_line(lines, load[0], k[0], _indent(lines[k[0]]))


def _after_multiply(text, statement):
    lines = _lines(text)
    at = _find(lines, "Compute Multiply S")
    if not at:
        return None
    lines.insert(at[0] + 1, _indent(lines[at[0]]) + statement)
    return "\n".join(lines)


def mask_clause(text, rng):
    if "Compute Mask S with " not in text:
        return _after_multiply(text, "Compute Mask S with causal")
    return re.sub(r"Compute Mask S with .*", "Compute Mask S with " + rng.choice(
        ["causal", "causal, window (256, 0)", "window (128, 128)"]), text)


def causal_bound(text, rng):
    """Switch the key loop between all key blocks and those left of the causal diagonal."""
    causal = "cdiv(min(Nk, (m + 1) * BM + Nk - Nq), BN)"
    if causal in text:
        return re.sub(r"for n = .*", "for n = 0: cdiv(Nk, BN)", text)
    return text.replace("for n = 0: cdiv(Nk, BN)", "for n = 0: " + causal)


def softcap_clause(text, rng):
    cap = rng.choice(["30.0", "50.0", "0.0", "-1.0"])
    if "Compute Softcap S" in text:
        return re.sub(r"with cap [-\d.]+", "with cap " + cap, text)
    return _after_multiply(text, f"Compute Softcap S with cap {cap}")


def add_alibi(text, rng):
    if "ALiBi" in text or "input scale fp32" not in text:
        return None
    text = re.sub(r"(input scale fp32.*)", r"\1\ninput slopes (H) fp32", text, count=1)
    return _after_multiply(text, "Compute ALiBi S, slopes and get new S")


def add_lse(text, rng):
    """Also write each row's log-sum-exp: the output, its register vector, and the statement
    and store after the plan's last top-level `end`."""
    lines = _lines(text)
    ends = [i for i, line in enumerate(lines) if line == "end"]
    if "Logsumexp" in text or "Compute Softmax S" not in text or not ends:
        return None
    lines[ends[-1] + 1:ends[-1] + 1] = [
        "Compute Logsumexp S and get L",
        "Copy L (BM) in coordinate [B = b, H = h, Nq = m] from register to global"]
    text = re.sub(r"^(output O .*)$", r"\1\noutput L (B, H, Nq) fp32", "\n".join(lines),
                  count=1, flags=re.M)
    return re.sub(r"^(Allocate S in register .*)$", r"\1\nAllocate L in register (BM)", text,
                  count=1, flags=re.M)


def add_splits(text, rng):
    """Split the top-level key loop across blocks (`with splits N`)."""
    lines = _lines(text)
    loops = [i for i, line in enumerate(lines) if line.startswith("for n = ")
             and " with " not in line]
    if not loops:
        return None
    lines[loops[0]] += f" with splits {rng.choice((2, 3, 16, 64))}"
    return "\n".join(lines)


def gqa_coordinate(text, rng):
    return text.replace("Hkv = h / GROUP", "Hkv = h") if "Hkv = h / GROUP" in text else None


def chunk_bound(text, rng):
    if "cdiv(D, DC)" not in text:
        return None
    bound = rng.choice(["D / DC - 1", "D / DC", "cdiv(D, DC) + 1"])
    return _code_replace(text, "cdiv(D, DC)", bound, word=False)


def vector_width(text, rng):
    lines = _lines(text)
    at = _find(lines, "with vector 8")
    if not at:
        return None
    i = rng.choice(at)
    lines[i] = lines[i].replace("with vector 8", "with vector " + rng.choice(["4", "2", "16"]))
    return "\n".join(lines)


def switch_dtype(text, rng):
    if re.search(r"^input Q .* fp16", text, re.M):
        return _code_replace(text, "fp16", "bf16")
    return _code_replace(text, "bf16", "fp16")


def port_arch(text, rng):
    """Retarget the plan the way the diagnostics would have a person do it."""
    if "for sm_80" in text:
        text = _code_replace(text.replace("for sm_80", "for sm_75"), "m16n8k16", "m16n8k8")
        return re.sub(r"^param STAGES = \d+", "param STAGES = 1", text, flags=re.M)
    text = _code_replace(text.replace("for sm_75", "for sm_80"), "m16n8k8", "m16n8k16")
    text = re.sub(r"^param STAGES = \d+", "param STAGES = 2", text, flags=re.M)
    return re.sub(r"(Allocate [QKV] in shared \(.*\)) with dtype fp16", r"\1", text)


EDITS = tuple((f"set_{name}", _set_param(name)) for name in PARAM_VALUES) + (
    ("hold_q", hold_q), ("stream_q", stream_q), ("hold_kv", hold_kv),
    ("stage_o", stage_o), ("unstage_o", unstage_o),
    ("final_copy_level", final_copy_level), ("drop_statement", drop_statement),
    ("duplicate_statement", duplicate_statement), ("move_up", _move(-1)),
    ("move_down", _move(+1)), ("drop_stages_one", drop_stages_one),
    ("q_load_in_loop", q_load_in_loop), ("mask_clause", mask_clause),
    ("causal_bound", causal_bound), ("softcap_clause", softcap_clause),
    ("add_alibi", add_alibi), ("add_lse", add_lse), ("add_splits", add_splits),
    ("gqa_coordinate", gqa_coordinate),
    ("chunk_bound", chunk_bound),
    ("vector_width", vector_width), ("switch_dtype", switch_dtype), ("port_arch", port_arch),
)

NAMES = tuple(name for name, _ in EDITS)
# Dropping, duplicating and moving a line are the commonest edits, and each has a dozen lines
# to act on: they are drawn three times as often as any one of the others.
WEIGHTS = tuple(3 if name in ("drop_statement", "duplicate_statement", "move_up", "move_down")
                else 1 for name in NAMES)


def arch_of(text: str) -> str:
    match = re.search(r"^kernel \w+ for (sm_\d+a?)", text, re.M)
    return match.group(1) if match else "sm_80"


def apply_edit(text: str, name: str, rng: random.Random) -> str | None:
    result = dict(EDITS)[name](text, rng)
    return result if result is not None and result != text else None


def draw(rng: random.Random) -> DrawnPlan:
    """One example with 1 to 3 applicable edits, chosen with `rng`."""
    example = rng.choice(sorted(EXAMPLES))
    text, applied = EXAMPLES[example], []
    for _ in range(rng.choice((1, 1, 2, 2, 3))):
        for _ in range(50):  # until an edit applies
            name = rng.choices(NAMES, WEIGHTS)[0]
            edited = apply_edit(text, name, rng)
            if edited is not None:
                text, applied = edited, applied + [name]
                break
    return DrawnPlan(text, arch_of(text), example, tuple(applied))


def drawn(seed: int, count: int) -> list[DrawnPlan]:
    """`count` distinct plans (by text and target), drawn from `seed`."""
    rng, seen, plans = random.Random(seed), set(), []
    for _ in range(count * 50):
        if len(plans) == count:
            break
        plan = draw(rng)
        if (plan.text, plan.arch) not in seen:
            seen.add((plan.text, plan.arch))
            plans.append(plan)
    return plans


def edited_plans():
    """A hypothesis strategy over the same draws: a seed, mapped through `draw`."""
    from hypothesis import strategies as st

    return st.integers(0, 2**32 - 1).map(lambda seed: draw(random.Random(seed)))
