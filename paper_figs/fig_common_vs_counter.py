"""The paper's Figure 2: common vs counter accuracy, one least-squares line per (model kind, source).

One panel per (label space, prompts); dashed y = x; marker area grows with log backbone size, shade with
the CLIP pre-training set size (colour bar), marker shape = architecture family.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from paper_figs.ca_panels import (
    FAMILY_MARKERS,
    from_points,
    is_mixed,
    mode_note,
    panel_title,
    panels,
    subplots,
)
from paper_figs.reference import ModelPoint, format_size

STEM = "counteranimal_fig2_common_vs_counter"
KIND_CMAPS = {"clip": "Blues", "imagenet": "Oranges"}
KIND_TITLES = {"clip": "CLIP", "imagenet": "ImageNet"}
PAPER_ALPHA = 0.35  # reported points under measured ones in mixed mode


def fit_line(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Least-squares line y = slope * x + intercept (closed form from centred sums)."""
    x_N, y_N = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x_N.shape != y_N.shape or x_N.ndim != 1:
        raise ValueError(
            f"fit_line needs two 1-D arrays of equal length, got shapes {x_N.shape}, {y_N.shape}"
        )
    if x_N.size < 2 or np.ptp(x_N) == 0:
        raise ValueError(f"fit_line needs at least two distinct x values, got {x_N.tolist()}")
    dx_N = x_N - x_N.mean()
    slope = float(dx_N @ (y_N - y_N.mean()) / (dx_N @ dx_N))
    return slope, float(y_N.mean() - slope * x_N.mean())


def fits(points: Iterable[ModelPoint]) -> dict[tuple[str, str, str, str], tuple[float, float]]:
    """Figure 2's lines: key (label_space, prompts, source, kind) -> (slope, intercept), where >= 2 points."""
    groups: dict[tuple[str, str, str, str], list[ModelPoint]] = {}
    for p in points:
        groups.setdefault((*p.panel, p.source, p.kind), []).append(p)
    out = {}
    for key, group in groups.items():
        xs = [p.common for p in group]
        if len(set(xs)) >= 2:
            out[key] = fit_line(xs, [p.counter for p in group])
    return out


def marker_area(params_m: float | None) -> float:
    """Marker area grows with log backbone size: ~30 at 10M parameters, ~290 at 2B."""
    if params_m is None:
        return 40.0
    return 30.0 + 34.0 * max(np.log2(params_m / 10.0), 0.0)


def _shade(kind: str, size: float | None, norm: LogNorm):
    cmap = plt.get_cmap(KIND_CMAPS[kind])
    if size is None:
        return "white"
    v = 0.6 if norm.vmin == norm.vmax else float(np.clip(norm(size), 0, 1))
    return cmap(0.35 + 0.6 * v)  # same range as the colour bar (_truncated)


def _size_norm(points: Sequence[ModelPoint], kind: str) -> LogNorm:
    sizes = [p.data_size for p in points if p.kind == kind and p.data_size]
    return LogNorm(vmin=min(sizes), vmax=max(sizes)) if sizes else LogNorm(vmin=1e6, vmax=1e10)


def draw(points: Sequence[ModelPoint]) -> Figure:
    """The paper's Figure 2, one panel per (label space, prompts): common vs counter accuracy, y = x, and
    a least-squares line per (model kind, source); marker area = backbone size, shade = data-set size."""
    keys = panels(points)
    lines = fits(points)
    norms = {kind: _size_norm(points, kind) for kind in KIND_CMAPS}
    mixed = is_mixed(points)
    fig, axes = subplots(len(keys), 6.4, 5.6)
    for ax, key in zip(axes, keys, strict=True):
        here = [p for p in points if p.panel == key]
        xlim = _padded([p.common for p in here])
        ylim = _padded([p.counter for p in here])
        diag = np.array([min(xlim[0], ylim[0]), max(xlim[1], ylim[1])])
        ax.plot(diag, diag, "k--", lw=1, label="y = x")
        for p in here:
            faded = mixed and p.source == "paper"
            ax.scatter(
                p.common,
                p.counter,
                s=marker_area(p.params_m),
                c=[_shade(p.kind, p.data_size, norms[p.kind])],
                marker=FAMILY_MARKERS[p.family] if p.kind == "clip" else "P",
                edgecolors="k",
                linewidths=0.4 if faded else 0.8,
                alpha=PAPER_ALPHA if faded else 0.95,
                zorder=2 if faded else 3,
            )
        for (ls, pr, source, kind), (slope, icpt) in sorted(lines.items()):
            if (ls, pr) != key:
                continue
            faded = mixed and source == "paper"
            sign = "−" if icpt < 0 else "+"
            name = KIND_TITLES[kind] + (" (paper)" if faded else "")
            ax.plot(
                diag,
                slope * diag + icpt,
                ":" if faded else "-",
                color=plt.get_cmap(KIND_CMAPS[kind])(0.85),
                lw=1.2 if faded else 2,
                label=f"{name} fit: y = {slope:.2f}x {sign} {abs(icpt):.1f}",
            )
        ax.set(xlim=xlim, ylim=ylim, xlabel="common accuracy (%)", ylabel="counter accuracy (%)")
        ax.set_title(panel_title(key), fontsize=10)
        ax.grid(alpha=0.3)
        ax.add_artist(ax.legend(fontsize=7.5, loc="upper left", framealpha=0.9))
        ax.legend(handles=_key_handles(here), fontsize=7, loc="lower right", ncol=2, framealpha=0.9)
    clip_norm = norms["clip"]
    if any(p.kind == "clip" for p in points) and clip_norm.vmin != clip_norm.vmax:
        sm = plt.cm.ScalarMappable(norm=clip_norm, cmap=_truncated("Blues"))
        bar = fig.colorbar(sm, ax=axes, shrink=0.8, pad=0.02)
        ticks = sorted({p.data_size for p in points if p.kind == "clip" and p.data_size})
        bar.set_ticks(ticks, labels=[format_size(t) for t in ticks])
        bar.minorticks_off()
        bar.set_label("CLIP pre-training pairs (shade)")
    fig.suptitle(f"CounterAnimal, Figure 2: common vs counter accuracy — {mode_note(points)}", fontsize=11)
    return fig


def _padded(values: Sequence[float], pad: float = 3.0) -> tuple[float, float]:
    return (float(np.min(values)) - pad, float(np.max(values)) + pad)


def _truncated(name: str) -> ListedColormap:
    return ListedColormap(plt.get_cmap(name)(np.linspace(0.35, 0.95, 256)))


def _key_handles(points: Sequence[ModelPoint]) -> list[Line2D]:
    handles = [
        Line2D([], [], ls="", marker=FAMILY_MARKERS[fam], mfc="#6baed6", mec="k", label=f"CLIP {fam}")
        for fam in sorted({p.family for p in points if p.kind == "clip"})
    ]
    if any(p.kind == "imagenet" for p in points):
        handles.append(Line2D([], [], ls="", marker="P", mfc="#fd8d3c", mec="k", label="ImageNet model"))
    for params in (25, 100, 400, 1800):  # marker-size key
        size = np.sqrt(marker_area(params))
        handles.append(
            Line2D([], [], ls="", marker="o", ms=size, mfc="none", mec="0.4", label=f"{params}M params")
        )
    return handles


figure = from_points(draw)  # the CounterAnimal figure contract (paper_figs.ca_panels)
