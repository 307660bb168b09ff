"""Exact population results for the linearised CLIP objective and the supervised baseline.

All functions take a :class:`theory.GaussianSpuriousModel` whose fields may be arrays and broadcast
over them (numpy), so a whole parameter grid is one call. The derivation is in ``docs/theory.md``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr  # standard normal CDF, vectorised

from theory.contrastive import LOGIT_SCALE_MAX, OBJECTIVES, check_rank, contrastive_rule, rank_one_tie
from theory.model import GaussianSpuriousModel
from theory.runrecord import expect

GROUPS = ("common", "counter", "balanced", "id")
PROMPTS = ("class", "mean")


def clip_optimum(model: GaussianSpuriousModel, rank: int | None = None) -> np.ndarray:
    """Latent-coordinate optimum K of the linearised CLIP loss, shape (..., 2, 2).

    At the population optimum W_I^T W_T = D_I K D_T^T / rho, with K = E[z z_T^T], the image-text
    cross-covariance in latent coordinates (the empirical optimum is (n / (n-1)) C_hat / rho).
    With captions that name the background with probability q, K's second column is scaled by q.

    ``rank``: encoders of width h < 2 constrain W_I^T W_T to rank h; the constrained optimum is then
    the rank-h truncated SVD of K (Eckart-Young; Nakada et al. 2023). ``None`` or h >= 2: unconstrained.
    Where K's two singular values are equal that truncation is not unique (:func:`rank_one_tie`): NaN there.
    """
    K = model.cross_moment()
    if rank is None:
        return K
    check_rank(rank)
    if rank >= 2:
        return K
    U, S, Vt = np.linalg.svd(K)
    K1 = (U[..., :, :rank] * S[..., None, :rank]) @ Vt[..., :rank, :]
    return np.where(rank_one_tie(model)[..., None, None], np.nan, K1)


def linear_rule_accuracy(model: GaussianSpuriousModel, w: np.ndarray, group: str) -> np.ndarray:
    """Accuracy of the rule y_hat = sign(w^T (D_I^T x_I)) on a test group, exactly.

    Given y and a, y * w^T u with u = z + D_I^T xi is Gaussian with mean w_1 mu_inv + w_2 mu_spu (a y)
    and variance w_1^2 (sigma_inv^2 + s) + w_2^2 (sigma_spu^2 + s), s = sigma_xi^2 / d_image, so the
    accuracy is Phi(mean / sd). ``w`` has shape (..., 2). A zero rule (sd = 0) guesses: 1/2 or 0/1.
    """
    expect(group in GROUPS, "group", group, f"one of {list(GROUPS)}")
    if group == "balanced":
        return 0.5 * (linear_rule_accuracy(model, w, "common") + linear_rule_accuracy(model, w, "counter"))
    if group == "id":
        p = np.asarray(model.p_spu, float)
        common = linear_rule_accuracy(model, w, "common")
        return p * common + (1 - p) * linear_rule_accuracy(model, w, "counter")
    w = np.asarray(w, float)
    expect(w.ndim > 0 and w.shape[-1] == 2, "w.shape", w.shape, "(..., 2), a rule in latent coordinates")
    s = model.noise_var_image
    var = w[..., 0] ** 2 * (np.asarray(model.sigma_inv, float) ** 2 + s) + w[..., 1] ** 2 * (
        np.asarray(model.sigma_spu, float) ** 2 + s
    )
    mean = np.sum(w * model.group_mean(group), axis=-1)
    sd = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(sd > 0, mean / np.where(sd > 0, sd, 1.0), np.sign(mean) * np.inf)
    return np.where((sd == 0) & (mean == 0), 0.5, ndtr(ratio))


def prompt_latent(model: GaussianSpuriousModel, prompt: str) -> np.ndarray:
    """Latent e_{+1} of the class-(+1) prompt, shape (..., 2); e_{-1} = -e_{+1}.

    "class": [1, 0], the prompt the paper's proof uses. "mean": E[z_T | y = +1] under the training
    distribution, the prompt the paper's text names.
    """
    expect(prompt in PROMPTS, "prompt", prompt, f"one of {list(PROMPTS)}")
    if prompt == "mean":
        return model.text_class_mean()
    return np.broadcast_to(np.array([1.0, 0.0]), model.shape + (2,))


def zero_shot_accuracy(
    model: GaussianSpuriousModel,
    group: str,
    prompt: str = "class",
    rank: int | None = None,
    objective: str = "linear_clip",
    batch_size: int | None = None,
    logit_scale_max: float = LOGIT_SCALE_MAX,
) -> np.ndarray:
    """Exact zero-shot accuracy of the population optimum of ``objective`` on ``group``.

    group: "common" (a = y), "counter" (a != y), "balanced" (OOD test with p_spu = 1/2: the mean of the
    two), or "id" (the training mixture). prompt: "class" or "mean" (see :func:`prompt_latent`).

    objective "linear_clip" (default): the paper's linearised loss. The score of class c is
    g_I(x)^T g_T(D_T e_c) = (D_I^T x)^T K e_c / rho, so the rule is linear with w = K e_{+1}; the
    image-noise term sigma_xi^2 / d_image is included. ``rank``: encoder width h (truncated SVD if h < 2).

    objective "clip" (InfoNCE) / "siglip": linear encoders, L2-normalised embeddings, logit scale clamped
    at ``logit_scale_max`` (default 100, open_clip's; :func:`theory.contrastive.contrastive_optimum`,
    docs/theory.md section 9); ``rank`` is the width h (None: h >= 4), ``batch_size`` the training batch
    (InfoNCE default: the large-batch limit; SigLIP default 256). NaN where
    :func:`theory.prediction_applies` gives a reason (e.g. sigma_xi > 0).
    """
    expect(group in GROUPS, "group", group, f"one of {list(GROUPS)}")
    expect(prompt in PROMPTS, "prompt", prompt, f"one of {list(PROMPTS)}")
    expect(objective in OBJECTIVES, "objective", objective, f"one of {list(OBJECTIVES)}")
    if objective != "linear_clip":
        w = contrastive_rule(
            model, prompt_latent(model, prompt), objective, rank, batch_size, logit_scale_max
        )
        return linear_rule_accuracy(model, w, group)
    if batch_size is not None or logit_scale_max != LOGIT_SCALE_MAX:
        raise ValueError(
            "batch_size and logit_scale_max apply to objective='clip' / 'siglip' only "
            "(linear_clip: no dependence)"
        )
    K = clip_optimum(model, rank)
    w = np.einsum("...ij,...j->...i", K, prompt_latent(model, prompt))
    return linear_rule_accuracy(model, w, group)


def supervised_direction(model: GaussianSpuriousModel) -> np.ndarray:
    """Population least-squares classifier on image features, in latent coordinates, shape (..., 2).

    argmin_w E[(y - w^T x_I)^2] = Sigma_x^{-1} E[x_I y]; on span(D_I) this is
    (E[z z^T] + sigma_xi^2/d_image I)^{-1} E[z y]. The orthogonal complement carries only noise and gets
    weight 0, and the intercept is 0 because E[x_I] = 0 and E[y] = 0.
    """
    S = model.second_moment() + model.noise_var_image[..., None, None] * np.eye(2)
    # S[1, 1] = 0 only when z_spu is identically 0 and there is no noise (mu_spu = sigma_spu = sigma_xi = 0);
    # then S[0, 1] = E[z_inv z_spu] = 0 and E[z_spu y] = 0 too, and the minimum-norm minimiser (what least
    # squares on samples returns) gives z_spu weight 0. Setting S[1, 1] = 1 there keeps the solve regular
    # and yields exactly that weight.
    S[..., 1, 1] = np.where(S[..., 1, 1] == 0, 1.0, S[..., 1, 1])
    return np.linalg.solve(S, model.class_mean()[..., None])[..., 0]


def supervised_accuracy(model: GaussianSpuriousModel, group: str) -> np.ndarray:
    """Exact accuracy of the population least-squares linear classifier on ``group``."""
    return linear_rule_accuracy(model, supervised_direction(model), group)


def paper_bounds(model: GaussianSpuriousModel) -> dict[str, np.ndarray]:
    """Theorem 6.2 exactly as printed (it assumes mu_inv = 1; mu_inv and sigma_xi do not enter).

    den = sqrt((1 + s_inv^2)^2 s_inv^2 + (2 mu_spu p_spu - 1)^2 s_spu^2)
    kappa1 = (s_inv^2 + 2 - 2 mu_spu p_spu) / den,  kappa2 = (-2 mu_spu p_spu - s_inv^2) / den
    counter group: Err >= 1 - Phi(kappa1); common group: Acc >= 1 - Phi(kappa2) (both up to o(1)).
    """
    si2 = np.asarray(model.sigma_inv, float) ** 2
    ss2 = np.asarray(model.sigma_spu, float) ** 2
    mp = np.asarray(model.mu_spu, float) * np.asarray(model.p_spu, float)
    den = np.sqrt((1 + si2) ** 2 * si2 + (2 * mp - 1) ** 2 * ss2)
    k1 = (si2 + 2 - 2 * mp) / den
    k2 = (-2 * mp - si2) / den
    return {
        "kappa1": k1,
        "kappa2": k2,
        "counter_error_lower_bound": 1 - ndtr(k1),
        "common_accuracy_lower_bound": 1 - ndtr(k2),
    }


def theorem_assumptions_hold(model: GaussianSpuriousModel) -> np.ndarray:
    """The theorem's parameter assumptions that can be checked at a point (not the asymptotic ones):
    mu_inv = 1, sigma_inv > sigma_spu, mu_spu >= (sigma_inv^2 + 2) / 2."""
    si = np.asarray(model.sigma_inv, float)
    return (
        np.isclose(model.mu_inv, 1.0)
        & (si > np.asarray(model.sigma_spu, float))
        & (np.asarray(model.mu_spu, float) >= (si**2 + 2) / 2)
    )
