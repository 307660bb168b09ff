"""Encoders g(x) -> R^h: a frozen dataclass of hyperparameters (built from ``conf/synthetic/encoder/``'s
``_target_``) whose call ``encoder(d_in, rngs)`` returns the Flax NNX module. A new encoder is one such
dataclass in the user's own module plus one YAML (docs/synthetic.md)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from synthetic.components import Component, expect

ACTIVATIONS = {"gelu": jax.nn.gelu, "relu": jax.nn.relu}


def _init(scale: float):
    # N(0, scale^2 / fan_in): scale 1 is LeCun-normal; a small scale starts the linear model near zero.
    return nnx.initializers.variance_scaling(scale**2, "fan_in", "normal")


@dataclasses.dataclass(frozen=True)
class Encoder(Component):
    KEY: ClassVar[str] = "encoder"
    LINEAR: ClassVar[bool] = False  # g(x) = W x: the module has ``matrix()`` (the exact theory applies)

    h: int = 16  # embedding width
    init_scale: float = 1.0  # weights ~ N(0, init_scale^2 / fan_in)

    def __post_init__(self):
        expect(isinstance(self.h, int) and self.h >= 1, "encoder.h", self.h, "an embedding width >= 1")
        expect(
            self.init_scale > 0 and self.init_scale < float("inf"),
            "encoder.init_scale",
            self.init_scale,
            "a finite scale > 0 (0 starts every weight at zero: the model never trains)",
        )

    def __call__(self, d_in: int, rngs: nnx.Rngs) -> nnx.Module:
        raise NotImplementedError


@jax.custom_vjp
def _matmul(x_NxD: jax.Array, k_DxH: jax.Array) -> jax.Array:
    """x K, with a backward pass that XLA's CPU backend runs as plain row-major matmuls (see _matmul_bwd)."""
    return x_NxD @ k_DxH


def _matmul_fwd(x_NxD, k_DxH):
    return x_NxD @ k_DxH, (x_NxD, k_DxH)


def _matmul_bwd(res, g_NxH):
    """dK = x^T G computed as (G^T x)^T with G^T materialised: XLA would otherwise fold the transposes into
    one dot contracting over the rows of both operands, which its CPU backend runs several times slower
    than the plain product it hands to its matmul library (the barriers keep the transposes as copies)."""
    x_NxD, k_DxH = res
    g_HxN = jax.lax.optimization_barrier(g_NxH.T)
    dk_HxD = jax.lax.optimization_barrier(g_HxN @ x_NxD)
    return g_NxH @ k_DxH.T, dk_HxD.T


_matmul.defvjp(_matmul_fwd, _matmul_bwd)


def _dense(layer: nnx.Linear, x_NxD: jax.Array) -> jax.Array:
    """``layer(x)`` through :func:`_matmul` (same numbers, faster weight gradient on CPU)."""
    out_NxH = _matmul(x_NxD, layer.kernel[...])
    return out_NxH + layer.bias[...] if layer.bias is not None else out_NxH


class LinearModule(nnx.Module):
    def __init__(self, d_in: int, h: int, init_scale: float, rngs: nnx.Rngs):
        self.proj = nnx.Linear(d_in, h, use_bias=False, kernel_init=_init(init_scale), rngs=rngs)

    def __call__(self, x_NxD: jax.Array) -> jax.Array:
        return _dense(self.proj, x_NxD)

    def matrix(self) -> jax.Array:
        """W (h, d_in)."""
        return self.proj.kernel[...].T


@dataclasses.dataclass(frozen=True)
class Linear(Encoder):
    """g(x) = W x with W of shape (h, d_in), the paper's encoder (small init: starts near zero)."""

    LINEAR: ClassVar[bool] = True
    init_scale: float = 0.1

    def __call__(self, d_in: int, rngs: nnx.Rngs) -> LinearModule:
        return LinearModule(d_in, self.h, self.init_scale, rngs)


class MLPModule(nnx.Module):
    def __init__(self, d_in: int, cfg: MLP, rngs: nnx.Rngs):
        dims = [d_in] + [cfg.width] * cfg.depth
        self.activation = ACTIVATIONS[cfg.activation]
        self.hidden = nnx.List(
            [
                nnx.Linear(i, o, kernel_init=_init(cfg.init_scale), rngs=rngs)
                for i, o in zip(dims[:-1], dims[1:], strict=True)
            ]
        )
        self.out = nnx.Linear(dims[-1], cfg.h, kernel_init=_init(cfg.init_scale), rngs=rngs)

    def __call__(self, x_NxD: jax.Array) -> jax.Array:
        x_NxD = x_NxD.reshape(x_NxD.shape[0], -1)  # images (N, H, W, C) are flattened
        for layer in self.hidden:
            x_NxD = self.activation(_dense(layer, x_NxD))
        return _dense(self.out, x_NxD)


@dataclasses.dataclass(frozen=True)
class MLP(Encoder):
    """depth hidden layers of the given width with an activation, then a linear map to R^h."""

    width: int = 128  # hidden width
    depth: int = 2  # hidden layers
    activation: str = "gelu"  # gelu | relu

    def __post_init__(self):
        super().__post_init__()
        expect(isinstance(self.width, int) and self.width >= 1, "encoder.width", self.width, "a width >= 1")
        expect(isinstance(self.depth, int) and self.depth >= 0, "encoder.depth", self.depth, "a depth >= 0")
        expect(
            self.activation in ACTIVATIONS,
            "encoder.activation",
            self.activation,
            f"one of {list(ACTIVATIONS)}",
        )

    def __call__(self, d_in: int, rngs: nnx.Rngs) -> MLPModule:
        return MLPModule(d_in, self, rngs)


def l2_normalize(x_NxH: jax.Array, eps: float = 1e-12) -> jax.Array:
    # max(|x|, eps) taken on |x|^2: the same values, and a finite gradient at x = 0 (that of norm is 0/0 =
    # NaN there). A caption whose latent cancels to exactly 0.0 in float32 happens about once in 10^6-10^7
    # fresh samples and made a whole InfoNCE run NaN.
    return x_NxH / jnp.sqrt(jnp.maximum(jnp.sum(x_NxH * x_NxH, axis=-1, keepdims=True), eps * eps))
