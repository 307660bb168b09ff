"""The Hydra task of ``python -m synthetic``: run one config point, write results.json beside Hydra's."""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from synthetic.config import TASKS
from synthetic.results import write_results


def enable_compilation_cache() -> None:
    """Persist XLA compilations under .cache/jax (or $JAX_COMPILATION_CACHE_DIR) so reruns start fast."""
    import jax

    jax.config.update("jax_compilation_cache_dir", os.environ.get("JAX_COMPILATION_CACHE_DIR", ".cache/jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def run_task(cfg: DictConfig, out_dir: Path) -> dict:
    """Run the configured task; write ``out_dir/results.json`` (also after each seed chunk and on a crash)."""
    if cfg.task not in TASKS:
        raise ValueError(f"task={cfg.task!r}: expected one of {list(TASKS)}")
    start = time.time()
    config = OmegaConf.to_container(cfg, resolve=True)
    theory: dict | None = None
    last: dict = {"per_seed": {}, "status": "partial", "diverged_step": None, "extra": {}}

    def keep(partial: dict) -> None:  # finished seeds are on disk before the next chunk starts
        last.update(partial)
        write_results(out_dir, config, partial, theory, time.time() - start, status="partial")

    try:
        if cfg.task == "multicolored_mnist":
            from synthetic.mnist.run import run as run_mnist

            result = run_mnist(cfg)
        else:
            from synthetic import run as gaussian

            theory = gaussian.theory_predictions(gaussian.T.as_config(cfg))
            result = gaussian.run(cfg, on_chunk=keep)
    except Exception:
        write_results(
            out_dir, config, last, theory, time.time() - start, status="error", error=traceback.format_exc()
        )
        raise
    path = write_results(out_dir, config, result, theory, time.time() - start)
    summary = {
        name: v for name, v in _means(result).items() if name.startswith("acc_") and "prompt" not in name
    }
    print(f"[synthetic] {result['status']} in {time.time() - start:.1f}s -> {path}  {summary}", flush=True)
    return {"status": result["status"], "results": str(path), **summary}


def _means(result: dict) -> dict:
    out = {}
    for name, vals in result["per_seed"].items():
        ok = [v for v in vals if v is not None]
        out[name] = round(sum(ok) / len(ok), 4) if ok else None
    return out


def main(cfg: DictConfig) -> dict:
    enable_compilation_cache()
    return run_task(cfg, Path(HydraConfig.get().runtime.output_dir))
