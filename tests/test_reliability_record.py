"""Issue 18 (run record, sweeps, errors): no lost result, no clutter from config errors, errors that name
their culprit (MultiColoredMNIST IDX files, JAX_PLATFORMS)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import theory.runrecord as rr
from synthetic import aggregate
from synthetic.mnist import digits

REPO = Path(__file__).resolve().parents[1]


def _ok(config=None):
    return lambda checkpoint: {"metrics": {"acc": {"mean": 1.0, "std": 0.0, "n": 1, "per_seed": [1.0]}}}


def _boom(checkpoint):
    raise RuntimeError("boom")


# ---------------------------------------------------------------- the shared writer


def test_failing_rerun_moves_the_good_result_aside(tmp_path):
    good = rr.recorded_run(tmp_path, {"kind": "k", "config": {"a": 1}}, _ok())
    (tmp_path / "predictions.csv").write_text("x\n")
    with pytest.raises(RuntimeError):
        rr.recorded_run(tmp_path, {"kind": "k", "config": {"a": 2}}, _boom, outputs=("predictions.csv",))
    assert json.loads((tmp_path / "results.json").read_text())["status"] == "failed"
    (kept,) = tmp_path.glob("earlier-*/results.json")
    assert json.loads(kept.read_text())["metrics"] == good["metrics"]
    assert (kept.parent / "predictions.csv").read_text() == "x\n"
    # readers see the current run only
    assert rr.result_paths(tmp_path) == [tmp_path / "results.json"]
    # a second re-run keeps both earlier runs, in separate folders
    rr.recorded_run(tmp_path, {"kind": "k", "config": {"a": 3}}, _ok())
    assert len(list(tmp_path.glob("earlier-*/results.json"))) == 2


def test_config_error_writes_nothing_and_keeps_the_earlier_result(tmp_path, monkeypatch):
    rr.recorded_run(tmp_path, {"kind": "k", "config": {}}, _ok())
    before = (tmp_path / "results.json").read_text()

    def check():
        raise ValueError("data.p_spu='abc': expected a number")

    with pytest.raises(rr.ConfigError, match="data.p_spu"):
        rr.recorded_run(tmp_path, {"kind": "k", "config": {}}, _boom, check=check)
    assert (tmp_path / "results.json").read_text() == before and not list(tmp_path.glob("earlier-*"))
    hydra_only = tmp_path / "results" / "runs" / "typo"
    (hydra_only / ".hydra").mkdir(parents=True)
    (hydra_only / "__main__.log").write_text("")
    monkeypatch.chdir(tmp_path)
    assert rr.remove_if_unused(hydra_only.relative_to(tmp_path)) and not (tmp_path / "results").exists()
    assert not rr.remove_if_unused(tmp_path) and (tmp_path / "results.json").exists()


# ---------------------------------------------------------------- reused sweep folders


def _job(root: Path, job: int, p_spu: float) -> None:
    body = {"kind": "gaussian", "config": {"data": {"p_spu": p_spu}}, "started": _started_iso()}
    rr.recorded_run(root / str(job), body, _ok())


def _started_iso() -> str:
    import datetime

    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def test_aggregate_trusts_multirun_yaml_over_a_reused_folder(tmp_path):
    """A 2-job sweep into a folder that held a 4-job sweep: jobs 2 and 3 are the old sweep's."""
    for job, p in enumerate((0.5, 0.6, 0.7, 0.8)):
        _job(tmp_path, job, p)
    for job in (2, 3):  # the old sweep ran well before
        path = tmp_path / str(job) / "results.json"
        doc = json.loads(path.read_text())
        doc["started"] = "2020-01-01T00:00:00+00:00"
        path.write_text(json.dumps(doc))
    (tmp_path / "multirun.yaml").write_text(
        "hydra:\n  sweeper:\n    params:\n      data.p_spu: 0.5,0.9\n  overrides:\n    task: []\n"
    )
    for job, p in enumerate((0.5, 0.9)):
        _job(tmp_path, job, p)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", aggregate.SweepWarning)
        rows = aggregate.collect(tmp_path)
    assert [r["run"] for r in rows] == ["0", "1"]
    assert sorted(r["data.p_spu"] for r in rows) == [0.5, 0.9]
    message = " ".join(str(w.message) for w in caught)
    assert "2: left out" in message and "3: left out" in message


def test_run_folders_are_unique_below_the_second():
    """Two runs (or sweeps) started in the same second get different folders, in both apps."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from realdata.config import register
    from synthetic.config import register_configs

    register()
    register_configs()
    for app, name, extra in (("synthetic", "synthetic", []), ("realdata", "realdata", ["data.root=/x"])):
        dirs = []
        for _ in range(2):
            GlobalHydra.instance().clear()  # a new process each time: `now` is resolved afresh
            with initialize_config_dir(config_dir=str(REPO / "conf" / app), version_base="1.3"):
                cfg = compose(name, overrides=extra, return_hydra_config=True)
                dirs.append((str(cfg.hydra.run.dir), str(cfg.hydra.sweep.dir)))
        assert dirs[0][0] != dirs[1][0] and dirs[0][1] != dirs[1][1], dirs


# ---------------------------------------------------------------- MultiColoredMNIST IDX files


def _write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("case", ["truncated_gz", "plain_named_gz", "20x20", "label_12"])
def test_bad_idx_files_name_the_path(tmp_path, case):
    images, labels = np.zeros((5, 28, 28), np.uint8), np.arange(5)
    img = tmp_path / "t10k-images-idx3-ubyte.gz"
    lab = tmp_path / "t10k-labels-idx1-ubyte.gz"
    _write_idx(img, images, gz=True)
    _write_idx(lab, labels, gz=True)
    culprit = img
    if case == "truncated_gz":
        img.write_bytes(img.read_bytes()[:-20])
    elif case == "plain_named_gz":
        _write_idx(img, images, gz=False)
    elif case == "20x20":
        _write_idx(img, np.zeros((5, 20, 20)), gz=True)
    else:
        _write_idx(lab, np.array([0, 1, 12, 3, 4]), gz=True)
        culprit = lab
    with pytest.raises(ValueError) as e:
        digits.load_idx(str(tmp_path), "test")
    assert str(culprit) in str(e.value)


# ---------------------------------------------------------------- command line: one line, no folder


def _synthetic(args, env_extra, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO), **env_extra}
    return subprocess.run(
        [sys.executable, "-m", "synthetic", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, env, named",
    [
        (["data.p_spu=abc"], {"JAX_PLATFORMS": "cpu"}, "data.p_spu"),
        ([], {"JAX_PLATFORMS": "cuda"}, "JAX_PLATFORMS='cuda'"),
    ],
)
def test_config_errors_print_one_line_and_leave_no_run_folder(tmp_path, args, env, named):
    run_dir = tmp_path / "run"
    proc = _synthetic([*args, f"hydra.run.dir={run_dir}"], env, tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and named in lines[0] and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert not run_dir.exists()


# ---------------------------------------------------------------- the CounterAnimal table


def test_counteranimal_table_keys_rows_by_what_changes_the_number(tmp_path):
    from paper_figs import aggregate as ca
    from tests.test_paper_figs import write_result

    def run(folder, common, n_classes, root, **extra):
        path = write_result(tmp_path / folder, "ViT-B-32-quickgelu", "laion400m_e31", common, 0.4, **extra)
        doc = json.loads(path.read_text())
        doc["metrics"]["n_classes"] = n_classes
        doc["data_root"] = root
        path.write_text(json.dumps(doc))
        return path

    run("full", 0.60, 45, "/data/CounterAnimal")
    run("three", 0.90, 3, "/tmp/ca-try")  # newer, but another experiment: its own row
    base = {"k": 20, "true_class_in_k": True, "reference": "ViT-B-32-quickgelu_laion400m_e31"}
    for name, ref in (("r1", "a"), ("r2", "b")):  # 1v20 from two references (sets keyed by content)
        run(
            name,
            0.7,
            45,
            "/data/CounterAnimal",
            label_space="1v20",
            one_vs_20=base,
            one_vs_20_file=f"/c/{ref}.json",
        )
    run(
        "k5",
        0.8,
        45,
        "/data/CounterAnimal",
        label_space="1v20",
        one_vs_20={**base, "k": 5},
        one_vs_20_file="/c/k5.json",
    )
    measured, notes = ca.load_measured([tmp_path])
    assert len(measured) == 5 and not any("ignoring older" in n for n in notes)
    rows = {(r["label_space"], r["n_classes"], r["variant"]): r for r in ca.table_rows(measured)}
    assert rows[("1v1000", "45", "")]["paper_common"] != ""  # the paper's protocol: compared
    assert rows[("1v1000", "3", "")]["paper_common"] == ""  # 3 classes: not the paper's number
    assert rows[("1v20", "45", "1v20 k=5")]["common"] == "80.00"
    md = ca.to_markdown(ca.table_rows(measured), "t")
    header = next(line for line in md.splitlines() if line.startswith("| model"))
    assert "over the 45 classes" not in md and "over each row's classes" in md
    assert "| classes |" in header and "| variant |" in header
    # the paper's model counts as measured only through its 45-class run
    _, _, only_three = ca.aggregate([tmp_path / "three"], tmp_path / "t3")
    _, _, with_full = ca.aggregate([tmp_path / "three", tmp_path / "full"], tmp_path / "t45")
    assert "ViT-B-32/laion400m_e31" in only_three[-1] and "ViT-B-32/laion400m_e31" not in with_full[-1]
