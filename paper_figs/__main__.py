"""Regenerate every figure of the package.

    python -m paper_figs                      # theory, synthetic, MNIST figures + CounterAnimal (mixed mode)
    python -m paper_figs --reference          # CounterAnimal figures and table from the paper's numbers alone
    python -m paper_figs --results counteranimal=DIR --results mnist=DIR --out DIR
    python -m paper_figs sweep DIR [--x KEY] [--metrics M1,M2] [--out DIR]   # any synthetic sweep folder
    python -m paper_figs curves DIR [--out DIR]                               # loss curves of a run or sweep

Every module of the registry (paper_figs.FIGURES) is drawn through the one contract,
``make(out_dir, results_dir)``; ``--results FIGURE=DIR`` hands one figure its results folder (default: its
own place under results/). CounterAnimal figures draw the realdata results over the paper's numbers; with no
results under results/realdata they fall back to the paper's numbers and say so. A part whose module or saved
results are missing is reported and skipped; the exit status is non-zero only if something broke.
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

import paper_figs
from paper_figs.common import DEFAULT_OUT


@dataclass
class Outcome:
    part: str
    status: str  # "ok" | "skipped" | "FAILED"
    detail: str = ""
    files: list[Path] = field(default_factory=list)


def run_module(name: str, out_dir: Path, results_dir: Path | None = None) -> Outcome:
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
        files = list(module.make(out_dir, results_dir))
    except FileNotFoundError as err:
        return Outcome(name, "skipped", f"results not there yet: {err}")
    except Exception as err:
        traceback.print_exc()
        return Outcome(name, "FAILED", f"{type(err).__name__}: {err}")
    return Outcome(name, "ok", f"{len(files)} files", files)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sweep"]:
        from paper_figs import sweep

        return sweep.main(argv[1:])
    if argv[:1] == ["curves"]:
        from paper_figs import curves

        return curves.main(argv[1:])
    figures = paper_figs.FIGURES  # read when called: the registry is paper_figs/__init__.py's tuple
    parser = argparse.ArgumentParser(
        prog="python -m paper_figs",
        description=__doc__.split("\n")[0],
        epilog="python -m paper_figs sweep DIR [--x KEY] [--metrics ...] [--out DIR]: "
        "draw one synthetic sweep (see python -m paper_figs sweep -h); "
        "python -m paper_figs curves DIR: the loss curves of a run or sweep",
    )
    parser.add_argument("--reference", action="store_true", help="CounterAnimal from reported numbers only")
    parser.add_argument(
        "--results",
        action="append",
        default=[],
        metavar="FIGURE=DIR",
        help=f"one figure's results folder (repeatable; default: each figure's own); FIGURE in {figures}",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)
    matplotlib.use("Agg")  # files only, no windows
    if args.reference and args.results:
        parser.error("--reference draws the paper's numbers alone; drop --results")
    results: dict[str, Path] = {}
    for item in args.results:
        name, sep, folder = item.partition("=")
        if not sep or name not in figures or not folder:
            parser.error(f"--results {item!r}: expected FIGURE=DIR with FIGURE one of {list(figures)}")
        results[name] = Path(folder)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.reference:
        from paper_figs.counteranimal import make_counteranimal

        files, notes = make_counteranimal("reference", args.out)
        print("\n".join(notes))
        outcomes = [Outcome("counteranimal", "ok", f"reference mode, {len(files)} files", files)]
    else:
        outcomes = [run_module(name, args.out, results.get(name)) for name in figures]
    print(f"\nsummary (output in {args.out}):")
    for o in outcomes:
        print(f"  {o.part:<20} {o.status:<8} {o.detail}")
    return 1 if any(o.status == "FAILED" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
