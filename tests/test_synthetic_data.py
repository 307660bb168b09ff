"""The JAX samplers against theory's closed forms and the k-class definition; a user-added data model."""

import dataclasses

import jax
import numpy as np
import pytest

from synthetic import data as D
from synthetic.data import GaussianData

N = 40000


def _latent(data: D.DataModel, seed: int = 0):
    hp = data.traced()
    lat = data.latent(jax.random.key(seed), N, hp["p_spu"], hp)
    return hp, jax.tree.map(np.asarray, lat)


def test_binary_sampler_matches_theory_moments():
    cfg = GaussianData(p_spu=0.8, mu_inv=1.5, caption_q=0.5)
    model = cfg.theory_model()
    _, lat = _latent(cfg)
    sign = np.where(lat.y == 0, 1.0, -1.0)  # class 0 is y = +1
    np.testing.assert_allclose(lat.z_image.T @ lat.z_image / N, model.second_moment(), atol=0.06)
    np.testing.assert_allclose((sign[:, None] * lat.z_image).mean(0), model.class_mean(), atol=0.03)
    np.testing.assert_allclose((sign[:, None] * lat.z_text).mean(0), model.text_class_mean(), atol=0.03)
    assert abs(np.mean(lat.a == lat.y) - 0.8) < 0.01


@pytest.mark.parametrize("kind,r", [("latent", 0.6), ("latent", 0.0), ("class", 1.0)])
def test_caption_models_match_theory_cross_moment(kind, r):
    """t_inv = mu_inv c_y + sigma_inv (r eps + sqrt(1 - r^2) eps') (latent) or mu_inv c_y (class): the
    sampled E[z z_T^T] is theory's cross moment, and the caption's deviation has variance sigma_inv^2 (0)."""
    cfg = GaussianData(p_spu=0.8, sigma_inv=0.8, caption_q=0.5, caption_kind=kind, caption_fidelity=r)
    _, lat = _latent(cfg)
    np.testing.assert_allclose(lat.z_image.T @ lat.z_text / N, cfg.theory_model().cross_moment(), atol=0.05)
    sign = np.where(lat.y == 0, 1.0, -1.0)
    dev_t, dev_i = lat.z_text[:, 0] - sign, lat.z_image[:, 0] - sign
    assert abs(np.var(dev_t) - (0.64 if kind == "latent" else 0.0)) < 0.02
    if kind == "latent":
        assert abs(np.corrcoef(dev_t, dev_i)[0, 1] - r) < 0.02


def test_exact_copy_captions_are_bit_for_bit_the_image_latent():
    """caption_fidelity = 1 (the default) keeps every existing draw: t_inv is z_inv exactly."""
    _, lat = _latent(GaussianData(p_spu=0.8, caption_q=1.0))
    np.testing.assert_array_equal(lat.z_text, lat.z_image)


def test_caption_model_validation_names_the_key():
    with pytest.raises(ValueError, match="data.caption_kind='words'"):
        GaussianData(caption_kind="words")
    with pytest.raises(ValueError, match="data.caption_fidelity=1.5"):
        GaussianData(caption_fidelity=1.5)
    with pytest.raises(ValueError, match="caption_kind='latent' only"):
        GaussianData(caption_kind="class", caption_fidelity=0.5)


def test_kclass_attribute_is_the_class_or_uniform_over_the_others():
    k = 4
    cfg = GaussianData(k=k, p_spu=0.7)
    _, lat = _latent(cfg)
    assert abs(np.mean(lat.a == lat.y) - 0.7) < 0.01
    shift = (lat.a - lat.y)[lat.a != lat.y] % k
    np.testing.assert_allclose(np.bincount(shift, minlength=k)[1:] / shift.size, 1 / (k - 1), atol=0.015)
    np.testing.assert_allclose(np.bincount(lat.y, minlength=k) / N, 1 / k, atol=0.01)


@dataclasses.dataclass(frozen=True)
class LatentOnly(GaussianData):
    """A user's data model that implements only the latent sampler (no exact prompts)."""

    prompts = None


@pytest.mark.parametrize("k", [2, 4])
def test_a_data_model_without_prompts_gets_estimated_prompts(k):
    """Implementing only a latent sampler is enough: prompts are estimated from captions (see the docs)."""
    mine = LatentOnly(k=k, p_spu=0.8, mu_inv=1.5, caption_q=0.5)
    ref = GaussianData(k=k, p_spu=0.8, mu_inv=1.5, caption_q=0.5)
    hp = mine.traced()
    key = jax.random.key(1)
    exact = dict(class_=1.5 * ref.prompts("class", hp), mean=ref.prompts("mean", hp))
    np.testing.assert_allclose(D.prompt_latents(key, "class", hp, mine), exact["class_"], atol=0.05)
    np.testing.assert_allclose(D.prompt_latents(key, "mean", hp, mine), exact["mean"], atol=0.05)
