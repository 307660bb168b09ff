"""One MultiColoredMNIST run: build the data, train all seeds at once (vmapped), evaluate on ID, Rand, Rev."""

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from omegaconf import OmegaConf

from synthetic.components import expect
from synthetic.config import TrainConfig
from synthetic.mnist import config as C
from synthetic.mnist import data, digits, models
from synthetic.results import body, convergence
from synthetic.train import build_optimizer, curve_steps, seed_keys

METRICS = ("acc_id", "acc_rand", "acc_rev", "loss_final")
TEST_SETS = ("id", "rand", "rev")
OFFLINE_N_TEST = 5000


def validate(mc) -> None:
    """Stop on a bad ``mnist.*`` value, naming it and what was expected (the one helper, ``expect``)."""
    expect(2 <= mc.k <= 10, "mnist.k", mc.k, "2..10 classes")
    for name in ("p_inv", "p_spu", "p_rev"):
        expect(0.0 <= getattr(mc, name) <= 1.0, f"mnist.{name}", getattr(mc, name), "a probability in [0, 1]")
    expect(0 <= mc.coupled <= mc.k, "mnist.coupled", mc.coupled, f"0..k={mc.k}")
    for name, allowed in (
        ("image_size", C.IMAGE_SIZES),
        ("source", C.SOURCES),
        ("objective", C.OBJECTIVES),
        ("encoder", C.ENCODERS),
    ):
        expect(getattr(mc, name) in allowed, f"mnist.{name}", getattr(mc, name), f"one of {list(allowed)}")
    data.validate(mc)
    for name in ("n", "n_test"):
        value = getattr(mc, name)
        expect(value is None or value >= 1, f"mnist.{name}", value, "a positive count or null")


def _pool(images_NxHxW: np.ndarray, size: int) -> np.ndarray:
    if size == images_NxHxW.shape[1]:
        return images_NxHxW
    f = images_NxHxW.shape[1] // size
    pooled = images_NxHxW.reshape(len(images_NxHxW), size, f, size, f).mean(axis=(2, 4))
    return np.round(pooled).astype(np.uint8)


@functools.lru_cache(maxsize=4)
def load_split(source: str, root: str | None, k: int, n: int | None, split: str, data_seed: int, size: int):
    """Grey digits (uint8 N x size x size) and digit shapes (int32 N) of digits < k for one split."""
    if source == "idx":
        images, labels = digits.load_idx(root, split)
        if split == "train":
            images, labels = images[: digits.MNIST_TRAIN_PREFIX], labels[: digits.MNIST_TRAIN_PREFIX]
        keep = labels < k
        images, labels = images[keep], labels[keep]
        if n is not None:
            if n > len(labels):
                raise ValueError(f"mnist.n={n} but MNIST {split} has only {len(labels)} digits < {k}")
            images, labels = images[:n], labels[:n]
    else:
        count = n if n is not None else (digits.PAPER_N[k] if split == "train" else OFFLINE_N_TEST)
        split_id = {"train": 0, "test": 1}[split]
        if source == "sklearn":
            images, labels = digits.sklearn_digits(count, k, seed=(data_seed, split_id), split=split)
        else:
            images, labels = digits.render_digits(count, k, seed=(data_seed, split_id))
    return _pool(images, size), labels


def _train_n(mc) -> int | None:
    if mc.n is not None or mc.source == "idx":
        return mc.n
    if mc.k not in digits.PAPER_N:
        raise ValueError(f"mnist.n=null needs k in {sorted(digits.PAPER_N)} (the paper's grid); got k={mc.k}")
    return digits.PAPER_N[mc.k]


class MNISTSpec(NamedTuple):
    """The static (shape- and graph-determining) settings of a run: one compilation per distinct
    MNISTSpec (the Gaussian runs' counterpart is synthetic.train.Spec).

    The probabilities and the learning rate are traced instead (``hyper``), so the cells of a sweep that
    share k and the objective share one compiled program.
    """

    k: int
    coupled: int
    objective: str
    encoder: str
    image_size: int
    width: int
    embed_dim: int
    eval_batch: int
    steps: int
    batch_size: int
    optimizer: str
    schedule: str
    weight_decay: float
    test_shifts: tuple[int, ...] = (0, 0, 0)  # colour shift of the ID, Rand, Rev laws (data.colour_law)


def train_eval(key, hyper, train_grey, train_digit, test_grey, test_digit, spec: MNISTSpec):
    """One seed: sample labels/colours, train ``spec.steps`` minibatch steps, evaluate on ID, Rand, Rev.

    ``hyper`` = (p_inv, p_spu of the ID, Rand and Rev sets, lr) as an array; the ID value is the training
    p_spu. Returns (losses (steps,), {acc_<set>: ()}).
    """
    p_inv, p_spu, test_p, lr = hyper[0], hyper[1], hyper[1:4], hyper[4]
    k, palette_Kx3 = spec.k, jnp.asarray(data.PALETTE[: spec.k])
    optimizer = build_optimizer(spec.optimizer, lr, spec.steps, spec.schedule, spec.weight_decay)
    k_data, k_init, k_steps, k_test = jax.random.split(key, 4)
    y_N, c_N = data.sample_labels_colours(k_data, train_digit, k, p_inv, p_spu, spec.coupled)
    model = models.make_model(
        spec.objective, spec.encoder, spec.image_size, spec.width, k, spec.embed_dim, nnx.Rngs(k_init)
    )
    graphdef, params = nnx.split(model)

    def loss_fn(params, x, y, c):
        return nnx.merge(graphdef, params).loss(x, y, c)

    def step(carry, k_step):
        params, opt_state = carry
        idx_B = jax.random.randint(k_step, (spec.batch_size,), 0, y_N.shape[0])
        x_B = data.colourise(train_grey[idx_B], c_N[idx_B], palette_Kx3)
        loss, grads = jax.value_and_grad(loss_fn)(params, x_B, y_N[idx_B], c_N[idx_B])
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    init = (params, optimizer.init(params))
    (params, _), losses = jax.lax.scan(step, init, jax.random.split(k_steps, spec.steps))
    model = nnx.merge(graphdef, params)

    def predict(grey_c):
        grey, c = grey_c
        return jnp.argmax(model.scores(data.colourise(grey[None], c[None], palette_Kx3))[0])

    # the three test sets share the digits and differ in labels/colours: one pass over all of them
    y_t, c_t = jax.vmap(
        lambda kk, p, s: data.sample_labels_colours(kk, test_digit, k, p_inv, p, spec.coupled, s)
    )(jax.random.split(k_test, len(TEST_SETS)), test_p, jnp.asarray(spec.test_shifts))
    grey_all = jnp.tile(test_grey, (len(TEST_SETS), 1, 1))
    pred = jax.lax.map(predict, (grey_all, c_t.reshape(-1)), batch_size=spec.eval_batch)
    correct = (pred == y_t.reshape(-1)).reshape(len(TEST_SETS), -1).mean(axis=1)
    return losses, {f"acc_{t}": correct[i] for i, t in enumerate(TEST_SETS)}


@functools.partial(jax.jit, static_argnames="spec")
def train_eval_seeds(keys, hyper, train_grey, train_digit, test_grey, test_digit, spec: MNISTSpec):
    """:func:`train_eval` vmapped over the seeds' keys (data and hyper-parameters shared)."""
    one = functools.partial(train_eval, spec=spec)
    return jax.vmap(one, in_axes=(0, None, None, None, None, None))(
        keys, hyper, train_grey, train_digit, test_grey, test_digit
    )


def first_nonfinite_step(losses_SxT: np.ndarray) -> int | None:
    bad = ~np.isfinite(losses_SxT)
    return int(np.argmax(bad.any(axis=0))) if bad.any() else None


def loss_curve(losses_SxT: np.ndarray, points: int) -> dict:
    """The recorded loss curve (the Gaussian runs' extra fields): per seed and the mean of finite seeds."""
    steps = curve_steps(losses_SxT.shape[1], points)
    curve = losses_SxT[:, steps]
    ok = np.isfinite(losses_SxT).all(axis=1)
    return {
        "loss_curve_steps": steps.tolist(),
        "loss_curve_per_seed": curve,
        "loss_curve_mean_ok_seeds": curve[ok].mean(0).tolist() if ok.any() else None,
    }


def check(cfg) -> TrainConfig:
    """Every config value checked before anything loads or compiles (the run record's ``check``);
    returns the checked TrainConfig."""
    validate(cfg.mnist)
    train = (
        cfg.train if isinstance(cfg.train, TrainConfig) else TrainConfig(**OmegaConf.to_container(cfg.train))
    )
    train.check()  # optimizer, schedule, lr ...
    if train.save:
        raise ValueError(
            "train.save=true saves Gaussian runs' models (synthetic.load); MultiColoredMNIST has none"
        )
    seeds, steps, batch_size = int(cfg.seeds), train.steps, train.batch_size
    if seeds < 1 or steps < 1 or batch_size < 1:
        raise ValueError(
            f"seeds={seeds}, train.steps={steps}, train.batch_size={batch_size}; expected all >= 1 "
            "(MultiColoredMNIST trains on minibatches)"
        )
    return train


def run(cfg, on_chunk=None) -> dict:
    """Train ``cfg.seeds`` seeds of ``cfg.mnist.objective`` on MultiColoredMNIST and evaluate them.

    Reads ``cfg.mnist`` (an MNISTConfig), ``cfg.seeds`` (how many), ``cfg.seed`` (base seed; seed i uses
    ``fold_in(key(seed), i)`` like the Gaussian runs) and ``cfg.train`` (steps, batch_size, lr, optimizer,
    schedule, weight_decay). Seed i draws the label noise, the colours, the initialisation and the batches;
    the digit images are shared (MNIST, or the offline digits of ``mnist.data_seed``).

    Returns a results body (:func:`synthetic.results.body`; all seeds run in one program, so ``on_chunk``
    is never called) with metrics ``acc_id``, ``acc_rand``, ``acc_rev``
    (accuracy against the noisy label, as in the paper) and ``loss_final`` (mean loss of the last 10%
    of steps); ``extra`` holds the data sizes and the Bayes-optimal reference accuracies.
    """
    mc = cfg.mnist
    train = check(cfg)
    seeds, steps, batch_size = int(cfg.seeds), train.steps, train.batch_size
    train_grey, train_digit = load_split(
        mc.source, mc.root, mc.k, _train_n(mc), "train", mc.data_seed, mc.image_size
    )
    test_grey, test_digit = load_split(
        mc.source, mc.root, mc.k, mc.n_test, "test", mc.data_seed, mc.image_size
    )

    # (own-colour probability, colour shift) of the ID, Rand and Rev laws under mnist.construction
    laws = [data.colour_law(t, mc.k, mc.p_spu, mc.p_rev, mc.construction) for t in TEST_SETS]
    spec = MNISTSpec(
        k=mc.k,
        coupled=data.coupled_classes(mc.k, mc.coupled, mc.construction),
        objective=mc.objective,
        encoder=mc.encoder,
        image_size=mc.image_size,
        width=mc.width,
        embed_dim=mc.embed_dim,
        eval_batch=mc.eval_batch,
        steps=steps,
        batch_size=batch_size,
        optimizer=train.optimizer,
        schedule=train.schedule,
        weight_decay=float(train.weight_decay),
        test_shifts=tuple(shift for _, shift in laws),
    )
    test_p = [q for q, _ in laws]
    hyper = jnp.array([mc.p_inv, *test_p, train.lr], jnp.float32)
    keys = seed_keys(int(cfg.seed), 0, seeds)
    losses, accs = train_eval_seeds(keys, hyper, train_grey, train_digit, test_grey, test_digit, spec)
    losses = np.asarray(losses)

    tail = max(1, math.ceil(0.1 * steps))
    per_seed = {name: np.asarray(v).astype(float).tolist() for name, v in accs.items()}
    per_seed["loss_final"] = losses[:, -tail:].mean(axis=1).astype(float).tolist()
    diverged = first_nonfinite_step(losses)
    bayes = data.bayes_reference(mc.k, mc.p_inv, mc.p_spu, mc.p_rev, mc.coupled, mc.construction)
    extra = {
        "n_train": len(train_digit),
        "n_test": len(test_digit),
        "bayes": bayes,
        "shape_only_accuracy": mc.p_inv,
        "palette": list(data.PALETTE_NAMES[: mc.k]),
        **loss_curve(losses, train.loss_curve_points),
    }
    finite = np.isfinite(losses).all(axis=1)
    # 100 window means over all steps: the per-step minibatch losses are noisy
    curves = np.stack([w.mean(axis=1) for w in np.array_split(losses[finite], min(100, steps), axis=1)], 1)
    converge = convergence(curves, {m: per_seed[m] for m in METRICS}, len(test_digit))
    return body({m: per_seed[m] for m in METRICS}, diverged, extra, converge=converge)
