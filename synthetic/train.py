"""One compiled training run per seed: data, model, optimiser and evaluation inside one jit.

:func:`run_seeds` is the entry point: the step loop is a ``jax.lax.scan`` under ``jit``, vmapped over seeds,
and the seed axis is sharded over the local devices when there are several. The config is split into a
static :class:`Spec` (shapes, names: one compilation each) and traced hyperparameters (the data model's
fields, rho and lr), so a sweep over p_spu or lr reuses one compiled program.
:func:`python_loop_run` is the same computation driven by a Python loop over a jitted step (benchmarks).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from omegaconf import DictConfig, OmegaConf

import theory
from synthetic import data as D
from synthetic.config import (
    DataConfig,
    EncoderConfig,
    EvalConfig,
    ObjectiveConfig,
    SyntheticConfig,
    TrainConfig,
)
from synthetic.objectives import DualEncoder, get_objective

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine")


@dataclasses.dataclass(frozen=True)
class Spec:
    """The static part of a config: everything that changes shapes or code (traced fields zeroed)."""

    data: DataConfig
    encoder: EncoderConfig
    objective: ObjectiveConfig
    train: TrainConfig
    eval: EvalConfig

    @property
    def batch(self) -> int:
        return self.train.batch_size or self.data.n

    @property
    def linear_clip_on_linear(self) -> bool:
        return self.objective.name == "linear_clip" and self.encoder.name == "linear"


def as_config(cfg: SyntheticConfig | DictConfig) -> SyntheticConfig:
    if isinstance(cfg, SyntheticConfig):
        return cfg
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SyntheticConfig), cfg))


def data_model(cfg: SyntheticConfig) -> theory.GaussianSpuriousModel:
    """The theory model for this config (validates every data field and rho)."""
    d = cfg.data
    return theory.GaussianSpuriousModel(
        p_spu=d.p_spu,
        mu_inv=d.mu_inv,
        mu_spu=d.mu_spu,
        sigma_inv=d.sigma_inv,
        sigma_spu=d.sigma_spu,
        sigma_xi=d.sigma_xi,
        d_image=d.d_image,
        d_text=d.d_text,
        rho=cfg.objective.rho,
        caption_q=d.caption_q,
    )


def _expect(ok: bool, key: str, value, expected: str) -> None:
    if not ok:
        raise ValueError(f"{key}={value!r}: expected {expected}")


def split_config(cfg: SyntheticConfig | DictConfig) -> tuple[Spec, dict[str, jax.Array]]:
    """Validate a config and split it into (static Spec, traced hyperparameters)."""
    cfg = as_config(cfg)
    hp = D.hyperparams(data_model(cfg))
    d, t, e = cfg.data, cfg.train, cfg.encoder
    D.get_data_model(d.name)
    objective = get_objective(cfg.objective.name)
    _expect(d.n >= 0, "data.n", d.n, "a number of training pairs >= 0 (0 = fresh samples each step)")
    _expect(d.render_depth >= 0, "data.render_depth", d.render_depth, "a number of layers >= 0")
    _expect(d.render_slope > 0, "data.render_slope", d.render_slope, "a slope > 0 (invertible rendering)")
    _expect(t.steps >= 1, "train.steps", t.steps, "at least 1 step")
    _expect(t.lr > 0, "train.lr", t.lr, "a learning rate > 0")
    _expect(t.optimizer in OPTIMIZERS, "train.optimizer", t.optimizer, f"one of {list(OPTIMIZERS)}")
    _expect(t.schedule in SCHEDULES, "train.schedule", t.schedule, f"one of {list(SCHEDULES)}")
    _expect(t.batch_size >= 0, "train.batch_size", t.batch_size, "a batch size >= 0 (0 = full training set)")
    _expect(
        d.n > 0 or t.batch_size > 0, "train.batch_size", t.batch_size, "> 0 when data.n = 0 (fresh samples)"
    )
    _expect(d.n == 0 or t.batch_size <= d.n, "train.batch_size", t.batch_size, f"<= data.n = {d.n}")
    _expect(
        (t.batch_size or d.n) >= 2 or not objective.text,
        "train.batch_size",
        t.batch_size,
        ">= 2 for contrastive",
    )
    _expect(cfg.eval.n_test >= 1, "eval.n_test", cfg.eval.n_test, "a test-set size >= 1")
    o = cfg.objective
    if o.name in ("clip", "siglip"):  # both clamp their log-scale to [0, log(logit_scale_max)]
        _expect(o.logit_scale_max >= 1, "objective.logit_scale_max", o.logit_scale_max, "a scale >= 1")
        key = "logit_scale_init" if o.name == "clip" else "siglip_t_init"
        _expect(
            0 <= getattr(o, key) <= np.log(o.logit_scale_max),
            f"objective.{key}",
            getattr(o, key),
            f"a log-scale in [0, log(objective.logit_scale_max)] = [0, {np.log(o.logit_scale_max):.4g}]",
        )
    if o.name == "linear_clip":
        _expect(
            e.name == "linear", "encoder", e.name, "linear: objective=linear_clip penalises ||W_I^T W_T||"
        )
    hp["lr"] = jnp.float32(t.lr)
    spec = Spec(
        data=dataclasses.replace(d, **{f: 0.0 for f in D.DYNAMIC_FIELDS if f != "rho"}),
        encoder=e,
        objective=dataclasses.replace(cfg.objective, rho=0.0),
        train=dataclasses.replace(t, lr=0.0, seed_chunk=0),
        eval=cfg.eval,
    )
    return spec, hp


# ---- model, optimiser, one step ----


def _new_model(key: jax.Array, spec: Spec) -> DualEncoder:
    k = spec.data.k
    return DualEncoder(spec.data.d_image, spec.data.d_text, k, spec.encoder, spec.objective, nnx.Rngs(key))


@functools.lru_cache(maxsize=64)
def graphdef(spec: Spec):
    return nnx.split(_new_model(jax.random.key(0), spec))[0]


def init_params(key: jax.Array, spec: Spec) -> nnx.State:
    return nnx.split(_new_model(key, spec))[1]


def build_optimizer(name: str, lr, steps: int, schedule: str = "constant", weight_decay: float = 0.0):
    """optax optimiser ``name`` (sgd | adam | adamw) at ``lr``, constant or cosine-decayed over ``steps``;
    shared by the Gaussian runs and MultiColoredMNIST."""
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"train.schedule={schedule!r}: expected 'constant' or 'cosine'")
    lr_t = optax.cosine_decay_schedule(lr, steps) if schedule == "cosine" else lr
    if name == "sgd":
        return optax.sgd(lr_t)
    if name == "adam":
        return optax.adam(lr_t)
    if name == "adamw":
        return optax.adamw(lr_t, weight_decay=weight_decay)
    raise ValueError(f"train.optimizer={name!r}: expected sgd, adam or adamw")


def optimizer(spec: Spec, lr: jax.Array) -> optax.GradientTransformation:
    t = spec.train
    return build_optimizer(t.optimizer, lr, t.steps, t.schedule, t.weight_decay)


def loss_fn(params: nnx.State, batch: D.Batch, hp: dict, spec: Spec) -> jax.Array:
    model = nnx.merge(graphdef(spec), params)
    return get_objective(spec.objective.name).loss(model, batch, hp, spec.objective)


class Carry(NamedTuple):
    params: nnx.State
    opt_state: optax.OptState
    first_bad: jax.Array  # first step with a non-finite loss, -1 while finite (see also _finish)


class Fixed(NamedTuple):
    """Per-seed constants of a run."""

    world: D.World
    train_set: D.Batch | None
    k_steps: jax.Array
    k_eval: jax.Array


def setup(key: jax.Array, hp: dict, spec: Spec) -> tuple[Carry, Fixed]:
    k_world, k_train, k_init, k_steps, k_eval = jax.random.split(key, 5)
    world = D.make_world(k_world, spec.data)
    train_set = D.sample(k_train, world, spec.data.n, hp["p_spu"], hp, spec.data) if spec.data.n else None
    params = init_params(k_init, spec)
    opt_state = optimizer(spec, hp["lr"]).init(params)
    return Carry(params, opt_state, jnp.int32(-1)), Fixed(world, train_set, k_steps, k_eval)


def get_batch(key: jax.Array, fixed: Fixed, hp: dict, spec: Spec) -> D.Batch:
    if fixed.train_set is None:
        return D.sample(key, fixed.world, spec.batch, hp["p_spu"], hp, spec.data)
    if spec.batch == spec.data.n:
        return fixed.train_set
    # Without replacement: the minibatch loss is then unbiased for the full-set loss.
    idx = jax.random.choice(key, spec.data.n, (spec.batch,), replace=False)
    return jax.tree.map(lambda x: x[idx], fixed.train_set)


def step(carry: Carry, t: jax.Array, fixed: Fixed, hp: dict, spec: Spec) -> tuple[Carry, jax.Array]:
    batch = get_batch(jax.random.fold_in(fixed.k_steps, t), fixed, hp, spec)
    loss, grads = jax.value_and_grad(loss_fn)(carry.params, batch, hp, spec)
    updates, opt_state = optimizer(spec, hp["lr"]).update(grads, carry.opt_state, carry.params)
    params = optax.apply_updates(carry.params, updates)
    constrain = get_objective(spec.objective.name).constrain
    if constrain is not None:
        params = constrain(params, spec.objective)
    first_bad = jnp.where((carry.first_bad < 0) & ~jnp.isfinite(loss), t, carry.first_bad)
    return Carry(params, opt_state, first_bad), loss


# ---- evaluation ----


def _accuracy(scores_NxK: jax.Array, y_N: jax.Array) -> jax.Array:
    return jnp.mean(jnp.argmax(scores_NxK, axis=-1) == y_N)


def evaluate(params: nnx.State, fixed: Fixed, hp: dict, spec: Spec) -> dict[str, jax.Array]:
    """Accuracy on fresh test sets per group, and for linear encoders the learned product in latent coords.

    Contrastive objectives: zero-shot, argmax_c g_I(x) . g_T(D_T e_c) with the "class" prompt (acc_<group>)
    and the "mean" prompt (acc_<group>_prompt_mean). Supervised: the head's argmax (acc_<group>).
    """
    model = nnx.merge(graphdef(spec), params)
    objective = get_objective(spec.objective.name)
    out = {}
    if objective.text:
        k_class, k_mean = jax.random.split(jax.random.fold_in(fixed.k_eval, len(D.GROUPS)))
        prompt_emb = {
            "": model.embed_text(D.prompts(k_class, fixed.world, "class", hp, spec.data)),
            "_prompt_mean": model.embed_text(D.prompts(k_mean, fixed.world, "mean", hp, spec.data)),
        }
    # All groups in one draw (one sampler to compile): row block i has P(a = y) of group i.
    n = spec.eval.n_test
    p_rows = jnp.repeat(jnp.stack([D.group_p_spu(g, hp, spec.data.k) for g in D.GROUPS]), n)
    test = D.sample(fixed.k_eval, fixed.world, n * len(D.GROUPS), p_rows, hp, spec.data, text=False)
    e_image = model.embed_image(test.x_image)
    if objective.text:
        scores = {suffix: e_image @ e_prompt_KxH.T for suffix, e_prompt_KxH in prompt_emb.items()}
    else:
        scores = {"": model.extra["head"](e_image)}
    for i, group in enumerate(D.GROUPS):
        rows = slice(i * n, (i + 1) * n)
        for suffix, scores_NxK in scores.items():
            out[f"acc_{group}{suffix}"] = _accuracy(scores_NxK[rows], test.y[rows])
    if spec.encoder.name == "linear" and objective.text:
        w_image, w_text = model.image.matrix(), model.text.matrix()
        # D_I^T (W_I^T W_T) D_T * rho: comparable to theory.clip_optimum (= K in latent coordinates).
        out["latent_product"] = (
            (fixed.world.D_image.T @ w_image.T) @ (w_text @ fixed.world.D_text) * hp["rho"]
        )
        if spec.eval.empirical_optimum and spec.linear_clip_on_linear and fixed.train_set is not None:
            out["dist_empirical_optimum"] = _dist_empirical_optimum(
                w_image.T @ w_text, fixed.train_set, hp, spec
            )
    return out


def _dist_empirical_optimum(m_DxE: jax.Array, train: D.Batch, hp: dict, spec: Spec) -> jax.Array:
    """||M - M*|| / ||M*|| with M* the exact minimiser of the finite-sample linearised loss at rank <= h:
    the rank-h truncated SVD of (n / (n-1)) C_hat / rho (C_hat the centred image-text cross-covariance)."""
    n = spec.data.n
    xi = train.x_image - train.x_image.mean(0)
    xt = train.x_text - train.x_text.mean(0)
    target = (xi.T @ xt) / (n - 1) / hp["rho"]
    u, s, vt = jnp.linalg.svd(target, full_matrices=False)
    h = min(spec.encoder.h, s.shape[0])
    best = (u[:, :h] * s[:h]) @ vt[:h]
    return jnp.linalg.norm(m_DxE - best) / jnp.linalg.norm(best)


# ---- whole runs ----


def _curve_index(spec: Spec) -> np.ndarray:
    return np.unique(
        np.linspace(0, spec.train.steps - 1, max(spec.train.loss_curve_points, 2)).round().astype(int)
    )


def _finish(carry: Carry, fixed: Fixed, losses: jax.Array, hp: dict, spec: Spec) -> dict[str, jax.Array]:
    out = evaluate(carry.params, fixed, hp, spec)
    out["final_loss"] = losses[-1]
    out["loss_curve"] = losses[_curve_index(spec)]
    # The last update can overflow after a finite last loss: argmax over NaN scores would still give an
    # accuracy, so non-finite final parameters mark the last step bad too.
    finite = jnp.all(jnp.stack([jnp.isfinite(leaf).all() for leaf in jax.tree.leaves(carry.params)]))
    last_bad = jnp.where(finite, -1, spec.train.steps - 1)
    out["first_bad_step"] = jnp.where(carry.first_bad >= 0, carry.first_bad, last_bad)
    return out


def run_one(key: jax.Array, hp: dict, spec: Spec) -> dict[str, jax.Array]:
    """One seed, start to finish: setup, scan over steps, evaluate."""
    carry, fixed = setup(key, hp, spec)
    carry, losses = jax.lax.scan(
        lambda c, t: step(c, t, fixed, hp, spec), carry, jnp.arange(spec.train.steps)
    )
    return _finish(carry, fixed, losses, hp, spec)


@functools.partial(jax.jit, static_argnames="spec")
def _run_many(keys: jax.Array, hp: dict, spec: Spec) -> dict[str, jax.Array]:
    return jax.vmap(run_one, in_axes=(0, None, None))(keys, hp, spec)


#: PRNG implementation. threefry (JAX's default) draws the same numbers for a key inside or outside vmap;
#: "rbg" does not (under vmap a seed's draws depend on the other keys in the batch, so a seed's result
#: would change with the number of seeds or the chunking).
PRNG_IMPL = "threefry2x32"


def seed_keys(base_seed: int, start: int, count: int) -> jax.Array:
    """Key of seed i = fold_in(key(base_seed), i): a seed's result does not depend on how many run with it."""
    base = jax.random.key(base_seed, impl=PRNG_IMPL)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(start, start + count))


def _shard_seeds(keys: jax.Array) -> tuple[jax.Array, int]:
    """Pad the seed axis to a multiple of the local device count and shard it; returns (keys, n_devices)."""
    devices = jax.local_devices()
    if len(devices) == 1:
        return keys, 1
    idx = np.arange(keys.shape[0] + (-keys.shape[0]) % len(devices)) % keys.shape[0]
    mesh = Mesh(np.array(devices), ("seed",))
    return jax.device_put(keys[idx], NamedSharding(mesh, PartitionSpec("seed"))), len(devices)


def run_seeds(spec: Spec, hp: dict, keys: jax.Array) -> dict[str, np.ndarray]:
    """Run every seed in ``keys`` (compiled whole, vmapped, sharded over local devices); numpy per seed."""
    n_seeds = keys.shape[0]
    sharded, _ = _shard_seeds(keys)
    out = _run_many(sharded, hp, spec)
    return {name: np.asarray(v)[:n_seeds] for name, v in out.items()}


def python_loop_run(spec: Spec, hp: dict, keys: jax.Array) -> dict[str, np.ndarray]:
    """Same result as :func:`run_seeds`, but a Python loop calls a jitted (vmapped) step each step."""
    carry, fixed = _setup_many(keys, hp, spec)
    losses = []
    for t in range(spec.train.steps):
        carry, loss = _step_many(carry, jnp.int32(t), fixed, hp, spec)
        losses.append(loss)
    out = _finish_many(carry, fixed, jnp.stack(losses, axis=1), hp, spec)
    return {name: np.asarray(v) for name, v in out.items()}


@functools.partial(jax.jit, static_argnames="spec")
def _setup_many(keys, hp, spec):
    return jax.vmap(setup, in_axes=(0, None, None))(keys, hp, spec)


@functools.partial(jax.jit, static_argnames="spec", donate_argnums=0)
def _step_many(carry, t, fixed, hp, spec):
    return jax.vmap(step, in_axes=(0, None, 0, None, None))(carry, t, fixed, hp, spec)


@functools.partial(jax.jit, static_argnames="spec")
def _finish_many(carry, fixed, losses, hp, spec):
    return jax.vmap(_finish, in_axes=(0, 0, 0, None, None))(carry, fixed, losses, hp, spec)
