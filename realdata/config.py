"""Structured config of `python -m realdata` (validated by Hydra at start-up, then by `validate`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

LABEL_SPACES = ("1v1000", "1v20", "45way")
PROMPT_SETS = ("single", "openai80")
MODEL_KINDS = ("clip", "imagenet")
DEVICES = ("auto", "cpu", "cuda")
PACKAGE_DIR = Path(__file__).parent


@dataclass
class DataConfig:
    root: str = MISSING  # the folder holding the class folders, or the one above it (LAION-final/)


@dataclass
class ModelConfig:
    # clip: an open_clip model name (or 'local-dir:FOLDER'); imagenet: a torchvision model name
    name: str = MISSING
    # clip: an open_clip tag, a weights file, or "" for random weights;
    # imagenet: a torchvision weights name (IMAGENET1K_V1, DEFAULT), a state_dict file, or "" for random
    pretrained: str = ""
    config_file: str | None = None  # open_clip model config JSON registered with open_clip.add_model_config
    kind: str = "clip"
    force_quick_gelu: bool | None = None  # None: match the tag's QuickGELU setting
    # metadata from the paper's tables (figures read these from results.json)
    backbone: str = ""
    pretrain_data: str = ""
    high_quality_data: bool = False
    paper_common: float | None = None
    paper_counter: float | None = None
    paper_drop: float | None = None


@dataclass
class OneVs20Config:
    """The 1v20 label space: per class, its k most confusable labels under a reference CLIP."""

    k: int = 20
    reference: ModelConfig = field(
        default_factory=lambda: ModelConfig(name="ViT-B-32-quickgelu", pretrained="laion400m_e31")
    )
    file: str | None = None  # where the candidate sets are saved; None: under cache_dir


@dataclass
class RealdataConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    label_space: str = "1v1000"
    prompts: str = "single"
    one_vs_20: OneVs20Config = field(default_factory=OneVs20Config)
    batch_size: int = 64
    num_workers: int = 4
    device: str = "auto"
    precision: str = "auto"  # auto: fp16 autocast on cuda, fp32 on cpu; or fp32
    cache_dir: str = "results/realdata/cache"
    seed: int = 0  # seeds random-weight models (tests, benchmarks)
    progress: bool = True


def register() -> None:
    ConfigStore.instance().store(name="realdata_schema", node=RealdataConfig)
    if not OmegaConf.has_resolver("realdata_dir"):
        # lets bundled configs (the tiny test model) point at files shipped inside the package
        OmegaConf.register_new_resolver("realdata_dir", lambda: str(PACKAGE_DIR))


def _choice(value, allowed, key):
    if value not in allowed:
        raise ValueError(f"{key}={value!r} is not one of {', '.join(allowed)}")


def validate(cfg) -> None:
    """Checks the structured schema cannot express: enumerations and ranges."""
    _choice(cfg.label_space, LABEL_SPACES, "label_space")
    _choice(cfg.prompts, PROMPT_SETS, "prompts")
    _choice(cfg.device, DEVICES, "device")
    _choice(cfg.precision, ("auto", "fp32"), "precision")
    _choice(cfg.model.kind, MODEL_KINDS, "model.kind")
    for key in ("batch_size", "one_vs_20.k"):
        if OmegaConf.select(cfg, key) < 1:
            raise ValueError(f"{key}={OmegaConf.select(cfg, key)} must be at least 1")
    if cfg.num_workers < 0:
        raise ValueError(f"num_workers={cfg.num_workers} must be >= 0")
