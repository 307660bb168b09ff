"""Regenerate every figure of the package.

    python -m paper_figs                      # theory, synthetic, MNIST figures + CounterAnimal (mixed mode)
    python -m paper_figs --reference          # CounterAnimal figures and table from the paper's numbers alone
    python -m paper_figs --results DIR --out DIR
    python -m paper_figs sweep DIR [--x KEY] [--metrics M1,M2] [--out DIR]   # any synthetic sweep folder
    python -m paper_figs curves DIR [--out DIR]                               # loss curves of a run or sweep

CounterAnimal figures use the realdata results under --results (default results/realdata) drawn over the
paper's numbers; with no results there they fall back to the paper's numbers and say so. A part whose module
or saved results are missing is reported and skipped; the exit status is non-zero only if something broke.
``sweep`` draws one synthetic sweep folder (paper_figs.sweep; ``python -m paper_figs sweep -h``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

from paper_figs import aggregate
from paper_figs.common import DEFAULT_OUT
from paper_figs.counteranimal import make_counteranimal
from runrecord import RESULTS_FILE, has_results

DEFAULT_RESULTS = aggregate.DEFAULT_RESULTS
# Figure modules written to the shared contract: make(out_dir, results_dir=None) -> list[Path].
FIGURE_MODULES = ("theory_curves", "synthetic_vs_theory", "captions", "mnist", "coloredcoco")


@dataclass
class Outcome:
    part: str
    status: str  # "ok" | "skipped" | "FAILED"
    detail: str = ""
    files: list[Path] = field(default_factory=list)


def run_module(name: str, out_dir: Path) -> Outcome:
    """Import paper_figs.<name> lazily, call make(); a missing module or results: skipped; else FAILED."""
    module_name = f"paper_figs.{name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            traceback.print_exc()
            return Outcome(name, "FAILED", f"import error: {err}")
        return Outcome(name, "skipped", f"module {module_name} does not exist yet")
    except Exception as err:  # a broken module must not stop the other figures
        traceback.print_exc()
        return Outcome(name, "FAILED", f"import error: {err!r}")
    try:
        files = list(module.make(out_dir))
    except FileNotFoundError as err:
        return Outcome(name, "skipped", f"results not there yet: {err}")
    except Exception as err:
        traceback.print_exc()
        return Outcome(name, "FAILED", repr(err))
    return Outcome(name, "ok", f"{len(files)} files", files)


def run_counteranimal(out_dir: Path, results_dir: Path | None, reference: bool) -> tuple[Outcome, list[str]]:
    """CounterAnimal figures + table: reference mode, or mixed over whatever results exist."""
    notes: list[str] = []
    mode = "reference"
    if not reference:
        where = results_dir or DEFAULT_RESULTS
        if has_results(where):
            mode = "mixed"
        elif results_dir is not None:
            return Outcome("counteranimal", "FAILED", f"no {RESULTS_FILE} under {results_dir}"), notes
        else:
            notes.append(
                f"no realdata results under {where} (run the CounterAnimal evaluation first, see README): "
                "drawing the paper's reported numbers only"
            )
    try:
        files, more = make_counteranimal(
            mode, out_dir, [results_dir or DEFAULT_RESULTS] if mode == "mixed" else []
        )
    except (aggregate.ResultsError, FileNotFoundError, ValueError) as err:
        traceback.print_exc()
        return Outcome("counteranimal", "FAILED", str(err)), notes
    return Outcome("counteranimal", "ok", f"{mode} mode, {len(files)} files", files), notes + more


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sweep"]:
        from paper_figs import sweep

        return sweep.main(argv[1:])
    if argv[:1] == ["curves"]:
        from paper_figs import curves

        return curves.main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m paper_figs",
        description=__doc__.split("\n")[0],
        epilog="python -m paper_figs sweep DIR [--x KEY] [--metrics ...] [--out DIR]: "
        "draw one synthetic sweep (see python -m paper_figs sweep -h); "
        "python -m paper_figs curves DIR: the loss curves of a run or sweep",
    )
    parser.add_argument("--reference", action="store_true", help="CounterAnimal from reported numbers only")
    parser.add_argument("--results", type=Path, help=f"realdata results folder (default {DEFAULT_RESULTS})")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)
    matplotlib.use("Agg")  # files only, no windows
    if args.reference and args.results is not None:
        parser.error("--reference draws the paper's numbers alone; drop --results")
    args.out.mkdir(parents=True, exist_ok=True)
    outcomes = [] if args.reference else [run_module(name, args.out) for name in FIGURE_MODULES]
    animal, notes = run_counteranimal(args.out, args.results, args.reference)
    outcomes.append(animal)
    for note in notes:
        print(note)
    print(f"\nsummary (output in {args.out}):")
    for o in outcomes:
        print(f"  {o.part:<20} {o.status:<8} {o.detail}")
    return 1 if any(o.status == "FAILED" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
