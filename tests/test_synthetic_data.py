"""The JAX samplers against theory's closed forms and the k-class definition; a user-added data model."""

import jax
import numpy as np
import pytest

from synthetic import data as D
from synthetic import train as T
from synthetic.config import DataConfig, SyntheticConfig

N = 40000


def _latent(cfg: DataConfig, seed: int = 0):
    hp = D.hyperparams(T.data_model(SyntheticConfig(data=cfg)))
    lat = D.get_data_model(cfg.name).latent(jax.random.key(seed), N, hp["p_spu"], hp, cfg)
    return hp, jax.tree.map(np.asarray, lat)


def test_binary_sampler_matches_theory_moments():
    cfg = DataConfig(p_spu=0.8, mu_inv=1.5, caption_q=0.5)
    model = T.data_model(SyntheticConfig(data=cfg))
    _, lat = _latent(cfg)
    sign = np.where(lat.y == 0, 1.0, -1.0)  # class 0 is y = +1
    np.testing.assert_allclose(lat.z_image.T @ lat.z_image / N, model.second_moment(), atol=0.06)
    np.testing.assert_allclose((sign[:, None] * lat.z_image).mean(0), model.class_mean(), atol=0.03)
    np.testing.assert_allclose((sign[:, None] * lat.z_text).mean(0), model.text_class_mean(), atol=0.03)
    assert abs(np.mean(lat.a == lat.y) - 0.8) < 0.01


def test_kclass_attribute_is_the_class_or_uniform_over_the_others():
    k = 4
    cfg = DataConfig(k=k, p_spu=0.7)
    _, lat = _latent(cfg)
    assert abs(np.mean(lat.a == lat.y) - 0.7) < 0.01
    shift = (lat.a - lat.y)[lat.a != lat.y] % k
    np.testing.assert_allclose(np.bincount(shift, minlength=k)[1:] / shift.size, 1 / (k - 1), atol=0.015)
    np.testing.assert_allclose(np.bincount(lat.y, minlength=k) / N, 1 / k, atol=0.01)


@pytest.mark.parametrize("k", [2, 4])
def test_a_data_model_without_prompts_gets_estimated_prompts(monkeypatch, k):
    """Registering only a latent sampler is enough: prompts are estimated from captions (see the docs)."""
    monkeypatch.setitem(D.DATA_MODELS, "mine", D.DataModel(D.gaussian_latent))
    cfg = DataConfig(name="mine", k=k, p_spu=0.8, mu_inv=1.5, caption_q=0.5)
    hp, _ = _latent(cfg)
    key = jax.random.key(1)
    exact = dict(class_=1.5 * D.gaussian_prompts("class", hp, cfg), mean=D.gaussian_prompts("mean", hp, cfg))
    np.testing.assert_allclose(D.prompt_latents(key, "class", hp, cfg), exact["class_"], atol=0.05)
    np.testing.assert_allclose(D.prompt_latents(key, "mean", hp, cfg), exact["mean"], atol=0.05)
