"""Training objectives and the two-tower model they train.

An objective is a frozen dataclass (built from ``conf/synthetic/objective/``'s ``_target_``) that owns
everything about itself: its hyperparameters and their validation (``__post_init__``, ``check``), which
of them stay traced (``TRACED``), its extra parameters (``params``: temperature, bias, a head), its loss,
a constraint applied after every step, its zero-shot scoring and which exact theory describes it
(``THEORY``: a name for ``theory.zero_shot_accuracy(objective=...)``, or None). Nothing outside this module
switches on an objective's name; a user's own objective subclasses :class:`Objective` in the user's own
module (docs/synthetic.md). The array-level losses are separate functions so they can be checked against
numpy and open_clip, and MultiColoredMNIST uses the same ones.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import theory
from synthetic.components import Component, expect
from synthetic.data import Batch
from synthetic.encoders import Encoder, l2_normalize

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


@jax.custom_vjp
def similarity(e_image_BxH: jax.Array, e_text_BxH: jax.Array) -> jax.Array:
    """e_I e_T^T, the B x B similarity matrix, with a backward pass that XLA's CPU backend runs fast."""
    return e_image_BxH @ e_text_BxH.T


def _similarity_fwd(e_image_BxH, e_text_BxH):
    return e_image_BxH @ e_text_BxH.T, (e_image_BxH, e_text_BxH)


def _similarity_bwd(res, g_BxB):
    """d e_T = G^T e_I computed as (e_I^T G)^T, transposing the two B x H matrices, not G: as one dot
    contracting over the rows of both operands (what autodiff writes) XLA's CPU backend runs it about 3x
    slower than a plain product, and it transposes a B x B matrix slowly too (the barriers keep XLA from
    folding the transposes back into the dot; compare encoders._matmul_bwd)."""
    e_image_BxH, e_text_BxH = res
    e_image_t_HxB = jax.lax.optimization_barrier(e_image_BxH.T)
    d_text_t_HxB = jax.lax.optimization_barrier(e_image_t_HxB @ g_BxB)
    return g_BxB @ e_text_BxH, d_text_t_HxB.T


similarity.defvjp(_similarity_fwd, _similarity_bwd)


def clip_loss(e_image_BxH: jax.Array, e_text_BxH: jax.Array, logit_scale: jax.Array) -> jax.Array:
    """Symmetric InfoNCE as open_clip's ClipLoss (embeddings already normalised; scale = exp(t)).

    The image-to-text cross-entropy normalises the logits over rows, text-to-image over columns: both come
    from one logits matrix reduced along each axis (no transposed copy), with the matched pairs' logits
    s_ii taken from the embeddings: 0.5 (mean_i lse_j l_ij + mean_j lse_i l_ij) - mean_i l_ii.
    """
    scaled_BxH = logit_scale * e_image_BxH  # scaling B x H entries, not B x B
    logits_BxB = similarity(scaled_BxH, e_text_BxH)
    matched_B = jnp.sum(scaled_BxH * e_text_BxH, axis=1)
    lse_rows_B = jax.nn.logsumexp(logits_BxB, axis=1)
    lse_cols_B = jax.nn.logsumexp(logits_BxB, axis=0)
    return 0.5 * (lse_rows_B.mean() + lse_cols_B.mean()) - matched_B.mean()


@jax.custom_jvp
def log_sigmoid(x: jax.Array) -> jax.Array:
    """log sigmoid(x) = min(x, 0) - log1p(exp(-|x|)): jax.nn.log_sigmoid's value (bit for bit) at about
    half its cost with its gradient on XLA's CPU backend, the derivative reusing the forward's exp."""
    return jnp.minimum(x, 0.0) - jnp.log1p(jnp.exp(-jnp.abs(x)))


@log_sigmoid.defjvp
def _log_sigmoid_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    e = jnp.exp(-jnp.abs(x))
    sigmoid_of_minus_x = jnp.where(x >= 0, e, 1.0) / (1.0 + e)  # d/dx log sigmoid(x) = sigmoid(-x)
    return jnp.minimum(x, 0.0) - jnp.log1p(e), t * sigmoid_of_minus_x


def siglip_loss(
    e_image_BxH: jax.Array, e_text_BxH: jax.Array, scale: jax.Array, bias: jax.Array
) -> jax.Array:
    """Sigmoid loss (Zhai et al. 2023; open_clip's SigLipLoss): -sum log sigmoid(l_ij (t s_ij + b)) / B."""
    logits_BxB = similarity(scale * e_image_BxH, e_text_BxH) + bias  # scale the B x H factor
    labels_BxB = 2.0 * jnp.eye(logits_BxB.shape[0]) - 1.0
    return -jnp.sum(log_sigmoid(labels_BxB * logits_BxB)) / logits_BxB.shape[0]


def supervised_loss(logits_BxK: jax.Array, y_B: jax.Array) -> jax.Array:
    return optax.losses.softmax_cross_entropy_with_integer_labels(logits_BxK, y_B).mean()


# ---- objectives ----


@dataclasses.dataclass(frozen=True)
class Objective(Component):
    """Base: a two-tower objective scored zero-shot (override what differs)."""

    KEY: ClassVar[str] = "objective"
    TEXT: ClassVar[bool] = True  # trains a text tower (zero-shot evaluation); False: a head instead
    NORMALIZE: ClassVar[bool] = False  # L2-normalise embeddings (training and zero-shot scoring)
    MIN_BATCH: ClassVar[int] = 2  # contrastive losses need negatives
    THEORY: ClassVar[str | None] = None  # objective name of theory.zero_shot_accuracy, or None
    PREDICTION: ClassVar[tuple[str, ...]] = ("THEORY", "optimum")  # never inherited (Component)

    def check(self, encoder: Encoder) -> None:
        """Stop when this objective cannot train with ``encoder``."""

    def params(self, h: int, k: int, rngs: nnx.Rngs) -> dict:
        """Extra parameters of the model (temperature, bias, head)."""
        return {}

    def loss(self, model: DualEncoder, batch: Batch, hp: dict) -> jax.Array:
        raise NotImplementedError(f"{type(self).__name__} must implement loss(model, batch, hp)")

    def constrain(self, params: nnx.State) -> nnx.State:
        """Applied to the parameters after every optimiser step."""
        return params

    def scores(self, model: DualEncoder, x_image: jax.Array, prompts: dict[str, jax.Array]) -> dict:
        """{suffix: (N, k) class scores}: zero-shot, g_I(x) . g_T(prompt_c) for each prompt set."""
        e_image = model.embed_image(x_image)
        return {suffix: e_image @ model.embed_text(x_KxD).T for suffix, x_KxD in prompts.items()}

    def latent_product(self, model: DualEncoder, hp: dict) -> jax.Array | None:
        """For linear encoders: the learned product comparable to :meth:`optimum`, else None (in-jit)."""
        return None

    def theory_kwargs(self, batch_size: int) -> dict:
        """Extra arguments of ``theory.zero_shot_accuracy(objective=THEORY)`` for a run with this batch."""
        return {}

    def optimum(self, model: theory.GaussianSpuriousModel, rank: int | None) -> np.ndarray | None:
        """The exact population optimum of ``latent_product`` in latent coordinates, or None (host side)."""
        return None


@dataclasses.dataclass(frozen=True)
class LinearClip(Objective):
    """The paper's linearised CLIP loss + (rho / 2) ||W_I^T W_T||_F^2 (needs linear encoders)."""

    TRACED: ClassVar[tuple[str, ...]] = ("rho",)
    THEORY: ClassVar[str | None] = "linear_clip"
    rho: float = 1.0

    def __post_init__(self):
        expect(math.isfinite(self.rho) and self.rho > 0, "objective.rho", self.rho, "a finite weight > 0")

    def check(self, encoder: Encoder) -> None:
        expect(
            encoder.LINEAR,
            "encoder",
            type(encoder).__name__,
            "a linear encoder: linear_clip penalises ||W_I^T W_T||",
        )

    def loss(self, model, batch, hp):
        base = linear_clip_loss(model.embed_image(batch.x_image), model.embed_text(batch.x_text))
        return base + 0.5 * hp["rho"] * product_frobenius_sq(model.image.matrix(), model.text.matrix())

    def latent_product(self, model, hp):
        return model.image.matrix().T @ model.text.matrix() * hp["rho"]  # = K at the optimum

    def optimum(self, model, rank):
        return theory.clip_optimum(model.replace(rho=self.rho), rank=rank)


@dataclasses.dataclass(frozen=True)
class LearnedTemperature(Objective):
    """Base of contrastive losses with a learnable temperature (public: a new loss subclasses it):
    normalised embeddings and a learnable log-scale ``model.extra["logit_scale"]`` (initialised at the
    field named by ``INIT_KEY``; :meth:`starts`), clamped to [0, log(logit_scale_max)] after every step as
    open_clip's training loop does for CLIP and SigLIP models alike. A subclass writes ``loss`` (and may
    add parameters by extending ``params``); it has no exact prediction unless it declares ``THEORY``."""

    NORMALIZE: ClassVar[bool] = True
    INIT_KEY: ClassVar[str] = "logit_scale_init"
    logit_scale_max: float = 100.0

    def __post_init__(self):
        m = self.logit_scale_max
        expect(math.isfinite(m) and m >= 1, "objective.logit_scale_max", m, "a finite scale >= 1")
        init = getattr(self, self.INIT_KEY)
        expect(
            math.isfinite(init) and 0 <= init <= math.log(m),
            f"objective.{self.INIT_KEY}",
            init,
            f"a log-scale in [0, log(objective.logit_scale_max)] = [0, {math.log(m):.4g}]",
        )

    def theory_kwargs(self, batch_size):
        return {"logit_scale_max": self.logit_scale_max}  # the optimum sits at (or below) the clamp

    def starts(self) -> dict[str, str]:
        """Each extra parameter and the field it starts at. A field in TRACED is an hp value (a sweep over
        where training starts reuses one program): the compiled run's model is built from the static copy,
        which has no value for it, so the parameter is NaN there until :meth:`start` sets it."""
        return {"logit_scale": self.INIT_KEY}

    def params(self, h, k, rngs):
        blank = getattr(type(self), "_STATIC", False)  # a static copy (Component.static)
        return {
            name: nnx.Param(jnp.float32(math.nan if blank and f in self.TRACED else getattr(self, f)))
            for name, f in self.starts().items()
        }

    def start(self, params, hp):
        for name, f in self.starts().items():
            if f in self.TRACED:
                params["extra"][name][...] = hp[f]
        return params

    def constrain(self, params):
        log_scale = params["extra"]["logit_scale"]
        log_scale[...] = jnp.clip(log_scale[...], 0.0, jnp.log(self.logit_scale_max))
        return params


@dataclasses.dataclass(frozen=True)
class Clip(LearnedTemperature):
    """Symmetric InfoNCE on L2-normalised embeddings, learnable temperature (open_clip ClipLoss)."""

    THEORY: ClassVar[str | None] = "clip"
    TRACED: ClassVar[tuple[str, ...]] = ("logit_scale_init",)
    logit_scale_init: float = 2.6592600369644043  # log(1 / 0.07), as open_clip

    def loss(self, model, batch, hp):
        scale = jnp.exp(model.extra["logit_scale"][...])
        return clip_loss(model.embed_image(batch.x_image), model.embed_text(batch.x_text), scale)


@dataclasses.dataclass(frozen=True)
class SigLIP(LearnedTemperature):
    """Sigmoid loss with learnable temperature t = exp(t') and bias b (SigLIP init: t' = log 10, b = -10)."""

    THEORY: ClassVar[str | None] = "siglip"
    INIT_KEY: ClassVar[str] = "siglip_t_init"
    TRACED: ClassVar[tuple[str, ...]] = ("siglip_t_init", "siglip_b_init")
    siglip_t_init: float = 2.302585092994046
    siglip_b_init: float = -10.0

    def __post_init__(self):
        super().__post_init__()
        expect(
            math.isfinite(self.siglip_b_init), "objective.siglip_b_init", self.siglip_b_init, "a finite bias"
        )

    def theory_kwargs(self, batch_size):
        # SigLIP's expected loss is exact for any batch (docs/theory.md 9.1)
        return {**super().theory_kwargs(batch_size), "batch_size": batch_size}

    def starts(self):  # logit_scale is t' (t = exp t'), as open_clip
        return {**super().starts(), "logit_bias": "siglip_b_init"}

    def loss(self, model, batch, hp):
        scale = jnp.exp(model.extra["logit_scale"][...])
        e_image, e_text = model.embed_image(batch.x_image), model.embed_text(batch.x_text)
        return siglip_loss(e_image, e_text, scale, model.extra["logit_bias"][...])


@dataclasses.dataclass(frozen=True)
class Supervised(Objective):
    """ERM baseline: image encoder + linear head, cross-entropy on the class labels (no text tower)."""

    TEXT: ClassVar[bool] = False
    MIN_BATCH: ClassVar[int] = 1

    def params(self, h, k, rngs):
        return {"head": nnx.Linear(h, k, rngs=rngs)}

    def loss(self, model, batch, hp):
        return supervised_loss(model.extra["head"](model.embed_image(batch.x_image)), batch.y)

    def scores(self, model, x_image, prompts):
        return {"": model.extra["head"](model.embed_image(x_image))}


class DualEncoder(nnx.Module):
    """Image encoder, text encoder (when the objective trains one) and the objective's extra parameters."""

    def __init__(self, d_image: int, d_text: int, k: int, encoder: Encoder, objective: Objective, rngs):
        self.normalize = objective.NORMALIZE
        self.image = encoder(d_image, rngs)
        self.text = encoder(d_text, rngs) if objective.TEXT else None
        self.extra = nnx.Dict(objective.params(encoder.h, k, rngs))

    def embed_image(self, x_NxD: jax.Array) -> jax.Array:
        e = self.image(x_NxD)
        return l2_normalize(e) if self.normalize else e

    def embed_text(self, x_NxD: jax.Array) -> jax.Array:
        assert self.text is not None, "an objective without TEXT has no text tower"
        e = self.text(x_NxD)
        return l2_normalize(e) if self.normalize else e
