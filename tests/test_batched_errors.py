"""hydra/launcher=batched with configs that read their own hydra node, and a config error among them: the
jobs of a group are resolved each under its own node (as the basic launcher does), and a bad job prints
one line and exits 2, as under the basic launcher, instead of a traceback from inside the launcher."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Three jobs of one program whose caption_q is their job number: 0 and 1 valid, 2 not a probability.
SWEEP = [
    "-m",
    "seeds=1",
    "train.steps=5",
    "train.batch_size=16",
    "data.n=0",
    "data.d_image=8",
    "data.d_text=8",
    "encoder.h=4",
    "eval.n_test=50",
    "seed=${hydra:job.num}",
    "data.caption_q=${hydra:job.num}",
    "data.p_spu=0.5,0.6,0.7",
]


def _sweep(out: Path, launcher: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    cmd = [sys.executable, "-m", "synthetic", *SWEEP, f"hydra/launcher={launcher}", f"hydra.sweep.dir={out}"]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_group_resolves_each_job_under_its_own_hydra_node_and_a_bad_job_exits_2(tmp_path):
    runs = {launcher: _sweep(tmp_path / launcher, launcher) for launcher in ("basic", "batched")}
    for launcher, p in runs.items():
        assert p.returncode == 2, f"{launcher}:\n{p.stdout}\n{p.stderr}"
        assert "Traceback" not in p.stderr, f"{launcher}:\n{p.stderr}"
        errors = [line for line in p.stderr.splitlines() if "config error" in line]
        assert len(errors) == 1, p.stderr
        assert errors[0].startswith("[synthetic] config error: data.caption_q=2"), p.stderr
        assert not (tmp_path / launcher / "2" / "results.json").exists()  # a config error writes nothing
    docs = {
        launcher: [json.loads((tmp_path / launcher / str(j) / "results.json").read_text()) for j in (0, 1)]
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
