"""paper_figs: reference data, the results aggregator, its table, and bad input.

Results files are generated here in the shape realdata writes (fractions); expected rows are computed from
the raw reference CSVs read directly, not through paper_figs.
"""

import csv
import json
import os
from pathlib import Path

import pytest

from paper_figs import aggregate
from paper_figs.reference import (
    CLIP_IMAGE_PARAMS_M,
    DATA_SIZE,
    HIGH_QUALITY_DATA,
    IMAGENET_PARAMS_M,
    paper_points,
)

REF_DIR = Path(__file__).resolve().parents[1] / "realdata" / "reference"


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def write_result(
    folder: Path,
    model: str,
    pretrained: str,
    common: float,
    counter: float,
    kind: str = "clip",
    label_space: str = "1v1000",
    prompts: str = "single",
    config_model: dict | None = None,
    **extra,
) -> Path:
    """A results.json as realdata writes it (fractions, class-balanced); extra: top-level fields."""
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "dataset": "counteranimal",
        "model": model,
        "pretrained": pretrained,
        "task": "zeroshot_classification",
        "family": {"clip": "open_clip", "imagenet": "torchvision"}[kind],
        "zero_shot": kind == "clip",
        "label_space": label_space,
        "prompts": prompts,
        "metrics": {
            "acc_common": common,
            "acc_counter": counter,
            "drop": common - counter,
            "acc_common_unbalanced": common,
            "acc_counter_unbalanced": counter,
            "top5_common": min(1.0, common + 0.1),
            "top5_counter": min(1.0, counter + 0.1),
            "n_common": 7174,
            "n_counter": 5926,
            "n_skipped": 0,
            "skipped_files": [],
        },
        "config": {"model": config_model or {"name": model, "pretrained": pretrained}},
        "status": "ok",  # as realdata writes it
        "wall_time_s": 1.0,
        "versions": {},
        "device": "cpu",
        "classnames": "synset",
        "zoo_entry": None,
        **extra,
    }
    path = folder / "results.json"
    path.write_text(json.dumps(data))
    return path


def test_reference_table_reproduces_paper_rows(tmp_path):
    """Reference mode: every row of Tables 3 and 4 appears with exactly the reported strings."""
    files = aggregate.write_table(aggregate.table_rows(), tmp_path, "reference")
    rows = read_csv(files[0])
    clip = read_csv(REF_DIR / "table3_clip.csv")
    imagenet = read_csv(REF_DIR / "table4_imagenet.csv")
    assert len(rows) == len(clip) + len(imagenet)
    got = {(r["kind"], r["model"], r["pretrained"]): r for r in rows}
    for ref in clip:
        row = got[("clip", ref["open_clip_model"], ref["open_clip_pretrained"])]
        assert (row["common"], row["counter"], row["drop"]) == (ref["common"], ref["counter"], ref["drop"])
        assert (row["backbone"], row["pretrain_data"]) == (ref["backbone"], ref["pretrain_data"])
        assert row["high_quality"] == ref["high_quality_data"]
    for ref in imagenet:
        row = got[("imagenet", ref["torchvision_name"], "")]
        assert (row["common"], row["counter"], row["drop"]) == (ref["common"], ref["counter"], ref["drop"])
        assert row["backbone"] == ref["model"]
    md = files[1].read_text()
    assert "| ViT-H-14-378 | dfn5b | ViT-H/14-384 | DFN5B | 1v1000 | single | 90.23 | 83.67 | 6.56 |" in md


def test_metadata_tables_cover_the_paper():
    """Every paper model has a backbone size and a data-set size; the high-quality set matches the table."""
    for p in paper_points():
        assert p.params_m is not None and p.params_m > 0, p.model
        assert p.data_size is not None and p.data_size > 0, p.pretrain_data
    flagged = {
        r["pretrain_data"] for r in read_csv(REF_DIR / "table3_clip.csv") if r["high_quality_data"] == "1"
    }
    assert flagged <= HIGH_QUALITY_DATA
    assert set(DATA_SIZE) >= {r["pretrain_data"] for r in read_csv(REF_DIR / "table3_clip.csv")}
    assert (
        CLIP_IMAGE_PARAMS_M["ViT-bigG-14"] > CLIP_IMAGE_PARAMS_M["ViT-H-14"] > CLIP_IMAGE_PARAMS_M["ViT-B-16"]
    )


def test_imagenet_backbone_sizes_are_torchvisions():
    """The parameter counts the figures scale markers by equal torchvision's weights metadata."""
    import torchvision

    for name, params_m in IMAGENET_PARAMS_M.items():
        meta = torchvision.models.get_model_weights(name).DEFAULT.meta["num_params"]
        assert params_m == pytest.approx(meta / 1e6, abs=0.005), name


def test_aggregator_rows_and_differences(tmp_path, capsys):
    runs = tmp_path / "multirun" / "2026-01-01"
    # QuickGELU name must still match the paper's ViT-B-32 / laion400m_e31 row.
    write_result(runs / "0", "ViT-B-32-quickgelu", "laion400m_e31", 0.7000, 0.4000)
    write_result(runs / "1" / "nested", "resnet50", "IMAGENET1K_V1", 0.8300, 0.6500, kind="imagenet")
    write_result(runs / "2", "ViT-B-32-quickgelu", "laion400m_e31", 0.5000, 0.4000, label_space="1v20")
    write_result(runs / "3", "ViT-B-32", "laion2b_e16", 0.7100, 0.4800)  # not in the paper
    out = tmp_path / "out"
    assert aggregate.main([str(tmp_path / "multirun"), "--out", str(out)]) == 0
    rows = read_csv(out / "counteranimal_table.csv")
    assert len(rows) == 4
    by = {(r["model"], r["pretrained"], r["label_space"]): r for r in rows}

    paper3 = {
        (r["open_clip_model"], r["open_clip_pretrained"]): r for r in read_csv(REF_DIR / "table3_clip.csv")
    }
    paper4 = {r["torchvision_name"]: r for r in read_csv(REF_DIR / "table4_imagenet.csv")}
    ref = paper3[("ViT-B-32", "laion400m_e31")]
    row = by[("ViT-B-32-quickgelu", "laion400m_e31", "1v1000")]
    assert (row["common"], row["counter"], row["drop"]) == ("70.00", "40.00", "30.00")
    assert row["paper_common"] == ref["common"] and row["paper_drop"] == ref["drop"]
    assert float(row["diff_common"]) == pytest.approx(70.0 - float(ref["common"]), abs=0.006)
    assert float(row["diff_counter"]) == pytest.approx(40.0 - float(ref["counter"]), abs=0.006)
    assert float(row["diff_drop"]) == pytest.approx(30.0 - float(ref["drop"]), abs=0.006)
    assert row["backbone"] == "ViT-B/32" and row["pretrain_data"] == "LAION400M"

    row = by[("resnet50", "IMAGENET1K_V1", "1v1000")]
    assert float(row["diff_counter"]) == pytest.approx(65.0 - float(paper4["resnet50"]["counter"]), abs=0.006)
    assert row["backbone"] == paper4["resnet50"]["model"]

    # Another protocol: no paper numbers to compare with.
    row = by[("ViT-B-32-quickgelu", "laion400m_e31", "1v20")]
    assert row["paper_common"] == "" and row["diff_drop"] == "" and row["drop"] == "10.00"
    # Not in the paper: data set from the open_clip tag, no paper columns.
    row = by[("ViT-B-32", "laion2b_e16", "1v1000")]
    assert row["pretrain_data"] == "LAION2B" and row["paper_common"] == "" and row["drop"] == "23.00"

    text = capsys.readouterr().out
    n_paper = len(paper3) + len(paper4)
    assert f"{n_paper - 2} of the paper's {n_paper} models not measured" in text
    assert "ViT-L-14/openai" in text and "resnet50," not in text
    md = (out / "counteranimal_table.md").read_text()
    assert "| ViT-B-32-quickgelu | laion400m_e31 |" in md and "Δ drop" in md
    assert f"{n_paper - 2} of the paper's {n_paper} models not measured" in md


def test_config_metadata_used_for_models_outside_the_paper(tmp_path):
    cfg = {
        "name": "ViT-B-32",
        "backbone": "ViT-B/32",
        "pretrain_data": "CommonPool-L",
        "high_quality_data": True,
    }
    path = write_result(tmp_path, "ViT-B-32", "commonpool_l_s1b_b8k", 0.6, 0.4, zoo_entry="mine", zoo=cfg)
    p = aggregate.load_result(path).point
    assert (p.backbone, p.pretrain_data, p.high_quality) == ("ViT-B/32", "CommonPool-L", True)
    assert p.data_size is None and p.params_m == CLIP_IMAGE_PARAMS_M["ViT-B-32"]


def test_zoo_metadata_only_from_the_zoo_field_of_new_results(tmp_path):
    """realdata writes zoo metadata (top-level "zoo") only when the run is that zoo entry; a run that is not
    carries zoo_entry null, and stale config.model metadata must not be shown for it."""
    stale = {"name": "ViT-B-32", "backbone": "ViT-B/32", "pretrain_data": "LAION400M"}
    other = write_result(
        tmp_path / "a", "ViT-B-32", "commonpool_l_s1b_b8k", 0.6, 0.4, config_model=stale, zoo_entry=None
    )
    p = aggregate.load_result(other).point
    assert p.pretrain_data != "LAION400M" and p.backbone == "ViT-B-32"
    zoo = {"backbone": "ViT-B/32*", "pretrain_data": "MyData", "high_quality_data": True}
    entry = write_result(
        tmp_path / "b", "ViT-B-32", "commonpool_l_s1b_b8k", 0.6, 0.4, zoo_entry="my_entry", zoo=zoo
    )
    p = aggregate.load_result(entry).point
    assert (p.backbone, p.pretrain_data, p.high_quality) == ("ViT-B/32*", "MyData", True)


def test_protocol_variants_get_their_own_rows_and_interrupted_runs_are_skipped(tmp_path):
    one_vs_20 = {"k": 20, "true_class_in_k": True}
    write_result(tmp_path / "a", "RN50", "openai", 0.60, 0.40, classnames="synset", one_vs_20=one_vs_20)
    write_result(tmp_path / "b", "RN50", "openai", 0.62, 0.41, classnames="openai", one_vs_20=one_vs_20)
    plus = {"k": 20, "true_class_in_k": False}
    write_result(
        tmp_path / "c", "RN50", "openai", 0.5, 0.3, label_space="1v20", classnames="synset", one_vs_20=plus
    )
    stopped = write_result(tmp_path / "d", "RN50", "openai", 0.1, 0.1, classnames="synset")
    data = json.loads(stopped.read_text())
    data.update(status="interrupted", error="KeyboardInterrupt")
    del data["metrics"]
    stopped.write_text(json.dumps(data))
    measured, notes = aggregate.load_measured([tmp_path])
    variants = sorted((m.point.label_space, m.variant) for m in measured)
    assert variants == [("1v1000", ""), ("1v1000", "classnames=openai"), ("1v20", "1v20 true class + 20")]
    assert any("interrupted run of RN50" in n for n in notes)
    rows = aggregate.table_rows(measured)
    assert sorted(r["variant"] for r in rows) == ["", "1v20 true class + 20", "classnames=openai"]


def test_duplicate_runs_keep_the_newest(tmp_path):
    old = write_result(tmp_path / "a", "RN50", "openai", 0.60, 0.40)
    new = write_result(tmp_path / "b", "RN50", "openai", 0.65, 0.41)
    os.utime(old, (1_000_000, 1_000_000))
    measured, notes = aggregate.load_measured([tmp_path])
    assert len(measured) == 1 and measured[0].point.path == new.resolve()
    assert measured[0].point.common == pytest.approx(65.0)
    assert any(str(old.resolve()) in n for n in notes)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            {"status": "ok", "metrics": {"acc_common": 0.5}, "config": {}},
            "not a realdata CounterAnimal results file: missing keys",
        ),
        ([1, 2, 3], "expected a JSON object"),
    ],
)
def test_results_of_another_shape_are_rejected(tmp_path, payload, message):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(aggregate.ResultsError, match=message) as err:
        aggregate.load_result(path)
    assert str(path) in str(err.value)


def test_bad_values_are_named(tmp_path):
    path = write_result(tmp_path, "RN50", "openai", 0.6, 0.4)
    data = json.loads(path.read_text())
    data["metrics"]["acc_common"] = 64.02  # a percentage where a fraction is expected
    path.write_text(json.dumps(data))
    with pytest.raises(aggregate.ResultsError, match=r"metrics\.acc_common = 64\.02, expected a fraction"):
        aggregate.load_result(path)
    data["metrics"]["acc_common"], data["dataset"] = 0.6, "imagenet"
    path.write_text(json.dumps(data))
    with pytest.raises(aggregate.ResultsError, match="dataset = 'imagenet', expected 'counteranimal'"):
        aggregate.load_result(path)
    data["dataset"], data["label_space"] = "counteranimal", "1v100"
    path.write_text(json.dumps(data))
    with pytest.raises(aggregate.ResultsError, match="label_space = '1v100', expected one of"):
        aggregate.load_result(path)
    path.write_text("{not json")
    with pytest.raises(aggregate.ResultsError, match="malformed results.json"):
        aggregate.load_result(path)


def test_empty_or_absent_paths_are_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(aggregate.ResultsError, match=f"no results.json under {empty}"):
        aggregate.load_measured([empty])
    with pytest.raises(aggregate.ResultsError, match="does not exist"):
        aggregate.load_measured([tmp_path / "nope"])
    assert aggregate.main([str(empty), "--out", str(tmp_path / "out")]) == 2
    assert f"error: no results.json under {empty}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_failed_runs_are_skipped_and_reported(tmp_path):
    """A failed realdata run (status 'failed', no metrics) is skipped and named; the rest still counts."""
    write_result(tmp_path / "ok", "RN50", "openai", 0.6, 0.4)
    failed = tmp_path / "bad" / "results.json"
    failed.parent.mkdir()
    failed.write_text(
        json.dumps(
            {
                "dataset": "counteranimal",
                "model": "RN101-quickgelu",
                "pretrained": "openai",
                "family": "open_clip",
                "zero_shot": True,
                "label_space": "1v1000",
                "prompts": "single",
                "classnames": "synset",
                "zoo_entry": None,
                "config": {"model": {"name": "RN101-quickgelu"}},
                "status": "failed",
                "error": "RuntimeError: out of memory",
            }
        )
    )
    measured, notes = aggregate.load_measured([tmp_path])
    assert [m.point.model for m in measured] == ["RN50"]
    assert any("failed run of RN101-quickgelu" in n and "out of memory" in n for n in notes)
    with pytest.raises(aggregate.ResultsError, match="every run failed"):
        aggregate.load_measured([failed])
