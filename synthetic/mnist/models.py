"""MultiColoredMNIST's image encoders and objectives: components, trained by synthetic.train's loop.

Each is a frozen dataclass (:class:`synthetic.components.Component`) named by ``_target_`` in a YAML of the
config groups ``conf/synthetic/mnist_encoder/`` and ``conf/synthetic/mnist_objective/``; a user's own
lives in the user's own module (docs/mnist.md, "Adding an MNIST objective"). An objective builds the model
it trains (:meth:`MNISTObjective.model`, from the encoder), gives its loss on a batch of coloured digits
(``batch.x`` images, ``batch.y`` labels, ``batch.c`` colours) and its class scores.

(a) ``contrastive``: CLIP's image-to-text loss against a fixed, perfect text encoder: the caption of an
    image is the pair (object y, background colour c), embedded as concat(onehot_k(y), onehot_K(c));
    the candidate captions are all k*K pairs. Because the score of caption (y, c) is a_y + b_c, its
    softmax over the pair grid factorises and the loss is CE(a, y) + CE(b, c): cross-entropy with an
    extra background head (tests/test_mnist_equivalence.py checks values and gradients).
(b) ``two_tower``: genuine CLIP training: a learned text tower embeds the same captions, both towers are
    L2-normalised, a learned temperature scales the cosine similarities, and the loss is the symmetric
    InfoNCE over the batch (duplicated captions count as negatives, as in CLIP).
(c) ``supervised``: cross-entropy of a k-way linear head.

Zero-shot prediction for (a) and (b) follows open_clip: the class embedding is the normalised mean of the
normalised caption embeddings of (y, c) over all colours c; predict the class with the largest score.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from synthetic import encoders
from synthetic.components import Component, expect
from synthetic.objectives import clip_loss, supervised_loss

# ---------------------------------------------------------------- encoders


@dataclasses.dataclass(frozen=True)
class ImageEncoder(Component):
    """Base: ``encoder(image_size, out_dim, rngs)`` is the Flax NNX module mapping (B, H, W, 3) images to
    (B, out_dim); the objective chooses ``out_dim``."""

    KEY: ClassVar[str] = "mnist_encoder"
    width: int = 256  # hidden width (also the text tower's, for two_tower)

    def __post_init__(self):
        expect(
            isinstance(self.width, int) and self.width >= 1, "mnist_encoder.width", self.width, "a width >= 1"
        )

    def __call__(self, image_size: int, out_dim: int, rngs: nnx.Rngs) -> nnx.Module:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(image_size, out_dim, rngs)")


@dataclasses.dataclass(frozen=True)
class MLP(ImageEncoder):
    """The Gaussian runs' MLP (synthetic.encoders.MLP) on the flattened RGB image: ``depth`` ReLU layers of
    ``width``, weights N(0, 1/fan_in), a linear output."""

    depth: int = 2

    def __post_init__(self):
        super().__post_init__()
        expect(
            isinstance(self.depth, int) and self.depth >= 0, "mnist_encoder.depth", self.depth, "a depth >= 0"
        )

    def __call__(self, image_size, out_dim, rngs):
        mlp = encoders.MLP(h=out_dim, width=self.width, depth=self.depth, activation="relu", init_scale=1.0)
        return mlp(image_size * image_size * 3, rngs)


class CNNModule(nnx.Module):
    """Two stride-2 3x3 convolutions (16, 32 channels), global mean pool, ReLU layer, ``out_dim``."""

    def __init__(self, width: int, out_dim: int, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(3, 16, (3, 3), strides=2, rngs=rngs)
        self.conv2 = nnx.Conv(16, 32, (3, 3), strides=2, rngs=rngs)
        self.hidden = nnx.Linear(32, width, rngs=rngs)
        self.out = nnx.Linear(width, out_dim, rngs=rngs)

    def __call__(self, x_BxHxWx3):
        h = jax.nn.relu(self.conv1(x_BxHxWx3))
        h = jax.nn.relu(self.conv2(h))
        h = jax.nn.relu(self.hidden(h.mean(axis=(1, 2))))
        return self.out(h)


@dataclasses.dataclass(frozen=True)
class CNN(ImageEncoder):
    """:class:`CNNModule` (global pooling: any image size)."""

    def __call__(self, image_size, out_dim, rngs):
        return CNNModule(self.width, out_dim, rngs)


# ---------------------------------------------------------------- losses (pure functions)


def perfect_text_embeddings(k: int, n_colours: int):
    """Embeddings of all k*K captions (y, c), row y*K + c: concat(onehot(y), onehot(c)), (k*K, k+K)."""
    y_C = jnp.repeat(jnp.arange(k), n_colours)
    c_C = jnp.tile(jnp.arange(n_colours), k)
    return jnp.concatenate([jax.nn.one_hot(y_C, k), jax.nn.one_hot(c_C, n_colours)], axis=1)


def contrastive_onehot_loss(image_BxE, y_B, c_B, k: int, n_colours: int):
    """Objective (a): InfoNCE from each image to the k*K one-hot captions, target its own caption."""
    logits_BxC = image_BxE @ perfect_text_embeddings(k, n_colours).T
    target_B = y_B * n_colours + c_B
    return optax.softmax_cross_entropy_with_integer_labels(logits_BxC, target_B).mean()


def two_tower_loss(image_BxD, text_BxD, log_scale):
    """Objective (b): the Gaussian runs' symmetric InfoNCE (synthetic.objectives.clip_loss) on normalised
    embeddings, scale exp(log_scale)."""
    return clip_loss(encoders.l2_normalize(image_BxD), encoders.l2_normalize(text_BxD), jnp.exp(log_scale))


def zero_shot_class_embeddings(caption_KkxE, k: int, n_colours: int):
    """Class y's embedding: the normalised mean over colours of the normalised caption embeddings."""
    per_caption = encoders.l2_normalize(caption_KkxE).reshape(k, n_colours, -1)
    return encoders.l2_normalize(per_caption.mean(axis=1))


# ---------------------------------------------------------------- objectives


@dataclasses.dataclass(frozen=True)
class MNISTObjective(Component):
    """Base of a MultiColoredMNIST objective (a k-class dataset with k colours).

    ``model(encoder, image_size, k, rngs)``: the NNX module trained (its parameters are what the optimiser
    updates); ``loss(model, batch, hp)``: the scalar loss on ``batch`` (``batch.x`` (B, H, W, 3) images in
    [0, 1], ``batch.y`` labels, ``batch.c`` colours; ``hp`` holds this objective's TRACED fields);
    ``scores(model, x)``: (N, k) class scores, the prediction being their argmax.
    """

    KEY: ClassVar[str] = "mnist_objective"

    def model(self, encoder: ImageEncoder, image_size: int, k: int, rngs: nnx.Rngs) -> nnx.Module:
        raise NotImplementedError(f"{type(self).__name__} must implement model(encoder, image_size, k, rngs)")

    def loss(self, model: Any, batch: Any, hp: dict) -> jax.Array:
        raise NotImplementedError(f"{type(self).__name__} must implement loss(model, batch, hp)")

    def scores(self, model: Any, x: jax.Array) -> jax.Array:
        raise NotImplementedError(f"{type(self).__name__} must implement scores(model, x)")

    def constrain(self, params: nnx.State) -> nnx.State:
        """Applied to the parameters after every optimiser step (synthetic.train.step)."""
        return params


@dataclasses.dataclass(frozen=True)
class Contrastive(MNISTObjective):
    """(a) image encoder with k + k outputs [a | b] scored against the fixed one-hot text encoder."""

    def model(self, encoder, image_size, k, rngs):
        return encoder(image_size, 2 * k, rngs)

    def loss(self, model, batch, hp):
        out_BxE = model(batch.x)
        k = out_BxE.shape[1] // 2  # k objects, k colours
        return contrastive_onehot_loss(out_BxE, batch.y, batch.c, k, k)

    def scores(self, model, x):
        out_NxE = model(x)
        k = out_NxE.shape[1] // 2
        return out_NxE @ zero_shot_class_embeddings(perfect_text_embeddings(k, k), k, k).T


class TextTower(nnx.Module):
    """Caption (y, c) -> sum of learned object and colour embeddings -> ReLU layer -> embed_dim."""

    def __init__(self, k: int, n_colours: int, width: int, embed_dim: int, rngs: nnx.Rngs):
        self.obj = nnx.Embed(k, width, rngs=rngs)
        self.colour = nnx.Embed(n_colours, width, rngs=rngs)
        self.out = nnx.Linear(width, embed_dim, rngs=rngs)

    def __call__(self, y_B, c_B):
        return self.out(jax.nn.relu(self.obj(y_B) + self.colour(c_B)))


class TwoTowerModel(nnx.Module):
    """Learned image and text towers, CLIP's learned temperature initialised at 1/0.07."""

    def __init__(self, encoder: ImageEncoder, image_size: int, k: int, embed_dim: int, rngs: nnx.Rngs):
        self.k = k
        self.image = encoder(image_size, embed_dim, rngs)
        self.text = TextTower(k, k, encoder.width, embed_dim, rngs)
        self.log_scale = nnx.Param(jnp.log(1.0 / 0.07))

    def class_embeddings(self):
        y_C = jnp.repeat(jnp.arange(self.k), self.k)
        c_C = jnp.tile(jnp.arange(self.k), self.k)
        return zero_shot_class_embeddings(self.text(y_C, c_C), self.k, self.k)


@dataclasses.dataclass(frozen=True)
class TwoTower(MNISTObjective):
    """(b) symmetric InfoNCE between a learned image tower and a learned text tower of the captions."""

    embed_dim: int = 64  # joint embedding size

    def __post_init__(self):
        expect(
            isinstance(self.embed_dim, int) and self.embed_dim >= 1,
            "mnist_objective.embed_dim",
            self.embed_dim,
            "an embedding size >= 1",
        )

    def model(self, encoder, image_size, k, rngs):
        return TwoTowerModel(encoder, image_size, k, self.embed_dim, rngs)

    def loss(self, model, batch, hp):
        return two_tower_loss(model.image(batch.x), model.text(batch.y, batch.c), model.log_scale[...])

    def scores(self, model, x):
        return encoders.l2_normalize(model.image(x)) @ model.class_embeddings().T


@dataclasses.dataclass(frozen=True)
class Supervised(MNISTObjective):
    """(c) image encoder with a k-way head trained by cross-entropy (the colour is not supervised)."""

    def model(self, encoder, image_size, k, rngs):
        return encoder(image_size, k, rngs)

    def loss(self, model, batch, hp):
        return supervised_loss(model(batch.x), batch.y)

    def scores(self, model, x):
        return model(x)
