"""``python -m synthetic``: the Hydra app (config: conf/synthetic/synthetic.yaml; see docs/synthetic.md).

python -m synthetic data.p_spu=0.9 objective=clip seeds=5
python -m synthetic -m experiment=theorem62
"""

import os
import sys

import hydra
from omegaconf import DictConfig

from synthetic import app
from synthetic.config import register_configs
from theory.runrecord import ConfigError, remove_if_unused
from theory.runrecord.configs import config_path

register_configs()


@hydra.main(version_base="1.3", config_path=config_path("synthetic"), config_name="synthetic")
def main(cfg: DictConfig) -> dict:
    try:
        return app.main(cfg)
    except ConfigError as e:  # found before any work: one line, and no run folder left behind
        from hydra.core.hydra_config import HydraConfig

        remove_if_unused(HydraConfig.get().runtime.output_dir)
        print(f"[synthetic] config error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:
        # results.json already says "interrupted"; exit now rather than wait for (or abort in) the XLA thread
        print(
            "[synthetic] interrupted (SIGINT): results.json says status interrupted",
            file=sys.stderr,
            flush=True,
        )
        sys.stdout.flush()
        os._exit(130)


if __name__ == "__main__":
    main()
