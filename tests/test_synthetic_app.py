"""The Hydra app: every config composes and validates; a small multirun runs end to end into one CSV."""

import copy
import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

import theory
from synthetic import train as T
from synthetic.config import register_configs, resolve
from tests.test_batched_launcher import sigint_reaches_children

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf" / "synthetic"
GROUPS = ("data", "encoder", "objective")
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
register_configs()


def _compose(overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("synthetic", overrides=overrides, return_hydra_config=True)


def _task(cfg):
    """The app's config without the hydra node."""
    return OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])


def _split(cfg):
    return T.split(resolve(cfg))


def _sweep_points(cfg):
    """Every point of the experiment's hydra.sweeper.params (a comma list per key)."""
    return {k: str(v).split(",") for k, v in cfg.hydra.sweeper.params.items()}


def _sweep_point(experiment, task, override):
    """The task config of ``experiment`` with one swept ``key=value``. A group choice (objective=clip)
    composes again; a value is applied to the experiment's composed task config as Hydra applies a value
    override after composing (the parsed value, OmegaConf.update), so the result is the config a compose
    would give, without composing the whole defaults tree once per value."""
    key = override.split("=")[0]
    if (CONF / key).is_dir():
        return _task(_compose([f"experiment={experiment}", override]))
    return with_values(task, [override])


def with_values(cfg, overrides):
    """A copy of composed ``cfg`` with value overrides (``key=value`` on keys it has) applied as Hydra
    applies them after composing: the parsed value, OmegaConf.update."""
    point = copy.deepcopy(cfg)  # with the composed config's flags (struct root, open component nodes)
    for parsed in OverridesParser.create().parse_overrides(list(overrides)):
        OmegaConf.update(point, parsed.key_or_group, parsed.value(), merge=True)
    return point


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_validates(experiment):
    cfg = _compose([f"experiment={experiment}"])
    assert _task(cfg).name == experiment
    if cfg.task != "gaussian":
        return
    # Each swept value (one key at a time) gives a config the engine accepts.
    task = _task(cfg)
    for key, values in _sweep_points(cfg).items():
        for value in values:
            _split(_sweep_point(experiment, task, f"{key}={value}"))


@pytest.mark.parametrize(
    "override", [f"{g}={p.stem}" for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]
)
def test_every_group_option_composes(override):
    cfg = _compose([override] + (["objective=clip"] if override == "encoder=mlp" else []))
    group, _ = override.split("=")
    assert cfg[group]._target_.startswith(
        f"synthetic.{ {'data': 'data', 'encoder': 'encoders'}.get(group, 'objectives') }."
    )
    _split(_task(cfg))  # mlp + the default linear_clip is rejected (test_synthetic_train)


@pytest.mark.parametrize("path", sorted(CONF.glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_component_yaml_values_are_the_dataclass_defaults(path):
    """One source of defaults: a component's base YAML repeats its class's defaults, nothing else
    (variants such as data/kclass.yaml only override a few keys on top of a base file)."""
    from hydra.utils import get_class

    if path.parent.name not in GROUPS:
        return
    node = OmegaConf.load(path)
    if (
        "defaults" in node and "_target_" not in node
    ):  # a variant: composes (test_every_group_option_composes)
        return
    node.pop("defaults", None)  # a base file may pull in other groups (objective/clip.yaml: train defaults)
    cls = get_class(node._target_)
    defaults = {f.name: f.default for f in __import__("dataclasses").fields(cls)}
    values = {k: v for k, v in OmegaConf.to_container(node).items() if k != "_target_"}
    assert values == {k: defaults[k] for k in values}, path
    assert set(values) == set(defaults), f"{path} should list every field of {cls.__name__}"


def test_theorem62_is_the_theorem_regime():
    cfg = _compose(["experiment=theorem62"])
    p = [float(v) for v in str(cfg.hydra.sweeper.params["data.p_spu"]).split(",")]
    assert len(p) >= 11 and min(p) == 0.5 and max(p) == 1.0
    assert cfg.seeds >= 5 and cfg.encoder._target_.endswith(".Linear")
    assert cfg.objective._target_.endswith(".LinearClip")
    assert cfg.data.d_image >= cfg.data.n and cfg.data.d_text >= cfg.data.n  # d = Omega(n)
    objectives = _compose(["experiment=objectives"])
    assert set(str(objectives.hydra.sweeper.params["objective"]).split(",")) == {
        "clip",
        "siglip",
        "supervised",
    }


def test_misspelt_key_fails_naming_it():
    with pytest.raises(ValueError, match=r"data\.p_spuu: not a field of synthetic\.data\.GaussianData"):
        resolve(_task(_compose(["+data.p_spuu=0.5"])))
    # without +: a component node is open (its YAML need not list every field), so the component names it
    with pytest.raises(ValueError, match=r"data\.p_spuu: not a field of synthetic\.data\.GaussianData"):
        resolve(_task(_compose(["data.p_spuu=0.5"])))
    with pytest.raises(ConfigCompositionException, match="sedes"):
        _compose(["sedes=3"])


def test_each_kind_carries_only_its_own_keys():
    gaussian = _task(_compose([]))
    mnist = _task(_compose(["experiment=multicolored_mnist"]))
    assert "mnist" not in gaussian and {"data", "encoder", "objective", "eval"} <= set(gaussian)
    assert "mnist" in mnist and not {"data", "encoder", "objective", "eval"} & set(mnist)
    with pytest.raises(ConfigCompositionException, match="mnist"):
        _compose(["mnist.k=3"])


def _help():
    return subprocess.run(
        [sys.executable, "-m", "synthetic", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    )


@pytest.mark.slow
def test_help_lists_only_synthetic_groups():
    proc = _help()
    groups = proc.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    for group in ("data", "encoder", "objective", "experiment", "task", "logger"):
        assert f"{group}:" in groups
    assert "model:" not in groups  # realdata's zoo
    assert "_schema" not in groups and proc.stdout.startswith("synthetic is powered by Hydra")  # not __main__


@pytest.fixture(scope="module")
def small_multirun(tmp_path_factory):
    """A small multirun (basic launcher) and its aggregate, each a process of its own. train.progress=false:
    the compiled run has no host callback, so the process writes it to its persistent compilation cache
    (test_progress_off_lets_the_compilation_cache_keep_the_program)."""
    tmp_path = tmp_path_factory.mktemp("small_multirun")
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable, "-m", "synthetic", "-m",
        "data=kclass", "encoder=mlp", "objective=siglip", "data.render_depth=1", "data.p_spu=0.6,0.9",
        "data.n=0", "data.d_image=8", "data.d_text=8", "data.k=3", "encoder.h=4", "encoder.width=16",
        "encoder.depth=1", "seeds=2", "train.steps=20", "train.batch_size=16", "train.optimizer=adam",
        "train.lr=0.01", "eval.n_test=200", "train.progress=false", f"hydra.sweep.dir={sweep}",
    ]  # fmt: skip
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax_cache")}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode:
        return tmp_path, sweep, proc, None
    agg = subprocess.run(
        [sys.executable, "-m", "synthetic.aggregate", str(sweep)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    return tmp_path, sweep, proc, agg


@pytest.mark.slow
def test_small_multirun_end_to_end(small_multirun):
    _, sweep, proc, agg = small_multirun
    assert proc.returncode == 0, proc.stderr[-3000:]
    docs = [json.loads((sweep / str(i) / "results.json").read_text()) for i in (0, 1)]
    for doc, p in zip(docs, (0.6, 0.9), strict=True):
        assert doc["status"] == "ok" and doc["config"]["data"]["p_spu"] == p
        assert len(doc["metrics"]["acc_counter"]["per_seed"]) == 2
        assert "note" in doc["theory"]  # k = 3 rendered data: no exact theory, and it says so
        assert doc["versions"]["jax"] and doc["device"]["backend"] == "cpu"
    for i in (0, 1):  # the app's log is named after it and says how the run ended
        assert "ok in" in (sweep / str(i) / "synthetic.log").read_text()
    assert agg.returncode == 0, agg.stderr
    with open(sweep / "aggregate.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    assert sorted(float(r["data.p_spu"]) for r in rows) == [0.6, 0.9]
    assert all(0 <= float(r["acc_counter_mean"]) <= 1 for r in rows)
    assert all(r["swept_keys"] == "data.p_spu" for r in rows)
    assert "missing" not in agg.stderr and "warning" not in agg.stderr


def test_crash_keeps_finished_seeds_and_reports_failed(tmp_path, monkeypatch):
    """A crash after the first seed chunk leaves results.json with those seeds and status "failed"."""
    from synthetic import app
    from synthetic import run as gaussian
    from synthetic.results import body

    done = body({"acc_counter": [0.25]}, None, {}, gaussian.theory_predictions(resolve(_task(_compose([])))))

    def crash_after_one_chunk(cfg, on_chunk=None):
        on_chunk(done)
        doc = json.loads((tmp_path / "results.json").read_text())
        assert doc["status"] == "interrupted" and "not finished" in doc["error"]  # until the run completes
        raise RuntimeError("boom in chunk 2")

    monkeypatch.setattr(gaussian, "run", crash_after_one_chunk)
    with pytest.raises(RuntimeError, match="boom"):
        app.run_task(_task(_compose(["seeds=2", "train.seed_chunk=1"])), tmp_path)
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["status"] == "failed" and "boom in chunk 2" in doc["error"] and "Traceback" in doc["traceback"]
    assert doc["metrics"]["acc_counter"]["per_seed"] == [0.25]
    default_point = theory.GaussianSpuriousModel(p_spu=0.9)  # conf/synthetic/data/gaussian.yaml's defaults
    assert doc["theory"]["acc_counter"] == pytest.approx(
        float(theory.zero_shot_accuracy(default_point, "counter", rank=16))
    )
    for key in ("kind", "versions", "device", "git_commit", "command", "started", "wall_time_s"):
        assert key in doc, key


TINY = ["seeds=2", "train.steps=30", "data.n=64", "data.d_image=4", "data.d_text=4", "encoder.h=2",
        "eval.n_test=500"]  # fmt: skip


def _run(args, tmp_path, **kw):
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax_cache"),
        **kw,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "synthetic", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _user_component_sweeps(tmp_path):
    plugin = ROOT / "tests" / "plugin"
    sweep = tmp_path / "sweep"
    # logit_scale_max: a field decoupled_clip.yaml leaves out, still set here
    scale = ["objective.logit_scale_max=50", "train.batch_size=32"]
    _run(
        ["-m", *TINY, "objective=clip", *scale, "data=gaussian,shifted_gaussian",
         f"hydra.searchpath=[file://{plugin / 'conf'}]", f"hydra.sweep.dir={sweep}"],
        tmp_path,
        PYTHONPATH=str(plugin),
    )  # fmt: skip
    sweep2 = tmp_path / "sweep2"
    proc = _run(
        ["--config-dir", str(plugin / "conf"), "-m", *TINY, "objective=decoupled_clip", *scale,
         "objective.decouple=0.0,1.0", f"hydra.sweep.dir={sweep2}"],
        tmp_path,
        PYTHONPATH=str(plugin),
    )  # fmt: skip
    return sweep, sweep2, proc


@pytest.mark.slow
def test_user_components_from_their_own_module_and_yaml(tmp_path):
    """tests/plugin holds a user's objective (a decoupled contrastive loss on the public learnable-
    temperature base) and data model, in their own module and YAML (found through hydra.searchpath and
    through --config-dir). The data model at shift 0 gives exactly the built-in's numbers and theory (it
    declares both); the loss at decouple 0 is CLIP's InfoNCE (same numbers within float error) but reports
    no exact theory (it declares none, so it inherits none); its traced field compiles once."""
    sweep, sweep2, proc = _user_component_sweeps(tmp_path)
    docs = {}
    for job in sweep.glob("[0-9]*"):
        doc = json.loads((job / "results.json").read_text())
        docs[doc["config"]["data"]["_target_"]] = doc
    ref, mine = docs["synthetic.data.GaussianData"], docs["my_components.ShiftedGaussian"]
    assert ref["status"] == mine["status"] == "ok" and mine["config"]["data"]["shift"] == 0.0
    for name in ("acc_counter", "acc_common", "final_loss"):
        assert mine["metrics"][name]["per_seed"] == ref["metrics"][name]["per_seed"], name
    assert mine["theory"]["acc_counter"] == ref["theory"]["acc_counter"] is not None
    dcl = {}
    for job in sweep2.glob("[0-9]*"):
        doc = json.loads((job / "results.json").read_text())
        assert doc["config"]["objective"]["logit_scale_max"] == 50  # set though its YAML leaves it out
        dcl[doc["config"]["objective"]["decouple"]] = doc
    infonce = dcl[0.0]
    for name in ("acc_counter", "acc_common"):
        np.testing.assert_allclose(
            infonce["metrics"][name]["per_seed"], ref["metrics"][name]["per_seed"], atol=0.01
        )
    np.testing.assert_allclose(
        infonce["metrics"]["final_loss"]["per_seed"], ref["metrics"]["final_loss"]["per_seed"], rtol=1e-3
    )
    for doc in dcl.values():  # a new loss: no built-in's prediction under its name
        assert doc["theory"]["acc_counter"] is None and "DecoupledClip" in doc["theory"]["note"]
    assert proc.stderr.count("compiling") == 1  # a traced user hyperparameter: one program, two values
    assert dcl[1.0]["metrics"]["final_loss"]["per_seed"] != infonce["metrics"]["final_loss"]["per_seed"]


@pytest.mark.slow
def test_sigint_leaves_status_interrupted(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax_cache")}
    args = [*TINY, "train.steps=10000000", f"hydra.run.dir={out}"]
    with sigint_reaches_children():
        proc = subprocess.Popen(
            [sys.executable, "-m", "synthetic", *args], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
        )
    for line in proc.stderr:  # wait until training runs
        if "compiled in" in line:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    doc = json.loads((out / "results.json").read_text())
    assert doc["status"] == "interrupted" and "SIGINT" in doc["error"]


def test_aggregate_names_missing_failed_and_malformed_jobs(tmp_path):
    from synthetic.aggregate import SweepWarning, collect

    (tmp_path / "multirun.yaml").write_text(
        "hydra:\n  overrides:\n    task:\n    - data.p_spu=0.5,0.7,0.9\n    - seeds=2\n"
        "  sweeper:\n    params:\n      objective.rho: 1.0,2.0\n"
    )  # as Hydra writes it: 3 x 2 = 6 jobs
    for job, status in (("0", "ok"), ("1", "failed"), ("2", "interrupted"), ("4", "ok")):
        (tmp_path / job).mkdir()
        doc = {
            "status": status,
            "config": {"seeds": 2, "data": {"p_spu": 0.5 + int(job) / 10}},
            "metrics": {},
        }
        (tmp_path / job / "results.json").write_text(json.dumps(doc))
    (tmp_path / "5").mkdir()
    (tmp_path / "5" / "results.json").write_text('{"status": "ok", "config": {')  # killed mid-write elsewhere
    with pytest.warns(SweepWarning) as caught:
        rows = collect(tmp_path)
    message = str(caught[0].message)
    assert "1: status failed" in message and "2: status interrupted" in message
    assert "3: missing" in message and "0: missing" not in message
    assert f"{tmp_path / '5' / 'results.json'}: malformed results.json" in message
    assert [r["run"] for r in rows] == ["0", "1", "2", "4"]
    assert rows[0]["swept_keys"] == "data.p_spu"


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


@pytest.mark.slow
def test_progress_off_lets_the_compilation_cache_keep_the_program(small_multirun):
    """JAX keeps no program with a host callback in its persistent cache: train.progress=false drops the
    callback, and the compiled run is written there for a later process (the small multirun's)."""
    tmp_path, _, proc, _ = small_multirun
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert any(p.name.startswith("jit__run_many") for p in (tmp_path / "jax_cache").iterdir())
