"""``python -m paper_figs.demo`` (what ``make demo`` runs): theory against simulation at CPU size.

Runs the ``theorem62`` and ``objectives`` sweeps (11 values of p_spu each, 5 seeds) with the sizes in
:data:`CPU_SIZE` as two concurrent ``python -m synthetic -m`` processes, writes one aggregate CSV per sweep,
then the figures into paper_figs/out/. Results go where full-size runs go (results/synthetic/<name>/<time>),
so ``python -m paper_figs`` picks them up until a full-size sweep replaces them. It sits in paper_figs, above
synthetic, because it drives both: synthetic imports nothing from here.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

from paper_figs import synthetic_vs_theory, theory_curves
from paper_figs.common import DEFAULT_OUT
from synthetic.aggregate import collect, write_csv

#: Overrides that shrink the experiments to CPU size (the theorem's regime d = n is kept).
CPU_SIZE = {
    "theorem62": [
        "data.n=256",
        "data.d_image=256",
        "data.d_text=256",
        "train.steps=400",
        "eval.n_test=2000",
    ],
    "objectives": [
        "data.n=256",
        "data.d_image=256",
        "data.d_text=256",
        "train.steps=500",
        "train.batch_size=128",
        "train.lr=0.003",
        "eval.n_test=2000",
    ],
}
RESULTS = synthetic_vs_theory.DEFAULT_RESULTS  # where the figure looks for the newest sweeps


def run_sweeps(stamp: str) -> dict[str, Path]:
    """Launch both sweeps at once (XLA compiles mostly on one core each) and wait for them."""
    env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    procs, dirs = {}, {}
    for name, overrides in CPU_SIZE.items():
        dirs[name] = RESULTS / name / f"{stamp}_demo"
        cmd = [sys.executable, "-m", "synthetic", "-m", f"experiment={name}", *overrides]
        cmd.append(f"hydra.sweep.dir={dirs[name]}")
        log = open(RESULTS / f"{name}_{stamp}_demo.log", "w")  # closed below, when the process ends
        procs[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log)
    for name, (proc, log) in procs.items():
        rc = proc.wait()
        log.close()
        if rc != 0:
            raise RuntimeError(f"sweep {name} failed (exit {rc}); see {log.name}")
    return dirs


def main() -> list[Path]:
    start = time.time()
    matplotlib.use("Agg")  # files only, no windows
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    dirs = run_sweeps(stamp)
    outputs = [write_csv(collect(d), d / "aggregate.csv") for d in dirs.values()]
    outputs += synthetic_vs_theory.make(DEFAULT_OUT, RESULTS, dirs)  # its own two sweeps
    outputs += theory_curves.make(DEFAULT_OUT)
    print(f"demo done in {time.time() - start:.0f}s")
    for d in dirs.values():
        print(f"  runs:    {d}")
    for path in outputs:
        print(f"  written: {path}")
    return outputs


if __name__ == "__main__":
    main()
