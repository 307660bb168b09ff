"""Image encoders behind one interface: open_clip CLIPs (zero-shot over ImageNet names), torchvision models.

Both give, per image, a score for each of the 1000 ImageNet classes; label spaces restrict those scores later.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from realdata.config import MODEL_KINDS, PROMPT_SETS

PAPER_TEMPLATES = ("A photo of {}.",)  # prompts=single, the paper's protocol


def templates(prompts: str):
    """The prompt set's templates: the paper's single one, or open_clip's 80 OpenAI ImageNet templates."""
    if prompts not in PROMPT_SETS:
        raise ValueError(f"prompts={prompts!r} is not one of {', '.join(PROMPT_SETS)}")
    if prompts == "openai80":
        from open_clip import OPENAI_IMAGENET_TEMPLATES

        return OPENAI_IMAGENET_TEMPLATES
    return PAPER_TEMPLATES


def imagenet_classnames() -> tuple[str, ...]:
    from open_clip import IMAGENET_CLASSNAMES

    return IMAGENET_CLASSNAMES


def file_fingerprint(path: str | Path, block: int = 8 << 20) -> str:
    """SHA-256 of the whole file: a fine-tuned checkpoint may differ from its base only in a few tensors
    anywhere in the file, so a partial hash could hand it the base model's cached features (~1 s/GB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()[:16]


def _unknown(kind: str, name: str, known: list[str]) -> ValueError:
    close = difflib.get_close_matches(name, known, n=5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(known[:20])}, ..."
    return ValueError(f"unknown {kind} model name {name!r}{hint}")


def _looks_like_path(s: str) -> bool:
    return os.sep in s or "/" in s or Path(s).suffix in {".pt", ".pth", ".bin", ".safetensors", ".npz"}


@dataclass
class Encoder:
    """A loaded model: `transform` for PIL images, `encode` for batches, `identity` for the feature cache."""

    kind: str  # clip | imagenet
    model: torch.nn.Module
    transform: object
    device: torch.device
    identity: dict
    tokenizer: object = None
    autocast: bool = False
    _text_weights: dict = field(default_factory=dict)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> np.ndarray:
        """CLIP: L2-normalised image embeddings; ImageNet classifier: its 1000 logits."""
        images = images.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.autocast):
            out = (
                self.model.encode_image(images, normalize=True) if self.kind == "clip" else self.model(images)
            )
        return out.float().cpu().numpy()

    @torch.no_grad()
    def text_weights(self, prompts: str) -> np.ndarray:
        """Zero-shot classifier (D x 1000) from open_clip's ImageNet names and the prompt set."""
        from open_clip import build_zero_shot_classifier

        if prompts not in self._text_weights:
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.autocast):
                w = build_zero_shot_classifier(
                    self.model,
                    self.tokenizer,
                    imagenet_classnames(),
                    templates(prompts),
                    num_classes_per_batch=50,
                    device=self.device,
                )
            self._text_weights[prompts] = w.float().cpu().numpy()
        return self._text_weights[prompts]

    def scores(self, features_NxD: np.ndarray, prompts: str, text_weights_Dx1000: np.ndarray | None = None):
        """Per-image scores over the 1000 ImageNet classes (cosine similarity for CLIP, logits otherwise)."""
        if self.kind == "imagenet":
            return features_NxD
        w = self.text_weights(prompts) if text_weights_Dx1000 is None else text_weights_Dx1000
        return features_NxD @ w


def _precision_id(autocast: bool) -> str:
    """Part of the cache key: fp16-autocast features (CUDA) are not the fp32 ones (CPU)."""
    return "fp16-autocast" if autocast else "fp32"


_REGISTERED: set[Path] = set()


def register_config_file(config_file: str | Path, name: str) -> None:
    """Register an open_clip model config JSON; its file stem is the model name open_clip gives it."""
    import open_clip

    path = Path(config_file).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"model.config_file {str(path)!r} does not exist")
    if path.stem != name:
        raise ValueError(
            f"model.config_file {str(path)!r} registers the model {path.stem!r}, but model.name is {name!r}; "
            f"open_clip names a config by its file stem"
        )
    if path.resolve() not in _REGISTERED:  # add_model_config appends to open_clip's search path each call
        open_clip.add_model_config(path)
        _REGISTERED.add(path.resolve())


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "device='cuda' was requested but torch sees no CUDA device; use device=auto or cpu"
        )
    return torch.device(device)


# open_clip looks for weights in a local-dir: folder with these patterns and, finding none, only logs a
# warning and builds random weights; we stop instead.
LOCAL_DIR_WEIGHTS = ("*.safetensors", "*.bin", "*.pth")


def _local_dir(name: str, pretrained: str | None) -> Path:
    """The folder of a 'local-dir:FOLDER' model, checked to hold open_clip_config.json and weights."""
    folder = Path(name[len("local-dir:") :]).expanduser()
    if pretrained:
        raise ValueError(
            f"model.pretrained={pretrained!r} with model.name={name!r}: a local-dir: folder brings its own "
            "weights; leave model.pretrained empty"
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


def load_clip(mcfg, device: torch.device, seed: int = 0, precision: str = "auto") -> Encoder:
    """Any open_clip model: (name, tag), (name, weights file), 'local-dir:FOLDER', or random weights."""
    import open_clip
    from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model

    name, pretrained = mcfg.name, mcfg.pretrained or None
    if mcfg.config_file:
        register_config_file(mcfg.config_file, name)
    local_dir = name.startswith("local-dir:")
    if not local_dir and name not in open_clip.list_models():
        raise _unknown("open_clip", name, open_clip.list_models())

    quick_gelu = mcfg.force_quick_gelu
    if local_dir:
        folder = _local_dir(name, pretrained)
        weights_id = {p.name: file_fingerprint(p) for p in sorted(folder.iterdir()) if p.is_file()}
    elif pretrained is None:
        weights_id = f"random:seed{seed}"
    elif os.path.isfile(pretrained):
        weights_id = f"file:{file_fingerprint(pretrained)}"
    elif _looks_like_path(pretrained):
        raise FileNotFoundError(
            f"model.pretrained {pretrained!r} looks like a weights file but does not exist"
        )
    else:
        tag_cfg = get_pretrained_cfg(name, pretrained)
        if not tag_cfg:
            tags = list_pretrained_tags_by_model(name)
            raise ValueError(
                f"model.pretrained {pretrained!r} is not an open_clip tag of {name!r}; tags: {tags}"
            )
        if quick_gelu is None:  # OpenAI and LAION-400M weights were trained with QuickGELU
            quick_gelu = bool(tag_cfg.get("quick_gelu", False))
        weights_id = f"tag:{pretrained}"

    torch.manual_seed(seed)  # only matters for random weights
    model, _, preprocess = open_clip.create_model_and_transforms(
        name, pretrained=pretrained, force_quick_gelu=bool(quick_gelu), device=device
    )
    model.eval()
    model_cfg = open_clip.get_model_config(name) or {}
    autocast = device.type == "cuda" and precision == "auto"
    identity = {
        "kind": "clip",
        "name": name,
        "weights": weights_id,
        "quick_gelu": bool(quick_gelu) or bool(model_cfg.get("quick_gelu", False)),
        "model_cfg": json.dumps(model_cfg, sort_keys=True),
        "transform": repr(preprocess),
        "precision": _precision_id(autocast),
    }
    return Encoder(
        "clip",
        model,
        preprocess,
        device,
        identity,
        tokenizer=open_clip.get_tokenizer(name),
        autocast=autocast,
    )


def load_imagenet(mcfg, device: torch.device, seed: int = 0, precision: str = "auto") -> Encoder:
    """A torchvision ImageNet classifier: weights name (IMAGENET1K_V1), state_dict file, or random."""
    import torchvision

    name, pretrained = mcfg.name, mcfg.pretrained
    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        raise _unknown("torchvision", name, known)
    weights_enum = torchvision.models.get_model_weights(name)
    base_weights = next(iter(weights_enum))  # supplies the eval transform when weights come from a file
    torch.manual_seed(seed)
    if not pretrained:
        model, weights, weights_id = (
            torchvision.models.get_model(name, weights=None),
            base_weights,
            f"random:{seed}",
        )
    elif os.path.isfile(pretrained):
        model = torchvision.models.get_model(name, weights=None)
        model.load_state_dict(torch.load(pretrained, map_location="cpu", weights_only=True))
        weights, weights_id = base_weights, f"file:{file_fingerprint(pretrained)}"
    elif _looks_like_path(pretrained):
        raise FileNotFoundError(
            f"model.pretrained {pretrained!r} looks like a weights file but does not exist"
        )
    else:
        try:
            weights = weights_enum[pretrained] if pretrained != "DEFAULT" else weights_enum.DEFAULT
        except KeyError:
            names = [w.name for w in weights_enum]
            raise ValueError(
                f"model.pretrained {pretrained!r} is not a weights name of {name!r}: {names}"
            ) from None
        model, weights_id = torchvision.models.get_model(name, weights=weights), f"tag:{weights.name}"
    model.eval().to(device)
    transform = weights.transforms()
    autocast = device.type == "cuda" and precision == "auto"
    identity = {"kind": "imagenet", "name": name, "weights": weights_id, "transform": repr(transform)}
    identity["precision"] = _precision_id(autocast)
    return Encoder("imagenet", model, transform, device, identity, autocast=autocast)


def load_encoder(mcfg, device: torch.device, seed: int = 0, precision: str = "auto") -> Encoder:
    if mcfg.kind == "clip":
        return load_clip(mcfg, device, seed, precision)
    if mcfg.kind == "imagenet":
        return load_imagenet(mcfg, device, seed, precision)
    raise ValueError(f"model.kind={mcfg.kind!r} is not one of {', '.join(MODEL_KINDS)}")
