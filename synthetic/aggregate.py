"""``python -m synthetic.aggregate DIR [-o CSV]``: every results.json under DIR -> one CSV, one row per run.

Columns: ``run`` (the run directory relative to DIR), ``status``, ``diverged_step``, ``wall_time_s``, the
resolved config flattened (``data.p_spu``, ``objective.name`` ...), ``<metric>_mean``, ``<metric>_std``,
``<metric>_n`` and ``theory.<name>`` for scalar theory values. Stdlib only (figures import it too).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from synthetic.results import RESULTS_FILE


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        elif not isinstance(value, list):
            out[name] = value
    return out


def row(path: Path, root: Path) -> dict:
    """One flat row from one results.json."""
    doc = json.loads(path.read_text())
    r = {
        "run": str(path.parent.relative_to(root)),
        "status": doc["status"],
        "diverged_step": doc.get("diverged_step"),
        "wall_time_s": doc.get("wall_time_s"),
    }
    r.update(_flatten({k: v for k, v in doc["config"].items() if k != "hydra"}))
    for name, m in doc["metrics"].items():
        r.update({f"{name}_mean": m["mean"], f"{name}_std": m["std"], f"{name}_n": m["n"]})
    r.update({f"theory.{k}": v for k, v in doc.get("theory", {}).items() if not isinstance(v, list | dict)})
    return r


def collect(root: Path) -> list[dict]:
    """Rows of every results.json under ``root`` (sorted by run directory)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root}: no such directory (a sweep directory of python -m synthetic -m ...)"
        )
    # Job folders in numeric order (2 before 10); (0, int) / (1, str) keys never compare an int with a str.
    paths = sorted(
        root.rglob(RESULTS_FILE),
        key=lambda p: [(0, int(s), "") if s.isdigit() else (1, 0, s) for s in p.parts],
    )
    if not paths:
        raise FileNotFoundError(f"{root}: no {RESULTS_FILE} below it; run python -m synthetic -m ... first")
    return [row(p, root) for p in paths]


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
    rows = collect(args.dir)
    path = write_csv(rows, args.out or args.dir / "aggregate.csv")
    print(f"{len(rows)} runs -> {path}")
    return path


if __name__ == "__main__":
    main()
