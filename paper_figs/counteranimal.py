"""The paper's CounterAnimal figures and table, from reported numbers, measured results, or both.

    python -m paper_figs.counteranimal --mode reference
    python -m paper_figs.counteranimal results/realdata --mode mixed --figure fig2

Modes: ``reference`` draws the paper's reported numbers alone; ``measured`` draws realdata results alone;
``mixed`` draws measured points over the reported ones (reported ones faded, their fits dotted).
One module per figure (PNG + PDF), each exposing ``STEM`` and ``figure(mode, measured, model=None)``
(paper_figs.ca_panels): ``fig2`` common vs counter accuracy (paper_figs.fig_common_vs_counter), ``scaling``
drop vs backbone size (fig_drop_vs_size), ``quality`` drop by pre-training set (fig_drop_by_data),
``per_class`` the per-class drops of one model (fig_per_class).

:func:`make` is the figure contract of ``python -m paper_figs`` (paper_figs.FIGURES): every figure and the
table, measured results drawn over the paper's numbers; with no ``results_dir`` and nothing under the
default folder, the paper's numbers alone (and it says so).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib

from paper_figs import aggregate, fig_common_vs_counter, fig_drop_by_data, fig_drop_vs_size, fig_per_class
from paper_figs.ca_panels import MODES, select_points
from paper_figs.common import DEFAULT_OUT, save_figure
from theory.runrecord import RESULTS_FILE, ResultsError, expect, has_results

# --figure name -> module (STEM and figure(mode, measured, model), the same for each)
FIGURE_MODULES = {
    "fig2": fig_common_vs_counter,
    "scaling": fig_drop_vs_size,
    "quality": fig_drop_by_data,
    "per_class": fig_per_class,
}
FIGURES = tuple(FIGURE_MODULES)


def make_counteranimal(
    mode: str,
    out_dir: Path,
    results: Sequence[Path] = (),
    figures: Sequence[str] | None = None,
    per_class_model: str | None = None,
    write_table: bool = True,
) -> tuple[list[Path], list[str]]:
    """Draw the chosen CounterAnimal figures (default: all) and the table in one mode; (files, notes)."""
    figures = FIGURES if figures is None else figures
    unknown = [f for f in figures if f not in FIGURE_MODULES]
    expect(not unknown, "figures", unknown, f"some of {list(FIGURE_MODULES)} (unknown figures)")
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
    for name in figures:
        module = FIGURE_MODULES[name]
        try:
            fig, note = module.figure(mode, [m.point for m in measured], per_class_model)
        except (ValueError, FileNotFoundError) as err:  # what these results cannot show: say so
            notes.append(f"{name} figure skipped: {err}")
            continue
        notes += [note] if note else []
        files += save_figure(fig, out_dir, module.STEM)
    return files, notes


def make(out_dir: Path, results_dir: Path | None = None) -> list[Path]:
    """Figure contract of paper_figs: every CounterAnimal figure and the table, the realdata results under
    ``results_dir`` drawn over the paper's numbers. ``results_dir=None``: results/realdata, or the paper's
    numbers alone when nothing is there. A given folder without results is an error (ResultsError)."""
    where = Path(results_dir) if results_dir is not None else aggregate.DEFAULT_RESULTS
    if has_results(where):
        mode, results = "mixed", [where]
    elif results_dir is not None:
        raise ResultsError(f"no {RESULTS_FILE} under {where}: run `python -m realdata data.root=...` first")
    else:
        mode, results = "reference", []
        print(
            f"no realdata results under {where} (run the CounterAnimal evaluation first, see README): "
            "drawing the paper's reported numbers only"
        )
    files, notes = make_counteranimal(mode, Path(out_dir), results)
    for note in notes:
        print(note)
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
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
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
