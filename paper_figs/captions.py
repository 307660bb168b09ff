"""``python -m paper_figs.captions [DIR]``: the captions map, simulation on theory, per objective.

Reads a ``python -m synthetic -m experiment=captions`` sweep (default: the newest under
results/synthetic/captions/): objective x caption_q x p_spu. One column per caption_q; rows: counter
accuracy with the background-free "class" prompt, with the class-mean prompt, and the signed drop
(common - counter) with the class prompt. Each objective has its own colour: points are the seed mean
+- std, dashed lines the exact prediction for that objective (``theory.<metric>`` of its runs; absent
where results.json has none). Supervised ERM (no prompts) is drawn in every row as the reference. Writes
``captions_map.{png,pdf}`` and ``captions_map.csv`` (one row per run and metric: simulation beside theory).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from paper_figs.common import DEFAULT_OUT, save_figure
from paper_figs.sweep import with_components
from runrecord import latest_sweep
from synthetic.aggregate import collect

RESULTS = Path("results/synthetic")
ROWS = (
    ("acc_counter", "counter acc., class prompt"),
    ("acc_counter_prompt_mean", "counter acc., mean prompt"),
    ("drop", "drop (common - counter), class prompt"),
)
SUPERVISED_METRIC = {"acc_counter": "acc_counter", "acc_counter_prompt_mean": "acc_counter", "drop": "drop"}


def _num(v):
    return float(v) if v not in (None, "") else np.nan


def table(rows: list[dict]) -> list[dict]:
    """One row per (run, metric): objective, caption_q, p_spu, simulation mean/std/n, theory."""
    out = []
    for r in with_components(rows):
        if r["status"] != "ok":
            continue
        for metric in dict.fromkeys([*SUPERVISED_METRIC, "acc_common", "acc_common_prompt_mean"]):
            if f"{metric}_mean" not in r or r[f"{metric}_mean"] in (None, ""):
                continue
            out.append(
                {
                    "objective": r["objective"],
                    "caption_q": _num(r["data.caption_q"]),
                    "p_spu": _num(r["data.p_spu"]),
                    "metric": metric,
                    "sim_mean": _num(r[f"{metric}_mean"]),
                    "sim_std": _num(r[f"{metric}_std"]),
                    "n_seeds": int(_num(r[f"{metric}_n"])),
                    "theory": _num(r.get(f"theory.{metric}")),
                    "theory_objective": r.get("theory.objective"),
                }
            )
    return out


def figure(entries: list[dict]) -> Figure:
    qs = sorted({e["caption_q"] for e in entries})
    objectives = sorted({e["objective"] for e in entries})
    colours = dict(zip(objectives, plt.get_cmap("tab10").colors, strict=False))
    markers = dict(zip(objectives, "oD^vP*X", strict=False))  # overlapping objectives stay apart
    fig, axes = plt.subplots(len(ROWS), len(qs), figsize=(3.2 * len(qs), 2.8 * len(ROWS)), squeeze=False)
    for i, (metric, label) in enumerate(ROWS):
        for j, q in enumerate(qs):
            ax = axes[i, j]
            for obj in objectives:
                m = metric if obj != "Supervised" else SUPERVISED_METRIC[metric]
                pts = sorted(
                    (
                        e
                        for e in entries
                        if e["objective"] == obj and e["caption_q"] == q and e["metric"] == m
                    ),
                    key=lambda e: e["p_spu"],
                )
                if not pts:
                    continue
                x = [e["p_spu"] for e in pts]
                style = {"marker": "s", "mfc": "none"} if obj == "Supervised" else {"marker": markers[obj]}
                ax.errorbar(
                    x, [e["sim_mean"] for e in pts], [e["sim_std"] for e in pts], ls="none", ms=4,
                    color=colours[obj], capsize=2, label=obj, **style,
                )  # fmt: skip
                theory = [e["theory"] for e in pts]
                if np.isfinite(theory).any():
                    ax.plot(x, theory, ls="--", lw=1.2, color=colours[obj])
            ax.axhline(0.0 if metric == "drop" else 0.5, color="0.85", lw=0.8, zorder=0)
            ax.set_title(f"caption_q = {q:g}", fontsize=9)
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
            if i == len(ROWS) - 1:
                ax.set_xlabel("p_spu")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(objectives), frameon=False)
    fig.suptitle("points: simulation (mean +- std over seeds); dashed: exact prediction", y=0.0, fontsize=8)
    fig.tight_layout(rect=(0, 0.02, 1, 0.95))
    return fig


def write_csv(entries: list[dict], path: Path) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(entries[0]))
        w.writeheader()
        w.writerows(entries)
    return path


def make(
    out_dir: Path = DEFAULT_OUT, results_dir: Path | None = None, sweep: Path | None = None
) -> list[Path]:
    hint = "create it with `python -m synthetic -m experiment=captions`"
    sweep = sweep or latest_sweep(Path(results_dir or RESULTS) / "captions", hint)
    entries = table(collect(sweep))
    if not entries:
        raise FileNotFoundError(f"{sweep}: no finished run to draw")
    paths = save_figure(figure(entries), Path(out_dir), "captions_map")
    return [*paths, write_csv(entries, Path(out_dir) / "captions_map.csv")]


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(
        prog="python -m paper_figs.captions", description=__doc__.splitlines()[0]
    )
    parser.add_argument("sweep", nargs="?", type=Path, help="a captions sweep folder (default: the newest)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    paths = make(args.out, sweep=args.sweep)
    for p in paths:
        print(f"written: {p}")
    return paths


if __name__ == "__main__":
    main()
