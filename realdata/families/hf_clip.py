"""Hugging Face ``transformers`` CLIPModel / SiglipModel (any model with get_image_features and
get_text_features), zero-shot over ImageNet names, from a local folder (``model.name=/path/folder``) or a
repository id in the local Hugging Face cache (``model.name=google/siglip-base-patch16-224``; with
HF_HUB_OFFLINE=1 nothing is fetched). The folder's tokenizer and image processor are used as saved.

SigLIP models read text padded to the tokenizer's maximum length, as they were trained (transformers' own
SigLIP examples pass padding="max_length"); CLIPs pad to the longest prompt.
"""

from __future__ import annotations

from pathlib import Path

import torch

from realdata.families import Built
from theory.runrecord import expect

HEAD = "zero_shot"
WEIGHT_PATTERNS = ("*.safetensors", "*.bin")


def hf_folder(name: str, key: str = "model") -> Path:
    """A local model folder: the folder itself, or a repository id's snapshot in the Hugging Face cache."""
    path = Path(name).expanduser()
    if path.is_dir():
        folder = path
    elif "/" in name and not path.is_absolute() and not name.startswith("."):
        from huggingface_hub import snapshot_download

        try:
            folder = Path(snapshot_download(name))
        except Exception as e:
            raise FileNotFoundError(
                f"{key}.name={name!r} is neither a folder nor a repository in the local Hugging Face cache "
                f"({type(e).__name__}: {e})"
            ) from e
    else:
        raise FileNotFoundError(f"{key}.name={name!r}: folder does not exist")
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{key}.name={name!r}: {str(folder)!r} holds no config.json")
    if not any(any(folder.glob(p)) for p in WEIGHT_PATTERNS):
        raise FileNotFoundError(
            f"{key}.name={name!r}: {str(folder)!r} holds no weights ({', '.join(WEIGHT_PATTERNS)})"
        )
    return folder


def folder_identity(mcfg, key: str = "model") -> dict:
    """Name, and the SHA-256 of every file of the folder (weights, config, tokenizer, image processor)."""
    import transformers

    from realdata.models import file_fingerprint

    expect(
        not mcfg.pretrained,
        f"{key}.pretrained",
        mcfg.pretrained,
        "'': a transformers folder brings its own weights",
    )
    folder = hf_folder(mcfg.name, key)
    files = {p.name: file_fingerprint(p) for p in sorted(folder.iterdir()) if p.is_file()}
    return {"name": mcfg.name, "weights": files, "transformers": transformers.__version__}


def identity(mcfg, seed: int) -> dict:
    return folder_identity(mcfg)


def memo_paths(mcfg) -> list[str]:
    path = Path(mcfg.name).expanduser()
    if path.is_dir():
        return [str(path)]
    from huggingface_hub.constants import HF_HUB_CACHE

    return [str(Path(HF_HUB_CACHE) / f"models--{mcfg.name.replace('/', '--')}")]


def pooled(out) -> torch.Tensor:
    """get_*_features return the projected embedding (transformers 4) or an output holding it (5)."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def image_transform(image_processor):
    return lambda image: image_processor(images=image, return_tensors="pt")["pixel_values"][0]


def text_padding(model) -> str:
    return "max_length" if model.config.model_type.startswith("siglip") else "longest"


def load_hf_clip(name: str, device: torch.device | str = "cpu", key: str = "model"):
    """(model in eval mode, image processor, tokenizer) from a transformers folder or cached repository."""
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    folder = hf_folder(name, key)
    model = AutoModel.from_pretrained(folder).eval().to(device)
    if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
        raise ValueError(
            f"{key}.name={name!r}: {type(model).__name__} has no get_image_features/get_text_features "
            "(expected a CLIPModel, SiglipModel or the like)"
        )
    return model, AutoImageProcessor.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


def build(mcfg, identity: dict, device: torch.device, seed: int, key: str = "model") -> Built:
    model, image_processor, tokenizer = load_hf_clip(mcfg.name, device, key)
    padding = text_padding(model)

    def encode(images):
        f = pooled(model.get_image_features(pixel_values=images))
        return f / f.norm(dim=-1, keepdim=True)

    def text_classifier(classnames, templates, batch: int = 256):
        """As open_clip.build_zero_shot_classifier: mean of the normalised prompt embeddings, renormalised."""
        prompts = [t.format(c) for c in classnames for t in templates]
        parts = []
        for i in range(0, len(prompts), batch):
            tokens = tokenizer(prompts[i : i + batch], padding=padding, truncation=True, return_tensors="pt")
            parts.append(pooled(model.get_text_features(**tokens.to(device))))
        e = torch.cat(parts)
        e = (e / e.norm(dim=-1, keepdim=True)).reshape(len(classnames), len(templates), -1).mean(dim=1)
        return (e / e.norm(dim=-1, keepdim=True)).T

    return Built(model, image_transform(image_processor), encode, text_classifier, tokenizer=tokenizer)
