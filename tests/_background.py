"""Slow command-line runs started in the background at collection, so they use the second core while pytest
runs the in-process tests on the first (pytest itself is one process). A test module registers a job at
import with :func:`job`, naming the test that checks it; ``conftest.pytest_collection_finish`` starts the jobs
of the selected tests, one at a time in one background thread, and ``pytest_sessionfinish`` cancels those not
started; a test takes its job's result with :func:`result` (run there and then when it was not started).
Jobs write into their own temporary folders, removed at exit.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

_JOBS: dict[str, tuple[str, Callable]] = {}
_FUTURES: dict[str, concurrent.futures.Future] = {}
_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="background-cli")


def job(name: str, test: str, fn: Callable):
    """Register ``fn()`` under ``name``: a slow run whose result ``test`` ("module::function") checks."""
    _JOBS[name] = (test, fn)


def start(tests: set[str]) -> None:
    for name, (test, fn) in _JOBS.items():
        if test in tests and name not in _FUTURES:
            _FUTURES[name] = _POOL.submit(fn)


def cancel() -> None:
    for future in _FUTURES.values():
        future.cancel()  # only those not started: a running one finishes


def result(name: str):
    if name not in _FUTURES:
        _FUTURES[name] = _POOL.submit(_JOBS[name][1])
    return _FUTURES[name].result()


def tmpdir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"sober-clip-{prefix}-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
