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
)
CONF = REPO / "conf" / "realdata"
register()


def _rows(name: str) -> list[dict]:
    with open(REPO / "realdata" / "reference" / name, newline="") as f:
        return list(csv.DictReader(f))


def test_zoo_has_an_entry_for_every_table_row_and_matches_the_generator():
    expected = zoo.expected_files()
    assert len(expected) == len(_rows("table3_clip.csv")) + len(_rows("table4_imagenet.csv"))
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
            assert cfg.model.kind in ("clip", "imagenet")
            if cfg.model.kind == "imagenet":
                assert cfg.model.name in torchvision.models.list_models(module=torchvision.models)
        with pytest.raises(Exception, match="label_spac"):
            compose("realdata", overrides=["label_spac=1v20"])  # misspelt key fails at start-up
        with pytest.raises(ValueError, match="label_space='1v5'"):
            validate(compose("realdata", overrides=["label_space=1v5", "data.root=/x"]))


def test_python_m_realdata_multirun_end_to_end(tmp_path):
    """A Hydra multirun of `python -m realdata` over two label spaces: both runs write their outputs where
    paper_figs looks, the second reads the first one's feature cache, and paper_figs reads both."""
    from paper_figs.aggregate import load_measured

    assert fixture_main([str(tmp_path / "try"), "--classes", "2"]) == 0  # 3 common, 2 counter per class
    root, ckpt = tmp_path / "try" / "data", tmp_path / "try" / "tiny-clip.pt"
    out = tmp_path / "sweep"
    cmd = [
        sys.executable,
        "-m",
        "realdata",
        "-m",
        f"data.root={root}",
        "model=tiny",
        f"model.pretrained={ckpt}",
        "label_space=1v1000,45way",
        "num_workers=1",
        "batch_size=4",
        "device=cpu",
        f"cache_dir={tmp_path / 'cache'}",
        f"hydra.sweep.dir={out}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = {ls: out / f"{ls}_single" / "tiny" for ls in ("1v1000", "45way")}
    results = {ls: json.loads((d / "results.json").read_text()) for ls, d in runs.items()}
    assert results["1v1000"]["feature_cache"] == results["45way"]["feature_cache"]
    results = results["1v1000"]
    for key in ("dataset", "model", "pretrained", "task", "model_kind", "label_space", "prompts", "metrics"):
        assert key in results
    for key in ("config", "status", "wall_time_s", "versions", "device"):
        assert key in results
    assert (results["dataset"], results["task"], results["status"]) == (
        "counteranimal",
        "zeroshot_classification",
        "ok",
    )
    m = results["metrics"]
    assert (m["n_common"], m["n_counter"], m["n_skipped"]) == (6, 4, 2)
    assert 0.0 <= m["acc_common"] <= 1.0 and m["drop"] == pytest.approx(m["acc_common"] - m["acc_counter"])
    assert results["config"]["model"]["name"] == "tiny-clip"
    with open(runs["1v1000"] / "predictions.csv", newline="") as f:
        preds = list(csv.DictReader(f))
    assert len(preds) == 10 and {"path", "group", "label", "pred"} <= set(preds[0])
    with open(runs["1v1000"] / "per_class.csv", newline="") as f:
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


def test_python_m_realdata_missing_root_fails_and_records_it(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "realdata",
        f"data.root={tmp_path / 'absent'}",
        "model=tiny",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "absent" in proc.stderr and "expected" in proc.stderr
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["status"] == "failed" and "absent" in results["error"]


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
