"""``python -m synthetic.bench``: training throughput and sweep time, printed and saved.

Measures, for a linear set-up (theorem62 at demo size) and an MLP set-up (nonlinear experiment, CLIP loss):
steps/s and seed-steps/s of the whole run compiled (scan under jit, vmapped over seeds) against a Python
loop calling a jitted vmapped step, compile time apart; then the wall time of the theorem62 sweep at the
demo's CPU size (11 runs, ``python -m synthetic -m``, cold compilation cache). Saved to
benchmarks/out/synthetic_bench.json.

    python -m synthetic.bench [--steps 1000] [--seeds 5] [--no-sweep]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax

from synthetic import train as T
from synthetic.config import (
    DataConfig,
    EncoderConfig,
    EvalConfig,
    ObjectiveConfig,
    SyntheticConfig,
    TrainConfig,
)
from synthetic.demo import CPU_SIZE
from synthetic.results import device_info, versions

OUT = Path("benchmarks/out/synthetic_bench.json")


def setups(steps: int, seeds: int) -> dict[str, SyntheticConfig]:
    return {
        "linear (linear_clip, n=d=256, h=16, full batch)": SyntheticConfig(
            seeds=seeds,
            data=DataConfig(n=256, d_image=256, d_text=256, sigma_xi=1.0, p_spu=0.9),
            encoder=EncoderConfig(name="linear", h=16, init_scale=0.1),
            objective=ObjectiveConfig(name="linear_clip"),
            train=TrainConfig(steps=steps, batch_size=0, lr=0.05, optimizer="sgd"),
            eval=EvalConfig(n_test=4000),
        ),
        "mlp (clip, rendered d=32, width 128 x 2, batch 256 fresh)": SyntheticConfig(
            seeds=seeds,
            data=DataConfig(n=0, d_image=32, d_text=32, sigma_xi=0.1, render_depth=2, p_spu=0.9),
            encoder=EncoderConfig(name="mlp", h=16, width=128, depth=2),
            objective=ObjectiveConfig(name="clip"),
            train=TrainConfig(steps=steps, batch_size=256, lr=1e-3, optimizer="adam"),
            eval=EvalConfig(n_test=4000),
        ),
    }


def _timed(fn) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def throughput(cfg: SyntheticConfig) -> dict:
    spec, hp = T.split_config(cfg)
    keys = T.seed_keys(0, 0, cfg.seeds)
    steps, seeds = cfg.train.steps, cfg.seeds
    out = {"steps": steps, "seeds": seeds}
    for mode, fn in (("compiled", T.run_seeds), ("python_loop", T.python_loop_run)):
        first = _timed(lambda fn=fn: fn(spec, hp, keys))  # compile + run
        run = _timed(lambda fn=fn: fn(spec, hp, keys))  # run only (compiled programs cached)
        out[mode] = {
            "first_call_s": round(first, 3),
            "run_s": round(run, 3),
            "steps_per_s": round(steps / run, 1),
            "seed_steps_per_s": round(steps * seeds / run, 1),
        }
    out["speedup_compiled_vs_loop"] = round(out["python_loop"]["run_s"] / out["compiled"]["run_s"], 2)
    return out


def sweep_time() -> dict:
    """Wall time of the theorem62 sweep at demo size, as a user runs it (cold compilation cache)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "synthetic", "-m", "experiment=theorem62", *CPU_SIZE["theorem62"]]
        cmd.append(f"hydra.sweep.dir={tmp}/sweep")
        env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": f"{tmp}/jax_cache"}
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        wall = time.perf_counter() - start
        runs = sorted(Path(tmp, "sweep").rglob("results.json"))
        per_run = [json.loads(p.read_text())["wall_time_s"] for p in runs]
    return {
        "overrides": CPU_SIZE["theorem62"],
        "runs": len(runs),
        "wall_s": round(wall, 1),
        "first_run_s": round(per_run[0], 1),
        "later_runs_mean_s": round(sum(per_run[1:]) / max(len(per_run) - 1, 1), 2),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m synthetic.bench")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--no-sweep", action="store_true", help="skip the theorem62 sweep timing")
    args = parser.parse_args(argv)
    report = {"device": device_info(), "versions": versions(), "cpu_count": os.cpu_count(), "setups": {}}
    for name, cfg in setups(args.steps, args.seeds).items():
        report["setups"][name] = r = throughput(cfg)
        c, p = r["compiled"], r["python_loop"]
        print(
            f"{name}: compiled {c['steps_per_s']} steps/s ({c['seed_steps_per_s']} seed-steps/s, first call "
            f"{c['first_call_s']}s); python loop {p['steps_per_s']} steps/s ({p['seed_steps_per_s']} "
            f"seed-steps/s); x{r['speedup_compiled_vs_loop']}",
            flush=True,
        )
    if not args.no_sweep:
        report["theorem62_sweep_demo_size"] = s = sweep_time()
        print(f"theorem62 sweep ({s['runs']} runs, demo size, cold cache): {s['wall_s']}s", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=1))
    print(f"saved {OUT}")
    return report


if __name__ == "__main__":
    main()
