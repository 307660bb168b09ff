"""Issue 18 (synthetic + theory): wrong types name their key, theory validates its inputs, the theory block
passes every hyperparameter its prediction depends on, and a non-unique optimum is said, not printed."""

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

import theory
from synthetic.config import register_configs, resolve
from synthetic.run import theory_predictions

CONF = Path(__file__).resolve().parents[1] / "conf" / "synthetic"
register_configs()


def _resolve(overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return resolve(compose("synthetic", overrides=overrides))


@pytest.mark.parametrize(
    "override, key",
    [
        ("data.p_spu=abc", "data.p_spu"),
        ("data.p_spu=[0.5,0.9]", "data.p_spu"),
        ("data.n=64.5", "data.n"),
        ("encoder.h=true", "encoder.h"),
        ("objective=clip", None),  # a good config still resolves
    ],
)
def test_wrong_component_types_name_the_key(override, key):
    if key is None:
        _resolve([override])
        return
    with pytest.raises(ValueError) as e:
        _resolve([override])
    assert str(e.value).startswith(f"{key}="), str(e.value)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"p_spu": "0.9"}, "p_spu"),
        ({"p_spu": 0.9, "mu_spu": 1e200}, "mu_spu"),
        ({"p_spu": 0.9, "sigma_xi": 1e40}, "sigma_xi"),
    ],
)
def test_theory_model_rejects_strings_and_overflowing_scales(kwargs, key):
    with pytest.raises(ValueError, match=f"^{key}="):
        theory.GaussianSpuriousModel(**kwargs)


def test_theory_batch_size_must_be_an_integer():
    m = theory.GaussianSpuriousModel(p_spu=0.9)
    with pytest.raises(ValueError, match="batch_size=2.5"):
        theory.zero_shot_accuracy(m, "counter", objective="siglip", batch_size=2.5)


def test_theory_block_uses_the_runs_logit_scale_clamp():
    """InfoNCE with logit_scale_max=1: the prediction is the optimum under that clamp, not under 100."""
    run = _resolve(["objective=clip", "objective.logit_scale_max=1", "objective.logit_scale_init=0"])
    got = theory_predictions(run)["acc_counter_prompt_mean"]
    m = theory.GaussianSpuriousModel(p_spu=0.9)
    opt = theory.contrastive_optimum(m, "clip", 16, logit_scale_max=1.0)
    assert opt.logit_scale <= 1.0 + 1e-9  # the clamp binds
    # independent: the mean-prompt rule of that optimum, scored by the Gaussian formula
    e = theory.prompt_latent(m, "mean")
    t = opt.A_text @ e
    w = opt.A_image.T @ (t / np.linalg.norm(t))
    assert got == pytest.approx(float(theory.linear_rule_accuracy(m, w, "counter")), abs=1e-9)
    clamp100 = float(theory.zero_shot_accuracy(m, "counter", "mean", rank=16, objective="clip"))
    assert abs(got - clamp100) > 0.02  # 0.699 against 0.734: the clamp matters here


def test_tied_rank_one_optimum_gives_a_note_not_a_number():
    """h = 1 where K = 2I: every unit direction is a rank-1 optimum, so no single accuracy is predicted."""
    run = _resolve(["encoder.h=1", "data.p_spu=0.5", "data.mu_spu=1", "data.sigma_spu=1"])
    m = run.data.theory_model()
    np.testing.assert_allclose(m.cross_moment(), 2 * np.eye(2))  # the tie, computed independently
    pred = theory_predictions(run)
    assert pred["acc_counter"] is None or not np.isfinite(pred["acc_counter"])
    assert "not unique" in pred["note"]
    assert "not unique" in pred["linear_clip"]["note"]
    # off the tie the rank-1 prediction stands
    assert theory.prediction_applies(m.replace(p_spu=0.6), "linear_clip", rank=1) is None
    assert np.isfinite(theory.zero_shot_accuracy(m.replace(p_spu=0.6), "counter", rank=1))


# ---------------------------------------------------------------- training defaults, convergence


def _train(overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("synthetic", overrides=overrides).train


def test_contrastive_objectives_bring_their_training_defaults():
    for name in ("clip", "siglip"):
        t = _train([f"objective={name}"])
        assert (t.optimizer, t.lr, t.batch_size, t.steps) == ("adam", 0.01, 256, 2000), name
    assert _train(["objective=clip", "train.lr=0.5", "train.optimizer=sgd"]).lr == 0.5  # the user wins
    assert _train(["objective=clip", "train.optimizer=sgd"]).optimizer == "sgd"
    assert _train(["experiment=objectives"]).lr == 0.001  # an experiment's own settings win too
    default = _train([])  # linear_clip keeps the full-batch SGD of the paper's theorem
    assert (default.optimizer, default.batch_size) == ("sgd", 0)


def test_convergence_flags_a_falling_loss_and_scattered_seeds():
    from synthetic.results import FALLING_TOL, convergence

    steps = np.linspace(0, 1, 100)
    flat = np.exp(-30 * steps)[None].repeat(3, 0)  # settled long before the end
    ok = convergence(flat, {"acc_counter": [0.97, 0.968, 0.971]}, 10000)
    assert ok["converged"] and ok["loss_drop_last_tenth"] < 1e-6
    falling = (1 - steps)[None].repeat(3, 0)  # a straight line: 1/9 of the decrease is in the last tenth
    bad = convergence(falling, {"acc_counter": [0.97, 0.968, 0.971]}, 10000)
    # independent: the mean of the last ten points against the ten before, over the whole decrease
    first, before, last = falling[0, :10].mean(), falling[0, 80:90].mean(), falling[0, 90:].mean()
    assert bad["loss_drop_last_tenth"] == pytest.approx((before - last) / (first - last))
    assert bad["loss_drop_last_tenth"] > FALLING_TOL and not bad["converged"]
    assert "still falling" in bad["reasons"][0]
    # the README's InfoNCE run with SGD: seeds from 0.04 to 1.0 on counter
    scattered = convergence(
        flat, {"acc_counter": [0.04, 0.9996, 0.5, 0.9, 0.2], "loss_final": [1, 2, 3, 4, 5]}, 10000
    )
    assert not scattered["converged"] and "acc_counter" in scattered["reasons"][0]
    assert scattered["seed_std"]["acc_counter"] == pytest.approx(
        np.std([0.04, 0.9996, 0.5, 0.9, 0.2], ddof=1)
    )
    assert "loss_final" not in scattered["seed_std"]  # accuracies only
