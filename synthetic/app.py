"""The Hydra task of ``python -m synthetic``: run one config point under the shared run contract.

The config's ``task`` names the experiment kind; its ``run(cfg, on_chunk)`` returns a results body and
:func:`theory.runrecord.recorded_run` writes results.json (at the start, after each seed chunk, at the end,
and on failure or Ctrl-C).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from synthetic.config import resolve, resolve_mnist, to_plain
from synthetic.results import PACKAGES, device_info
from theory.runrecord import (
    NOT_FINISHED,
    ConfigError,
    expect,
    finished_result,
    provenance,
    recorded_run,
    track,
    write_results,
)

#: The app's logger: Hydra writes it to the console and to <run folder>/synthetic.log.
log = logging.getLogger("synthetic")

#: Experiment kind -> the module whose ``run(cfg, on_chunk)`` runs it.
KINDS = {"gaussian": "synthetic.run", "multicolored_mnist": "synthetic.mnist.run"}


def enable_compilation_cache() -> None:
    """Persist XLA compilations under .cache/jax (or $JAX_COMPILATION_CACHE_DIR) so reruns start fast."""
    import jax

    jax.config.update("jax_compilation_cache_dir", os.environ.get("JAX_COMPILATION_CACHE_DIR", ".cache/jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def recorded_config(cfg: DictConfig) -> dict:
    """The config a finished run's results.json holds: its components built, with every field and its
    ``_target_``."""
    return to_plain(resolve(cfg) if cfg.task == "gaussian" else resolve_mnist(cfg))


def jax_devices() -> dict:
    """``device_info()``, or a ConfigError naming JAX_PLATFORMS when JAX cannot start the backend it asks
    for (``cuda``/``gpu`` without a GPU: JAX's own error is a bare AssertionError or a ROCm one)."""
    try:
        return device_info()
    except Exception as e:
        asked = os.environ.get("JAX_PLATFORMS")
        if not asked:
            raise
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise ConfigError(
            f"JAX_PLATFORMS={asked!r}: JAX cannot start that platform on this machine ({msg}); "
            "unset JAX_PLATFORMS or set JAX_PLATFORMS=cpu"
        ) from None


def _head(cfg: DictConfig) -> dict:
    return {**provenance(cfg.task, PACKAGES, jax_devices()), "config": to_plain(cfg)}


def write_pending(cfg: DictConfig, out_dir: Path, error: str = NOT_FINISHED) -> None:
    """results.json of a job that has not finished, as the run contract writes it at a run's start
    (status interrupted); the batched launcher writes it for every job of a sweep before any runs. A
    results.json that is already finished (ok, diverged, failed) is left as it is."""
    path = Path(out_dir) / "results.json"
    if path.exists():
        try:
            if json.loads(path.read_text()).get("status") != "interrupted":
                return
        except (OSError, ValueError):
            pass
    write_results(out_dir, {**_head(cfg), "status": "interrupted", "error": error, "wall_time_s": 0.0})


def run_task(cfg: DictConfig, out_dir: Path) -> dict:
    """Run the configured task, write ``out_dir/results.json`` and log it to ``cfg.logger``; returns the
    results document. ``resume=true``: a finished run of the same config in out_dir is returned as it is."""
    expect(cfg.task in KINDS, "task", cfg.task, f"one of {list(KINDS)}")
    if cfg.get("resume"):
        try:
            done, why = finished_result(out_dir, recorded_config(cfg))
        except Exception as e:  # a bad config fails below, under the run contract
            done, why = None, f"the config does not resolve ({type(e).__name__})"
        log.info("resume: %s%s", why, "; skipped" if done else "; running it")
        if done:
            return done
    module = importlib.import_module(KINDS[cfg.task])
    try:
        doc = recorded_run(
            out_dir,
            _head(cfg),
            lambda checkpoint: module.run(cfg, on_chunk=checkpoint, **_save_dir(cfg, out_dir)),
            check=lambda: module.check(cfg),
        )
    except Exception:
        try:  # the failed run too, with its status; a tracker error must not hide the run's own
            track.log_results(cfg.get("logger"), out_dir, str(out_dir))
        except Exception as e:
            log.error("logging the failed run to %s failed: %r", cfg.logger._target_, e)
        raise
    track.log_results(cfg.get("logger"), out_dir, str(out_dir))
    return doc


def _save_dir(cfg: DictConfig, out_dir: Path) -> dict:
    save = cfg.task == "gaussian" and OmegaConf.select(cfg, "train.save", default=False)
    return {"save_dir": out_dir} if save else {}  # train.save: Gaussian runs only (MNIST refuses it)


def summary(doc: dict, out_dir: Path) -> dict:
    """What the Hydra task returns and prints: status, results path, the accuracy means."""
    summary = {
        name: round(m["mean"], 4)
        for name, m in doc["metrics"].items()
        if name.startswith("acc_") and "prompt" not in name and m["mean"] is not None
    }
    log.info("%s in %.1fs -> %s  %s", doc["status"], doc["wall_time_s"], out_dir / "results.json", summary)
    if doc.get("converged") is False:  # "ok" is not the whole story: say so where the user looks
        why = "; ".join(doc["convergence"]["reasons"])
        log.warning("NOT CONVERGED (%s); results.json says converged: false", why)
    return {"status": doc["status"], "results": str(out_dir / "results.json"), **summary}


def main(cfg: DictConfig) -> dict:
    from theory.runrecord.configs import check_not_shadowed

    check_not_shadowed(HydraConfig.get().runtime.config_sources)  # a user YAML named like a built-in
    enable_compilation_cache()
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    return summary(run_task(cfg, out_dir), out_dir)
