"""results.json: one writer for every run of ``python -m synthetic`` (Gaussian and MultiColoredMNIST)."""

from __future__ import annotations

import json
import math
import platform
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

RESULTS_FILE = "results.json"
PACKAGES = ("jax", "jaxlib", "flax", "optax", "chex", "numpy", "scipy", "hydra-core", "omegaconf")


def summarize(per_seed: list[float | None]) -> dict:
    """mean and std (ddof=1 when >= 2 seeds) over the seeds that produced a value; n counts them."""
    vals = np.array([v for v in per_seed if v is not None], float)
    return {
        "mean": float(vals.mean()) if vals.size else None,
        "std": float(vals.std(ddof=1)) if vals.size > 1 else (0.0 if vals.size else None),
        "n": int(vals.size),
        "per_seed": list(per_seed),
    }


def versions() -> dict:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def device_info() -> dict:
    import jax

    devices = jax.local_devices()
    return {"backend": jax.default_backend(), "count": len(devices), "kind": devices[0].device_kind}


def json_safe(x):
    """Plain JSON: numpy scalars/arrays to Python, non-finite floats to None (never NaN in results)."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_safe(v) for v in x]
    if isinstance(x, np.ndarray):
        return json_safe(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_results(
    out_dir: Path,
    config: dict,
    result: dict,
    theory: dict | None,
    wall_time_s: float,
    status: str | None = None,
    error: str | None = None,
) -> Path:
    """Write ``out_dir/results.json`` from a run result {"per_seed", "status", "diverged_step", "extra"}.

    ``status`` overrides the result's (e.g. "partial" while seeds remain, "error" after a crash).
    """
    doc = {
        "config": config,
        "status": status or result["status"],
        "diverged_step": result.get("diverged_step"),
        "metrics": {name: summarize(v) for name, v in sorted(result["per_seed"].items())},
        "theory": theory or {},
        "wall_time_s": wall_time_s,
        "versions": versions(),
        "device": device_info(),
        "extra": result.get("extra", {}),
    }
    if error is not None:
        doc["error"] = error
    path = Path(out_dir) / RESULTS_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(json_safe(doc), indent=1, allow_nan=False))
    tmp.replace(path)  # atomic: a crash never leaves half a file
    return path
