"""The paper's invariant + spurious Gaussian data model (Definition 6.1): one definition for the package.

Label y is uniform on {-1, +1}; the spurious attribute a equals y with probability ``p_spu`` and -y
otherwise. The latent is z = [z_inv, z_spu] with z_inv ~ N(mu_inv * y, sigma_inv^2) and
z_spu ~ N(mu_spu * a, sigma_spu^2). Each modality M is x_M = D_M z_M + xi_M with D_M a d_M x 2 matrix
with orthonormal columns and xi_M ~ N(0, sigma_xi^2 / d_M I).

Captions: the paper's text latent is z itself. ``caption_q`` generalises that: the caption names the
background (carries z_spu) with probability q, independently per pair, so z_T = [z_inv, B * z_spu] with
B ~ Bernoulli(q). q = 1 is the paper ("both" features), q = 0 captions that never name the background
("invariant" only).

What a caption says about the invariant feature (``caption_kind``, ``caption_fidelity`` = r): the caption's
invariant part is t_inv = mu_inv y + sigma_inv (r eps + sqrt(1 - r^2) eps') for ``caption_kind="latent"``
(eps = (z_inv - mu_inv y) / sigma_inv the image's own standardised deviation, eps' ~ N(0, 1) independent;
r = 1, the default, is the paper's t_inv = z_inv, r = 0 a caption as variable as the image but about another
instance of the class), and t_inv = mu_inv y, the class alone, for ``caption_kind="class"``. So
z_T = [t_inv, B z_spu].

Every numeric field may be a numpy array; fields broadcast against each other, so a whole parameter
grid is one model and every closed form in :mod:`theory.exact` is evaluated on it at once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from theory.runrecord import expect

#: Named caption models -> probability that the caption names the background.
CAPTIONS = {"both": 1.0, "invariant": 0.0}
#: What a caption's invariant part is: the image's own z_inv up to fidelity r ("latent"), or the class code.
CAPTION_KINDS = ("latent", "class")


def caption_q(captions: str | float) -> float:
    """Map a caption model ("both", "invariant", or a probability q in [0, 1]) to q."""
    if isinstance(captions, str):
        expect(
            captions in CAPTIONS, "captions", captions, f"one of {sorted(CAPTIONS)} or a float q in [0, 1]"
        )
        return CAPTIONS[captions]
    q = float(captions)
    expect(0.0 <= q <= 1.0, "captions", captions, "a probability q in [0, 1]")
    return q


#: Largest magnitude of a mean or a standard deviation: the closed forms square them twice (K = E[z z^T],
#: then the rule's variance), and beyond this float64 overflows (mu_spu = 1e200 gave NaN, not an error).
MAX_SCALE = 1e30


def _check(name: str, value, ok, expected: str) -> None:
    flat = np.asarray(value, dtype=object).ravel()
    if any(isinstance(v, str | bytes | bool | np.bool_) for v in flat):  # '0.9' would be stored as text
        shown = value if np.ndim(value) == 0 else f"an array holding {type(flat[0]).__name__} values"
        raise ValueError(f"{name}={shown!r}: expected {expected} (a number, not {type(flat[0]).__name__})")
    arr = np.asarray(value, dtype=float)
    good = np.isfinite(arr) & ok(arr)
    if not good.all():
        bad = arr[~good] if arr.ndim else arr
        shown = value if arr.ndim == 0 else f"array with {bad.size} bad entries, e.g. {bad.flat[0]!r}"
        raise ValueError(f"{name}={shown}: expected {expected}")


@dataclass(frozen=True)
class GaussianSpuriousModel:
    """Parameters of the data model. Validated on construction; fields may be broadcastable arrays.

    Args:
        p_spu: P(a = y) in the training distribution, in [0, 1] (the paper uses [1/2, 1]).
        mu_inv: mean magnitude of the invariant feature (the theorem fixes it to 1).
        mu_spu: mean magnitude of the spurious feature.
        sigma_inv: standard deviation of z_inv, > 0.
        sigma_spu: standard deviation of z_spu, >= 0.
        sigma_xi: total noise scale per modality (per-coordinate variance sigma_xi^2 / d_M), >= 0.
        d_image, d_text: ambient dimensions, >= 2 (integers).
        rho: weight of the ||W_I^T W_T||_F^2 regulariser in the linearised CLIP loss, > 0.
        caption_q: probability that a caption names the background (1: the paper, 0: never).
        caption_fidelity: r in [0, 1], the correlation of the caption's invariant part with the image's own
            deviation z_inv - mu_inv y (1: the paper's exact copy). Only for caption_kind "latent".
        caption_kind: "latent" (t_inv = mu_inv y + sigma_inv (r eps + sqrt(1 - r^2) eps')) or "class"
            (t_inv = mu_inv y: the caption carries the class, nothing of the instance); a string.
    """

    p_spu: float
    mu_inv: float = 1.0
    mu_spu: float = 2.0
    sigma_inv: float = 1.0
    sigma_spu: float = 0.5
    sigma_xi: float = 0.0
    d_image: int = 64
    d_text: int = 64
    rho: float = 1.0
    caption_q: float = 1.0
    caption_fidelity: float = 1.0
    caption_kind: str = "latent"

    def __post_init__(self):
        # Own copies (read-only) of array fields: mutating the caller's array later cannot change the model.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray | list | tuple):
                arr = np.array(value, dtype=float)
                arr.setflags(write=False)
                object.__setattr__(self, f.name, arr)
        shapes = {f.name: np.shape(getattr(self, f.name)) for f in _numeric(self)}
        try:
            np.broadcast_shapes(*shapes.values())
        except ValueError:
            arrays = {k: v for k, v in shapes.items() if v != ()}
            raise ValueError(
                "fields " + ", ".join(f"{k} {v}" for k, v in arrays.items()) + " do not broadcast together: "
                "expected scalars or arrays of broadcastable shapes (e.g. a grid from np.meshgrid)"
            ) from None
        _check("p_spu", self.p_spu, lambda v: (v >= 0) & (v <= 1), "a probability in [0, 1]")
        _check(
            "mu_inv",
            self.mu_inv,
            lambda v: np.abs(v) <= MAX_SCALE,
            f"a finite number, |mu_inv| <= {MAX_SCALE:g}",
        )
        _check(
            "mu_spu",
            self.mu_spu,
            lambda v: np.abs(v) <= MAX_SCALE,
            f"a finite number, |mu_spu| <= {MAX_SCALE:g}",
        )
        small = f"<= {MAX_SCALE:g}"
        _check(
            "sigma_inv",
            self.sigma_inv,
            lambda v: (v > 0) & (v <= MAX_SCALE),
            f"a standard deviation > 0, {small}",
        )
        _check(
            "sigma_spu",
            self.sigma_spu,
            lambda v: (v >= 0) & (v <= MAX_SCALE),
            f"a standard deviation >= 0, {small}",
        )
        _check(
            "sigma_xi",
            self.sigma_xi,
            lambda v: (v >= 0) & (v <= MAX_SCALE),
            f"a standard deviation >= 0, {small}",
        )
        for name in ("d_image", "d_text"):
            _check(name, getattr(self, name), lambda v: (v >= 2) & (v == np.round(v)), "an integer >= 2")
        _check("rho", self.rho, lambda v: v > 0, "a regularisation weight > 0")
        _check("caption_q", self.caption_q, lambda v: (v >= 0) & (v <= 1), "a probability in [0, 1]")
        kind = self.caption_kind
        expect(
            isinstance(kind, str) and kind in CAPTION_KINDS,
            "caption_kind",
            kind,
            f"one of {list(CAPTION_KINDS)}",
        )
        _check(
            "caption_fidelity",
            self.caption_fidelity,
            lambda v: (v >= 0) & (v <= 1),
            "a correlation in [0, 1]",
        )
        if self.caption_kind == "class" and np.any(np.asarray(self.caption_fidelity, float) != 1):
            raise ValueError(
                f"caption_fidelity={self.caption_fidelity}: applies to caption_kind='latent' only; class "
                "captions carry no instance content (leave caption_fidelity at its default 1)"
            )

    def replace(self, **changes) -> GaussianSpuriousModel:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def asdict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def shape(self) -> tuple[int, ...]:
        """Broadcast shape of all fields: the shape of every scalar result (() for a single point)."""
        return np.broadcast_shapes(*(np.shape(getattr(self, f.name)) for f in _numeric(self)))

    def caption_copy(self):
        """E[(z_inv - mu_inv y)(t_inv - mu_inv y)] / sigma_inv^2: what the caption shares with the image's own
        invariant deviation (r for "latent" captions, 0 for "class")."""
        r = np.asarray(self.caption_fidelity, float)
        return np.zeros_like(r) if self.caption_kind == "class" else r

    # ---- moments shared by every closed form (latent coordinates) ----
    @property
    def noise_var_image(self):
        """Variance of the image noise projected on one latent direction: sigma_xi^2 / d_image."""
        return np.asarray(self.sigma_xi, float) ** 2 / np.asarray(self.d_image, float)

    def class_mean(self):
        """E[z | y = +1] under the training distribution, shape (..., 2)."""
        return _stack(
            np.asarray(self.mu_inv, float),
            np.asarray(self.mu_spu, float) * (2 * np.asarray(self.p_spu, float) - 1),
        )

    def text_class_mean(self):
        """E[z_T | y = +1]: the caption latent's class mean (the paper's "mean" prompt), shape (..., 2)."""
        m = self.class_mean()
        return m * _stack(np.ones_like(np.asarray(self.caption_q, float)), np.asarray(self.caption_q, float))

    def second_moment(self):
        """E[z z^T] (= Cov z, since E z = 0), shape (..., 2, 2)."""
        mi, ms = np.asarray(self.mu_inv, float), np.asarray(self.mu_spu, float)
        off = mi * ms * (2 * np.asarray(self.p_spu, float) - 1)
        return _mat(
            mi**2 + np.asarray(self.sigma_inv, float) ** 2,
            off,
            off,
            ms**2 + np.asarray(self.sigma_spu, float) ** 2,
        )

    def cross_moment(self):
        """E[z z_T^T], the image-text cross moment in latent coordinates, shape (..., 2, 2).

        z_T = [t_inv, B z_spu] with B ~ Bernoulli(caption_q) independent of z, so the second column of
        E[z z^T] is scaled by caption_q; E[z_inv t_inv] = mu_inv^2 + c sigma_inv^2 with c = caption_copy()
        (E[z_spu t_inv] = E[z_spu z_inv]: the caption's own noise is independent of z_spu). caption_q = 1 and
        the default exact copy give E[z z^T] (the paper).
        """
        q = np.asarray(self.caption_q, float)
        K = self.second_moment() * _stack(np.ones_like(q), q)[..., None, :]
        lost = (1 - self.caption_copy()) * np.asarray(self.sigma_inv, float) ** 2
        return K - _mat(lost, 0 * lost, 0 * lost, 0 * lost)

    def group_mean(self, group: str):
        """E[z | y = +1] within a test group: common a = y, counter a = -y, shape (..., 2)."""
        signs = {"common": 1.0, "counter": -1.0}
        expect(group in signs, "group", group, f"one of {list(signs)}")
        sign = signs[group]
        mi, ms = np.broadcast_arrays(np.asarray(self.mu_inv, float), sign * np.asarray(self.mu_spu, float))
        return _stack(mi, ms)


def _numeric(model) -> list:
    return [f for f in dataclasses.fields(model) if f.name != "caption_kind"]


def _stack(a, b):
    a, b = np.broadcast_arrays(a, b)
    return np.stack([a, b], axis=-1)


def _mat(a, b, c, d):
    a, b, c, d = np.broadcast_arrays(a, b, c, d)
    return np.stack([np.stack([a, b], -1), np.stack([c, d], -1)], -2)
