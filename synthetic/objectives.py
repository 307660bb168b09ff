"""Training objectives and the two-tower model they train.

Each objective is a loss ``loss(model, batch, hp, cfg) -> scalar`` on a :class:`DualEncoder` plus one
:data:`OBJECTIVES` entry saying which extra parameters it owns (temperature, bias, a head), whether it
trains a text tower (and so can be evaluated zero-shot) and whether embeddings are L2-normalised.
The array-level losses below are separate functions so they can be checked against numpy and open_clip.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from synthetic.config import EncoderConfig, ObjectiveConfig
from synthetic.data import Batch
from synthetic.encoders import l2_normalize, make_encoder

# ---- array-level losses (B pairs, embeddings of width H) ----


def linear_clip_loss(e_image_BxH: jax.Array, e_text_BxH: jax.Array) -> jax.Array:
    """The paper's linearised CLIP loss without its regulariser:

    1/(2B(B-1)) [sum_i sum_{j!=i} (s_ij - s_ii) + sum_i sum_{j!=i} (s_ji - s_ii)],  s_ij = e_I^i . e_T^j,
    which equals (sum_ij s_ij - B tr S) / (B (B-1)); computed in O(B H) from the column sums.
    """
    b = e_image_BxH.shape[0]
    total = e_image_BxH.sum(0) @ e_text_BxH.sum(0)
    trace = jnp.sum(e_image_BxH * e_text_BxH)
    return (total - b * trace) / (b * (b - 1))


def product_frobenius_sq(w_image_HxD: jax.Array, w_text_HxE: jax.Array) -> jax.Array:
    """||W_I^T W_T||_F^2 = tr((W_I W_I^T)(W_T W_T^T)), without forming the d_I x d_T product."""
    return jnp.sum((w_image_HxD @ w_image_HxD.T) * (w_text_HxE @ w_text_HxE.T))


def clip_loss(e_image_BxH: jax.Array, e_text_BxH: jax.Array, logit_scale: jax.Array) -> jax.Array:
    """Symmetric InfoNCE as open_clip's ClipLoss (embeddings already normalised; scale = exp(t))."""
    logits_BxB = logit_scale * e_image_BxH @ e_text_BxH.T
    labels_B = jnp.arange(logits_BxB.shape[0])
    ce = optax.losses.softmax_cross_entropy_with_integer_labels
    return 0.5 * (ce(logits_BxB, labels_B).mean() + ce(logits_BxB.T, labels_B).mean())


def siglip_loss(
    e_image_BxH: jax.Array, e_text_BxH: jax.Array, scale: jax.Array, bias: jax.Array
) -> jax.Array:
    """Sigmoid loss (Zhai et al. 2023; open_clip's SigLipLoss): -sum log sigmoid(l_ij (t s_ij + b)) / B."""
    logits_BxB = scale * e_image_BxH @ e_text_BxH.T + bias
    labels_BxB = 2.0 * jnp.eye(logits_BxB.shape[0]) - 1.0
    return -jnp.sum(jax.nn.log_sigmoid(labels_BxB * logits_BxB)) / logits_BxB.shape[0]


def supervised_loss(logits_BxK: jax.Array, y_B: jax.Array) -> jax.Array:
    return optax.losses.softmax_cross_entropy_with_integer_labels(logits_BxK, y_B).mean()


# ---- objectives on the model ----


def linear_clip_objective(model, batch: Batch, hp: dict, cfg: ObjectiveConfig) -> jax.Array:
    base = linear_clip_loss(model.embed_image(batch.x_image), model.embed_text(batch.x_text))
    reg = product_frobenius_sq(model.image.matrix(), model.text.matrix())
    return base + 0.5 * hp["rho"] * reg


def clip_objective(model, batch: Batch, hp: dict, cfg: ObjectiveConfig) -> jax.Array:
    scale = jnp.exp(model.extra["logit_scale"][...])
    return clip_loss(model.embed_image(batch.x_image), model.embed_text(batch.x_text), scale)


def clamp_logit_scale(params: nnx.State, cfg: ObjectiveConfig) -> nnx.State:
    """As open_clip's training loop (for CLIP and SigLIP models alike): after every optimiser step the
    log-scale is clamped to [0, log(logit_scale_max)] (a projection: gradients can still move it back)."""
    log_scale = params["extra"]["logit_scale"]
    log_scale[...] = jnp.clip(log_scale[...], 0.0, jnp.log(cfg.logit_scale_max))
    return params


def siglip_objective(model, batch: Batch, hp: dict, cfg: ObjectiveConfig) -> jax.Array:
    scale = jnp.exp(model.extra["logit_scale"][...])
    return siglip_loss(
        model.embed_image(batch.x_image),
        model.embed_text(batch.x_text),
        scale,
        model.extra["logit_bias"][...],
    )


def supervised_objective(model, batch: Batch, hp: dict, cfg: ObjectiveConfig) -> jax.Array:
    return supervised_loss(model.extra["head"](model.embed_image(batch.x_image)), batch.y)


def _no_params(cfg: ObjectiveConfig, h: int, k: int, rngs: nnx.Rngs) -> dict:
    return {}


class Objective(NamedTuple):
    loss: Callable[..., jax.Array]
    params: Callable[[ObjectiveConfig, int, int, nnx.Rngs], dict] = _no_params  # (cfg, h, k, rngs) -> extras
    text: bool = True  # trains a text tower (zero-shot evaluation); False: the model has a head instead
    normalize: bool = False  # L2-normalise embeddings (training and zero-shot scoring)
    # (params, cfg) -> params applied after every optimiser step (a constraint on the parameters)
    constrain: Callable[[nnx.State, ObjectiveConfig], nnx.State] | None = None


OBJECTIVES: dict[str, Objective] = {
    "linear_clip": Objective(linear_clip_objective),
    "clip": Objective(
        clip_objective,
        params=lambda cfg, h, k, rngs: {"logit_scale": nnx.Param(jnp.float32(cfg.logit_scale_init))},
        normalize=True,
        constrain=clamp_logit_scale,
    ),
    "siglip": Objective(
        siglip_objective,
        params=lambda cfg, h, k, rngs: {
            "logit_scale": nnx.Param(jnp.float32(cfg.siglip_t_init)),  # t' (t = exp t'), as open_clip
            "logit_bias": nnx.Param(jnp.float32(cfg.siglip_b_init)),
        },
        normalize=True,
        constrain=clamp_logit_scale,
    ),
    "supervised": Objective(
        supervised_objective, params=lambda cfg, h, k, rngs: {"head": nnx.Linear(h, k, rngs=rngs)}, text=False
    ),
}


def get_objective(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise ValueError(f"objective.name={name!r}: expected one of {sorted(OBJECTIVES)}")
    return OBJECTIVES[name]


class DualEncoder(nnx.Module):
    """Image encoder, text encoder (when the objective trains one) and the objective's extra parameters."""

    def __init__(
        self, d_image: int, d_text: int, k: int, enc: EncoderConfig, obj: ObjectiveConfig, rngs: nnx.Rngs
    ):
        objective = get_objective(obj.name)
        self.normalize = objective.normalize
        self.image = make_encoder(d_image, enc, rngs)
        self.text = make_encoder(d_text, enc, rngs) if objective.text else None
        self.extra = nnx.Dict(objective.params(obj, enc.h, k, rngs))

    def embed_image(self, x_NxD: jax.Array) -> jax.Array:
        e = self.image(x_NxD)
        return l2_normalize(e) if self.normalize else e

    def embed_text(self, x_NxD: jax.Array) -> jax.Array:
        e = self.text(x_NxD)
        return l2_normalize(e) if self.normalize else e
