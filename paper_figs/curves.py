"""``python -m paper_figs curves DIR``: the training-loss curves of any run or sweep.

    python -m paper_figs curves results/synthetic/runs/<time>          # one run: each seed + the mean
    python -m paper_figs curves results/synthetic/theorem62/<time>     # a sweep: one colour per run
    python -m paper_figs curves DIR --out figs/

Reads every results.json under DIR (DIR itself when it holds one) and draws the loss curve each run recorded
(``extra.loss_curve_steps`` against ``loss_curve_per_seed``: thin lines per seed, bold the mean over the
seeds that did not diverge; ``runrecord.track.draw_curves``). Runs are labelled by the config keys that differ
between them; a run whose status is not ok says so in its label; runs without a recorded curve (a
CounterAnimal evaluation, a run that failed before training) are listed in the title and on stdout.
Writes ``curves_<last two folders>`` .png/.pdf into --out.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from paper_figs.common import DEFAULT_OUT, save_figure
from theory.runrecord import RESULTS_FILE
from theory.runrecord.track import curves, draw_curves, flat_config


def load_runs(where: Path) -> list[tuple[Path, dict]]:
    """(run folder, results document) of every results.json under ``where``, in folder order."""
    where = Path(where)
    paths = [where / RESULTS_FILE] if (where / RESULTS_FILE).is_file() else sorted(where.rglob(RESULTS_FILE))
    if not paths:
        raise FileNotFoundError(f"no {RESULTS_FILE} under {where}")
    runs = []
    for p in paths:
        try:
            runs.append((p.parent, json.loads(p.read_text())))
        except json.JSONDecodeError as e:
            raise ValueError(f"{p} is not valid JSON ({e})") from None
    return runs


def labels(docs: list[dict], folders: list[Path]) -> list[str]:
    """Each run's values of the config keys that differ between the runs (``data.p_spu=0.9``); its folder
    name where none differs."""
    flats = [flat_config(d) for d in docs]
    keys = [k for k in dict.fromkeys(k for f in flats for k in f) if len({repr(f.get(k)) for f in flats}) > 1]
    out = []
    for f, d, folder in zip(flats, docs, folders, strict=True):
        text = ", ".join(_shown(k, f.get(k)) for k in keys)
        text = text or (folder.name if len(docs) > 1 else "mean over seeds")
        status = d.get("status")
        out.append(text + ("" if status == "ok" else f" ({status})"))
    return out


def _shown(key: str, value) -> str:
    """``data.p_spu=0.9``; a component by its class (``objective=Clip``)."""
    if key.endswith("._target_"):
        return f"{key.removesuffix('._target_')}={str(value).rsplit('.', 1)[-1]}"
    return f"{key}={value}"


def figure(where: Path) -> tuple[Figure, list[Path]]:
    """The curves figure and the run folders that recorded no curve."""
    runs = load_runs(where)
    drawn = [(p, d) for p, d in runs if curves(d)]
    without = [p for p, d in runs if not curves(d)]
    if not drawn:
        raise ValueError(f"{where}: none of its {len(runs)} runs recorded a loss curve")
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    colours = plt.get_cmap("tab10" if len(drawn) <= 10 else "tab20")
    names = labels([d for _, d in drawn], [p for p, _ in drawn])
    for i, ((_, doc), name) in enumerate(zip(drawn, names, strict=True)):
        draw_curves(ax, doc, name, colours(i % colours.N) if len(drawn) > 1 else None)
    ax.set(xlabel="step", ylabel="training loss (thin: seeds, bold: mean)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # off the data
    missing = f"; {len(without)} without a curve" if without else ""
    ax.set_title(f"{where}: {len(drawn)} runs{missing}", fontsize=9)
    fig.tight_layout()
    return fig, without


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m paper_figs curves", description=__doc__.split("\n")[0])
    parser.add_argument("dir", type=Path, help="a run or sweep folder (results.json files below it)")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)
    matplotlib.use("Agg")
    try:
        fig, without = figure(args.dir)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    stem = "curves_" + re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(args.dir.resolve().parts[-2:]))
    paths = save_figure(fig, args.out, stem)
    for p in without:
        print(f"no loss curve recorded: {p}")
    print("wrote", *paths, sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
