"""Imports run one way: theory.runrecord <- theory <- synthetic / realdata <- paper_figs (checked on the
source, with ast); the run record (theory/runrecord/, the one layer every package may import) imports no other
part of theory, nor scipy, torch or JAX (checked in a fresh interpreter)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# package -> the packages of this distribution it may import
ALLOWED = {
    "theory.runrecord": set(),
    "theory": {"theory.runrecord"},
    "synthetic": {"theory.runrecord", "theory"},
    "realdata": {"theory.runrecord", "theory"},
    "paper_figs": {"theory.runrecord", "theory", "synthetic", "realdata"},
}


RECORD = "theory.runrecord"


def _layer(module: str) -> str:
    """The layer of a dotted module name: theory.runrecord is its own, below the rest of theory."""
    return RECORD if module == RECORD or module.startswith(RECORD + ".") else module.split(".")[0]


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {_layer(a.name) for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = (
                [f"{node.module}.{a.name}" for a in node.names] if node.module == "theory" else [node.module]
            )
            out |= {_layer(n) for n in names}
    return out


def _files(package: str) -> list[Path]:
    files = sorted((ROOT / package.replace(".", "/")).rglob("*.py"))
    if package == "theory":  # the run record is checked as its own layer
        files = [f for f in files if (ROOT / "theory" / "runrecord") not in f.parents]
    return files


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_run_one_way(package):
    bad = []
    for path in _files(package):
        for imported in _imports(path) & (set(ALLOWED) - {package}):
            if imported not in ALLOWED[package]:
                bad.append(f"{path.relative_to(ROOT)} imports {imported}")
    assert not bad, bad


@pytest.mark.slow  # a fresh interpreter
def test_the_run_record_is_cheap_to_import():
    parts = "{'scipy', 'torch', 'jax', 'theory.model', 'theory.exact', 'theory.contrastive'}"
    code = f"import sys, theory.runrecord; print(sorted({parts} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout
