"""A user's own objective and data model, outside the package (docs/synthetic.md, "Your own components").

Run with:  PYTHONPATH=tests/plugin python -m synthetic --config-dir tests/plugin/conf objective=decoupled_clip
"""

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from synthetic.data import GaussianData, Latent
from synthetic.objectives import LearnedTemperature


@dataclasses.dataclass(frozen=True)
class DecoupledClip(LearnedTemperature):
    """Decoupled contrastive loss (Yeh et al., ECCV 2022) with a learnable temperature: InfoNCE whose
    denominators weight the positive pair by 1 - ``decouple`` (1: DCL, the positive left out; 0: CLIP's
    symmetric InfoNCE). No exact theory: it declares no THEORY, so its runs report none."""

    TRACED: ClassVar[tuple[str, ...]] = ("decouple",)  # traced: a sweep over it reuses one program
    logit_scale_init: float = 2.6592600369644043  # log(1 / 0.07); the base reads the field INIT_KEY names
    decouple: float = 1.0

    def __post_init__(self):  # the objective validates itself (the base checks the scale fields)
        super().__post_init__()
        if not 0.0 <= self.decouple <= 1.0:
            raise ValueError(f"objective.decouple={self.decouple!r}: expected a weight in [0, 1]")

    def loss(self, model, batch, hp):  # hp: this objective's traced fields (hp["decouple"])
        e_image, e_text = model.embed_image(batch.x_image), model.embed_text(batch.x_text)
        logits_BxB = jnp.exp(model.extra["logit_scale"][...]) * e_image @ e_text.T
        weight_BxB = 1.0 - hp["decouple"] * jnp.eye(
            logits_BxB.shape[0]
        )  # the positive's weight: 1 - decouple
        rows_B = jax.nn.logsumexp(logits_BxB, axis=1, b=weight_BxB)
        cols_B = jax.nn.logsumexp(logits_BxB, axis=0, b=weight_BxB)
        return 0.5 * (rows_B.mean() + cols_B.mean()) - jnp.diagonal(logits_BxB).mean()


@dataclasses.dataclass(frozen=True)
class ShiftedGaussian(GaussianData):
    """The paper's model with every image latent shifted by ``shift`` (0: the built-in)."""

    TRACED: ClassVar[tuple[str, ...]] = (*GaussianData.TRACED, "shift")
    shift: float = 0.0
    prompts = GaussianData.prompts  # inherited on purpose: the shift moves image latents, not captions

    def latent(self, key, n, p_spu, hp) -> Latent:
        lat = super().latent(key, n, p_spu, hp)
        return lat._replace(z_image=lat.z_image + hp["shift"])

    def theory_model(self, rho: float = 1.0):  # declared: the exact theory covers shift = 0 only
        return super().theory_model(rho) if self.shift == 0 else None

    def theory_note(self):
        return super().theory_note() or (f"data.shift={self.shift}: shifted latents" if self.shift else None)
