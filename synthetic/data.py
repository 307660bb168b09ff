"""JAX samplers for the invariant + spurious data model, keyed by PRNG and jit-able.

The parameters come from :class:`theory.GaussianSpuriousModel` (one definition); this module only turns
them into arrays (:func:`hyperparams`) and samples. Two layers:

* a *latent model* (registry :data:`DATA_MODELS`) draws labels y, attributes a and the image and caption
  latents z_I, z_T for n pairs at a given p_spu;
* a per-seed *world* (:func:`make_world`) embeds latents into the two modalities:
  x_M = D_M z_M + xi_M (D_M with orthonormal columns, xi_M ~ N(0, sigma_xi^2 / d_M I)), optionally followed
  for images by a fixed invertible random MLP (:func:`render`).

Adding a data model = one latent function + one entry in :data:`DATA_MODELS` (see docs/synthetic.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

import theory
from synthetic.config import DataConfig

#: Fields of theory.GaussianSpuriousModel that stay traced (a sweep over them reuses one compilation).
DYNAMIC_FIELDS = ("p_spu", "mu_inv", "mu_spu", "sigma_inv", "sigma_spu", "sigma_xi", "caption_q", "rho")

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


def hyperparams(model: theory.GaussianSpuriousModel) -> dict[str, jax.Array]:
    """The model's traced fields as float32 scalars (the model has validated them)."""
    return {f: jnp.asarray(getattr(model, f), jnp.float32) for f in DYNAMIC_FIELDS}


def class_codes(k: int) -> jax.Array:
    """Latent code of each class, (k, r): the paper's +-1 for k = 2 (class 0 is y = +1), one-hot for k > 2."""
    if k < 2:
        raise ValueError(f"data.k={k!r}: expected at least 2 classes")
    return jnp.array([[1.0], [-1.0]]) if k == 2 else jnp.eye(k)


def gaussian_latent(key: jax.Array, n: int, p_spu, hp: dict, cfg: DataConfig) -> Latent:
    """Definition 6.1 (k = 2) and its k-class generalisation.

    y is uniform; a = y with probability p_spu (a scalar or one value per pair), else uniform over the
    other k - 1 classes (a = -y when k = 2). z_inv = mu_inv c_y + sigma_inv eps, z_spu = mu_spu c_a +
    sigma_spu eps' with class codes c; the image latent is z = [z_inv, z_spu] and the caption latent is
    [z_inv, B z_spu] with B ~ Bernoulli(caption_q).
    """
    codes_KxR = class_codes(cfg.k)
    r = codes_KxR.shape[1]
    # One normal draw for everything (each random call site costs XLA compile time); Phi(normal) is uniform.
    eps = jax.random.normal(key, (n, 2 * r + 4))
    eps_Nx2R, u_Nx4 = eps[:, : 2 * r], jax.scipy.special.ndtr(eps[:, 2 * r :])
    y = jnp.minimum(jnp.floor(u_Nx4[:, 0] * cfg.k), cfg.k - 1).astype(jnp.int32)
    shift = 1 + jnp.minimum(jnp.floor(u_Nx4[:, 2] * (cfg.k - 1)), cfg.k - 2).astype(jnp.int32)
    a = jnp.where(u_Nx4[:, 1] < p_spu, y, (y + shift) % cfg.k)
    z_inv_NxR = hp["mu_inv"] * codes_KxR[y] + hp["sigma_inv"] * eps_Nx2R[:, :r]
    z_spu_NxR = hp["mu_spu"] * codes_KxR[a] + hp["sigma_spu"] * eps_Nx2R[:, r:]
    named_Nx1 = (u_Nx4[:, 3:] < hp["caption_q"]).astype(jnp.float32)
    z_image = jnp.concatenate([z_inv_NxR, z_spu_NxR], axis=1)
    z_text = jnp.concatenate([z_inv_NxR, named_Nx1 * z_spu_NxR], axis=1)
    return Latent(z_image, z_text, y, a)


def gaussian_prompts(prompt: str, hp: dict, cfg: DataConfig) -> jax.Array:
    """Exact prompt latents e_c, (k, r_text), as theory.prompt_latent: "class" [c_y, 0]; "mean" E[z_T | y]."""
    codes_KxR = class_codes(cfg.k)
    if prompt == "class":
        return jnp.concatenate([codes_KxR, jnp.zeros_like(codes_KxR)], axis=1)
    if prompt != "mean":
        raise ValueError(f"prompt={prompt!r}: expected one of {list(theory.PROMPTS)}")
    p = hp["p_spu"]
    others_KxR = (codes_KxR.sum(0, keepdims=True) - codes_KxR) / (cfg.k - 1)  # mean code of the other classes
    spu_KxR = hp["caption_q"] * hp["mu_spu"] * (p * codes_KxR + (1 - p) * others_KxR)
    return jnp.concatenate([hp["mu_inv"] * codes_KxR, spu_KxR], axis=1)


class DataModel(NamedTuple):
    """A registered data model.

    latent(key, n, p_spu, hp, cfg) -> Latent draws n pairs (p_spu is given separately so that the test
    groups can set it). prompts(prompt, hp, cfg) -> (k, r_text) exact prompt latents; when None they are
    estimated from 20000 captions: "mean" = class means, "class" = class means of captions drawn with
    caption_q = 0 (captions that never name the background).
    """

    latent: Callable[..., Latent]
    prompts: Callable[..., jax.Array] | None = None


DATA_MODELS: dict[str, DataModel] = {"gaussian": DataModel(gaussian_latent, gaussian_prompts)}


def get_data_model(name: str) -> DataModel:
    if name not in DATA_MODELS:
        raise ValueError(f"data.name={name!r}: expected one of {sorted(DATA_MODELS)}")
    return DATA_MODELS[name]


def latent_dims(cfg: DataConfig) -> tuple[int, int]:
    """(r_image, r_text) of the latent model, found by tracing it (no sampling)."""
    hp = {f: jnp.float32(0.5) for f in DYNAMIC_FIELDS}
    lat = jax.eval_shape(lambda key: get_data_model(cfg.name).latent(key, 2, 0.5, hp, cfg), jax.random.key(0))
    return lat.z_image.shape[1], lat.z_text.shape[1]


def orthonormal(g_DxR: jax.Array) -> jax.Array:
    """Orthonormal columns from a Gaussian matrix (QR with the signs fixed, so Haar distributed)."""
    q, rr = jnp.linalg.qr(g_DxR)
    return q * jnp.sign(jnp.diagonal(rr))


def make_world(key: jax.Array, cfg: DataConfig) -> World:
    """D_image, D_text (orthonormal columns, QR of Gaussian matrices), the rendering's orthogonal layers."""
    r_image, r_text = latent_dims(cfg)
    for name, d, r in (("data.d_image", cfg.d_image, r_image), ("data.d_text", cfg.d_text, r_text)):
        if d < r:
            raise ValueError(f"{name}={d}: expected at least the latent dimension {r}")
    d, L = cfg.d_image, cfg.render_depth
    sizes = (d * r_image, cfg.d_text * r_text, L * d * d)
    g = jax.random.normal(key, (sum(sizes),))  # one draw, sliced (one random call site to compile)
    g_image, g_text, g_render = jnp.split(g, [sizes[0], sizes[0] + sizes[1]])
    return World(
        orthonormal(g_image.reshape(d, r_image)),
        orthonormal(g_text.reshape(cfg.d_text, r_text)),
        jax.vmap(orthonormal)(g_render.reshape(L, d, d)),
    )


def render(x_NxD: jax.Array, render_LxDxD: jax.Array, slope: float) -> jax.Array:
    """Fixed invertible random MLP: x <- leaky_relu(x Q_l) per layer (Q_l orthogonal, slope > 0)."""
    for layer in range(render_LxDxD.shape[0]):
        x_NxD = jax.nn.leaky_relu(x_NxD @ render_LxDxD[layer], slope)
    return x_NxD


def embed(key: jax.Array, lat: Latent, world: World, hp: dict, cfg: DataConfig, text: bool = True) -> Batch:
    """Latents -> observations (noise, then the image rendering); ``text=False``: images only."""
    d_text = cfg.d_text if text else 0
    eps = jax.random.normal(key, (lat.y.shape[0], cfg.d_image + d_text))
    xi_image = hp["sigma_xi"] / jnp.sqrt(cfg.d_image) * eps[:, : cfg.d_image]
    x_image = render(lat.z_image @ world.D_image.T + xi_image, world.render, cfg.render_slope)
    if not text:
        return Batch(x_image, None, lat.y, lat.a)
    xi_text = hp["sigma_xi"] / jnp.sqrt(cfg.d_text) * eps[:, cfg.d_image :]
    return Batch(x_image, lat.z_text @ world.D_text.T + xi_text, lat.y, lat.a)


def sample(
    key: jax.Array, world: World, n: int, p_spu, hp: dict, cfg: DataConfig, text: bool = True
) -> Batch:
    """n fresh pairs with P(a = y) = p_spu (a scalar, or one value per pair); images only if not ``text``."""
    k_lat, k_noise = jax.random.split(key)
    return embed(k_noise, get_data_model(cfg.name).latent(k_lat, n, p_spu, hp, cfg), world, hp, cfg, text)


def group_p_spu(group: str, hp: dict, k: int):
    """P(a = y) that defines a test group."""
    table = {"common": 1.0, "counter": 0.0, "balanced": 1.0 / k, "id": hp["p_spu"]}
    if group not in table:
        raise ValueError(f"group={group!r}: expected one of {list(GROUPS)}")
    return table[group]


def prompt_latents(key: jax.Array, prompt: str, hp: dict, cfg: DataConfig) -> jax.Array:
    """(k, r_text) latents of the class prompts (exact where the model provides them)."""
    model = get_data_model(cfg.name)
    if model.prompts is not None:
        return model.prompts(prompt, hp, cfg)
    hp = hp if prompt == "mean" else {**hp, "caption_q": jnp.float32(0.0)}
    lat = model.latent(key, 20000, hp["p_spu"], hp, cfg)
    onehot_NxK = jax.nn.one_hot(lat.y, cfg.k)
    return (onehot_NxK.T @ lat.z_text) / jnp.maximum(onehot_NxK.sum(0), 1.0)[:, None]


def prompts(key: jax.Array, world: World, prompt: str, hp: dict, cfg: DataConfig) -> jax.Array:
    """(k, d_text) noise-free text observations of the class prompts: D_T e_c."""
    return prompt_latents(key, prompt, hp, cfg) @ world.D_text.T
