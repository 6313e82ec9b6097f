"""The package's imports point down its layers (any import, at the top of a module or inside
a function): text and vocabulary, then the grammar, the passes, the backends, the driver and
build, the runtime and tools, and the front doors. An edge that points up is an import cycle
waiting to happen; this test names it."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"tlc": "tlc", "grammar": "tlc.grammar", "passes": "tlc.passes",
           "backends": "tlc.backends"}
LAYERS = [
    ("tlc.source", "tlc.diagnostics", "tlc.fixes", "tlc.ast", "tlc.ir", "tlc.arch",
     "tlc.language", "tlc.reference"),
    ("tlc.grammar",),
    ("tlc.passes", "tlc.printer"),
    ("tlc.backends", "tlc.irtext"),
    ("tlc.driver", "tlc.build", "tlc.compiler"),
    ("tlc.runtime", "tlc.launch", "tlc.report", "tlc.tune", "tlc.simulate", "tlc.backward"),
    ("tlc.api", "tlc.llm", "tlc.examples", "tlc.cli_common", "tlc.templates"),
    ("tlc.cli", "tlc.commands", "tlc.sim_command", "tlc.torch", "tlc.__main__", "tlc"),
]


def layer_of(module: str) -> int:
    best = None
    for index, names in enumerate(LAYERS):
        for name in names:
            if module == name or module.startswith(name + "."):
                if best is None or len(name) > best[1]:
                    best = (index, len(name))
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[0]


def modules():
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package,) + parts).removesuffix(".__init__")
            yield name, path


def imports(name: str, path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            if base == "tlc" or base.startswith("tlc."):
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    yield full if any(full == m for m, _ in modules()) else base, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("tlc"):
                    yield alias.name, node.lineno


# Edges known to point up, to be removed (never added to).
KNOWN: set = set()


def test_no_import_points_up_a_layer():
    upward = []
    for name, path in modules():
        for target, line in imports(name, path):
            if target == "tlc" and name != "tlc":
                continue  # the package itself (its version) sits under everything
            if layer_of(target) > layer_of(name) and (name, target) not in KNOWN:
                upward.append(f"{path.relative_to(ROOT)}:{line} {name} -> {target}")
    assert upward == []
