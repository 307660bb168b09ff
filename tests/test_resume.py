"""``resume=true`` (theory.runrecord.finished_result): a job whose folder holds a finished results.json of the
same config is skipped; a failed or interrupted one, or another config, runs again. Both apps."""

import json
import logging
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from synthetic import app
from tests.test_tracking import ROOT, TINY, compose_synthetic


def _doc(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def test_synthetic_resume_skips_finished_runs_and_reruns_the_rest(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="synthetic")
    out = tmp_path / "job"
    first = app.run_task(compose_synthetic([*TINY, "resume=true"]), out)
    assert first["status"] == "ok" and "running it" in caplog.text
    # same config (a different logger is not a different computation): skipped, the file left as it was
    again = app.run_task(compose_synthetic([*TINY, "resume=true", "logger=tensorboard"]), out)
    assert again == first == _doc(out) and "skipped" in caplog.text
    assert not (out / "tensorboard").exists()
    # interrupted (or failed): run again
    (out / "results.json").write_text(json.dumps({**first, "status": "interrupted"}))
    rerun = app.run_task(compose_synthetic([*TINY, "resume=true"]), out)
    assert rerun["status"] == "ok" and rerun["started"] >= first["started"] and rerun != first
    assert rerun["metrics"] == first["metrics"]  # deterministic: the same numbers
    # another config in that folder: run, saying which key differs
    other = app.run_task(compose_synthetic([*TINY, "resume=true", "data.p_spu=0.6"]), out)
    assert "data.p_spu: 0.9 -> 0.6" in caplog.text
    assert other["config"]["data"]["p_spu"] == 0.6 == _doc(out)["config"]["data"]["p_spu"]
    # without resume, a finished run runs again
    plain = app.run_task(compose_synthetic([*TINY, "data.p_spu=0.6"]), out)
    assert plain["wall_time_s"] != other["wall_time_s"] or plain["started"] != other["started"]


@pytest.fixture(scope="module")
def tiny_realdata(tmp_path_factory):
    from realdata.config import RealdataConfig, register
    from realdata.fixture import TINY_CONFIG, make_counteranimal, save_tiny_clip

    register()
    top = tmp_path_factory.mktemp("ca")
    make_counteranimal(top, n_classes=2, n_common=2, n_counter=2, corrupt=False, stray=False)
    ckpt = save_tiny_clip(top / "tiny.pt")
    model = {"name": "tiny-clip", "config_file": str(TINY_CONFIG), "kind": "clip", "pretrained": str(ckpt)}
    over = {"data": {"root": str(top)}, "model": model, "batch_size": 4, "num_workers": 0, "device": "cpu"}
    over.update(cache_dir=str(top / "cache"), progress=False)
    return OmegaConf.merge(OmegaConf.structured(RealdataConfig), over)


def test_realdata_resume_skips_finished_runs_and_reruns_failed_ones(tiny_realdata, tmp_path):
    from realdata.evaluate import evaluate

    cfg = OmegaConf.merge(tiny_realdata, {"resume": True})
    out = tmp_path / "job"
    first = evaluate(cfg, out)
    assert first["status"] == "ok"
    assert evaluate(cfg, out) == first == _doc(out)
    assert not list(out.glob("earlier-*"))  # nothing moved: the run was skipped
    (out / "results.json").write_text(json.dumps({**first, "status": "failed"}))
    rerun = evaluate(cfg, out)
    assert rerun["status"] == "ok" and rerun["metrics"] == first["metrics"]
    (earlier,) = out.glob("earlier-*")  # the failed one is kept, as every re-run keeps the earlier outputs
    assert _doc(earlier)["status"] == "failed"


def test_realdata_run_is_logged_to_tensorboard(tiny_realdata, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from realdata.evaluate import evaluate

    logger = OmegaConf.load(ROOT / "conf" / "realdata" / "logger" / "tensorboard.yaml")
    doc = evaluate(OmegaConf.merge(tiny_realdata, {"logger": logger}), tmp_path / "job")
    ea = EventAccumulator(str(tmp_path / "job" / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    ea.Reload()
    for name in ("acc_common", "acc_counter", "drop", "n_classes"):
        (value,) = ea.Scalars(f"final/{name}")
        assert value.value == pytest.approx(doc["metrics"][name], rel=1e-6)
    assert [i.encoded_image_string[:4] for i in ea.Images("figures/per_class")] == [b"\x89PNG"]
    assert not any(t.startswith("loss/") for t in ea.Tags()["scalars"])  # an evaluation records no curve
