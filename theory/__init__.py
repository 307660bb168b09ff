"""Exact population analysis of the paper's data model and linearised CLIP objective (section 6).

Pure numpy/scipy; imports nothing from synthetic/ or realdata/. Derivation and the comparison with the
printed Theorem 6.2: docs/theory.md. ``python -m theory.bound_map`` tabulates where the printed bound holds.
"""

from theory.contrastive import (
    OBJECTIVES,
    ContrastiveOptimum,
    contrastive_loss,
    contrastive_optimum,
    contrastive_rule,
    prediction_applies,
)
from theory.exact import (
    GROUPS,
    PROMPTS,
    clip_optimum,
    linear_rule_accuracy,
    paper_bounds,
    prompt_latent,
    supervised_accuracy,
    supervised_direction,
    theorem_assumptions_hold,
    zero_shot_accuracy,
)
from theory.model import CAPTIONS, GaussianSpuriousModel, caption_q

__all__ = [
    "CAPTIONS",
    "OBJECTIVES",
    "ContrastiveOptimum",
    "contrastive_loss",
    "contrastive_optimum",
    "contrastive_rule",
    "prediction_applies",
    "GROUPS",
    "PROMPTS",
    "GaussianSpuriousModel",
    "caption_q",
    "clip_optimum",
    "linear_rule_accuracy",
    "paper_bounds",
    "prompt_latent",
    "supervised_accuracy",
    "supervised_direction",
    "theorem_assumptions_hold",
    "zero_shot_accuracy",
]
