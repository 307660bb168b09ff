"""`python -m realdata`: zero-shot CounterAnimal evaluation (Hydra app, config conf/realdata.yaml).

python -m realdata data.root=/path/to/LAION-final model=clip_vit-b-32-quickgelu_laion400m_e31
python -m realdata -m data.root=... 'model=glob(*,exclude=tiny)' label_space=1v1000,1v20
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from realdata.config import register
from realdata.evaluate import evaluate, run_header

register()
log = logging.getLogger("realdata")


@hydra.main(version_base="1.3", config_path="../conf/realdata", config_name="realdata")
def main(cfg: DictConfig) -> float:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    start = time.time()
    try:
        results = evaluate(cfg, out_dir)
    except Exception as e:
        # a failed run still leaves a results.json saying why, so sweeps can be audited
        failed = {
            **run_header(cfg),
            "status": "failed",
            "error": f"{type(e).__name__}: {e}",
            "traceback": traceback.format_exc(),
            "config": OmegaConf.to_container(cfg, resolve=False),
            "wall_time_s": time.time() - start,
        }
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "results.json").write_text(json.dumps(failed, indent=2))
        raise
    m = results["metrics"]
    log.info(
        "%s %s [%s, %s]: common %.2f%%, counter %.2f%%, drop %.2f points (%d skipped) -> %s",
        cfg.model.name,
        cfg.model.pretrained,
        cfg.label_space,
        results["prompts"],
        100 * m["acc_common"],
        100 * m["acc_counter"],
        100 * m["drop"],
        m["n_skipped"],
        out_dir / "results.json",
    )
    return m["acc_counter"]


if __name__ == "__main__":
    main()
