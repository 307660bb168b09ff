"""The run record (theory.runrecord): the writer's guarantees, the statuses, and the reader's checks."""

import json
import math

import numpy as np
import pytest

import theory.runrecord as rr


def _doc(status="ok", **more):
    return {"status": status, "config": {"seeds": 1}, "metrics": {"acc": {"mean": 0.5}}, **more}


def test_writer_is_strict_json_with_plain_types(tmp_path):
    doc = _doc(x=np.float32(0.25), v=np.arange(3), bad=float("nan"), inf=-math.inf, p=tmp_path, t=(1, 2))
    path = rr.write_results(tmp_path / "run", doc)
    assert path == tmp_path / "run" / rr.RESULTS_FILE
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    got = json.loads(text)
    assert got["x"] == 0.25 and got["v"] == [0, 1, 2] and got["t"] == [1, 2]
    assert got["bad"] is None and got["inf"] is None and got["p"] == str(tmp_path)
    assert [p.name for p in (tmp_path / "run").iterdir()] == [rr.RESULTS_FILE]  # no temporary file left


@pytest.mark.parametrize("status", [None, "done", "OK"])
def test_writer_refuses_a_status_outside_the_vocabulary(tmp_path, status):
    with pytest.raises(ValueError, match=f"status={status!r}: expected one of"):
        rr.write_results(tmp_path, _doc(status))
    assert not (tmp_path / rr.RESULTS_FILE).exists()


def test_recorded_run_says_interrupted_until_it_completes(tmp_path):
    seen = []

    def work(checkpoint):
        seen.append(json.loads((tmp_path / rr.RESULTS_FILE).read_text()))
        checkpoint({"metrics": {"acc": {"mean": 0.1}}, "seeds_done": 1})
        seen.append(json.loads((tmp_path / rr.RESULTS_FILE).read_text()))
        return {"metrics": {"acc": {"mean": 0.2}}, "seeds_done": 2, "status": "diverged"}

    doc = rr.recorded_run(tmp_path, {"kind": "k", "config": {"a": 1}}, work)
    assert seen[0]["status"] == "interrupted" and seen[0]["error"] == rr.NOT_FINISHED
    assert seen[1]["status"] == "interrupted" and seen[1]["seeds_done"] == 1
    assert doc == json.loads((tmp_path / rr.RESULTS_FILE).read_text())
    assert doc["status"] == "diverged" and doc["seeds_done"] == 2 and "error" not in doc
    assert doc["kind"] == "k" and doc["config"] == {"a": 1} and doc["wall_time_s"] >= 0
    assert rr.load_results(tmp_path / rr.RESULTS_FILE, kind="k") == doc


def test_recorded_run_keeps_the_checkpoint_of_a_failed_or_stopped_run(tmp_path):
    def fails(checkpoint):
        checkpoint({"seeds_done": 3})
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        rr.recorded_run(tmp_path / "a", {"config": {}}, fails)
    doc = json.loads((tmp_path / "a" / rr.RESULTS_FILE).read_text())
    assert doc["status"] == "failed" and doc["error"] == "RuntimeError: boom" and doc["seeds_done"] == 3
    assert "Traceback" in doc["traceback"] and "boom" in doc["traceback"]

    def stopped(checkpoint):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rr.recorded_run(tmp_path / "b", {"config": {}}, stopped)
    doc = json.loads((tmp_path / "b" / rr.RESULTS_FILE).read_text())
    assert doc["status"] == "interrupted" and "SIGINT" in doc["error"]


def test_provenance_fields():
    head = rr.provenance("gaussian", ("numpy", "no-such-distribution"), {"backend": "cpu"})
    assert head["kind"] == "gaussian" and head["device"] == {"backend": "cpu"}
    assert head["versions"]["numpy"] == np.__version__ and head["versions"]["no-such-distribution"] is None
    assert set(head) == {"kind", "versions", "device", "git_commit", "command", "started"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"status": "ok", "config": {', "malformed results.json"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"status": "done", "config": {}}', "status='done', expected one of"),
        ('{"status": "ok", "metrics": {}}', "no 'config' object"),
        ('{"status": "diverged", "config": {}}', "status diverged but no 'metrics' object"),
        (
            '{"status": "ok", "config": {}, "metrics": {}, "kind": "gaussian"}',
            "kind='gaussian', expected 'x'",
        ),
    ],
)
def test_reader_names_the_file_and_what_is_wrong(tmp_path, text, message):
    path = tmp_path / rr.RESULTS_FILE
    path.write_text(text)
    with pytest.raises(rr.ResultsError, match=message) as err:
        rr.load_results(path, kind="x")
    assert str(err.value).startswith(str(path))


def test_reader_accepts_an_unfinished_run_without_metrics(tmp_path):
    path = tmp_path / rr.RESULTS_FILE
    path.write_text(json.dumps({"status": "failed", "config": {}, "error": "E"}))
    assert rr.load_results(path)["error"] == "E"


def test_paths_in_job_order_and_iteration_with_errors(tmp_path):
    for job in ("10", "2", "x", "0/1"):
        rr.write_results(tmp_path / job, _doc())
    (tmp_path / "3").mkdir()
    (tmp_path / "3" / rr.RESULTS_FILE).write_text("{")
    names = [str(p.parent.relative_to(tmp_path)) for p in rr.result_paths(tmp_path)]
    assert names == ["0/1", "2", "3", "10", "x"]
    extra = tmp_path / "x" / rr.RESULTS_FILE
    assert rr.result_paths([tmp_path / "2", extra, extra]) == [tmp_path / "2" / rr.RESULTS_FILE, extra]
    with pytest.raises(rr.ResultsError, match="malformed"):
        list(rr.iter_results(tmp_path))
    errors = []
    got = list(rr.iter_results(tmp_path, on_error=errors.append))
    assert [p.parent.name for p, _ in got] == ["1", "2", "10", "x"] and all(
        d["status"] == "ok" for _, d in got
    )
    assert len(errors) == 1 and str(tmp_path / "3" / rr.RESULTS_FILE) in str(errors[0])


def test_absent_or_empty_paths_are_errors(tmp_path):
    with pytest.raises(rr.ResultsError, match="does not exist"):
        rr.result_paths(tmp_path / "nope")
    with pytest.raises(rr.ResultsError, match=f"no results.json under {tmp_path}"):
        rr.result_paths(tmp_path)
    with pytest.raises(rr.ResultsError, match="no results paths given"):
        rr.result_paths([])
    assert not rr.has_results(tmp_path) and not rr.has_results(tmp_path / "nope")


def test_latest_sweep_is_the_newest_folder_with_results(tmp_path):
    with pytest.raises(FileNotFoundError, match="no sweep with results.json under .*; run it"):
        rr.latest_sweep(tmp_path, "run it")
    rr.write_results(tmp_path / "2026-01-01" / "0", _doc())
    rr.write_results(tmp_path / "2026-01-02" / "0", _doc())
    (tmp_path / "2026-01-03").mkdir()  # a sweep that has written nothing yet
    assert rr.latest_sweep(tmp_path) == tmp_path / "2026-01-02"


def test_ctrl_c_reaches_a_run_whose_work_sits_in_a_callback_from_c(tmp_path):
    """Python raises KeyboardInterrupt in the main thread, between bytecodes: inside a callback from C it is
    lost (ctypes, here: it prints "Exception ignored" and the run goes on to status ok) or fatal (torch's
    pybind11 aborts the process, leaving "not finished"). recorded_run runs the work in a thread and waits
    in Python, so a SIGINT stops the run at once and is recorded as such, and a checkpoint the still
    running work makes afterwards does not overwrite that record."""
    import ctypes
    import os
    import signal
    import threading
    import time

    from tests.test_batched_launcher import sigint_reaches_children

    calls, tried_after = [], threading.Event()

    @ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
    def slow_compare(a, b):
        calls.append(time.time())
        time.sleep(0.4)
        return 0

    def work(checkpoint):
        checkpoint({"metrics": {"acc": {"mean": 0.1}}, "seeds_done": 1})
        values = (ctypes.c_int * 4)()
        ctypes.CDLL(None).qsort(values, 4, ctypes.sizeof(ctypes.c_int), slow_compare)  # in C for > 1 s
        checkpoint({"metrics": {"acc": {"mean": 0.2}}, "seeds_done": 2})
        tried_after.set()
        return {"metrics": {"acc": {"mean": 0.3}}}

    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    with sigint_reaches_children(), pytest.raises(KeyboardInterrupt):  # also where pytest ignores SIGINT
        timer.start()
        rr.recorded_run(tmp_path, {"config": {}}, work)
    stopped = time.time()
    assert calls and stopped - calls[0] < 1.0  # at once, not after the sort
    assert tried_after.wait(timeout=30)  # the work's thread finished its sort and tried to checkpoint
    doc = json.loads((tmp_path / rr.RESULTS_FILE).read_text())
    assert doc["status"] == "interrupted" and "SIGINT" in doc["error"]
    assert doc["seeds_done"] == 1 and doc["metrics"]["acc"]["mean"] == 0.1
