"""A Gaussian-model run of ``python -m synthetic``: all seeds, then per-seed metrics and theory.

:func:`run` has the same contract as ``synthetic.mnist.run.run``: it returns
``{"per_seed": {metric: [float | None per seed]}, "status": "ok" | "diverged", "diverged_step": int | None,
"extra": {...}}``; a seed whose loss went non-finite has None metrics (never NaN) and the run is "diverged".
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from omegaconf import DictConfig

import theory
from synthetic import train as T
from synthetic.config import SyntheticConfig
from synthetic.results import json_safe

#: Per-seed outputs of the compiled run that are arrays, not scalar metrics (kept in "extra").
ARRAY_OUTPUTS = ("latent_product", "loss_curve", "first_bad_step")


def theory_applies(cfg: SyntheticConfig) -> str | None:
    """None when the exact theory describes this data, else why not."""
    d = cfg.data
    if d.name != "gaussian" or d.k != 2:
        return f"exact theory: the paper's binary model (data.name=gaussian, data.k=2), not {d.name} k={d.k}"
    if d.render_depth:
        return f"data.render_depth={d.render_depth}: rendered (nonlinear) data is outside the linear theory"
    return None


def theory_predictions(cfg: SyntheticConfig) -> dict:
    """Exact population predictions at this config's point (theory/), with the printed Theorem 6.2 bound.

    acc_<group> and acc_<group>_prompt_mean: zero-shot accuracy of the linearised-CLIP optimum (rank h for
    linear encoders); supervised_acc_<group>: the population least-squares classifier. Empty with a "note"
    when the data is not the paper's binary model.
    """
    why_not = theory_applies(cfg)
    if why_not:
        return {"note": why_not}
    model = T.data_model(cfg)
    rank = cfg.encoder.h if cfg.encoder.name == "linear" else None
    out = {}
    for g in theory.GROUPS:
        out[f"acc_{g}"] = float(theory.zero_shot_accuracy(model, g, "class", rank=rank))
        out[f"acc_{g}_prompt_mean"] = float(theory.zero_shot_accuracy(model, g, "mean", rank=rank))
        out[f"supervised_acc_{g}"] = float(theory.supervised_accuracy(model, g))
    out["drop"] = out["acc_common"] - out["acc_counter"]
    bounds = theory.paper_bounds(model)
    out.update({name: float(v) for name, v in bounds.items()})
    out["counter_accuracy_upper_bound"] = 1.0 - out["counter_error_lower_bound"]
    out["assumptions_hold"] = bool(theory.theorem_assumptions_hold(model))
    out["clip_optimum"] = theory.clip_optimum(model, rank=rank).tolist()
    return out


def seed_metrics(raw: dict[str, np.ndarray], cfg: SyntheticConfig) -> dict[str, list[float | None]]:
    """Scalar metrics per seed; diverged seeds get None."""
    bad = raw["first_bad_step"] >= 0
    per_seed = {name: v.astype(float) for name, v in raw.items() if name not in ARRAY_OUTPUTS}
    per_seed["drop"] = per_seed["acc_common"] - per_seed["acc_counter"]
    if "latent_product" in raw and cfg.objective.name == "linear_clip" and not theory_applies(cfg):
        K = theory.clip_optimum(T.data_model(cfg), rank=cfg.encoder.h)
        per_seed["dist_optimum"] = np.linalg.norm(raw["latent_product"] - K, axis=(1, 2)) / np.linalg.norm(K)
    return {
        name: [None if b or not np.isfinite(x) else float(x) for x, b in zip(v, bad, strict=True)]
        for name, v in per_seed.items()
    }


def run(cfg: SyntheticConfig | DictConfig, on_chunk: Callable[[dict], None] | None = None) -> dict:
    """Train and evaluate every seed; ``on_chunk`` receives the partial result after each seed chunk."""
    cfg = T.as_config(cfg)
    if cfg.seeds < 1:
        raise ValueError(f"seeds={cfg.seeds!r}: expected at least 1 seed")
    spec, hp = T.split_config(cfg)
    chunk = cfg.train.seed_chunk or cfg.seeds
    raws: list[dict[str, np.ndarray]] = []
    for start in range(0, cfg.seeds, chunk):
        raws.append(T.run_seeds(spec, hp, T.seed_keys(cfg.seed, start, min(chunk, cfg.seeds - start))))
        result = _collect(raws, cfg)
        if on_chunk is not None and start + chunk < cfg.seeds:
            on_chunk(result)
    return result


def _collect(raws: list[dict[str, np.ndarray]], cfg: SyntheticConfig) -> dict:
    raw = {name: np.concatenate([r[name] for r in raws]) for name in raws[0]}
    first_bad = raw["first_bad_step"]
    diverged = first_bad[first_bad >= 0]
    extra = {
        "seeds_done": int(first_bad.shape[0]),
        "first_bad_step_per_seed": [int(s) if s >= 0 else None for s in first_bad],
        "loss_curve_steps": T._curve_index(T.split_config(cfg)[0]).tolist(),
        "loss_curve_mean_ok_seeds": raw["loss_curve"][first_bad < 0].mean(0).tolist()
        if (first_bad < 0).any()
        else None,
    }
    if "latent_product" in raw:
        extra["latent_product_per_seed"] = json_safe(raw["latent_product"])  # None where a seed diverged
    return {
        "per_seed": seed_metrics(raw, cfg),
        "status": "diverged" if diverged.size else "ok",
        "diverged_step": int(diverged.min()) if diverged.size else None,
        "extra": extra,
    }
