"""Image encoders behind one interface: open_clip CLIPs (zero-shot over ImageNet names), torchvision models.

Both give, per image, a score for each of the 1000 ImageNet classes; label spaces restrict those scores later.
``describe`` checks a model config and computes its identity (the cache key) without building anything;
``ModelSpec.encoder()`` builds the model the first time something really needs it, so a run whose features
and text classifier are cached never builds one.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import logging
import os
import pickle
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

from realdata.classnames import imagenet_classnames
from realdata.config import MODEL_KINDS, PROMPT_SETS

PAPER_TEMPLATES = ("A photo of {}.",)  # prompts=single, the paper's protocol
WEIGHTS_SUFFIXES = {".pt", ".pth", ".bin", ".safetensors", ".npz"}


def templates(prompts: str):
    """The prompt set's templates: the paper's single one, or open_clip's 80 OpenAI ImageNet templates."""
    if prompts not in PROMPT_SETS:
        raise ValueError(f"prompts={prompts!r} is not one of {', '.join(PROMPT_SETS)}")
    if prompts == "openai80":
        from open_clip import OPENAI_IMAGENET_TEMPLATES

        return OPENAI_IMAGENET_TEMPLATES
    return PAPER_TEMPLATES


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
    return os.sep in s or "/" in s or Path(s).suffix in WEIGHTS_SUFFIXES


class _HideOpenClipInfo(logging.Filter):
    """open_clip logs its progress with logging.info on the root logger; keep only its warnings."""

    def __init__(self):
        super().__init__()
        import open_clip

        self.prefix = str(Path(open_clip.__file__).parent)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not record.pathname.startswith(self.prefix)


@contextlib.contextmanager
def open_clip_logs(verbose: bool):
    """Hide open_clip's INFO lines unless verbose (config key `verbose`)."""
    if verbose:
        yield
        return
    root, quiet = logging.getLogger(), _HideOpenClipInfo()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)


@dataclass
class Encoder:
    """A built model: `transform` for PIL images, `encode` for batches."""

    kind: str  # clip | imagenet
    model: torch.nn.Module
    transform: object
    device: torch.device
    tokenizer: object = None
    autocast: bool = False

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
    def text_weights(self, prompts: str, classnames: str) -> np.ndarray:
        """Zero-shot classifier (D x 1000): open_clip.build_zero_shot_classifier over the chosen names."""
        from open_clip import build_zero_shot_classifier

        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.autocast):
            w = build_zero_shot_classifier(
                self.model,
                self.tokenizer,
                imagenet_classnames(classnames),
                templates(prompts),
                num_classes_per_batch=50,
                device=self.device,
            )
        return w.float().cpu().numpy()


def scores(kind: str, features_NxD: np.ndarray, text_weights_Dx1000: np.ndarray | None) -> np.ndarray:
    """Per-image scores over the 1000 ImageNet classes (cosine similarity for CLIP, logits otherwise)."""
    return features_NxD if kind == "imagenet" else features_NxD @ text_weights_Dx1000


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


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"


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


# what torch.load / safetensors / load_state_dict raise on a file that is not a (matching) checkpoint
LOAD_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, KeyError, RuntimeError, OSError)


def _not_a_checkpoint(key: str, path: str, err: Exception) -> ValueError:
    return ValueError(
        f"{key}={path!r} is not a checkpoint this model can load ({type(err).__name__}: {err}); expected a "
        "state_dict saved with torch.save or a .safetensors file of the same architecture"
    )


@dataclass
class ModelSpec:
    """A checked model config: its identity (cache keys) and, built on first use, its Encoder."""

    kind: str
    mcfg: object
    identity: dict
    device: torch.device
    seed: int
    autocast: bool
    quick_gelu: bool = False
    verbose: bool = False
    key: str = "model"  # the config key it came from, for error messages
    _encoder: Encoder | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.identity["name"]

    def encoder(self) -> Encoder:
        if self._encoder is None:
            with open_clip_logs(self.verbose):
                self._encoder = _build_clip(self) if self.kind == "clip" else _build_imagenet(self)
        return self._encoder


def _clip_identity(mcfg, seed: int) -> tuple[dict, bool]:
    import open_clip
    from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model

    name, pretrained = mcfg.name, mcfg.pretrained or None
    if mcfg.config_file:
        register_config_file(mcfg.config_file, name)
    local_dir = name.startswith("local-dir:")
    if not local_dir and name not in open_clip.list_models():
        raise _unknown("open_clip", name, open_clip.list_models())
    quick_gelu = mcfg.force_quick_gelu
    tag_cfg: dict = {}
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
    model_cfg = open_clip.get_model_config(name) or {}
    identity = {
        "kind": "clip",
        "name": name,
        "weights": weights_id,
        "quick_gelu": bool(quick_gelu) or bool(model_cfg.get("quick_gelu", False)),
        "model_cfg": json.dumps(model_cfg, sort_keys=True),
        # the image transform follows the model config and the tag's preprocess settings
        "pretrained_cfg": json.dumps(tag_cfg, sort_keys=True, default=str),
        "open_clip": open_clip.__version__,
    }
    return identity, bool(quick_gelu)


def _imagenet_weights(mcfg):
    """(weights enum entry giving the transform, weights to load or None, weights id)."""
    import torchvision

    name, pretrained = mcfg.name, mcfg.pretrained
    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        raise _unknown("torchvision", name, known)
    weights_enum = torchvision.models.get_model_weights(name)
    base = next(iter(weights_enum))  # supplies the eval transform when weights come from a file
    if not pretrained:
        return base, None, "random"
    if os.path.isfile(pretrained):
        return base, None, f"file:{file_fingerprint(pretrained)}"
    if _looks_like_path(pretrained):
        raise FileNotFoundError(
            f"model.pretrained {pretrained!r} looks like a weights file but does not exist"
        )
    try:
        weights = weights_enum[pretrained] if pretrained != "DEFAULT" else weights_enum.DEFAULT
    except KeyError:
        names = [w.name for w in weights_enum]
        raise ValueError(
            f"model.pretrained {pretrained!r} is not a weights name of {name!r}: {names}"
        ) from None
    return weights, weights, f"tag:{weights.name}"


def _memo_key(mcfg, seed: int, autocast: bool) -> dict:
    """Everything a model's identity depends on, known without importing open_clip or torchvision: the
    config, the files it names (path and realdata.dataset.file_signature: a rewrite changes it even with the
    size and mtime restored) and the installed versions."""
    from realdata.dataset import file_signature

    def stat(path: str):
        p = Path(path).expanduser()
        if p.is_dir():
            return sorted(stat(str(c)) for c in p.iterdir() if c.is_file())
        if p.is_file():
            return [str(p.resolve()), *file_signature(p)]
        return None

    fields = ("kind", "name", "pretrained", "config_file", "force_quick_gelu")
    named = [mcfg.pretrained, mcfg.config_file, str(mcfg.name).removeprefix("local-dir:")]
    return {
        "config": {k: mcfg[k] for k in fields},
        "files": [stat(x) for x in named if x],
        "seed": seed,
        "autocast": autocast,
        "versions": [version(p) for p in ("open_clip_torch", "torchvision", "torch")],
    }


def describe(
    mcfg,
    device: torch.device,
    seed: int = 0,
    precision: str = "auto",
    verbose: bool = False,
    key: str = "model",
    cache_dir=None,
) -> ModelSpec:
    """Check a model config (names, tags, files) and compute its identity; builds nothing.

    With cache_dir the identity is remembered (cache_dir/identity/), so a cached re-run does not even import
    open_clip or torchvision."""
    from realdata.cache import cached_json, digest

    autocast = device.type == "cuda" and precision == "auto"
    memo = (
        Path(cache_dir) / "identity" / f"{digest(_memo_key(mcfg, seed, autocast))}.json"
        if cache_dir
        else None
    )

    def compute() -> dict:
        if mcfg.kind == "clip":
            identity, quick_gelu = _clip_identity(mcfg, seed)
        elif mcfg.kind == "imagenet":
            transform_weights, _, weights_id = _imagenet_weights(mcfg)
            identity = {"kind": "imagenet", "name": mcfg.name, "weights": weights_id}
            identity["transform"] = repr(transform_weights.transforms())
            identity["seed"] = seed if weights_id == "random" else None
            quick_gelu = False
        else:
            raise ValueError(f"{key}.kind={mcfg.kind!r} is not one of {', '.join(MODEL_KINDS)}")
        identity["precision"] = _precision_id(autocast)
        return {"identity": identity, "quick_gelu": quick_gelu}

    def check(blob: dict) -> None:  # a corrupt memo (bad JSON, missing keys) is named and rebuilt
        if not (
            isinstance(blob.get("identity"), dict) and "name" in blob["identity"] and "quick_gelu" in blob
        ):
            raise KeyError(f"expected keys identity (with name) and quick_gelu, got {sorted(blob)}")

    saved = cached_json(memo, compute, check) if memo is not None else compute()
    identity, quick_gelu = saved["identity"], saved["quick_gelu"]
    return ModelSpec(mcfg.kind, mcfg, identity, device, seed, autocast, quick_gelu, verbose, key)


def _build_clip(spec: ModelSpec) -> Encoder:
    import open_clip

    name, pretrained = spec.mcfg.name, spec.mcfg.pretrained or None
    if spec.mcfg.config_file:
        register_config_file(spec.mcfg.config_file, name)
    torch.manual_seed(spec.seed)  # only matters for random weights
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=pretrained, force_quick_gelu=spec.quick_gelu, device=spec.device
        )
    except LOAD_ERRORS as e:
        if pretrained and os.path.isfile(pretrained):
            raise _not_a_checkpoint(f"{spec.key}.pretrained", pretrained, e) from e
        raise
    model.eval()
    return Encoder("clip", model, preprocess, spec.device, open_clip.get_tokenizer(name), spec.autocast)


def _build_imagenet(spec: ModelSpec) -> Encoder:
    import torchvision

    name, pretrained = spec.mcfg.name, spec.mcfg.pretrained
    transform_weights, weights, _ = _imagenet_weights(spec.mcfg)
    torch.manual_seed(spec.seed)
    model = torchvision.models.get_model(name, weights=weights)
    if pretrained and os.path.isfile(pretrained):
        try:
            model.load_state_dict(torch.load(pretrained, map_location="cpu", weights_only=True))
        except LOAD_ERRORS as e:
            raise _not_a_checkpoint(f"{spec.key}.pretrained", pretrained, e) from e
    model.eval().to(spec.device)
    return Encoder("imagenet", model, transform_weights.transforms(), spec.device, autocast=spec.autocast)


def load_encoder(mcfg, device: torch.device, seed: int = 0, precision: str = "auto") -> Encoder:
    """Check and build a model in one step (tests, benchmarks)."""
    return describe(mcfg, device, seed, precision).encoder()
