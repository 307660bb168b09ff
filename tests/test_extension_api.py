"""The extension API's traps, each tried as a new user would (docs/synthetic.md, "Your own objective")."""

import dataclasses
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import jax.numpy as jnp
import numpy as np
import pytest
from hydra import compose

import theory
from synthetic import run as R
from synthetic import train as T
from synthetic.config import EvalConfig, GaussianRunConfig, TrainConfig, register_configs, resolve
from synthetic.data import Batch, GaussianData
from synthetic.encoders import Linear
from synthetic.objectives import Clip, LearnedTemperature, LinearClip, clip_loss, linear_clip_loss
from theory.runrecord import ConfigError
from theory.runrecord.configs import check_not_shadowed, initialize, shadowed

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "tests" / "plugin"
sys.path.insert(0, str(PLUGIN))
from my_components import DecoupledClip  # noqa: E402  (a user's module, as on their PYTHONPATH)

register_configs()


def _run(objective, data=None) -> GaussianRunConfig:
    return resolve(
        GaussianRunConfig(
            seeds=1,
            data=data or GaussianData(n=32, d_image=4, d_text=4),
            encoder=Linear(h=2),
            objective=objective,
            train=TrainConfig(steps=3, lr=0.01),
            eval=EvalConfig(n_test=16),
        )
    )


@dataclasses.dataclass(frozen=True)
class Tweaked(LinearClip):
    """A user's change of the built-in loss that declares nothing about its theory."""

    def loss(self, model, batch, hp):
        return 2.0 * super().loss(model, batch, hp)


@dataclasses.dataclass(frozen=True)
class Declared(LinearClip):
    """The same change, inheriting the built-in's prediction explicitly (here: wrongly, on purpose)."""

    THEORY = LinearClip.THEORY
    optimum = LinearClip.optimum


def test_a_subclass_inherits_no_prediction_unless_it_declares_one():
    model = theory.GaussianSpuriousModel(p_spu=0.9, d_image=4, d_text=4)
    assert Tweaked.THEORY is None and Tweaked().optimum(model, 2) is None
    pred = R.theory_predictions(_run(Tweaked()))
    assert pred["objective"] == "Tweaked" and pred["acc_counter"] is None
    assert pred["note"] == "no exact prediction for Tweaked"
    assert Declared.THEORY == "linear_clip"
    np.testing.assert_allclose(Declared().optimum(model, 2), theory.clip_optimum(model, rank=2))
    assert R.theory_predictions(_run(Declared()))["acc_counter"] is not None
    # data models alike: a subclass of the paper's model has no exact theory nor exact prompts of its own
    mine = dataclasses.dataclass(frozen=True)(type("Mine", (GaussianData,), {"__module__": __name__}))
    assert mine.prompts is None and mine().theory_model() is None and "Mine" in mine().theory_note()
    assert GaussianData().theory_model() is not None and GaussianData.prompts is not None


@dataclasses.dataclass(frozen=True)
class ReadsSelf(LinearClip):
    def loss(self, model, batch, hp):  # the trap: rho is traced, its value is hp["rho"]
        base = linear_clip_loss(model.embed_image(batch.x_image), model.embed_text(batch.x_text))
        return base + jnp.log(self.rho)


def test_a_traced_field_read_as_self_names_the_field_and_hp():
    msg = r"objective\.rho is traced .*hp\['rho'\], not self\.rho"
    with pytest.raises(TypeError, match=msg):
        jnp.log(LinearClip().static().rho)
    with pytest.raises(TypeError, match=msg):
        LinearClip().static().rho * 2.0
    assert LinearClip(rho=1.0).static() == LinearClip(rho=3.0).static()  # still one compilation key
    spec, hp = T.split(_run(ReadsSelf()), progress=False)
    with pytest.raises(TypeError, match=msg):
        T.run_seeds(spec, hp, T.seed_keys(0, 0, 1))


def test_a_new_loss_on_the_public_learnable_temperature_base():
    """DecoupledClip (tests/plugin) subclasses LearnedTemperature: decouple 0 is InfoNCE (clip_loss), 1
    leaves the positive out of each denominator (numpy, written out); the base clamps the scale."""
    assert issubclass(Clip, LearnedTemperature) and DecoupledClip.THEORY is None
    rng = np.random.default_rng(0)
    e_i, e_t = (rng.normal(size=(6, 3)).astype(np.float32) for _ in range(2))
    e_i, e_t = (
        e_i / np.linalg.norm(e_i, axis=1, keepdims=True),
        e_t / np.linalg.norm(e_t, axis=1, keepdims=True),
    )
    t = math.log(5.0)
    model = SimpleNamespace(
        embed_image=jnp.asarray, embed_text=jnp.asarray, extra={"logit_scale": jnp.float32(t)}
    )
    batch = Batch(e_i, e_t, None, None)
    obj = DecoupledClip()
    got0 = obj.loss(model, batch, {"decouple": jnp.float32(0.0)})
    np.testing.assert_allclose(got0, clip_loss(jnp.asarray(e_i), jnp.asarray(e_t), 5.0), rtol=1e-5)
    logits = 5.0 * e_i @ e_t.T
    off = ~np.eye(6, dtype=bool)
    rows = [np.log(np.exp(logits[i][off[i]]).sum()) for i in range(6)]
    cols = [np.log(np.exp(logits[:, j][off[:, j]]).sum()) for j in range(6)]
    want1 = 0.5 * (np.mean(rows) + np.mean(cols)) - np.mean(np.diag(logits))
    np.testing.assert_allclose(obj.loss(model, batch, {"decouple": jnp.float32(1.0)}), want1, rtol=1e-5)
    with pytest.raises(ValueError, match=r"objective\.decouple=1\.5: expected a weight in \[0, 1\]"):
        DecoupledClip(decouple=1.5)


def test_a_component_yaml_need_not_repeat_every_field():
    """decoupled_clip.yaml lists only _target_ and decouple: a plain override sets another field; a
    misspelt one is named by the component."""
    with initialize("synthetic"):
        sp = f"hydra.searchpath=[file://{PLUGIN / 'conf'}]"
        cfg = compose("synthetic", overrides=[sp, "objective=decoupled_clip", "objective.logit_scale_max=50"])
        run = resolve(cfg)
        assert isinstance(run.objective, DecoupledClip)
        assert (run.objective.logit_scale_max, run.objective.decouple) == (50.0, 1.0)
        assert run.objective.logit_scale_init == DecoupledClip.logit_scale_init
        bad = compose("synthetic", overrides=[sp, "objective=decoupled_clip", "objective.decoupl=0.5"])
        with pytest.raises(
            ValueError, match=r"objective\.decoupl: not a field of my_components\.DecoupledClip"
        ):
            resolve(bad)


def _sources(user: Path, provider: str) -> list:
    main = SimpleNamespace(provider="main", schema="file", path=str(ROOT / "conf" / "synthetic"))
    hydra = SimpleNamespace(provider="hydra", schema="pkg", path="hydra.conf")
    return [hydra, main, SimpleNamespace(provider=provider, schema="file", path=str(user))]


#: --config-dir, hydra.searchpath on the command line, hydra.searchpath in a primary config
PROVIDERS = ["command-line", "hydra.searchpath in command-line", "hydra.searchpath in main"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_user_yaml_named_like_a_built_in_is_an_error(tmp_path, provider):
    (tmp_path / "objective").mkdir()
    (tmp_path / "objective" / "clip.yaml").write_text("_target_: my_components.DecoupledClip\n")
    (tmp_path / "objective" / "my_clip.yaml").write_text("_target_: my_components.DecoupledClip\n")
    sources = _sources(tmp_path, provider)
    (clash,) = shadowed(sources)
    assert str(tmp_path / "objective" / "clip.yaml") in clash
    assert str(ROOT / "conf" / "synthetic" / "objective" / "clip.yaml") in clash
    with pytest.raises(ConfigError, match="rename yours"):
        check_not_shadowed(sources)
    (tmp_path / "objective" / "clip.yaml").unlink()
    check_not_shadowed(sources)  # a new name is fine


@pytest.mark.slow
def test_the_app_stops_on_a_user_yaml_named_like_a_built_in(tmp_path):
    (tmp_path / "conf" / "objective").mkdir(parents=True)
    (tmp_path / "conf" / "objective" / "clip.yaml").write_text("_target_: my_components.DecoupledClip\n")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": f"{ROOT}:{PLUGIN}"}
    cmd = [sys.executable, "-m", "synthetic", "--config-dir", str(tmp_path / "conf"), "objective=clip"]
    cmd += ["train.steps=1", "seeds=1"]  # should it start anyway, a short run
    proc = subprocess.run(
        [*cmd, f"hydra.run.dir={tmp_path / 'run'}"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "config error" in proc.stderr and str(tmp_path / "conf" / "objective" / "clip.yaml") in proc.stderr
    assert not (tmp_path / "run" / "results.json").exists()
