"""MultiColoredMNIST: noisy labels, spurious colours, the Rand and Rev test sets, and the Bayes reference.

Generative model for one image with digit shape d in 0..k-1 (paper appendix D.4, SPEC section 1):
  label  y = d with probability p_inv, else uniform over the other k-1 classes (label noise);
  colour c in 0..k-1 (an index into PALETTE[:k]): a *coupled* class y wears its target colour
         t(y) = (y + shift) mod k with probability q, else a colour uniform over the other k-1;
         every other class wears a colour uniform over the k colours.
The digit's strokes are painted in colour c on black. Every set keeps the label noise; the sets differ
only in (q, shift), given by :func:`colour_law` for ``mnist.construction``:

  construction   coupled classes        ID              Rand        Rev
  paper          0..coupled-1 (0, 1)    (p_spu, 0)      (1/k, 0)    (p_rev, 0): own colour p_rev of the time
  all_coupled    all k                  (p_spu, 0)      (1/k, 0)    (1 - p_rev, 1): colour of class y+1 mod k

``(1/k, 0)`` is the uniform colour law, so Rand's colour is independent of the label in both. At k = 2
the two constructions are the same law (``(p_rev, 0)`` and ``(1 - p_rev, 1)`` coincide).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from synthetic import train as T
from synthetic.components import Component, expect
from synthetic.mnist import digits

SOURCES = ("offline", "sklearn", "idx")  # the digit images: font glyphs | load_digits | MNIST IDX files
CONSTRUCTIONS = ("paper", "all_coupled")  # the colour laws of the test sets (module docstring)
IMAGE_SIZES = (28, 14)
OFFLINE_N_TEST = 5000  # test digits per set of the offline and sklearn sources (mnist.n_test: null)

# Colour i is the designated colour of coupled class i; a k-class dataset uses the first k entries.
PALETTE = np.array(
    [
        (1.00, 0.00, 0.00),  # 0 red
        (0.00, 1.00, 0.00),  # 1 green
        (0.00, 0.35, 1.00),  # 2 blue
        (1.00, 1.00, 0.00),  # 3 yellow
        (1.00, 0.00, 1.00),  # 4 magenta
        (0.00, 1.00, 1.00),  # 5 cyan
        (1.00, 0.50, 0.00),  # 6 orange
        (0.55, 0.00, 1.00),  # 7 violet
        (1.00, 1.00, 1.00),  # 8 white
        (0.60, 0.60, 0.60),  # 9 grey
    ],
    np.float32,
)
PALETTE_NAMES = ("red", "green", "blue", "yellow", "magenta", "cyan", "orange", "violet", "white", "grey")


TEST_SETS = ("id", "rand", "rev")
REV_SHIFT = 1  # all_coupled: Rev paints class y in the colour of class (y + REV_SHIFT) mod k


def _check_construction(construction: str) -> None:
    expect(construction in CONSTRUCTIONS, "mnist.construction", construction, f"one of {list(CONSTRUCTIONS)}")


def coupled_classes(k: int, coupled: int = 2, construction: str = "paper") -> int:
    """How many classes (0..n-1) carry a designated colour: ``coupled`` (paper) or all k (all_coupled)."""
    _check_construction(construction)
    return k if construction == "all_coupled" else coupled


def colour_law(
    which: str, k: int, p_spu: float, p_rev: float, construction: str = "paper"
) -> tuple[float, int]:
    """(q, shift) of a set: a coupled class y wears colour (y + shift) mod k w.p. q, else a uniform other."""
    _check_construction(construction)
    rev = (1.0 - p_rev, REV_SHIFT) if construction == "all_coupled" else (p_rev, 0)
    table = {"id": (p_spu, 0), "rand": (1.0 / k, 0), "rev": rev}
    if which not in table:
        raise ValueError(f"test set {which!r}; expected one of {sorted(table)}")
    return table[which]


def test_p_spu(which: str, k: int, p_spu: float, p_rev: float) -> float:
    """The coupled classes' own-colour probability of a test set under the paper's construction."""
    return colour_law(which, k, p_spu, p_rev, "paper")[0]


def _other(key, x_N, k):
    """Uniform over the k-1 values in 0..k-1 other than x."""
    return (x_N + jax.random.randint(key, x_N.shape, 1, k)) % k


def sample_labels_colours(key, digit_N, k: int, p_inv, p_spu, coupled: int = 2, shift=0):
    """Draw (label y, colour c) for each digit shape; jit/vmap friendly (p_inv, p_spu, shift may be traced).

    A coupled class y (< ``coupled``) wears colour (y + shift) mod k with probability ``p_spu``, else a
    colour uniform over the other k-1; the other classes wear a uniform colour.
    """
    k_flip, k_other, k_keep, k_cother, k_free = jax.random.split(key, 5)
    flip_N = jax.random.bernoulli(k_flip, 1.0 - p_inv, digit_N.shape)
    y_N = jnp.where(flip_N, _other(k_other, digit_N, k), digit_N)
    target_N = (y_N + shift) % k
    keep_N = jax.random.bernoulli(k_keep, p_spu, y_N.shape)
    coupled_colour_N = jnp.where(keep_N, target_N, _other(k_cother, target_N, k))
    free_colour_N = jax.random.randint(k_free, y_N.shape, 0, k)
    c_N = jnp.where(y_N < coupled, coupled_colour_N, free_colour_N)
    return y_N.astype(jnp.int32), c_N.astype(jnp.int32)


def colourise(grey_BxHxW, c_B, palette_Kx3):
    """Paint grey-scale digits (uint8) in their colours: float32 (B, H, W, 3) in [0, 1]."""
    grey = grey_BxHxW.astype(jnp.float32) / 255.0
    return grey[..., None] * palette_Kx3[c_B][:, None, None, :]


# ---------------------------------------------------------------- exact reference (numpy)


def joint(k: int, p_inv: float, p_spu: float, coupled: int = 2, shift: int = 0) -> np.ndarray:
    """P(y, d, c) of the generative model as a (k, k, k) array (label, digit shape, colour)."""
    p_d_given_y = np.full((k, k), (1 - p_inv) / (k - 1))
    np.fill_diagonal(p_d_given_y, p_inv)
    p_c_given_y = np.full((k, k), 1.0 / k)
    for y in range(min(coupled, k)):
        p_c_given_y[y] = (1 - p_spu) / (k - 1)
        p_c_given_y[y, (y + shift) % k] = p_spu
    return p_d_given_y[:, :, None] * p_c_given_y[:, None, :] / k


def bayes_accuracy(
    k: int, p_inv: float, p_spu: float, test_p_spu: float, coupled: int = 2, test_shift: int = 0
) -> float:
    """Test accuracy of the rule that is Bayes-optimal for the training law, ties split evenly.

    This is what a learner reading shape and colour perfectly converges to with unlimited data; it
    uses both features, so it is the common target of the supervised and the contrastive objective.
    The test law has own-colour probability ``test_p_spu`` towards colour (y + test_shift) mod k.
    """
    train = joint(k, p_inv, p_spu, coupled)
    test = joint(k, p_inv, test_p_spu, coupled, test_shift)
    acc = 0.0
    for d, c in itertools.product(range(k), range(k)):
        post = train[:, d, c]
        winners = np.flatnonzero(np.isclose(post, post.max(), rtol=1e-12, atol=0.0))
        acc += test[winners, d, c].sum() / len(winners)
    return float(acc)


def bayes_reference(
    k: int, p_inv: float, p_spu: float, p_rev: float, coupled: int = 2, construction: str = "paper"
) -> dict[str, float]:
    """``{"acc_id", "acc_rand", "acc_rev"}`` of the training-law Bayes rule under ``construction``."""
    n_coupled = coupled_classes(k, coupled, construction)
    out = {}
    for which in TEST_SETS:
        q, shift = colour_law(which, k, p_spu, p_rev, construction)
        out[f"acc_{which}"] = bayes_accuracy(k, p_inv, p_spu, q, n_coupled, shift)
    return out


def laws(
    k: int, p_inv: float, p_spu: float, p_rev: float, coupled: int = 2, construction: str = "paper"
) -> dict[str, np.ndarray]:
    """``{"id" | "rand" | "rev": P(y, d, c)}``, the three sets' joints under ``construction``."""
    n_coupled = coupled_classes(k, coupled, construction)
    out = {}
    for which in TEST_SETS:
        q, shift = colour_law(which, k, p_spu, p_rev, construction)
        out[which] = joint(k, p_inv, q, n_coupled, shift)
    return out


# ---------------------------------------------------------------- the worst classifier at a given ID accuracy


def worst_accuracy(
    train_YxDxC: np.ndarray, test_YxDxC: np.ndarray, min_train_accuracy: float
) -> tuple[float, np.ndarray]:
    """The lowest test accuracy of any classifier whose accuracy on the training law is >= a.

    Every classifier of the images is a randomised rule q(y | d, c), since an image depends on its label
    only through its shape d and colour c; both accuracies are linear in q. This solves the linear
    programme  min_q sum P_test q  s.t.  sum P_train q >= a,  q(. | d, c) a distribution, and returns
    (the minimum, a minimising rule q as a (k, k, k) array). Raises if no rule reaches ``a``.
    """
    from scipy.optimize import linprog

    k = train_YxDxC.shape[0]
    if train_YxDxC.shape != (k, k, k) or test_YxDxC.shape != (k, k, k):
        raise ValueError(f"joints of shape {train_YxDxC.shape} and {test_YxDxC.shape}; expected (k, k, k)")
    best = float(train_YxDxC.max(axis=0).sum())
    if min_train_accuracy > best + 1e-12:
        raise ValueError(
            f"min_train_accuracy={min_train_accuracy}; no classifier exceeds the Bayes {best:.6f}"
        )
    a = min(min_train_accuracy, best)
    # variables q[y, d, c] flattened; one equality per (d, c): sum_y q = 1
    a_eq = np.tile(np.eye(k * k), (1, k))
    res = linprog(
        test_YxDxC.reshape(-1),
        A_ub=-train_YxDxC.reshape(1, -1),
        b_ub=[-a + 1e-12],
        A_eq=a_eq,
        b_eq=np.ones(k * k),
        bounds=(0.0, 1.0),
        method="highs",
    )
    if res.status != 0:
        raise RuntimeError(f"linear programme failed: {res.message}")
    return float(res.fun), res.x.reshape(k, k, k)


# ---------------------------------------------------------------- the data component and its training hooks


class ColouredBatch(NamedTuple):
    """A batch of coloured digits: what an objective's ``loss`` receives (synthetic.mnist.models)."""

    x: jax.Array  # (B, H, W, 3) float32 images in [0, 1]
    y: jax.Array  # (B,) int32 labels (noisy: the digit shape with probability p_inv)
    c: jax.Array  # (B,) int32 colours (indices into PALETTE[:k])


class Fixed(NamedTuple):
    """Per-seed constants of a run: the training set's labels and colours, the batch and test keys."""

    y_N: jax.Array
    c_N: jax.Array
    shuffle: jax.Array  # uint32 words keying the per-epoch permutations (synthetic.train.epoch_index)
    k_eval: jax.Array


#: The digit arrays a run holds (host-loaded once, shared by its seeds): they travel in hp["data"].
ARRAYS = ("train_grey", "train_digit", "test_grey", "test_digit")


@dataclasses.dataclass(frozen=True)
class MultiColoredMNIST(Component):
    """The dataset of the module docstring, as the ``mnist`` node of a MultiColoredMNIST run.

    Its digits are loaded on the host (:meth:`load`) and travel into the compiled program with the traced
    probabilities in ``hp["data"]``; each seed then draws its own label noise and colours. It brings its own
    per-seed part of synthetic.train's loop (:meth:`setup`, :meth:`get_batch`, :meth:`evaluate`,
    :meth:`new_model`), which the Gaussian data models leave to synthetic.train.
    """

    TRACED: ClassVar[tuple[str, ...]] = ("p_inv", "p_spu", "p_rev")
    KEY: ClassVar[str] = "mnist"
    #: Where the digits come from: read on the host by :meth:`load` alone, blanked in the compiled run's
    #: Spec (:meth:`for_program`), so runs on other digit sources of the same shapes share one program.
    HOST: ClassVar[tuple[str, ...]] = ("n_test", "source", "root", "data_seed")

    k: int = 2  # number of classes (digits 0..k-1), 2..10
    n: int | None = None  # training samples; None: the paper's count for k (digits.PAPER_N) or all (idx)
    n_test: int | None = None  # per test set; None: every MNIST test digit < k (idx) or 5000 (offline)
    p_inv: float = 0.9  # P(digit shape agrees with the label); the rest is label noise
    p_spu: float = 0.9  # P(a coupled class carries its own colour) in training
    p_rev: float = 0.1  # the same probability in the Rev test set (Rand uses 1/k)
    coupled: int = 2  # classes 0..coupled-1 have a designated colour (the paper: 0 red, 1 green)
    source: str = "offline"  # offline: font glyphs | sklearn: load_digits | idx: MNIST IDX files
    root: str | None = None  # folder with the four MNIST IDX files (source=idx)
    data_seed: int = 0  # seed of the offline digit images (the colours and label noise use the run's seeds)
    image_size: int = 28  # 28, or 14 (2x2 mean pooling, 4x cheaper)
    eval_batch: int = 1000  # images per evaluation chunk
    # "paper": classes 0..coupled-1 coupled, Rev = own colour w.p. p_rev; "all_coupled": every class
    # coupled, Rev = colour of class (y+1) mod k w.p. 1 - p_rev (colour_law; docs/mnist.md)
    construction: str = "paper"

    def __post_init__(self):
        def integer(v):
            return isinstance(v, int) and not isinstance(v, bool)

        expect(integer(self.k) and 2 <= self.k <= 10, "mnist.k", self.k, "2..10 classes")
        for name in ("p_inv", "p_spu", "p_rev"):
            v = getattr(self, name)
            ok = isinstance(v, int | float) and not isinstance(v, bool) and 0.0 <= v <= 1.0
            expect(ok, f"mnist.{name}", v, "a probability in [0, 1]")
        expect(
            integer(self.coupled) and 0 <= self.coupled <= self.k,
            "mnist.coupled",
            self.coupled,
            f"0..k={self.k}",
        )
        for name, allowed in (("image_size", IMAGE_SIZES), ("source", SOURCES)):
            expect(
                getattr(self, name) in allowed,
                f"mnist.{name}",
                getattr(self, name),
                f"one of {list(allowed)}",
            )
        _check_construction(self.construction)
        if self.construction == "all_coupled":
            expect(
                self.coupled in (2, self.k),
                "mnist.coupled",
                self.coupled,
                f"the default 2 or k={self.k} with mnist.construction=all_coupled, which couples every "
                "class (or use mnist.construction=paper)",
            )
        for name in ("n", "n_test"):
            v = getattr(self, name)
            expect(v is None or (integer(v) and v >= 1), f"mnist.{name}", v, "a positive count or null")
        expect(integer(self.eval_batch) and self.eval_batch >= 1, "mnist.eval_batch", self.eval_batch, ">= 1")
        expect(integer(self.data_seed), "mnist.data_seed", self.data_seed, "an integer seed")
        expect(
            self.source != "idx" or isinstance(self.root, str),
            "mnist.root",
            self.root,
            "the folder holding the MNIST IDX files (mnist.source=idx needs mnist.root)",
        )
        if self.n is None and self.source != "idx":
            expect(
                self.k in digits.PAPER_N,
                "mnist.k",
                self.k,
                f"one of the paper's grid {sorted(digits.PAPER_N)} when mnist.n=null (or set mnist.n)",
            )

    @property
    def n_coupled(self) -> int:
        return coupled_classes(self.k, self.coupled, self.construction)

    def load(self) -> dict[str, np.ndarray]:
        """The run's digits (host side): grey images (uint8 N x size x size) and shapes (int32 N) of the
        training and the test split, by :data:`ARRAYS` name."""
        train = load_split(self.source, self.root, self.k, self.n, "train", self.data_seed, self.image_size)
        test = load_split(
            self.source, self.root, self.k, self.n_test, "test", self.data_seed, self.image_size
        )
        return dict(zip(ARRAYS, (*train, *test), strict=True))

    def for_program(self, n: int) -> MultiColoredMNIST:
        """The copy that keys the compiled run: ``n`` the loaded training-set size, the HOST fields at
        their defaults (the program sees the digits only as arrays in hp["data"])."""
        defaults: dict[str, Any] = {
            f.name: f.default for f in dataclasses.fields(self) if f.name in self.HOST
        }
        return dataclasses.replace(self, n=n, **defaults)

    # ---- synthetic.train's loop: the per-seed part (``spec.data`` is :meth:`for_program`'s copy)

    def new_model(self, key: jax.Array, spec) -> nnx.Module:
        return spec.objective.model(spec.encoder, self.image_size, self.k, nnx.Rngs(key))

    def setup(self, key: jax.Array, hp: dict, spec):
        k_data, k_init, k_steps, k_eval = jax.random.split(key, 4)
        h = hp["data"]
        y_N, c_N = sample_labels_colours(
            k_data, h["train_digit"], self.k, h["p_inv"], h["p_spu"], self.n_coupled
        )
        shuffle = jax.random.bits(k_steps, (T.SHUFFLE_ROUNDS,), jnp.uint32)
        return T.init_carry(k_init, hp, spec), Fixed(y_N, c_N, shuffle, k_eval)

    def get_batch(self, t: jax.Array, fixed: Fixed, hp: dict, spec) -> ColouredBatch:
        """Minibatches without replacement within an epoch, as the Gaussian model's finite training set
        (synthetic.train.get_batch), coloured on the fly."""
        epoch, pos = t // spec.epoch_steps, t % spec.epoch_steps
        idx_B = T.epoch_index(fixed.shuffle, epoch, pos * spec.batch + jnp.arange(spec.batch), spec.data.n)
        x = colourise(hp["data"]["train_grey"][idx_B], fixed.c_N[idx_B], jnp.asarray(PALETTE[: self.k]))
        return ColouredBatch(x, fixed.y_N[idx_B], fixed.c_N[idx_B])

    def evaluate(self, params, fixed: Fixed, losses: jax.Array, hp: dict, spec) -> dict[str, jax.Array]:
        """Accuracy on the ID, Rand and Rev test sets (the shared test digits, each set with its own labels
        and colours), ``loss_final`` (mean loss of the last 10% of steps) and ``loss_windows`` (the mean
        loss of 100 consecutive windows of steps: the per-step minibatch losses are noisy)."""
        model = nnx.merge(T.graphdef(spec), params)
        h, k = hp["data"], self.k
        palette_Kx3 = jnp.asarray(PALETTE[:k])
        laws = [colour_law(t, k, h["p_spu"], h["p_rev"], self.construction) for t in TEST_SETS]
        test_p = jnp.stack([jnp.asarray(q, jnp.float32) for q, _ in laws])
        shifts = jnp.asarray([shift for _, shift in laws])
        y_t, c_t = jax.vmap(
            lambda kk, p, s: sample_labels_colours(kk, h["test_digit"], k, h["p_inv"], p, self.n_coupled, s)
        )(jax.random.split(fixed.k_eval, len(TEST_SETS)), test_p, shifts)

        def predict(grey_c):
            grey, c = grey_c
            return jnp.argmax(spec.objective.scores(model, colourise(grey[None], c[None], palette_Kx3))[0])

        # the three test sets share the digits and differ in labels/colours: one pass over all of them
        grey_all = jnp.tile(h["test_grey"], (len(TEST_SETS), 1, 1))
        pred = jax.lax.map(predict, (grey_all, c_t.reshape(-1)), batch_size=self.eval_batch)
        correct = (pred == y_t.reshape(-1)).reshape(len(TEST_SETS), -1).mean(axis=1)
        steps = losses.shape[0]
        windows = np.concatenate(
            [np.full(len(w), i) for i, w in enumerate(np.array_split(np.arange(steps), min(100, steps)))]
        )
        sums = jax.ops.segment_sum(losses, jnp.asarray(windows), num_segments=int(windows[-1]) + 1)
        return {
            **{f"acc_{t}": correct[i] for i, t in enumerate(TEST_SETS)},
            "loss_final": losses[-max(1, math.ceil(0.1 * steps)) :].mean(),
            "loss_windows": sums / jnp.asarray(np.bincount(windows), jnp.float32),
        }


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
            key = "mnist.n" if split == "train" else "mnist.n_test"
            expect(
                n <= len(labels), key, n, f"at most the {len(labels)} digits < {k} of MNIST's {split} split"
            )
            images, labels = images[:n], labels[:n]
    else:
        count = n if n is not None else (digits.PAPER_N[k] if split == "train" else OFFLINE_N_TEST)
        split_id = {"train": 0, "test": 1}[split]
        if source == "sklearn":
            images, labels = digits.sklearn_digits(count, k, seed=(data_seed, split_id), split=split)
        else:
            images, labels = digits.render_digits(count, k, seed=(data_seed, split_id))
    return _pool(images, size), labels
