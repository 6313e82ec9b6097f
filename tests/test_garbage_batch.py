"""300 garbage or mutated files in one `tlc check --json` run: a result for each, a line and
column for each error, and no traceback anywhere."""
import json
import os
import random
import subprocess
import sys

import pytest

from conftest import EXAMPLES, ROOT
from test_fuzz import mutate

pytestmark = pytest.mark.slow


def garbage_files(folder, count=300, seed=20261122):
    rng = random.Random(seed)
    texts = [path.read_text() for path in EXAMPLES]
    paths = []
    for index in range(count):
        kind = index % 6
        if kind == 0:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 600)))
        elif kind == 1:
            data = b"" if index % 12 == 1 else b"\n\n   \n# only comments\n"
        else:
            text = rng.choice(texts)
            for _ in range(kind):
                text = mutate(text, rng)
            data = text.encode("utf-8", errors="surrogatepass")
        path = folder / f"plan_{index:03d}.tl"
        path.write_bytes(data)
        paths.append(path)
    return paths


def test_300_bad_files_in_one_json_run(tmp_path):
    paths = garbage_files(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-m", "tlc", "check", "--json", *map(str, paths)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert "Traceback" not in run.stdout + run.stderr
    assert run.returncode == 1, run.stderr
    report = json.loads(run.stdout)
    assert [entry["file"] for entry in report["files"]] == list(map(str, paths))
    errors = [d for entry in report["files"] for d in entry["diagnostics"]
              if d["severity"] == "error"]
    assert sum(not entry["ok"] for entry in report["files"]) > 250
    for diagnostic in errors:
        assert diagnostic["code"] != "internal-error", diagnostic
        assert isinstance(diagnostic["line"], int) and diagnostic["line"] >= 1
        assert isinstance(diagnostic["column"], int) and diagnostic["column"] >= 1
        assert diagnostic["message"] and diagnostic["help"]
    assert report["summary"]["errors"] == len(errors)
