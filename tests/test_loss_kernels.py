"""The hand-written derivatives of synthetic.objectives (similarity, log_sigmoid) against autodiff of the
plain expressions, and the losses' gradients against the plain losses'."""

import jax
import jax.numpy as jnp
import numpy as np

from synthetic import objectives as O


def _embeddings(seed, b=64, h=8):
    k1, k2 = jax.random.split(jax.random.key(seed))
    unit = lambda x: x / jnp.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    return unit(jax.random.normal(k1, (b, h))), unit(jax.random.normal(k2, (b, h)))


def test_similarity_gradient_is_autodiffs():
    a, b = _embeddings(0)
    w = jax.random.normal(jax.random.key(9), (a.shape[0], a.shape[0]))  # a generic cotangent
    ours = jax.grad(lambda a, b: jnp.sum(w * O.similarity(a, b)), argnums=(0, 1))(a, b)
    plain = jax.grad(lambda a, b: jnp.sum(w * (a @ b.T)), argnums=(0, 1))(a, b)
    np.testing.assert_array_equal(O.similarity(a, b), a @ b.T)
    for x, y in zip(ours, plain, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    # under vmap (the training program's rows) as well
    va = jax.vmap(jax.grad(lambda a, b: jnp.sum(jnp.sin(O.similarity(a, b)))))(a[None], b[None])
    vp = jax.vmap(jax.grad(lambda a, b: jnp.sum(jnp.sin(a @ b.T))))(a[None], b[None])
    np.testing.assert_allclose(va, vp, rtol=1e-5, atol=1e-6)


def test_log_sigmoid_is_jax_nn_log_sigmoid():
    x = jnp.concatenate([jnp.linspace(-120.0, 120.0, 48001), jnp.array([-1e4, 1e4, 0.0, -0.0])])
    np.testing.assert_array_equal(O.log_sigmoid(x), jax.nn.log_sigmoid(x))
    ours = jax.vmap(jax.grad(O.log_sigmoid))(x)
    x64 = np.asarray(x, np.float64)
    ref = np.exp(-np.logaddexp(0.0, x64))  # d/dx log sigmoid(x) = sigmoid(-x), in float64
    np.testing.assert_allclose(ours, ref, rtol=2e-6, atol=1e-30)
    assert np.all(np.isfinite(ours))


def test_loss_gradients_match_the_plain_losses():
    """clip_loss / siglip_loss with the fast pieces give the gradients of the textbook expressions."""
    a, b = _embeddings(1)
    eye = jnp.eye(a.shape[0])

    def clip_plain(a, b, s):
        logits = s * a @ b.T
        rows, cols = jax.nn.log_softmax(logits, 1), jax.nn.log_softmax(logits, 0)
        return -0.5 * (jnp.mean(jnp.diag(rows)) + jnp.mean(jnp.diag(cols)))

    def siglip_plain(a, b, s, c):
        return -jnp.sum(jax.nn.log_sigmoid((2 * eye - 1) * (s * a @ b.T + c))) / a.shape[0]

    for ours, plain, args in (
        (O.clip_loss, clip_plain, (a, b, 14.3)),
        (O.siglip_loss, siglip_plain, (a, b, 10.0, -10.0)),
    ):
        n = len(args)
        np.testing.assert_allclose(ours(*args), plain(*args), rtol=1e-5)
        for x, y in zip(
            jax.grad(ours, argnums=tuple(range(n)))(*args),
            jax.grad(plain, argnums=tuple(range(n)))(*args),
            strict=True,
        ):
            np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)
