"""synthetic.prng: the unrolled threefry draws what JAX's threefry2x32 draws, bit for bit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from synthetic import train as T
from synthetic.prng import THREEFRY_UNROLLED


def _pair(seed):
    return jax.random.key(seed, impl="threefry2x32"), jax.random.key(seed, impl=THREEFRY_UNROLLED)


def _same(a, b):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("seed", [0, 7, -3, 2**31 - 1])
def test_keys_splits_and_draws_are_threefrys(seed):
    ref, ours = _pair(seed)
    _same(jax.random.key_data(ref), jax.random.key_data(ours))
    for t in (0, 5, 1999, 2**32 - 1):
        ref_t, ours_t = jax.random.fold_in(ref, t), jax.random.fold_in(ours, t)
        _same(jax.random.key_data(ref_t), jax.random.key_data(ours_t))
        for shape in (5, (2, 3)):
            split = jax.random.split(ref_t, shape), jax.random.split(ours_t, shape)
            _same(*map(jax.random.key_data, split))
        for shape in ((256, 6), (7,), (3, 5, 2), ()):
            _same(jax.random.normal(ref_t, shape), jax.random.normal(ours_t, shape))
            _same(jax.random.uniform(ref_t, shape), jax.random.uniform(ours_t, shape))
        for dtype in (jnp.uint8, jnp.uint16, jnp.uint32):
            _same(jax.random.bits(ref_t, (9, 4), dtype), jax.random.bits(ours_t, (9, 4), dtype))
        _same(jax.random.randint(ref_t, (50,), 0, 10), jax.random.randint(ours_t, (50,), 0, 10))
        _same(jax.random.permutation(ref_t, 100), jax.random.permutation(ours_t, 100))


def test_vmapped_and_jitted_draws_are_threefrys():
    """As the training program draws: keys folded per seed and per step, vmapped, under jit."""

    def draws(impl):
        base = jax.random.key(11, impl=impl)
        keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(6))
        step = jax.jit(jax.vmap(lambda k, t: jax.random.normal(jax.random.fold_in(k, t), (256, 32))))
        return step(keys, jnp.arange(6) * 100)

    _same(draws("threefry2x32"), draws(THREEFRY_UNROLLED))


def test_seed_keys_use_it():
    """The training runs' keys are the unrolled impl's and hold threefry's words."""
    keys = T.seed_keys(4, 2, 3)
    assert jax.random.key_impl(keys) == THREEFRY_UNROLLED
    ref = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(4, impl="threefry2x32"), i))(jnp.arange(2, 5))
    _same(jax.random.key_data(keys), jax.random.key_data(ref))
