"""Objective (a) is cross-entropy with an extra background head (paper appendix D.4), and its conditions.

Conditions under which the equality is exact (checked below): the text encoder is fixed and maps caption
(y, c) to concat(onehot_k(y), onehot_K(c)); the loss is the image-to-text half of CLIP's InfoNCE; the
candidate captions are all k*K (object, background) pairs, each once; no normalisation or temperature
(any fixed temperature just rescales both heads). Then the score of (y, c) is a_y + b_c, with a and b the
image encoder's first k and last K outputs, and log-softmax over the pair grid splits into
log-softmax(a)_y + log-softmax(b)_c. With in-batch candidates (duplicated captions, missing pairs) the
equality fails, which the last test shows.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from synthetic import train as T
from synthetic.mnist import data, models
from synthetic.mnist.data import ColouredBatch

ENCODERS = {"mlp": models.MLP(width=32), "cnn": models.CNN(width=32)}
# Each check is one program, built (the model's initialisation included) and compiled as the package
# compiles its runs: eager initialisation and XLA's default -O3 cost these tests seconds of compiling.
jit = functools.partial(jax.jit, compiler_options=T.SHORT_RUN_OPTIONS)


def _batch(k, b=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (b, 14, 14, 3)).astype(np.float32)
    return ColouredBatch(
        jnp.asarray(x), jnp.asarray(rng.integers(0, k, b)), jnp.asarray(rng.integers(0, k, b))
    )


def _ce_plus_background_head(out_BxE, y, c, k):
    ce = optax.softmax_cross_entropy_with_integer_labels
    return ce(out_BxE[:, :k], y).mean() + ce(out_BxE[:, k:], c).mean()


def _naive_contrastive(out, y, c, k):
    """The CLIP image-to-text loss written as a loop over images and the k*k caption grid (numpy)."""
    out = np.asarray(out, np.float64)
    total = 0.0
    for i in range(len(out)):
        scores = {
            (yy, cc): out[i] @ np.concatenate([np.eye(k)[yy], np.eye(k)[cc]])
            for yy in range(k)
            for cc in range(k)
        }
        logz = np.log(sum(np.exp(s) for s in scores.values()))
        total += logz - scores[(int(y[i]), int(c[i]))]
    return total / len(out)


@pytest.mark.parametrize(("k", "encoder"), [(3, "mlp"), (5, "cnn")])
def test_contrastive_equals_ce_with_background_head_values_and_gradients(k, encoder):
    objective = models.Contrastive()
    batch = x, y, c = _batch(k)

    @jit
    def both(key):
        graphdef, params = nnx.split(objective.model(ENCODERS[encoder], 14, k, nnx.Rngs(key)))

        def contrastive(p):
            return objective.loss(nnx.merge(graphdef, p), batch, {})

        def supervised_two_heads(p):
            return _ce_plus_background_head(nnx.merge(graphdef, p)(x), y, c, k)

        grads = jax.value_and_grad(contrastive)(params), jax.value_and_grad(supervised_two_heads)(params)
        return grads, nnx.merge(graphdef, params)(x)

    ((la, ga), (lb, gb)), out = both(jax.random.key(0))
    np.testing.assert_allclose(la, lb, rtol=1e-5)
    np.testing.assert_allclose(la, _naive_contrastive(out, y, c, k), rtol=1e-5)
    flat_a, flat_b = jax.tree.leaves(ga), jax.tree.leaves(gb)
    assert len(flat_a) == len(flat_b) > 0
    for a, b in zip(flat_a, flat_b, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_contrastive_zero_shot_is_the_object_head():
    k = 3
    objective = models.Contrastive()
    x, _, _ = _batch(k, b=32, seed=1)

    @jit
    def scores_and_outputs(key):
        model = objective.model(ENCODERS["mlp"], 14, k, nnx.Rngs(key))
        return objective.scores(model, x), model(x)

    scores, out = scores_and_outputs(jax.random.key(1))
    np.testing.assert_array_equal(scores.argmax(1), out[:, :k].argmax(1))


def test_in_batch_captions_break_the_equivalence():
    # Same images, but the candidates are the batch's own captions (duplicates, not every pair):
    # CLIP's usual in-batch loss. It is not CE + background head.
    k = 3
    x, y, c = _batch(k, b=32, seed=2)

    @jit
    def in_batch_and_two_heads(key):
        out = models.Contrastive().model(ENCODERS["mlp"], 14, k, nnx.Rngs(key))(x)
        text_BxE = jnp.concatenate([jax.nn.one_hot(y, k), jax.nn.one_hot(c, k)], axis=1)
        in_batch = optax.softmax_cross_entropy_with_integer_labels(out @ text_BxE.T, jnp.arange(32)).mean()
        return in_batch, _ce_plus_background_head(out, y, c, k)

    in_batch, two_heads = in_batch_and_two_heads(jax.random.key(2))
    assert abs(float(in_batch) - float(two_heads)) > 1e-2


def test_clip_loss_matches_naive_loop():
    rng = np.random.default_rng(3)
    img, txt = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    log_scale = 1.3
    got = jit(models.two_tower_loss)(jnp.asarray(img), jnp.asarray(txt), log_scale)
    img_n = img / np.linalg.norm(img, axis=1, keepdims=True)
    txt_n = txt / np.linalg.norm(txt, axis=1, keepdims=True)
    s = np.exp(log_scale) * img_n @ txt_n.T
    i2t = np.mean([np.log(np.exp(s[i]).sum()) - s[i, i] for i in range(6)])
    t2i = np.mean([np.log(np.exp(s[:, j]).sum()) - s[j, j] for j in range(6)])
    np.testing.assert_allclose(got, 0.5 * (i2t + t2i), rtol=1e-5)


@pytest.mark.parametrize(
    "objective", [models.Contrastive(), models.TwoTower(embed_dim=8), models.Supervised()]
)
def test_each_objective_trains_on_the_colour_or_not_and_scores_k_classes(objective):
    k = 3
    batch = _batch(k, b=32)
    other_colour = batch._replace(c=(batch.c + 1) % k)

    @jit
    def check(key):
        model = objective.model(models.MLP(width=16), 14, k, nnx.Rngs(key))
        return (
            objective.loss(model, batch, {}),
            objective.scores(model, batch.x),
            objective.loss(model, other_colour, {}),
        )

    loss, scores, loss_other_colour = check(jax.random.key(4))
    assert np.isfinite(float(loss)) and scores.shape == (32, k)
    if isinstance(objective, models.Supervised):  # the supervised loss ignores the colour
        assert float(loss) == float(loss_other_colour)
    else:  # the contrastive ones do not
        assert float(loss) != float(loss_other_colour)
    assert data.PALETTE.shape == (10, 3)
