"""MultiColoredMNIST: noisy labels, spurious colours, the Rand and Rev test sets, and the Bayes reference.

Generative model for one image with digit shape d in 0..k-1 (paper appendix D.4, SPEC section 1):
  label  y = d with probability p_inv, else uniform over the other k-1 classes (label noise);
  colour c in 0..k-1 (an index into PALETTE[:k]): for a *coupled* class y < coupled (the paper: classes
         0 and 1, red and green) c = y with probability p_spu, else uniform over the other k-1 colours;
         for every other class c is uniform over the k colours.
The digit's strokes are painted in colour c on black. The test sets keep the label noise and change only
the colour law of the coupled classes: Rand uses p_spu = 1/k (colour independent of the label) and Rev
uses p_spu = p_rev = 0.1; ID uses the training p_spu.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np

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


def test_p_spu(which: str, k: int, p_spu: float, p_rev: float) -> float:
    """The coupled classes' colour probability of a test set: id (training value), rand (1/k) or rev."""
    table = {"id": p_spu, "rand": 1.0 / k, "rev": p_rev}
    if which not in table:
        raise ValueError(f"test set {which!r}; expected one of {sorted(table)}")
    return table[which]


def _other(key, x_N, k):
    """Uniform over the k-1 values in 0..k-1 other than x."""
    return (x_N + jax.random.randint(key, x_N.shape, 1, k)) % k


def sample_labels_colours(key, digit_N, k: int, p_inv, p_spu, coupled: int = 2):
    """Draw (label y, colour c) for each digit shape; jit/vmap friendly (p_inv, p_spu may be traced)."""
    k_flip, k_other, k_keep, k_cother, k_free = jax.random.split(key, 5)
    flip_N = jax.random.bernoulli(k_flip, 1.0 - p_inv, digit_N.shape)
    y_N = jnp.where(flip_N, _other(k_other, digit_N, k), digit_N)
    keep_N = jax.random.bernoulli(k_keep, p_spu, y_N.shape)
    coupled_colour_N = jnp.where(keep_N, y_N, _other(k_cother, y_N, k))
    free_colour_N = jax.random.randint(k_free, y_N.shape, 0, k)
    c_N = jnp.where(y_N < coupled, coupled_colour_N, free_colour_N)
    return y_N.astype(jnp.int32), c_N.astype(jnp.int32)


def colourise(grey_BxHxW, c_B, palette_Kx3):
    """Paint grey-scale digits (uint8) in their colours: float32 (B, H, W, 3) in [0, 1]."""
    grey = grey_BxHxW.astype(jnp.float32) / 255.0
    return grey[..., None] * palette_Kx3[c_B][:, None, None, :]


# ---------------------------------------------------------------- exact reference (numpy)


def joint(k: int, p_inv: float, p_spu: float, coupled: int = 2) -> np.ndarray:
    """P(y, d, c) of the generative model as a (k, k, k) array (label, digit shape, colour)."""
    p_d_given_y = np.full((k, k), (1 - p_inv) / (k - 1))
    np.fill_diagonal(p_d_given_y, p_inv)
    p_c_given_y = np.full((k, k), 1.0 / k)
    for y in range(min(coupled, k)):
        p_c_given_y[y] = (1 - p_spu) / (k - 1)
        p_c_given_y[y, y] = p_spu
    return p_d_given_y[:, :, None] * p_c_given_y[:, None, :] / k


def bayes_accuracy(k: int, p_inv: float, p_spu: float, test_p_spu: float, coupled: int = 2) -> float:
    """Test accuracy of the rule that is Bayes-optimal for the training law, ties split evenly.

    This is what a learner reading shape and colour perfectly converges to with unlimited data; it
    uses both features, so it is the common target of the supervised and the contrastive objective.
    """
    train = joint(k, p_inv, p_spu, coupled)
    test = joint(k, p_inv, test_p_spu, coupled)
    acc = 0.0
    for d, c in itertools.product(range(k), range(k)):
        post = train[:, d, c]
        winners = np.flatnonzero(np.isclose(post, post.max(), rtol=1e-12, atol=0.0))
        acc += test[winners, d, c].sum() / len(winners)
    return float(acc)
