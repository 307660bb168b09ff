"""``train.save=true`` + ``synthetic.load``: the reloaded models give the run's own accuracies."""

import json

import numpy as np
import pytest

import synthetic
from synthetic import app
from synthetic import train as T
from tests.test_tracking import TINY, compose_synthetic


def test_saved_models_reload_to_the_runs_accuracies(tmp_path):
    out = tmp_path / "run"
    doc = app.run_task(compose_synthetic(TINY), out)
    assert doc["status"] == "ok" and doc["extra"]["params"] == ["params/seed_0", "params/seed_1"]
    assert (out / "params" / "seed_1").is_dir()
    run = synthetic.load(out)
    assert len(run.models) == 2
    again = run.evaluate()  # first: it also regenerates each seed's world, which scores() then reuses
    for name in ("acc_common", "acc_counter", "acc_common_prompt_mean", "acc_counter_prompt_mean"):
        assert again[name] == doc["metrics"][name]["per_seed"], name  # the same numbers, exactly
    # the scorer is the zero-shot rule of the saved linear encoders: (x W_I) . (p W_T) for each prompt p
    fixed = run.fixed(0)
    x = np.asarray(fixed.train_set.x_image[:16])
    prompts = T.prompt_inputs(fixed, run.hp, run.spec)
    w_image, w_text = (np.asarray(m.proj.kernel[...]) for m in (run.models[0].image, run.models[0].text))
    assert run.models[0].normalize is False  # linear_clip scores the raw products
    unit = lambda a: a
    for suffix, scores in run.scores(0, x).items():
        want = unit(x @ w_image) @ unit(np.asarray(prompts[suffix]) @ w_text).T
        np.testing.assert_allclose(scores, want, rtol=1e-4, atol=1e-5)
    # seeds differ: the two models are not the same parameters
    assert not np.allclose(run.models[0].image.proj.kernel[...], run.models[1].image.proj.kernel[...])


def test_load_without_saved_parameters_says_what_to_do(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"kind": "gaussian", "status": "ok", "extra": {}}))
    with pytest.raises(ValueError, match="train.save=true"):
        synthetic.load(tmp_path)
