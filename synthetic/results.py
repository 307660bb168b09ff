"""The body of a ``python -m synthetic`` results.json, the same for both kinds (Gaussian, MultiColoredMNIST).

The file itself is written by the one writer every app shares (:mod:`theory.runrecord`: atomic, strict JSON,
status ok | diverged | failed | interrupted, provenance). A body holds ``metrics.<name>`` (``mean``,
``std``, ``n``, ``per_seed``; a diverged seed is null, never NaN), ``status``, ``diverged_step``,
``seeds_done``, ``theory`` (the exact prediction where one applies) and ``extra``.
"""

from __future__ import annotations

import numpy as np

from theory.runrecord import json_safe

#: Distributions whose versions every synthetic results.json records.
PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "scipy", "hydra-core", "omegaconf")


def summarize(per_seed: list[float | None]) -> dict:
    """mean and std (ddof=1 when >= 2 seeds) over the seeds that produced a value; n counts them."""
    vals = np.array([v for v in per_seed if v is not None], float)
    return {
        "mean": float(vals.mean()) if vals.size else None,
        "std": float(vals.std(ddof=1)) if vals.size > 1 else (0.0 if vals.size else None),
        "n": int(vals.size),
        "per_seed": list(per_seed),
    }


def group_summaries(per_seed: dict[str, list]) -> dict[str, list]:
    """Add, per prompt suffix, the worst-group accuracy min(common, counter) and the signed drop
    common - counter (positive: the spurious feature helps on common and hurts on counter)."""
    out = dict(per_seed)
    for name in list(per_seed):
        if not name.startswith("acc_common"):
            continue
        suffix = name[len("acc_common") :]
        common, counter = per_seed[name], per_seed.get(f"acc_counter{suffix}")
        if counter is None:
            continue
        pairs = list(zip(common, counter, strict=True))
        out[f"acc_worst{suffix}"] = [None if a is None or b is None else min(a, b) for a, b in pairs]
        out[f"drop{suffix}"] = [None if a is None or b is None else a - b for a, b in pairs]
    return out


#: Not converged when, averaged over seeds, the loss fell by more than this fraction of its whole decrease
#: during the last tenth of training (compared with the tenth before it: windows smooth minibatch noise).
FALLING_TOL = 0.05
#: ... or when the seeds' accuracies disagree far beyond their sampling error: a standard deviation over
#: seeds above SPREAD_TOL and above SPREAD_SE times the binomial standard error of one seed's test estimate.
#: With a finite training set (data.n > 0) each seed also draws its own set, which moves a sensitive metric
#: by more than the test error alone (InfoNCE, the README's point, mean prompt: std 0.13 at n = 1024, flat
#: loss, and no spread with fresh samples), so the bar is seeds that landed in different places (std 0.41,
#: 0.04 to 1.0, with the linearised loss's SGD defaults), not that.
SPREAD_TOL, SPREAD_SE = 0.2, 10.0


def convergence(loss_curves_SxP: np.ndarray, per_seed: dict[str, list], n_test: int) -> dict:
    """Whether a finished run reached a stationary point its seeds agree on; ``converged`` False says why.

    ``loss_curves_SxP``: per seed (finite seeds only), the loss at P points spread over training;
    ``per_seed``: the accuracies per seed (None for a diverged seed); ``n_test``: test samples per group.
    """
    reasons: list[str] = []
    out: dict = {}
    curves = np.asarray(loss_curves_SxP, float)
    if curves.ndim == 2 and curves.shape[0] and curves.shape[1] >= 20 and np.isfinite(curves).all():
        mean_P = curves.mean(axis=0)
        tenth = max(curves.shape[1] // 10, 1)
        before, last = mean_P[-2 * tenth : -tenth].mean(), mean_P[-tenth:].mean()
        total = mean_P[:tenth].mean() - last
        frac = float((before - last) / abs(total)) if total != 0 else 0.0
        out["loss_drop_last_tenth"] = frac
        if frac > FALLING_TOL:
            reasons.append(
                f"the loss was still falling: {100 * frac:.1f}% of its decrease came in the last tenth of "
                f"training (> {100 * FALLING_TOL:g}%); train longer or with a larger learning rate"
            )
    spread = {}
    for name, vals in per_seed.items():
        v = np.array([x for x in vals if x is not None], float)
        if not name.startswith("acc_") or v.size < 2:
            continue
        sd, p = float(v.std(ddof=1)), float(np.clip(v.mean(), 0.0, 1.0))
        se = np.sqrt(p * (1 - p) / max(n_test, 1))
        spread[name] = sd
        if sd > SPREAD_TOL and sd > SPREAD_SE * se:
            reasons.append(
                f"seeds disagree on {name}: std {sd:.3f} over {v.size} seeds "
                f"(range {v.min():.3f}-{v.max():.3f}), far beyond the test-set sampling error {se:.4f}: "
                "the seeds stopped in different places"
            )
    out["seed_std"] = spread
    return {"converged": not reasons, "reasons": reasons, **out}


def body(
    per_seed: dict[str, list],
    diverged_step: int | None,
    extra: dict,
    theory: dict | None = None,
    converge: dict | None = None,
) -> dict:
    """A results body (plain JSON) from per-seed metrics; "diverged" when a seed's loss went non-finite.
    ``converge`` (:func:`convergence`) goes to ``convergence`` and its verdict to top-level ``converged``."""
    per_seed = group_summaries(per_seed)
    out = {
        "status": "diverged" if diverged_step is not None else "ok",
        "diverged_step": diverged_step,
        "seeds_done": max((len(v) for v in per_seed.values()), default=0),
        "metrics": {name: summarize(v) for name, v in sorted(per_seed.items())},
        "theory": theory or {},
        "extra": extra,
    }
    if converge is not None:
        out.update(converged=converge["converged"], convergence=converge)
    return json_safe(out)


def device_info() -> dict:
    import jax

    devices = jax.local_devices()
    return {"backend": jax.default_backend(), "count": len(devices), "kind": devices[0].device_kind}
