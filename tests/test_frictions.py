"""Small frictions (issue 22): loader workers never above the cores by default, ruff lints the package's
folders only (a user's folder inside the checkout is not the package), the README's paths exist."""

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from realdata.config import loader_workers

ROOT = Path(__file__).resolve().parents[1]


def test_default_loader_workers_do_not_exceed_the_cores():
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert loader_workers(None) == min(4, cores) and loader_workers(7) == 7 and loader_workers(0) == 0
    from realdata.config import RealdataConfig

    assert RealdataConfig().num_workers is None  # the default (conf/realdata/realdata.yaml sets no key)


def test_ruff_includes_every_tracked_python_folder_and_nothing_else():
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["include"]
    folders = {p.split("/", 1)[0] for p in include if "/" in p}
    try:
        tracked = subprocess.run(
            ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    assert {p.split("/", 1)[0] for p in tracked} <= folders


def test_readme_names_config_paths_that_exist():
    text = (ROOT / "README.md").read_text()
    paths = set(re.findall(r"`(conf/[\w./-]+\.yaml)`", text))
    assert "conf/realdata/hydra/launcher/slurm.yaml" in paths
    assert all((ROOT / p).is_file() for p in paths), [p for p in paths if not (ROOT / p).is_file()]
