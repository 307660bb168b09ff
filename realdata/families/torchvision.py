"""torchvision ImageNet classifiers: their 1000 logits, with torchvision's eval transform for the weights.

``model.pretrained``: a weights name (IMAGENET1K_V1, DEFAULT), a state_dict file, or "" for random weights.
A state_dict file uses the transform of the model's first weights entry.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from realdata.families import Built
from theory.runrecord import expect

if TYPE_CHECKING:  # torch is imported where a model is built: a cached re-run imports none
    import torch

HEAD = "logits"


def _weights(mcfg):
    """(weights enum entry giving the transform, weights to load or None, weights id)."""
    import torchvision

    from realdata.models import check_name, file_weights_id

    name, pretrained = mcfg.name, mcfg.pretrained
    known = torchvision.models.list_models(module=torchvision.models)
    check_name("torchvision", name, known)
    weights_enum = torchvision.models.get_model_weights(name)
    base = next(iter(weights_enum))  # supplies the eval transform when weights come from a file
    if not pretrained:
        return base, None, "random"
    if file_id := file_weights_id(pretrained):
        return base, None, file_id
    names = [w.name for w in weights_enum]
    expect(
        pretrained in [*names, "DEFAULT"],
        "model.pretrained",
        pretrained,
        f"'', a weights file, DEFAULT or a weights name of {name!r}: {names}",
    )
    weights = weights_enum[pretrained] if pretrained != "DEFAULT" else weights_enum.DEFAULT
    return weights, weights, f"tag:{weights.name}"


def identity(mcfg, seed: int) -> dict:
    transform_weights, _, weights_id = _weights(mcfg)
    return {
        "name": mcfg.name,
        "weights": weights_id,
        "transform": repr(transform_weights.transforms()),
        "seed": seed if weights_id == "random" else None,
    }


def build(mcfg, identity: dict, device: torch.device, seed: int, key: str = "model") -> Built:
    import torch
    import torchvision

    from realdata.models import LOAD_ERRORS, not_a_checkpoint

    transform_weights, weights, _ = _weights(mcfg)
    torch.manual_seed(seed)
    model = torchvision.models.get_model(mcfg.name, weights=weights)
    if mcfg.pretrained and os.path.isfile(mcfg.pretrained):
        try:
            model.load_state_dict(torch.load(mcfg.pretrained, map_location="cpu", weights_only=True))
        except LOAD_ERRORS as e:
            raise not_a_checkpoint(f"{key}.pretrained", mcfg.pretrained, e) from e
    model.eval().to(device)
    return Built(model, transform_weights.transforms(), encode=model)
