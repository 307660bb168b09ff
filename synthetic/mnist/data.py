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

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from synthetic.mnist.config import CONSTRUCTIONS  # the one list of them

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
    if construction not in CONSTRUCTIONS:
        raise ValueError(f"mnist.construction={construction!r}; expected one of {CONSTRUCTIONS}")


def validate(mc) -> None:
    """Stop on a bad ``mnist.construction`` (or a ``mnist.coupled`` it would ignore), naming the key."""
    construction = getattr(mc, "construction", "paper")
    _check_construction(construction)
    if construction == "all_coupled" and mc.coupled not in (2, mc.k):
        raise ValueError(
            f"mnist.coupled={mc.coupled} with mnist.construction=all_coupled, which couples every class; "
            f"expected the default 2 or k={mc.k} (or use mnist.construction=paper)"
        )


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
