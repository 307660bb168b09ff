"""Exact population analysis of the paper's data model and linearised CLIP objective (section 6).

Pure numpy/scipy; imports nothing from synthetic/ or realdata/. Derivation and the comparison with the
printed Theorem 6.2: docs/theory.md. ``python -m theory.bound_map`` tabulates where the printed bound holds.

Beside the closed forms, ``theory.runrecord`` is the run record every app shares (results.json's name,
statuses, writer and reader; configs and trackers): the lowest layer, standard library and numpy only, so it
lives in the one package every other may import; this ``__init__`` loads nothing eagerly (PEP 562), so
importing the record costs no scipy.
"""

import importlib

#: Public name -> the module defining it; imported on first use (PEP 562), so ``import theory.model`` or a
#: reader of results needs no scipy until a closed form is asked for.
_HOME = {
    "OBJECTIVES": "theory.contrastive",
    "ContrastiveOptimum": "theory.contrastive",
    "contrastive_loss": "theory.contrastive",
    "contrastive_optimum": "theory.contrastive",
    "contrastive_rule": "theory.contrastive",
    "prediction_applies": "theory.contrastive",
    "prediction_reduction": "theory.contrastive",
    "GROUPS": "theory.exact",
    "PROMPTS": "theory.exact",
    "clip_optimum": "theory.exact",
    "linear_rule_accuracy": "theory.exact",
    "paper_bounds": "theory.exact",
    "prompt_latent": "theory.exact",
    "supervised_accuracy": "theory.exact",
    "supervised_direction": "theory.exact",
    "theorem_assumptions_hold": "theory.exact",
    "zero_shot_accuracy": "theory.exact",
    "CAPTIONS": "theory.model",
    "GaussianSpuriousModel": "theory.model",
    "caption_q": "theory.model",
}


def __getattr__(name: str):
    if name in _HOME:
        value = getattr(importlib.import_module(_HOME[name]), name)
        globals()[name] = value
        return value
    try:  # a submodule (theory.exact ...), as the eager imports used to bind
        return importlib.import_module(f"theory.{name}")
    except ModuleNotFoundError:
        raise AttributeError(f"module 'theory' has no attribute {name!r}") from None


def __dir__():
    return sorted([*globals(), *_HOME])


__all__ = list(_HOME)
