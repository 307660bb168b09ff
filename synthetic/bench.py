"""``python -m synthetic.bench``: training speed against a Python loop and a PyTorch peer, printed and saved.

Three set-ups, each one ``python -m synthetic`` command (:data:`SETUPS`): the issue-13 problem (n = 4096
pairs, d = 64, h = 8, minibatch 512, Adam, 3000 steps, 5 seeds) with ``linear_clip`` and with ``clip``, and
an MLP set-up (rendered data, MLP 128 x 2 towers, InfoNCE, fresh batches of 256). For each:

* **in process**: the compiled whole run (:func:`synthetic.train.run_seeds`: scan under jit, vmapped over
  seeds) against a Python loop calling a jitted, vmapped step (:func:`python_loop`, built from
  ``train.setup``/``step``/``_finish``), compile and run time apart;
* **whole processes**: wall time of ``python -m synthetic ...`` with a cold and with a warm compilation
  cache against ``python -m synthetic.bench_torch ...`` (a plain per-seed PyTorch loop on the same problem,
  its own process, ``torch.set_num_threads`` = the core count, and 1 thread for reference), when torch is
  installed; the ratios are measured in this run;
* for the MLP set-up, GFLOP/s of the compiled run (matmul FLOPs, counted below) and its fraction of this
  machine's f32 matmul rate, measured here (numpy and jax, 2048 x 2048).

The load average is recorded beside every timing. Saved to benchmarks/out/synthetic_bench.json.

    python -m synthetic.bench [--setups linear_clip,clip,mlp] [--no-torch] [--torch-threads 2,1]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from synthetic import train as T
from synthetic.results import PACKAGES, device_info
from theory.runrecord import versions

OUT = Path("benchmarks/out/synthetic_bench.json")
CONF = Path(__file__).resolve().parent.parent / "conf" / "synthetic"

_PROBLEM = "data.n=4096 data.d_image=64 data.d_text=64 encoder.h=8 train.batch_size=512 train.optimizer=adam"
#: name -> (python -m synthetic overrides, python -m synthetic.bench_torch arguments): the same problem
SETUPS = {
    "linear_clip": (
        f"{_PROBLEM} train.steps=3000 seeds=5 objective=linear_clip",
        "--objective linear_clip --n 4096 --d 64 --h 8 --batch 512 --steps 3000 --seeds 5",
    ),
    "clip": (
        f"{_PROBLEM} train.steps=3000 seeds=5 objective=clip",
        "--objective clip --n 4096 --d 64 --h 8 --batch 512 --steps 3000 --seeds 5",
    ),
    "mlp": (
        "data=rendered encoder=mlp objective=clip data.n=0 train.batch_size=256 train.optimizer=adam "
        "train.lr=0.001 train.steps=1000 seeds=5 eval.n_test=4000",
        "--objective clip --encoder mlp --render-depth 2 --sigma-xi 0.1 --n 0 --d 32 --h 16 --batch 256 "
        "--lr 0.001 --steps 1000 --seeds 5 --n-test 4000",
    ),
}


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def compose(overrides: str):
    """The resolved run of ``python -m synthetic <overrides>`` (same config path as the command line)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from synthetic.config import register_configs, resolve

    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return resolve(hydra_compose("synthetic", overrides=overrides.split()))


# ---- in process: the compiled whole run against a Python loop over a jitted step ----


def python_loop(spec: T.Spec, hp: dict, keys: jax.Array) -> tuple[dict, float, float]:
    """The same run as ``train.run_seeds`` as a Python loop over a jitted, vmapped step (each program
    compiled with the same options); returns (per-seed outputs, compile s, run s)."""
    start = time.perf_counter()
    opts = T.compiler_options(spec)  # as train.run_seeds
    setup = jax.jit(jax.vmap(T.setup, in_axes=(0, None, None)), static_argnums=2)
    setup = setup.lower(keys, hp, spec).compile(opts)
    carry, fixed = setup(keys, hp)
    t0 = jnp.int32(0)
    step = jax.jit(jax.vmap(T.step, in_axes=(0, None, 0, None, None)), static_argnums=4, donate_argnums=0)
    step = step.lower(carry, t0, fixed, hp, spec).compile(opts)
    losses0 = jnp.zeros((keys.shape[0], spec.train.steps))
    finish = jax.jit(jax.vmap(T._finish, in_axes=(0, 0, 0, None, None)), static_argnums=4)
    finish = finish.lower(carry, fixed, losses0, hp, spec).compile(opts)
    compiled = time.perf_counter()
    carry, fixed = setup(keys, hp)
    losses = []
    for t in range(spec.train.steps):
        carry, loss = step(carry, jnp.int32(t), fixed, hp)
        losses.append(loss)
    out = jax.block_until_ready(finish(carry, fixed, jnp.stack(losses, 1), hp))
    return {k: np.asarray(v) for k, v in out.items()}, compiled - start, time.perf_counter() - compiled


def in_process(name: str, overrides: str) -> dict:
    run = compose(overrides)
    spec, hp = T.split(run, progress=False)
    keys = T.seed_keys(run.seed, 0, run.seeds)
    seed_steps = run.seeds * run.train.steps
    T.compiled_run.cache_clear()
    before = load()
    compiled, first = T.run_seeds(spec, hp, keys)
    compile_s, runs = first["compile_s"], [first["run_s"]]
    runs.append(T.run_seeds(spec, hp, keys)[1]["run_s"])  # the program is cached: run time only
    looped, loop_compile_s, loop_run_s = python_loop(spec, hp, keys)
    run_s = min(runs)
    out = {
        "overrides": overrides,
        "seeds": run.seeds,
        "steps": run.train.steps,
        "load_before": before,
        "load_after": load(),
        "compiled": {
            "compile_s": round(compile_s, 2),
            "run_s": [round(r, 3) for r in runs],
            "seed_steps_per_s": round(seed_steps / run_s, 1),
        },
        "python_loop": {
            "compile_s": round(loop_compile_s, 2),
            "run_s": round(loop_run_s, 3),
            "seed_steps_per_s": round(seed_steps / loop_run_s, 1),
        },
        "speedup_compiled_vs_loop": round(loop_run_s / run_s, 2),
        # the loop runs the same programs on the same keys: the same numbers up to float reassociation
        "max_abs_diff_loop_vs_compiled": {
            k: float(np.max(np.abs(compiled[k].astype(float) - looped[k].astype(float))))
            for k in compiled
            if k.startswith("acc_")
        },
    }
    if name == "mlp":
        flops = mlp_flops_per_seed_step(run)
        out["flops_per_seed_step"] = flops
        out["gflops"] = round(flops * seed_steps / run_s / 1e9, 2)
    return out


def mlp_flops_per_seed_step(run) -> int:
    """Matmul FLOPs of one seed's step: both towers forward and backward (3x forward; the first layer's
    input gradient is not needed but counted), the B x B logits forward and backward (3x) and the data's
    rendering (forward only). Elementwise work (activations, softmax, Adam) is not counted."""
    d, e, b = run.data, run.encoder, run.train.batch_size
    dims = [d.d_image] + [e.width] * e.depth + [e.h]
    tower = sum(2 * i * o for i, o in zip(dims[:-1], dims[1:], strict=True))
    logits = 2 * b * e.h
    render = 2 * d.d_image * d.d_image * d.render_depth
    return int(b * (3 * 2 * tower + 3 * logits + render))


def matmul_rate(size: int = 2048, seconds: float = 2.0) -> dict:
    """Best f32 GFLOP/s of a size x size matmul with numpy (its BLAS) and with jax (XLA), over ~seconds."""
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((size, size), dtype=np.float32)
    dot = jax.jit(jnp.dot)
    ja, jb = jnp.asarray(a), jnp.asarray(b)
    jax.block_until_ready(dot(ja, jb))
    rates = {}
    for name, fn in (("numpy", lambda: a @ b), ("jax", lambda: jax.block_until_ready(dot(ja, jb)))):
        best, end = float("inf"), time.perf_counter() + seconds
        while time.perf_counter() < end:
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        rates[name] = round(2 * size**3 / best / 1e9, 1)
    return {"size": size, "gflops": rates, "best_gflops": max(rates.values()), "load": load()}


# ---- whole processes: python -m synthetic against python -m synthetic.bench_torch ----


def timed_process(cmd: list[str], env: dict | None = None, timeout: float | None = None) -> dict:
    before = load()
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"wall_s": None, "timed_out_after_s": timeout, "load_before": before, "load_after": load()}
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return {"wall_s": round(wall, 2), "load_before": before, "load_after": load(), "stderr": proc.stderr}


def jax_process(overrides: str, tmp: Path, cache: Path, label: str) -> dict:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(cache)}
    cmd = [sys.executable, "-m", "synthetic", *overrides.split(), f"hydra.run.dir={tmp}/{label}"]
    r = timed_process(cmd, env)
    doc = json.loads(Path(tmp, label, "results.json").read_text())
    r.pop("stderr")
    accs = {k: round(m["mean"], 4) for k, m in doc["metrics"].items() if k.startswith("acc_") and m["mean"]}
    r.update(compile_s=doc["extra"]["compile_s"], run_s=doc["extra"]["run_s"], status=doc["status"], acc=accs)
    return r


def torch_process(args: str, threads: int, tmp: Path, label: str, timeout: float) -> dict:
    out = Path(tmp, f"{label}.json")
    cmd = [sys.executable, "-m", "synthetic.bench_torch", *args.split(), "--threads", str(threads)]
    r = timed_process([*cmd, "--json", str(out)], timeout=timeout)
    if r["wall_s"] is None:  # stopped: the ratio is at least timeout / jax wall time
        return {**r, "threads": threads}
    r.pop("stderr")
    doc = json.loads(out.read_text())
    acc = {k: round(v, 4) for k, v in doc["mean"].items() if k.startswith("acc_")}
    r.update(
        threads=threads, loop_s=doc["loop_s"], acc=acc, all_finite=all(s["finite"] for s in doc["per_seed"])
    )
    return r


def whole_processes(
    name: str, overrides: str, torch_args: str | None, threads: list[int], timeout: float
) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp, "jax_cache")
        out: dict[str, Any] = {
            "command": f"python -m synthetic {overrides}",
            "jax_cold_cache": jax_process(overrides, Path(tmp), cache, "cold"),
            "jax_warm_cache": jax_process(overrides, Path(tmp), cache, "warm"),
        }
        if torch_args is None:
            return out
        out["torch_command"] = f"python -m synthetic.bench_torch {torch_args} --threads N"
        for n in threads:
            out[f"torch_{n}_threads"] = torch_process(torch_args, n, Path(tmp), f"torch{n}", timeout)
    # a torch run stopped at the timeout counts as the timeout: its ratio is then a lower bound (">=")
    walls = {n: out[f"torch_{n}_threads"]["wall_s"] or timeout for n in threads}
    for mode in ("cold", "warm"):
        jax_wall = out[f"jax_{mode}_cache"]["wall_s"]
        out[f"ratio_{mode}"] = {f"torch_{n}_threads": round(walls[n] / jax_wall, 2) for n in threads}
        out[f"ratio_{mode}"]["best_torch"] = round(min(walls.values()) / jax_wall, 2)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m synthetic.bench")
    parser.add_argument("--setups", default=",".join(SETUPS), help=f"comma-separated, of {list(SETUPS)}")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer")
    parser.add_argument("--no-process", action="store_true", help="skip the whole-process comparison")
    parser.add_argument("--torch-threads", default=f"{os.cpu_count()},1", help="torch thread counts to run")
    parser.add_argument("--torch-timeout", type=float, default=600, help="stop a torch process after (s)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    has_torch = importlib.util.find_spec("torch") is not None and not args.no_torch
    threads = sorted({int(t) for t in args.torch_threads.split(",")}, reverse=True)
    start = time.time()
    report: dict[str, Any] = {
        "device": device_info(),
        "versions": versions((*PACKAGES, "torch")),
        "cpu_count": os.cpu_count(),
        "compiler_options": T.COMPILER_OPTIONS,
        "matmul_rate": matmul_rate(),
        "setups": {},
    }
    peak = report["matmul_rate"]["best_gflops"]
    print(f"f32 matmul rate: {report['matmul_rate']['gflops']} GFLOP/s (load {load()})", flush=True)
    for name in args.setups.split(","):
        overrides, torch_args = SETUPS[name]
        r = report["setups"][name] = in_process(name, overrides)
        c, p = r["compiled"], r["python_loop"]
        line = (
            f"{name}: compiled {c['seed_steps_per_s']} seed-steps/s (compile {c['compile_s']} s, run "
            f"{min(c['run_s'])} s); python loop {p['seed_steps_per_s']} seed-steps/s (compile "
            f"{p['compile_s']} s); x{r['speedup_compiled_vs_loop']} (load {r['load_before']})"
        )
        if "gflops" in r:
            r["fraction_of_matmul_rate"] = round(r["gflops"] / peak, 3)
            line += f"; {r['gflops']} GFLOP/s = {r['fraction_of_matmul_rate']:.1%} of the matmul rate"
        print(line, flush=True)
        if args.no_process:
            continue
        peer = torch_args if has_torch else None
        w = r["processes"] = whole_processes(name, overrides, peer, threads, args.torch_timeout)
        cold, warm = w["jax_cold_cache"], w["jax_warm_cache"]
        print(
            f"  python -m synthetic: {cold['wall_s']} s cold cache (compile {cold['compile_s']} s, run "
            f"{cold['run_s']} s), {warm['wall_s']} s warm (load {cold['load_before']})",
            flush=True,
        )
        for n in threads if has_torch else ():
            t, key = w[f"torch_{n}_threads"], f"torch_{n}_threads"
            if t["wall_s"] is None:
                print(
                    f"  pytorch, {n} thread(s): stopped at {args.torch_timeout} s: x>={w['ratio_cold'][key]}"
                )
                continue
            print(
                f"  pytorch, {n} thread(s): {t['wall_s']} s (loop {t['loop_s']} s, load {t['load_before']})"
                f" -> x{w['ratio_cold'][key]} cold, x{w['ratio_warm'][key]} warm",
                flush=True,
            )
    report["total_s"] = round(time.time() - start, 1)  # the benchmark's own runtime (README states it)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"saved {args.out} (the benchmark took {report['total_s']} s)")
    return report


if __name__ == "__main__":
    main()
