"""Flax NNX encoders g(x) -> R^h. Adding one = one class taking (d_in, cfg, rngs) + one ENCODERS entry."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from synthetic.config import EncoderConfig


def _init(scale: float):
    # N(0, scale^2 / fan_in): scale 1 is LeCun-normal; a small scale starts the linear model near zero.
    return nnx.initializers.variance_scaling(scale**2, "fan_in", "normal")


class LinearEncoder(nnx.Module):
    """g(x) = W x with W of shape (h, d_in), the paper's encoder."""

    def __init__(self, d_in: int, cfg: EncoderConfig, rngs: nnx.Rngs):
        self.proj = nnx.Linear(d_in, cfg.h, use_bias=False, kernel_init=_init(cfg.init_scale), rngs=rngs)

    def __call__(self, x_NxD: jax.Array) -> jax.Array:
        return self.proj(x_NxD)

    def matrix(self) -> jax.Array:
        """W (h, d_in)."""
        return self.proj.kernel[...].T


class MLPEncoder(nnx.Module):
    """depth hidden layers of the given width with GELU, then a linear map to R^h."""

    def __init__(self, d_in: int, cfg: EncoderConfig, rngs: nnx.Rngs):
        dims = [d_in] + [cfg.width] * cfg.depth
        self.hidden = nnx.List(
            [
                nnx.Linear(i, o, kernel_init=_init(cfg.init_scale), rngs=rngs)
                for i, o in zip(dims[:-1], dims[1:], strict=True)
            ]
        )
        self.out = nnx.Linear(dims[-1], cfg.h, kernel_init=_init(cfg.init_scale), rngs=rngs)

    def __call__(self, x_NxD: jax.Array) -> jax.Array:
        for layer in self.hidden:
            x_NxD = jax.nn.gelu(layer(x_NxD))
        return self.out(x_NxD)

    def matrix(self) -> jax.Array:
        raise ValueError(
            "encoder=mlp has no single weight matrix: the linearised CLIP loss needs encoder=linear"
        )


ENCODERS = {"linear": LinearEncoder, "mlp": MLPEncoder}


def make_encoder(d_in: int, cfg: EncoderConfig, rngs: nnx.Rngs) -> nnx.Module:
    if cfg.name not in ENCODERS:
        raise ValueError(f"encoder.name={cfg.name!r}: expected one of {sorted(ENCODERS)}")
    if cfg.h < 1:
        raise ValueError(f"encoder.h={cfg.h!r}: expected a width >= 1")
    return ENCODERS[cfg.name](d_in, cfg, rngs)


def l2_normalize(x_NxH: jax.Array, eps: float = 1e-12) -> jax.Array:
    return x_NxH / jnp.maximum(jnp.linalg.norm(x_NxH, axis=-1, keepdims=True), eps)
