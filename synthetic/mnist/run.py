"""One MultiColoredMNIST run: load the digits, train all seeds through synthetic.train's compiled loop
(vmapped over seeds), evaluate on ID, Rand and Rev; returns a results body (synthetic.results.body)."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from synthetic import train as T
from synthetic.components import expect
from synthetic.config import MNISTRunConfig, resolve_mnist, to_plain
from synthetic.mnist import data
from synthetic.results import body, convergence

METRICS = ("acc_id", "acc_rand", "acc_rev", "loss_final")


def check(cfg) -> None:
    """Every config value checked (components built, nothing loaded or compiled): the run record's
    ``check``."""
    resolve_mnist(cfg)


def program(run: MNISTRunConfig, arrays: dict[str, np.ndarray]) -> tuple[T.Spec, dict]:
    """(static Spec, hp) of a resolved run over its digits (``MultiColoredMNIST.load``): the digits travel
    in hp["data"] beside the traced probabilities."""
    n = len(arrays["train_digit"])
    batch = run.train.batch_size
    expect(batch <= n, "train.batch_size", batch, f"<= the {n} training digits")
    spec, hp = T.split(dataclasses.replace(run, mnist=run.mnist.for_program(n)))
    hp["data"] = {**hp["data"], **{name: jnp.asarray(a) for name, a in arrays.items()}}
    return spec, hp


def run(cfg, on_chunk=None) -> dict:
    """Train and evaluate every seed in one compiled program. Seed i (key fold_in(key(seed), i), as the
    Gaussian runs) draws the label noise, the colours, the initialisation, the batches and the test
    labels and colours; the digit images are shared (MNIST, or the offline digits of ``mnist.data_seed``).

    Metrics ``acc_id``, ``acc_rand``, ``acc_rev`` (accuracy against the noisy label, as in the paper) and
    ``loss_final`` (mean loss of the last 10% of steps); null for a seed whose loss went non-finite. All
    seeds run in one program, so ``on_chunk`` is never called. ``extra`` holds the data sizes, the Bayes
    reference accuracies, the loss curve and the timings.
    """
    run_cfg = resolve_mnist(cfg)
    spec, hp = program(run_cfg, run_cfg.mnist.load())
    mc = run_cfg.mnist
    raw, timings = T.run_seeds(spec, hp, T.seed_keys(run_cfg.seed, 0, run_cfg.seeds))
    first_bad = raw["first_bad_step"]
    ok = first_bad < 0
    per_seed = {
        m: [float(v) if good and np.isfinite(v) else None for v, good in zip(raw[m], ok, strict=True)]
        for m in METRICS
    }
    extra = {
        "n_train": spec.data.n,
        "n_test": int(hp["data"]["test_digit"].shape[0]),
        "bayes": data.bayes_reference(mc.k, mc.p_inv, mc.p_spu, mc.p_rev, mc.coupled, mc.construction),
        "shape_only_accuracy": mc.p_inv,
        "palette": list(data.PALETTE_NAMES[: mc.k]),
        "first_bad_step_per_seed": [int(s) if s >= 0 else None for s in first_bad],
        "loss_curve_steps": T.curve_index(spec).tolist(),
        "loss_curve_per_seed": raw["loss_curve"],  # non-finite points are null (json_safe)
        "loss_curve_mean_ok_seeds": raw["loss_curve"][ok].mean(0).tolist() if ok.any() else None,
        "compile_s": round(timings["compile_s"], 3),
        "run_s": round(timings["run_s"], 3),
        "xla_options": T.compiler_options(spec),  # how the program was compiled (None: backend defaults)
    }
    converge = convergence(raw["loss_windows"][ok], per_seed, extra["n_test"])
    diverged = int(first_bad[~ok].min()) if (~ok).any() else None
    return {"config": to_plain(run_cfg), **body(per_seed, diverged, extra, converge=converge)}
