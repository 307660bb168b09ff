"""MultiColoredMNIST data: label noise, colour laws (train, Rand, Rev), Bayes reference, digit sources."""

import gzip
import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from synthetic import train as T
from synthetic.mnist import data, digits

N = 200_000


def _z(count, total, p):
    """Standardised deviation of a binomial count from its mean."""
    return abs(count - total * p) / np.sqrt(total * p * (1 - p))


# every argument traced, k included: one compiled sampler for all the draws of this module
_sample = jax.jit(data.sample_labels_colours, compiler_options=T.SHORT_RUN_OPTIONS)


def _draw(k, p_inv, p_spu, coupled=2, seed=0):
    digit = jax.random.randint(jax.random.key(100 + seed), (N,), 0, k)
    y, c = _sample(jax.random.key(seed), digit, k, p_inv, p_spu, coupled)
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


def _one_call_per_key(key, digit_N, k, p_inv, p_spu, coupled, shift):
    """The five draws of sample_labels_colours written one call per key: JAX's own bernoulli and randint."""
    k_flip, k_other, k_keep, k_cother, k_free = jax.random.split(key, 5)
    flip = jax.random.bernoulli(k_flip, 1.0 - p_inv, digit_N.shape)
    y = jnp.where(flip, (digit_N + jax.random.randint(k_other, digit_N.shape, 1, k)) % k, digit_N)
    target = (y + shift) % k
    keep = jax.random.bernoulli(k_keep, p_spu, digit_N.shape)
    coupled_colour = jnp.where(keep, target, (target + jax.random.randint(k_cother, digit_N.shape, 1, k)) % k)
    return y, jnp.where(y < coupled, coupled_colour, jax.random.randint(k_free, digit_N.shape, 0, k))


def test_labels_and_colours_are_the_draws_of_one_call_per_key():
    """Each distribution is drawn once, vmapped over its keys: the numbers of one call per key, bit for
    bit (so MultiColoredMNIST's results do not depend on how the draws are grouped)."""
    digit = jax.random.randint(jax.random.key(100), (N,), 0, 5)
    theirs = jax.jit(_one_call_per_key, compiler_options=T.SHORT_RUN_OPTIONS)
    # coupled and free classes, a target colour shifted or not, traced like the runs' probabilities
    for seed, p_inv, p_spu, coupled, shift in ((0, 0.9, 0.9, 2, 0), (7, 0.75, 0.3, 3, 1)):
        args = (jax.random.key(seed), digit, 5, p_inv, p_spu, coupled, shift)
        for a, b in zip(_sample(*args), theirs(*args), strict=True):
            np.testing.assert_array_equal(a, b)


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


# ---------------------------------------------------------------- constructions: paper and all_coupled


def _naive_joint(k, p_inv, q, coupled, shift):
    """P(y, d, c) by a plain loop over the generative description (independent of data.joint)."""
    out = np.zeros((k, k, k))
    for y in range(k):
        for d in range(k):
            p_d = p_inv if d == y else (1 - p_inv) / (k - 1)
            for c in range(k):
                if y < coupled:
                    p_c = q if c == (y + shift) % k else (1 - q) / (k - 1)
                else:
                    p_c = 1 / k
                out[y, d, c] = p_d * p_c / k
    return out


def _draw_law(k, p_inv, which, construction, p_spu=0.9, p_rev=0.1, seed=0):
    q, shift = data.colour_law(which, k, p_spu, p_rev, construction)
    digit = jax.random.randint(jax.random.key(200 + seed), (N,), 0, k)
    coupled = data.coupled_classes(k, 2, construction)
    y, c = _sample(jax.random.key(seed), digit, k, p_inv, q, coupled, shift)
    return np.asarray(digit), np.asarray(y), np.asarray(c)


@pytest.mark.parametrize("k", [3, 10])
def test_all_coupled_colour_laws(k):
    # training: every class wears its own colour w.p. p_spu, else one of the other k-1 uniformly
    _, y, c = _draw_law(k, 0.75, "id", "all_coupled", seed=5)
    for cls in range(k):
        sel = y == cls
        assert _z((c[sel] == cls).sum(), sel.sum(), 0.9) < 4.5
        other = (c[sel] != cls) & (c[sel] != (cls + 1) % k)
        assert _z(other.sum(), sel.sum(), 0.1 * (k - 2) / (k - 1)) < 4.5
    # Rev: class y wears the colour of class y+1 mod k w.p. 1 - p_rev; its own colour w.p. p_rev / (k-1)
    _, y, c = _draw_law(k, 0.75, "rev", "all_coupled", seed=6)
    for cls in range(k):
        sel = y == cls
        assert _z((c[sel] == (cls + 1) % k).sum(), sel.sum(), 0.9) < 4.5
        assert _z((c[sel] == cls).sum(), sel.sum(), 0.1 / (k - 1)) < 4.5
    # Rand: uniform colour for every class, as in the paper's construction
    _, y, c = _draw_law(k, 0.75, "rand", "all_coupled", seed=7)
    table = np.zeros((k, k))
    np.add.at(table, (y, c), 1)
    expected = table.sum(1, keepdims=True) / k
    dof = k * (k - 1)
    assert ((table - expected) ** 2 / expected).sum() < dof + 6 * np.sqrt(2 * dof)


@pytest.mark.parametrize("construction", data.CONSTRUCTIONS)
@pytest.mark.parametrize(("k", "p_inv"), [(2, 0.9), (5, 0.75), (10, 0.75)])
def test_laws_match_naive_joint_and_sampler(construction, k, p_inv):
    coupled = data.coupled_classes(k, 2, construction)
    laws = data.laws(k, p_inv, 0.9, 0.1, 2, construction)
    for which in data.TEST_SETS:
        q, shift = data.colour_law(which, k, 0.9, 0.1, construction)
        np.testing.assert_allclose(laws[which], _naive_joint(k, p_inv, q, coupled, shift), atol=1e-15)
    # the sampler draws (d, y, c) from that joint (d uniform): chi-square over the k^3 cells
    d, y, c = _draw_law(k, p_inv, "rev", construction, seed=8)
    counts = np.zeros((k, k, k))
    np.add.at(counts, (y, d, c), 1)
    expected = laws["rev"] * N
    keep = expected > 5
    chi2 = ((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum()
    dof = keep.sum() - 1
    assert chi2 < dof + 6 * np.sqrt(2 * dof)
    assert counts[~keep].sum() < 5 * max(1.0, expected[~keep].sum())


def test_constructions_coincide_at_k2_and_differ_at_k10():
    a = data.laws(2, 0.9, 0.9, 0.1, 2, "paper")
    b = data.laws(2, 0.9, 0.9, 0.1, 2, "all_coupled")
    for which in data.TEST_SETS:
        np.testing.assert_allclose(a[which], b[which], atol=1e-15)
    # paper, k = 10: Rev's p_rev = 0.1 = 1/k, so the Rev law *is* the Rand law; all_coupled moves it
    paper = data.laws(10, 0.75, 0.9, 0.1, 2, "paper")
    np.testing.assert_allclose(paper["rev"], paper["rand"], atol=1e-15)
    variant = data.laws(10, 0.75, 0.9, 0.1, 2, "all_coupled")
    assert np.abs(variant["rev"] - variant["rand"]).max() > 1e-3


def test_bayes_reference_all_coupled_hand_values_and_monte_carlo():
    # all_coupled, k = 10, p_inv .75, p_spu .9: when shape and colour disagree, colour wins
    # (P(d | y=c) P(c | c) = .25/9 * .9 > P(d | d) P(c | d) = .75 * .1/9), so the rule predicts the colour:
    # ID .9, Rand 1/k, Rev P(own colour) = p_rev / (k-1)
    ref = data.bayes_reference(10, 0.75, 0.9, 0.1, 2, "all_coupled")
    assert ref["acc_id"] == pytest.approx(0.9)
    assert ref["acc_rand"] == pytest.approx(0.1)
    assert ref["acc_rev"] == pytest.approx(0.1 / 9)
    # Monte Carlo with the sampler on each set, the rule taken from the naive joint (no ties for these)
    for k, p_inv in [(10, 0.75), (5, 0.95), (3, 0.75)]:  # colour wins, shape wins, colour wins
        ref = data.bayes_reference(k, p_inv, 0.9, 0.1, 2, "all_coupled")
        rule = _naive_joint(k, p_inv, 0.9, k, 0).argmax(axis=0)
        for i, which in enumerate(data.TEST_SETS):
            d, y, c = _draw_law(k, p_inv, which, "all_coupled", seed=10 + i)
            mc, exact = (rule[d, c] == y).mean(), ref[f"acc_{which}"]
            assert abs(mc - exact) < 4.5 * np.sqrt(exact * (1 - exact) / N) + 1e-9
    # the paper's construction through the same function keeps the old values
    paper = data.bayes_reference(2, 0.9, 0.9, 0.1)
    assert (paper["acc_id"], paper["acc_rand"], paper["acc_rev"]) == pytest.approx((0.9, 0.7, 0.5))


def test_construction_validation():
    mnist = data.MultiColoredMNIST
    with pytest.raises(ValueError, match="mnist.construction='swapped': expected one of"):
        mnist(construction="swapped")
    with pytest.raises(
        ValueError, match="mnist.coupled=3: expected the default 2 or k=5 with mnist.construction"
    ):
        mnist(k=5, coupled=3, construction="all_coupled")
    assert mnist(k=5, coupled=5, construction="all_coupled").n_coupled == 5
    assert mnist(k=5, construction="all_coupled").n_coupled == 5
    assert mnist(k=5).construction == "paper" and mnist(k=5).n_coupled == 2
    with pytest.raises(ValueError, match="mnist.construction='x'"):
        data.colour_law("rev", 3, 0.9, 0.1, "x")


# ---------------------------------------------------------------- the worst classifier at a given ID accuracy


def _lower_hull(points):
    """Lower convex hull of 2-d points (monotone chain), sorted by x."""
    pts = sorted(set(map(tuple, np.round(points, 15))))
    hull = []
    for p in pts:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) <= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    return np.array(hull)


def _enumerated_worst(train, test, a):
    """min test accuracy over mixtures of deterministic rules with train accuracy >= a (naive)."""
    k = train.shape[0]
    cells = list(itertools.product(range(k), range(k)))
    labels = np.array(list(itertools.product(range(k), repeat=len(cells))))  # (k^(k^2), k^2)
    d, c = np.array(cells).T
    id_acc = train[labels, d, c].sum(1)
    test_acc = test[labels, d, c].sum(1)
    hull = _lower_hull(np.stack([id_acc, test_acc], 1))
    best = min((t for x, t in hull if x >= a - 1e-12), default=np.inf)
    for (x1, t1), (x2, t2) in itertools.pairwise(hull):
        if x1 <= a <= x2 and x2 > x1:
            best = min(best, t1 + (t2 - t1) * (a - x1) / (x2 - x1))
    return best


@pytest.mark.parametrize("construction", data.CONSTRUCTIONS)
@pytest.mark.parametrize(("k", "p_inv", "p_spu"), [(2, 0.9, 0.9), (3, 0.75, 0.9), (3, 0.9, 0.75)])
def test_worst_accuracy_matches_enumeration_of_rules(construction, k, p_inv, p_spu):
    coupled = data.coupled_classes(k, 2, construction)
    q_rev, shift = data.colour_law("rev", k, p_spu, 0.1, construction)
    train = _naive_joint(k, p_inv, p_spu, coupled, 0)
    test = _naive_joint(k, p_inv, q_rev, coupled, shift)
    top = train.max(axis=0).sum()
    for a in np.linspace(0.3, top, 7):
        got, rule = data.worst_accuracy(train, test, a)
        assert got == pytest.approx(_enumerated_worst(train, test, a), abs=1e-7)
        assert rule.min() >= -1e-9 and np.allclose(rule.sum(0), 1.0)
        assert (rule * train).sum() >= a - 1e-7
    with pytest.raises(ValueError, match="min_train_accuracy"):
        data.worst_accuracy(train, test, top + 0.01)


def test_k10_rev_bound_dual_certificate_and_monte_carlo():
    """The documented bound: k = 10, p_inv .75, p_spu .9, the paper's construction."""
    k = 10
    laws = data.laws(k, 0.75, 0.9, 0.1)
    train, rev = laws["id"], laws["rev"]
    bayes = data.bayes_reference(k, 0.75, 0.9, 0.1)
    # at the Bayes accuracy the worst rule is the Bayes rule (unique here): Rev 73.6
    assert data.worst_accuracy(train, rev, bayes["acc_id"])[0] == pytest.approx(bayes["acc_rev"], abs=1e-6)
    # weak duality, a naive loop: for every lambda >= 0, lambda a + sum_cells min_y (rev - lambda train)
    # is a lower bound on the LP value; the best lambda on a fine grid reaches it (strong duality)
    for a in (0.70, 0.7306, 0.75):
        lp, rule = data.worst_accuracy(train, rev, a)
        duals = [lam * a + (rev - lam * train).min(axis=0).sum() for lam in np.linspace(0, 20, 20001)]
        assert max(duals) <= lp + 1e-7 and max(duals) >= lp - 1e-4
        # Monte Carlo of the minimising rule with the package's sampler: train accuracy >= a, Rev = the bound
        rng = np.random.default_rng(0)
        cdf = np.cumsum(rule, axis=0)
        for which, target, check in (("id", a, "ge"), ("rev", lp, "eq")):
            d, y, c = _draw_law(k, 0.75, which, "paper", seed=20)
            pred = (rng.random(N)[None] > cdf[:, d, c]).sum(0)
            mc = (pred == y).mean()
            tol = 4.5 * np.sqrt(target * (1 - target) / N)
            assert mc >= target - tol if check == "ge" else abs(mc - target) < tol
    # the numbers docs/mnist.md quotes
    assert data.worst_accuracy(train, rev, 0.7306)[0] >= 0.60
    assert data.worst_accuracy(train, rev, 0.75)[0] == pytest.approx(0.6922, abs=1e-4)


def test_k10_rev_bound_holds_for_plug_in_learners_monte_carlo():
    """Plug-in learners (count tables from n samples) on fresh Monte Carlo test samples obey the bound."""
    k = 10
    laws = data.laws(k, 0.75, 0.9, 0.1)
    for i, n in enumerate((300, 3000, 100_000)):
        d, y, c = _draw_law(k, 0.75, "id", "paper", seed=30 + i)
        d, y, c = d[:n], y[:n], c[:n]
        counts = np.zeros((k, k, k))
        np.add.at(counts, (y, d, c), 1)
        rule = counts.argmax(axis=0)  # unseen cells: class 0
        d, y, c = _draw_law(k, 0.75, "id", "paper", seed=40 + i)
        acc_id = (rule[d, c] == y).mean()
        d, y, c = _draw_law(k, 0.75, "rev", "paper", seed=50 + i)
        acc_rev = (rule[d, c] == y).mean()
        se = 4.5 * np.sqrt(0.25 / N)
        bound = data.worst_accuracy(laws["id"], laws["rev"], max(acc_id - se, 0.0))[0]
        assert acc_rev >= bound - se
        # Rev = 1/36 + (13/18) P(rule names the shape | uniform colours): the affine identity of the docs
        names_shape = (rule == np.arange(k)[:, None]).mean()
        assert acc_rev == pytest.approx(1 / 36 + 13 / 18 * names_shape, abs=se)


# ---------------------------------------------------------------- scikit-learn's handwritten digits


def test_sklearn_digits_load_classes_shapes_and_split():
    from sklearn.datasets import load_digits

    train_t, train_d = digits.sklearn_templates("train")
    test_t, test_d = digits.sklearn_templates("test")
    assert len(train_d) + len(test_d) == len(load_digits().target) == 1797
    assert len(train_d) == digits.SKLEARN_TRAIN and set(train_d) == set(test_d) == set(range(10))
    assert train_t.shape[1:] == (1, 64, 64) and 0.0 <= train_t.min() and train_t.max() <= 1.0
    a, da = digits.sklearn_digits(600, 10, seed=(0, 0))
    b, db = digits.sklearn_digits(600, 10, seed=(0, 0))
    c, _ = digits.sklearn_digits(600, 10, seed=(0, 1))
    assert a.shape == (600, 28, 28) and a.dtype == np.uint8 and da.dtype == np.int32
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(da, db)
    assert not np.array_equal(a, c)
    assert set(np.unique(da)) == set(range(10))
    small, ds = digits.sklearn_digits(400, 3, seed=1, size=14, split="test")
    assert small.shape == (400, 14, 14) and set(np.unique(ds)) == {0, 1, 2}
    # strokes on a dark background: black border, inked centre
    assert a[:, 0, :].mean() < 5 and a[:, 10:18, 10:18].mean() > 40
    # the shape carries the digit across the split: nearest class mean (train pool) on the test pool
    train, dtrain = digits.sklearn_digits(3000, 10, seed=2, split="train")
    test, dtest = digits.sklearn_digits(1000, 10, seed=3, split="test")
    means = np.stack([train[dtrain == j].reshape(-1, 784).mean(0) for j in range(10)])
    dist = ((test.reshape(-1, 1, 784).astype(float) - means[None]) ** 2).sum(-1)
    assert (dist.argmin(1) == dtest).mean() > 0.4
    with pytest.raises(ValueError, match="split='val'"):
        digits.sklearn_digits(10, 10, seed=0, split="val")
    with pytest.raises(ValueError, match="k=11"):
        digits.sklearn_digits(10, 11, seed=0)


# ---------------------------------------------------------------- table: constructions and the bound report


def _fake_result(folder, k, p_inv, objective, construction=None, source="offline"):
    mnist = {"k": k, "n": None, "p_inv": p_inv, "p_spu": 0.9, "p_rev": 0.1, "coupled": 2}
    mnist |= {"objective": objective, "source": source}
    if construction is not None:  # results written before the key existed have none
        mnist["construction"] = construction
    metric = {"mean": 0.5, "std": 0.01, "per_seed": [0.49, 0.51]}
    res = {
        "status": "ok",
        "config": {"task": "multicolored_mnist", "mnist": mnist},
        "metrics": {m: metric for m in ("acc_id", "acc_rand", "acc_rev")},
        "extra": {"n_train": 123},
    }
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(res))


def test_table_rows_per_construction_and_source(tmp_path):
    from synthetic.mnist import table

    _fake_result(tmp_path / "a", 10, 0.75, "contrastive")  # old result: the paper's construction
    _fake_result(tmp_path / "b", 10, 0.75, "contrastive", "all_coupled")
    _fake_result(tmp_path / "c", 10, 0.75, "contrastive", "all_coupled", "sklearn")
    rows = table.collect(tmp_path)
    assert [(r["construction"], r["source"]) for r in rows] == [
        ("paper", "offline"),
        ("all_coupled", "offline"),
        ("all_coupled", "sklearn"),
    ]
    paper, variant = rows[0], rows[1]
    assert paper["paper_rev_mean"] == 5.53 and variant["paper_rev_mean"] is None
    assert paper["bayes_rev"] == pytest.approx(100 * data.bayes_accuracy(10, 0.75, 0.9, 0.1))
    # all_coupled: the Bayes rule follows the colour; Rev paints class y in class y+1's colour
    assert variant["bayes_rev"] == pytest.approx(100 * 0.1 / 9)
    assert variant["bayes_rev"] == pytest.approx(100 * data.bayes_accuracy(10, 0.75, 0.9, 0.9, 10, 1))
    table.write(rows, tmp_path / "out")
    md = (tmp_path / "out" / "mnist_table.md").read_text().splitlines()
    assert md[0].endswith("| construction | source |") and md[4].endswith("| all_coupled | sklearn |")


def test_bound_report_and_max_train_accuracy(capsys):
    from synthetic.mnist import table

    laws = data.laws(10, 0.75, 0.9, 0.1)
    top = data.bayes_reference(10, 0.75, 0.9, 0.1)["acc_id"]
    for x in (0.3, 0.5, 0.6):
        a = table.max_train_accuracy(laws["id"], laws["rev"], x)
        # the bound at a is x (up to the bisection tolerance), and a little more ID forces Rev above x
        assert a < top - 1e-3
        assert data.worst_accuracy(laws["id"], laws["rev"], a)[0] <= x + 1e-9
        assert data.worst_accuracy(laws["id"], laws["rev"], a + 1e-4)[0] > x
    assert np.isnan(table.max_train_accuracy(laws["id"], laws["rev"], -0.1))
    # k = 3: the Bayes rule itself has Rev 33.6 (colour beats shape for classes 0, 1): Rev <= .5 allows any ID
    laws3 = data.laws(3, 0.75, 0.9, 0.1)
    assert table.max_train_accuracy(laws3["id"], laws3["rev"], 0.5) == pytest.approx(laws3["id"].max(0).sum())
    assert table.main(["--bound", "3", "0.75", "0.9", "--construction", "all_coupled"]) == 0
    out = capsys.readouterr().out
    ref = data.bayes_reference(3, 0.75, 0.9, 0.1, 2, "all_coupled")
    assert f"Rev {100 * ref['acc_rev']:.2f}" in out and "construction = all_coupled" in out
    with pytest.raises(SystemExit):
        table.main(["--bound", "11", "0.75", "0.9"])
