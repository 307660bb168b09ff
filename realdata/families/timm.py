"""timm ImageNet classifiers by timm name, with timm's own preprocessing (resolve_data_config and
create_transform for the model's pretrained config).

``model.pretrained``: a weights file (loaded with timm's checkpoint loader), a timm pretrained tag of the
model (``a1_in1k`` for ``resnet18.a1_in1k``, read from the Hugging Face cache like timm does), or "" for
random weights (seeded).
"""

from __future__ import annotations

import torch

from realdata.families import Built
from theory.runrecord import expect

HEAD = "logits"
N_CLASSES = 1000


def _source(mcfg) -> tuple[str, str | None, str]:
    """(timm model name to create, checkpoint file or None, weights id)."""
    import timm

    from realdata.models import check_name, file_weights_id

    name, pretrained = mcfg.name, mcfg.pretrained
    check_name("timm", name, timm.list_models())
    if not pretrained:
        return name, None, "random"
    if file_id := file_weights_id(pretrained):
        return name, pretrained, file_id
    tags = [t.split(".", 1)[1] for t in timm.list_pretrained(f"{name}.*")]
    expect(
        pretrained in tags,
        "model.pretrained",
        pretrained,
        f"'', a weights file or a timm tag of {name!r}: {tags}",
    )
    return f"{name}.{pretrained}", None, f"tag:{pretrained}"


def identity(mcfg, seed: int) -> dict:
    import timm

    name, _, weights_id = _source(mcfg)
    return {
        "name": mcfg.name,
        "weights": weights_id,
        "timm_name": name,  # its pretrained config fixes the transform (resolve_data_config)
        "seed": seed if weights_id == "random" else None,
        "timm": timm.__version__,
    }


def build(mcfg, identity: dict, device: torch.device, seed: int, key: str = "model") -> Built:
    import timm
    from timm.data import create_transform, resolve_data_config

    from realdata.models import LOAD_ERRORS, not_a_checkpoint

    name, checkpoint, weights_id = _source(mcfg)
    torch.manual_seed(seed)
    try:
        model = timm.create_model(
            name, pretrained=weights_id.startswith("tag:"), checkpoint_path=checkpoint or None
        )
    except LOAD_ERRORS as e:
        if checkpoint:
            raise not_a_checkpoint(f"{key}.pretrained", checkpoint, e) from e
        raise
    if model.num_classes != N_CLASSES:
        raise ValueError(
            f"{key}.name={mcfg.name!r}: timm builds it with {model.num_classes} classes; the evaluator reads "
            f"{N_CLASSES} ImageNet logits"
        )
    model.eval().to(device)
    transform = create_transform(**resolve_data_config({}, model=model))
    return Built(model, transform, encode=model)
