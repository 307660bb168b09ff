"""Shared pytest set-up.

* Markers that need real weights or data are skipped unless env vars point at them.
* A test that starts a Python process (a command line: ``python -m synthetic ...``) must be marked ``slow``,
  so that ``-m "not slow"`` runs no command line: an unmarked one fails naming the marker.
* ``make test`` runs the suite on two workers (pytest-xdist, ``-n 2 --dist load``: tests go to whichever
  worker is free, so one module's long runs do not queue on one worker; a module- or session-scoped
  fixture is built once per worker that needs it).
"""

import os
import subprocess
import sys

import pytest

_NEEDS = {
    "weights": ("SOBER_CLIP_WEIGHTS", "a local folder of pretrained weights"),
    "data": ("SOBER_CLIP_DATA", "the root of a local CounterAnimal copy"),
    "coco": ("SOBER_CLIP_COCO", "the root of a local COCO 2017 copy (annotations/, train2017/, val2017/)"),
}


def pytest_collection_modifyitems(config, items):
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
