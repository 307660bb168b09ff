"""The distribution: pyproject lists every package, and a built wheel (no checkout) runs both apps with the
configs it ships (pkg://<app>.conf)."""

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
TOP = ("theory", "synthetic", "realdata", "paper_figs", "hydra_plugins")


def test_every_python_package_is_listed_and_the_configs_ship():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.relative_to(ROOT).parts)
        for top in TOP
        for p in [ROOT / top, *(ROOT / top).rglob("*")]
        if p.is_dir() and any(p.glob("*.py")) and "__pycache__" not in p.parts
    }
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    dirs = PYPROJECT["tool"]["setuptools"]["package-dir"]
    for app in ("synthetic", "realdata"):
        assert dirs[f"{app}.conf"] == f"conf/{app}" and f"{app}.conf" in listed
    cff = (ROOT / "CITATION.cff").read_text()
    version = PYPROJECT["project"]["version"]
    assert f"version: {version}" in cff and f"## [{version}]" in (ROOT / "CHANGELOG.md").read_text()


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{cmd}:\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}"
    return proc


@pytest.mark.slow
def test_wheel_installed_in_a_fresh_venv_runs_both_apps(tmp_path):
    src = tmp_path / "src"  # build from a copy: the build leaves build/ and *.egg-info beside the sources
    src.mkdir()
    for name in ("pyproject.toml", "README.md", *TOP, "conf"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, src / name)
    pip = ["-m", "pip", "--disable-pip-version-check", "-q"]
    _run([sys.executable, *pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", src])
    (wheel,) = (tmp_path / "dist").glob("sober_clip-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    py = venv / "bin" / "python"
    site = _run([py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip()
    # the dependencies (jax, hydra ...) from this interpreter's site-packages, after the venv's own
    Path(site, "_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"JAX_PLATFORMS": "cpu"}
    _run([py, *pip, "install", "--no-deps", "--ignore-installed", wheel], env=env)
    work = tmp_path / "elsewhere"  # no conf/ here: the configs must come from the wheel
    work.mkdir()
    # where the package and its configs come from, and the launchers Hydra finds: one interpreter
    probe = "import synthetic, theory.runrecord.configs as c; print(synthetic.__file__, "
    probe += "c.config_path('synthetic'))\n"
    probe += "from hydra.core.plugins import Plugins; from hydra.plugins.launcher import Launcher; "
    probe += "print(*(c.__module__ for c in Plugins.instance().discover(Launcher)))"
    where, launchers = _run([py, "-c", probe], cwd=work, env=env).stdout.splitlines()
    assert where.split()[0].startswith(site) and where.split()[1] == "pkg://synthetic.conf", where
    # Hydra finds the batched launcher in the installed hydra_plugins namespace (hydra/launcher=batched)
    assert "hydra_plugins.sober_clip_launcher.batched_launcher" in launchers.split(), launchers
    tiny = ["data.n=32", "data.d_image=4", "data.d_text=4", "encoder.h=2", "train.steps=5", "seeds=1"]
    _run([py, "-m", "synthetic", *tiny, "eval.n_test=20", "hydra.run.dir=out"], cwd=work, env=env)
    assert '"status": "ok"' in (work / "out" / "results.json").read_text()
    real = _run(
        [py, "-m", "realdata", "data.root=/x", "logger=tensorboard", "--cfg", "job"], cwd=work, env=env
    )
    assert "label_space: 1v1000" in real.stdout and "theory.runrecord.track.TensorBoard" in real.stdout
