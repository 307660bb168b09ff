"""``python -m paper_figs sweep DIR``: any synthetic sweep's metrics against its swept key, with theory.

    python -m paper_figs sweep results/synthetic/objectives/<time>     # x axis and series from the runs
    python -m paper_figs sweep DIR --x data.mu_spu --metrics acc_common,acc_counter --out figs/

Reads every results.json under DIR (``synthetic.aggregate.collect``). The x axis is the config key that varies
across the runs: the runs' ``swept_keys`` when they record it, else every config key with two or more values.
A component counts as one key named by its group, valued by the class in its ``_target_`` (``objective``:
``Clip``, ``SigLIP``, a user's ``MyObjective``); ``_target_`` keys themselves never count. When several keys
vary, x is the one numeric key among them, or the key given with ``--x``; each other varying key splits the
runs into series, one colour and legend entry per value, whatever the value. One panel per metric: mean and
std over seeds; dashed, the exact theory (``theory.<metric>`` in results.json) where the runs have it. Runs
whose status is not ok are left out and counted in the title. Writes ``sweep_<experiment>_<time>`` .png/.pdf
into --out.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from paper_figs.common import DEFAULT_OUT, save_figure
from synthetic.aggregate import collect

BOOKKEEPING = ("run", "status", "diverged_step", "wall_time_s", "swept_keys")  # row columns, not config
DEFAULT_METRICS = ("acc_common", "acc_counter")  # when present; otherwise every metric
MISSING = object()


def metric_names(rows: Sequence[dict]) -> list[str]:
    """Metrics of the runs: names with ``<name>_mean`` and ``<name>_std`` columns, in column order."""
    columns = dict.fromkeys(k for r in rows for k in r)
    return [
        k[: -len("_mean")] for k in columns if k.endswith("_mean") and k[: -len("_mean")] + "_std" in columns
    ]


def with_components(rows: Sequence[dict]) -> list[dict]:
    """Rows with a ``<group>`` column (``objective``, ``encoder`` ...) naming the class in each
    ``<group>._target_`` (``synthetic.objectives.Clip`` -> ``Clip``; the full path where two targets share a
    class name), so that a component swept by name is one key, a user's own included."""
    out = [dict(r) for r in rows]
    for key in dict.fromkeys(k for r in rows for k in r if k.endswith("._target_")):
        group, targets = key.removesuffix("._target_"), _distinct(rows, key) - {None}
        short = {t: str(t).rsplit(".", 1)[-1] for t in targets}
        unique = len(set(short.values())) == len(targets)
        for r in out:
            if r.get(key) is not None and group not in r:
                r[group] = short[r[key]] if unique else r[key]
    return out


def config_keys(rows: Sequence[dict]) -> list[str]:
    """Flattened config keys (``data.p_spu``, ``objective`` ...): every column but bookkeeping, metrics and
    theory, and never a ``_target_`` (its ``<group>`` column from :func:`with_components` stands for it)."""
    metric_columns = {f"{m}_{s}" for m in metric_names(rows) for s in ("mean", "std", "n")}
    return [
        k
        for k in dict.fromkeys(k for r in rows for k in r)
        if k not in BOOKKEEPING
        and k not in metric_columns
        and not k.startswith("theory.")
        and not k.endswith("_target_")
    ]


def _distinct(rows: Sequence[dict], key: str) -> set:
    return {r[key] for r in rows if r.get(key, MISSING) is not MISSING}


def _follows(rows: Sequence[dict], key: str, owner: str) -> bool:
    """Whether ``key`` has one value per value of ``owner`` (a component's field that changes with it)."""
    seen: dict = {}
    return all(seen.setdefault(r.get(owner), r.get(key)) == r.get(key) for r in rows)


def varying_keys(rows: Sequence[dict]) -> list[str]:
    """Config keys that vary across the sweep: the runs' ``swept_keys`` when they record it (a group name
    such as ``objective`` stands for its component, else for its keys that vary; ``<group>._target_`` for
    ``<group>``), otherwise every config key with two or more values; less a component's fields that only
    change with the component (``objective.rho`` of one objective among others)."""
    keys = config_keys(rows)
    varies = [k for k in keys if len(_distinct(rows, k)) >= 2]
    recorded = [
        name.strip().removesuffix("._target_")
        for r in rows
        for name in (
            r["swept_keys"].split(",") if isinstance(r.get("swept_keys"), str) else r.get("swept_keys") or ()
        )
        if name.strip() and name.strip() != "_target_"
    ]
    if recorded:  # recorded over every run, failed ones included: keep what varies among these rows
        varies = [
            k
            for name in dict.fromkeys(recorded)
            for k in ([name] if name in keys else [k for k in varies if k.startswith(name + ".")])
            if len({r.get(k) for r in rows}) >= 2
        ]
    return [k for k in varies if not ("." in k and _owned(rows, k, varies))]


def _owned(rows: Sequence[dict], key: str, varies: Sequence[str]) -> bool:
    owner = key.rsplit(".", 1)[0]
    return owner in varies and _follows(rows, key, owner)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def choose_x(rows: Sequence[dict], where: Path, x: str | None = None) -> tuple[str, list[str]]:
    """(x key, series keys): x as given or detected; the other varying keys make the series."""
    varies = varying_keys(rows)
    if x is not None:
        keys = config_keys(rows)
        if x not in keys:
            near = [k for k in keys if k.startswith(x + ".") or k.endswith("." + x)]
            hint = f"; did you mean {near}?" if near else ""
            raise ValueError(
                f"{where}: --x {x!r} is not a config key of these runs (keys that vary: {varies}){hint}"
            )
        return x, [k for k in varies if k != x]
    if not varies:
        raise ValueError(
            f"{where}: no config key varies across its {len(rows)} runs; name the x axis with --x KEY"
        )
    numeric = [k for k in varies if all(_is_number(v) for v in _distinct(rows, k))]
    if len(varies) == 1:
        x = varies[0]
    elif len(numeric) == 1:
        x = numeric[0]
    else:
        raise ValueError(f"{where}: several keys vary ({varies}); choose the x axis with --x KEY")
    return x, [k for k in varies if k != x]


def _order(value) -> tuple:
    """Sort key: numbers by value, before anything else by text (never compares a number with a string)."""
    return (0, value, "") if _is_number(value) else (1, 0, str(value))


def split_series(rows: Sequence[dict], series_keys: Sequence[str]) -> dict[tuple, list[dict]]:
    """Runs grouped by their values of the series keys, groups in value order."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k) for k in series_keys), []).append(r)
    return dict(sorted(groups.items(), key=lambda kv: tuple(_order(v) for v in kv[0])))


def _column(rows: Sequence[dict], key: str) -> np.ndarray:
    return np.array([np.nan if r.get(key) is None else float(r[key]) for r in rows])


#: Line styles and markers telling apart the values of a second series key (colour tells the first); never
#: the plain dashes of the exact theory.
STYLES = (("-", "o"), (":", "s"), ("-.", "^"), ((0, (1, 3)), "D"), ((0, (3, 1, 1, 1, 1, 1)), "v"))


def _bounded(metric: str) -> bool:
    """An accuracy: its values, mean and error bars live in [0, 1]."""
    return metric.startswith("acc_")


def draw(
    rows: Sequence[dict], x: str, series_keys: Sequence[str], metrics: Sequence[str], title: str
) -> Figure:
    """One panel per metric: mean +- std over seeds against x, one colour per value of the first series key
    and, when two or more keys vary, one line style and marker per value of the others; dashed, the exact
    theory (one black curve when every series has the same, else one per series in its colour).
    Legends sit below the panels, off the data; accuracies and their error bars are clipped to [0, 1]."""
    x_values = _distinct(rows, x)
    numeric_x = all(_is_number(v) for v in x_values)
    ticks = {v: i for i, v in enumerate(sorted(x_values, key=_order))}  # positions when x is categorical
    # colour for a named key (a component: objective, encoder) when there is one, style for the rest
    series_keys = sorted(series_keys, key=lambda k: all(_is_number(v) for v in _distinct(rows, k)))
    groups = split_series(rows, series_keys)
    colour_values = list(dict.fromkeys(values[:1] for values in groups))
    style_values = list(dict.fromkeys(values[1:] for values in groups))
    colours = plt.get_cmap("tab10" if len(colour_values) <= 10 else "tab20")
    colour_of = {v: colours(i % colours.N) for i, v in enumerate(colour_values)}
    style_of = {v: STYLES[i % len(STYLES)] for i, v in enumerate(style_values)}
    two_keys = len(series_keys) >= 2
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 4.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        handles, curves = [], {}
        for values, group in groups.items():
            group = sorted(group, key=lambda r: _order(r.get(x)))
            xs = np.array([float(r[x]) if numeric_x else ticks[r[x]] for r in group])
            mean, std = _column(group, f"{metric}_mean"), _column(group, f"{metric}_std")
            if np.all(np.isnan(mean)):
                continue  # this series has no such metric
            label = ", ".join(str(v) for v in values) if series_keys else "simulation"
            colour = colour_of[values[:1]]
            ls, marker = style_of[values[1:]] if two_keys else ("-", "o")
            std = np.nan_to_num(std)
            yerr = np.stack([np.minimum(std, mean), np.minimum(std, 1 - mean)]) if _bounded(metric) else std
            bars = ax.errorbar(
                xs, mean, yerr=yerr, ls=ls, marker=marker, ms=4, capsize=2, color=colour, label=label
            )
            handles.append(bars)
            theory = _column(group, f"theory.{metric}")
            if not np.all(np.isnan(theory)):
                curves[label] = (colour, xs, theory)
        drawn = {(tuple(xs), tuple(theory)) for _, xs, theory in curves.values()}
        shared = len(drawn) == 1 and len(curves) == len(handles)  # every series drawn has the same theory
        if shared:
            _, xs, theory = next(iter(curves.values()))
            ax.plot(xs, theory, "--", color="k", lw=1.4, label="exact theory", zorder=1)
        else:
            for label, (colour, xs, theory) in curves.items():
                ax.plot(xs, theory, "--", color=colour, lw=1.0, alpha=0.8, label=f"exact theory, {label}")
        proxy = (
            [Line2D([], [], ls="--", color="k" if shared else "0.4", label=f"exact theory (theory.{metric})")]
            if curves
            else []
        )
        if not numeric_x:
            ax.set_xticks(list(ticks.values()), [str(v) for v in ticks])
        ax.set(xlabel=x, ylabel=f"{metric} (mean ± std over seeds)", title=metric)
        if _bounded(metric):
            ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
        below = {"loc": "upper center", "fontsize": 8, "title_fontsize": 8, "frameon": False}
        if not two_keys:
            name = ", ".join(series_keys) or None
            ax.legend(handles=handles + proxy, title=name, bbox_to_anchor=(0.5, -0.14), ncols=2, **below)
            continue
        by_colour = [Line2D([], [], color=c, marker="o", label=str(v[0])) for v, c in colour_of.items()]
        by_style = [
            Line2D([], [], color="k", ls=ls, marker=m, label=", ".join(str(x) for x in v))
            for v, (ls, m) in style_of.items()
        ]
        first = ax.legend(
            handles=by_colour + proxy, title=series_keys[0], bbox_to_anchor=(0.25, -0.14), **below
        )
        ax.add_artist(first)
        ax.legend(handles=by_style, title=", ".join(series_keys[1:]), bbox_to_anchor=(0.75, -0.14), **below)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def figure(sweep_dir: Path, x: str | None = None, metrics: Sequence[str] | None = None) -> Figure:
    """The sweep figure of the runs under ``sweep_dir`` (see the module docstring)."""
    sweep_dir = Path(sweep_dir)
    runs = with_components(collect(sweep_dir))  # FileNotFoundError naming the folder if no run is there
    rows = [r for r in runs if r["status"] == "ok"]
    if not rows:
        statuses = sorted({str(r["status"]) for r in runs})
        raise ValueError(
            f"{sweep_dir}: none of its {len(runs)} runs finished with status ok (statuses: {statuses})"
        )
    x, series_keys = choose_x(rows, sweep_dir, x)
    with_x = [r for r in rows if r.get(x) is not None]
    notes = [f"{len(runs) - len(rows)} runs not ok"] if len(rows) < len(runs) else []
    notes += [f"{len(rows) - len(with_x)} runs without {x}"] if len(with_x) < len(rows) else []
    rows = with_x
    known = metric_names(rows)
    if metrics is None:
        metrics = [m for m in DEFAULT_METRICS if m in known] or known
    unknown = [m for m in metrics if m not in known]
    if unknown or not metrics:
        raise ValueError(f"{sweep_dir}: metric(s) {unknown or metrics} not in these runs; they have {known}")
    left_out = f" ({', '.join(notes)} left out)" if notes else ""
    return draw(rows, x, series_keys, metrics, f"{sweep_dir}: {len(rows)} runs{left_out}")


def stem(sweep_dir: Path) -> str:
    """Output name from the sweep's last two folders (``<experiment>/<time>``)."""
    parts = Path(sweep_dir).resolve().parts[-2:]
    return "sweep_" + re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(parts))


def write(sweep_dir: Path, out_dir: Path = DEFAULT_OUT, x: str | None = None, metrics=None) -> list[Path]:
    """Draw the sweep figure and write it (PNG + PDF) into out_dir."""
    return save_figure(figure(sweep_dir, x, metrics), Path(out_dir), stem(sweep_dir))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m paper_figs sweep", description=__doc__.split("\n")[0])
    parser.add_argument("dir", type=Path, help="a sweep folder (results.json files below it)")
    parser.add_argument("--x", help="config key on the x axis (default: the key that varies)")
    parser.add_argument("--metrics", help=f"comma-separated metrics (default: {','.join(DEFAULT_METRICS)})")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)
    matplotlib.use("Agg")  # files only, no windows
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    try:
        paths = write(args.dir, args.out, args.x, metrics)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("wrote", *paths, sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
