"""The paper's reported CounterAnimal numbers and the model metadata the figures need.

The reported numbers live in ``realdata/reference/*.csv`` (percentages, class-balanced, "1 vs 1000", prompt
"A photo of <class name>."). They are read in place from realdata (``realdata.dataset`` imports no torch).

``ModelPoint`` is the one record every table and figure is drawn from, whether its numbers were reported
by the paper or measured by ``realdata``. All accuracies in it are percentages.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from realdata.dataset import REFERENCE_DIR

# Protocol of the paper's tables: the only one a measured row can be compared against.
PAPER_LABEL_SPACE = "1v1000"
PAPER_PROMPTS = "single"
LABEL_SPACE_TITLES = {"1v1000": "1 vs 1000", "1v20": "1 vs 20", "45way": "45-way"}
PROMPT_TITLES = {"single": '"A photo of <class>."', "openai80": "80 OpenAI templates"}

IMAGENET_DATA = "ImageNet-1K"
UNKNOWN = "unknown"

# Image-encoder parameters, in millions, so that CLIPs and ImageNet classifiers share one scale.
# CLIP: the `image_mparams` column of open_clip's docs/model_profile.csv (ViT-H-14-378 is not listed there;
# it is ViT-H-14 with a larger position embedding, so ViT-H-14's count is used). Keys are open_clip model
# names without the `-quickgelu` suffix (QuickGELU changes no parameter).
CLIP_IMAGE_PARAMS_M = {
    "RN50": 38.32,
    "RN101": 56.26,
    "RN50x4": 87.14,
    "RN50x16": 167.33,
    "RN50x64": 420.38,
    "ViT-B-32": 87.85,
    "ViT-B-32-256": 87.86,
    "ViT-B-16": 86.19,
    "ViT-L-14": 303.97,
    "ViT-L-14-336": 304.29,
    "ViT-H-14": 632.08,
    "ViT-H-14-378": 632.08,
    "ViT-g-14": 1012.65,
    "ViT-bigG-14": 1844.91,
    "convnext_base": 88.09,
    "convnext_base_w": 88.22,
    "convnext_large_d": 199.77,
}
# ImageNet classifiers: torchvision's weights metadata,
# `torchvision.models.get_model_weights(name).DEFAULT.meta["num_params"] / 1e6`.
IMAGENET_PARAMS_M = {
    "alexnet": 61.10,
    "vgg11": 132.86,
    "vgg13": 133.05,
    "vgg19": 143.67,
    "resnet18": 11.69,
    "resnet34": 21.80,
    "resnet50": 25.56,
    "resnet101": 44.55,
    "vit_b_16": 86.57,
    "vit_b_32": 88.22,
    "vit_l_16": 304.33,
    "vit_l_32": 306.54,
    "convnext_small": 50.22,
    "convnext_base": 88.59,
    "convnext_large": 197.77,
}

# Pre-training sets: number of image-text pairs (images for ImageNet). Sizes from each set's paper:
# OpenAI WIT (Radford et al. 2021), LAION-400M (Schuhmann et al. 2021), LAION-2B = the English subset of
# LAION-5B (Schuhmann et al. 2022), DataComp-1B (Gadre et al. 2023), DFN-2B / DFN-5B (Fang et al. 2023),
# CC12M (Changpinyo et al. 2021), YFCC15M (the CLIP paper's filtered YFCC100M), ImageNet-1K (1.28M images).
DATA_SIZE = {
    "OpenAI": 400e6,
    "LAION400M": 400e6,
    "LAION2B": 2.32e9,
    "DataComp1B": 1.4e9,
    "DFN2B": 2.0e9,
    "DFN5B": 5.0e9,
    "CC12M": 12e6,
    "YFCC15M": 15e6,
    IMAGENET_DATA: 1.28e6,
}
# The sets the paper counts as curated for quality (its table's high_quality_data column).
HIGH_QUALITY_DATA = frozenset({"DataComp1B", "DFN2B", "DFN5B"})
# open_clip pretrained-tag prefixes -> pre-training set, for measured models the paper does not list.
PRETRAINED_TAG_DATA = (
    ("openai", "OpenAI"),
    ("laion400m", "LAION400M"),
    ("laion2b", "LAION2B"),
    ("datacomp_xl", "DataComp1B"),
    ("datacomp_s34b", "DataComp1B"),
    ("dfn2b", "DFN2B"),
    ("dfn5b", "DFN5B"),
    ("cc12m", "CC12M"),
    ("yfcc15m", "YFCC15M"),
)


def read_reference_csv(name: str) -> list[dict[str, str]]:
    """Rows of one reference CSV (realdata/reference/) as strings, exactly as shipped."""
    path = REFERENCE_DIR / name
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def clip_arch(model: str) -> str:
    """open_clip architecture name without the QuickGELU suffix (same weights shape, same paper row)."""
    return model.removesuffix("-quickgelu")


def data_from_tag(pretrained: str) -> str:
    tag = pretrained.lower()
    for prefix, data in PRETRAINED_TAG_DATA:
        if tag.startswith(prefix):
            return data
    return UNKNOWN


def family(model: str) -> str:
    """Architecture family, used for marker shapes and for scaling lines."""
    name = model.lower()
    if name.startswith(("rn", "resnet")):
        return "ResNet"
    if name.startswith("vit"):
        return "ViT"
    if name.startswith("convnext"):
        return "ConvNeXt"
    if name.startswith("vgg"):
        return "VGG"
    if name.startswith("alexnet"):
        return "AlexNet"
    return "other"


@dataclass(frozen=True)
class ModelPoint:
    """One model under one protocol: reported by the paper or measured. Accuracies in percent."""

    # "clip": a zero-shot model (results.json zero_shot, any family: CLIPs, multimodal LLMs); "imagenet": a
    # fixed-head ImageNet classifier. The figures draw the two kinds apart, whatever the family.
    kind: str
    model: str  # open_clip model name or torchvision name
    pretrained: str  # open_clip pretrained tag or torchvision weights name ("" when the paper gives none)
    backbone: str
    pretrain_data: str
    high_quality: bool | None
    label_space: str
    prompts: str
    common: float
    counter: float
    drop: float
    source: str  # "paper" | "measured"
    path: Path | None = None  # results.json of a measured point

    @property
    def arch(self) -> str:
        return clip_arch(self.model) if self.kind == "clip" else self.model

    @property
    def identity(self) -> tuple[str, str, str]:
        """Which model this is, whatever the protocol: ImageNet models by name, CLIPs by arch and tag."""
        return (self.kind, self.arch, self.pretrained if self.kind == "clip" else "")

    @property
    def params_m(self) -> float | None:
        table = CLIP_IMAGE_PARAMS_M if self.kind == "clip" else IMAGENET_PARAMS_M
        return table.get(self.arch)

    @property
    def data_size(self) -> float | None:
        return DATA_SIZE.get(self.pretrain_data)

    @property
    def family(self) -> str:
        return family(self.arch)

    @property
    def panel(self) -> tuple[str, str]:
        return (self.label_space, self.prompts)


def _paper_point(row: dict[str, str], **identity) -> ModelPoint:
    """A reported row under the paper's protocol; ``identity`` names the model (kind, model, backbone...)."""
    return ModelPoint(
        **identity,
        label_space=PAPER_LABEL_SPACE,
        prompts=PAPER_PROMPTS,
        common=float(row["common"]),
        counter=float(row["counter"]),
        drop=float(row["drop"]),
        source="paper",
    )


def paper_clip_points() -> list[ModelPoint]:
    return [
        _paper_point(
            row,
            kind="clip",
            model=row["open_clip_model"],
            pretrained=row["open_clip_pretrained"],
            backbone=row["backbone"],
            pretrain_data=row["pretrain_data"],
            high_quality=row["high_quality_data"] == "1",
        )
        for row in read_reference_csv("table3_clip.csv")
    ]


def paper_imagenet_points() -> list[ModelPoint]:
    return [
        _paper_point(
            row,
            kind="imagenet",
            model=row["torchvision_name"],
            pretrained="",
            backbone=row["model"],
            pretrain_data=IMAGENET_DATA,
            high_quality=False,
        )
        for row in read_reference_csv("table4_imagenet.csv")
    ]


def paper_points() -> list[ModelPoint]:
    """Every model of the paper's Tables 3 and 4, in table order."""
    return paper_clip_points() + paper_imagenet_points()


def paper_match(kind: str, model: str, pretrained: str, papers: list[ModelPoint]) -> ModelPoint | None:
    """The paper's row for a model: CLIP by (architecture, tag) ignoring -quickgelu, ImageNet by name."""
    wanted = (kind, clip_arch(model), pretrained) if kind == "clip" else (kind, model, "")
    return next((p for p in papers if p.identity == wanted), None)


@dataclass(frozen=True)
class ClassDrop:
    """Per-class accuracies of one model (percent) with the class's two backgrounds."""

    class_name: str
    imagenet_index: int
    common_background: str
    counter_background: str
    common: float
    counter: float
    drop: float


def paper_per_class() -> list[ClassDrop]:
    """Per-class numbers the paper reports for the curating model, CLIP ViT-B/32 (LAION-400M)."""
    return [
        ClassDrop(
            class_name=row["class_name"],
            imagenet_index=int(row["imagenet_index"]),
            common_background=row["common_background"],
            counter_background=row["counter_background"],
            common=float(row["ref_common_acc"]),
            counter=float(row["ref_counter_acc"]),
            drop=float(row["ref_drop"]),
        )
        for row in read_reference_csv("counteranimal_classes.csv")
    ]


# The model whose per-class numbers the paper reports (and which picked the splits).
PER_CLASS_REFERENCE_MODEL = ("ViT-B-32", "laion400m_e31")


def format_size(n: float) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.3g}B"
    if n >= 1e6:
        return f"{n / 1e6:.3g}M"
    return f"{n:.3g}"


def is_finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
