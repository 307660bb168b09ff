"""JAX's threefry2x32 PRNG with the hash unrolled: the same bits as ``jax.random.key(s)``, faster on CPU.

JAX lowers the threefry hash on CPU as a rolled loop (``lax.fori_loop`` over its 5 groups of 4 rounds,
to save compile time): every loop iteration is its own kernel reading and writing the counter arrays, and
a step's fresh sample draws several such loops. Here the same 20 rounds are written out in ``jax.numpy``,
so XLA fuses the hash into one elementwise kernel (about 5x fewer CPU cycles per random word, measured
in benchmarks/batched_launcher.py's notes). Seeding, split, fold_in and random bits follow
``jax._src.random.threefry2x32`` (the ``jax_threefry_partitionable`` layout, JAX's default): every key,
split, fold_in and draw equals threefry2x32's bit for bit (tests/test_prng.py), so no result changes.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.random import define_prng_impl

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _rotate_left(x: jax.Array, d: int) -> jax.Array:
    return lax.shift_left(x, np.uint32(d)) | lax.shift_right_logical(x, np.uint32(32 - d))


def threefry2x32(k1: jax.Array, k2: jax.Array, x1: jax.Array, x2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The Threefry-2x32 hash (20 rounds) of the counter pairs (x1, x2) under the key (k1, k2), uint32."""
    ks = (k1, k2, k1 ^ k2 ^ np.uint32(0x1BD11BDA))
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x1 = x1 + x2
            x2 = _rotate_left(x2, r) ^ x1
        x1 = x1 + ks[(i + 1) % 3]
        x2 = x2 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x1, x2


def _counts(shape: tuple[int, ...]) -> jax.Array:
    """The low words of a row-major uint64 iota of ``shape`` (the high words are 0 below 2**32)."""
    if math.prod(shape) >= 2**32:
        raise NotImplementedError(f"random arrays of 2**32 or more words: shape {shape}")
    return lax.iota(np.uint32, math.prod(shape)).reshape(shape)


def _seed(seed: jax.Array) -> jax.Array:
    """A key from an integer seed: its two 32-bit words (high word 0 for a 32-bit seed), as threefry."""
    seed = jnp.asarray(seed)
    hi = lax.shift_right_logical(seed, lax.full_like(seed, 32)) if seed.dtype.itemsize == 8 else seed * 0
    lo = seed & lax.full_like(seed, 0xFFFFFFFF) if seed.dtype.itemsize == 8 else seed
    return jnp.stack([hi.astype(np.uint32), lo.astype(np.uint32)])


def _split(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    c = _counts(shape)
    b1, b2 = threefry2x32(key[0], key[1], jnp.zeros_like(c), c)
    return jnp.stack([b1, b2], axis=b1.ndim)


def _fold_in(key: jax.Array, data: jax.Array) -> jax.Array:
    words = _seed(data)
    b1, b2 = threefry2x32(key[0], key[1], words[:1], words[1:])
    return jnp.concatenate([b1, b2])


def _random_bits(key: jax.Array, bit_width: int, shape: tuple[int, ...]) -> jax.Array:
    c = _counts(shape)
    b1, b2 = threefry2x32(key[0], key[1], jnp.zeros_like(c), c)
    if bit_width == 64:
        return (b1.astype(np.uint64) << np.uint64(32)) | b2.astype(np.uint64)
    if bit_width not in (8, 16, 32):
        raise TypeError(f"random bits of width {bit_width}: expected 8, 16, 32 or 64")
    return (b1 ^ b2).astype(f"uint{bit_width}")


#: Pass as ``jax.random.key(seed, impl=THREEFRY_UNROLLED)``.
THREEFRY_UNROLLED = define_prng_impl(
    key_shape=(2,),
    seed=_seed,
    split=_split,
    random_bits=_random_bits,
    fold_in=_fold_in,
    name="threefry2x32_unrolled",
    tag="fry_u",
)
