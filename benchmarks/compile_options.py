"""Both sides of ``synthetic.train.SHORT_RUN``: compile + run time of one program under the short-run XLA
options (``T.SHORT_RUN_OPTIONS``) and the long-run ones (``T.COMPILER_OPTIONS``), at the threshold and at 8x
it, for the Gaussian InfoNCE set-up, the MLP set-up (python -m synthetic.bench) and MultiColoredMNIST
(k = 10, 28 x 28, two-tower): the largest built-in per-example cost. Each measurement is its own process
(a fresh compile), 5 seeds, load average beside it.

    JAX_PLATFORMS=cpu python benchmarks/compile_options.py      # -> benchmarks/out/compile_options.json
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from synthetic import train as T

OUT = Path("benchmarks/out/compile_options.json")
#: name -> (overrides without train.steps, examples a step)
SETUPS = {
    "clip": (
        "data.n=4096 data.d_image=64 data.d_text=64 encoder.h=8 train.batch_size=512 objective=clip",
        512,
    ),
    "mlp": ("data=rendered encoder=mlp objective=clip data.n=0 train.batch_size=256 eval.n_test=4000", 256),
    "mnist": ("experiment=multicolored_mnist mnist.k=10 mnist_objective=two_tower train.batch_size=128", 128),
}

_ONE = """
import json, sys, time, dataclasses, jax
from hydra import compose, initialize_config_dir
from synthetic import train as T
from synthetic.bench import CONF
from synthetic.config import register_configs, resolve, resolve_mnist
from synthetic.mnist.run import program
overrides, options = sys.argv[1].split(), json.loads(sys.argv[2])
register_configs()
with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
    cfg = compose("synthetic", overrides=overrides)
if "experiment=multicolored_mnist" in overrides:
    run = resolve_mnist(cfg)
    spec, hp = program(run, run.mnist.load())
else:
    run = resolve(cfg)
    spec, hp = T.split(run)
spec = dataclasses.replace(spec, progress=False)
keys = T.seed_keys(0, 0, run.seeds)
start = time.perf_counter()
compiled = T._run_many.lower(keys, hp, spec).compile(options)
mid = time.perf_counter()
jax.block_until_ready(compiled(keys, hp))
print(json.dumps({"compile_s": mid - start, "run_s": time.perf_counter() - mid}))
"""


def measure(overrides: str, options: dict) -> dict:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_ENABLE_COMPILATION_CACHE": "false"}
    proc = subprocess.run(
        [sys.executable, "-c", _ONE, overrides, json.dumps(options)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    out = json.loads(proc.stdout.splitlines()[-1])
    return {**{k: round(v, 3) for k, v in out.items()}, "load": [round(x, 2) for x in os.getloadavg()]}


def main() -> dict:
    report: dict = {
        "short_run": T.SHORT_RUN,
        "options": {"short": T.SHORT_RUN_OPTIONS, "long": T.COMPILER_OPTIONS},
    }
    for name, (overrides, per_step) in SETUPS.items():
        for factor in (1, 8):
            steps = max(1, factor * T.SHORT_RUN // per_step)
            args = f"{overrides} train.steps={steps} seeds=5 train.optimizer=adam"
            row = {kind: measure(args, opts) for kind, opts in report["options"].items()}
            total = {kind: r["compile_s"] + r["run_s"] for kind, r in row.items()}
            row["short_minus_long_s"] = round(total["short"] - total["long"], 3)
            report[f"{name}@{factor}x"] = row
            print(f"{name} {steps} steps x {per_step} ({factor}x SHORT_RUN): {row}", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
