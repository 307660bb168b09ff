"""The Python API: synthetic.run_point and realdata.evaluate_model return what the commands write, and the
example scripts in docs/examples/ run."""

import runpy
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import realdata
import synthetic
from synthetic import app
from tests.test_resume import tiny_realdata  # noqa: F401  (a module fixture: the tiny CLIP on 2 classes)
from tests.test_tracking import ROOT, TINY, compose_synthetic

EXAMPLES = ROOT / "docs" / "examples"


@pytest.fixture(autouse=True)
def _session_compilation_cache(tmp_path_factory, monkeypatch):
    """run_point turns JAX's persistent compilation cache on for the rest of this process, in
    $JAX_COMPILATION_CACHE_DIR or else the checkout's .cache/jax: here this session's temporary folder, so
    that no later run of the suite takes the programs compiled in this one."""
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "jax_cache"))


def _example(name: str, argv: list[str]):
    old = sys.argv
    sys.argv = [str(EXAMPLES / name), *argv]
    try:
        return runpy.run_path(str(EXAMPLES / name), run_name="example")["main"](argv)
    finally:
        sys.argv = old


def test_run_point_is_the_command_in_python(tmp_path):
    doc = synthetic.run_point([*TINY, "data.p_spu=0.8"], out_dir=tmp_path / "api")
    direct = app.run_task(compose_synthetic([*TINY, "data.p_spu=0.8"]), tmp_path / "task")
    assert doc["status"] == "ok" and doc["config"] == direct["config"] and doc["metrics"] == direct["metrics"]
    assert (tmp_path / "api" / "results.json").is_file()
    with pytest.raises(Exception, match="data.p_spuu"):  # the command's own checks
        synthetic.run_point(["data.p_spuu=0.8"], out_dir=tmp_path / "bad")


def test_run_point_example_script(tmp_path, capsys):
    argv = [
        "--p-spu",
        "0.6,0.9",
        "--steps",
        "40",
        "--seeds",
        "2",
        "--out",
        str(tmp_path),
        *TINY,
        "objective=linear_clip",
    ]
    docs = _example("run_point.py", argv)
    assert [d["config"]["data"]["p_spu"] for d in docs] == [0.6, 0.9]
    assert "p_spu=0.9: counter" in capsys.readouterr().out


@pytest.fixture(scope="module")
def in_memory_cache(tmp_path_factory):
    """The feature and text-classifier cache of the tiny CLIP handed over in memory (name tiny-clip), as the
    example script hands it over: the example reads what the test before it computed."""
    return tmp_path_factory.mktemp("in_memory_cache")


def test_evaluate_model_matches_the_evaluator_on_the_saved_weights(tiny_realdata, in_memory_cache, tmp_path):  # noqa: F811
    """The tiny CLIP loaded from its weights file by the evaluator, and the same model handed over in memory:
    the same accuracies and predictions."""
    import open_clip
    import torch

    from realdata.evaluate import evaluate
    from realdata.fixture import TINY_CONFIG
    from realdata.models import register_config_file

    by_file = evaluate(tiny_realdata, tmp_path / "file")
    register_config_file(TINY_CONFIG, "tiny-clip")
    model, _, preprocess = open_clip.create_model_and_transforms("tiny-clip", pretrained=None)
    model.load_state_dict(torch.load(tiny_realdata.model.pretrained, weights_only=True))
    tokenizer = open_clip.get_tokenizer("tiny-clip")
    over = [f"cache_dir={in_memory_cache}", "batch_size=4", "num_workers=0", "progress=false"]
    root = tiny_realdata.data.root
    doc = realdata.evaluate_model(
        model, preprocess, tokenizer, root, name="tiny-clip", out_dir=tmp_path / "mem", overrides=over
    )
    assert doc["status"] == "ok" and doc["weights"].startswith("in-memory:")
    for key in ("acc_common", "acc_counter", "drop", "n_classes"):
        assert doc["metrics"][key] == pytest.approx(by_file["metrics"][key]), key
    same = (tmp_path / "file" / "predictions.csv").read_text() == (
        tmp_path / "mem" / "predictions.csv"
    ).read_text()
    assert same  # fmt: skip
    assert OmegaConf.select(OmegaConf.create(doc["config"]), "model.family") == "realdata.api"
    # a changed model is another identity (the cache key of its features): nothing cached is reused
    from realdata.api import digest

    before = digest(model, preprocess, tokenizer)
    with torch.no_grad():
        next(iter(model.parameters())).add_(1.0)
    assert digest(model, preprocess, tokenizer) != before and doc["weights"] == f"in-memory:{before}"


def test_evaluate_model_example_script(tiny_realdata, in_memory_cache, tmp_path, monkeypatch):  # noqa: F811
    import open_clip

    from realdata.fixture import TINY_CONFIG
    from realdata.models import register_config_file

    register_config_file(TINY_CONFIG, "tiny-clip")
    root, ckpt = tiny_realdata.data.root, tiny_realdata.model.pretrained
    argv = [root, "--model", "tiny-clip", "--pretrained", ckpt, "--out", str(tmp_path / "ex")]
    doc = _example(
        "evaluate_model.py", [*argv, f"cache_dir={in_memory_cache}", "num_workers=0", "progress=false"]
    )
    assert doc["status"] == "ok" and Path(tmp_path / "ex" / "results.json").is_file()
    assert open_clip  # the example imports open_clip itself


@pytest.mark.slow
def test_fixture_model_is_right_on_most_common_and_few_counter_images(tmp_path, capsys):
    """python -m realdata.fixture: its fitted tiny CLIP, run by the evaluator, is right exactly where the
    fixture meant it to be (most common images, few counter ones), and it prints both commands offline."""
    import csv

    from realdata.config import register
    from realdata.evaluate import evaluate
    from realdata.fixture import TINY_CONFIG, intended_correct
    from realdata.fixture import main as fixture_main
    from theory.runrecord.configs import initialize

    assert fixture_main([str(tmp_path / "fx"), "--classes", "3"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("HF_HUB_OFFLINE=1 python -m realdata") == 2 and "label_space=1v20" in printed
    assert f"one_vs_20.reference.config_file={TINY_CONFIG}" in printed
    register()
    fx = tmp_path / "fx"
    cli = [f"data.root={fx / 'data'}", "model=tiny", f"model.pretrained={fx / 'tiny-clip.pt'}"]
    cli += ["device=cpu", "num_workers=0", "progress=false", f"cache_dir={tmp_path / 'cache'}"]
    with initialize("realdata"):
        from hydra import compose

        doc = evaluate(compose("realdata", overrides=cli), tmp_path / "run")
    with open(tmp_path / "run" / "predictions.csv", newline="") as f:
        preds = sorted(csv.DictReader(f), key=lambda r: r["path"])
    labels = sorted({int(r["label"]) for r in preds})
    seen: dict = {}
    for r in preds:
        i = seen[(r["label"], r["group"])] = seen.get((r["label"], r["group"]), -1) + 1
        assert r["correct"] == str(int(intended_correct(r["group"], i, labels.index(int(r["label"]))))), r
    m = doc["metrics"]
    assert m["acc_common"] > 0.8 and m["acc_counter"] < 0.3  # 8 of 9 and 1 of 6 here: a visible drop
