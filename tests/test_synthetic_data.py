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
