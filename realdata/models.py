"""Models behind one interface, whatever their family (realdata/families/: open_clip, torchvision, timm,
hf_clip, mllm, or a module of your own).

Every model gives, per image, a score for each of the 1000 ImageNet classes; label spaces restrict those
scores later. ``describe`` checks a model config and computes its identity (the cache key) without building
anything; ``ModelSpec.encoder()`` builds the model the first time something really needs it, so a run whose
features and text classifier are cached never builds one.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import logging
import os
import pickle
from dataclasses import dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from omegaconf import OmegaConf

from realdata.classnames import imagenet_classnames
from realdata.config import PROMPT_SETS, ZOO_FIELDS
from realdata.families import Built, family_name, is_zero_shot, load_family
from realdata.families.open_clip import register_config_file  # noqa: F401  (its home before issue 20)
from theory.runrecord import expect

if TYPE_CHECKING:
    import torch

PAPER_TEMPLATES = ("A photo of {}.",)  # prompts=single, the paper's protocol
WEIGHTS_SUFFIXES = {".pt", ".pth", ".bin", ".safetensors", ".npz"}
N_IMAGENET = 1000


def templates(prompts: str):
    """The prompt set's templates: the paper's single one, or open_clip's 80 OpenAI ImageNet templates."""
    expect(prompts in PROMPT_SETS, "prompts", prompts, f"one of {list(PROMPT_SETS)}")
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


def check_name(family: str, name: str, known: list[str], key: str = "model") -> None:
    """``{key}.name`` is one of the family's ``known`` model names; the error suggests the closest."""
    close = difflib.get_close_matches(name, known, n=5) if name not in known else []
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(known[:20])}, ..."
    expect(name in known, f"{key}.name", name, f"a model name of {family}{hint}")


def looks_like_path(s: str) -> bool:
    return os.sep in s or "/" in s or Path(s).suffix in WEIGHTS_SUFFIXES


def file_weights_id(pretrained: str) -> str | None:
    """``file:<fingerprint>`` when ``model.pretrained`` names an existing weights file, None when it is
    not a path (a tag); a path that does not exist is an error, never read as a tag (every family)."""
    if os.path.isfile(pretrained):
        return f"file:{file_fingerprint(pretrained)}"
    if looks_like_path(pretrained):
        raise FileNotFoundError(
            f"model.pretrained {pretrained!r} looks like a weights file but does not exist"
        )
    return None


class _HideOpenClipInfo(logging.Filter):
    """open_clip logs its progress with logging.info on the root logger; keep only its warnings."""

    def __init__(self):
        super().__init__()
        from importlib.util import find_spec

        self.prefix = str(Path(find_spec("open_clip").origin).parent)  # found, not imported (seconds)

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
class LoadedModel:
    """A built model on its device: `transform` for PIL images, `encode` for batches of them (named apart from
    synthetic.encoders.Encoder, the Gaussian runs' encoder component)."""

    head: str  # zero_shot | logits | scorer (realdata.families.HEADS)
    built: Built
    device: torch.device
    autocast: bool = False
    candidate_names: list[list[str]] | None = None  # scorer: the candidate labels of each image, by position

    @property
    def model(self):
        return self.built.model

    @property
    def transform(self):
        return self.built.transform

    @property
    def tokenizer(self):
        return self.built.tokenizer

    def encode(self, images: torch.Tensor, positions=None) -> np.ndarray:
        """zero_shot: L2-normalised image embeddings; logits: the 1000 ImageNet logits; scorer: a score per
        candidate label of each image (positions index the image list)."""
        import torch

        images = images.to(self.device, non_blocking=True)
        autocast = torch.autocast(self.device.type, dtype=torch.float16, enabled=self.autocast)
        with torch.no_grad(), autocast:
            if self.head == "scorer":
                out = self.built.score(images, [self.candidate_names[p] for p in positions])
            else:
                out = self.built.encode(images)
        return out.float().cpu().numpy()

    def text_weights(self, prompts: str, classnames: str) -> np.ndarray:
        """Zero-shot classifier (D x 1000) over the chosen class names and prompt set."""
        import torch

        autocast = torch.autocast(self.device.type, dtype=torch.float16, enabled=self.autocast)
        with torch.no_grad(), autocast:
            w = self.built.text_classifier(imagenet_classnames(classnames), templates(prompts))
        return w.float().cpu().numpy()


def scores(
    head: str, features_NxD: np.ndarray, text_weights_Dx1000: np.ndarray | None, candidates_NxK=None
) -> np.ndarray:
    """Per-image scores over the 1000 ImageNet classes: cosine similarity (zero_shot), logits (logits), or a
    scorer's candidate scores placed at their labels, -inf elsewhere (scorer)."""
    if head == "logits":
        return features_NxD
    if head == "zero_shot":
        return features_NxD @ text_weights_Dx1000
    out = np.full((len(features_NxD), N_IMAGENET), -np.inf, dtype=np.float32)
    np.put_along_axis(out, np.asarray(candidates_NxK), features_NxD, axis=1)
    return out


def _precision_id(autocast: bool) -> str:
    """Part of the cache key: fp16-autocast features (CUDA) are not the fp32 ones (CPU)."""
    return "fp16-autocast" if autocast else "fp32"


def _cuda_available() -> bool:
    """torch.cuda.is_available(), without importing torch where no CUDA driver exists: a cached re-run on a
    CPU machine then imports no torch at all (torch needs the driver library to see any CUDA device)."""
    import ctypes

    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    import torch

    return torch.cuda.is_available()


def resolve_device(device: str) -> str:
    """The device runs use: "cpu" or "cuda" (models are built on it with torch.device(...))."""
    if device == "auto":
        return "cuda" if _cuda_available() else "cpu"
    if device == "cuda" and not _cuda_available():
        raise RuntimeError(
            "device='cuda' was requested but torch sees no CUDA device; use device=auto or cpu"
        )
    return device


def device_type(device) -> str:
    """ "cpu" or "cuda" of a device name or a torch.device."""
    return getattr(device, "type", None) or str(device).split(":")[0]


def device_name(device) -> str:
    if device_type(device) == "cuda":
        import torch

        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"


# what torch.load / safetensors / load_state_dict raise on a file that is not a (matching) checkpoint
LOAD_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, KeyError, RuntimeError, OSError)


def not_a_checkpoint(key: str, path: str, err: Exception) -> ValueError:
    return ValueError(
        f"{key}={path!r} is not a checkpoint this model can load ({type(err).__name__}: {err}); expected a "
        "state_dict saved with torch.save or a .safetensors file of the same architecture"
    )


@dataclass
class ModelSpec:
    """A checked model config: its family, identity (cache keys) and, built on first use, its LoadedModel."""

    family: str
    head: str
    mcfg: object
    identity: dict
    device: str | torch.device  # built on torch.device(device) when first needed
    seed: int
    autocast: bool
    verbose: bool = False
    key: str = "model"  # the config key it came from, for error messages
    candidates: np.ndarray | None = None  # scorer: (N, K) candidate labels of each image of the list
    candidate_names: list[list[str]] | None = None
    _encoder: LoadedModel | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.identity["name"]

    @property
    def zero_shot(self) -> bool:
        return is_zero_shot(self.head)

    def protocol(self) -> dict | None:
        """What the family records about how it scores (the mllm question and answer), or None."""
        module = load_family(self.family, self.key)
        return module.protocol(self.mcfg) if hasattr(module, "protocol") else None

    def with_candidates(self, candidates_NxK: np.ndarray, classnames: list[str]) -> ModelSpec:
        """A scorer scores only each image's candidate labels: they (and their names) join its identity."""
        from realdata.cache import digest

        candidates_NxK = np.asarray(candidates_NxK, dtype=int)
        names = [[classnames[j] for j in row] for row in candidates_NxK]
        identity = {**self.identity, "candidates": digest(names)}
        return replace(
            self, identity=identity, candidates=candidates_NxK, candidate_names=names, _encoder=None
        )

    def encoder(self) -> LoadedModel:
        if self._encoder is None:
            module = load_family(self.family, self.key)
            with open_clip_logs(self.verbose):
                import torch

                device = torch.device(self.device)
                built = module.build(self.mcfg, self.identity, device, self.seed, self.key)
            if self.head == "scorer" and self.candidate_names is None:
                raise RuntimeError(
                    f"{self.key}: a scorer family needs its candidate labels (with_candidates)"
                )
            self._encoder = LoadedModel(self.head, built, device, self.autocast, self.candidate_names)
        return self._encoder


def _memo_key(mcfg, module, seed: int, autocast: bool) -> dict:
    """Everything a model's identity depends on, known without importing its library: the config, the files
    it names (path and realdata.dataset.file_signature, which a rewrite changes even with the size and mtime
    restored; folders file by file) and the installed versions."""
    from realdata.dataset import file_signature

    def stat(path: str):
        p = Path(path).expanduser()
        if p.is_dir():
            return sorted(stat(str(c)) for c in p.rglob("*") if c.is_file())
        if p.is_file():
            return [str(p.resolve()), *file_signature(p)]
        return None

    if hasattr(module, "memo_paths"):
        named = module.memo_paths(mcfg)
    else:
        named = [x for x in (mcfg.pretrained, mcfg.config_file, str(mcfg.name)) if x]
    config = OmegaConf.to_container(mcfg, resolve=True) if OmegaConf.is_config(mcfg) else dict(mcfg)
    config = {k: v for k, v in config.items() if k not in ZOO_FIELDS}
    packages = ("open_clip_torch", "torchvision", "torch", "timm", "transformers")
    return {
        "config": config,
        "module": module.__name__,
        "files": [stat(x) for x in named],
        "seed": seed,
        "autocast": autocast,
        "versions": [_version(p) for p in packages],
    }


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def describe(
    mcfg,
    device: torch.device,
    seed: int = 0,
    precision: str = "auto",
    verbose: bool = False,
    key: str = "model",
    cache_dir=None,
) -> ModelSpec:
    """Check a model config (family, names, tags, files) and compute its identity; builds nothing.

    With cache_dir the identity is remembered (cache_dir/identity/), so a cached re-run does not even import
    the model's library."""
    from realdata.cache import cached_json, digest

    family = family_name(mcfg, key)
    module = load_family(family, key)
    autocast = device_type(device) == "cuda" and precision == "auto"
    memo = None
    if cache_dir:
        memo = Path(cache_dir) / "identity" / f"{digest(_memo_key(mcfg, module, seed, autocast))}.json"

    def compute() -> dict:
        return {
            "identity": {
                "family": family,
                **module.identity(mcfg, seed),
                "precision": _precision_id(autocast),
            }
        }

    def check(blob: dict) -> None:  # a corrupt memo (bad JSON, missing keys) is named and rebuilt
        if not (isinstance(blob.get("identity"), dict) and blob["identity"].get("family") == family):
            raise KeyError(f"expected an identity of family {family!r}, got {str(blob)[:80]}")

    identity = (cached_json(memo, compute, check) if memo is not None else compute())["identity"]
    return ModelSpec(family, module.HEAD, mcfg, identity, device, seed, autocast, verbose, key)


def load_encoder(mcfg, device: torch.device, seed: int = 0, precision: str = "auto") -> LoadedModel:
    """Check and build a model in one step (tests, benchmarks)."""
    return describe(mcfg, device, seed, precision).encoder()
