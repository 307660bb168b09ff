"""theory/: closed forms against an independent numpy simulation, limits, the printed bounds, validation.

The sampler here is written from the data model's definition (SPEC section 1) and shares no code with
theory/; the Monte Carlo rules are the empirical CLIP optimum (n/(n-1)) C_hat / rho and np.linalg.lstsq.
"""

import itertools
import math

import numpy as np
import pytest

import theory as T

# ---------------------------------------------------------------- independent sampler


def orthonormal(rng, d):
    """A random d x 2 matrix with orthonormal columns (QR of a Gaussian matrix)."""
    q, _ = np.linalg.qr(rng.standard_normal((d, 2)))
    return q


def sample(rng, prm, D_I, D_T, n, group=None):
    """n draws of (y, x_I, x_T, z_T). group None: training mixture; "common": a = y; "counter": a = -y.
    D_T None: images only (x_T, z_T are None), for test sets."""
    y = 2.0 * rng.integers(0, 2, size=n) - 1.0
    if group is None:
        a = np.where(rng.random(n) < prm["p_spu"], y, -y)
    else:
        a = y if group == "common" else -y
    eps = rng.standard_normal(n)
    z_inv = prm["mu_inv"] * y + prm["sigma_inv"] * eps
    z_spu = prm["mu_spu"] * a + prm["sigma_spu"] * rng.standard_normal(n)
    r, kind = prm.get("caption_fidelity", 1.0), prm.get("caption_kind", "latent")
    own = r * eps + math.sqrt(1 - r**2) * rng.standard_normal(n)  # the caption's deviation: fidelity r
    t_inv = prm["mu_inv"] * y + (0.0 if kind == "class" else prm["sigma_inv"] * own)
    d_I = D_I.shape[0]
    x_I = np.outer(z_inv, D_I[:, 0]) + np.outer(z_spu, D_I[:, 1])
    x_I += prm["sigma_xi"] / math.sqrt(d_I) * rng.standard_normal((n, d_I))
    if D_T is None:
        return y, x_I, None, None
    names_background = rng.random(n) < prm["caption_q"]
    z_T = np.stack([t_inv, np.where(names_background, z_spu, 0.0)], 1)
    d_T = D_T.shape[0]
    x_T = z_T @ D_T.T + prm["sigma_xi"] / math.sqrt(d_T) * rng.standard_normal((n, d_T))
    return y, x_I, x_T, z_T


def empirical_clip_optimum(x_I, x_T, rho):
    """(n/(n-1)) C_hat / rho with C_hat the centred image-text cross-covariance (1/n normalisation)."""
    n = len(x_I)
    C_hat = (x_I - x_I.mean(0)).T @ (x_T - x_T.mean(0)) / n
    return n / (n - 1) * C_hat / rho


def zero_shot_predict(x_I, M, D_T, prompts):
    """argmax_c x_I^T M D_T e_c over the classes c = (+1, -1); prompts[c] is the latent e_c."""
    scores = np.stack([x_I @ (M @ (D_T @ prompts[c])) for c in (1.0, -1.0)], 1)
    return np.where(scores.argmax(1) == 0, 1.0, -1.0)


def random_params(rng, caption_q):
    return {
        "p_spu": rng.uniform(0.5, 1.0),
        "mu_inv": rng.uniform(0.5, 1.5),
        "mu_spu": rng.uniform(0.0, 3.0),
        "sigma_inv": rng.uniform(0.3, 1.5),
        "sigma_spu": rng.uniform(0.0, 1.0),
        "sigma_xi": rng.uniform(0.0, 1.5),
        "d_image": int(rng.integers(2, 17)),
        "d_text": int(rng.integers(2, 17)),
        "rho": rng.uniform(0.2, 3.0),
        "caption_q": caption_q,
    }


N_TRAIN, N_TEST = 100_000, 100_000
# Finite-n error of the fitted rule: its weights are off by O(1/sqrt(n)) relative, which moves a Phi(ratio)
# accuracy by at most ~phi(0) * that; 3 / sqrt(n) is a generous allowance for it.
FIT_SLACK = 3 / math.sqrt(N_TRAIN)
# caption_q: the paper's captions (1), invariant-only captions (0), and random mixtures
MC_CAPTION_Q = [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.3, 0.5, 0.7, 0.9, 0.2, 0.8]
# caption models beyond the exact copy (points appended after the MC_CAPTION_Q ones)
MC_CAPTION_MODELS = [(0.0, 0.5, "latent"), (1.0, 0.0, "latent"), (0.5, 1.0, "class")]


def assert_close_mc(estimate, exact, n, what):
    se = math.sqrt(max(exact * (1 - exact), 1e-4) / n)
    tol = 4 * se + FIT_SLACK
    assert abs(estimate - exact) <= tol, (
        f"{what}: Monte Carlo {estimate:.4f} vs exact {exact:.4f} (tol {tol:.4f})"
    )


@pytest.mark.parametrize("point", range(len(MC_CAPTION_Q) + len(MC_CAPTION_MODELS)))
def test_monte_carlo_clip_and_supervised(point):
    rng = np.random.default_rng(1000 + point)
    if point < len(MC_CAPTION_Q):
        prm = random_params(rng, MC_CAPTION_Q[point])
    else:
        q, r, kind = MC_CAPTION_MODELS[point - len(MC_CAPTION_Q)]
        prm = random_params(rng, q) | {"caption_fidelity": r, "caption_kind": kind}
    model = T.GaussianSpuriousModel(**prm)
    D_I, D_T = orthonormal(rng, prm["d_image"]), orthonormal(rng, prm["d_text"])
    y, x_I, x_T, z_T = sample(rng, prm, D_I, D_T, N_TRAIN)

    M = empirical_clip_optimum(x_I, x_T, prm["rho"])
    prompts = {
        "class": {c: np.array([c, 0.0]) for c in (1.0, -1.0)},
        # E[z_T | y = c] under the training distribution, estimated from the training captions
        "mean": {c: z_T[y == c].mean(0) for c in (1.0, -1.0)},
    }
    X = np.column_stack([x_I, np.ones(N_TRAIN)])  # least squares with an intercept
    w_ls = np.linalg.lstsq(X, y, rcond=None)[0]

    for group in ("common", "counter", None):
        y_t, x_t, _, _ = sample(rng, prm, D_I, None, N_TEST, group)
        name = group or "id"
        for prompt, e in prompts.items():
            acc = float(np.mean(zero_shot_predict(x_t, M, D_T, e) == y_t))
            exact = float(T.zero_shot_accuracy(model, name, prompt))
            assert_close_mc(acc, exact, N_TEST, f"point {point} {prm} zero-shot {name}/{prompt}")
        acc_ls = float(np.mean(np.sign(np.column_stack([x_t, np.ones(N_TEST)]) @ w_ls) == y_t))
        assert_close_mc(acc_ls, float(T.supervised_accuracy(model, name)), N_TEST, f"{prm} supervised {name}")


def test_monte_carlo_rank_one_optimum():
    """Encoders of width h = 1: the rank-1 optimum is the truncated SVD of the empirical optimum."""
    rng = np.random.default_rng(7)
    prm = dict(p_spu=0.8, mu_inv=1.0, mu_spu=2.0, sigma_inv=1.0, sigma_spu=0.5, sigma_xi=0.5)
    prm |= dict(d_image=8, d_text=6, rho=1.0, caption_q=1.0)
    model = T.GaussianSpuriousModel(**prm)
    D_I, D_T = orthonormal(rng, 8), orthonormal(rng, 6)
    _, x_I, x_T, _ = sample(rng, prm, D_I, D_T, N_TRAIN)
    U, S, Vt = np.linalg.svd(empirical_clip_optimum(x_I, x_T, prm["rho"]))
    assert S[0] > 2 * S[1]  # a clear gap, so the rank-1 truncation is stable
    M1 = S[0] * np.outer(U[:, 0], Vt[0])
    prompts = {c: np.array([c, 0.0]) for c in (1.0, -1.0)}
    for group in ("common", "counter"):
        y_t, x_t, _, _ = sample(rng, prm, D_I, None, N_TEST, group)
        acc = float(np.mean(zero_shot_predict(x_t, M1, D_T, prompts) == y_t))
        assert_close_mc(acc, float(T.zero_shot_accuracy(model, group, "class", rank=1)), N_TEST, group)


# ---------------------------------------------------------------- the loss and the optimum


def test_loss_equals_cross_covariance_form_and_is_minimised_by_it():
    """The printed loss (double sums) = -(n/(n-1)) <M, C_hat> + rho/2 ||M||^2, whose gradient vanishes
    at (n/(n-1)) C_hat / rho."""
    rng = np.random.default_rng(3)
    n, d_I, d_T, h, rho = 7, 4, 3, 5, 0.7
    x_I, x_T = rng.standard_normal((n, d_I)), rng.standard_normal((n, d_T))
    W_I, W_T = rng.standard_normal((h, d_I)), rng.standard_normal((h, d_T))
    s = np.array([[(W_I @ x_I[i]) @ (W_T @ x_T[j]) for j in range(n)] for i in range(n)])
    loss = sum(s[i, j] - s[i, i] + s[j, i] - s[i, i] for i in range(n) for j in range(n) if j != i)
    loss = loss / (2 * n * (n - 1)) + rho / 2 * np.sum((W_I.T @ W_T) ** 2)
    C_hat = (x_I - x_I.mean(0)).T @ (x_T - x_T.mean(0)) / n
    M = W_I.T @ W_T
    assert loss == pytest.approx(-n / (n - 1) * np.sum(M * C_hat) + rho / 2 * np.sum(M**2), rel=1e-12)
    M_star = empirical_clip_optimum(x_I, x_T, rho)
    assert np.allclose(-n / (n - 1) * C_hat + rho * M_star, 0.0)


def test_clip_optimum_is_the_population_cross_moment():
    m = T.GaussianSpuriousModel(
        p_spu=0.8, mu_inv=1.2, mu_spu=2.5, sigma_inv=0.7, sigma_spu=0.4, caption_q=0.6
    )
    E_zz = np.array([[1.2**2 + 0.7**2, 1.2 * 2.5 * 0.6], [1.2 * 2.5 * 0.6, 2.5**2 + 0.4**2]])
    assert np.allclose(m.second_moment(), E_zz)
    assert np.allclose(T.clip_optimum(m), E_zz * [1.0, 0.6])  # E[z z_T^T]: caption keeps z_spu w.p. q


def test_rank_one_optimum_is_truncated_svd():
    rng = np.random.default_rng(5)
    p, mu, q = rng.uniform(0.5, 1, 6), rng.uniform(0, 3, 6), rng.uniform(0, 1, 6)
    m = T.GaussianSpuriousModel(p_spu=p, mu_spu=mu, caption_q=q, sigma_inv=0.8, sigma_spu=0.6)
    K1 = T.clip_optimum(m, rank=1)
    for i in range(6):
        K = T.clip_optimum(
            T.GaussianSpuriousModel(p_spu=p[i], mu_spu=mu[i], caption_q=q[i], sigma_inv=0.8, sigma_spu=0.6)
        )
        # top left/right singular pair from the eigendecomposition of K K^T (not an SVD routine)
        lam, vecs = np.linalg.eigh(K @ K.T)
        u = vecs[:, -1]
        v = K.T @ u / math.sqrt(lam[-1])
        assert np.allclose(K1[i], math.sqrt(lam[-1]) * np.outer(u, v), atol=1e-10)
        assert np.linalg.matrix_rank(K1[i]) == 1
        # and no rank-1 matrix does better on -<M, K> + ||M||^2 / 2 (Eckart-Young), checked on random ones
        best = -np.sum(K1[i] * K) + 0.5 * np.sum(K1[i] ** 2)
        for _ in range(50):
            M = np.outer(rng.standard_normal(2), rng.standard_normal(2))
            assert -np.sum(M * K) + 0.5 * np.sum(M**2) >= best - 1e-12
    assert np.allclose(T.clip_optimum(m, rank=2), T.clip_optimum(m))


# ---------------------------------------------------------------- limits


def test_balanced_training_gives_no_gap():
    m = T.GaussianSpuriousModel(
        p_spu=0.5, mu_spu=np.linspace(0, 4, 9), sigma_xi=0.7, d_image=5, caption_q=0.4
    )
    for prompt in T.PROMPTS:
        assert np.allclose(
            T.zero_shot_accuracy(m, "common", prompt), T.zero_shot_accuracy(m, "counter", prompt)
        )
    assert np.allclose(T.supervised_accuracy(m, "common"), T.supervised_accuracy(m, "counter"))


def test_no_spurious_signal_gives_no_gap():
    m = T.GaussianSpuriousModel(p_spu=np.linspace(0.5, 1, 11), mu_spu=0.0, sigma_xi=0.3, d_image=4)
    for prompt in T.PROMPTS:
        assert np.allclose(
            T.zero_shot_accuracy(m, "common", prompt), T.zero_shot_accuracy(m, "counter", prompt)
        )
    assert np.allclose(T.supervised_accuracy(m, "common"), T.supervised_accuracy(m, "counter"))
    # degenerate: z_spu identically 0 (singular second moment); least squares puts weight 0 on it
    d = T.GaussianSpuriousModel(p_spu=0.9, mu_spu=0.0, sigma_spu=0.0, sigma_inv=0.5)
    assert T.supervised_accuracy(d, "counter") == pytest.approx(0.5 * (1 + math.erf(2 / math.sqrt(2))))


def invariant_accuracy(mu_inv, sigma_inv, noise_var):
    """Accuracy of the invariant rule sign(u_inv): Phi(mu_inv / sqrt(sigma_inv^2 + noise))."""
    return 0.5 * (1 + math.erf(mu_inv / math.sqrt(sigma_inv**2 + noise_var) / math.sqrt(2)))


@pytest.mark.parametrize("field", ["p_spu", "mu_spu"])
def test_clip_and_supervised_both_invariant_without_spurious_correlation(field):
    """p_spu = 1/2 or mu_spu = 0: E[z z^T] is diagonal, every rule is the invariant one."""
    kw = {"p_spu": 0.5} if field == "p_spu" else {"p_spu": 0.9, "mu_spu": 0.0}
    m = T.GaussianSpuriousModel(mu_inv=1.3, sigma_inv=0.9, sigma_xi=1.2, d_image=3, **kw)
    ref = invariant_accuracy(1.3, 0.9, 1.2**2 / 3)
    for group in ("common", "counter", "balanced"):
        assert T.supervised_accuracy(m, group) == pytest.approx(ref, abs=1e-12)
        for prompt in T.PROMPTS:
            assert T.zero_shot_accuracy(m, group, prompt) == pytest.approx(ref, abs=1e-12)


def test_clip_mean_prompt_equals_supervised_when_class_mean_is_an_eigenvector():
    """E[zz^T] = m m^T + diag(s_inv^2, s_spu^2 + 4 mu_spu^2 p (1-p)); with the two diagonal terms equal, m is
    an eigenvector, so E[zz^T] m (CLIP, mean prompt) and (E[zz^T] + s I)^{-1} m (supervised) are parallel."""
    # s_inv^2 = s_spu^2 + 4 mu_spu^2 p (1 - p): 1.0 = 0.36 + 4 * 1 * 0.16 at p = 0.8
    m = T.GaussianSpuriousModel(
        p_spu=0.8, mu_spu=1.0, sigma_inv=1.0, sigma_spu=0.6, sigma_xi=np.array([0.0, 0.9])
    )
    for group in ("common", "counter", "id"):
        assert np.allclose(
            T.zero_shot_accuracy(m, group, "mean"), T.supervised_accuracy(m, group), atol=1e-12
        )
    # and away from that point they differ (the test above is not vacuous)
    off = m.replace(p_spu=0.7)
    assert np.all(
        np.abs(T.zero_shot_accuracy(off, "counter", "mean") - T.supervised_accuracy(off, "counter")) > 1e-3
    )


def test_class_prompt_ignores_what_captions_say():
    """With the class prompt [1, 0] the rule is K's first column, which caption_q does not touch."""
    m = T.GaussianSpuriousModel(p_spu=0.85, mu_spu=2.0, caption_q=np.linspace(0, 1, 5))
    acc = T.zero_shot_accuracy(m, "counter", "class")
    assert np.allclose(acc, acc[0])
    assert np.ptp(T.zero_shot_accuracy(m, "counter", "mean")) > 0.05


def test_groups_combine_as_defined():
    m = T.GaussianSpuriousModel(p_spu=np.array([0.6, 0.95]), mu_spu=1.7, sigma_xi=0.4)
    for f in (lambda g: T.zero_shot_accuracy(m, g, "mean"), lambda g: T.supervised_accuracy(m, g)):
        assert np.allclose(f("balanced"), (f("common") + f("counter")) / 2)
        assert np.allclose(f("id"), m.p_spu * f("common") + (1 - m.p_spu) * f("counter"))


# ---------------------------------------------------------------- the printed theorem


def Phi(x):
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


@pytest.mark.parametrize(
    "p, mu, s_inv, s_spu, den2, k1_num, k2_num",
    [
        # den^2 = (1 + s_inv^2)^2 s_inv^2 + (2 mu p - 1)^2 s_spu^2, by hand:
        (0.9, 2.0, 1.0, 0.5, 4.0 + 2.6**2 * 0.25, 3.0 - 3.6, -3.6 - 1.0),  # 5.69
        (1.0, 1.5, 1.0, 0.1, 4.0 + 2.0**2 * 0.01, 0.0, -3.0 - 1.0),  # 4.04, kappa1 = 0
        (0.75, 3.0, 0.5, 0.25, 1.5625 * 0.25 + 3.5**2 * 0.0625, 2.25 - 4.5, -4.5 - 0.25),
    ],
)
def test_paper_bounds_hand_computed(p, mu, s_inv, s_spu, den2, k1_num, k2_num):
    b = T.paper_bounds(T.GaussianSpuriousModel(p_spu=p, mu_spu=mu, sigma_inv=s_inv, sigma_spu=s_spu))
    k1, k2 = k1_num / math.sqrt(den2), k2_num / math.sqrt(den2)
    assert b["kappa1"] == pytest.approx(k1, rel=1e-12, abs=1e-15)
    assert b["kappa2"] == pytest.approx(k2, rel=1e-12)
    assert b["counter_error_lower_bound"] == pytest.approx(1 - Phi(k1), rel=1e-12)
    assert b["common_accuracy_lower_bound"] == pytest.approx(1 - Phi(k2), rel=1e-12)


def test_first_hand_point_numbers():
    b = T.paper_bounds(T.GaussianSpuriousModel(p_spu=0.9, mu_spu=2.0, sigma_inv=1.0, sigma_spu=0.5))
    assert b["kappa1"] == pytest.approx(-0.6 / 2.385372088, rel=1e-9)  # sqrt(5.69)
    assert b["counter_error_lower_bound"] == pytest.approx(0.59930, abs=1e-5)
    assert b["common_accuracy_lower_bound"] == pytest.approx(0.97310, abs=1e-5)


def test_printed_bounds_are_the_printed_lemma_with_unit_spurious_means():
    """docs/theory.md: the printed kappas are exact accuracies of the rule K_printed [1, 0] on group means
    [1, -1] (counter) and [1, 1] (common), i.e. mu_spu = 1 in the means, not the model's mu_spu."""
    p, mu, si, ss = 0.85, 2.5, 1.2, 0.4
    b = T.paper_bounds(T.GaussianSpuriousModel(p_spu=p, mu_spu=mu, sigma_inv=si, sigma_spu=ss))
    w = np.array([1 + si**2, 2 * mu * p - 1])  # printed K times the class prompt [1, 0]
    sd = math.sqrt(w[0] ** 2 * si**2 + w[1] ** 2 * ss**2)
    assert Phi(w @ [1, -1] / sd) == pytest.approx(1 - b["counter_error_lower_bound"], rel=1e-12)
    assert Phi(w @ [1, 1] / sd) == pytest.approx(b["common_accuracy_lower_bound"], rel=1e-12)
    # the printed K equals E[z z^T] only at mu_spu = 1
    K_printed = lambda mu: np.array([[1 + si**2, 2 * mu * p - 1], [2 * mu * p - 1, 1 + ss**2]])
    for mu_ in (1.0, 2.5):
        m = T.GaussianSpuriousModel(p_spu=p, mu_spu=mu_, sigma_inv=si, sigma_spu=ss)
        assert np.allclose(K_printed(mu_), m.second_moment()) == (mu_ == 1.0)


def test_theorem_assumptions():
    m = T.GaussianSpuriousModel(p_spu=0.9, mu_spu=np.array([1.4, 1.5]), sigma_inv=1.0, sigma_spu=0.5)
    assert T.theorem_assumptions_hold(m).tolist() == [False, True]


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "field, value",
    [
        ("p_spu", 1.2),
        ("p_spu", np.array([0.5, -0.1])),
        ("sigma_inv", 0.0),
        ("sigma_spu", -0.1),
        ("sigma_xi", np.nan),
        ("d_image", 1),
        ("d_text", 3.5),
        ("rho", 0.0),
        ("caption_q", 2.0),
        ("caption_fidelity", -0.5),
        ("caption_kind", "words"),
        ("mu_spu", np.inf),
    ],
)
def test_invalid_parameters_name_the_field(field, value):
    kw = {"p_spu": 0.9} | {field: value}
    with pytest.raises(ValueError, match=rf"^{field}="):
        T.GaussianSpuriousModel(**kw)


def test_invalid_choices_name_the_argument():
    m = T.GaussianSpuriousModel(p_spu=0.9)
    with pytest.raises(ValueError, match="group='foo'"):
        T.zero_shot_accuracy(m, "foo")
    with pytest.raises(ValueError, match="prompt='bar'"):
        T.zero_shot_accuracy(m, "common", prompt="bar")
    with pytest.raises(ValueError, match="group='foo'"):
        T.supervised_accuracy(m, "foo")
    with pytest.raises(ValueError, match="rank=0"):
        T.clip_optimum(m, rank=0)
    with pytest.raises(ValueError, match="captions='some'"):
        T.caption_q("some")
    with pytest.raises(ValueError, match="captions=1.5"):
        T.caption_q(1.5)
    assert (T.caption_q("both"), T.caption_q("invariant"), T.caption_q(0.25)) == (1.0, 0.0, 0.25)
    with pytest.raises(ValueError, match="caption_kind='latent' only"):
        T.GaussianSpuriousModel(p_spu=0.9, caption_kind="class", caption_fidelity=0.5)


# ---------------------------------------------------------------- vectorisation


def test_grid_equals_pointwise_loop():
    """A 100 x 100 grid (four fields varying) equals the scalar loop. Each of the 10^4 points is checked
    against one of the four functions in turn (every function at 2500 points spread over the grid), which
    keeps the loop at a few seconds."""
    p = np.linspace(0.5, 1.0, 100)[:, None]
    s_inv = np.linspace(0.5, 1.5, 100)[:, None]
    mu = np.linspace(0.0, 4.0, 100)[None, :]
    s_xi = np.linspace(0.0, 1.0, 100)[None, :]
    fields = dict(d_image=8, caption_q=0.7)
    grid = T.GaussianSpuriousModel(p_spu=p, sigma_inv=s_inv, mu_spu=mu, sigma_xi=s_xi, **fields)
    fns = [
        lambda m: T.zero_shot_accuracy(m, "counter", "class"),
        lambda m: T.zero_shot_accuracy(m, "balanced", "mean"),
        lambda m: T.supervised_accuracy(m, "id"),
        lambda m: T.paper_bounds(m)["kappa1"],
    ]
    full = [f(grid) for f in fns]
    assert all(v.shape == (100, 100) for v in full)
    for i, j in itertools.product(range(100), range(100)):
        k = (i + j) % len(fns)
        pt = T.GaussianSpuriousModel(
            p_spu=p[i, 0], sigma_inv=s_inv[i, 0], mu_spu=mu[0, j], sigma_xi=s_xi[0, j], **fields
        )
        value = float(fns[k](pt))
        assert math.isclose(value, full[k][i, j], rel_tol=1e-12, abs_tol=1e-14), (
            k,
            i,
            j,
            value,
            full[k][i, j],
        )


def test_fields_that_do_not_broadcast_are_named_at_construction():
    with pytest.raises(ValueError, match=r"fields p_spu \(2,\), mu_spu \(3,\) do not broadcast"):
        T.GaussianSpuriousModel(p_spu=np.array([0.6, 0.9]), mu_spu=np.array([1.0, 2.0, 3.0]))


def test_the_model_keeps_its_own_copy_of_array_fields():
    p = np.array([0.6, 0.9])
    m = T.GaussianSpuriousModel(p_spu=p)
    before = T.zero_shot_accuracy(m, "counter")
    p[:] = 0.5  # the caller's array changes; the model must not
    np.testing.assert_array_equal(m.p_spu, [0.6, 0.9])
    np.testing.assert_array_equal(T.zero_shot_accuracy(m, "counter"), before)
    with pytest.raises(ValueError, match="read-only"):
        m.p_spu[0] = 0.7
