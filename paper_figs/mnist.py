"""MultiColoredMNIST (paper Table 8): Rand and Rev accuracy against the number of classes, per objective.

    python -m paper_figs.mnist [--results DIR] [--out DIR]

DIR is a multirun folder of ``python -m synthetic -m experiment=multicolored_mnist`` (default: the newest
sweep under results/synthetic/multicolored_mnist). One panel per (p_inv, p_spu); colour = objective,
solid = Rand, dashed = Rev, error bars = std over seeds; grey = the Bayes-optimal rule for the training
law; black markers = the paper's reported cells.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D

from paper_figs.common import DEFAULT_OUT, save_figure
from synthetic.mnist import table

NAME = "mnist_rand_rev"
COLOURS = {"contrastive": "tab:blue", "two_tower": "tab:orange", "supervised": "tab:green"}
OTHER_COLOURS = ("tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:red")
STEP = 0.12  # objectives side by side at each k, this far apart


def objective_styles(rows: list[dict]) -> dict[str, tuple[str, float]]:
    """Every objective the runs have (the table's order) -> (colour, x offset): a new objective is drawn
    without touching this module."""
    names = list(dict.fromkeys(r["objective"] for r in rows))
    others = iter(OTHER_COLOURS * len(names))
    return {
        o: (COLOURS.get(o) or next(others), (i - (len(names) - 1) / 2) * STEP) for i, o in enumerate(names)
    }


TESTS = {"rand": "-", "rev": "--"}
MARKERS = {"rand": "o", "rev": "v"}


def make(out_dir: Path, results_dir: Path | None = None) -> list[Path]:
    """Write mnist_rand_rev.png/.pdf into out_dir from the sweep in results_dir (default: the newest)."""
    results_dir = table.latest_sweep() if results_dir is None else Path(results_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return save_figure(figure(results_dir), out_dir, NAME)


def figure(results_dir: Path):
    """The figure of the sweep in results_dir: one panel per (p_inv, p_spu) cell of the sweep."""
    rows = table.collect(results_dir)
    styles = objective_styles(rows)
    p_invs = sorted({r["p_inv"] for r in rows}, reverse=True)
    p_spus = sorted({r["p_spu"] for r in rows})
    fig, axes = plt.subplots(
        len(p_invs),
        len(p_spus),
        figsize=(4.2 * len(p_spus), 3.6 * len(p_invs)),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    for i, p_inv in enumerate(p_invs):
        for j, p_spu in enumerate(p_spus):
            ax = axes[i, j]
            cell = [r for r in rows if r["p_inv"] == p_inv and r["p_spu"] == p_spu]
            for test, ls in TESTS.items():
                bayes = sorted({(r["k"], r[f"bayes_{test}"]) for r in cell})
                ax.plot(
                    *zip(*bayes, strict=True), ls, marker="s", ms=7, color="0.6", lw=3, alpha=0.5, zorder=1
                )
                for objective, (colour, offset) in styles.items():
                    pts = sorted(
                        (r["k"], r[f"{test}_mean"], r[f"{test}_std"])
                        for r in cell
                        if r["objective"] == objective and r[f"{test}_mean"] is not None
                    )
                    if pts:
                        k, mean, std = zip(*pts, strict=True)
                        k = [kk + offset for kk in k]
                        std = [0.0 if s is None else s for s in std]  # one seed: no spread
                        ax.errorbar(
                            k, mean, std, fmt=ls, marker=MARKERS[test], ms=4, color=colour, capsize=2, lw=1.5
                        )
                paper = sorted(  # beside the measured objective it reports, in that objective's column
                    (r["k"] + styles[r["objective"]][1], r[f"paper_{test}_mean"], r[f"paper_{test}_std"])
                    for r in cell
                    if r[f"paper_{test}_mean"] is not None
                )
                for k, mean, std in paper:
                    ax.errorbar(
                        k, mean, std, fmt=MARKERS[test], color="black", mfc="none", ms=8, capsize=3, zorder=5
                    )
            ax.set_title(f"$p_{{inv}}$ = {p_inv:g}, $p_{{spu}}$ = {p_spu:g}", fontsize=10)
            ax.grid(alpha=0.3)
            ax.set_ylim(-2, 102)
            ax.set_xticks(sorted({r["k"] for r in rows}))
            if i == len(p_invs) - 1:
                ax.set_xlabel("classes k")
            if j == 0:
                ax.set_ylabel("test accuracy (%)")
    handles = [Line2D([], [], color=c, lw=2, label=o) for o, (c, _) in styles.items()]
    handles += [Line2D([], [], color="0.6", lw=3, marker="s", alpha=0.5, label="Bayes rule (training law)")]
    handles += [
        Line2D([], [], color="gray", ls=ls, marker=MARKERS[t], label=t.capitalize())
        for t, ls in TESTS.items()
    ]
    handles += [Line2D([], [], color="black", ls="none", marker="o", mfc="none", label="paper")]
    fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False, fontsize=9)
    fig.suptitle(f"MultiColoredMNIST: Rand and Rev accuracy ({results_dir})", fontsize=10)
    fig.tight_layout(rect=(0, 0.09, 1, 0.96))
    return fig


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=None, help="multirun folder (default: newest sweep)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    paths = make(args.out, args.results)
    print("wrote", *paths, sep="\n  ")
    return paths


if __name__ == "__main__":
    main()
