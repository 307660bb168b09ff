"""MultiColoredMNIST end to end: run(cfg) on a tiny grid (with a user's objective from its own module and
--config-dir), divergence, validation, the IDX path, the table."""

import csv
import gzip
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from omegaconf import OmegaConf

from synthetic import train as T
from synthetic.config import MNISTRunConfig, resolve_mnist
from synthetic.mnist import data, digits, table
from synthetic.mnist.run import program, run
from tests.test_mnist_extension import user_conf

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = {"n": 300, "n_test": 200, "image_size": 14, "k": 3}
OBJECTIVES = {"contrastive": "Contrastive", "two_tower": "TwoTower", "supervised": "Supervised"}


def _cfg(seeds=2, lr=3e-3, optimizer="adam", objective="supervised", **mnist):
    """A config shaped like the app's (its structured schema), tiny sizes."""
    return OmegaConf.merge(
        OmegaConf.structured(MNISTRunConfig),
        {
            "task": "multicolored_mnist",
            "seeds": seeds,
            "train": {
                "steps": 40,
                "batch_size": 32,
                "lr": lr,
                "optimizer": optimizer,
                "schedule": "constant",
            },
            "mnist": {**TINY, **mnist},
            "mnist_encoder": {"_target_": "synthetic.mnist.models.MLP", "width": 32},
            "mnist_objective": {"_target_": f"synthetic.mnist.models.{OBJECTIVES[objective]}"},
        },
    )


SWEEP_OVERRIDES = [
    "mnist.k=3",
    "mnist.p_inv=0.9,0.75",
    "mnist.p_spu=0.9",
    "mnist_objective=contrastive,two_tower,supervised,smoothed",  # smoothed: the user's (--config-dir)
    "mnist_encoder.width=32",
    "seeds=2",
    "train.steps=40",
    "train.batch_size=32",
    "train.lr=0.003",
    *(f"mnist.{key}={value}" for key, value in TINY.items() if key != "k"),
]


def _tiny_grid(tmp):
    sweep = tmp / "sweep"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(tmp / "jax_cache")}
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"  # the user's module: tests/
    cmd = [sys.executable, "-m", "synthetic", "--config-dir", str(user_conf(tmp / "conf"))]
    cmd += ["-m", "experiment=multicolored_mnist", *SWEEP_OVERRIDES]
    proc = subprocess.run(
        [*cmd, f"hydra.sweep.dir={sweep}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    return sweep, proc


@pytest.mark.slow
def test_tiny_grid_through_the_app_and_table(tmp_path):
    """`python -m synthetic -m experiment=multicolored_mnist` on 2 cells x 4 objectives (the paper's three
    and a user's, from its own module and a YAML in --config-dir), then the table."""
    sweep, proc = _tiny_grid(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]

    rows = table.collect(sweep)
    # one row per cell and objective, ordered by k, p_inv (descending), p_spu, objective (the paper's
    # three first, then the user's, named after its class SmoothedSupervised)
    objectives = ("contrastive", "two_tower", "supervised", "smoothed_supervised")
    assert [(r["p_inv"], r["objective"]) for r in rows] == [(p, o) for p in (0.9, 0.75) for o in objectives]
    for r in rows:
        assert r["status"] == "ok" and r["seeds"] == 2 and r["n"] == 300
        assert r["id_mean"] > 50  # 40 steps beat chance (1/3) in distribution
        assert r["bayes_rev"] == pytest.approx(100 * data.bayes_accuracy(3, r["p_inv"], 0.9, 0.1))
        assert r["paper_rand_mean"] is None  # the paper quotes k = 2 and k = 10 only
        res = json.loads(pathlib.Path(r["_path"]).read_text())
        target = res["config"]["mnist_objective"]["_target_"]
        assert (
            target.rsplit(".", 1)[-1]
            == {**OBJECTIVES, "smoothed_supervised": "SmoothedSupervised"}[r["objective"]]
        )
        assert res["config"]["mnist_encoder"] == {
            "_target_": "synthetic.mnist.models.MLP",
            "width": 32,
            "depth": 2,
        }
        per_seed = res["metrics"]["acc_rand"]["per_seed"]
        assert len(per_seed) == 2 and r["rand_mean"] == pytest.approx(100 * np.mean(per_seed))
        assert res["extra"]["compile_s"] >= 0 and res["extra"]["run_s"] > 0  # run_seeds' timings
        assert res["extra"]["xla_options"] == T.SHORT_RUN_OPTIONS  # 40 steps x 32: a short run's options
    user = json.loads(pathlib.Path(rows[3]["_path"]).read_text())["config"]["mnist_objective"]
    assert user == {"_target_": "tests.test_mnist_extension.SmoothedSupervised", "smoothing": 0.1}

    assert table.main([str(sweep), "--out", str(tmp_path / "out")]) == 0
    with (tmp_path / "out" / "mnist_table.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 8
    md = (tmp_path / "out" / "mnist_table.md").read_text().splitlines()
    assert len(md) == 2 + 8 and "| 3 | 300 | 0.9 | 0.9 | contrastive | 2 |" in md[2]
    assert "| 3 | 300 | 0.9 | 0.9 | smoothed_supervised | 2 |" in md[5]
    # a second copy of a run under the same folder would make two rows for one cell: refused
    shutil.copytree(sweep / "0", sweep / "copy")
    with pytest.raises(ValueError, match="two runs of cell"):
        table.collect(sweep)


@pytest.mark.slow
def test_run_direct_returns_the_app_contract():
    out = run(_cfg(objective="supervised", p_inv=0.75))
    assert out["status"] == "ok" and out["diverged_step"] is None
    assert set(out["metrics"]) == {"acc_id", "acc_rand", "acc_rev", "loss_final"}
    for values in (m["per_seed"] for m in out["metrics"].values()):
        assert len(values) == 2 and all(np.isfinite(values))
    assert out["extra"]["bayes"]["acc_rand"] == pytest.approx(data.bayes_accuracy(3, 0.75, 0.9, 1 / 3))
    assert out["extra"]["n_train"] == 300 and out["extra"]["n_test"] == 200
    # deterministic in the seeds
    again = run(_cfg(objective="supervised", p_inv=0.75))
    assert again["metrics"] == out["metrics"]


@pytest.mark.slow
def test_divergence_is_reported_with_its_step():
    # same compiled program as the tiny grid's supervised runs (the learning rate is traced)
    out = run(_cfg(lr=1e12, objective="supervised"))
    assert out["status"] == "diverged"
    assert 0 <= out["diverged_step"] < 40
    assert out["diverged_step"] == min(s for s in out["extra"]["first_bad_step_per_seed"] if s is not None)
    for m in out["metrics"].values():  # a diverged seed has no metrics (null, never NaN nor an accuracy)
        assert None in m["per_seed"]


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.slow
def test_idx_source_filters_digits_below_k(tmp_path):
    # fake MNIST files from the offline renderer: 10 classes, so filtering to k = 3 keeps about 30%
    for img_name, lab_name, n in [
        (*digits.IDX_FILES["train"], 1200),
        (*digits.IDX_FILES["test"], 800),
    ]:
        images, labels = digits.render_digits(n, 10, seed=(5, n))
        _write_idx(tmp_path / f"{img_name}.gz", images)
        _write_idx(tmp_path / f"{lab_name}.gz", labels)
    out = run(_cfg(source="idx", root=str(tmp_path)))
    assert out["status"] == "ok" and out["extra"]["n_train"] == 300 and out["extra"]["n_test"] == 200
    with pytest.raises(
        ValueError, match="mnist.n=5000: expected at most the .* digits < 3 of MNIST's train split"
    ):
        run(_cfg(source="idx", root=str(tmp_path), n=5000))
    with pytest.raises(ValueError, match="mnist.n_test=900: expected at most the .* of MNIST's test split"):
        run(_cfg(source="idx", root=str(tmp_path), n_test=900))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"mnist": {"k": 11}}, "mnist.k=11"),
        ({"mnist": {"p_spu": 1.5}}, "mnist.p_spu=1.5"),
        ({"mnist": {"image_size": 20}}, "mnist.image_size=20"),
        ({"mnist": {"source": "idx"}}, "needs mnist.root"),
        ({"mnist": {"k": 7, "n": None}}, "mnist.k=7: expected one of the paper's grid"),  # no count for 7
        ({"mnist": {"kk": 3}}, "mnist.kk: not a field of synthetic.mnist.data.MultiColoredMNIST"),
        ({"mnist_encoder": {"width": 0}}, "mnist_encoder.width=0"),
        ({"mnist_objective": {"embed_dim": 8}}, "mnist_objective.embed_dim: not a field of .*Supervised"),
        ({"mnist_objective": {"_target_": "synthetic.objectives.Clip"}}, "builds Clip, not a MNISTObjective"),
        ({"train": {"batch_size": 0}}, "train.batch_size=0"),
        ({"train": {"batch_size": 301}}, "train.batch_size=301: expected <= the 300 training digits"),
        # the keys that became config groups name their new spelling
        (
            {"mnist": {"objective": "two_tower"}},
            "mnist.objective='two_tower': expected mnist_objective=two_tower",
        ),
        ({"mnist": {"encoder": "cnn"}}, "mnist.encoder='cnn': expected mnist_encoder=cnn"),
        ({"mnist": {"width": 64}}, "mnist.width=64: expected mnist_encoder.width=64"),
    ],
)
def test_bad_config_is_named(override, message):
    cfg = OmegaConf.merge(_cfg(), override)
    with pytest.raises(ValueError, match=message):
        run(cfg)


def test_missing_idx_files_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        run(_cfg(source="idx", root=str(tmp_path)))


@pytest.mark.slow
def test_construction_and_sklearn_source_reach_the_run():
    """mnist.construction and mnist.source=sklearn are passed through run(): the exact reference is the
    variant's (not the paper's), and the real handwritten digits load."""
    out = run(_cfg(construction="all_coupled", source="sklearn"))
    assert out["status"] == "ok"
    # traced, as the probabilities: both constructions (and coupled classes) key one compiled program
    runs = [resolve_mnist(_cfg(construction=c, coupled=3)) for c in data.CONSTRUCTIONS]
    spec, hp = program(runs[0], runs[0].mnist.load())
    assert spec == program(runs[1], runs[1].mnist.load())[0] and hp["data"]["n_coupled"] == 3
    expected = data.bayes_reference(3, 0.9, 0.9, 0.1, 2, "all_coupled")
    assert out["extra"]["bayes"] == pytest.approx(expected)
    assert out["extra"]["bayes"] != pytest.approx(data.bayes_reference(3, 0.9, 0.9, 0.1, 2, "paper"))
    with pytest.raises(ValueError, match="mnist.construction='bogus'"):
        run(_cfg(construction="bogus"))
    with pytest.raises(
        ValueError, match="mnist.coupled=1: expected the default 2 or k=3 with mnist.construction"
    ):
        run(_cfg(construction="all_coupled", coupled=1))
