"""MultiColoredMNIST data: label noise, colour laws (train, Rand, Rev), Bayes reference, digit sources."""

import gzip

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from synthetic.mnist import data, digits

N = 200_000


def _z(count, total, p):
    """Standardised deviation of a binomial count from its mean."""
    return abs(count - total * p) / np.sqrt(total * p * (1 - p))


def _draw(k, p_inv, p_spu, coupled=2, seed=0):
    digit = jax.random.randint(jax.random.key(100 + seed), (N,), 0, k)
    y, c = data.sample_labels_colours(jax.random.key(seed), digit, k, p_inv, p_spu, coupled)
    return np.asarray(digit), np.asarray(y), np.asarray(c)


@pytest.mark.parametrize(("k", "p_inv", "p_spu"), [(2, 0.9, 0.9), (5, 0.75, 0.75), (10, 0.75, 0.9)])
def test_training_correlations_match_p_inv_and_p_spu(k, p_inv, p_spu):
    d, y, c = _draw(k, p_inv, p_spu)
    assert _z((y == d).sum(), N, p_inv) < 4.5
    # label noise goes uniformly to the other classes: P(y = d + j mod k | flipped) = 1/(k-1)
    flipped = y != d
    shift = (y[flipped] - d[flipped]) % k
    assert shift.min() >= 1 and shift.max() <= k - 1
    for j in range(1, k if k > 2 else 1):
        assert _z((shift == j).sum(), flipped.sum(), 1 / (k - 1)) < 4.5
    # coupled classes 0 (red) and 1 (green) carry their colour w.p. p_spu, else a uniform other colour
    for cls in (0, 1):
        sel = y == cls
        assert _z((c[sel] == cls).sum(), sel.sum(), p_spu) < 4.5
        for other in set(range(k)) - {cls}:
            assert _z((c[sel] == other).sum(), sel.sum(), (1 - p_spu) / (k - 1)) < 4.5
    # every other class is coloured uniformly at random
    free = y >= 2
    if free.any():
        for colour in range(k):
            assert _z((c[free] == colour).sum(), free.sum(), 1 / k) < 4.5


@pytest.mark.parametrize("k", [2, 6])
def test_rand_and_rev_colour_statistics(k):
    p_rand = data.test_p_spu("rand", k, 0.9, 0.1)
    p_rev = data.test_p_spu("rev", k, 0.9, 0.1)
    assert p_rand == pytest.approx(1 / k) and p_rev == 0.1
    _, y, c = _draw(k, 0.75, p_rand, seed=1)
    # Rand: the colour is independent of the label, uniform over the k colours, for every class
    table = np.zeros((k, k))
    np.add.at(table, (y, c), 1)
    expected = table.sum(1, keepdims=True) / k
    chi2 = ((table - expected) ** 2 / expected).sum()
    dof = k * (k - 1)
    assert chi2 < dof + 6 * np.sqrt(2 * dof)
    # Rev: classes 0/1 wear their own colour 10% of the time; the rest keeps uniform colours
    _, y, c = _draw(k, 0.75, p_rev, seed=2)
    for cls in (0, 1):
        sel = y == cls
        assert _z((c[sel] == cls).sum(), sel.sum(), 0.1) < 4.5
    free = y >= 2
    if free.any():
        assert _z((c[free] == y[free]).sum(), free.sum(), 1 / k) < 4.5
    with pytest.raises(ValueError, match="test set 'ood'"):
        data.test_p_spu("ood", k, 0.9, 0.1)


def test_coupled_all_classes():
    _, y, c = _draw(5, 0.9, 0.8, coupled=5, seed=3)
    for cls in range(5):
        sel = y == cls
        assert _z((c[sel] == cls).sum(), sel.sum(), 0.8) < 4.5


def test_bayes_accuracy_hand_values_and_monte_carlo():
    # k = 2, p_inv = p_spu = 0.9: shape and colour are equally reliable; they agree w.p. .82 (then right
    # w.p. .81/.82) and otherwise tie. ID: .81 + .18/2 = .9. Rand (colour right w.p. .5): .45 + .5 * .5 = .7.
    # Rev (colour right w.p. .1): .09 + .5 * (.81 + .01) = .5 -- the paper's 71.6 / 50.1.
    assert data.bayes_accuracy(2, 0.9, 0.9, 0.9) == pytest.approx(0.9)
    assert data.bayes_accuracy(2, 0.9, 0.9, 0.5) == pytest.approx(0.7)
    assert data.bayes_accuracy(2, 0.9, 0.9, 0.1) == pytest.approx(0.5)
    # Monte Carlo with the sampler: apply the Bayes rule (from the joint) to samples of the Rev law
    k, p_inv, p_spu = 5, 0.75, 0.9
    rule = data.joint(k, p_inv, p_spu).argmax(axis=0)  # (d, c) -> y; no ties for these values
    d, y, c = _draw(k, p_inv, 0.1, seed=4)
    mc = (rule[d, c] == y).mean()
    exact = data.bayes_accuracy(k, p_inv, p_spu, 0.1)
    assert abs(mc - exact) < 4.5 * np.sqrt(exact * (1 - exact) / N)
    assert data.joint(k, p_inv, p_spu).sum() == pytest.approx(1.0)


def test_colourise_paints_strokes():
    grey = np.array([[[0, 128], [255, 64]]], np.uint8).repeat(2, axis=0)
    out = np.asarray(data.colourise(jnp.asarray(grey), jnp.array([0, 3]), jnp.asarray(data.PALETTE)))
    for i, colour in enumerate([0, 3]):
        np.testing.assert_allclose(out[i], grey[i][..., None] / 255.0 * data.PALETTE[colour], rtol=1e-6)


def _write_idx(path, array, gz):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("gz", [False, True])
def test_idx_reader_roundtrip_and_missing_files(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 28, 28))
    labels = rng.integers(0, 10, 7)
    suffix = ".gz" if gz else ""
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images, gz)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels, gz)
    got_images, got_labels = digits.load_idx(str(tmp_path), "test")
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.*mnist.root") as err:
        digits.load_idx(str(tmp_path), "train")
    assert str(tmp_path) in str(err.value) and "t10k-labels-idx1-ubyte" in str(err.value)
    with pytest.raises(ValueError, match="needs mnist.root"):
        digits.load_idx(None, "train")


def test_offline_digits_deterministic_and_learnable():
    a, da = digits.render_digits(600, 10, seed=(0, 0))
    b, db = digits.render_digits(600, 10, seed=(0, 0))
    c, _ = digits.render_digits(600, 10, seed=(0, 1))
    assert a.shape == (600, 28, 28) and a.dtype == np.uint8 and da.dtype == np.int32
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(da, db)
    assert not np.array_equal(a, c)
    assert set(np.unique(da)) == set(range(10))
    # strokes on a dark background, like MNIST: the border is black and the centre is inked
    assert a[:, 0, :].mean() < 5 and a[:, 10:18, 10:18].mean() > 40
    # the shape carries the digit: nearest class mean on pixels beats chance (10%) by far on fresh digits
    train, dtrain = digits.render_digits(3000, 10, seed=(1, 0))
    means = np.stack([train[dtrain == j].reshape(-1, 784).mean(0) for j in range(10)])
    dist = ((a.reshape(-1, 1, 784).astype(float) - means[None]) ** 2).sum(-1)
    assert (dist.argmin(1) == da).mean() > 0.6
