"""Re-analysis without the heavy imports: a cached `python -m realdata` re-run imports neither torch nor
scipy, and the readers (synthetic.aggregate, paper_figs) import no JAX, torch or scipy at start-up."""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "scipy", "jax", "open_clip", "torchvision", "sklearn")

#: Runs a module as `python -m` does, refusing any import of torch or scipy (an ImportError names it).
BLOCKED = """
import runpy, sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "scipy"):
            raise ImportError(f"{name} imported on the cached path")
sys.meta_path.insert(0, Refuse())
sys.argv[0] = sys.argv[1]
del sys.argv[1]
runpy.run_module(sys.argv[0], run_name="__main__")
"""


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_cached_realdata_rerun_imports_neither_torch_nor_scipy(tmp_path):
    from hydra import compose, initialize_config_dir

    from realdata.config import register
    from realdata.evaluate import evaluate
    from realdata.fixture import TINY_CONFIG
    from realdata.fixture import main as fixture_main

    assert fixture_main([str(tmp_path / "fx"), "--classes", "1"]) == 0
    cli = [f"data.root={tmp_path / 'fx' / 'data'}", "device=cpu", "num_workers=0", "progress=false"]
    cli += ["model.name=tiny-clip", f"model.pretrained={tmp_path / 'fx' / 'tiny-clip.pt'}"]
    cli += [f"model.config_file={TINY_CONFIG}", f"cache_dir={tmp_path / 'cache'}"]
    register()
    with initialize_config_dir(config_dir=str(ROOT / "conf" / "realdata"), version_base="1.3"):
        cfg = compose("realdata", overrides=[*cli, "label_space=45way"])
    fresh = evaluate(cfg, tmp_path / "a")  # in this process: builds the model, fills the caches
    assert fresh["status"] == "ok"
    cli += ["label_space=1v1000", f"hydra.run.dir={tmp_path / 'b'}"]
    cmd = [sys.executable, "-c", BLOCKED, "realdata", *cli]
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cached = json.loads((tmp_path / "b" / "results.json").read_text())
    assert cached["status"] == "ok" and cached["device"] == "cpu"
    assert cached["feature_cache"] == fresh["feature_cache"]  # the features were read, not extracted again


@pytest.mark.slow
def test_readers_start_without_jax_torch_or_scipy_and_theory_binds_on_first_use():
    code = "import sys, synthetic.aggregate, paper_figs.__main__, theory; "
    code += "print(sorted(set(sys.modules) & set(%r))); theory.zero_shot_accuracy; print(theory.exact.GROUPS)"
    proc = subprocess.run(
        [sys.executable, "-c", code % (HEAVY,)], cwd=ROOT, env=_env(), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["[]", "('common', 'counter', 'balanced', 'id')"]


def test_every_public_theory_name_resolves():
    import theory

    for name in theory.__all__:
        assert getattr(theory, name) is getattr(importlib.import_module(theory._HOME[name]), name), name
