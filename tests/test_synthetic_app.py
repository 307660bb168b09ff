"""The Hydra app: every config composes and validates; a small multirun runs end to end into one CSV."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

import theory
from synthetic import train as T
from synthetic.config import SyntheticConfig, register_configs

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf" / "synthetic"
GROUPS = ("data", "encoder", "objective")
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
register_configs()


def _compose(overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("synthetic", overrides=overrides, return_hydra_config=True)


def _task(cfg) -> SyntheticConfig:
    """The app's config without the hydra node, checked against the structured schema."""
    return T.as_config(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]))


def _sweep_points(cfg):
    """Every point of the experiment's hydra.sweeper.params (a comma list per key)."""
    return {k: str(v).split(",") for k, v in cfg.hydra.sweeper.params.items()}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_validates(experiment):
    cfg = _compose([f"experiment={experiment}"])
    assert _task(cfg).name == experiment
    if cfg.task != "gaussian":
        return
    # Each swept value (one key at a time) gives a config the engine accepts.
    base = OmegaConf.structured(_task(cfg))
    for key, values in _sweep_points(cfg).items():
        for value in values:
            if "." in key:  # a value: set it on the typed config (type-checked like an override)
                point = base.copy()
                OmegaConf.update(point, key, value)
                T.split_config(point)
            else:  # a config group option: compose it
                T.split_config(_task(_compose([f"experiment={experiment}", f"{key}={value}"])))


@pytest.mark.parametrize(
    "override", [f"{g}={p.stem}" for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]
)
def test_every_group_option_composes(override):
    cfg = _compose([override] + (["encoder=linear"] if override.startswith("objective=linear_clip") else []))
    group, option = override.split("=")
    assert cfg[group].name == option or group == "data"
    if not (override.startswith("encoder=mlp")):  # mlp + the default linear_clip is rejected (tested below)
        T.split_config(_task(cfg))


def test_theorem62_is_the_theorem_regime():
    cfg = _compose(["experiment=theorem62"])
    p = [float(v) for v in str(cfg.hydra.sweeper.params["data.p_spu"]).split(",")]
    assert len(p) >= 11 and min(p) == 0.5 and max(p) == 1.0
    assert cfg.seeds >= 5 and cfg.encoder.name == "linear" and cfg.objective.name == "linear_clip"
    assert cfg.data.d_image >= cfg.data.n and cfg.data.d_text >= cfg.data.n  # d = Omega(n)
    objectives = _compose(["experiment=objectives"])
    assert set(str(objectives.hydra.sweeper.params["objective"]).split(",")) == {
        "clip",
        "siglip",
        "supervised",
    }


def test_misspelt_key_fails_naming_it():
    with pytest.raises(ConfigCompositionException, match="p_spuu"):
        _compose(["data.p_spuu=0.5"])


def test_small_multirun_end_to_end(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable, "-m", "synthetic", "-m",
        "data=kclass", "encoder=mlp", "objective=siglip", "data.render_depth=1", "data.p_spu=0.6,0.9",
        "data.n=0", "data.d_image=8", "data.d_text=8", "data.k=3", "encoder.h=4", "encoder.width=16",
        "encoder.depth=1", "seeds=2", "train.steps=20", "train.batch_size=16", "train.optimizer=adam",
        "train.lr=0.01", "eval.n_test=200", f"hydra.sweep.dir={sweep}",
    ]  # fmt: skip
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax_cache")}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    docs = [json.loads((sweep / str(i) / "results.json").read_text()) for i in (0, 1)]
    for doc, p in zip(docs, (0.6, 0.9), strict=True):
        assert doc["status"] == "ok" and doc["config"]["data"]["p_spu"] == p
        assert len(doc["metrics"]["acc_counter"]["per_seed"]) == 2
        assert "note" in doc["theory"]  # k = 3 rendered data: no exact theory, and it says so
        assert doc["versions"]["jax"] and doc["device"]["backend"] == "cpu"
    agg = subprocess.run(
        [sys.executable, "-m", "synthetic.aggregate", str(sweep)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert agg.returncode == 0, agg.stderr
    with open(sweep / "aggregate.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    assert sorted(float(r["data.p_spu"]) for r in rows) == [0.6, 0.9]
    assert all(0 <= float(r["acc_counter_mean"]) <= 1 for r in rows)


def test_crash_keeps_finished_seeds_and_reports_error(tmp_path, monkeypatch):
    """A crash after the first seed chunk leaves results.json with those seeds and status "error"."""
    from synthetic import app
    from synthetic import run as gaussian

    done = {"per_seed": {"acc_counter": [0.25]}, "status": "ok", "diverged_step": None, "extra": {}}

    def crash_after_one_chunk(cfg, on_chunk=None):
        on_chunk(done)
        assert json.loads((tmp_path / "results.json").read_text())["status"] == "partial"
        raise RuntimeError("boom in chunk 2")

    monkeypatch.setattr(gaussian, "run", crash_after_one_chunk)
    cfg = _compose(["seeds=2", "train.seed_chunk=1"])
    with pytest.raises(RuntimeError, match="boom"):
        app.run_task(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), tmp_path)
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["status"] == "error" and "boom in chunk 2" in doc["error"]
    assert doc["metrics"]["acc_counter"]["per_seed"] == [0.25]
    default_point = theory.GaussianSpuriousModel(p_spu=0.9)  # conf/data/gaussian.yaml mirrors its defaults
    assert doc["theory"]["acc_counter"] == pytest.approx(
        float(theory.zero_shot_accuracy(default_point, "counter"))
    )


def test_figure_without_results_names_the_command(tmp_path):
    from paper_figs import synthetic_vs_theory

    with pytest.raises(FileNotFoundError, match="python -m synthetic -m experiment=theorem62"):
        synthetic_vs_theory.make(tmp_path / "out", tmp_path / "nothing")


def test_figure_refuses_runs_with_different_data_models():
    from paper_figs import synthetic_vs_theory as F

    same = {f"data.{key}": 1.0 for key in F.MODEL_KEYS}
    F.check_one_data_model({"theorem62": [same], "objectives": [dict(same)]}, {})
    other = {**same, "data.d_image": 256.0}
    with pytest.raises(ValueError, match="data.d_image differs"):
        F.check_one_data_model({"theorem62": [same], "objectives": [same, other]}, {})


def test_aggregate_orders_job_folders_numerically_beside_named_ones(tmp_path):
    from synthetic.aggregate import collect

    for run in ("10", "2", "x"):
        (tmp_path / run).mkdir()
        doc = {
            "status": "ok",
            "config": {"seeds": 1},
            "metrics": {"acc_counter": {"mean": 0.5, "std": 0.0, "n": 1}},
        }
        (tmp_path / run / "results.json").write_text(json.dumps(doc))
    rows = collect(tmp_path)
    assert [r["run"] for r in rows] == ["2", "10", "x"]
    assert rows[0]["acc_counter_mean"] == 0.5 and rows[0]["seeds"] == 1
