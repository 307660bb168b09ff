"""Wall time of ``make demo`` (``python -m paper_figs.demo``) on a cold compilation cache; compile, run apart.

Runs the demo in a fresh temporary directory (its results/ and paper_figs/out/ land there, nothing in the
working tree changes) with an empty ``JAX_COMPILATION_CACHE_DIR``, then reads every run's results.json:
``extra.compile_s`` (XLA compilations of that run; 0 when the process had the program already) and
``extra.run_s`` (the compiled program running), summed per sweep. Saved to benchmarks/out/demo_time.json,
with the figure's CSVs beside it (benchmarks/out/demo_*.csv).

    python benchmarks/demo_time.py [--warm]     # --warm: run it a second time on the same cache as well
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out" / "demo_time.json"


def load() -> str:
    return os.getloadavg().__repr__()


def run_demo(workdir: Path, cache: Path) -> dict:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(cache)}
    load_before = os.getloadavg()
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "paper_figs.demo"], cwd=workdir, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"demo failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    sweeps = {}
    for name in ("theorem62", "objectives"):
        docs = [
            json.loads(p.read_text())
            for p in sorted(workdir.glob(f"results/synthetic/{name}/*/*/results.json"))
        ]
        sweeps[name] = {
            "runs": len(docs),
            "compile_s": round(sum(d["extra"]["compile_s"] for d in docs), 1),
            "run_s": round(sum(d["extra"]["run_s"] for d in docs), 1),
            "wall_s_sum_of_runs": round(sum(d["wall_time_s"] for d in docs), 1),
            "programs_compiled": sum(d["extra"]["compile_s"] > 0.2 for d in docs),
        }
    logs = {p.name: p.read_text()[-400:] for p in workdir.glob("results/synthetic/*.log")}
    for csv in workdir.glob("paper_figs/out/*.csv"):  # the figure's numbers, to check the demo's claims
        shutil.copy(csv, OUT.parent / f"demo_{csv.name}")
    for csv in workdir.glob("results/synthetic/*/*/aggregate.csv"):
        shutil.copy(csv, OUT.parent / f"demo_{csv.parent.parent.name}_aggregate.csv")
    return {
        "wall_s": round(wall, 1),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "sweeps": sweeps,
        "stdout_tail": proc.stdout[-600:],
        "log_tails": logs,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python benchmarks/demo_time.py")
    parser.add_argument("--warm", action="store_true", help="also time a second run on the warm cache")
    args = parser.parse_args(argv)
    report = {"cpu_count": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp, "jax_cache")
        report["cold"] = run_demo(Path(tmp), cache)
        print(f"make demo, cold cache: {report['cold']['wall_s']} s (load {report['cold']['load_before']})")
        if args.warm:
            report["warm"] = run_demo(Path(tmp), cache)
            print(
                f"make demo, warm cache: {report['warm']['wall_s']} s (load {report['warm']['load_before']})"
            )
    for mode in ("cold", "warm"):
        for name, s in report.get(mode, {}).get("sweeps", {}).items():
            print(f"  {mode} {name}: {s}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=1))
    print(f"saved {OUT}")
    return report


if __name__ == "__main__":
    main()
