"""The body of a ``python -m synthetic`` results.json, the same for both kinds (Gaussian, MultiColoredMNIST).

The file itself is written by the one writer every app shares (:mod:`runrecord`: atomic, strict JSON,
status ok | diverged | failed | interrupted, provenance). A body holds ``metrics.<name>`` (``mean``,
``std``, ``n``, ``per_seed``; a diverged seed is null, never NaN), ``status``, ``diverged_step``,
``seeds_done``, ``theory`` (the exact prediction where one applies) and ``extra``.
"""

from __future__ import annotations

import numpy as np

from runrecord import json_safe

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


def body(
    per_seed: dict[str, list], diverged_step: int | None, extra: dict, theory: dict | None = None
) -> dict:
    """A results body (plain JSON) from per-seed metrics; "diverged" when a seed's loss went non-finite."""
    per_seed = group_summaries(per_seed)
    return json_safe(
        {
            "status": "diverged" if diverged_step is not None else "ok",
            "diverged_step": diverged_step,
            "seeds_done": max((len(v) for v in per_seed.values()), default=0),
            "metrics": {name: summarize(v) for name, v in sorted(per_seed.items())},
            "theory": theory or {},
            "extra": extra,
        }
    )


def device_info() -> dict:
    import jax

    devices = jax.local_devices()
    return {"backend": jax.default_backend(), "count": len(devices), "kind": devices[0].device_kind}
