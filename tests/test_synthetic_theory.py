"""results.json's theory block: the prediction is for the run's own objective, or null with a note.

No training here: ``synthetic.run.theory_predictions`` on resolved configs, against theory/ called directly.
"""

import pytest

import theory
from synthetic.config import GaussianRunConfig, TrainConfig, resolve
from synthetic.data import GaussianData
from synthetic.encoders import MLP, Linear
from synthetic.objectives import Clip, LinearClip, SigLIP, Supervised
from synthetic.run import theory_predictions

BATCH = 128
OBJECTIVES = {"linear_clip": LinearClip(), "clip": Clip(), "siglip": SigLIP(), "supervised": Supervised()}
NOISE_FREE = GaussianData(p_spu=0.8, sigma_xi=0.0, caption_q=0.5, d_image=8, d_text=8, n=0)


def _theory(objective, data=NOISE_FREE, encoder=None):
    encoder = encoder or Linear(h=8)
    run = GaussianRunConfig(
        data=data, encoder=encoder, objective=objective, train=TrainConfig(batch_size=BATCH)
    )
    return theory_predictions(resolve(run))


@pytest.mark.parametrize("name", ["linear_clip", "clip", "siglip"])
def test_the_prediction_is_the_runs_own_objective(name):
    t = _theory(OBJECTIVES[name])
    assert t["objective"] == name and "note" not in t
    model = NOISE_FREE.theory_model()
    extra = {"batch_size": BATCH} if name == "siglip" else {}  # InfoNCE: the large-batch limit
    for group in theory.GROUPS:
        for prompt, suffix in (("class", ""), ("mean", "_prompt_mean")):
            expected = theory.zero_shot_accuracy(model, group, prompt, rank=8, objective=name, **extra)
            assert t[f"acc_{group}{suffix}"] == pytest.approx(float(expected), abs=1e-12), (group, prompt)
            lin = theory.zero_shot_accuracy(model, group, prompt, rank=8)
            assert t["linear_clip"][f"acc_{group}{suffix}"] == pytest.approx(float(lin), abs=1e-12)
    assert t["drop"] == pytest.approx(t["acc_common"] - t["acc_counter"])
    assert t["acc_worst"] == pytest.approx(min(t["acc_common"], t["acc_counter"]))
    if name != "linear_clip":  # InfoNCE/SigLIP predictions differ from the linearised ones at q = 0.5
        assert abs(t["acc_counter"] - t["linear_clip"]["acc_counter"]) > 0.05


@pytest.mark.parametrize(
    ("name", "data", "encoder", "note"),
    [
        ("supervised", NOISE_FREE, Linear(h=8), "no exact prediction for Supervised"),
        ("clip", GaussianData(sigma_xi=0.5, d_image=8, d_text=8), Linear(h=8), "finite training set"),
        ("siglip", GaussianData(sigma_xi=2.0, d_image=8, d_text=8, n=0), Linear(h=8), "sigma_xi^2 / d >"),
        ("clip", NOISE_FREE, MLP(h=8), "assumes linear encoders, not MLP"),
        ("linear_clip", GaussianData(k=3, d_image=8, d_text=8), Linear(h=8), "data.k=2"),
        ("clip", GaussianData(render_depth=1, d_image=8, d_text=8), Linear(h=8), "rendered"),
    ],
)
def test_no_prediction_is_null_with_a_note(name, data, encoder, note):
    t = _theory(OBJECTIVES[name], data, encoder)
    assert t["objective"] == (name if name != "supervised" else "Supervised")
    assert note in t["note"]
    for key in ("acc_common", "acc_counter", "acc_counter_prompt_mean", "acc_worst", "drop"):
        assert t[key] is None, key
    if data.theory_model() is not None:  # the linearised reference stays available under its own name
        assert t["linear_clip"]["acc_counter"] is not None


def test_a_noisy_prediction_is_marked_as_the_g0_reduction():
    """sigma_xi > 0, fresh samples: the run carries its objective's prediction (the G = 0 reduction of
    docs/theory.md 9.9) and ``reduction`` says so; noise-free runs carry no such mark."""
    noisy = GaussianData(p_spu=0.9, sigma_xi=0.5, caption_q=1.0, d_image=8, d_text=8, n=0)
    t = _theory(Clip(), noisy)
    assert "note" not in t and "G = 0 reduction" in t["reduction"]
    assert t["objective"] == "clip_g0"  # the approximation under a name of its own, never the exact one's
    expected = theory.zero_shot_accuracy(noisy.theory_model(), "counter", "mean", rank=8, objective="clip")
    assert t["acc_counter_prompt_mean"] == pytest.approx(float(expected), abs=1e-12)
    assert "reduction" not in _theory(Clip()) and _theory(Clip())["objective"] == "clip"


def test_a_prediction_that_did_not_settle_is_null_with_a_note(monkeypatch):
    real = theory.zero_shot_accuracy

    def unsettled(model, group, prompt="class", rank=None, objective="linear_clip", **kw):
        return float("nan") if objective == "clip" else real(model, group, prompt, rank, objective, **kw)

    monkeypatch.setattr(theory, "zero_shot_accuracy", unsettled)
    t = _theory(Clip())
    assert "no finite clip prediction" in t["note"] and t["acc_counter"] is None
    assert t["linear_clip"]["acc_counter"] is not None
