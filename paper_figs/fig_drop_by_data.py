"""Drop by pre-training data: for each CLIP backbone seen with two or more pre-training sets, the drop per
set, ordered by set size; high-quality sets (DataComp, DFN) hatched and marked HQ. Where a panel has both
sources, bars are the paper's numbers and diamonds the measured ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from paper_figs.ca_panels import (
    SOURCE_COLOURS,
    from_points,
    is_mixed,
    mode_note,
    panel_title,
    panels,
    subplots,
)
from paper_figs.reference import DATA_SIZE, ModelPoint, clip_arch, format_size

STEM = "counteranimal_data_quality"


def quality_groups(points: Sequence[ModelPoint]) -> dict[str, list[str]]:
    """CLIP architectures seen with >= 2 pre-training sets -> those sets, smallest first."""
    seen: dict[str, set[str]] = {}
    for p in points:
        if p.kind == "clip":
            seen.setdefault(p.arch, set()).add(p.pretrain_data)
    return {
        arch: sorted(datas, key=lambda d: (DATA_SIZE.get(d, np.inf), d))
        for arch, datas in seen.items()
        if len(datas) >= 2
    }


def draw(points: Sequence[ModelPoint]) -> Figure:
    """Drop per pre-training set for each backbone seen with several sets, one panel per protocol."""
    keys = [k for k in panels(points) if quality_groups([p for p in points if p.panel == k])]
    if not keys:
        raise ValueError("no CLIP backbone appears with two or more pre-training sets; nothing to compare")
    fig, axes = subplots(len(keys), 7.5, 4.8)
    for ax, key in zip(axes, keys, strict=True):
        here = [p for p in points if p.panel == key and p.kind == "clip"]
        groups = quality_groups(here)
        # bars: the paper where this panel has both sources (measured drawn as diamonds), else what there is
        mixed = is_mixed(here)
        bar_source = "paper" if mixed else here[0].source
        arch_order = sorted(groups, key=lambda a: (min(p.params_m or 0 for p in here if p.arch == a), a))
        width = 0.8 / max(3, *(len(d) for d in groups.values()))  # no fat bars when few sets
        xlabels = []
        for gi, arch in enumerate(arch_order):
            datas = groups[arch]
            for di, data in enumerate(datas):
                x = gi + (di - (len(datas) - 1) / 2) * width
                colour = SOURCE_COLOURS.get(data, "0.5")
                for p in (q for q in here if q.arch == arch and q.pretrain_data == data):
                    hq = bool(p.high_quality)
                    if p.source == bar_source:
                        ax.bar(
                            x,
                            p.drop,
                            width * 0.92,
                            color=colour,
                            alpha=0.45 if mixed else 0.9,
                            hatch="//" if hq else None,
                            edgecolor="k",
                            lw=0.5,
                        )
                        if hq:
                            ax.text(x, p.drop + 0.4, "HQ", ha="center", fontsize=6)
                    else:
                        ax.scatter(x, p.drop, marker="D", s=36, color=colour, edgecolors="k", zorder=3)
            backbone = next(p.backbone for p in here if p.arch == arch)
            xlabels.append(backbone if backbone != arch else clip_arch(arch))
        ax.set_xticks(range(len(arch_order)), xlabels)
        ax.set_xlim(-0.6, len(arch_order) - 0.4)
        ax.set(ylabel="drop = common − counter (%)", xlabel="backbone (pre-training sets ordered by size)")
        ax.set_title(panel_title(key), fontsize=10)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(handles=_legend(here, groups, mixed), fontsize=7, ncol=2, loc="upper right")
        ax.set_ylim(0, max(p.drop for p in here if p.arch in groups) * 1.35)
    fig.suptitle(f"CounterAnimal: drop by pre-training data — {mode_note(points)}", fontsize=11)
    return fig


def _legend(here: Sequence[ModelPoint], groups: dict[str, list[str]], mixed: bool) -> list:
    datas = sorted(
        {p.pretrain_data for p in here if p.arch in groups}, key=lambda d: DATA_SIZE.get(d, np.inf)
    )
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=SOURCE_COLOURS.get(d, "0.5"), label=_data_label(d)) for d in datas
    ]
    if any(p.high_quality for p in here if p.arch in groups):
        handles.append(
            plt.Rectangle((0, 0), 1, 1, fc="white", ec="k", hatch="//", label="high-quality data (HQ)")
        )
    if mixed:
        handles.append(
            Line2D([], [], ls="", marker="D", color="0.4", mec="k", label="measured (bars: paper)")
        )
    return handles


def _data_label(data: str) -> str:
    return f"{data} ({format_size(DATA_SIZE[data])})" if data in DATA_SIZE else data


figure = from_points(draw)  # the CounterAnimal figure contract (paper_figs.ca_panels)
