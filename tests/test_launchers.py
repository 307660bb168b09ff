"""The SLURM and local launchers in conf/<app>/hydra/launcher compose for both apps and name real classes."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import get_class

import realdata.config
import synthetic.config

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.mark.parametrize("app", ["synthetic", "realdata"])
@pytest.mark.parametrize(
    ("launcher", "cls"),
    [
        ("slurm", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"),
        ("local", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"),
    ],
)
def test_launcher_composes(app, launcher, cls):
    synthetic.config.register_configs()  # the schemas the apps register at start-up
    realdata.config.register()
    with initialize_config_dir(config_dir=str(CONF / app), version_base="1.3"):
        cfg = compose(app, overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    conf = cfg.hydra.launcher
    assert conf._target_ == cls
    assert get_class(conf._target_).__name__ == cls.rsplit(".", 1)[1]
    # Our file's values override the plugin's defaults (so the file is really the one in use).
    assert conf.mem_gb == {"slurm": 32, "local": 4}[launcher]  # the plugin's default is None
    assert conf.submitit_folder.endswith(".submitit/%j")
