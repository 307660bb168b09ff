"""Flax NNX encoders and the three objectives of the MultiColoredMNIST experiment.

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

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from synthetic.encoders import MLP, l2_normalize
from synthetic.mnist.config import ENCODERS, OBJECTIVES  # noqa: F401  (the one list of each)
from synthetic.objectives import clip_loss


class CNNEncoder(nnx.Module):
    """Two stride-2 3x3 convolutions (16, 32 channels), global mean pool, ReLU layer, ``out_dim``."""

    def __init__(self, image_size: int, width: int, out_dim: int, rngs: nnx.Rngs):
        del image_size  # global pooling makes the encoder size-agnostic
        self.conv1 = nnx.Conv(3, 16, (3, 3), strides=2, rngs=rngs)
        self.conv2 = nnx.Conv(16, 32, (3, 3), strides=2, rngs=rngs)
        self.hidden = nnx.Linear(32, width, rngs=rngs)
        self.out = nnx.Linear(width, out_dim, rngs=rngs)

    def __call__(self, x_BxHxWx3):
        h = jax.nn.relu(self.conv1(x_BxHxWx3))
        h = jax.nn.relu(self.conv2(h))
        h = jax.nn.relu(self.hidden(h.mean(axis=(1, 2))))
        return self.out(h)


def make_encoder(name: str, image_size: int, width: int, out_dim: int, rngs: nnx.Rngs) -> nnx.Module:
    """``mlp``: the Gaussian runs' MLP encoder (two ReLU layers of ``width`` on the flattened RGB image);
    ``cnn``: :class:`CNNEncoder`."""
    if name not in ENCODERS:
        raise ValueError(f"mnist.encoder={name!r}; expected one of {ENCODERS}")
    if name == "cnn":
        return CNNEncoder(image_size, width, out_dim, rngs)
    mlp = MLP(h=out_dim, width=width, depth=2, activation="relu", init_scale=1.0)
    return mlp(image_size * image_size * 3, rngs)


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
    return clip_loss(l2_normalize(image_BxD), l2_normalize(text_BxD), jnp.exp(log_scale))


def zero_shot_class_embeddings(caption_KkxE, k: int, n_colours: int):
    """Class y's embedding: the normalised mean over colours of the normalised caption embeddings."""
    per_caption = l2_normalize(caption_KkxE).reshape(k, n_colours, -1)
    return l2_normalize(per_caption.mean(axis=1))


# ---------------------------------------------------------------- the three models


class Contrastive(nnx.Module):
    """(a) image encoder with k+K outputs scored against the fixed one-hot text encoder."""

    def __init__(self, encoder: str, image_size: int, width: int, k: int, rngs: nnx.Rngs):
        self.k, self.n_colours = k, k
        self.image = make_encoder(encoder, image_size, width, k + self.n_colours, rngs)

    def loss(self, x, y, c):
        return contrastive_onehot_loss(self.image(x), y, c, self.k, self.n_colours)

    def scores(self, x):
        classes = zero_shot_class_embeddings(perfect_text_embeddings(self.k, self.n_colours), self.k, self.k)
        return self.image(x) @ classes.T


class TextTower(nnx.Module):
    """Caption (y, c) -> sum of learned object and colour embeddings -> ReLU layer -> embed_dim."""

    def __init__(self, k: int, n_colours: int, width: int, embed_dim: int, rngs: nnx.Rngs):
        self.obj = nnx.Embed(k, width, rngs=rngs)
        self.colour = nnx.Embed(n_colours, width, rngs=rngs)
        self.out = nnx.Linear(width, embed_dim, rngs=rngs)

    def __call__(self, y_B, c_B):
        return self.out(jax.nn.relu(self.obj(y_B) + self.colour(c_B)))


class TwoTower(nnx.Module):
    """(b) learned image and text towers, CLIP's learned temperature initialised at 1/0.07."""

    def __init__(self, encoder: str, image_size: int, width: int, k: int, embed_dim: int, rngs: nnx.Rngs):
        self.k, self.n_colours = k, k
        self.image = make_encoder(encoder, image_size, width, embed_dim, rngs)
        self.text = TextTower(k, self.n_colours, width, embed_dim, rngs)
        self.log_scale = nnx.Param(jnp.log(1.0 / 0.07))

    def loss(self, x, y, c):
        return two_tower_loss(self.image(x), self.text(y, c), self.log_scale[...])

    def scores(self, x):
        y_C = jnp.repeat(jnp.arange(self.k), self.n_colours)
        c_C = jnp.tile(jnp.arange(self.n_colours), self.k)
        classes = zero_shot_class_embeddings(self.text(y_C, c_C), self.k, self.n_colours)
        return l2_normalize(self.image(x)) @ classes.T


class Supervised(nnx.Module):
    """(c) image encoder with a k-way head trained by cross-entropy."""

    def __init__(self, encoder: str, image_size: int, width: int, k: int, rngs: nnx.Rngs):
        self.image = make_encoder(encoder, image_size, width, k, rngs)

    def loss(self, x, y, c):
        del c  # the colour is not supervised
        return optax.softmax_cross_entropy_with_integer_labels(self.image(x), y).mean()

    def scores(self, x):
        return self.image(x)


def make_model(objective: str, encoder: str, image_size: int, width: int, k: int, embed_dim: int, rngs):
    if objective == "contrastive":
        return Contrastive(encoder, image_size, width, k, rngs)
    if objective == "two_tower":
        return TwoTower(encoder, image_size, width, k, embed_dim, rngs)
    if objective == "supervised":
        return Supervised(encoder, image_size, width, k, rngs)
    raise ValueError(f"mnist.objective={objective!r}; expected one of {OBJECTIVES}")
