"""A user's own objective and data model, outside the package (docs/synthetic.md, "Your own components").

Run with:  PYTHONPATH=tests/plugin python -m synthetic objective=weighted_linear_clip \
               "hydra.searchpath=[file://tests/plugin/conf]"
"""

import dataclasses
from typing import ClassVar

from synthetic.data import GaussianData, Latent
from synthetic.objectives import LinearClip, linear_clip_loss, product_frobenius_sq


@dataclasses.dataclass(frozen=True)
class WeightedLinearClip(LinearClip):
    """The linearised CLIP loss with its alignment term weighted by ``alignment`` (1: the built-in)."""

    TRACED: ClassVar[tuple[str, ...]] = ("rho", "alignment")  # both traced: a sweep reuses one program
    alignment: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        if not self.alignment > 0:
            raise ValueError(f"objective.alignment={self.alignment!r}: expected a weight > 0")

    def loss(self, model, batch, hp):
        base = linear_clip_loss(model.embed_image(batch.x_image), model.embed_text(batch.x_text))
        reg = product_frobenius_sq(model.image.matrix(), model.text.matrix())
        return hp["alignment"] * base + 0.5 * hp["rho"] * reg


@dataclasses.dataclass(frozen=True)
class ShiftedGaussian(GaussianData):
    """The paper's model with every image latent shifted by ``shift`` (0: the built-in)."""

    TRACED: ClassVar[tuple[str, ...]] = (*GaussianData.TRACED, "shift")
    shift: float = 0.0

    def latent(self, key, n, p_spu, hp) -> Latent:
        lat = super().latent(key, n, p_spu, hp)
        return lat._replace(z_image=lat.z_image + hp["shift"])

    def theory_model(self, rho: float = 1.0):
        return super().theory_model(rho) if self.shift == 0 else None

    def theory_note(self):
        return super().theory_note() or (f"data.shift={self.shift}: shifted latents" if self.shift else None)
