"""``python -m synthetic.aggregate DIR [-o CSV]``: every results.json under DIR -> one CSV, one row per run.

Columns: ``run`` (the run directory relative to DIR), ``status``, ``converged``, ``diverged_step``,
``wall_time_s``, the
run's own resolved config flattened (``data.p_spu``, ``objective._target_`` ...), ``swept_keys`` (the config
keys whose values differ across the sweep, comma-separated), ``<metric>_mean``, ``<metric>_std``,
``<metric>_n`` and ``theory.<name>`` for scalar theory values (``theory.linear_clip.acc_counter`` ...).

A sweep that stopped half-way is reported, not hidden: jobs that are missing (expected from the sweep's
``multirun.yaml`` but without a results.json), failed or interrupted are listed in a warning (and on
stderr by the command), and a malformed results.json is named. Files are read through the run record
(:mod:`theory.runrecord`); needs only the stdlib (and Hydra's override parser to count the expected jobs).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import warnings
from pathlib import Path

from theory.runrecord import RESULTS_FILE, ResultsError, has_results, load_results, result_paths


class SweepWarning(UserWarning):
    """Some jobs of a sweep are missing, failed, interrupted or unreadable."""


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        elif not isinstance(value, list):
            out[name] = value
    return out


def row(doc: dict, path: Path, root: Path) -> dict:
    """One flat row from one run record (``_config``: its flattened config, for swept_keys)."""
    try:
        config = _flatten({k: v for k, v in doc["config"].items() if k != "hydra"})
        r = {
            "run": str(path.parent.relative_to(root)),
            "status": doc["status"],
            "converged": doc.get("converged"),  # false: "ok" but not converged (results.json says why)
            "diverged_step": doc.get("diverged_step"),
            "wall_time_s": doc.get("wall_time_s"),
            **config,
        }
        for name, m in (doc.get("metrics") or {}).items():
            r.update({f"{name}_mean": m["mean"], f"{name}_std": m["std"], f"{name}_n": m["n"]})
    except (KeyError, TypeError, AttributeError) as e:
        raise ResultsError(f"{path}: malformed {RESULTS_FILE} ({type(e).__name__}: {e})") from None
    r.update({f"theory.{k}": v for k, v in _flatten(doc.get("theory") or {}).items()})
    r["_config"] = config
    return r


def expected_jobs(root: Path) -> int | None:
    """How many jobs the sweep in ``root`` launches (from Hydra's multirun.yaml), or None if unknown."""
    path = root / "multirun.yaml"
    if not path.exists():
        return None
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from omegaconf import OmegaConf

        hydra_cfg = OmegaConf.load(path).hydra
        params = {k: str(v) for k, v in (hydra_cfg.sweeper.get("params") or {}).items()}
        for o in OverridesParser.create().parse_overrides(list(hydra_cfg.overrides.task)):
            params[o.key_or_group] = o.input_line.split("=", 1)[1]
        overrides = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
        return math.prod(
            len(list(o.sweep_string_iterator())) if o.is_sweep_override() else 1 for o in overrides
        )
    except Exception:  # a sweep syntax we cannot count (glob over groups ...): report what is on disk
        return None


def _sweep_started(root: Path) -> float | None:
    """When the sweep in ``root`` started: Hydra writes multirun.yaml before it launches any job."""
    path = root / "multirun.yaml"
    return path.stat().st_mtime if path.exists() else None


def _started(doc: dict) -> float | None:
    import datetime

    try:
        return datetime.datetime.fromisoformat(doc["started"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return None


def _started_before_sweep(path: Path, root: Path) -> bool:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    t, t0 = _started(doc), _sweep_started(root)
    return t is not None and t0 is not None and t < t0 - 1.0  # "started" is rounded to the second


def _not_this_sweep(doc: dict, run: Path, root: Path, n: int | None) -> str | None:
    """Why a results file in a reused sweep folder belongs to an earlier sweep (multirun.yaml describes the
    current one), or None: a job number the sweep does not have, or a start before the sweep's."""
    job = run.parts[0] if run.parts else ""
    if n is not None and job.isdigit() and int(job) >= n:
        return f"job {job} is not part of this sweep (multirun.yaml describes {n} jobs): an earlier sweep's"
    t, t0 = _started(doc), _sweep_started(root)
    if t is not None and t0 is not None and t < t0 - 1.0:
        return "started before this sweep did (multirun.yaml): an earlier sweep's"
    return None


def collect(root: Path) -> list[dict]:
    """Rows of every results.json under ``root`` (numeric job order), with ``swept_keys``; warns
    (:class:`SweepWarning`) listing missing, failed, interrupted and malformed jobs."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root}: no such directory (a sweep directory of python -m synthetic -m ...)"
        )
    paths = result_paths(root) if has_results(root) else []
    problems = []
    rows = []
    n = expected_jobs(root)
    for p in paths:
        try:
            doc = load_results(p)
            stale = _not_this_sweep(doc, p.parent.relative_to(root), root, n)
            if stale:
                problems.append(f"{p.parent.relative_to(root)}: left out, {stale}")
                continue
            rows.append(row(doc, p, root))
        except ResultsError as e:
            problems.append(str(e))
    if not rows:
        raise FileNotFoundError(
            f"{root}: no readable {RESULTS_FILE} below it; run python -m synthetic -m ... first"
            + (f" ({'; '.join(problems)})" if problems else "")
        )
    problems += [
        f"{r['run']}: status {r['status']}" for r in rows if r["status"] in ("failed", "interrupted")
    ]
    if n is not None:
        have = {r["run"].split("/")[0] for r in rows} | {
            p.parent.relative_to(root).parts[0] for p in paths if not _started_before_sweep(p, root)
        }
        problems += [f"{i}: missing (no {RESULTS_FILE})" for i in range(n) if str(i) not in have]
    configs = [r.pop("_config") for r in rows]
    keys = list(dict.fromkeys(k for c in configs for k in c))
    swept = [k for k in keys if len({json.dumps(c.get(k)) for c in configs}) > 1]
    for r in rows:
        r["swept_keys"] = ",".join(swept)
    if problems:
        warnings.warn(
            f"{root}: {len(problems)} job(s) missing, failed, interrupted or unreadable: "
            + "; ".join(problems),
            SweepWarning,
            stacklevel=2,
        )
    return rows


def write_csv(rows: list[dict], path: Path) -> Path:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
    return path


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        prog="python -m synthetic.aggregate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("dir", type=Path, help="a sweep directory (results.json files below it)")
    parser.add_argument("-o", "--out", type=Path, default=None, help="CSV path (default DIR/aggregate.csv)")
    args = parser.parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SweepWarning)
        rows = collect(args.dir)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    path = write_csv(rows, args.out or args.dir / "aggregate.csv")
    print(f"{len(rows)} runs -> {path}")
    return path


if __name__ == "__main__":
    main()
