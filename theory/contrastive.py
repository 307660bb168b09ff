"""Population optimum of InfoNCE (clip) and SigLIP (siglip) with linear encoders (docs/theory.md sec 9).

Setting: the paper's binary model with captions that name the background with probability q, linear
encoders g_I(x) = W_I x, g_T(t) = W_T t of width h, L2-normalised embeddings, a learnable logit scale tau
clamped to [1, 100] (as open_clip and synthetic/objectives.py) and, for SigLIP, a learnable bias b.

Noisy data (sigma_xi > 0): the G = 0 reduction (``_noisy_joint_weights``, docs/theory.md 9.9), marked by
``prediction_reduction``.

Reduction (exact when sigma_xi = 0): the image is x_I = D_I z and the caption x_T = D_T z_T, so the
embeddings are normalize(A_I z) and normalize(A_T z_T) with A_I = W_I D_I, A_T = W_T D_T (h x 2). They
depend on z only through its direction phi, and z_T's direction is phi (caption names the background,
probability q) or sign(z_inv) e_1 (it does not). So the whole population loss is a finite sum over an angle
grid (phi has the closed-form density of a projected Gaussian mixture), the four columns of A_I, A_T
matter only through their Gram matrix (so width h >= 4 is the general case: we optimise A_I, A_T in
R^{min(h, 4) x 2}), and the loss, with its gradient, costs one N x (N + 2) matrix of cosines.

Batch: SigLIP's loss is a sum over pairs, so its expectation over a batch of B fresh pairs is exactly
E_pos[softplus(-(tau s + b))] + (B - 1) E_neg[softplus(tau s + b)]. InfoNCE's is not (a log of a sum);
we use the large-batch form log(e^{tau s_ii} / (B - 1) + E_neg[e^{tau s}]) (the B - 1 negatives replaced
by their mean, exact as B -> infinity; ``batch_size=None`` drops the positive from the denominator).

The optimum is found numerically (L-BFGS-B on the population loss, a few fixed starts, the best kept and
refined on finer angle grids until the accuracies settle): deterministic, a population quantity, no
sampling. Results are cached per parameter point. q = 0 is solved exactly (the invariant rule).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, logsumexp, ndtr, owens_t

from theory.model import GaussianSpuriousModel
from theory.runrecord import expect

try:  # the matrices here are tiny: BLAS threads only contend (5-20x slower on a shared machine)
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn, a core dependency
    threadpool_limits = None

CONTRASTIVE = ("clip", "siglip")
OBJECTIVES = ("linear_clip", *CONTRASTIVE)
LOGIT_SCALE_MAX = 100.0  # open_clip's clamp (synthetic ObjectiveConfig.logit_scale_max)
N_ANGLES = 180  # first angle grid; doubled until no accuracy moves by ACC_TOL or more
MAX_ANGLES = 1440
ACC_TOL = 1e-3
Q_MIN = 0.1  # 0 < q < Q_MIN: the loss is nearly flat in the rule's direction; no prediction (section 9.5)
DEFAULT_BATCH = {"clip": None, "siglip": 256}
NOISE_MAX = (
    0.0625  # largest per-direction noise variance sigma_xi^2 / d at which the noisy reduction is tested
)
EXACT_COPY = ("latent", 1.0, 0.0, 0.0)  # the paper's captions (t_inv = z_inv), noise-free
# cap tuples: (caption_kind, caption_fidelity, image noise variance per direction, text noise variance)


class ContrastiveOptimum(NamedTuple):
    """Population optimum in latent coordinates at one parameter point.

    A_image, A_text: (k, 2), k = min(h, 4): the encoders restricted to the latent plane, W_M D_M (defined up
    to a common rotation of the embedding space and a positive scale of each, which normalisation removes).
    logit_scale: tau at the optimum (with q < 1 and h >= 3 only an effective scale is determined, see
    docs/theory.md 9.5); bias: SigLIP's b (0 for clip); loss: the population loss there (InfoNCE with
    batch_size None: the large-batch form minus log(B - 1)). At q = 0 (exact solution) bias and loss are NaN.
    product: A_image^T A_text (2 x 2), the latent-coordinate analogue of ``clip_optimum``: the zero-shot rule
    for a prompt with latent e is w = A_image^T normalize(A_text e) (= product e / |A_text e|).
    """

    A_image: np.ndarray
    A_text: np.ndarray
    logit_scale: float
    bias: float
    loss: float
    product: np.ndarray


# ---------------------------------------------------------------- the angle distribution


def _angle_weights(model_point: tuple, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Grid phi_k (bin midpoints) and the probability of each bin under the training mixture of z.

    Each of the four components (y, a) is N(mu, diag(s_inv^2, s_spu^2)); the angle of a 2-D Gaussian
    N(mu, S) has density  exp(-c/2) / (2 pi sqrt|S| a) [1 + beta sqrt(2 pi) Phi(beta) exp(beta^2 / 2)]
    with a = d^T S^-1 d, beta = d^T S^-1 mu / sqrt(a), c = mu^T S^-1 mu, d = (cos phi, sin phi).
    """
    p, mu_inv, mu_spu, s_inv, s_spu = model_point
    phi = (np.arange(n) + 0.5) * (2 * np.pi / n)
    c, s = np.cos(phi), np.sin(phi)
    a_q = c**2 / s_inv**2 + s**2 / s_spu**2
    dens = np.zeros(n)
    for y in (1.0, -1.0):
        for agree, w in ((1.0, p), (-1.0, 1.0 - p)):
            if w == 0:
                continue
            m1, m2 = mu_inv * y, mu_spu * y * agree
            b_q = c * m1 / s_inv**2 + s * m2 / s_spu**2
            c_q = m1**2 / s_inv**2 + m2**2 / s_spu**2
            beta = b_q / np.sqrt(a_q)
            # exp(-c/2) * [1 + beta sqrt(2pi) Phi(beta) exp(beta^2/2)], with beta^2 <= c (Cauchy-Schwarz)
            core = np.exp(-c_q / 2) + beta * np.sqrt(2 * np.pi) * ndtr(beta) * np.exp((beta**2 - c_q) / 2)
            dens += 0.5 * w * core / (2 * np.pi * s_inv * s_spu * a_q)
    weights = dens * (2 * np.pi / n)
    return phi, weights / weights.sum()


def _joint_weights(model_point: tuple, cap: tuple, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Grid phi_k and P (n, n): the probability of (image angle in bin i, caption angle in bin j), the
    caption angle being that of [t_inv, z_spu] (the caption latent when it names the background).

    cap = (kind, r). "latent", r = 1: t_inv = z_inv, so the two angles are equal (P diagonal). "latent",
    r < 1: (z_inv, z_spu, t_inv) is Gaussian per mixture component, and both angles fix the point on a ray
    t v, v = sign(sin phi) (cos phi sin psi, sin phi sin psi, sin phi cos psi) (sin phi, sin psi of one sign,
    both that of z_spu): p(phi, psi) = |sin phi sin psi| int_0^inf t^2 N3(t v) dt, in closed form.
    "class": t_inv = mu_inv y, so psi fixes z_spu = mu_inv y tan psi (cos psi of the sign of mu_inv y)
    and phi then fixes z_inv = z_spu cot phi: a product of two normal densities and their Jacobians.
    Midpoint rule on the grid, normalised (docs/theory.md 9.2).
    """
    kind, r, n_img, n_txt = cap
    if n_img > 0 or n_txt > 0:
        raise ValueError("noisy data: the pair law is _noisy_joint_weights (the G = 0 reduction)")
    phi, w = _angle_weights(model_point, n)
    if kind == "latent" and r == 1.0:
        return phi, np.diag(w)
    p, mu_inv, mu_spu, s_inv, s_spu = model_point
    c, s = np.cos(phi), np.sin(phi)
    C1, S1, C2, S2 = c[:, None], s[:, None], c[None, :], s[None, :]  # rows: image angle, columns: caption
    same = S1 * S2 > 0
    dens = np.zeros((n, n))
    for y in (1.0, -1.0):
        for agree, wa in ((1.0, p), (-1.0, 1.0 - p)):
            if wa == 0:
                continue
            m = np.array([mu_inv * y, mu_spu * y * agree, mu_inv * y])
            if kind == "class":
                ok = same & (np.sign(C2) == np.sign(mu_inv * y))
                zs = mu_inv * y * S2 / C2  # (1, n)
                zi = zs * C1 / S1  # (n, n)
                f = (
                    np.exp(-0.5 * ((zs - m[1]) / s_spu) ** 2 - 0.5 * ((zi - m[0]) / s_inv) ** 2)
                    / (2 * np.pi * s_inv * s_spu)
                    * (abs(mu_inv) / C2**2)
                    * (np.abs(zs) / S1**2)
                )
            else:
                cov = np.array(
                    [[s_inv**2, 0.0, r * s_inv**2], [0.0, s_spu**2, 0.0], [r * s_inv**2, 0.0, s_inv**2]]
                )
                Q = np.linalg.inv(cov)
                sg = np.sign(S1)
                v = np.stack(np.broadcast_arrays(sg * C1 * S2, sg * S1 * S2, sg * S1 * C2))  # (3, n, n)
                a = np.einsum("inm,ij,jnm->nm", v, Q, v)
                b = np.einsum("inm,i->nm", v, Q @ m)
                beta = b / np.sqrt(a)
                bracket = np.maximum(
                    (beta**2 + 1) * ndtr(beta) + beta * np.exp(-0.5 * beta**2) / np.sqrt(2 * np.pi), 0
                )
                f = (
                    np.exp(0.5 * (beta**2 - m @ Q @ m))
                    * np.sqrt(2 * np.pi)
                    / a**1.5
                    * bracket
                    / ((2 * np.pi) ** 1.5 * np.sqrt(np.linalg.det(cov)))
                    * np.abs(S1 * S2)
                )
                ok = same
            dens += 0.5 * wa * np.where(ok, f, 0.0)
    return phi, dens / dens.sum()


def _phi2(h, k, rho):
    """P(Z_1 < h, Z_2 < k) for standard normals of correlation rho (|rho| < 1), through Owen's T."""
    h, k, rho = np.broadcast_arrays(*(np.asarray(v, float) for v in (h, k, rho)))
    s = np.sqrt(1 - rho**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_h = np.where(h != 0, owens_t(h, (k - rho * h) / (h * s)), np.where(k - rho * h >= 0, 0.25, -0.25))
        t_k = np.where(k != 0, owens_t(k, (h - rho * k) / (k * s)), np.where(h - rho * k >= 0, 0.25, -0.25))
    half = np.where((h * k < 0) | ((h * k == 0) & (h + k < 0)), 0.5, 0.0)
    return 0.5 * (ndtr(h) + ndtr(k)) - t_h - t_k - half


def _pos_moment(m1, m2, s1, s2, rho):
    """E[X Y; X > 0, Y > 0] for (X, Y) bivariate normal (means m, standard deviations s, correlation rho):
    with a = m1 / s1, b = m2 / s2 it is s1 s2 (ab L + a E[Z2; R] + b E[Z1; R] + E[Z1 Z2; R]), each term by
    Stein's lemma (R: Z1 > -a, Z2 > -b, L = P(R))."""
    a, b = m1 / s1, m2 / s2
    s = np.sqrt(1 - rho**2)
    dens = lambda x: np.exp(-0.5 * x**2) / np.sqrt(2 * np.pi)  # noqa: E731
    L = _phi2(a, b, rho)
    Fa, Fb = ndtr((b - rho * a) / s), ndtr((a - rho * b) / s)
    ez1 = dens(a) * Fa + rho * dens(b) * Fb
    ez2 = dens(b) * Fb + rho * dens(a) * Fa
    ez12 = rho * L - rho * a * dens(a) * Fa - rho * b * dens(b) * Fb + s * dens(a) * dens((b - rho * a) / s)
    return s1 * s2 * (a * b * L + a * ez2 + b * ez1 + ez12)


def _noisy_joint_weights(model_point: tuple, cap: tuple, q: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """sigma_xi > 0 with the encoders blind to the noise-only directions (G_M = 0, docs/theory.md 9.9):
    grid phi_k and P (n, n), the probability of (image angle bin i, caption angle bin j), both angles those
    of 2-D Gaussians u = z + eta_I, v = z_T + eta_T, jointly 4-D Gaussian per component (y, a, B).
    p(phi, psi) = int int rho_1 rho_2 N_4(rho_1 d(phi), rho_2 d(psi)) over the positive quadrant
    = e^{-(c - beta^T M^-1 beta)/2} 2 pi |M|^{-1/2} E[X Y; X, Y > 0] / ((2 pi)^2 |C|^{1/2}), (X, Y) ~
    N(M^-1 beta, M^-1), M_ij = d_i^T Q_ij d_j, beta_i = d_i^T (Q m)_i, c = m^T Q m, Q = C^-1."""
    kind, r, n_img, n_txt = cap
    p, mu_inv, mu_spu, s_inv, s_spu = model_point
    phi = (np.arange(n) + 0.5) * (2 * np.pi / n)
    d = np.stack([np.cos(phi), np.sin(phi)])  # (2, n)
    c_t, r_t = (0.0, 0.0) if kind == "class" else (1.0, r)
    _, w_img = _angle_weights((p, mu_inv, mu_spu, np.sqrt(s_inv**2 + n_img), np.sqrt(s_spu**2 + n_img)), n)
    P = np.zeros((n, n))
    for B, wb in ((1.0, q), (0.0, 1.0 - q)):  # B is independent of the image: P(phi, B) = w_B p(phi)
        if wb == 0:
            continue
        logs = []
        for y in (1.0, -1.0):
            for agree, wa in ((1.0, p), (-1.0, 1.0 - p)):
                if wa == 0:
                    continue
                m = np.array([mu_inv * y, mu_spu * y * agree, mu_inv * y, B * mu_spu * y * agree])
                C = np.diag(
                    [s_inv**2 + n_img, s_spu**2 + n_img, c_t * s_inv**2 + n_txt, B * s_spu**2 + n_txt]
                )
                C[0, 2] = C[2, 0] = r_t * s_inv**2
                C[1, 3] = C[3, 1] = B * s_spu**2
                Q = np.linalg.inv(C)
                Qm = Q @ m
                M11 = np.einsum("in,ij,jn->n", d, Q[:2, :2], d)[:, None]
                M22 = np.einsum("in,ij,jn->n", d, Q[2:, 2:], d)[None, :]
                M12 = d.T @ Q[:2, 2:] @ d
                b1, b2 = (d.T @ Qm[:2])[:, None], (d.T @ Qm[2:])[None, :]
                det = M11 * M22 - M12**2
                mu1, mu2 = (M22 * b1 - M12 * b2) / det, (M11 * b2 - M12 * b1) / det
                quad = b1 * mu1 + b2 * mu2
                sd1, sd2, corr = np.sqrt(M22 / det), np.sqrt(M11 / det), -M12 / np.sqrt(M11 * M22)
                mom = _pos_moment(mu1, mu2, sd1, sd2, corr)
                with np.errstate(divide="ignore"):
                    log_f = -0.5 * (m @ Qm - quad) + np.log(2 * np.pi) - 0.5 * np.log(det) + np.log(mom)
                norm = np.log(0.5 * wa) - 2 * np.log(2 * np.pi) - 0.5 * np.log(np.linalg.det(C))
                logs.append(np.where(mom > 0, log_f + norm, -np.inf))
        log_dens = logsumexp(np.stack(logs), axis=0)  # log-domain: near-diagonal laws do not underflow
        # Midpoint rule for the caption angle given the image angle, row by row, each row scaled to the exact
        # image-angle marginal (a 2-D Gaussian mixture's angle, 1-D closed form): a conditional narrower
        # than a bin keeps its mass (and sigma_xi -> 0 gives the noise-free law).
        cond = np.exp(log_dens - log_dens.max(1, keepdims=True))
        P += wb * cond / cond.sum(1, keepdims=True) * w_img[:, None]
    return phi, P


# ---------------------------------------------------------------- population losses


class _Problem(NamedTuple):
    Phi: np.ndarray  # (2, N) image directions
    Psi: np.ndarray  # (2, N + 2) caption directions: the grid, then +e_1, -e_1
    p_img: np.ndarray  # (N,) image marginal
    p_txt: np.ndarray  # (N + 2,) caption marginal
    W: np.ndarray  # (N, N + 2) probability of each (image, caption) positive pair
    k: int
    objective: str
    batch: float | None
    scale_max: float = LOGIT_SCALE_MAX  # the clamp on the logit scale tau (the run's logit_scale_max)


def _problem(
    model_point: tuple,
    q: float,
    k: int,
    objective: str,
    batch,
    n: int,
    scale_max: float = LOGIT_SCALE_MAX,
    cap: tuple = EXACT_COPY,
) -> _Problem:
    if cap[2] > 0 or cap[3] > 0:  # noisy: captions with and without the background both have a 2-D law
        phi, P = _noisy_joint_weights(model_point, cap, q, n)
        Phi = np.stack([np.cos(phi), np.sin(phi)])
        Psi = np.concatenate([Phi, np.array([[1.0, -1.0], [0.0, 0.0]])], axis=1)
        W = np.concatenate([P, np.zeros((n, 2))], 1)
        return _Problem(Phi, Psi, W.sum(1), W.sum(0), W, k, objective, batch, float(scale_max))
    phi, P = _joint_weights(model_point, cap, n)
    Phi = np.stack([np.cos(phi), np.sin(phi)])
    Psi = np.concatenate([Phi, np.array([[1.0, -1.0], [0.0, 0.0]])], axis=1)
    # a caption that omits the background is [t_inv, 0]: +-e_1 by sign(t_inv) = sign(cos psi)
    pos = Phi[0] > 0
    W = np.concatenate(
        [q * P, (1 - q) * P[:, pos].sum(1, keepdims=True), (1 - q) * P[:, ~pos].sum(1, keepdims=True)], 1
    )
    return _Problem(Phi, Psi, W.sum(1), W.sum(0), W, k, objective, batch, float(scale_max))


def _unpack(theta: np.ndarray, k: int):
    A_I = theta[: 2 * k].reshape(k, 2)
    A_T = theta[2 * k : 4 * k].reshape(k, 2)
    return A_I, A_T, theta[4 * k], theta[4 * k + 1] if theta.size > 4 * k + 1 else 0.0


def _normalize(X):
    norm = np.sqrt(np.sum(X**2, axis=0, keepdims=True))
    norm = np.maximum(norm, 1e-12)
    return X / norm, norm


def _loss_and_grad(theta: np.ndarray, pb: _Problem) -> tuple[float, np.ndarray]:
    """Population loss and its gradient in (A_I, A_T, log tau[, b])."""
    A_I, A_T, log_tau, b = _unpack(theta, pb.k)
    tau = np.exp(log_tau)
    U, nU = _normalize(A_I @ pb.Phi)  # (k, N)
    V, nV = _normalize(A_T @ pb.Psi)  # (k, M)
    C = U.T @ V  # (N, M) cosines
    S = tau * C
    W = pb.W
    extra = {}
    if pb.objective == "clip":
        E = np.exp(S - tau)  # <= 1, no overflow
        loss = -2 * np.sum(W * S)  # the positive logit, once per direction
        G = -2 * W  # dL/dS
        own = E / (pb.batch - 1) if pb.batch is not None else None
        for axis in (1, 0):  # image-anchored (mean over captions), caption-anchored (over images)
            M = E @ pb.p_txt if axis == 1 else pb.p_img @ E  # mean of e^{S - tau} over the negatives
            Mb = M[:, None] if axis == 1 else M[None, :]
            if own is None:  # the anchor's own term dropped: log M per anchor, weighted by its marginal
                marg = pb.p_img if axis == 1 else pb.p_txt
                loss += np.sum(marg * (np.log(M) + tau))
                dM = marg / M
            else:
                Dn = own + Mb
                loss += np.sum(W * (np.log(Dn) + tau))
                G += W * own / Dn
                dM = (W / Dn).sum(axis)
            G += (dM[:, None] * E * pb.p_txt[None, :]) if axis == 1 else (E * pb.p_img[:, None] * dM[None, :])
        loss, G = 0.5 * loss, 0.5 * G
        if pb.batch is not None:  # the B - 1 negatives: log(e^{s_ii} + (B - 1) mean) = log(B - 1) + ...
            loss += np.log(pb.batch - 1)
    else:  # siglip: E_pos softplus(-(S + b)) + (B - 1) E_neg softplus(S + b)
        B = pb.batch
        assert B is not None, "SigLIP's loss is per batch: the batch size is required"
        Z = S + b
        loss = np.sum(W * np.logaddexp(0, -Z))
        G = -W * expit(-Z)
        neg_w = (B - 1) * np.outer(pb.p_img, pb.p_txt)
        loss += np.sum(neg_w * np.logaddexp(0, Z))
        G += neg_w * expit(Z)
        extra["b"] = G.sum()
    dC = tau * G
    d_log_tau = np.sum(G * C) * tau
    dU, dV = V @ dC.T, U @ dC
    dX = (dU - U * np.sum(U * dU, axis=0, keepdims=True)) / nU
    dY = (dV - V * np.sum(V * dV, axis=0, keepdims=True)) / nV
    grad = [(dX @ pb.Phi.T).ravel(), (dY @ pb.Psi.T).ravel(), [d_log_tau]]
    if pb.objective == "siglip":
        grad.append([extra["b"]])
    return float(loss), np.concatenate(grad)


# ---------------------------------------------------------------- the optimum


def _starts(
    Sigma: np.ndarray, k: int, objective: str, scale_max: float = LOGIT_SCALE_MAX
) -> list[np.ndarray]:
    """Fixed starting points: encoders at whitening (A_I = A_T = Sigma^-1/2) or the identity, each with a
    fixed perturbation into the extra embedding dimensions (k > 2), which the optimum uses when q < 1;
    logit scale (and SigLIP bias) at a few values, SigLIP's own initialisation (10, -10) among them."""
    evals, evecs = np.linalg.eigh(Sigma)
    white = evecs @ np.diag(evals**-0.5) @ evecs.T
    rng = np.random.default_rng(0)
    scales = (
        ((scale_max,), (10.0,)) if objective == "clip" else ((10.0, -10.0), (30.0, -20.0), (100.0, -100.0))
    )
    cands = []
    for A in (white, np.eye(2)):
        a = np.zeros((k, 2))
        a[: min(k, 2)] = (A / np.linalg.norm(A))[: min(k, 2)]
        a_i = a + 0.1 * rng.standard_normal((k, 2))
        a_t = a + 0.1 * rng.standard_normal((k, 2))
        for sc in scales:
            log_tau = np.log(min(sc[0], scale_max))  # every start inside the bounds
            cands.append(np.concatenate([a_i.ravel(), a_t.ravel(), [log_tau], sc[1:]]))
    return cands


def _bounds(k: int, objective: str, scale_max: float = LOGIT_SCALE_MAX) -> list:
    b = [(None, None)] * (4 * k) + [(0.0, np.log(scale_max))]
    return b + [(None, None)] if objective == "siglip" else b


def _minimize(theta0: np.ndarray, pb: _Problem, maxiter: int):
    return minimize(
        _loss_and_grad,
        theta0,
        args=(pb,),
        jac=True,
        method="L-BFGS-B",
        bounds=_bounds(pb.k, pb.objective, pb.scale_max),
        options={"maxiter": maxiter, "ftol": 1e-12, "gtol": 1e-8},
    )


def _accuracies(theta: np.ndarray, k: int, point: tuple, q: float, n_img: float = 0.0) -> np.ndarray:
    """Common and counter accuracy of the class- and mean-prompt rules (noise-free), the four numbers the
    prediction is about (the Gaussian formula of docs/theory.md section 3, written out here)."""
    p, mu_inv, mu_spu, s_inv, s_spu = point
    A_I, A_T, _, _ = _unpack(theta, k)
    out = []
    for e in (np.array([1.0, 0.0]), np.array([mu_inv, q * mu_spu * (2 * p - 1)])):
        w = A_I.T @ (A_T @ e)
        sd = np.sqrt(w[0] ** 2 * (s_inv**2 + n_img) + w[1] ** 2 * (s_spu**2 + n_img))
        for sign in (1.0, -1.0):
            out.append(ndtr((w[0] * mu_inv + sign * w[1] * mu_spu) / max(sd, 1e-300)))
    return np.array(out)


@functools.lru_cache(maxsize=4096)
def _optimum_point(
    point: tuple,
    q: float,
    k: int,
    objective: str,
    batch,
    n: int,
    scale_max: float = LOGIT_SCALE_MAX,
    cap: tuple = EXACT_COPY,
) -> ContrastiveOptimum:
    if threadpool_limits is None:
        return _solve_point(point, q, k, objective, batch, n, scale_max, cap)
    with threadpool_limits(limits=1, user_api="blas"):
        return _solve_point(point, q, k, objective, batch, n, scale_max, cap)


def _solve_point(
    point: tuple,
    q: float,
    k: int,
    objective: str,
    batch,
    n: int,
    scale_max: float = LOGIT_SCALE_MAX,
    cap: tuple = EXACT_COPY,
) -> ContrastiveOptimum:
    """Multi-start on a coarse angle grid (n // 3), the best start refined on the n-angle grid, then on
    grids of 2n, 4n, ... angles until no accuracy (class and mean prompt, common and counter) moves by more
    than ACC_TOL from one grid to the next (narrow mixture components at the clamp tau = 100 need more
    than 180 angles). NaN if that has not happened by MAX_ANGLES."""
    p, mu_inv, mu_spu, s_inv, s_spu = point
    off = mu_inv * mu_spu * (2 * p - 1)
    Sigma = np.array([[mu_inv**2 + s_inv**2, off], [off, mu_spu**2 + s_spu**2]])
    coarse = _problem(point, q, k, objective, batch, max(n // 3, 48), scale_max, cap)
    starts = _starts(Sigma, k, objective, scale_max)
    best = min((_minimize(th0, coarse, 400) for th0 in starts), key=lambda r: r.fun)
    res = _minimize(best.x, _problem(point, q, k, objective, batch, n, scale_max, cap), 400)
    converged = n >= MAX_ANGLES  # a grid this fine is taken as it is
    while not converged and n < MAX_ANGLES:
        n *= 2
        finer = _minimize(res.x, _problem(point, q, k, objective, batch, n, scale_max, cap), 400)
        moved = np.abs(_accuracies(finer.x, k, point, q, cap[2]) - _accuracies(res.x, k, point, q, cap[2]))
        converged = bool(np.all(moved < ACC_TOL))
        res = finer
    A_I, A_T, log_tau, b = _unpack(res.x, k)
    A_I, A_T = A_I / np.linalg.norm(A_I), A_T / np.linalg.norm(A_T)
    if not converged:
        A_I, A_T = np.full_like(A_I, np.nan), np.full_like(A_T, np.nan)
    return ContrastiveOptimum(A_I, A_T, float(np.exp(log_tau)), float(b), float(res.fun), A_I.T @ A_T)


# ---------------------------------------------------------------- public API


def prediction_applies(
    model: GaussianSpuriousModel,
    objective: str,
    encoder: str = "linear",
    rank: int | None = None,
    *,
    k: int = 2,
    render_depth: int = 0,
) -> str | None:
    """None when ``zero_shot_accuracy(model, ..., objective=objective)`` is a prediction for this run,
    else the reason it is not (a sentence for results.json's ``theory.note``).

    ``model`` may be a grid: the answer is None only if every point is covered. ``rank`` is the encoder
    width h (None: h >= 4). ``k`` (classes) and ``render_depth`` describe the data; ``encoder`` the towers.
    linear_clip: covered for linear encoders on the binary unrendered model (any noise, any rank).
    clip / siglip: additionally needs sigma_spu > 0, caption_q = 0 or >= Q_MIN = 0.1, width h >= 2, and
    per-direction noise variance sigma_xi^2 / d_M <= NOISE_MAX (with noise the prediction is the G = 0
    reduction, :func:`prediction_reduction`); see docs/theory.md section 9 for where trained runs land on it.
    """
    if objective not in OBJECTIVES:
        return f"no prediction for objective {objective!r} (theory covers {list(OBJECTIVES)})"
    if encoder != "linear":
        return f"no prediction for {encoder!r} encoders: the theory is for linear encoders"
    if k != 2:
        return f"no prediction for k = {k} classes: the theory is for the paper's binary model"
    if render_depth:
        return "no prediction for rendered (nonlinear) images: the theory is for x = D z + noise"
    if objective == "linear_clip":
        if rank is not None and rank < 2 and np.any(rank_one_tie(model)):
            return (
                f"no linear_clip prediction at width h = {rank}: the cross-covariance K has two equal "
                "singular values here, so the rank-1 optimum is not unique (every direction of a circle is "
                "optimal) and trained seeds land anywhere on it"
            )
        return None
    if rank is not None and rank < 2:
        return f"no {objective} prediction at width h = {rank}: normalised embeddings of width 1 are +-1"
    if np.any(_noise_var(model) > NOISE_MAX):
        return (
            f"no {objective} prediction with sigma_xi^2 / d > {NOISE_MAX}: the noisy prediction (the G = 0 "
            "reduction, docs/theory.md 9.9) is tested against trained runs only up to that noise"
        )
    q = np.asarray(model.caption_q, float)
    if np.any((q > 0) & (q < Q_MIN)):
        return (
            f"no {objective} prediction for 0 < caption_q < {Q_MIN}: the loss is nearly flat in the rule's "
            "direction there and the numerical optimum is not determined (accuracies within 0.01 of the "
            "invariant rule's)"
        )
    if np.any(np.asarray(model.sigma_spu, float) <= 0):
        return f"no {objective} prediction with sigma_spu = 0 (the latent angle has atoms)"
    if model.caption_kind == "class" and np.any(np.asarray(model.mu_inv, float) == 0):
        return f"no {objective} prediction for class captions with mu_inv = 0 (caption [0, 0]: no direction)"
    return None


def _is_int(x) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


def check_rank(rank) -> None:
    """``rank`` (the encoder width h) is None (unconstrained) or an integer >= 1."""
    expect(
        rank is None or (_is_int(rank) and rank >= 1),
        "rank",
        rank,
        "None or an integer >= 1 (the encoder width h)",
    )


def rank_one_tie(model: GaussianSpuriousModel) -> np.ndarray:
    """Where the rank-1 truncation of K = E[z z_T^T] is not unique: its two singular values are equal
    (e.g. p_spu = 1/2, mu_spu = mu_inv = 1, sigma_spu = sigma_inv = 1, caption_q = 1: K = 2 I)."""
    S = np.linalg.svd(model.cross_moment(), compute_uv=False)
    return np.isclose(S[..., 0], S[..., 1], rtol=1e-9, atol=0.0)


def _noise_var(model: GaussianSpuriousModel) -> np.ndarray:
    """The larger per-direction noise variance of the two modalities, sigma_xi^2 / d_M."""
    s2 = np.asarray(model.sigma_xi, float) ** 2
    return np.maximum(s2 / np.asarray(model.d_image, float), s2 / np.asarray(model.d_text, float))


def prediction_reduction(model: GaussianSpuriousModel, objective: str) -> str | None:
    """None where a covered prediction is exact (noise-free InfoNCE / SigLIP, linear_clip always); for noisy
    data (sigma_xi > 0) the sentence that marks it as the G = 0 reduction (results.json: theory.reduction)."""
    if objective not in CONTRASTIVE or not np.any(np.asarray(model.sigma_xi, float) > 0):
        return None
    return (
        "sigma_xi > 0: the G = 0 reduction (encoders blind to the d - 2 noise-only directions; exact if that "
        "is optimal, which is not proven), docs/theory.md 9.9; trained InfoNCE runs within 0.009 of it for "
        f"sigma_xi^2 / d <= {NOISE_MAX}, caption_q 0, 0.5, 1 (SigLIP 0.5), p_spu = 0.9; SigLIP at "
        "caption_q = 1 did not reach it in 3000 steps (loss 4.95 against its 4.82)"
    )


def _points(model: GaussianSpuriousModel):
    """Per-point scalars of a (possibly array) model:
    (index, (p, mu_inv, mu_spu, s_inv, s_spu), q, (caption_kind, caption_fidelity))."""
    fields = ("p_spu", "mu_inv", "mu_spu", "sigma_inv", "sigma_spu", "caption_q", "caption_fidelity")
    shape = model.shape
    arrs = [np.broadcast_to(np.asarray(getattr(model, f), float), shape) for f in fields]
    noise = [
        np.broadcast_to(np.asarray(getattr(model, f), float), shape)
        for f in ("sigma_xi", "d_image", "d_text")
    ]
    for idx in np.ndindex(shape):
        vals = tuple(float(a[idx]) for a in arrs)
        s2, d_i, d_t = (float(a[idx]) for a in noise)
        yield idx, vals[:5], vals[5], (model.caption_kind, vals[6], s2**2 / d_i, s2**2 / d_t)


def _invariant_optimum(k: int, scale_max: float = LOGIT_SCALE_MAX) -> ContrastiveOptimum:
    """q = 0: both towers read z_inv only (A = e_1 e_1^T); see docs/theory.md section 9.2."""
    A = np.zeros((k, 2))
    A[0, 0] = 1.0
    return ContrastiveOptimum(A, A.copy(), scale_max, float("nan"), float("nan"), A.T @ A)


def contrastive_optimum(
    model: GaussianSpuriousModel,
    objective: str = "clip",
    rank: int | None = None,
    batch_size: int | None = None,
    logit_scale_max: float = LOGIT_SCALE_MAX,
) -> ContrastiveOptimum:
    """Population optimum of InfoNCE (``"clip"``) or SigLIP (``"siglip"``) with linear encoders, in latent
    coordinates, one per point of ``model`` (fields of shape model.shape (+ (k, 2) / (2, 2))).

    W_M D_M = A_M at the optimum (sigma_xi = 0: the part of W_M off span(D_M) never sees data; sigma_xi > 0:
    the G = 0 reduction, where that part is 0, :func:`prediction_reduction`).
    ``rank``: the encoder width h (None: h >= 4, the general case; h = 2, 3 constrain the embedding).
    ``batch_size``: B of the training batches; None = the large-batch limit. InfoNCE default None; SigLIP
    default 256 (its loss depends on B through the (B - 1) negatives per positive).
    ``logit_scale_max``: the clamp on the logit scale (open_clip's 100; a run's objective.logit_scale_max).
    Points where :func:`prediction_applies` gives a reason are NaN.
    """
    expect(
        objective in CONTRASTIVE,
        "objective",
        objective,
        f"one of {list(CONTRASTIVE)} (linear_clip: clip_optimum)",
    )
    check_rank(rank)
    if batch_size is None:
        batch_size = DEFAULT_BATCH[objective]
    expect(
        objective != "siglip" or batch_size is not None,
        "batch_size",
        batch_size,
        "a finite batch size with objective='siglip' (its loss depends on B)",
    )
    expect(
        batch_size is None or (_is_int(batch_size) and batch_size >= 2),
        "batch_size",
        batch_size,
        "None or an integer >= 2",
    )
    finite_number = isinstance(logit_scale_max, int | float | np.floating | np.integer) and not isinstance(
        logit_scale_max, bool
    )
    expect(
        finite_number and bool(np.isfinite(logit_scale_max)) and logit_scale_max >= 1,
        "logit_scale_max",
        logit_scale_max,
        "a finite number >= 1",
    )
    kk = 4 if rank is None else min(int(rank), 4)
    shape = model.shape
    out = {
        "A_image": np.full(shape + (kk, 2), np.nan),
        "A_text": np.full(shape + (kk, 2), np.nan),
        "logit_scale": np.full(shape, np.nan),
        "bias": np.full(shape, np.nan),
        "loss": np.full(shape, np.nan),
        "product": np.full(shape + (2, 2), np.nan),
    }
    for idx, point, q, cap in _points(model):
        sub = model.replace(
            **{
                f: float(np.broadcast_to(np.asarray(getattr(model, f), float), shape)[idx])
                for f in ("sigma_xi", "sigma_spu", "mu_inv")
            }
        )
        if prediction_applies(sub, objective, rank=rank) is not None:
            continue
        scale_max = float(logit_scale_max)
        opt = (
            _invariant_optimum(kk, scale_max)
            if q == 0 and cap == EXACT_COPY
            else _optimum_point(
                point,
                q,
                kk,
                objective,
                None if batch_size is None else int(batch_size),
                N_ANGLES,
                scale_max,
                cap,
            )
        )
        for name, val in zip(ContrastiveOptimum._fields, opt, strict=True):
            out[name][idx] = val
    return ContrastiveOptimum(**out)


def contrastive_loss(
    model: GaussianSpuriousModel,
    A_image: np.ndarray,
    A_text: np.ndarray,
    logit_scale: float,
    bias: float = 0.0,
    objective: str = "clip",
    batch_size: int | None = None,
) -> float:
    """The population loss the optimum minimises, at one (scalar) model point and given encoders
    A_M = W_M D_M (k x 2), logit scale and (SigLIP) bias: the expected loss of a batch of B fresh pairs
    (SigLIP: exact; InfoNCE: the large-batch form, minus log(B - 1) when ``batch_size`` is None)."""
    if model.shape != ():
        raise ValueError("contrastive_loss takes a single parameter point (model.shape == ())")
    expect(objective in CONTRASTIVE, "objective", objective, f"one of {list(CONTRASTIVE)}")
    batch_size = DEFAULT_BATCH[objective] if batch_size is None else batch_size
    ((_, point, q, cap),) = _points(model)
    A_image, A_text = np.asarray(A_image, float), np.asarray(A_text, float)
    pb = _problem(point, q, A_image.shape[0], objective, batch_size, N_ANGLES * 4, cap=cap)
    theta = [A_image.ravel(), A_text.ravel(), [np.log(logit_scale)]]
    if objective == "siglip":
        theta.append([bias])
    return _loss_and_grad(np.concatenate(theta), pb)[0]


def contrastive_rule(
    model: GaussianSpuriousModel,
    prompt_latent_plus: np.ndarray,
    objective: str = "clip",
    rank: int | None = None,
    batch_size: int | None = None,
    logit_scale_max: float = LOGIT_SCALE_MAX,
) -> np.ndarray:
    """Zero-shot rule in latent coordinates, shape (..., 2): w = A_I^T normalize(A_T e_{+1}).

    Scores are normalize(A_I u) . normalize(A_T e_c); normalising the image embedding does not change the
    argmax, and with e_{-1} = -e_{+1} the prompt norms are equal, so the prediction is sign(w . u).
    """
    opt = contrastive_optimum(model, objective, rank, batch_size, logit_scale_max)
    t = np.einsum("...kj,...j->...k", opt.A_text, prompt_latent_plus)
    t = t / np.linalg.norm(t, axis=-1, keepdims=True)
    return np.einsum("...kj,...k->...j", opt.A_image, t)
