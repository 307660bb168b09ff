"""Each synthetic objective against a naive numpy implementation (and open_clip's losses where installed)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from synthetic import objectives as O
from synthetic import train as T
from synthetic.config import GaussianRunConfig, TrainConfig, resolve
from synthetic.data import Batch, GaussianData
from synthetic.encoders import MLP, Linear

RNG = np.random.default_rng(0)
B, H = 6, 3


def _emb(normalize=False):
    x = RNG.normal(size=(B, H)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True) if normalize else x


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def test_linear_clip_loss_matches_paper_double_sum():
    ei, et = _emb(), _emb()
    s = ei.astype(float) @ et.T.astype(float)
    total = 0.0
    for i in range(B):
        for j in range(B):
            if j != i:
                total += (s[i, j] - s[i, i]) + (s[j, i] - s[i, i])
    naive = total / (2 * B * (B - 1))
    np.testing.assert_allclose(O.linear_clip_loss(ei, et), naive, rtol=1e-5, atol=1e-6)


def test_product_frobenius_matches_numpy():
    wi, wt = RNG.normal(size=(H, 7)), RNG.normal(size=(H, 5))
    np.testing.assert_allclose(O.product_frobenius_sq(wi, wt), np.sum((wi.T @ wt) ** 2), rtol=1e-6)


def test_linear_clip_objective_is_covariance_form():
    """Full objective = -(n/(n-1)) <M, C_hat> + rho/2 ||M||^2, C_hat the centred cross-covariance."""
    d_i, d_t, rho = 5, 4, 0.7
    model = O.DualEncoder(d_i, d_t, 2, Linear(h=H), O.LinearClip(), nnx.Rngs(1))
    xi, xt = RNG.normal(size=(B, d_i)).astype(np.float32), RNG.normal(size=(B, d_t)).astype(np.float32)
    batch = Batch(jnp.asarray(xi), jnp.asarray(xt), jnp.zeros(B, int), jnp.zeros(B, int))
    got = O.LinearClip(rho=rho).loss(model, batch, {"rho": rho})
    m = np.asarray(model.image.matrix()).T @ np.asarray(model.text.matrix())  # W_I^T W_T, (d_i, d_t)
    c_hat = (xi - xi.mean(0)).T @ (xt - xt.mean(0)) / B
    expected = -B / (B - 1) * np.sum(m * c_hat) + rho / 2 * np.sum(m**2)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_clip_loss_matches_numpy():
    ei, et, scale = _emb(True), _emb(True), 14.3
    logits = scale * ei.astype(float) @ et.T
    naive = -0.5 * (np.trace(_log_softmax(logits)) + np.trace(_log_softmax(logits.T))) / B
    np.testing.assert_allclose(O.clip_loss(ei, et, scale), naive, rtol=1e-5)


def test_siglip_loss_matches_numpy():
    ei, et, t, b = _emb(True), _emb(True), 10.0, -10.0
    logits = t * ei.astype(float) @ et.T + b
    labels = 2 * np.eye(B) - 1
    naive = np.sum(np.log1p(np.exp(-labels * logits))) / B
    np.testing.assert_allclose(O.siglip_loss(ei, et, t, b), naive, rtol=1e-5)


def test_supervised_loss_matches_numpy():
    logits, y = RNG.normal(size=(B, 3)), RNG.integers(0, 3, B)
    naive = -np.mean(_log_softmax(logits)[np.arange(B), y])
    np.testing.assert_allclose(O.supervised_loss(jnp.asarray(logits), jnp.asarray(y)), naive, rtol=1e-5)


def test_clip_objective_uses_exp_of_the_learnable_log_scale_initialised_as_open_clip():
    clip = O.Clip()
    model = O.DualEncoder(4, 4, 2, Linear(h=H, init_scale=1.0), clip, nnx.Rngs(0))
    np.testing.assert_allclose(np.exp(model.extra["logit_scale"][...]), 1 / 0.07, rtol=1e-6)
    x = jnp.asarray(RNG.normal(size=(B, 4)), jnp.float32)
    batch = Batch(x, x, jnp.zeros(B, int), jnp.zeros(B, int))
    ei = np.asarray(O.l2_normalize(model.image(x)))
    et = np.asarray(O.l2_normalize(model.text(x)))
    logits = (1 / 0.07) * ei.astype(float) @ et.T
    naive = -0.5 * (np.trace(_log_softmax(logits)) + np.trace(_log_softmax(logits.T))) / B
    np.testing.assert_allclose(clip.loss(model, batch, {}), naive, rtol=1e-5)


@pytest.mark.parametrize("objective", [O.Clip, O.SigLIP])
def test_a_caption_that_is_exactly_zero_leaves_the_gradient_finite(objective):
    """A fresh caption whose latent cancels to 0.0 in float32 (about once in 10^6 samples): its embedding
    normalises to 0 and the loss and gradient stay finite (the norm's own gradient is 0/0 there, which made
    a whole trained run NaN); elsewhere l2_normalize is x / |x|."""
    model = O.DualEncoder(4, 4, 2, Linear(h=H, init_scale=1.0), objective(), nnx.Rngs(0))
    x = jnp.asarray(RNG.normal(size=(B, 4)), jnp.float32)
    xt = x.at[2].set(0.0)
    batch = Batch(x, xt, jnp.zeros(B, int), jnp.zeros(B, int))
    graphdef, params = nnx.split(model)

    def loss(p):
        return objective().loss(nnx.merge(graphdef, p), batch, {})

    value, grads = jax.jit(jax.value_and_grad(loss))(params)
    assert np.isfinite(float(value))
    for leaf in jax.tree.leaves(grads):
        assert np.all(np.isfinite(np.asarray(leaf))), grads
    np.testing.assert_array_equal(np.asarray(O.l2_normalize(xt))[2], 0.0)
    np.testing.assert_allclose(
        np.asarray(O.l2_normalize(x)),
        np.asarray(x) / np.linalg.norm(np.asarray(x), axis=1, keepdims=True),
        rtol=1e-6,
    )


@pytest.mark.parametrize("objective", ["clip", "siglip"])
def test_log_scale_is_clamped_after_each_step_as_open_clip(objective):
    """open_clip clamps logit_scale to [0, log 100] after every optimiser step (a projection): a value
    beyond the limit comes back to it, and from the limit the gradient can still lower it."""
    cfg = GaussianRunConfig(
        data=GaussianData(n=16, d_image=4, d_text=4),
        encoder=Linear(h=H, init_scale=1.0),
        objective={"clip": O.Clip, "siglip": O.SigLIP}[objective](),
        train=TrainConfig(steps=2, lr=1e-5, optimizer="sgd", schedule="constant"),
    )
    spec, hp = T.split(resolve(cfg))
    carry, fixed = jax.jit(T.setup, static_argnames="spec")(jax.random.key(0), hp, spec)
    step = jax.jit(T.step, static_argnames="spec")
    carry.params["extra"]["logit_scale"][...] = jnp.float32(np.log(200.0))
    carry, _ = step(carry, jnp.int32(0), fixed, hp, spec)
    np.testing.assert_allclose(carry.params["extra"]["logit_scale"][...], np.log(100.0), rtol=1e-6)
    carry, _ = step(carry, jnp.int32(1), fixed, hp, spec)
    assert float(carry.params["extra"]["logit_scale"][...]) < np.log(100.0) - 1e-5


def test_siglip_init_values():
    model = O.DualEncoder(4, 4, 2, Linear(h=H), O.SigLIP(), nnx.Rngs(0))
    np.testing.assert_allclose(np.exp(model.extra["logit_scale"][...]), 10.0, rtol=1e-6)
    assert float(model.extra["logit_bias"][...]) == -10.0


def test_losses_match_open_clip():
    torch = pytest.importorskip("torch")
    loss_mod = pytest.importorskip("open_clip.loss")
    ei, et = _emb(True), _emb(True)
    ti, tt = torch.tensor(ei), torch.tensor(et)
    ref_clip = loss_mod.ClipLoss()(ti, tt, torch.tensor(14.3)).item()
    np.testing.assert_allclose(O.clip_loss(ei, et, 14.3), ref_clip, rtol=1e-5)
    ref_sig = loss_mod.SigLipLoss()(ti, tt, torch.tensor(10.0), torch.tensor(-10.0)).item()
    np.testing.assert_allclose(O.siglip_loss(ei, et, 10.0, -10.0), ref_sig, rtol=1e-5)


def test_unknown_component_fields_and_targets_fail_clearly():
    from synthetic.components import build
    from synthetic.encoders import Encoder

    with pytest.raises(
        ValueError, match=r"objective\.rhoo: not a field of synthetic\.objectives\.LinearClip"
    ):
        build({"_target_": "synthetic.objectives.LinearClip", "rhoo": 1.0}, "objective", O.Objective)
    with pytest.raises(ValueError, match=r"objective\._target_='synthetic\.encoders\.Linear': builds Linear"):
        build({"_target_": "synthetic.encoders.Linear"}, "objective", O.Objective)
    with pytest.raises(ValueError, match="objective: no _target_"):
        build({"rho": 1.0}, "objective", O.Objective)
    with pytest.raises(ValueError, match=r"objective\._target_='synthetic\.objectives\.Nope'"):
        build({"_target_": "synthetic.objectives.Nope"}, "objective", O.Objective)
    with pytest.raises(ValueError, match=r"encoder\.h=0"):
        build({"_target_": "synthetic.encoders.MLP", "h": 0}, "encoder", Encoder)


def test_mlp_encoder_shapes():
    enc = MLP(h=2, width=8, depth=1)(4, nnx.Rngs(0))
    assert enc(jax.numpy.ones((3, 4))).shape == (3, 2)
    assert not MLP.LINEAR and Linear.LINEAR
