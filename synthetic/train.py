"""The compiled training program: data, model, optimiser and evaluation of every seed inside one jit.

:func:`run_seeds` is the entry point: the step loop is a ``jax.lax.scan`` under ``jit``, vmapped over seeds,
and the seed axis is sharded over the local devices when there are several. A :class:`Spec` holds the
static part of a run (shapes, component classes: one compilation each); the components' traced
hyperparameters and the learning rate travel as ``hp`` (:func:`split`), so a sweep over p_spu, rho or lr
reuses one compiled program. The per-seed part of the loop is a :class:`Loop` of four functions
(:func:`loop_of`): the Gaussian data models' are this module's (sampled here); a data model that holds its
own data (MultiColoredMNIST's digits, synthetic.mnist.data) brings its own as methods of the same names,
``new_model``, ``setup``, ``get_batch`` and ``evaluate``. Progress (compile, then
steps) is printed from a host callback every 1% of the steps, so the whole run stays one program.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from synthetic import data as D
from synthetic.config import OPTIMIZERS, SCHEDULES, EvalConfig, GaussianRunConfig, MNISTRunConfig, TrainConfig
from synthetic.data import DataModel
from synthetic.encoders import Encoder
from synthetic.objectives import DualEncoder, Objective
from theory.runrecord import in_thread


@dataclasses.dataclass(frozen=True)
class Spec:
    """The static part of a run (traced fields blanked): it keys the compilation."""

    data: DataModel  # or a data model that holds its own data (module docstring)
    encoder: Encoder
    objective: Objective
    train: TrainConfig
    eval: EvalConfig
    progress: bool = True  # host callback reporting steps (off for benchmarks of the bare loop)

    @property
    def batch(self) -> int:
        return self.train.batch_size or self.data.n

    @property
    def epoch_steps(self) -> int:
        """Minibatches per pass over a finite training set (the last n mod batch pairs wait an epoch)."""
        return self.data.n // self.batch if self.data.n else 0


def split(run: GaussianRunConfig | MNISTRunConfig, progress: bool = True) -> tuple[Spec, dict]:
    """(static Spec, traced hyperparameters) of a resolved run (synthetic.config.resolve, resolve_mnist)."""
    hp = {"data": run.data.traced(), "objective": run.objective.traced(), "lr": jnp.float32(run.train.lr)}
    spec = Spec(
        data=run.data.static(),
        encoder=run.encoder,
        objective=run.objective.static(),
        train=dataclasses.replace(run.train, lr=0.0, seed_chunk=0),
        eval=run.eval,
        progress=progress and run.train.progress,
    )
    try:
        hash(spec)
    except TypeError as e:
        raise TypeError(f"components must be frozen dataclasses (hashable): {e}") from None
    return spec, hp


# ---- model, optimiser, one step ----


class Loop(NamedTuple):
    """The per-seed part of a run's loop (:func:`loop_of`); ``fixed`` is whatever ``setup`` returns."""

    new_model: Callable[[jax.Array, Spec], nnx.Module]  # (key, spec)
    setup: Callable[[jax.Array, dict, Spec], tuple[Carry, Any]]  # (key, hp, spec) -> (carry, fixed)
    get_batch: Callable[[jax.Array, Any, dict, Spec], Any]  # (t, fixed, hp, spec) -> step t's batch
    evaluate: Callable[[nnx.State, Any, jax.Array, dict, Spec], dict]  # (params, fixed, losses, hp, spec)


def loop_of(spec: Spec) -> Loop:
    """The Gaussian data models' loop (this module's functions), or the own one of a data model that holds
    its own data: its methods new_model, setup, get_batch and evaluate (synthetic.mnist.data)."""
    d = spec.data
    if isinstance(d, DataModel):
        return GAUSSIAN
    return Loop(d.new_model, d.setup, d.get_batch, d.evaluate)


def _new_model(key: jax.Array, spec: Spec) -> nnx.Module:
    return loop_of(spec).new_model(key, spec)


def _gaussian_model(key: jax.Array, spec: Spec) -> DualEncoder:
    d = spec.data
    return DualEncoder(d.d_image, d.d_text, d.k, spec.encoder, spec.objective, nnx.Rngs(key))


@functools.lru_cache(maxsize=64)
def graphdef(spec: Spec):
    return nnx.split(_new_model(jax.random.key(0), spec))[0]


def init_params(key: jax.Array, spec: Spec) -> nnx.State:
    return nnx.split(_new_model(key, spec))[1]


def build_optimizer(name: str, lr, steps: int, schedule: str = "constant", weight_decay: float = 0.0):
    """optax optimiser ``name`` (one of config.OPTIMIZERS) at ``lr``, constant or cosine-decayed over
    ``steps`` (config.SCHEDULES); shared by the Gaussian runs and MultiColoredMNIST. The names are checked
    in one place, TrainConfig.check, which both kinds run first."""
    lr_t = optax.cosine_decay_schedule(lr, steps) if schedule == "cosine" else lr
    build = {
        "sgd": optax.sgd,
        "adam": optax.adam,
        "adamw": lambda s: optax.adamw(s, weight_decay=weight_decay),
    }
    assert name in build and schedule in SCHEDULES and set(build) == set(OPTIMIZERS), (name, schedule)
    return build[name](lr_t)


def optimizer(spec: Spec, lr: jax.Array) -> optax.GradientTransformation:
    t = spec.train
    return build_optimizer(t.optimizer, lr, t.steps, t.schedule, t.weight_decay)


def loss_fn(params: nnx.State, batch: D.Batch, hp: dict, spec: Spec) -> jax.Array:
    model = nnx.merge(graphdef(spec), params)
    return spec.objective.loss(model, batch, hp["objective"])


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
    shuffle: jax.Array  # uint32 words keying the per-epoch permutations of the training set (epoch_index)


def init_carry(key: jax.Array, hp: dict, spec: Spec) -> Carry:
    params = spec.objective.start(init_params(key, spec), hp["objective"])  # traced initial values
    return Carry(params, optimizer(spec, hp["lr"]).init(params), jnp.int32(-1))


def setup(key: jax.Array, hp: dict, spec: Spec) -> tuple[Carry, Any]:
    """(initial carry, per-seed constants) of one seed (:func:`loop_of`)."""
    return loop_of(spec).setup(key, hp, spec)


def _gaussian_setup(key: jax.Array, hp: dict, spec: Spec) -> tuple[Carry, Fixed]:
    k_world, k_train, k_init, k_steps, k_eval = jax.random.split(key, 5)
    d, hp_d = spec.data, hp["data"]
    world = D.make_world(k_world, d)
    train_set = D.sample(k_train, world, d.n, hp_d["p_spu"], hp_d, d) if d.n else None
    shuffle = jax.random.bits(k_steps, (SHUFFLE_ROUNDS,), jnp.uint32) if spec.epoch_steps else None
    return init_carry(k_init, hp, spec), Fixed(world, train_set, k_steps, k_eval, shuffle)


#: Feistel rounds of the per-epoch permutation (4 already give a pseudo-random permutation, Luby-Rackoff).
SHUFFLE_ROUNDS = 6


def _mix32(x: jax.Array) -> jax.Array:
    """A 32-bit integer hash (lowbias32: xor-shift-multiply), bijective on uint32."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def epoch_index(words: jax.Array, epoch: jax.Array, i: jax.Array, n: int) -> jax.Array:
    """Position(s) ``i`` of a pseudo-random permutation of range(n) keyed by (``words``, ``epoch``).

    A balanced Feistel network on the smallest even number of bits covering n, with cycle walking (values
    >= n are permuted again until they fall below n): a bijection of range(n) computed per index, so a
    step draws its minibatch in O(batch) without sorting n keys. The same construction as TensorFlow's
    stateless ``index_shuffle`` (used by grain); each epoch gets its own round keys.
    """
    half = max(1, (max(n - 1, 1).bit_length() + 1) // 2)
    mask = jnp.uint32((1 << half) - 1)
    keys = _mix32(words ^ _mix32(jnp.asarray(epoch).astype(jnp.uint32) + jnp.uint32(0x9E3779B9)))

    def permute(x):
        left, right = x >> half, x & mask
        for r in range(SHUFFLE_ROUNDS):
            left, right = right, left ^ (_mix32(right ^ keys[r]) & mask)
        return (left << half) | right

    x = permute(jnp.asarray(i).astype(jnp.uint32))
    x = jax.lax.while_loop(lambda x: jnp.any(x >= n), lambda x: jnp.where(x >= n, permute(x), x), x)
    return x.astype(jnp.int32)


def get_batch(t: jax.Array, fixed: Any, hp: dict, spec: Spec) -> Any:
    """Step t's batch (:func:`loop_of`)."""
    return loop_of(spec).get_batch(t, fixed, hp, spec)


def _gaussian_batch(t: jax.Array, fixed: Fixed, hp: dict, spec: Spec) -> D.Batch:
    """The step's batch of a Gaussian data model.

    Fresh samples (data.n = 0): a new draw each step. Full batch: the training set. Minibatches: without
    replacement within an epoch: epoch e = t // (n // batch) visits the training set in the order of its own
    pseudo-random permutation (:func:`epoch_index`), step t takes the next ``batch`` positions of it, so the
    minibatch loss is unbiased for the full-set loss; the last n mod batch positions of an epoch are skipped.
    Each step costs O(batch): no permutation of all n pairs is formed.
    """
    d = spec.data
    if fixed.train_set is None:
        key = jax.random.fold_in(fixed.k_steps, t)
        return D.sample(key, fixed.world, spec.batch, hp["data"]["p_spu"], hp["data"], d)
    if spec.batch == d.n:
        return fixed.train_set
    epoch, pos = t // spec.epoch_steps, t % spec.epoch_steps
    idx = epoch_index(fixed.shuffle, epoch, pos * spec.batch + jnp.arange(spec.batch), d.n)
    ts = fixed.train_set
    # one gather of [x_image | x_text] rows: about twice as fast on CPU as one gather per modality
    rows = jnp.concatenate([ts.x_image, ts.x_text], 1)[idx]
    return D.Batch(rows[:, : d.d_image], rows[:, d.d_image :], ts.y[idx], ts.a[idx])


def step(carry: Carry, t: jax.Array, fixed: Fixed, hp: dict, spec: Spec) -> tuple[Carry, jax.Array]:
    batch = get_batch(t, fixed, hp, spec)
    loss, grads = jax.value_and_grad(loss_fn)(carry.params, batch, hp, spec)
    updates, opt_state = optimizer(spec, hp["lr"]).update(grads, carry.opt_state, carry.params)
    params = spec.objective.constrain(optax.apply_updates(carry.params, updates))
    first_bad = jnp.where((carry.first_bad < 0) & ~jnp.isfinite(loss), t, carry.first_bad)
    return Carry(params, opt_state, first_bad), loss


# ---- evaluation ----


def _accuracy(scores_NxK: jax.Array, y_N: jax.Array) -> jax.Array:
    return jnp.mean(jnp.argmax(scores_NxK, axis=-1) == y_N)


def prompt_inputs(fixed: Fixed, hp: dict, spec: Spec) -> dict[str, jax.Array]:
    """The zero-shot prompts' text inputs by metric suffix: "" (the "class" prompt) and "_prompt_mean";
    none for an objective without a text tower (supervised)."""
    if not spec.objective.TEXT:
        return {}
    d, hp_d = spec.data, hp["data"]
    k_class, k_mean = jax.random.split(jax.random.fold_in(fixed.k_eval, len(D.GROUPS)))
    return {
        "": D.prompts(k_class, fixed.world, "class", hp_d, d),
        "_prompt_mean": D.prompts(k_mean, fixed.world, "mean", hp_d, d),
    }


def evaluate(params: nnx.State, fixed: Fixed, hp: dict, spec: Spec) -> dict[str, jax.Array]:
    """Accuracy on fresh test sets per group, and for linear encoders the learned product in latent coords.

    Two-tower objectives score zero-shot against the "class" prompt (acc_<group>) and the "mean" prompt
    (acc_<group>_prompt_mean); the objective's ``scores`` decides (supervised: its head, acc_<group>).
    """
    model = nnx.merge(graphdef(spec), params)
    objective, d, hp_d = spec.objective, spec.data, hp["data"]
    prompt_x = prompt_inputs(fixed, hp, spec)
    # All groups in one draw (one sampler to compile): row block i has P(a = y) of group i.
    n = spec.eval.n_test
    p_rows = jnp.repeat(jnp.stack([D.group_p_spu(g, hp_d, d.k) for g in D.GROUPS]), n)
    test = D.sample(fixed.k_eval, fixed.world, n * len(D.GROUPS), p_rows, hp_d, d, text=False)
    scores = objective.scores(model, test.x_image, prompt_x)
    out = {}
    for i, group in enumerate(D.GROUPS):
        rows = slice(i * n, (i + 1) * n)
        for suffix, scores_NxK in scores.items():
            out[f"acc_{group}{suffix}"] = _accuracy(scores_NxK[rows], test.y[rows])
    product = objective.latent_product(model, hp["objective"]) if spec.encoder.LINEAR else None
    if product is not None:
        # D_I^T M D_T: comparable to theory's optimum (latent coordinates)
        out["latent_product"] = fixed.world.D_image.T @ product @ fixed.world.D_text
        if spec.eval.empirical_optimum and fixed.train_set is not None:
            out["dist_empirical_optimum"] = _dist_empirical_optimum(product, fixed.train_set, spec)
    return out


def _dist_empirical_optimum(product_DxE: jax.Array, train: D.Batch, spec: Spec) -> jax.Array:
    """||M - M*|| / ||M*|| with M = rho W_I^T W_T and M* the exact minimiser of the finite-sample linearised
    loss at rank <= h: the rank-h truncated SVD of the centred image-text cross-covariance (n - 1 divisor)."""
    n = spec.data.n
    xi = train.x_image - train.x_image.mean(0)
    xt = train.x_text - train.x_text.mean(0)
    u, s, vt = jnp.linalg.svd((xi.T @ xt) / (n - 1), full_matrices=False)
    h = min(spec.encoder.h, s.shape[0])
    best = (u[:, :h] * s[:h]) @ vt[:h]
    return jnp.linalg.norm(product_DxE - best) / jnp.linalg.norm(best)


def _gaussian_evaluate(params: nnx.State, fixed: Fixed, losses: jax.Array, hp: dict, spec: Spec) -> dict:
    return evaluate(params, fixed, hp, spec)  # looked up when called: a metric is a key of evaluate's dict


#: The Gaussian data models' loop: sampled in this module.
GAUSSIAN = Loop(_gaussian_model, _gaussian_setup, _gaussian_batch, _gaussian_evaluate)


# ---- whole runs ----


def curve_steps(steps: int, points: int) -> np.ndarray:
    """The steps at which results.json keeps the loss (``points`` evenly spaced, first and last included)."""
    return np.unique(np.linspace(0, steps - 1, max(points, 2)).round().astype(int))


def curve_index(spec: Spec) -> np.ndarray:
    return curve_steps(spec.train.steps, spec.train.loss_curve_points)


def _finish(carry: Carry, fixed: Any, losses: jax.Array, hp: dict, spec: Spec) -> dict[str, jax.Array]:
    # a data model's metrics may read the per-step losses (MultiColoredMNIST's loss windows)
    out = loop_of(spec).evaluate(carry.params, fixed, losses, hp, spec)
    if spec.train.save:  # the trained parameters leave the program too (synthetic.saved)
        out["params"] = nnx.to_pure_dict(carry.params)
    out["final_loss"] = losses[-1]
    out["loss_curve"] = losses[curve_index(spec)]
    # The last update can overflow after a finite last loss: argmax over NaN scores would still give an
    # accuracy, so non-finite final parameters mark the last step bad too.
    finite = jnp.all(jnp.stack([jnp.isfinite(leaf).all() for leaf in jax.tree.leaves(carry.params)]))
    last_bad = jnp.where(finite, -1, spec.train.steps - 1)
    out["first_bad_step"] = jnp.where(carry.first_bad >= 0, carry.first_bad, last_bad)
    return out


class _Progress:
    """Host side of the progress callback: prints steps once a run has taken more than ~10 s.

    The one piece of host state of the training path, and only a printer: the callback is compiled into
    the program (shared by every run of that Spec), so it reads the label and start of the run in flight
    from here; no number a run returns depends on it."""

    start = 0.0
    last = 0.0
    label = ""

    @classmethod
    def reset(cls, label: str) -> None:
        cls.start = cls.last = time.time()
        cls.label = label

    @classmethod
    def report(cls, t, total) -> None:
        now = time.time()
        done = int(t) + 1
        if now - cls.start > 10 and (now - cls.last > 10 or done == int(total)):
            cls.last = now
            print(
                f"[synthetic] {cls.label}step {done}/{int(total)} ({now - cls.start:.0f} s)",
                file=sys.stderr,
                flush=True,
            )


def run_one(key: jax.Array, hp: dict, spec: Spec) -> dict[str, jax.Array]:
    """One seed, start to finish: setup, scan over steps, evaluate."""
    carry, fixed = setup(key, hp, spec)
    steps = spec.train.steps
    every = max(1, steps // 100)

    def body(c, t):
        if spec.progress:  # t is unbatched, so the callback runs once per report, not once per seed
            jax.lax.cond(
                (t + 1) % every == 0,
                lambda: jax.debug.callback(_Progress.report, t, steps),
                lambda: None,
            )
        return step(c, t, fixed, hp, spec)

    carry, losses = jax.lax.scan(body, carry, jnp.arange(steps))
    return _finish(carry, fixed, losses, hp, spec)


@functools.partial(jax.jit, static_argnames="spec")
def _run_many(keys: jax.Array, hp: dict, spec: Spec) -> dict[str, jax.Array]:
    return jax.vmap(run_one, in_axes=(0, None, None))(keys, hp, spec)


#: PRNG implementation. threefry (JAX's default) draws the same numbers for a key inside or outside vmap;
#: "rbg" does not (under vmap a seed's draws depend on the other keys in the batch, so a seed's result
#: would change with the number of seeds or the chunking). JAX runs threefry on CPU as a rolled loop of
#: kernels; the same hash unrolled in jax.numpy (bit-identical) is ~5x faster alone but slower in the
#: whole step (clip 311 against 253 us a row-step): XLA then fuses the hash into each of its consumers and
#: computes it again in every one.
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


#: XLA options of the compiled run on CPU. LLVM at -O1 instead of the default -O3 halves the compile time
#: (about 10 s -> 5 s per program on 2 cores) and runs these programs as fast: their time goes to
#: XNNPACK/Eigen matmuls and a few large elementwise fusions, which -O1 already vectorises
#: (python -m synthetic.bench).
COMPILER_OPTIONS = {"xla_backend_optimization_level": 1, "xla_cpu_use_fusion_emitters": True}
#: ... and those of a short run (at most SHORT_RUN example-steps a seed: a smoke run, a test): LLVM at -O0
#: without XLA's MLIR fusion emitters compiles about 2x faster and runs its elementwise code 2-5x slower. At
#: the threshold that saves 1.6-2.4 s a program of 5 seeds (InfoNCE, MLP, MNIST k = 10 at 28 x 28); at 8x
#: the threshold MNIST already loses 5 s (benchmarks/compile_options.py, 2 cores).
SHORT_RUN_OPTIONS = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}
SHORT_RUN = 4096


def compiler_options(spec: Spec) -> dict | None:
    """The XLA options ``spec``'s programs compile with (None off CPU: the backend's defaults). A function
    of the Spec alone, so a seed's program does not change with the number of seeds run beside it, and a
    saved model is evaluated as its run was."""
    if jax.default_backend() != "cpu":
        return None
    return SHORT_RUN_OPTIONS if spec.train.steps * spec.batch <= SHORT_RUN else COMPILER_OPTIONS


@functools.lru_cache(maxsize=32)
def compiled_run(spec: Spec, keys: jax.ShapeDtypeStruct, hp_tree, hp_leaves: tuple):
    """The compiled program of ``spec`` for seed keys and ``hp`` of these shapes (and shardings): runs of
    a sweep in one process share it (an lru_cache, not hidden state: ``compiled_run.cache_clear()``)."""
    start = time.time()
    print("[synthetic] compiling ...", file=sys.stderr, flush=True)
    options = compiler_options(spec)
    hp = jax.tree.unflatten(hp_tree, hp_leaves)
    # in a thread too: a SIGINT that lands while XLA compiles would otherwise be raised in a GC callback,
    # where Python ignores it, and Ctrl-C would be lost
    program = in_thread(lambda: _run_many.lower(keys, hp, spec).compile(options))
    print(f"[synthetic] compiled in {time.time() - start:.1f} s", file=sys.stderr, flush=True)
    return program


def _abstract(x, sharding=None) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(jnp.shape(x), jnp.asarray(x).dtype, sharding=sharding)


def run_seeds(
    spec: Spec, hp: dict, keys: jax.Array, label: str = ""
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Run every seed in ``keys`` (compiled whole, vmapped, sharded over local devices).

    Returns (numpy outputs per seed, timings): ``compile_s`` (0 when the program was already compiled in
    this process) and ``run_s``, measured apart."""
    n_seeds = keys.shape[0]
    sharded, n_devices = _shard_seeds(keys)
    leaves, tree = jax.tree.flatten(hp)
    start = time.time()
    keys_shape = _abstract(sharded, sharded.sharding if n_devices > 1 else None)  # hp: replicated
    program = compiled_run(spec, keys_shape, tree, tuple(map(_abstract, leaves)))
    compiled = time.time()
    _Progress.reset(label)
    out = in_thread(lambda: jax.block_until_ready(program(sharded, hp)))
    timings = {"compile_s": compiled - start, "run_s": time.time() - compiled}
    # a tree: train.save adds the parameters
    return jax.tree.map(lambda v: np.asarray(v)[:n_seeds], out), timings
