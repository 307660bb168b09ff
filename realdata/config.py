"""Structured config of `python -m realdata` (validated by Hydra at start-up, then by `validate`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from theory.runrecord import expect

LABEL_SPACES = ("1v1000", "1v20", "45way")
PROMPT_SETS = ("single", "openai80")
CLASSNAME_LISTS = ("synset", "openai")  # see realdata/classnames.py and docs/realdata.md section 4
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32")  # auto: fp16 (evaluation) / bf16 (fine-tuning) autocast on CUDA, fp32 on CPU
# The defaults below are the one source: conf/realdata/realdata.yaml names only the defaults list and Hydra's
# output folders (tests/test_extension_points.py checks it sets no key of the schema).
PACKAGE_DIR = Path(__file__).parent
# zoo metadata from the paper's tables: recorded only when the run is that zoo entry (see evaluate.zoo_fields)
ZOO_FIELDS = ("backbone", "pretrain_data", "high_quality_data", "paper_common", "paper_counter", "paper_drop")


@dataclass
class DataConfig:
    root: str = (
        MISSING  # required: the folder holding '<index> <class>/' folders, or the one above (LAION-final/)
    )


@dataclass
class ModelConfig:
    # the family (realdata/families/): open_clip, torchvision, timm, hf_clip, mllm, or the dotted name of a
    # module of your own; None: from `kind`, else open_clip
    family: str | None = None
    # open_clip: a model name, 'local-dir:FOLDER' or 'hf-hub:ORG/REPO'; torchvision, timm: a model name;
    # hf_clip, mllm: a local folder (or a repository id in the local Hugging Face cache)
    name: str = MISSING
    # open_clip: a tag, a weights file, or "" for random weights; torchvision: a weights name (IMAGENET1K_V1,
    # DEFAULT), a state_dict file or ""; timm: a weights file, a timm tag (a1_in1k) or ""
    pretrained: str = ""
    config_file: str | None = None  # open_clip model config JSON registered with open_clip.add_model_config
    kind: str | None = None  # before issue 20: clip (= family open_clip) or imagenet (= torchvision)
    force_quick_gelu: bool | None = None  # open_clip; None: match the tag's QuickGELU setting
    options: dict[str, Any] = field(
        default_factory=dict
    )  # the family's own settings (mllm: question, answer)
    # metadata from the paper's tables (zoo entries only; figures read these from results.json)
    backbone: str = ""
    pretrain_data: str = ""
    high_quality_data: bool = False
    paper_common: float | None = None
    paper_counter: float | None = None
    paper_drop: float | None = None


@dataclass
class OneVs20Config:
    """The 1v20 label space: per class, its most confusable labels under a reference CLIP."""

    k: int = 20
    # true: the k candidates are the true class and its k-1 most confusable labels (the paper's "top 20");
    # false: the true class plus k confusable labels (k+1 candidates). docs/realdata.md section 4.
    true_class_in_k: bool = True
    # ranks the confusable labels once; its saved sets are reused by every model
    reference: ModelConfig = field(
        default_factory=lambda: ModelConfig(
            family="open_clip", name="ViT-B-32-quickgelu", pretrained="laion400m_e31"
        )
    )
    # where the candidate sets are saved; None: <cache_dir>/one_vs_20/<reference>-<classnames>-k20in-<hash>
    file: str | None = None


@dataclass
class RealdataConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    label_space: str = "1v1000"  # LABEL_SPACES: 1v1000 | 1v20 | 45way
    prompts: str = "single"  # PROMPT_SETS: single ("A photo of {}.") | openai80
    # CLASSNAME_LISTS: synset (WordNet lemmas, "water ouzel, dipper": the paper's) | openai (open_clip's)
    classnames: str = "synset"
    one_vs_20: OneVs20Config = field(default_factory=OneVs20Config)
    batch_size: int = 64
    num_workers: int | None = None  # image-loading processes; None: min(4, the cores this process may use)
    device: str = "auto"  # DEVICES: auto (CUDA if present) | cpu | cuda
    precision: str = "auto"  # PRECISIONS: auto (fp16 autocast on CUDA, fp32 on CPU) | fp32
    cache_dir: str = "results/realdata/cache"
    seed: int = 0  # seeds random-weight models (tests, benchmarks)
    progress: bool = True
    verbose: bool = False  # true: show open_clip's INFO log lines (hidden otherwise)
    logger: Any = field(
        default_factory=lambda: {"_target_": None}
    )  # conf/realdata/logger/ (theory.runrecord.track)
    resume: bool = False  # true: skip the run when its folder holds an ok results.json of the same config


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "none"


def run_name(name: str, pretrained: str | None) -> str:
    """Folder name of the model actually run: model name plus tag, weights-file stem, or 'random'.

    'local-dir:/x/DFN2B-CLIP-ViT-B-16' -> 'local-dir_DFN2B-CLIP-ViT-B-16'."""
    name = str(name)
    if name.startswith("local-dir:"):
        name = "local-dir_" + Path(name[len("local-dir:") :].rstrip("/")).name
    pretrained = str(pretrained or "")
    if not pretrained:
        weights = "random"
    elif "/" in pretrained or Path(pretrained).suffix in {".pt", ".pth", ".bin", ".safetensors"}:
        weights = Path(pretrained).stem  # a weights file: its stem (the cache key holds its hash)
    else:
        weights = pretrained
    return f"{_slug(name)}_{_slug(weights)}"


def register() -> None:
    ConfigStore.instance().store(name="realdata_schema", node=RealdataConfig)
    if not OmegaConf.has_resolver("realdata_dir"):
        # lets bundled configs (the tiny test model) point at files shipped inside the package
        OmegaConf.register_new_resolver("realdata_dir", lambda: str(PACKAGE_DIR))
    if not OmegaConf.has_resolver("realdata_run_name"):
        # output folders name the model run (conf/realdata/realdata.yaml, hydra.run.dir)
        OmegaConf.register_new_resolver("realdata_run_name", run_name)


def expect_choices(cfg, choices: dict[str, tuple]) -> None:
    """Stop on the first key (dotted) of ``cfg`` whose value is not one of its allowed tuple."""
    for key, allowed in choices.items():
        value = OmegaConf.select(cfg, key)
        expect(value in allowed, key, value, f"one of {list(allowed)}")


def validate(cfg) -> None:
    """Checks the structured schema cannot express: enumerations and ranges."""
    expect_choices(
        cfg,
        {
            "label_space": LABEL_SPACES,
            "prompts": PROMPT_SETS,
            "classnames": CLASSNAME_LISTS,
            "device": DEVICES,
            "precision": PRECISIONS,
        },
    )
    from realdata.families import family_name

    family_name(cfg.model)  # family and the kind alias agree
    for key in ("batch_size", "one_vs_20.k"):
        expect(OmegaConf.select(cfg, key) >= 1, key, OmegaConf.select(cfg, key), "at least 1")
    workers = cfg.num_workers
    expect(workers is None or workers >= 0, "num_workers", workers, ">= 0, or null (the cores, up to 4)")
    if cfg.label_space == "1v20":
        from realdata.labels import check_one_vs_k

        check_one_vs_k(cfg.one_vs_20.k, cfg.one_vs_20.true_class_in_k)


def loader_workers(num_workers: int | None) -> int:
    """``num_workers`` as given, or for None min(4, the CPU cores this process may use): never more
    loader processes than cores by default (torch warns then, and they only compete)."""
    if num_workers is not None:
        return num_workers
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(4, cores)
