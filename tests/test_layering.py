"""Imports run one way: runrecord <- theory <- synthetic / realdata <- paper_figs (checked on the source,
with ast); the run record itself imports neither scipy, torch nor JAX (checked in a fresh interpreter)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# package -> the packages of this distribution it may import
ALLOWED = {
    "runrecord": set(),
    "theory": {"runrecord"},
    "synthetic": {"runrecord", "theory"},
    "realdata": {"runrecord", "theory"},
    "paper_figs": {"runrecord", "theory", "synthetic", "realdata"},
}


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_run_one_way(package):
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for imported in _imports(path) & (set(ALLOWED) - {package}):
            if imported not in ALLOWED[package]:
                bad.append(f"{path.relative_to(ROOT)} imports {imported}")
    assert not bad, bad


@pytest.mark.slow  # a fresh interpreter
def test_the_run_record_is_cheap_to_import():
    code = "import sys, runrecord; print(sorted({'scipy', 'torch', 'jax', 'theory'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout
