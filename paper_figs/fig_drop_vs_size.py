"""Drop against image-encoder size: every model a marker, a trend line per (source, pre-training set, family).

Log x axis; one colour per pre-training set, one marker per family; the line joins the mean drop at each
size. Models without a known backbone size (a checkpoint the zoo does not describe) are left out and
listed in the figure's note; with none of known size the figure says so instead of failing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from paper_figs.ca_panels import (
    FAMILY_MARKERS,
    SOURCE_COLOURS,
    is_mixed,
    mode_note,
    panel_title,
    panels,
    select_points,
    subplots,
)
from paper_figs.reference import DATA_SIZE, ModelPoint, format_size

STEM = "counteranimal_scaling"


def size_trend(group: Sequence[ModelPoint], rel_tol: float = 0.05) -> tuple[list[float], list[float]]:
    """Trend line through the mean drop at each backbone size; sizes within rel_tol count as one size, so
    same-size variants (ViT-B/16 and ViT-B/32) give one vertex instead of a vertical zig-zag."""
    ordered = sorted(group, key=lambda p: p.params_m)
    bins: list[list[ModelPoint]] = []
    for p in ordered:
        if bins and p.params_m <= bins[-1][0].params_m * (1 + rel_tol):
            bins[-1].append(p)
        else:
            bins.append([p])
    return [float(np.mean([p.params_m for p in b])) for b in bins], [
        float(np.mean([p.drop for p in b])) for b in bins
    ]


def draw(points: Sequence[ModelPoint]) -> Figure:
    """Drop against image-encoder size, one panel per (label space, prompts)."""
    usable = [p for p in points if p.params_m is not None]
    if not usable:
        fig, (ax,) = subplots(1, 7.0, 6.0)
        ax.text(0.5, 0.5, "no model of known backbone size to draw", ha="center", va="center")
        ax.set_axis_off()
        return fig
    keys = panels(usable)
    mixed = is_mixed(usable)
    fig, axes = subplots(len(keys), 7.0, 6.0)
    for ax, key in zip(axes, keys, strict=True):
        here = [p for p in usable if p.panel == key]
        lines: dict[tuple[str, str, str], list[ModelPoint]] = {}
        for p in here:
            lines.setdefault((p.source, p.pretrain_data, p.family), []).append(p)
        for (source, data, fam), group in sorted(lines.items()):
            faded = mixed and source == "paper"
            colour = SOURCE_COLOURS.get(data, "k")
            style = {"color": colour, "alpha": 0.45 if faded else 1.0}
            ax.scatter(
                [p.params_m for p in group],
                [p.drop for p in group],
                marker=FAMILY_MARKERS[fam],
                s=36,
                facecolors="none" if faded else colour,
                edgecolors=colour,
                zorder=3,
                **style,
            )
            sizes, drops = size_trend(group)
            ax.plot(sizes, drops, ls=":" if faded else "-", lw=1.2 if faded else 1.8, **style)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator([10, 25, 50, 100, 250, 500, 1000, 2000]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set(xlabel="image-encoder parameters (millions, log scale)", ylabel="drop = common − counter (%)")
        ax.set_title(panel_title(key), fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(handles=_legend(here), fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    fig.suptitle(f"CounterAnimal: drop vs backbone size — {mode_note(usable)}", fontsize=11)
    return fig


def _legend(here: Sequence[ModelPoint]) -> list[Line2D]:
    datas = sorted({p.pretrain_data for p in here}, key=lambda d: DATA_SIZE.get(d, 0))
    handles = [
        Line2D([], [], color=SOURCE_COLOURS.get(d, "k"), lw=2, label=f"{d} ({format_size(DATA_SIZE[d])})")
        if d in DATA_SIZE
        else Line2D([], [], color="k", lw=2, label=d)
        for d in datas
    ]
    handles += [
        Line2D([], [], ls="", marker=FAMILY_MARKERS[f], color="0.3", label=f)
        for f in sorted({p.family for p in here})
    ]
    handles.append(Line2D([], [], color="0.3", ls="-", label="line: mean drop per size"))
    if is_mixed(here):
        handles += [
            Line2D([], [], color="0.3", ls="", marker="o", label="measured (filled, solid)"),
            Line2D(
                [], [], color="0.3", ls=":", marker="o", mfc="none", alpha=0.6, label="paper (hollow, dotted)"
            ),
        ]
    return handles


def unknown_size(points: Sequence[ModelPoint]) -> str:
    """The note naming the points left out for want of a backbone size ("" when none is)."""
    left = sorted(
        {
            f"{p.model} {p.pretrained}".strip() + (f" ({p.path})" if p.path else "")
            for p in points
            if p.params_m is None
        }
    )
    if not left:
        return ""
    return f"scaling figure: {len(left)} checkpoint(s) of unknown backbone size left out: " + "; ".join(left)


def figure(mode: str, measured: Sequence[ModelPoint], model: str | None = None) -> tuple[Figure, str]:
    """The CounterAnimal figure contract (paper_figs.ca_panels), with the points left out in the note."""
    points = select_points(mode, measured)
    return draw(points), unknown_size(points)
