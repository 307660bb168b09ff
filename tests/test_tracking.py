"""The ``logger`` group (runrecord.track): each tracker writes locally and its own library reads back what
results.json holds (config, the recorded loss curve per step, final metrics, figures)."""

import glob
import json
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from synthetic import app
from synthetic.config import register_configs
from theory.runrecord import track

ROOT = Path(__file__).resolve().parents[1]
APPS = ("synthetic", "realdata")
register_configs()
TINY = ["data.n=64", "data.d_image=8", "data.d_text=8", "encoder.h=2", "train.steps=40", "seeds=2"]
TINY += ["eval.n_test=200", "train.loss_curve_points=10", "name=tracking"]
TINY += ["train.save=true"]  # one compiled program for every test of these modules, test_saved's included


def compose_synthetic(overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf" / "synthetic"), version_base="1.3"):
        return compose("synthetic", overrides=overrides)


def run(tmp_path, logger: str, **over) -> tuple[dict, Path]:
    extra = [f"logger.{k}={v}" for k, v in over.items()]
    out = tmp_path / "run"
    doc = app.run_task(compose_synthetic([*TINY, f"logger={logger}", *extra]), out)
    assert doc["status"] == "ok"
    return doc, out


def expected_curves(doc):
    steps = doc["extra"]["loss_curve_steps"]
    per_seed = doc["extra"]["loss_curve_per_seed"]
    assert len(steps) == 10 and steps[-1] == 39 and len(per_seed) == 2
    return steps, {"loss/seed_0": per_seed[0], "loss/seed_1": per_seed[1], "loss/mean": np.mean(per_seed, 0)}


def test_logger_group_is_the_same_for_both_apps_and_none_by_default():
    files = {a: sorted(p.name for p in (ROOT / "conf" / a / "logger").glob("*.yaml")) for a in APPS}
    assert files["synthetic"] == files["realdata"]
    assert files["synthetic"] == ["mlflow.yaml", "none.yaml", "tensorboard.yaml", "wandb.yaml"]
    for name in files["synthetic"]:
        a, b = (OmegaConf.load(ROOT / "conf" / x / "logger" / name) for x in ("synthetic", "realdata"))
        assert a == b
    assert track.open_tracker(compose_synthetic([]).logger) is None


def test_tensorboard_event_files_read_back(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    doc, out = run(tmp_path, "tensorboard")
    ea = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    ea.Reload()
    steps, want = expected_curves(doc)
    for tag, values in want.items():
        events = ea.Scalars(tag)
        assert [e.step for e in events] == steps
        np.testing.assert_allclose([e.value for e in events], values, rtol=1e-6)
    for name in ("acc_common", "acc_counter"):
        (final,) = ea.Scalars(f"final/{name}")
        assert final.step == 39 and final.value == pytest.approx(doc["metrics"][name]["mean"], rel=1e-6)
    (image,) = ea.Images("figures/loss_curve")
    assert image.encoded_image_string[:4] == b"\x89PNG"
    config = ea.Tensors("config")[0].tensor_proto.string_val[0].decode()
    assert "| train.steps | 40 |" in config and "logger" not in config


def _wandb_records(path: Path):
    """The records of a .wandb transaction log (wandb's LevelDB-style framing), parsed with wandb's protos."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, buf = 7, b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:  # block padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:
            pos += left
            continue
        buf += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST
            record = pb.Record()
            record.ParseFromString(buf)
            yield record
            buf = b""


def test_wandb_offline_run_files_read_back(tmp_path):
    doc, out = run(tmp_path, "wandb")
    (log,) = glob.glob(str(out / "wandb" / "offline-run-*" / "run-*.wandb"))
    # run.finish() returns before wandb's service has written the last records: wait for the exit record
    for _ in range(300):
        records = list(_wandb_records(Path(log)))
        if any(r.WhichOneof("record_type") == "exit" for r in records):
            break
        time.sleep(0.1)
    config, history, summary = {}, {}, {}
    for r in records:
        kind = r.WhichOneof("record_type")
        if kind == "run":
            assert r.run.project == "sober-clip" and r.run.display_name == str(out)
            config.update({u.key: json.loads(u.value_json) for u in r.run.config.update})
        elif kind == "config":  # the config may also come in its own record
            config.update({u.key: json.loads(u.value_json) for u in r.config.update})
        elif kind == "history":
            item = {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in r.history.item}
            history[item["_step"]] = item
        elif kind == "summary":
            summary.update({"/".join(u.nested_key) or u.key: u.value_json for u in r.summary.update})
    assert config["train.steps"] == 40 and config["data.p_spu"] == 0.9 and "logger._target_" not in config
    steps, want = expected_curves(doc)
    for tag, values in want.items():
        np.testing.assert_allclose([history[s][tag] for s in steps], values, rtol=1e-6)
    assert json.loads(summary["acc_counter"]) == pytest.approx(doc["metrics"]["acc_counter"]["mean"])
    assert json.loads(summary["status"]) == "ok"
    assert list((out / "wandb").glob("offline-run-*/files/media/images/figures/loss_curve_*.png"))


def test_mlflow_file_store_reads_back(tmp_path):
    from mlflow import MlflowClient

    store = tmp_path / "mlruns"
    doc, out = run(tmp_path, "mlflow", tracking_uri=str(store))
    client = MlflowClient(tracking_uri=store.as_uri())
    (r,) = client.search_runs([client.get_experiment_by_name("tracking").experiment_id])
    assert r.info.run_name == str(out) and r.info.status == "FINISHED" and r.data.tags["status"] == "ok"
    assert json.loads(r.data.params["train.steps"]) == 40 and "resume" not in r.data.params
    steps, want = expected_curves(doc)
    for tag, values in want.items():
        history = sorted(client.get_metric_history(r.info.run_id, tag), key=lambda m: m.step)
        assert [m.step for m in history] == steps
        np.testing.assert_allclose([m.value for m in history], values, rtol=1e-6)
    assert r.data.metrics["final/acc_common"] == pytest.approx(doc["metrics"]["acc_common"]["mean"])
    arts = {a.path for a in client.list_artifacts(r.info.run_id, "figures")}
    assert arts == {"figures/loss_curve.png"}
    config = Path(client.download_artifacts(r.info.run_id, "config.json", str(tmp_path)))
    assert json.loads(config.read_text())["train"]["steps"] == 40


def test_paper_figs_curves_draws_each_runs_recorded_curve(tmp_path):
    from paper_figs import curves

    docs = {}
    for p in ("0.6", "0.9"):
        docs[p] = app.run_task(compose_synthetic([*TINY, f"data.p_spu={p}"]), tmp_path / "sweep" / p)
    (tmp_path / "sweep" / "broken").mkdir()  # a run that failed before training: listed, not drawn
    (tmp_path / "sweep" / "broken" / "results.json").write_text(
        json.dumps({"status": "failed", "config": {}})
    )
    fig, without = curves.figure(tmp_path / "sweep")
    assert without == [tmp_path / "sweep" / "broken"]
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    for p, doc in docs.items():
        line = lines[f"data.p_spu={p}"]  # the bold mean curve, labelled by the key that differs
        assert list(line.get_xdata()) == doc["extra"]["loss_curve_steps"]
        np.testing.assert_allclose(
            line.get_ydata(), np.mean(doc["extra"]["loss_curve_per_seed"], 0), rtol=1e-6
        )
    assert len(fig.axes[0].lines) == 2 * 3  # two seeds and the mean per run
    assert curves.main([str(tmp_path / "sweep"), "--out", str(tmp_path / "figs")]) == 0
    assert sorted(p.suffix for p in (tmp_path / "figs").iterdir()) == [".pdf", ".png"]
