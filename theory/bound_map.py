"""Where does the printed Theorem 6.2 hold? Exact population accuracies against the printed bounds.

    python -m theory.bound_map [--out DIR]        (default DIR: results/theory)

Grid: p_spu in [1/2, 1], mu_spu over the theorem's range [(sigma_inv^2 + 2)/2, that + 4], a few
(sigma_inv, sigma_spu) pairs with sigma_inv > sigma_spu, mu_inv = 1, sigma_xi = 0 (the theorem's
d_M = Omega(n) limit: the image noise sigma_xi^2 / d_M vanishes), both prompts, captions naming both
features. A bound "holds" at a point when
  counter: exact counter error >= 1 - Phi(kappa1)   (i.e. exact counter accuracy <= Phi(kappa1))
  common:  exact common accuracy >= 1 - Phi(kappa2)
Writes bound_map_points.csv (every grid point), bound_map_summary.csv (one row per sigma pair and prompt)
and bound_map_examples.csv (a few points side by side, supervised least squares included), and prints
the summary and the examples as markdown tables (docs/theory.md quotes them).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from scipy.special import ndtr

from theory.exact import PROMPTS, paper_bounds, supervised_accuracy, zero_shot_accuracy
from theory.model import GaussianSpuriousModel

SIGMA_PAIRS = ((0.5, 0.25), (1.0, 0.1), (1.0, 0.5), (1.5, 0.5), (1.5, 1.0))
P_GRID = np.round(np.linspace(0.5, 1.0, 51), 4)
MU_SPAN = 4.0  # mu_spu runs from the theorem's minimum (sigma_inv^2 + 2)/2 to that + MU_SPAN
N_MU = 41
EXAMPLE_P = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
EXAMPLE_MU = (1.5, 2.0, 3.0)  # examples at sigma_inv = 1, sigma_spu = 0.5 (theorem needs mu_spu >= 1.5)
TOL = 1e-12  # float slack when deciding "holds"


def grid_model(sigma_inv: float, sigma_spu: float) -> GaussianSpuriousModel:
    """The (p_spu, mu_spu) grid for one sigma pair, axes (p, mu), inside the theorem's mu_spu range."""
    mu_min = (sigma_inv**2 + 2) / 2
    mu = np.linspace(mu_min, mu_min + MU_SPAN, N_MU)
    return GaussianSpuriousModel(
        p_spu=P_GRID[:, None], mu_spu=mu[None, :], sigma_inv=sigma_inv, sigma_spu=sigma_spu, sigma_xi=0.0
    )


def compare(model: GaussianSpuriousModel, prompt: str) -> dict[str, np.ndarray]:
    """Exact counter/common accuracy of the CLIP optimum beside the printed bounds, and whether they hold."""
    bounds = paper_bounds(model)
    counter = zero_shot_accuracy(model, "counter", prompt)
    common = zero_shot_accuracy(model, "common", prompt)
    counter_upper = ndtr(bounds["kappa1"])  # printed: counter accuracy <= Phi(kappa1)
    common_lower = bounds["common_accuracy_lower_bound"]
    return {
        "exact_counter_acc": counter,
        "printed_counter_acc_upper": counter_upper,
        "counter_holds": counter <= counter_upper + TOL,
        "exact_common_acc": common,
        "printed_common_acc_lower": common_lower,
        "common_holds": common >= common_lower - TOL,
    }


def holds_above(holds_pm: np.ndarray) -> float:
    """Smallest p_spu on the grid from which the bound holds for every larger p_spu and every mu_spu
    (nan if it fails even at p_spu = 1)."""
    ok_from = np.logical_and.accumulate(holds_pm[::-1].all(axis=1))[::-1]  # ok at this p and all above
    return float(P_GRID[ok_from][0]) if ok_from.any() else float("nan")


def summary_rows() -> tuple[list[dict], list[dict]]:
    """(one summary row per sigma pair and prompt, one row per grid point)."""
    summary, points = [], []
    for s_inv, s_spu in SIGMA_PAIRS:
        model = grid_model(s_inv, s_spu)
        p_pm, mu_pm = np.broadcast_arrays(model.p_spu, model.mu_spu)
        for prompt in PROMPTS:
            r = compare(model, prompt)
            counter_gap = r["exact_counter_acc"] - r["printed_counter_acc_upper"]
            common_gap = r["printed_common_acc_lower"] - r["exact_common_acc"]
            summary.append(
                {
                    "sigma_inv": s_inv,
                    "sigma_spu": s_spu,
                    "prompt": prompt,
                    "mu_spu_range": f"[{mu_pm.min():.3g}, {mu_pm.max():.3g}]",
                    "counter_violated_frac": float(1 - r["counter_holds"].mean()),
                    "counter_max_violation": float(max(counter_gap.max(), 0.0)),
                    "counter_holds_for_p_spu_ge": holds_above(r["counter_holds"]),
                    "common_violated_frac": float(1 - r["common_holds"].mean()),
                    "common_max_violation": float(max(common_gap.max(), 0.0)),
                    "common_holds_for_p_spu_ge": holds_above(r["common_holds"]),
                }
            )
            for idx in np.ndindex(p_pm.shape):
                points.append(
                    {"sigma_inv": s_inv, "sigma_spu": s_spu, "prompt": prompt}
                    | {"p_spu": float(p_pm[idx]), "mu_spu": float(mu_pm[idx])}
                    | {k: (bool(v[idx]) if v.dtype == bool else float(v[idx])) for k, v in r.items()}
                )
    return summary, points


def example_rows() -> list[dict]:
    """A few points at sigma_inv = 1, sigma_spu = 0.5: exact CLIP (both prompts), supervised, printed."""
    rows = []
    for mu in EXAMPLE_MU:
        for p in EXAMPLE_P:
            m = GaussianSpuriousModel(p_spu=p, mu_spu=mu, sigma_inv=1.0, sigma_spu=0.5)
            by_prompt = {prompt: compare(m, prompt) for prompt in PROMPTS}
            c = by_prompt["class"]
            rows.append(
                {
                    "mu_spu": mu,
                    "p_spu": p,
                    "counter_acc_class": float(c["exact_counter_acc"]),
                    "counter_acc_mean": float(by_prompt["mean"]["exact_counter_acc"]),
                    "counter_acc_supervised": float(supervised_accuracy(m, "counter")),
                    "printed_counter_acc_upper": float(c["printed_counter_acc_upper"]),
                    "common_acc_class": float(c["exact_common_acc"]),
                    "common_acc_mean": float(by_prompt["mean"]["exact_common_acc"]),
                    "common_acc_supervised": float(supervised_accuracy(m, "common")),
                    "printed_common_acc_lower": float(c["printed_common_acc_lower"]),
                }
            )
    return rows


def _fmt(v) -> str:
    if isinstance(v, float):
        return "never" if np.isnan(v) else f"{v:.3f}"
    return str(v)


def markdown(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_fmt(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/theory"), help="output folder")
    out = parser.parse_args(argv).out
    out.mkdir(parents=True, exist_ok=True)
    summary, points = summary_rows()
    examples = example_rows()
    paths = [out / "bound_map_summary.csv", out / "bound_map_points.csv", out / "bound_map_examples.csv"]
    for path, rows in zip(paths, (summary, points, examples), strict=True):
        write_csv(path, rows)
    print(f"p_spu grid {P_GRID[0]}..{P_GRID[-1]} ({P_GRID.size}), mu_spu {N_MU} values per sigma pair\n")
    print(markdown(summary), "\n")
    print("Examples at sigma_inv = 1, sigma_spu = 0.5:\n")
    print(markdown(examples))
    print("\nwrote", *paths, sep="\n  ")
    return paths


if __name__ == "__main__":
    main()
