"""Per-class drop of one model: horizontal bars, classes sorted, each labelled with its two backgrounds.

Reference mode draws the paper's ViT-B/32 (LAION-400M), the model that chose the splits. Otherwise a
measured model with a per_class.csv: the one named, else that same model if measured, else any CLIP; when it
is the paper's model (mixed mode), the reported per-class drops are drawn beside as ticks.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from paper_figs import aggregate
from paper_figs.ca_panels import panel_title, panels
from paper_figs.reference import (
    PAPER_LABEL_SPACE,
    PAPER_PROMPTS,
    PER_CLASS_REFERENCE_MODEL,
    ClassDrop,
    ModelPoint,
    clip_arch,
    paper_per_class,
)

STEM = "counteranimal_per_class"


def draw(classes: Sequence[ClassDrop], title: str, reference: Sequence[ClassDrop] | None = None) -> Figure:
    """Horizontal bars of per-class drop, sorted; each label names the class and its two backgrounds.

    reference: the paper's per-class numbers drawn as markers beside measured bars (same model only).
    Classes without a drop (no image in one group: NaN) are left out and counted in the title."""
    usable = [c for c in classes if np.isfinite(c.drop)]
    if not usable:
        raise ValueError("no class has a finite drop to plot")
    if len(usable) < len(classes):
        title += f"\n({len(classes) - len(usable)} classes without images in one group left out)"
    ordered = sorted(usable, key=lambda c: c.drop)
    ref = {c.imagenet_index: c.drop for c in reference or ()}
    y = np.arange(len(ordered))
    fig, ax = plt.subplots(figsize=(7.5, 0.2 * len(ordered) + 1.6))
    colours = ["#c0392b" if c.drop > 0 else "#2e86c1" for c in ordered]
    ax.barh(y, [c.drop for c in ordered], color=colours, alpha=0.85, height=0.75)
    if ref:
        rx = [ref.get(c.imagenet_index, np.nan) for c in ordered]
        ax.scatter(rx, y, marker="|", s=80, color="k", zorder=3, label="paper (same model)")
    labels = [f"{c.class_name}  ({c.common_background} → {c.counter_background})" for c in ordered]
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_ylim(-0.7, len(ordered) - 0.3)
    ax.axvline(0, color="k", lw=0.8)
    mean_drop = float(np.mean([c.drop for c in usable]))
    ax.axvline(mean_drop, color="0.3", ls="--", lw=1, label=f"mean drop {mean_drop:.2f}")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_xlabel("drop = common − counter accuracy (%)   [label: class (common → counter background)]")
    ax.grid(alpha=0.3, axis="x")
    ax.set_title(title, fontsize=10)
    return fig


def choose_model(measured: Sequence[ModelPoint], model: str | None = None) -> ModelPoint | None:
    """Measured point whose per_class.csv is drawn: the named one, else the curating CLIP, else any CLIP."""
    with_files = [p for p in measured if p.path and (p.path.parent / aggregate.PER_CLASS_NAME).is_file()]
    if model is not None:
        name, _, tag = model.partition(":")
        hits = [p for p in with_files if p.arch == clip_arch(name) and (not tag or p.pretrained == tag)]
        hits = hits or [p for p in with_files if p.model == name and (not tag or p.pretrained == tag)]
        if not hits:
            names = sorted({f"{p.model}:{p.pretrained}" for p in with_files})
            raise ValueError(
                f"no measured result with per-class numbers matches {model!r}; available: {names}"
            )
        return sorted(hits, key=lambda p: panels([p]))[0]
    arch, tag = PER_CLASS_REFERENCE_MODEL
    ranked = sorted(
        with_files,
        key=lambda p: (
            not (p.arch == arch and p.pretrained == tag),
            p.kind != "clip",
            p.panel != (PAPER_LABEL_SPACE, PAPER_PROMPTS),
        ),
    )
    return ranked[0] if ranked else None


def figure(mode: str, measured: Sequence[ModelPoint], model: str | None = None) -> tuple[Figure, str]:
    """Per-class figure for a mode and a note saying where its numbers came from (the CounterAnimal figure
    contract, paper_figs.ca_panels; ``model``: MODEL[:PRETRAINED], default the best match of the paper's)."""
    arch, tag = PER_CLASS_REFERENCE_MODEL
    ref_title = f"CLIP {arch} ({tag}), 1 vs 1000: per-class drop — reported (paper)"
    if mode == "reference":
        return draw(paper_per_class(), ref_title), ""
    chosen = choose_model(measured, model)
    if chosen is None:
        if mode == "measured":
            raise FileNotFoundError(
                f"no measured result has a {aggregate.PER_CLASS_NAME} beside its results.json"
            )
        return draw(paper_per_class(), ref_title), "no measured per-class numbers: drew the paper's"
    classes = aggregate.load_per_class(chosen.path)
    same = (chosen.arch, chosen.pretrained, chosen.panel) == (arch, tag, (PAPER_LABEL_SPACE, PAPER_PROMPTS))
    reference = paper_per_class() if mode == "mixed" and same else None
    title = f"{chosen.model} ({chosen.pretrained}), {panel_title(chosen.panel)}: per-class drop — measured"
    return draw(classes, title, reference), f"per-class figure from {chosen.path}"
