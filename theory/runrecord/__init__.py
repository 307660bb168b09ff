"""The run record: one results.json per run, one status vocabulary, one writer and one reader.

Every experiment kind (Gaussian model, MultiColoredMNIST, CounterAnimal) writes through this module and
every aggregator and figure reads through it. It imports the standard library and numpy only (no scipy, no
torch, no JAX), so that recording or reading a run costs nothing; every package may import it
(tests/test_layering.py).

Writing. ``python -m synthetic`` (Gaussian model, MultiColoredMNIST) and ``python -m realdata``
(CounterAnimal) both call :func:`recorded_run`, which writes :data:`RESULTS_FILE` before the work starts,
after each piece of work that must survive a crash (``checkpoint``) and at the end, always through
:func:`write_results`:

* atomically (a temporary file in the same folder, then ``os.replace``): a reader never sees half a file;
* strict JSON (``allow_nan=False``; non-finite floats become ``null``): no bare NaN;
* with one status from :data:`STATUSES`: ``ok``, ``diverged`` (finished, some seed's loss went non-finite),
  ``failed`` (an exception; ``error`` and ``traceback`` say why) or ``interrupted`` (Ctrl-C / SIGINT, or a
  process that ended before finishing: the file written at the start and at each checkpoint says
  ``interrupted`` until the run completes, so even a killed run never leaves an empty folder);
* with the same provenance fields: ``kind``, ``versions``, ``device``, ``git_commit`` (null outside a git
  checkout), ``command`` (the command line), ``started``, ``wall_time_s``;
* after the run's ``check`` (its config validation) has passed: a config error is a :class:`ConfigError`
  and writes nothing, so a typo leaves no failed run for a later aggregate to pick up;
* never over an earlier run: results.json and the app's other outputs already in the folder are moved to
  ``earlier-<time>/`` inside it first (:func:`keep_earlier`), so a failing re-run never replaces a good
  result; readers skip ``earlier-*`` folders.

Reading. :func:`load_results` reads one file and checks what every record has (a JSON object, a ``status``
from :data:`STATUSES`, a ``config`` object, and ``metrics`` when the status is in :data:`FINISHED`), raising
:class:`ResultsError` naming the file; :func:`result_paths` finds the files under folders (in numeric job
order) and :func:`iter_results` yields ``(path, document)`` for each. A kind's own fields are checked by its
reader (synthetic.aggregate, synthetic.mnist.table, paper_figs.aggregate).
"""

from __future__ import annotations

import contextvars
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

RESULTS_FILE = "results.json"
EARLIER = "earlier-"  # prefix of the folders keep_earlier moves earlier outputs to (readers skip them)
STATUSES = ("ok", "diverged", "failed", "interrupted")
FINISHED = ("ok", "diverged")  # the statuses of a completed run: its metrics are final (resume keeps them)
#: Config keys that say how a run is recorded, not what it computes (ignored when resuming, not tracked).
RUN_KEYS = ("logger", "resume")
NOT_FINISHED = "not finished: the process ended (or is still running) before the run completed"


def json_safe(x):
    """Plain JSON: numpy scalars/arrays to Python, non-finite floats to None (never NaN in results)."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_safe(v) for v in x]
    if isinstance(x, np.ndarray):
        return json_safe(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def versions(packages: tuple[str, ...]) -> dict:
    """Python, platform and the installed version of each distribution (None when not installed)."""
    out: dict[str, str | None] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in packages:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def git_commit() -> str | None:
    """HEAD of the checkout this package runs from (with ``+dirty`` when it has changes), or None."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}+dirty" if dirty else sha or None


def command_line() -> list[str]:
    """The command as typed: ``python -m <package> ...`` for a package's __main__, else the script."""
    if not sys.argv:
        return []
    script = Path(sys.argv[0])
    head = ["python", "-m", script.parent.name] if script.name == "__main__.py" else [str(script)]
    return head + sys.argv[1:]


def provenance(kind: str, packages: tuple[str, ...], device) -> dict:
    """The fields every results.json carries besides its own (see the module docstring)."""
    return {
        "kind": kind,
        "versions": versions(packages),
        "device": device,
        "git_commit": git_commit(),
        "command": command_line(),
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def write_results(out_dir: str | Path, doc: dict) -> Path:
    """Write ``out_dir/results.json`` atomically as strict JSON; ``doc["status"]`` must be in STATUSES."""
    if doc.get("status") not in STATUSES:
        raise ValueError(f"status={doc.get('status')!r}: expected one of {list(STATUSES)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / RESULTS_FILE
    tmp = out_dir / f".{RESULTS_FILE}.{os.getpid()}.tmp"
    text = json.dumps(json_safe(doc), indent=1, allow_nan=False)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)  # atomic: a crash never leaves half a file
    except OSError as e:  # a full disk: name the file, leave no temporary behind
        tmp.unlink(missing_ok=True)
        raise OSError(e.errno, f"cannot write {path} ({e.strerror or e})", str(path)) from e
    return path


def _computed(config) -> dict:
    plain = json.loads(json.dumps(json_safe(config or {})))
    return {k: v for k, v in plain.items() if k not in RUN_KEYS}


def _differences(a, b, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _differences(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [f"{prefix[:-1]}: {a!r} -> {b!r}"]


def finished_result(out_dir: str | Path, config: dict) -> tuple[dict | None, str]:
    """For ``resume=true``: (the results document in ``out_dir`` when it finished (status ok or diverged)
    for the same config, ignoring :data:`RUN_KEYS`; else None, and why the run must run)."""
    path = Path(out_dir) / RESULTS_FILE
    if not path.is_file():
        return None, f"no {path}"
    try:
        doc = load_results(path)
    except ResultsError as e:
        return None, str(e)
    if doc.get("status") not in FINISHED:
        return None, f"{path} says status {doc.get('status')!r}"
    diff = _differences(_computed(doc.get("config")), _computed(config))
    if diff:
        return None, f"{path} holds another config ({'; '.join(diff[:5])})"
    return doc, f"{path} already holds a finished run (status {doc['status']}) of this config"


def expect(ok: bool, key: str, value, expected: str) -> None:
    """The one validation helper of every app: stop on a bad value, naming its key and what was expected."""
    if not ok:
        raise ValueError(f"{key}={value!r}: expected {expected}")


class ConfigError(ValueError):
    """A bad configuration, found by a run's ``check`` before any work: nothing was written."""


def keep_earlier(out_dir: str | Path, names: Iterable[str] = (RESULTS_FILE,)) -> Path | None:
    """Move the files ``names`` present in ``out_dir`` into a new ``out_dir/earlier-<time>/`` (the time of
    the earlier results); None when there is nothing to keep."""
    out_dir = Path(out_dir)
    present = [out_dir / n for n in dict.fromkeys(names) if (out_dir / n).is_file()]
    if _placeholder(out_dir / RESULTS_FILE):  # nothing was computed: it is overwritten, not kept
        present.remove(out_dir / RESULTS_FILE)
    if not present:
        return None
    stamp = datetime.datetime.fromtimestamp(present[0].stat().st_mtime).strftime("%Y%m%d-%H%M%S-%f")
    for i in range(1000):  # a new folder: never mix two earlier runs
        keep = out_dir / (f"{EARLIER}{stamp}" + (f"-{i}" if i else ""))
        try:
            keep.mkdir(parents=True)
            break
        except FileExistsError:
            continue
    for f in present:
        os.replace(f, keep / f.name)
    return keep


def _placeholder(path: Path) -> bool:
    """A results.json written before any work (status interrupted, no metrics: e.g. the batched launcher's
    pending record of a job that has not run yet)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("status") == "interrupted" and not doc.get("metrics")


def remove_if_unused(out_dir: str | Path) -> bool:
    """Remove ``out_dir`` when it holds nothing but what Hydra writes before the task (``.hydra/`` and
    ``*.log``, and a results.json placeholder written before any work): a run stopped by a config error
    leaves no folder behind. True when removed."""
    import shutil

    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return False
    entries = list(out_dir.iterdir())
    unused = lambda e: (
        (e.name == ".hydra" and e.is_dir())
        or (e.suffix == ".log" and e.is_file())
        or (e.name == RESULTS_FILE and _placeholder(e))
    )
    if not all(unused(e) for e in entries):
        return False
    shutil.rmtree(out_dir)
    # and the folders Hydra made for it, while empty, up to the working directory (results/<app>/...)
    here = Path.cwd().resolve()
    for parent in out_dir.resolve().parents:
        if parent == here or not parent.is_relative_to(here):
            break
        try:
            parent.rmdir()  # only an empty folder
        except OSError:
            break
    return True


def in_thread(fn: Callable[[], Any]) -> Any:
    """``fn()`` in a daemon thread while the main thread waits in Python, so that Ctrl-C (SIGINT) stops it
    at once and is never lost: Python raises KeyboardInterrupt in the main thread only, between bytecodes,
    so it would otherwise wait out a long C call (a compiled run), vanish inside a GC or ctypes callback, or
    surface inside a C++ callback into Python, which pybind11 (torch) turns into an abort. Off the main
    thread ``fn()`` just runs (no signal reaches it there). It runs in a copy of the caller's context, so
    context variables set around the call hold inside it."""
    if threading.current_thread() is not threading.main_thread():
        return fn()
    box: dict = {}
    context = contextvars.copy_context()  # the caller's context variables (synthetic.run.PRECOMPUTED)

    def target():
        try:
            box["out"] = context.run(fn)
        except BaseException as e:  # handed to the main thread
            box["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.1)
    if "error" in box:
        raise box["error"]
    return box["out"]


def recorded_run(
    out_dir: str | Path,
    head: dict,
    work: Callable[[Callable[[dict], None]], dict],
    check: Callable[[], object] | None = None,
    outputs: Iterable[str] = (),
) -> dict:
    """Run ``work(checkpoint)`` under the contract and return the final results document.

    ``head``: the run's fixed fields (``provenance(...)``, ``config`` and whatever identifies the run).
    ``work`` returns the body of the document (``metrics`` and the kind's own fields, with ``status`` "ok"
    or "diverged"); it may call ``checkpoint(partial_body)`` to put finished work on disk (kept as
    status "interrupted" until the run completes). An exception writes status "failed" (KeyboardInterrupt:
    "interrupted") with the last checkpointed body, then propagates. ``work`` runs under :func:`in_thread`,
    so a Ctrl-C always reaches this function.

    ``check()`` runs first: whatever it raises becomes a :class:`ConfigError` and nothing is written.
    Then results.json and ``outputs`` (the app's other files) already in ``out_dir`` are moved aside
    (:func:`keep_earlier`).
    """
    if check is not None:
        try:
            check()
        except Exception as e:
            raise ConfigError(str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}") from e
    keep_earlier(out_dir, (RESULTS_FILE, *outputs))
    start = time.time()
    last: dict = {}

    def write(body: dict, status: str, **why) -> Path:
        doc = {**head, **body, "status": status, **why, "wall_time_s": time.time() - start}
        return write_results(out_dir, doc)

    lock, stopped = threading.Lock(), threading.Event()

    def checkpoint(body: dict) -> None:
        with lock:
            if stopped.is_set():
                return
            last.clear()
            last.update(body)
            write(body, "interrupted", error=NOT_FINISHED)

    write({}, "interrupted", error=NOT_FINISHED)
    try:
        body = in_thread(lambda: work(checkpoint))
    except KeyboardInterrupt:
        with lock:  # the work's thread may still be running: no checkpoint after this write
            stopped.set()
            write(last, "interrupted", error="KeyboardInterrupt: stopped by the user (SIGINT)")
        raise
    except Exception as e:
        write(last, "failed", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
        raise
    status = body.pop("status", "ok")
    path = write(body, status)
    return json.loads(path.read_text())


# ---------------------------------------------------------------- reading


class ResultsError(ValueError):
    """A results file (or a folder of them) that cannot be read as a run record; the message names it."""


def _job_order(p: Path):
    # Job folders in numeric order (2 before 10); (0, int) / (1, str) keys never compare an int with a str.
    return [(0, int(s), "") if s.isdigit() else (1, 0, s) for s in p.parts]


def _earlier(rel: Path) -> bool:
    """A results file kept aside by keep_earlier (under an ``earlier-*`` folder)."""
    return any(part.startswith(EARLIER) for part in rel.parts[:-1])


def has_results(folder: str | Path) -> bool:
    """Whether ``folder`` holds a (current, not kept-aside) results file anywhere below it."""
    folder = Path(folder)
    return folder.is_dir() and any(not _earlier(p.relative_to(folder)) for p in folder.rglob(RESULTS_FILE))


def latest_sweep(base: str | Path, hint: str = "") -> Path:
    """The newest folder directly under ``base`` holding results (Hydra names sweep folders by time);
    none is a FileNotFoundError that ends with ``hint`` (the command that makes them)."""
    base = Path(base)
    sweeps = sorted(p for p in base.iterdir() if has_results(p)) if base.is_dir() else []
    if not sweeps:
        raise FileNotFoundError(f"no sweep with {RESULTS_FILE} under {base}" + (f"; {hint}" if hint else ""))
    return sweeps[-1]


def result_paths(root: str | Path | Iterable[str | Path]) -> list[Path]:
    """The results files named directly or found recursively under folders, in numeric job order.

    An absent path, or a folder with no results file below it, is a :class:`ResultsError`."""
    roots = [root] if isinstance(root, str | Path) else list(root)
    if not roots:
        raise ResultsError(f"no results paths given: pass {RESULTS_FILE} files or folders holding them")
    found: list[Path] = []
    for path in map(Path, roots):
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            inside = sorted(
                (p for p in path.rglob(RESULTS_FILE) if not _earlier(p.relative_to(path))),
                key=lambda p: _job_order(p.relative_to(path)),
            )
            if not inside:
                raise ResultsError(f"no {RESULTS_FILE} under {path}")
            found.extend(inside)
        else:
            raise ResultsError(f"results path {path} does not exist")
    return list(dict.fromkeys(found))


def load_results(path: str | Path, kind: str | None = None) -> dict:
    """One results file as a dict, checked: a JSON object with ``status`` in STATUSES, a ``config`` object,
    a ``metrics`` object when the run finished, and ``kind == kind`` when ``kind`` is given."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ResultsError(f"{path}: malformed {RESULTS_FILE} ({type(e).__name__}: {e})") from None
    if not isinstance(doc, dict):
        raise ResultsError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    if doc.get("status") not in STATUSES:
        raise ResultsError(f"{path}: status={doc.get('status')!r}, expected one of {list(STATUSES)}")
    if not isinstance(doc.get("config"), dict):
        raise ResultsError(f"{path}: no 'config' object (every run records its resolved config)")
    if doc["status"] in FINISHED and not isinstance(doc.get("metrics"), dict):
        raise ResultsError(f"{path}: status {doc['status']} but no 'metrics' object")
    if kind is not None and doc.get("kind") != kind:
        raise ResultsError(f"{path}: kind={doc.get('kind')!r}, expected {kind!r}")
    return doc


def iter_results(
    root: str | Path | Iterable[str | Path],
    kind: str | None = None,
    on_error: Callable[[ResultsError], None] | None = None,
) -> Iterator[tuple[Path, dict]]:
    """``(path, document)`` for every results file under ``root`` (see :func:`result_paths`), each read by
    :func:`load_results`. A file that does not load raises, or goes to ``on_error`` when given (a sweep
    reader lists the broken jobs and keeps the rest)."""
    for path in result_paths(root):
        try:
            doc = load_results(path, kind)
        except ResultsError as e:
            if on_error is None:
                raise
            on_error(e)
            continue
        yield path, doc
