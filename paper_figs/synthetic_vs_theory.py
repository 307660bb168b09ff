"""Simulation against the exact theory: ``experiment=theorem62`` and ``experiment=objectives`` sweeps.

    python -m paper_figs.synthetic_vs_theory [--results results/synthetic] [--out paper_figs/out]
    python -m paper_figs.synthetic_vs_theory --theorem62 DIR --objectives DIR     # the two sweeps to draw

Reads one sweep of each experiment under ``results_dir`` (``<results_dir>/<name>/<time>/*/``, where
``python -m synthetic -m experiment=<name>`` and ``make demo`` write results.json): the ones given, else
the newest pair run at the same size (the same data model and ``data.n``: the panels share their theory
curves), never the newest of each when their sizes differ. Three panels over p_spu:
(a) linearised CLIP (theorem62): simulated accuracy per test group, mean and std over seeds, on the exact
population curves, with Theorem 6.2's printed bounds drawn as accuracies (common >= 1 - Phi(kappa2),
counter <= Phi(kappa1)); (b) counter and (c) common accuracy of every objective against the CLIP optimum
(zero-shot, class prompt) and the population least-squares classifier; clip and siglip are shown with the
class prompt (filled) and the mean prompt E[z_T | y] (hollow). Also writes the numbers behind
panel (a), simulation minus theory, to synthetic_vs_theory.csv.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from scipy.special import ndtr

import theory
import theory.runrecord
from paper_figs.common import DEFAULT_OUT, save_figure
from synthetic.aggregate import collect

NAME = "synthetic_vs_theory"
DEFAULT_RESULTS = Path("results/synthetic")
EXPERIMENTS = ("theorem62", "objectives")
GROUP_COLOURS = {"common": "tab:blue", "counter": "tab:red", "balanced": "tab:gray"}
OBJECTIVE_STYLE = {  # objective (as _key() spells it) -> (colour, marker); any other: black crosses
    "linearclip": ("tab:blue", "o"),
    "clip": ("tab:orange", "s"),
    "siglip": ("tab:purple", "^"),
    "supervised": ("tab:green", "D"),
}
MEAN_PROMPT = ("clip", "siglip")  # also drawn with the mean prompt E[z_T | y] (hollow markers)
MODEL_KEYS = ("mu_inv", "mu_spu", "sigma_inv", "sigma_spu", "sigma_xi", "d_image", "d_text", "caption_q")


def latest_sweep(results_dir: Path, name: str) -> Path:
    """The newest sweep directory of experiment ``name`` (directory names are timestamps)."""
    hint = f"create it with `python -m synthetic -m experiment={name}` (or `make demo` for a CPU-size run)"
    return theory.runrecord.latest_sweep(Path(results_dir) / name, hint)


def component(row: dict, group: str) -> str:
    """Which component built a run's ``group`` (``objective``, ``encoder``): the class named by
    ``<group>._target_`` (``synthetic.objectives.LinearClip`` -> ``LinearClip``), or ``<group>.name`` in
    results written before components had targets (``linear_clip``)."""
    name = row.get(f"{group}._target_") or row.get(f"{group}.name")
    if name is None:
        raise ValueError(f"run {row.get('run')}: no {group}._target_ (or {group}.name) in its config")
    return str(name).rsplit(".", 1)[-1]


def _key(name: str) -> str:
    """One spelling for both: ``LinearClip`` and ``linear_clip`` -> ``linearclip``."""
    return name.replace("_", "").lower()


def _ok_rows(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["status"] == "ok"]


def _model(row: dict, p_spu) -> theory.GaussianSpuriousModel:
    kw = {k: float(row[f"data.{k}"]) for k in MODEL_KEYS}
    return theory.GaussianSpuriousModel(p_spu=p_spu, rho=float(row["objective.rho"]), **kw)


def check_one_data_model(rows: dict[str, list[dict]], sweeps: dict[str, Path]) -> None:
    """Each panel draws one set of theory curves, so every run must share the data model's parameters."""
    for key in (*MODEL_KEYS, "n"):  # and the training-set size, where the runs record it
        seen = {
            name: sorted({float(r[f"data.{key}"]) for r in rs if r.get(f"data.{key}") is not None})
            for name, rs in rows.items()
        }
        if len({v for vals in seen.values() for v in vals}) > 1:
            raise ValueError(
                f"data.{key} differs between the runs drawn together ({seen}; sweeps {sweeps}): "
                "run theorem62 and objectives at the same size (e.g. both with `make demo`)"
            )


def _series(rows: list[dict], metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = sorted(rows, key=lambda r: float(r["data.p_spu"]))
    p = np.array([float(r["data.p_spu"]) for r in rows])
    mean = np.array([float(r[f"{metric}_mean"]) for r in rows])
    std = np.array([float(r[f"{metric}_std"]) for r in rows])
    return p, mean, std


def theorem62_table(rows: list[dict]) -> list[dict]:
    """Per sweep point and group: simulation mean/std, exact theory, difference, and the printed bound."""
    out = []
    for r in sorted(_ok_rows(rows), key=lambda r: float(r["data.p_spu"])):
        for g in ("common", "counter", "balanced", "id"):
            sim, th = float(r[f"acc_{g}_mean"]), float(r[f"theory.acc_{g}"])
            out.append(
                {
                    "p_spu": float(r["data.p_spu"]),
                    "group": g,
                    "sim_mean": sim,
                    "sim_std": float(r[f"acc_{g}_std"]),
                    "seeds": int(r[f"acc_{g}_n"]),
                    "theory": th,
                    "sim_minus_theory": sim - th,
                    "dist_optimum_mean": float(r["dist_optimum_mean"])
                    if r.get("dist_optimum_mean")
                    else None,
                    "printed_bound": {
                        "common": float(r["theory.common_accuracy_lower_bound"]),
                        "counter": float(r["theory.counter_accuracy_upper_bound"]),
                    }.get(g),
                }
            )
    return out


def _panel_theorem62(ax, rows: list[dict]) -> None:
    ref = rows[0]
    rank = int(ref["encoder.h"]) if _key(component(ref, "encoder")) == "linear" else None
    grid = np.linspace(0.5, 1.0, 201)
    model = _model(ref, grid)
    bounds = theory.paper_bounds(model)
    for g, colour in GROUP_COLOURS.items():
        ax.plot(
            grid,
            theory.zero_shot_accuracy(model, g, "class", rank=rank),
            color=colour,
            lw=1.6,
            label=f"exact, {g}",
        )
        p, mean, std = _series(rows, f"acc_{g}")
        ax.errorbar(p, mean, yerr=std, fmt="o", ms=4, color=colour, capsize=2, label=f"simulation, {g}")
    ax.plot(grid, bounds["common_accuracy_lower_bound"], "k--", lw=1.2, label="printed bound, common (>=)")
    ax.plot(grid, ndtr(bounds["kappa1"]), "k:", lw=1.4, label="printed bound, counter (<=)")
    n, d = int(ref["data.n"]), int(ref["data.d_image"])
    ax.set_title(f"(a) linearised CLIP, linear encoders (n={n}, d={d}, h={ref['encoder.h']})", fontsize=9)


def _panel_objectives(ax, by_objective: dict[str, list[dict]], group: str, letter: str) -> None:
    ref = next(iter(by_objective.values()))[0]
    grid = np.linspace(0.5, 1.0, 201)
    model = _model(ref, grid)
    ax.plot(
        grid,
        theory.zero_shot_accuracy(model, group, "class"),
        color="tab:blue",
        lw=1.4,
        label="exact CLIP optimum",
    )
    ax.plot(
        grid,
        theory.supervised_accuracy(model, group),
        color="tab:green",
        lw=1.4,
        ls="--",
        label="least squares",
    )
    for objective, rows in by_objective.items():
        colour, marker = OBJECTIVE_STYLE.get(_key(objective), ("black", "x"))
        p, mean, std = _series(rows, f"acc_{group}")
        label = objective if _key(objective) == "supervised" else f"{objective}, class prompt"
        ax.errorbar(p, mean, yerr=std, fmt=marker, ms=4, color=colour, capsize=2, alpha=0.85, label=label)
        if _key(objective) in MEAN_PROMPT:
            p, mean, std = _series(rows, f"acc_{group}_prompt_mean")
            ax.errorbar(
                p,
                mean,
                yerr=std,
                fmt=marker,
                ms=4,
                mfc="none",
                color=colour,
                capsize=2,
                alpha=0.85,
                label=f"{objective}, mean prompt",
            )
    ax.set_title(f"({letter}) {group} accuracy by objective", fontsize=9)


def sweeps_of(results_dir: Path, name: str) -> list[Path]:
    """Sweep folders of experiment ``name`` holding results, newest first (FileNotFoundError: none)."""
    latest_sweep(results_dir, name)  # names the command that makes them when there is none
    base = Path(results_dir) / name
    return sorted((p for p in base.iterdir() if theory.runrecord.has_results(p)), reverse=True)


def matching_pair(results_dir: Path, chosen: dict[str, Path] | None = None) -> tuple[dict, dict]:
    """(sweeps, ok rows) of theorem62 and objectives: the ``chosen`` ones, else the newest pair that agrees
    on the data model and data.n (ValueError listing the sweeps when no pair does)."""
    chosen = {k: Path(v) for k, v in (chosen or {}).items() if v is not None}
    candidates = {
        name: [chosen[name]] if name in chosen else sweeps_of(results_dir, name) for name in EXPERIMENTS
    }
    rows_of: dict[Path, list[dict]] = {}

    def rows(sweep: Path) -> list[dict]:
        if sweep not in rows_of:
            rows_of[sweep] = _ok_rows(collect(sweep))
            if not rows_of[sweep]:
                raise FileNotFoundError(f"{sweep}: no run finished with status ok")
        return rows_of[sweep]

    tried = []
    for t62 in candidates["theorem62"]:
        for obj in candidates["objectives"]:
            pair = {"theorem62": t62, "objectives": obj}
            got = {name: rows(sweep) for name, sweep in pair.items()}
            try:
                check_one_data_model(got, pair)
            except ValueError as err:
                if chosen.keys() >= set(EXPERIMENTS):
                    raise
                tried.append(f"{t62.name} + {obj.name}: {str(err).split(' (')[0]}")
                continue
            return pair, got
    raise ValueError(
        f"no theorem62 and objectives sweeps under {results_dir} were run at the same size ("
        + "; ".join(tried[:6])
        + "): choose them with python -m paper_figs.synthetic_vs_theory --theorem62 DIR --objectives DIR"
    )


def make(out_dir: Path, results_dir: Path | None = None, chosen: dict[str, Path] | None = None) -> list[Path]:
    """Write synthetic_vs_theory.png/.pdf (and the panel-(a) numbers as .csv) into out_dir, from the
    ``chosen`` sweeps (``{"theorem62": DIR, "objectives": DIR}``) or the newest pair of the same size."""
    results_dir = Path(results_dir) if results_dir is not None else DEFAULT_RESULTS
    sweeps, rows = matching_pair(results_dir, chosen)
    by_objective: dict[str, list[dict]] = {}
    for r in rows["theorem62"] + rows["objectives"]:
        by_objective.setdefault(component(r, "objective"), []).append(r)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), sharey=True)
    _panel_theorem62(axes[0], rows["theorem62"])
    _panel_objectives(axes[1], by_objective, "counter", "b")
    _panel_objectives(axes[2], by_objective, "common", "c")
    for ax in axes:
        ax.set_xlabel("p_spu (training P(background = class))")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    axes[0].set_ylabel("accuracy (mean +- std over seeds)")
    fig.tight_layout()
    paths = save_figure(fig, out_dir, NAME)
    table = theorem62_table(rows["theorem62"])
    csv_path = out_dir / f"{NAME}.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)
    return paths + [csv_path]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m paper_figs.synthetic_vs_theory")
    parser.add_argument(
        "--results", type=Path, default=DEFAULT_RESULTS, help="root holding <experiment>/<time>/"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    for name in EXPERIMENTS:
        parser.add_argument(f"--{name}", type=Path, help=f"the {name} sweep folder (default: see above)")
    args = parser.parse_args(argv)
    chosen = {name: getattr(args, name) for name in EXPERIMENTS}
    for path in make(args.out, args.results, chosen):
        print(path)


if __name__ == "__main__":
    main()
