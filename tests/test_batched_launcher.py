"""hydra/launcher=batched: found as a Hydra plugin, the basic launcher's per-job outputs, its memory plan, and
a config error among a group's jobs (each job resolved under its own hydra node, the bad one exits 2).

The sweeps run with train.progress=false and one persistent compilation cache (a folder of this module's
run), so a later process that runs a program an earlier one compiled loads it instead of compiling it."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

#: A tiny 2 x 2 sweep over traced keys (one compiled program); lr = 1e4 diverges, its neighbours must not.
SWEEP = [
    "-m",
    "seeds=2",
    "train.steps=30",
    "train.batch_size=64",
    "train.optimizer=sgd",
    "data.n=0",
    "data.d_image=8",
    "data.d_text=8",
    "encoder.h=4",
    "eval.n_test=200",
    "train.progress=false",  # no host callback: the compiled programs go to the compilation cache
    "data.p_spu=0.6,0.9",
    "train.lr=0.05,1e4",
]

#: Three jobs of SWEEP's program (the basic launcher's compiled run then comes from the cache) whose seed and
#: caption_q are their job number: 0 and 1 valid, 2 not a probability.
ERRORS = [*SWEEP[:-2], "seed=${hydra:job.num}", "data.caption_q=${hydra:job.num}", "data.p_spu=0.5,0.6,0.7"]


def _command(out: Path, sweep: list[str], *extra: str) -> tuple[list[str], dict]:
    """The sweep's command line into ``out`` and its environment: the compilation cache next to ``out``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    env["JAX_COMPILATION_CACHE_DIR"] = str(out.parent / "jax_cache")
    return [sys.executable, "-m", "synthetic", *sweep, f"hydra.sweep.dir={out}", *extra], env


def _sweep(out: Path, *extra: str) -> subprocess.Popen:
    cmd, env = _command(out, SWEEP, *extra)
    pipe = subprocess.PIPE
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=pipe, stderr=subprocess.STDOUT, text=True)


@contextlib.contextmanager
def sigint_reaches_children():
    """Children started inside this block get SIGINT at its default action. A child inherits an ignored
    SIGINT (pytest started in the background by a non-interactive shell, ``( pytest ... & )``), and Python
    then installs no KeyboardInterrupt handler: the test's Ctrl-C would be lost. exec resets a handled
    signal to its default, so this process handles SIGINT while it starts them (a preexec_fn would instead
    fork this multithreaded process, which JAX warns may deadlock)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def _interrupt_when_compiling(p: subprocess.Popen) -> str:
    """Send SIGINT once the group's program compiles (every job unfinished then); the process's output."""
    seen = []
    for line in p.stdout:
        seen.append(line)
        if "rows ..." in line:
            time.sleep(0.5)
            p.send_signal(signal.SIGINT)
            break
    out, _ = p.communicate(timeout=120)
    return "".join(seen) + out


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """The same sweep through the basic and the batched launcher (chunks of 3 rows: 8 rows -> 3 chunks,
    the last padded), and a third batched one stopped by Ctrl-C, all run side by side."""
    base = tmp_path_factory.mktemp("launchers")
    procs = {
        "basic": _sweep(base / "basic"),
        "batched": _sweep(base / "batched", "hydra/launcher=batched", "hydra.launcher.chunk=3"),
    }
    with sigint_reaches_children():
        procs["ctrl-c"] = _sweep(base / "ctrl-c", "hydra/launcher=batched", "train.steps=200000")
    stopped = {}
    thread = threading.Thread(target=lambda: stopped.update(out=_interrupt_when_compiling(procs["ctrl-c"])))
    thread.start()
    for name in ("basic", "batched"):
        out, _ = procs[name].communicate(timeout=300)
        assert procs[name].returncode == 0, f"{name} launcher:\n{out}"
    thread.join(timeout=300)
    return base, procs, stopped.get("out", "")


def _jobs(folder: Path) -> dict[str, dict]:
    dirs = [d for d in sorted(folder.iterdir()) if d.is_dir()]
    return {d.name: json.loads((d / "results.json").read_text()) for d in dirs}


@pytest.mark.slow
def test_batched_launcher_writes_what_the_basic_launcher_writes(both):
    base, _, _ = both
    basic, batched = _jobs(base / "basic"), _jobs(base / "batched")
    assert sorted(basic) == sorted(batched) == ["0", "1", "2", "3"]
    statuses = {}
    for job, a in basic.items():
        b = batched[job]
        assert b["config"] == a["config"]
        statuses[(a["config"]["data"]["p_spu"], a["config"]["train"]["lr"])] = b["status"]
        assert b["status"] == a["status"]
        assert b["diverged_step"] == a["diverged_step"]
        assert b["theory"] == a["theory"]
        assert set(b) == set(a)
        assert set(b["extra"]) - set(a["extra"]) == {"batched"}
        assert b["extra"]["batched"]["jobs"] == 4 and b["extra"]["batched"]["chunks"] == 3
        assert b["extra"]["first_bad_step_per_seed"] == a["extra"]["first_bad_step_per_seed"]
        assert sorted(b["metrics"]) == sorted(a["metrics"])
        for name, m in a["metrics"].items():
            x, y = m["per_seed"], b["metrics"][name]["per_seed"]
            assert [v is None for v in x] == [v is None for v in y], name
            x = np.array([v for v in x if v is not None], float)
            y = np.array([v for v in y if v is not None], float)
            np.testing.assert_allclose(y, x, rtol=1e-4, atol=1e-5, err_msg=f"job {job} {name}")
        for f in ("config.yaml", "overrides.yaml"):  # hydra.yaml names the launcher, so it differs
            d = base / "batched" / job / ".hydra"
            assert (d / f).read_text() == (base / "basic" / job / ".hydra" / f).read_text()
        assert (base / "batched" / job / ".hydra" / "hydra.yaml").exists()
    # the diverged grid points did not spoil their neighbours
    assert statuses == {(0.6, 0.05): "ok", (0.9, 0.05): "ok", (0.6, 1e4): "diverged", (0.9, 1e4): "diverged"}


@pytest.mark.slow
def test_ctrl_c_leaves_every_unfinished_job_interrupted(both):
    base, procs, out = both
    assert procs["ctrl-c"].returncode == 130, out
    docs = _jobs(base / "ctrl-c")
    assert len(docs) == 4
    assert {d["status"] for d in docs.values()} == {"interrupted"}
    assert all(d["error"].startswith("KeyboardInterrupt") for d in docs.values())
    assert all((base / "ctrl-c" / j / ".hydra" / "overrides.yaml").exists() for j in docs)


def test_plugin_is_discovered_and_composes():
    from hydra import compose, initialize_config_dir
    from hydra.core.plugins import Plugins
    from hydra.plugins.launcher import Launcher

    import synthetic.config

    target = "hydra_plugins.sober_clip_launcher.batched_launcher.BatchedLauncher"
    # Hydra imports every module under the hydra_plugins namespace itself (its own module objects)
    assert target in {f"{c.__module__}.{c.__name__}" for c in Plugins.instance().discover(Launcher)}
    synthetic.config.register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf" / "synthetic"), version_base="1.3"):
        cfg = compose("synthetic", overrides=["hydra/launcher=batched"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_ == target
    assert cfg.hydra.launcher.chunk == 0


def test_plugin_is_packaged():
    """pyproject's package list holds the plugin, so a wheel (and an editable install) ships it."""
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert "hydra_plugins.sober_clip_launcher" in packages
    assert not (ROOT / "hydra_plugins" / "__init__.py").exists()  # a namespace shared with other plugins


def test_chunk_plan():
    from synthetic.batch import plan_chunk

    mib = 1 << 20
    assert plan_chunk(150, mib, 1000 * mib, 0) == 150  # all fit: one chunk
    assert plan_chunk(150, mib, 100 * mib, 0) == 75  # 100 fit -> 2 equal chunks of 75
    assert plan_chunk(10, mib, 100 * mib, 4) == 4  # the user's chunk
    assert plan_chunk(9, mib, 100 * mib, 0, n_devices=2) == 10  # a multiple of the device count
    with pytest.raises(MemoryError, match=r"chunk=200: 200 rows need about 0\.20 GiB.*use chunk <= 100"):
        plan_chunk(300, mib, 100 * mib, 200)
    with pytest.raises(MemoryError, match="one row"):
        plan_chunk(300, 200 * mib, 100 * mib, 0)


def test_row_peak_is_a_liveness_count():
    """_peak on a small program against the count by hand: x (4 kB) -> a = x + 1 -> b = a * 2 -> sum."""
    import jax
    import jax.numpy as jnp

    from synthetic.batch import _peak

    jaxpr = jax.make_jaxpr(lambda x: jnp.sum((x + 1.0) * 2.0))(jnp.zeros(1000, jnp.float32)).jaxpr
    # x alive with a (8000), then a with b (8000), then b with the scalar sum (4004)
    assert _peak(jaxpr) == 8000


@pytest.mark.slow
def test_resume_skips_finished_jobs_before_grouping(both):
    """resume=true over the finished batched sweep: no job joins a group (nothing compiles), and every
    results.json stays as it was."""
    base, _, _ = both
    before = _jobs(base / "batched")
    p = _sweep(base / "batched", "hydra/launcher=batched", "resume=true")
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    assert "Launching 4 jobs: 0 in 0 compiled group(s)" in out and "compiling" not in out, out
    assert _jobs(base / "batched") == before


def test_chunk_plan_caps_the_rows_when_asked():
    """On CPU the launcher caps an automatic chunk (synthetic.batch.cpu_chunk_rows: B x B matrices within
    a cache budget): equal chunks under the cap; a chunk the user gives is theirs."""
    from synthetic.batch import CPU_CACHE_BYTES, cpu_chunk_rows, plan_chunk

    mib = 1 << 20
    assert plan_chunk(150, mib, 1000 * mib, 0, most=16) == 15  # 10 equal chunks of 15
    assert plan_chunk(150, mib, 10 * mib, 0, most=16) == 10  # memory below the cap decides
    assert plan_chunk(150, mib, 1000 * mib, 40, most=16) == 38  # the user's: 4 equal chunks of <= 40
    assert plan_chunk(7, mib, 1000 * mib, 0, most=16) == 7
    assert plan_chunk(150, mib, 1000 * mib, 0, most=0) == 150  # no cap (an accelerator)
    assert cpu_chunk_rows(256) == CPU_CACHE_BYTES // (256 * 256 * 4) >= 1
    assert cpu_chunk_rows(64) == 16 * cpu_chunk_rows(256) == 256
    assert cpu_chunk_rows(100_000) == 1


@pytest.mark.slow
def test_a_group_resolves_each_job_under_its_own_hydra_node_and_a_bad_job_exits_2(both):
    """With configs that read their own hydra node, and a config error among them: the jobs of a group are
    resolved each under its own node (as the basic launcher does), and a bad job prints one line and exits
    2, as under the basic launcher, instead of a traceback from inside the launcher."""
    base = both[0]  # next to the sweeps above: the same compilation cache
    runs = {}
    for launcher in ("basic", "batched"):
        cmd, env = _command(base / f"errors-{launcher}", ERRORS, f"hydra/launcher={launcher}")
        runs[launcher] = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    for launcher, p in runs.items():
        assert p.returncode == 2, f"{launcher}:\n{p.stdout}\n{p.stderr}"
        assert "Traceback" not in p.stderr, f"{launcher}:\n{p.stderr}"
        errors = [line for line in p.stderr.splitlines() if "config error" in line]
        assert len(errors) == 1, p.stderr
        assert errors[0].startswith("[synthetic] config error: data.caption_q=2"), p.stderr
        assert not (
            base / f"errors-{launcher}" / "2" / "results.json"
        ).exists()  # a config error writes nothing
    docs = {
        launcher: [
            json.loads((base / f"errors-{launcher}" / str(j) / "results.json").read_text()) for j in (0, 1)
        ]
        for launcher in runs
    }
    for j in (0, 1):
        basic, batched = docs["basic"][j], docs["batched"][j]
        # each job ran with its own seed and caption_q, not the last job's
        assert basic["config"]["seed"] == batched["config"]["seed"] == j
        assert basic["config"]["data"]["caption_q"] == batched["config"]["data"]["caption_q"] == j
        assert basic["status"] == batched["status"] == "ok"
        assert "batched" in batched["extra"]  # computed by the group
        for name, m in basic["metrics"].items():
            for u, v in zip(m["per_seed"], batched["metrics"][name]["per_seed"], strict=True):
                assert abs(u - v) < 1e-5, (j, name, u, v)
