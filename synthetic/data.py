"""Data models: JAX samplers for the invariant + spurious model, keyed by PRNG and jit-able.

A data model is a frozen dataclass built from its YAML's ``_target_`` (``conf/synthetic/data/``). Its
fields are its hyperparameters; those named in ``TRACED`` stay traced in the compiled program (a sweep over
them reuses one compilation), the others are static (shapes, code). Two layers:

* the model's :meth:`DataModel.latent` draws labels y, attributes a and the image and caption latents
  z_I, z_T for n pairs at a given P(a = y);
* a per-seed *world* (:func:`make_world`) embeds latents into the two modalities:
  x_M = D_M z_M + xi_M (D_M with orthonormal columns, xi_M ~ N(0, sigma_xi^2 / d_M I)), optionally followed
  for images by a fixed invertible random MLP (:func:`render`).

:class:`GaussianData` is the paper's model (its parameters are those of :class:`theory.GaussianSpuriousModel`,
one definition). A new data model subclasses :class:`DataModel` and overrides ``latent`` (and optionally
``prompts``); see docs/synthetic.md.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

import theory
from synthetic.components import Component, expect
from theory.model import CAPTION_KINDS

#: Test groups, as theory.GROUPS: common a = y, counter a != y, balanced a uniform, id the training mixture.
GROUPS = theory.GROUPS


class Latent(NamedTuple):
    z_image: jax.Array  # (n, r_image)
    z_text: jax.Array  # (n, r_text)
    y: jax.Array  # (n,) int32 class in [0, k)
    a: jax.Array  # (n,) int32 spurious attribute in [0, k)


class Batch(NamedTuple):
    x_image: jax.Array  # (n, d_image)
    x_text: jax.Array  # (n, d_text)
    y: jax.Array  # (n,)
    a: jax.Array  # (n,)


class World(NamedTuple):
    """What is fixed for one seed: the embeddings D_M and the image rendering."""

    D_image: jax.Array  # (d_image, r_image), orthonormal columns
    D_text: jax.Array  # (d_text, r_text)
    render: jax.Array  # (render_depth, d_image, d_image) orthogonal matrices (depth 0: empty)


#: The data model's defaults, from their one definition (theory.GaussianSpuriousModel).
PAPER: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(theory.GaussianSpuriousModel)}


@dataclasses.dataclass(frozen=True)
class DataModel(Component):
    """What every data model has: classes, P(a = y), the observation model and the training-set size.

    Subclasses implement ``latent(key, n, p_spu, hp) -> Latent`` (``hp``: this model's traced fields as
    float32 scalars; ``p_spu`` a scalar or one value per pair, so the test groups can set it) and may
    implement ``prompts(prompt, hp) -> (k, r_text)`` exact prompt latents (else they are estimated).
    """

    TRACED: ClassVar[tuple[str, ...]] = ("p_spu", "sigma_xi")
    KEY: ClassVar[str] = "data"

    p_spu: float = 0.9  # P(a = y) in training (the paper's model has no default: the experiments' point)
    sigma_xi: float = PAPER["sigma_xi"]  # noise scale per modality (per-coordinate variance sigma_xi^2 / d)
    d_image: int = PAPER["d_image"]
    d_text: int = PAPER["d_text"]
    n: int = 1024  # training pairs; 0 = fresh samples every step
    k: int = 2  # classes
    render_depth: int = 0  # layers of the fixed invertible random MLP applied to images (0 = linear data)
    render_slope: float = 0.2  # negative slope of the rendering's leaky ReLU (> 0 keeps it invertible)

    def __post_init__(self):
        expect(isinstance(self.k, int) and self.k >= 2, "data.k", self.k, "an integer number of classes >= 2")
        expect(0 <= self.p_spu <= 1, "data.p_spu", self.p_spu, "a probability in [0, 1]")
        expect(math.isfinite(self.sigma_xi) and self.sigma_xi >= 0, "data.sigma_xi", self.sigma_xi, ">= 0")
        expect(self.n >= 0, "data.n", self.n, "a number of training pairs >= 0 (0 = fresh samples each step)")
        expect(self.render_depth >= 0, "data.render_depth", self.render_depth, "a number of layers >= 0")
        expect(self.render_slope > 0, "data.render_slope", self.render_slope, "a slope > 0 (invertible)")

    def latent(self, key: jax.Array, n: int, p_spu, hp: dict) -> Latent:
        raise NotImplementedError(f"{type(self).__name__} must implement latent(key, n, p_spu, hp)")

    # (prompt, hp) -> (k, r_text) exact prompt latents, or None: estimated from captions
    prompts = None
    PREDICTION: ClassVar[tuple[str, ...]] = ("prompts", "theory_model", "theory_note")  # (Component)

    def theory_model(self, rho: float = 1.0) -> theory.GaussianSpuriousModel | None:
        """The exact theory's model at this point, or None when the theory does not describe this data."""
        return None

    def theory_note(self) -> str | None:
        return f"exact theory: the paper's binary Gaussian model only, not {type(self).__name__}"


def class_codes(k: int) -> jax.Array:
    """Latent code of each class, (k, r): the paper's +-1 for k = 2 (class 0 is y = +1), one-hot for k > 2."""
    return jnp.array([[1.0], [-1.0]]) if k == 2 else jnp.eye(k)


def _codes(y_N: jax.Array, k: int) -> jax.Array:
    """class_codes(k)[y] without a gather (the same values: +-1, one-hot)."""
    return (1.0 - 2.0 * y_N.astype(jnp.float32))[:, None] if k == 2 else jax.nn.one_hot(y_N, k)


@dataclasses.dataclass(frozen=True)
class GaussianData(DataModel):
    """Definition 6.1 (k = 2) and its k-class generalisation; fields as theory.GaussianSpuriousModel.

    y is uniform; a = y with probability p_spu, else uniform over the other k - 1 classes (a = -y when
    k = 2). z_inv = mu_inv c_y + sigma_inv eps, z_spu = mu_spu c_a + sigma_spu eps_spu with class codes c; the
    image latent is z = [z_inv, z_spu], the caption latent [t_inv, B z_spu] with B ~ Bernoulli(caption_q) and
    t_inv = mu_inv c_y + sigma_inv (r eps + sqrt(1 - r^2) eps') (caption_kind "latent", r = caption_fidelity,
    eps' independent; r = 1: t_inv = z_inv, the paper) or t_inv = mu_inv c_y (caption_kind "class").
    """

    TRACED: ClassVar[tuple[str, ...]] = (
        "p_spu",
        "mu_inv",
        "mu_spu",
        "sigma_inv",
        "sigma_spu",
        "sigma_xi",
        "caption_q",
        "caption_fidelity",
        "caption_kind",
    )
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"caption_kind": CAPTION_KINDS}

    mu_inv: float = PAPER["mu_inv"]
    mu_spu: float = PAPER["mu_spu"]
    sigma_inv: float = PAPER["sigma_inv"]
    sigma_spu: float = PAPER["sigma_spu"]
    caption_q: float = PAPER["caption_q"]  # P(caption names the background); 1: the paper, 0: invariant only
    caption_fidelity: float = PAPER["caption_fidelity"]  # r: corr. of the caption's z_inv with the image's
    caption_kind: str = PAPER["caption_kind"]  # "latent" (z_inv at fidelity r) or "class" (mu_inv c_y alone)

    def __post_init__(self):
        super().__post_init__()
        try:  # the one definition of these parameters' valid ranges
            self._model(1.0)
        except ValueError as e:
            raise ValueError(f"data.{e}") from None

    def _model(self, rho: float) -> theory.GaussianSpuriousModel:
        fields = GaussianData.TRACED  # the model's own (a subclass may trace more)
        return theory.GaussianSpuriousModel(
            **{f: getattr(self, f) for f in fields}, d_image=self.d_image, d_text=self.d_text, rho=rho
        )

    def theory_model(self, rho: float = 1.0) -> theory.GaussianSpuriousModel | None:
        return None if self.theory_note() else self._model(rho)

    def theory_note(self) -> str | None:
        if self.k != 2:
            return f"exact theory: the paper's binary model (data.k=2), not k={self.k}"
        if self.render_depth:
            return f"data.render_depth={self.render_depth}: rendered (nonlinear) data is outside the theory"
        return None

    def latent(self, key: jax.Array, n: int, p_spu, hp: dict) -> Latent:
        codes_KxR = class_codes(self.k)
        r = codes_KxR.shape[1]
        # One normal draw for everything (each random call site costs compile time); Phi(normal) is U(0,1).
        eps = jax.random.normal(key, (n, 2 * r + 4))
        eps_Nx2R, u_Nx4 = eps[:, : 2 * r], jax.scipy.special.ndtr(eps[:, 2 * r :])
        y = jnp.minimum(jnp.floor(u_Nx4[:, 0] * self.k), self.k - 1).astype(jnp.int32)
        shift = 1 + jnp.minimum(jnp.floor(u_Nx4[:, 2] * (self.k - 1)), self.k - 2).astype(jnp.int32)
        a = jnp.where(u_Nx4[:, 1] < p_spu, y, (y + shift) % self.k)
        z_inv_NxR = hp["mu_inv"] * _codes(y, self.k) + hp["sigma_inv"] * eps_Nx2R[:, :r]
        z_spu_NxR = hp["mu_spu"] * _codes(a, self.k) + hp["sigma_spu"] * eps_Nx2R[:, r:]
        named_Nx1 = (u_Nx4[:, 3:] < hp["caption_q"]).astype(jnp.float32)
        z_image = jnp.concatenate([z_inv_NxR, z_spu_NxR], axis=1)
        r_fid = hp["caption_fidelity"]

        def deviation():
            other_NxR = jax.random.normal(jax.random.fold_in(key, 1), (n, r))  # eps' (own draw)
            return (r_fid - 1) * eps_Nx2R[:, :r] + jnp.sqrt(jnp.maximum(1 - r_fid**2, 0.0)) * other_NxR

        # r = 1 needs no eps' (its weight is 0; class captions keep r = 1): a real branch where
        # caption_fidelity is one value for the whole program, as data.embed's noise
        dev_NxR = jax.lax.cond(r_fid == 1, lambda: jnp.zeros((n, r)), deviation)
        # latent captions written as z_inv + (...) so that r = 1 gives z_inv bit for bit (the paper's); the
        # kind is traced (CHOICES), so a sweep over it is one program: a select, exact for either kind
        t_inv_NxR = jnp.where(
            hp["caption_kind"] == CAPTION_KINDS.index("class"),
            hp["mu_inv"] * _codes(y, self.k),
            z_inv_NxR + hp["sigma_inv"] * dev_NxR,
        )
        z_text = jnp.concatenate([t_inv_NxR, named_Nx1 * z_spu_NxR], axis=1)
        return Latent(z_image, z_text, y, a)

    def prompts(self, prompt: str, hp: dict) -> jax.Array:  # type: ignore[override]  # base: None
        """Exact prompt latents e_c (k, r_text) as theory.prompt_latent: "class" [c_y, 0], "mean" E[z_T|y]."""
        codes_KxR = class_codes(self.k)
        if prompt == "class":
            return jnp.concatenate([codes_KxR, jnp.zeros_like(codes_KxR)], axis=1)
        expect(prompt == "mean", "prompt", prompt, f"one of {list(theory.PROMPTS)}")
        p = hp["p_spu"]
        others_KxR = (codes_KxR.sum(0, keepdims=True) - codes_KxR) / (self.k - 1)  # mean code of the others
        spu_KxR = hp["caption_q"] * hp["mu_spu"] * (p * codes_KxR + (1 - p) * others_KxR)
        return jnp.concatenate([hp["mu_inv"] * codes_KxR, spu_KxR], axis=1)


def latent_dims(data: DataModel) -> tuple[int, int]:
    """(r_image, r_text) of the latent model, found by tracing it (no sampling)."""
    hp = {f: jnp.float32(0.5) for f in data.TRACED}
    lat = jax.eval_shape(lambda key: data.latent(key, 2, 0.5, hp), jax.random.key(0))
    return lat.z_image.shape[1], lat.z_text.shape[1]


def orthonormal(g_DxR: jax.Array) -> jax.Array:
    """Orthonormal columns from a Gaussian matrix (QR with the signs fixed, so Haar distributed)."""
    q, rr = jnp.linalg.qr(g_DxR)
    return q * jnp.sign(jnp.diagonal(rr))


def check_dims(data: DataModel) -> None:
    r_image, r_text = latent_dims(data)
    for name, d, r in (("data.d_image", data.d_image, r_image), ("data.d_text", data.d_text, r_text)):
        expect(d >= r, name, d, f"at least the latent dimension {r}")


def make_world(key: jax.Array, data: DataModel) -> World:
    """D_image, D_text (orthonormal columns, QR of Gaussian matrices), the rendering's orthogonal layers."""
    r_image, r_text = latent_dims(data)
    d, L = data.d_image, data.render_depth
    sizes = (d * r_image, data.d_text * r_text, L * d * d)
    g = jax.random.normal(key, (sum(sizes),))  # one draw, sliced (one random call site to compile)
    g_image, g_text, g_render = jnp.split(g, [sizes[0], sizes[0] + sizes[1]])
    return World(
        orthonormal(g_image.reshape(d, r_image)),
        orthonormal(g_text.reshape(data.d_text, r_text)),
        jax.vmap(orthonormal)(g_render.reshape(L, d, d)),
    )


def render(x_NxD: jax.Array, render_LxDxD: jax.Array, slope: float) -> jax.Array:
    """Fixed invertible random MLP: x <- leaky_relu(x Q_l) per layer (Q_l orthogonal, slope > 0)."""
    for layer in range(render_LxDxD.shape[0]):
        x_NxD = jax.nn.leaky_relu(x_NxD @ render_LxDxD[layer], slope)
    return x_NxD


def embed(key: jax.Array, lat: Latent, world: World, hp: dict, data: DataModel, text: bool = True) -> Batch:
    """Latents -> observations (noise, then the image rendering); ``text=False``: images only."""
    d_text = data.d_text if text else 0
    shape = (lat.y.shape[0], data.d_image + d_text)
    # Noise-free data (sigma_xi = 0, the captions map) skips the draw, most of a step's random numbers;
    # the same observations bit for bit (x + 0 * eps = x). A real branch when sigma_xi is one value for
    # the whole program (a run's seeds, a batched group whose jobs share it); under a batched sigma_xi
    # both sides run.
    eps = jax.lax.cond(hp["sigma_xi"] == 0, lambda: jnp.zeros(shape), lambda: jax.random.normal(key, shape))
    xi_image = hp["sigma_xi"] / jnp.sqrt(data.d_image) * eps[:, : data.d_image]
    x_image = render(lat.z_image @ world.D_image.T + xi_image, world.render, data.render_slope)
    if not text:
        return Batch(x_image, None, lat.y, lat.a)
    xi_text = hp["sigma_xi"] / jnp.sqrt(data.d_text) * eps[:, data.d_image :]
    return Batch(x_image, lat.z_text @ world.D_text.T + xi_text, lat.y, lat.a)


def sample(
    key: jax.Array, world: World, n: int, p_spu, hp: dict, data: DataModel, text: bool = True
) -> Batch:
    """n fresh pairs with P(a = y) = p_spu (a scalar, or one value per pair); images only if not ``text``."""
    k_lat, k_noise = jax.random.split(key)
    return embed(k_noise, data.latent(k_lat, n, p_spu, hp), world, hp, data, text)


def group_p_spu(group: str, hp: dict, k: int):
    """P(a = y) that defines a test group."""
    table = {"common": 1.0, "counter": 0.0, "balanced": 1.0 / k, "id": hp["p_spu"]}
    expect(group in table, "group", group, f"one of {list(GROUPS)}")
    return table[group]


def prompt_latents(key: jax.Array, prompt: str, hp: dict, data: DataModel) -> jax.Array:
    """(k, r_text) latents of the class prompts: exact where the model provides them, else estimated from
    20000 captions ("mean": class means; "class": class means of captions drawn with caption_q = 0 when the
    model has that field, i.e. captions that never name the background)."""
    if data.prompts is not None:
        return data.prompts(prompt, hp)
    hp = hp if prompt == "mean" or "caption_q" not in hp else {**hp, "caption_q": jnp.float32(0.0)}
    lat = data.latent(key, 20000, hp["p_spu"], hp)
    onehot_NxK = jax.nn.one_hot(lat.y, data.k)
    return (onehot_NxK.T @ lat.z_text) / jnp.maximum(onehot_NxK.sum(0), 1.0)[:, None]


def prompts(key: jax.Array, world: World, prompt: str, hp: dict, data: DataModel) -> jax.Array:
    """(k, d_text) noise-free text observations of the class prompts: D_T e_c."""
    return prompt_latents(key, prompt, hp, data) @ world.D_text.T
