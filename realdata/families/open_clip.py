"""open_clip CLIPs, zero-shot over ImageNet names: zoo tags, weights files, ``local-dir:`` folders and
``hf-hub:org/repo`` names (read from the local Hugging Face cache; with HF_HUB_OFFLINE=1 nothing is fetched).

``load_open_clip`` is the public build function (model, image transform, tokenizer), also used by fine-tuning.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from realdata.families import Built
from theory.runrecord import expect

if TYPE_CHECKING:  # torch is imported where a model is built: a cached re-run imports none
    import torch

HEAD = "zero_shot"
HF_HUB = "hf-hub:"
LOCAL_DIR = "local-dir:"
# open_clip looks for weights in a local-dir: folder with these patterns and, finding none, only logs a
# warning and builds random weights; we stop instead.
LOCAL_DIR_WEIGHTS = ("*.safetensors", "*.bin", "*.pth")
_REGISTERED: set[Path] = set()


def register_config_file(config_file: str | Path, name: str) -> None:
    """Register an open_clip model config JSON; its file stem is the model name open_clip gives it."""
    import open_clip

    path = Path(config_file).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"model.config_file {str(path)!r} does not exist")
    expect(
        path.stem == name,
        "model.name",
        name,
        f"{path.stem!r}, the model model.config_file={str(path)!r} registers (open_clip names a config by "
        "its file stem)",
    )
    if path.resolve() not in _REGISTERED:  # add_model_config appends to open_clip's search path each call
        open_clip.add_model_config(path)
        _REGISTERED.add(path.resolve())


def _local_dir(name: str, pretrained: str | None) -> Path:
    """The folder of a 'local-dir:FOLDER' model, checked to hold open_clip_config.json and weights."""
    folder = Path(name[len(LOCAL_DIR) :]).expanduser()
    expect(
        not pretrained,
        "model.pretrained",
        pretrained,
        f"'' with model.name={name!r}: a local-dir: folder brings its own weights",
    )
    if not folder.is_dir():
        raise FileNotFoundError(f"model.name {name!r}: folder {str(folder)!r} does not exist")
    if not (folder / "open_clip_config.json").is_file():
        raise FileNotFoundError(f"model.name {name!r}: {str(folder)!r} holds no open_clip_config.json")
    if not any(any(folder.glob(pattern)) for pattern in LOCAL_DIR_WEIGHTS):
        raise FileNotFoundError(
            f"model.name {name!r}: {str(folder)!r} holds no weights file ({', '.join(LOCAL_DIR_WEIGHTS)})"
        )
    return folder


def hub_files(name: str, pretrained: str | None = None) -> tuple[Path, Path]:
    """(open_clip_config.json, weights) of an 'hf-hub:org/repo' model, found the way open_clip finds them
    (hf_hub_download: the local cache first; HF_HUB_OFFLINE=1 never fetches). Missing weights are an error
    (open_clip itself would warn and build random weights)."""
    from huggingface_hub import hf_hub_download
    from open_clip.constants import HF_CONFIG_NAME
    from open_clip.pretrained import download_pretrained_from_hf

    repo = name[len(HF_HUB) :]
    expect(
        not pretrained,
        "model.pretrained",
        pretrained,
        f"'' with model.name={name!r}: an hf-hub: repository brings its own weights",
    )
    offline = " (HF_HUB_OFFLINE is set: only the local Hugging Face cache is read)" * bool(
        os.environ.get("HF_HUB_OFFLINE")
    )
    try:
        config = Path(hf_hub_download(repo_id=repo, filename=HF_CONFIG_NAME))
    except Exception as e:
        raise FileNotFoundError(
            f"model.name {name!r}: no {HF_CONFIG_NAME} for {repo!r} in the Hugging Face cache or on the hub"
            f"{offline} ({type(e).__name__}: {e})"
        ) from e
    try:
        weights = Path(download_pretrained_from_hf(repo))
    except Exception as e:
        raise FileNotFoundError(
            f"model.name {name!r}: no open_clip weights for {repo!r} in the Hugging Face cache or on the hub"
            f"{offline} ({type(e).__name__}: {e})"
        ) from e
    return config, weights


def memo_paths(mcfg) -> list[str]:
    if str(mcfg.name).startswith(HF_HUB):  # the cached repository folder: a new snapshot changes it
        from huggingface_hub.constants import HF_HUB_CACHE

        repo = str(mcfg.name)[len(HF_HUB) :]
        return [str(Path(HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}")]
    named = [mcfg.pretrained, mcfg.config_file, str(mcfg.name).removeprefix(LOCAL_DIR)]
    return [x for x in named if x]


def identity(mcfg, seed: int) -> dict:
    import open_clip
    from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model

    from realdata.models import check_name, file_fingerprint, file_weights_id

    name, pretrained = mcfg.name, mcfg.pretrained or None
    if mcfg.config_file:
        register_config_file(mcfg.config_file, name)
    quick_gelu = mcfg.force_quick_gelu
    tag_cfg: dict = {}
    model_cfg: dict = {}
    if not name.startswith((LOCAL_DIR, HF_HUB)):
        check_name("open_clip", name, open_clip.list_models())
    if name.startswith(LOCAL_DIR):
        folder = _local_dir(name, pretrained)
        weights_id = {p.name: file_fingerprint(p) for p in sorted(folder.iterdir()) if p.is_file()}
    elif name.startswith(HF_HUB):
        config, weights = hub_files(name, pretrained)
        model_cfg = json.loads(config.read_text())
        weights_id = f"hf-hub:{weights.name}:{file_fingerprint(weights)}"
    elif pretrained is None:
        weights_id = f"random:seed{seed}"
    elif file_id := file_weights_id(pretrained):
        weights_id = file_id
    else:
        tag_cfg = get_pretrained_cfg(name, pretrained)
        tags = list_pretrained_tags_by_model(name)
        expect(
            bool(tag_cfg),
            "model.pretrained",
            pretrained,
            f"a weights file or an open_clip tag of {name!r}: {tags}",
        )
        if quick_gelu is None:  # OpenAI and LAION-400M weights were trained with QuickGELU
            quick_gelu = bool(tag_cfg.get("quick_gelu", False))
        weights_id = f"tag:{pretrained}"
    model_cfg = model_cfg or open_clip.get_model_config(name) or {}
    return {
        "name": name,
        "weights": weights_id,
        "force_quick_gelu": bool(quick_gelu),
        "quick_gelu": bool(quick_gelu) or bool(model_cfg.get("quick_gelu", False)),
        "model_cfg": json.dumps(model_cfg, sort_keys=True),
        # the image transform follows the model config and the tag's preprocess settings
        "pretrained_cfg": json.dumps(tag_cfg, sort_keys=True, default=str),
        "open_clip": open_clip.__version__,
    }


def load_open_clip(
    name: str,
    pretrained: str | None = None,
    config_file: str | None = None,
    force_quick_gelu: bool = False,
    device: str | torch.device = "cpu",
    seed: int = 0,
    key: str = "model",
):
    """(model in eval mode, image transform, tokenizer) of an open_clip model: a built-in name with a tag,
    a weights file or None (random weights, seeded), or a 'local-dir:' / 'hf-hub:' name."""
    import open_clip
    import torch

    from realdata.models import LOAD_ERRORS, not_a_checkpoint

    if config_file:
        register_config_file(config_file, name)
    if name.startswith(LOCAL_DIR):
        _local_dir(name, pretrained)
    torch.manual_seed(seed)  # only matters for random weights
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=pretrained or None, force_quick_gelu=force_quick_gelu, device=device
        )
    except LOAD_ERRORS as e:
        if pretrained and os.path.isfile(pretrained):
            raise not_a_checkpoint(f"{key}.pretrained", pretrained, e) from e
        raise
    model.eval()
    return model, preprocess, open_clip.get_tokenizer(name)


def build(mcfg, identity: dict, device: torch.device, seed: int, key: str = "model") -> Built:
    model, preprocess, tokenizer = load_open_clip(
        mcfg.name, mcfg.pretrained, mcfg.config_file, identity["force_quick_gelu"], device, seed, key
    )
    return built_from(model, preprocess, tokenizer, device)


def built_from(model, preprocess, tokenizer, device) -> Built:
    """An open_clip model (or any with ``encode_image``/``encode_text``) as the evaluator uses it: image
    embeddings, and open_clip's zero-shot classifier for the class names and templates."""
    from open_clip import build_zero_shot_classifier

    def text_classifier(classnames, templates):
        return build_zero_shot_classifier(
            model, tokenizer, classnames, templates, num_classes_per_batch=50, device=device
        )

    return Built(
        model,
        preprocess,
        encode=lambda images: model.encode_image(images, normalize=True),
        text_classifier=text_classifier,
        tokenizer=tokenizer,
    )
