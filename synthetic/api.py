"""The Python API beside ``python -m synthetic``: compose a config with Hydra and run it in this process.

    import synthetic
    doc = synthetic.run_point(["objective=clip", "data.p_spu=0.95", "seeds=3"])
    doc["metrics"]["acc_counter"]["mean"], doc["theory"]["acc_counter"]

``run_point`` is the command without the command line: the same config (``conf/synthetic``, or the copy an
installed wheel ships), the same checks, the same results.json (written to ``out_dir``, default
``results/synthetic/runs/<time>`` as the command's), the same tracking (``logger=...``) and
``resume=true``. Runs of one process share compiled programs, so a loop over traced values (p_spu, rho,
lr ...) compiles once.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """The config ``python -m synthetic <overrides>`` runs (Hydra's compose, without the ``hydra`` node)."""
    from hydra import compose as hydra_compose

    from synthetic.config import register_configs
    from theory.runrecord.configs import initialize

    register_configs()
    with initialize("synthetic"):
        return hydra_compose("synthetic", overrides=list(overrides))


def run_point(overrides: Sequence[str] = (), out_dir: str | Path | None = None) -> dict:
    """Run one config point (``overrides`` as on the command line); returns the results document."""
    from synthetic import app

    cfg = compose(overrides)
    if out_dir is None:
        out_dir = Path("results/synthetic/runs") / datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    app.enable_compilation_cache()
    return app.run_task(cfg, Path(out_dir))
