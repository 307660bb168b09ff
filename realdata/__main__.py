"""`python -m realdata`: zero-shot CounterAnimal evaluation (Hydra app, config conf/realdata/realdata.yaml).

python -m realdata data.root=/path/to/LAION-final model=clip_vit-b-32-quickgelu_laion400m_e31
python -m realdata -m data.root=... 'model=glob(*,exclude=[tiny,mllm_*])' label_space=1v1000,1v20
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from realdata.config import register
from realdata.evaluate import evaluate
from theory.runrecord import ConfigError, remove_if_unused
from theory.runrecord.configs import check_not_shadowed, config_path

register()


def zoo_entry_of(choice: str | None, overrides) -> str | None:
    """The zoo entry (conf/realdata/model/) this run is exactly: the chosen entry, unless a model.* key was
    overridden (then the run is another model and carries none of the entry's metadata)."""
    changed = [o for o in overrides if o.lstrip("+~").split("=", 1)[0].startswith("model.")]
    return None if changed or not choice else choice


@hydra.main(version_base="1.3", config_path=config_path("realdata"), config_name="realdata")
def main(cfg: DictConfig) -> float:
    hc = HydraConfig.get()
    entry = zoo_entry_of(hc.runtime.choices.get("model"), hc.overrides.task)
    try:
        check_not_shadowed(hc.runtime.config_sources)  # a user YAML named like a built-in
        results = evaluate(cfg, Path(hc.runtime.output_dir), zoo_entry=entry)
    except ConfigError as e:  # found before any work: one line, and no run folder left behind
        remove_if_unused(hc.runtime.output_dir)
        print(f"[realdata] config error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    return results["metrics"]["acc_counter"]


if __name__ == "__main__":
    main()
