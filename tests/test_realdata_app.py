"""realdata app: `python -m realdata` end to end, the zoo configs, every model config composes."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from realdata import zoo
from realdata.config import register
from realdata.fixture import main as fixture_main
from tests.test_batched_launcher import sigint_reaches_children

REPO = Path(__file__).resolve().parent.parent
# the keys issue 5 names for `python -m realdata`
REQUIRED_KEYS = (
    "data.root",
    "model.name",
    "model.pretrained",
    "model.config_file",
    "label_space",
    "prompts",
    "batch_size",
    "num_workers",
    "device",
    "cache_dir",
    "classnames",
    "one_vs_20.true_class_in_k",
    "verbose",
)
CONF = REPO / "conf" / "realdata"
register()


def _rows(name: str) -> list[dict]:
    with open(REPO / "realdata" / "reference" / name, newline="") as f:
        return list(csv.DictReader(f))


def test_zoo_has_an_entry_for_every_table_row_and_matches_the_generator():
    expected = zoo.expected_files()
    mllms = [r for r in _rows("table5_mllm.csv") if r["transformers_name"]]
    assert len(expected) == len(_rows("table3_clip.csv")) + len(_rows("table4_imagenet.csv")) + len(mllms)
    for name, text in expected.items():
        path = CONF / "model" / name
        assert path.is_file(), f"missing zoo entry {path}; run python -m realdata.zoo"
        assert path.read_text() == text, f"{path} differs from the tables; run python -m realdata.zoo"


def test_zoo_tags_exist_in_open_clip_and_quickgelu_matches():
    import open_clip
    from open_clip.pretrained import get_pretrained_cfg

    pretrained = set(open_clip.list_pretrained())
    for entry in zoo.clip_entries().values():
        assert (entry["name"], entry["pretrained"]) in pretrained, entry
        tag_quick = bool(get_pretrained_cfg(entry["name"], entry["pretrained"]).get("quick_gelu"))
        assert entry["name"].endswith("-quickgelu") == tag_quick, entry
    # the rows the table marks as inferred resolve to these open_clip tags
    inferred = {
        (r["open_clip_model"], r["open_clip_pretrained"]) for r in _rows("table3_clip.csv") if r["note"]
    }
    assert inferred <= {(m.removesuffix("-quickgelu"), t) for m, t in pretrained}


def test_every_model_config_composes_and_validates():
    import torchvision

    from realdata.config import validate

    names = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
    assert "tiny" in names
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("realdata", overrides=["data.root=/x"])
        absent = [k for k in REQUIRED_KEYS if OmegaConf.select(cfg, k, default=KeyError) is KeyError]
        assert absent == [], f"conf/realdata.yaml lacks the keys {absent}"
        for name in names:
            cfg = compose("realdata", overrides=[f"model={name}", "data.root=/x"])
            validate(cfg)
            assert cfg.model.family in ("open_clip", "torchvision", "mllm")
            if cfg.model.family == "torchvision":
                assert cfg.model.name in torchvision.models.list_models(module=torchvision.models)
        with pytest.raises(Exception, match="label_spac"):
            compose("realdata", overrides=["label_spac=1v20"])  # misspelt key fails at start-up
        with pytest.raises(ValueError, match="label_space='1v5'"):
            validate(compose("realdata", overrides=["label_space=1v5", "data.root=/x"]))


def _realdata(args: list[str], cwd: Path = REPO, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "realdata", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)


@pytest.mark.slow
def test_python_m_realdata_help_lists_only_realdata_groups():
    proc = _realdata(["--help"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    groups = proc.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    listed = {line.split(":")[0] for line in groups.splitlines()[2:] if ":" in line}
    assert proc.stdout.startswith("realdata is powered by Hydra")  # the app's name, not __main__
    assert listed == {"model", "experiment", "logger"}, listed  # experiment/: realdata.finetune's
    config = proc.stdout.split("== Config ==")[1]
    for key in ("classnames: synset", "true_class_in_k: true", "label_space: 1v1000", "verbose: false"):
        assert key in config
    for foreign in ("objective", "encoder", "p_spu", "mnist", "seeds:"):
        assert foreign not in proc.stdout


def _realdata_multirun(tmp_path):
    assert fixture_main([str(tmp_path / "try"), "--classes", "2"]) == 0  # 3 common, 2 counter per class
    root, ckpt = tmp_path / "try" / "data", tmp_path / "try" / "tiny-clip.pt"
    out = tmp_path / "sweep"
    proc = _realdata(
        [
            "-m",
            f"data.root={root}",
            "model=tiny",
            f"model.pretrained={ckpt}",
            "label_space=1v1000,45way",
            "batch_size=2,4",
            "num_workers=1",
            "device=cpu",
            f"cache_dir={tmp_path / 'cache'}",
            f"hydra.sweep.dir={out}",
        ]
    )
    return out, proc


@pytest.mark.slow
def test_python_m_realdata_multirun_end_to_end(tmp_path):
    """A Hydra multirun of `python -m realdata` over a label space and a non-model key (batch_size): every job
    writes its own folder named after the model run, the jobs share the feature cache, and paper_figs reads
    them."""
    from paper_figs.aggregate import load_measured

    out, proc = _realdata_multirun(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p.parent for p in out.glob("*/results.json"))
    assert [j.name for j in jobs] == [
        "0_1v1000_single_tiny-clip_tiny-clip",
        "1_1v1000_single_tiny-clip_tiny-clip",
        "2_45way_single_tiny-clip_tiny-clip",
        "3_45way_single_tiny-clip_tiny-clip",
    ]
    docs = [json.loads((j / "results.json").read_text()) for j in jobs]
    assert [(d["label_space"], d["config"]["batch_size"]) for d in docs] == [
        ("1v1000", 2),
        ("1v1000", 4),
        ("45way", 2),
        ("45way", 4),
    ]
    assert len({d["feature_cache"] for d in docs}) == 1  # later jobs read the first job's features
    results = docs[0]
    for key in (
        "dataset",
        "model",
        "pretrained",
        "task",
        "family",
        "zero_shot",
        "label_space",
        "prompts",
        "metrics",
    ):
        assert key in results
    for key in ("config", "status", "wall_time_s", "versions", "device", "git_commit", "command", "kind"):
        assert key in results
    assert (results["dataset"], results["task"], results["status"]) == (
        "counteranimal",
        "zeroshot_classification",
        "ok",
    )
    # model.pretrained was overridden: the run is not the `tiny` zoo entry, so it carries none of its metadata
    assert (
        results["zoo_entry"] is None and "zoo" not in results and "backbone" not in results["config"]["model"]
    )
    m = results["metrics"]
    assert (m["n_common"], m["n_counter"], m["n_skipped"]) == (6, 4, 2)
    assert 0.0 <= m["acc_common"] <= 1.0 and m["drop"] == pytest.approx(m["acc_common"] - m["acc_counter"])
    assert docs[1]["metrics"]["acc_common"] == m["acc_common"]  # batch size does not change the numbers
    assert results["config"]["model"]["name"] == "tiny-clip"
    with open(jobs[0] / "predictions.csv", newline="") as f:
        preds = list(csv.DictReader(f))
    assert len(preds) == 10 and {"path", "group", "label", "pred"} <= set(preds[0])
    with open(jobs[0] / "per_class.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header == [
        "imagenet_index",
        "class_name",
        "common_background",
        "counter_background",
        "n_common",
        "n_counter",
        "acc_common",
        "acc_counter",
        "drop",
    ]
    measured, _ = load_measured([out])
    by_space = {x.point.label_space: x.point for x in measured}
    assert set(by_space) == {"1v1000", "45way"}
    assert by_space["1v1000"].common == pytest.approx(100 * m["acc_common"])


@pytest.mark.slow
def test_override_without_a_zoo_entry_then_a_failed_rerun(tmp_path):
    """model.name/model.pretrained overridden on top of the default zoo entry: the folder and results.json
    name the model run and carry none of the default entry's metadata; a failed re-run into the same folder
    keeps the good result."""
    from realdata.fixture import TINY_CONFIG

    assert fixture_main([str(tmp_path / "try"), "--classes", "2"]) == 0
    root, ckpt = tmp_path / "try" / "data", tmp_path / "try" / "tiny-clip.pt"
    common = ["model.name=tiny-clip", f"model.config_file={TINY_CONFIG}", f"model.pretrained={ckpt}"]
    common += ["device=cpu", "num_workers=0", "progress=false", f"cache_dir={tmp_path / 'cache'}"]
    proc = _realdata([f"data.root={root}", *common], cwd=tmp_path)  # default output folders, under tmp_path
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Loaded built-in" not in proc.stderr + proc.stdout  # open_clip's INFO lines are hidden
    (path,) = (tmp_path / "results" / "realdata").glob("1v1000_single/*/*/results.json")
    assert path.parent.parent.name == "tiny-clip_tiny-clip"
    good = json.loads(path.read_text())
    assert (good["status"], good["model"], good["run_name"], good["zoo_entry"]) == (
        "ok",
        "tiny-clip",
        "tiny-clip_tiny-clip",
        None,
    )
    text = path.read_text()
    assert "LAION400M" not in text and "67.13" not in text and "ViT-B/32" not in text

    proc = _realdata(
        [f"data.root={tmp_path / 'absent'}", *common, f"hydra.run.dir={path.parent}"], cwd=tmp_path
    )
    assert proc.returncode != 0
    assert "absent" in proc.stderr and "expected" in proc.stderr
    failed = json.loads(path.read_text())
    assert failed["status"] == "failed" and "absent" in failed["error"]
    (kept,) = path.parent.glob("earlier-*/results.json")
    assert json.loads(kept.read_text())["metrics"] == good["metrics"]


@pytest.mark.slow
def test_sigint_leaves_status_interrupted(tmp_path):
    """Ctrl-C (SIGINT) while `python -m realdata` extracts features: results.json says interrupted, why,
    and what was listed so far. Extraction is held in a sleep so the signal always lands mid-run."""
    import signal
    import time

    assert fixture_main([str(tmp_path / "try"), "--classes", "1"]) == 0
    run = tmp_path / "run"
    hold = (
        "import sys, time, runpy; import realdata.models as m; "
        "m.LoadedModel.encode = lambda self, images, positions: time.sleep(600); "
        "sys.argv[0] = 'realdata'; runpy.run_module('realdata', run_name='__main__')"
    )
    args = [f"data.root={tmp_path / 'try' / 'data'}", "model=tiny", "device=cpu", "num_workers=0"]
    args += [f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={run}", "progress=false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with sigint_reaches_children():  # also when pytest runs with SIGINT ignored (a background job)
        proc = subprocess.Popen(
            [sys.executable, "-c", hold, *args], cwd=REPO, env=env, stderr=subprocess.PIPE
        )
    deadline = time.time() + 240
    while time.time() < deadline and not (run / "results.json").exists():
        time.sleep(0.2)
    assert (run / "results.json").exists(), "the run never started"
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    text = (run / "results.json").read_text()
    res = json.loads(text)
    assert res["status"] == "interrupted" and "SIGINT" in res["error"], (res.get("error"), err[-2000:])
    assert res["data_root"].endswith("LAION-final") and res["model"] == "tiny-clip"


@pytest.mark.data
def test_real_counteranimal_matches_the_paper():
    from realdata.check import differences
    from realdata.dataset import scan

    assert differences(scan(os.environ["SOBER_CLIP_DATA"])) == []


@pytest.mark.data
@pytest.mark.weights
def test_curating_clip_reproduces_the_paper(tmp_path):
    """ViT-B/32 LAION-400M from its released file (vit_b_32-quickgelu-laion400m_e31-*.pt) within 3 points."""
    from omegaconf import OmegaConf

    from realdata.config import RealdataConfig
    from realdata.evaluate import evaluate

    files = sorted(Path(os.environ["SOBER_CLIP_WEIGHTS"]).glob("vit_b_32-quickgelu-laion400m_e31*"))
    assert files, "put vit_b_32-quickgelu-laion400m_e31-d867053b.pt in $SOBER_CLIP_WEIGHTS"
    cfg = OmegaConf.merge(
        OmegaConf.structured(RealdataConfig),
        {
            "data": {"root": os.environ["SOBER_CLIP_DATA"]},
            "model": {"name": "ViT-B-32-quickgelu", "pretrained": str(files[0])},
            "cache_dir": str(tmp_path / "cache"),
            "progress": False,
        },
    )
    m = evaluate(cfg, tmp_path / "out")["metrics"]
    assert abs(100 * m["acc_common"] - 67.13) < 3 and abs(100 * m["acc_counter"] - 36.95) < 3
