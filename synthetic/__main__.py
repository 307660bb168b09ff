"""``python -m synthetic``: the Hydra app (config: conf/synthetic.yaml; see docs/synthetic.md).

python -m synthetic data.p_spu=0.9 objective=clip seeds=5
python -m synthetic -m experiment=theorem62
"""

import hydra
from omegaconf import DictConfig

from synthetic import app
from synthetic.config import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="../conf/synthetic", config_name="synthetic")
def main(cfg: DictConfig) -> dict:
    return app.main(cfg)


if __name__ == "__main__":
    main()
