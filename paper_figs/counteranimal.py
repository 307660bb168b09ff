"""The paper's CounterAnimal figures, from reported numbers, measured results, or both.

    python -m paper_figs.counteranimal --mode reference
    python -m paper_figs.counteranimal results/realdata --mode mixed --figure fig2

Modes: ``reference`` draws the paper's reported numbers alone; ``measured`` draws realdata results alone;
``mixed`` draws measured points over the reported ones (reported ones faded, their fits dotted).
Figures (PNG + PDF): ``fig2`` common vs counter accuracy with one least-squares line through the CLIPs and
one through the ImageNet models; ``scaling`` drop vs backbone size per pre-training set; ``quality`` drop by
pre-training set for fixed backbones; ``per_class`` the per-class drops of one model.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from paper_figs import aggregate
from paper_figs.common import save_figure
from paper_figs.reference import (
    DATA_SIZE,
    LABEL_SPACE_TITLES,
    PAPER_LABEL_SPACE,
    PAPER_PROMPTS,
    PER_CLASS_REFERENCE_MODEL,
    PROMPT_TITLES,
    ClassDrop,
    ModelPoint,
    clip_arch,
    format_size,
    paper_per_class,
    paper_points,
)

MODES = ("reference", "measured", "mixed")
FIGURES = ("fig2", "scaling", "quality", "per_class")
FIGURE_STEMS = {
    "fig2": "counteranimal_fig2_common_vs_counter",
    "scaling": "counteranimal_scaling",
    "quality": "counteranimal_data_quality",
    "per_class": "counteranimal_per_class",
}
KIND_CMAPS = {"clip": "Blues", "imagenet": "Oranges"}
KIND_TITLES = {"clip": "CLIP", "imagenet": "ImageNet"}
FAMILY_MARKERS = {"ResNet": "s", "ViT": "o", "ConvNeXt": "D", "VGG": "^", "AlexNet": "v", "other": "X"}
SOURCE_COLORS = {
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
PAPER_ALPHA = 0.35  # reported points under measured ones in mixed mode


# ---------------------------------------------------------------------------------------------- line fits
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


def fig2_fits(points: Iterable[ModelPoint]) -> dict[tuple[str, str, str, str], tuple[float, float]]:
    """Figure 2's lines: key (label_space, prompts, source, kind) -> (slope, intercept), where >= 2 points."""
    groups: dict[tuple[str, str, str, str], list[ModelPoint]] = {}
    for p in points:
        groups.setdefault((*p.panel, p.source, p.kind), []).append(p)
    fits = {}
    for key, group in groups.items():
        xs = [p.common for p in group]
        if len(set(xs)) >= 2:
            fits[key] = fit_line(xs, [p.counter for p in group])
    return fits


# ---------------------------------------------------------------------------------------------- inputs
def select_points(mode: str, measured: Sequence[ModelPoint] = ()) -> list[ModelPoint]:
    """The points a mode draws: reported ones, measured ones, or both (reported first, measured on top)."""
    if mode not in MODES:
        raise ValueError(f"mode = {mode!r}, expected one of {list(MODES)}")
    if mode != "reference" and not measured:
        raise ValueError(f"mode {mode!r} needs measured results; none were given")
    papers = paper_points() if mode != "measured" else []
    return papers + (list(measured) if mode != "reference" else [])


def panels(points: Iterable[ModelPoint]) -> list[tuple[str, str]]:
    """(label_space, prompts) pairs present, the paper's protocol first."""
    keys = {p.panel for p in points}
    return sorted(keys, key=lambda k: (k != (PAPER_LABEL_SPACE, PAPER_PROMPTS), k))


def panel_title(panel: tuple[str, str]) -> str:
    label_space, prompts = panel
    return f"{LABEL_SPACE_TITLES.get(label_space, label_space)}, {PROMPT_TITLES.get(prompts, prompts)}"


def _subplots(n: int, width: float, height: float):
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
    return fig, list(axes[0])


def _mode_note(points: Sequence[ModelPoint]) -> str:
    sources = {p.source for p in points}
    if sources == {"paper"}:
        return "reported numbers (paper)"
    if sources == {"measured"}:
        return "measured"
    return "measured (filled) over reported (faded)"


# ---------------------------------------------------------------------------------------------- Figure 2
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


def draw_fig2(points: Sequence[ModelPoint]) -> Figure:
    """The paper's Figure 2, one panel per (label space, prompts): common vs counter accuracy, y = x, and
    a least-squares line per (model kind, source); marker area = backbone size, shade = data-set size."""
    keys = panels(points)
    fits = fig2_fits(points)
    norms = {kind: _size_norm(points, kind) for kind in KIND_CMAPS}
    mixed = {p.source for p in points} == {"paper", "measured"}
    fig, axes = _subplots(len(keys), 6.4, 5.6)
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
        for (ls, pr, source, kind), (slope, icpt) in sorted(fits.items()):
            if (ls, pr) != key:
                continue
            faded = mixed and source == "paper"
            color = plt.get_cmap(KIND_CMAPS[kind])(0.85)
            sign = "−" if icpt < 0 else "+"
            name = KIND_TITLES[kind] + (" (paper)" if faded else "")
            label = f"{name} fit: y = {slope:.2f}x {sign} {abs(icpt):.1f}"
            ax.plot(
                diag,
                slope * diag + icpt,
                ":" if faded else "-",
                color=color,
                lw=1.2 if faded else 2,
                label=label,
            )
        ax.set(xlim=xlim, ylim=ylim, xlabel="common accuracy (%)", ylabel="counter accuracy (%)")
        ax.set_title(panel_title(key), fontsize=10)
        ax.grid(alpha=0.3)
        ax.add_artist(ax.legend(fontsize=7.5, loc="upper left", framealpha=0.9))
        ax.legend(handles=_fig2_key_handles(here), fontsize=7, loc="lower right", ncol=2, framealpha=0.9)
    clip_norm = norms["clip"]
    if any(p.kind == "clip" for p in points) and clip_norm.vmin != clip_norm.vmax:
        sm = plt.cm.ScalarMappable(norm=clip_norm, cmap=_truncated("Blues"))
        bar = fig.colorbar(sm, ax=axes, shrink=0.8, pad=0.02)
        ticks = sorted({p.data_size for p in points if p.kind == "clip" and p.data_size})
        bar.set_ticks(ticks, labels=[format_size(t) for t in ticks])
        bar.minorticks_off()
        bar.set_label("CLIP pre-training pairs (shade)")
    fig.suptitle(f"CounterAnimal, Figure 2: common vs counter accuracy — {_mode_note(points)}", fontsize=11)
    return fig


def _padded(values: Sequence[float], pad: float = 3.0) -> tuple[float, float]:
    return (float(np.min(values)) - pad, float(np.max(values)) + pad)


def _truncated(name: str) -> ListedColormap:
    return ListedColormap(plt.get_cmap(name)(np.linspace(0.35, 0.95, 256)))


def _fig2_key_handles(points: Sequence[ModelPoint]) -> list[Line2D]:
    handles = []
    for family in sorted({p.family for p in points if p.kind == "clip"}):
        handles.append(
            Line2D(
                [], [], ls="", marker=FAMILY_MARKERS[family], mfc="#6baed6", mec="k", label=f"CLIP {family}"
            )
        )
    if any(p.kind == "imagenet" for p in points):
        handles.append(Line2D([], [], ls="", marker="P", mfc="#fd8d3c", mec="k", label="ImageNet model"))
    for params in (25, 100, 400, 1800):  # marker-size key
        size = np.sqrt(marker_area(params))
        handles.append(
            Line2D([], [], ls="", marker="o", ms=size, mfc="none", mec="0.4", label=f"{params}M params")
        )
    return handles


# ---------------------------------------------------------------------------------------------- scaling
def draw_scaling(points: Sequence[ModelPoint]) -> Figure:
    """Drop against image-encoder size: every model a marker, a trend line per (pre-training set, family)."""
    usable = [p for p in points if p.params_m is not None]
    if not usable:
        raise ValueError("no point has a known backbone size; cannot draw the scaling figure")
    keys = panels(usable)
    mixed = {p.source for p in usable} == {"paper", "measured"}
    fig, axes = _subplots(len(keys), 7.0, 6.0)
    for ax, key in zip(axes, keys, strict=True):
        here = [p for p in usable if p.panel == key]
        lines: dict[tuple[str, str, str], list[ModelPoint]] = {}
        for p in here:
            lines.setdefault((p.source, p.pretrain_data, p.family), []).append(p)
        for (source, data, fam), group in sorted(lines.items()):
            faded = mixed and source == "paper"
            color = SOURCE_COLORS.get(data, "k")
            style = {"color": color, "alpha": 0.45 if faded else 1.0}
            ax.scatter(
                [p.params_m for p in group],
                [p.drop for p in group],
                marker=FAMILY_MARKERS[fam],
                s=36,
                facecolors="none" if faded else color,
                edgecolors=color,
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
        datas = sorted({p.pretrain_data for p in here}, key=lambda d: DATA_SIZE.get(d, 0))
        handles = [
            Line2D([], [], color=SOURCE_COLORS.get(d, "k"), lw=2, label=f"{d} ({format_size(DATA_SIZE[d])})")
            if d in DATA_SIZE
            else Line2D([], [], color="k", lw=2, label=d)
            for d in datas
        ]
        handles += [
            Line2D([], [], ls="", marker=FAMILY_MARKERS[f], color="0.3", label=f)
            for f in sorted({p.family for p in here})
        ]
        handles.append(Line2D([], [], color="0.3", ls="-", label="line: mean drop per size"))
        if {p.source for p in here} == {"paper", "measured"}:
            handles += [
                Line2D([], [], color="0.3", ls="", marker="o", label="measured (filled, solid)"),
                Line2D(
                    [],
                    [],
                    color="0.3",
                    ls=":",
                    marker="o",
                    mfc="none",
                    alpha=0.6,
                    label="paper (hollow, dotted)",
                ),
            ]
        ax.legend(handles=handles, fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    fig.suptitle(f"CounterAnimal: drop vs backbone size — {_mode_note(usable)}", fontsize=11)
    return fig


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


# ---------------------------------------------------------------------------------------------- data quality
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


def draw_quality(points: Sequence[ModelPoint]) -> Figure:
    """Drop per pre-training set for each backbone seen with several sets; high-quality sets hatched."""
    keys = [k for k in panels(points) if quality_groups([p for p in points if p.panel == k])]
    if not keys:
        raise ValueError("no CLIP backbone appears with two or more pre-training sets; nothing to compare")
    fig, axes = _subplots(len(keys), 7.5, 4.8)
    for ax, key in zip(axes, keys, strict=True):
        here = [p for p in points if p.panel == key and p.kind == "clip"]
        groups = quality_groups(here)
        # bars: the paper where this panel has both sources (measured drawn as diamonds), else what there is
        mixed = {p.source for p in here} == {"paper", "measured"}
        bar_source = "paper" if mixed else here[0].source
        arch_order = sorted(groups, key=lambda a: (min(p.params_m or 0 for p in here if p.arch == a), a))
        width = 0.8 / max(3, *(len(d) for d in groups.values()))  # no fat bars when few sets
        xticks, xlabels = [], []
        for gi, arch in enumerate(arch_order):
            datas = groups[arch]
            for di, data in enumerate(datas):
                x = gi + (di - (len(datas) - 1) / 2) * width
                color = SOURCE_COLORS.get(data, "0.5")
                for p in (q for q in here if q.arch == arch and q.pretrain_data == data):
                    hq = bool(p.high_quality)
                    if p.source == bar_source:
                        ax.bar(
                            x,
                            p.drop,
                            width * 0.92,
                            color=color,
                            alpha=0.45 if mixed else 0.9,
                            hatch="//" if hq else None,
                            edgecolor="k",
                            lw=0.5,
                        )
                        if hq:
                            ax.text(x, p.drop + 0.4, "HQ", ha="center", fontsize=6)
                    else:
                        ax.scatter(x, p.drop, marker="D", s=36, color=color, edgecolors="k", zorder=3)
            xticks.append(gi)
            backbone = next(p.backbone for p in here if p.arch == arch)
            xlabels.append(backbone if backbone != arch else clip_arch(arch))
        ax.set_xticks(xticks, xlabels)
        ax.set_xlim(-0.6, len(arch_order) - 0.4)
        ax.set(ylabel="drop = common − counter (%)", xlabel="backbone (pre-training sets ordered by size)")
        ax.set_title(panel_title(key), fontsize=10)
        ax.grid(alpha=0.3, axis="y")
        datas = sorted(
            {p.pretrain_data for p in here if p.arch in groups}, key=lambda d: DATA_SIZE.get(d, np.inf)
        )
        handles = [
            plt.Rectangle((0, 0), 1, 1, color=SOURCE_COLORS.get(d, "0.5"), label=_data_label(d))
            for d in datas
        ]
        if any(p.high_quality for p in here if p.arch in groups):
            hatch = plt.Rectangle(
                (0, 0), 1, 1, fc="white", ec="k", hatch="//", label="high-quality data (HQ)"
            )
            handles.append(hatch)
        if mixed:
            handles.append(
                Line2D([], [], ls="", marker="D", color="0.4", mec="k", label="measured (bars: paper)")
            )
        ax.legend(handles=handles, fontsize=7, ncol=2, loc="upper right")
        ax.set_ylim(0, max(p.drop for p in here if p.arch in groups) * 1.35)
    fig.suptitle(f"CounterAnimal: drop by pre-training data — {_mode_note(points)}", fontsize=11)
    return fig


def _data_label(data: str) -> str:
    return f"{data} ({format_size(DATA_SIZE[data])})" if data in DATA_SIZE else data


# ---------------------------------------------------------------------------------------------- per class
def draw_per_class(
    classes: Sequence[ClassDrop], title: str, reference: Sequence[ClassDrop] | None = None
) -> Figure:
    """Horizontal bars of per-class drop, sorted; each label names the class and its two backgrounds.

    reference: the paper's per-class numbers drawn as markers beside measured bars (same model only).
    Classes without a drop (no image in one group: NaN) are left out and counted in the title."""
    usable = [c for c in classes if np.isfinite(c.drop)]
    if not usable:
        raise ValueError("no class has a finite drop to plot")
    if len(usable) < len(classes):
        title += f"\n({len(classes) - len(usable)} classes without images in one group left out)"
    classes = usable
    ordered = sorted(classes, key=lambda c: c.drop)
    ref = {c.imagenet_index: c.drop for c in reference or ()}
    y = np.arange(len(ordered))
    fig, ax = plt.subplots(figsize=(7.5, 0.2 * len(ordered) + 1.6))
    colors = ["#c0392b" if c.drop > 0 else "#2e86c1" for c in ordered]
    ax.barh(y, [c.drop for c in ordered], color=colors, alpha=0.85, height=0.75)
    if ref:
        rx = [ref.get(c.imagenet_index, np.nan) for c in ordered]
        ax.scatter(rx, y, marker="|", s=80, color="k", zorder=3, label="paper (same model)")
    labels = [f"{c.class_name}  ({c.common_background} → {c.counter_background})" for c in ordered]
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_ylim(-0.7, len(ordered) - 0.3)
    ax.axvline(0, color="k", lw=0.8)
    mean_drop = float(np.mean([c.drop for c in classes]))
    ax.axvline(mean_drop, color="0.3", ls="--", lw=1, label=f"mean drop {mean_drop:.2f}")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_xlabel("drop = common − counter accuracy (%)   [label: class (common → counter background)]")
    ax.grid(alpha=0.3, axis="x")
    ax.set_title(title, fontsize=10)
    return fig


def choose_per_class_model(measured: Sequence[ModelPoint], model: str | None = None) -> ModelPoint | None:
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


def per_class_figure(
    mode: str, measured: Sequence[ModelPoint], model: str | None = None
) -> tuple[Figure, str]:
    """Per-class figure for a mode and a note saying where its numbers came from."""
    arch, tag = PER_CLASS_REFERENCE_MODEL
    ref_title = f"CLIP {arch} ({tag}), 1 vs 1000: per-class drop — reported (paper)"
    if mode == "reference":
        return draw_per_class(paper_per_class(), ref_title), ""
    chosen = choose_per_class_model(measured, model)
    if chosen is None:
        if mode == "measured":
            raise FileNotFoundError(
                f"no measured result has a {aggregate.PER_CLASS_NAME} beside its results.json"
            )
        return draw_per_class(paper_per_class(), ref_title), "no measured per-class numbers: drew the paper's"
    classes = aggregate.load_per_class(chosen.path)
    same = (chosen.arch, chosen.pretrained, chosen.panel) == (arch, tag, (PAPER_LABEL_SPACE, PAPER_PROMPTS))
    reference = paper_per_class() if mode == "mixed" and same else None
    title = f"{chosen.model} ({chosen.pretrained}), {panel_title(chosen.panel)}: per-class drop — measured"
    return draw_per_class(classes, title, reference), f"per-class figure from {chosen.path}"


# ---------------------------------------------------------------------------------------------- driver
def make_counteranimal(
    mode: str,
    out_dir: Path,
    results: Sequence[Path] = (),
    figures: Sequence[str] = FIGURES,
    per_class_model: str | None = None,
    write_table: bool = True,
) -> tuple[list[Path], list[str]]:
    """Draw the chosen CounterAnimal figures (and the table) in one mode; returns (files, notes)."""
    unknown = [f for f in figures if f not in FIGURES]
    if unknown:
        raise ValueError(f"unknown figure(s) {unknown}, expected some of {list(FIGURES)}")
    out_dir = Path(out_dir)
    notes: list[str] = []
    measured: list[aggregate.Measured] = []
    if mode != "reference":
        measured, notes = aggregate.load_measured(list(results))
    points = select_points(mode, [m.point for m in measured])
    files: list[Path] = []
    if mode != "reference":
        notes.append(aggregate.describe_missing(points))
    if write_table:
        if mode == "reference":
            files += aggregate.write_table(aggregate.table_rows(), out_dir, aggregate.REFERENCE_TITLE)
        else:
            rows = aggregate.table_rows(measured)
            files += aggregate.write_table(rows, out_dir, aggregate.MEASURED_TITLE, footer=notes[-1])
    drawers = {"fig2": draw_fig2, "scaling": draw_scaling, "quality": draw_quality}
    for name in figures:
        if name == "per_class":
            fig, note = per_class_figure(mode, [m.point for m in measured], per_class_model)
            notes += [note] if note else []
        else:
            fig = drawers[name](points)
        files += save_figure(fig, out_dir, FIGURE_STEMS[name])
    return files, notes


def make(out_dir: Path, results_dir: Path | None = None) -> list[Path]:
    """Figure contract of paper_figs: every CounterAnimal figure and the table, measured results (under
    results_dir, default results/realdata) drawn over the paper's numbers. Reference mode needs no results:
    ``make_counteranimal("reference", out_dir)``."""
    where = Path(results_dir) if results_dir is not None else aggregate.DEFAULT_RESULTS
    if not where.is_dir() or not any(where.rglob(aggregate.RESULTS_NAME)):
        raise FileNotFoundError(
            f"no realdata {aggregate.RESULTS_NAME} under {where}: run `python -m realdata data.root=...` "
            "first (or draw the paper's numbers alone with `python -m paper_figs --reference`)"
        )
    files, _ = make_counteranimal("mixed", Path(out_dir), [where], figures=FIGURES)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m paper_figs.counteranimal", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "results", nargs="*", type=Path, help="results.json files or folders (not for reference)"
    )
    parser.add_argument("--mode", choices=MODES, default="mixed")
    parser.add_argument("--figure", choices=(*FIGURES, "all"), default="all")
    parser.add_argument("--per-class-model", help="MODEL[:PRETRAINED] for the per-class figure")
    parser.add_argument("--out", type=Path, default=Path("paper_figs/out"))
    args = parser.parse_args(argv)
    matplotlib.use("Agg")  # files only, no windows
    if args.mode != "reference" and not args.results:
        parser.error(f"--mode {args.mode} needs results paths (e.g. results/realdata)")
    figures = FIGURES if args.figure == "all" else (args.figure,)
    try:
        files, notes = make_counteranimal(args.mode, args.out, args.results, figures, args.per_class_model)
    except (aggregate.ResultsError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for note in notes:
        print(note)
    for f in files:
        print(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
