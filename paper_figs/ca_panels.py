"""What the CounterAnimal figures share: which points a mode draws, one panel per protocol, common styles."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from paper_figs.reference import (
    LABEL_SPACE_TITLES,
    PAPER_LABEL_SPACE,
    PAPER_PROMPTS,
    PROMPT_TITLES,
    ModelPoint,
    paper_points,
)
from theory.runrecord import expect

MODES = ("reference", "measured", "mixed")
FAMILY_MARKERS = {"ResNet": "s", "ViT": "o", "ConvNeXt": "D", "VGG": "^", "AlexNet": "v", "other": "X"}
SOURCE_COLOURS = {  # pre-training set -> colour
    "OpenAI": "#1f77b4",
    "LAION400M": "#ff7f0e",
    "LAION2B": "#2ca02c",
    "DataComp1B": "#d62728",
    "DFN2B": "#9467bd",
    "DFN5B": "#8c564b",
    "CC12M": "#e377c2",
    "YFCC15M": "#bcbd22",
    "ImageNet-1K": "#7f7f7f",
}


def select_points(mode: str, measured: Sequence[ModelPoint] = ()) -> list[ModelPoint]:
    """The points a mode draws: reported ones, measured ones, or both (reported first, measured on top)."""
    expect(mode in MODES, "mode", mode, f"one of {list(MODES)}")
    expect(
        mode == "reference" or bool(measured), "mode", mode, "reference when no measured results are given"
    )
    papers = paper_points() if mode != "measured" else []
    return papers + (list(measured) if mode != "reference" else [])


#: What every CounterAnimal figure module exposes besides STEM (paper_figs.counteranimal draws them alike):
#: ``figure(mode, measured, model=None) -> (Figure, note)``; ``model`` picks the one model a per-model figure
#: draws (per_class), the others draw every point of the mode.
PanelFigure = Callable[[str, Sequence[ModelPoint], "str | None"], tuple[Figure, str]]


def from_points(draw: Callable[[Sequence[ModelPoint]], Figure]) -> PanelFigure:
    """The panel contract for a figure of every point a mode draws: ``figure = from_points(draw)``."""

    def figure(mode: str, measured: Sequence[ModelPoint], model: str | None = None) -> tuple[Figure, str]:
        return draw(select_points(mode, measured)), ""

    return figure


def panels(points: Iterable[ModelPoint]) -> list[tuple[str, str]]:
    """(label_space, prompts) pairs present, the paper's protocol first."""
    keys = {p.panel for p in points}
    return sorted(keys, key=lambda k: (k != (PAPER_LABEL_SPACE, PAPER_PROMPTS), k))


def panel_title(panel: tuple[str, str]) -> str:
    label_space, prompts = panel
    return f"{LABEL_SPACE_TITLES.get(label_space, label_space)}, {PROMPT_TITLES.get(prompts, prompts)}"


def subplots(n: int, width: float, height: float):
    """A row of n panels, each width x height inches; returns (figure, list of axes)."""
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
    return fig, list(axes[0])


def is_mixed(points: Iterable[ModelPoint]) -> bool:
    """Both reported and measured points: the reported ones are drawn faded."""
    return {p.source for p in points} == {"paper", "measured"}


def mode_note(points: Sequence[ModelPoint]) -> str:
    sources = {p.source for p in points}
    if sources == {"paper"}:
        return "reported numbers (paper)"
    if sources == {"measured"}:
        return "measured"
    return "measured (filled) over reported (faded)"
