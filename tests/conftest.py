"""Shared pytest set-up.

* Markers that need real weights or data are skipped unless env vars point at them.
* A test that starts a Python process (a command line: ``python -m synthetic ...``) must be marked ``slow``,
  so that ``-m "not slow"`` runs no command line: an unmarked one fails naming the marker.
* ``make test`` runs the suite on two workers (pytest-xdist, ``-n 2 --dist loadfile``): each test module goes
  whole to whichever worker is free, so a module's (and a session's) expensive fixture, such as the
  trained runs shared by tests/test_theory_objectives.py, is built once. Modules with more ``slow`` tests
  are collected first (a module's tests stay together, in their order), so the long modules start first
  and the short ones fill in after them instead of a long one starting last.
* On the CPU (``JAX_PLATFORMS=cpu``, as ``make test`` runs) XLA compiles what is left to its defaults at
  :data:`FAST_COMPILE_FLAGS` (``XLA_FLAGS``, kept for every command line a test starts), a short run's
  options (``synthetic.train.SHORT_RUN_OPTIONS``, spelt as flags here so that this file imports no JAX;
  a test keeps the two equal): hundreds of small programs (test-side jits, eager ops, the product's
  helpers) compile about 2x faster at -O0 without the MLIR fusion emitters. The training programs pass
  their options explicitly (``synthetic.train.compiler_options``), which XLA_FLAGS does not override: they
  compile as a user's do. A flag already in XLA_FLAGS is kept as it is.
"""

import os
import subprocess
import sys
from collections import Counter

import pytest

FAST_COMPILE_FLAGS = {"xla_backend_optimization_level": "0", "xla_cpu_use_fusion_emitters": "false"}
if os.environ.get("JAX_PLATFORMS") == "cpu":  # before any test module starts JAX's backend
    _flags = os.environ.get("XLA_FLAGS", "")
    _add = [f"--{k}={v}" for k, v in FAST_COMPILE_FLAGS.items() if f"--{k}=" not in _flags]
    os.environ["XLA_FLAGS"] = " ".join([_flags, *_add]).strip()

_NEEDS = {
    "weights": ("SOBER_CLIP_WEIGHTS", "a local folder of pretrained weights"),
    "data": ("SOBER_CLIP_DATA", "the root of a local CounterAnimal copy"),
    "coco": ("SOBER_CLIP_COCO", "the root of a local COCO 2017 copy (annotations/, train2017/, val2017/)"),
}


def _module(item) -> str:
    return item.nodeid.split("::")[0]


def pytest_collection_modifyitems(config, items):
    slow = Counter(_module(item) for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[_module(item)])  # stable: within a module, the written order
    for marker, (var, what) in _NEEDS.items():
        if os.environ.get(var):
            continue
        skip = pytest.mark.skip(reason=f"set {var} to {what} to run this test")
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)


class _UnmarkedCommandLine(subprocess.Popen):
    def __init__(self, args, *a, **kw):
        argv = [args] if isinstance(args, str | bytes | os.PathLike) else list(args)
        if argv and os.fspath(argv[0]) == sys.executable:
            raise RuntimeError(
                f"this test starts a Python process ({' '.join(map(str, argv[:4]))} ...): mark it "
                "@pytest.mark.slow so that -m 'not slow' means what it says"
            )
        super().__init__(args, *a, **kw)


@pytest.fixture(autouse=True)
def _command_lines_are_marked_slow(request, monkeypatch):
    if request.node.get_closest_marker("slow") is None:
        monkeypatch.setattr(subprocess, "Popen", _UnmarkedCommandLine)
