"""Exact common / counter accuracy against p_spu beside the printed Theorem 6.2 (theory only, no results).

    python -m paper_figs.theory_curves [--out DIR]      (default DIR: paper_figs/out)

One panel per mu_spu. Colour = rule (exact CLIP optimum with the class prompt, with the mean prompt,
population least squares, printed bound); line style = test group (solid common, dashed counter). The
printed bounds are drawn as accuracies: common accuracy >= 1 - Phi(kappa2) and counter accuracy
<= Phi(kappa1) (= 1 - the printed counter-error lower bound).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from scipy.special import ndtr

import theory
from paper_figs.common import DEFAULT_OUT, save_figure

NAME = "theory_curves"
MU_SPU = (1.0, 1.5, 2.0, 3.0)  # 1.0: the printed lemma is exact there (outside the theorem's mu_spu >= 1.5)
FIXED = dict(mu_inv=1.0, sigma_inv=1.0, sigma_spu=0.5, sigma_xi=0.0)
RULES = {  # label -> (colour, function of (model, group) -> accuracy)
    "CLIP optimum, class prompt": ("tab:blue", lambda m, g: theory.zero_shot_accuracy(m, g, "class")),
    "CLIP optimum, mean prompt": ("tab:orange", lambda m, g: theory.zero_shot_accuracy(m, g, "mean")),
    "supervised least squares": ("tab:green", theory.supervised_accuracy),
}
GROUP_STYLE = {"common": "-", "counter": "--"}


def curves(mu_spu: float, p_spu: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """{rule label: {group: accuracy over p_spu}}, the printed bounds included as a rule."""
    model = theory.GaussianSpuriousModel(p_spu=p_spu, mu_spu=mu_spu, **FIXED)
    out = {label: {g: fn(model, g) for g in GROUP_STYLE} for label, (_, fn) in RULES.items()}
    bounds = theory.paper_bounds(model)
    out["printed bound"] = {
        "common": bounds["common_accuracy_lower_bound"],
        "counter": ndtr(bounds["kappa1"]),
    }
    return out


def make(out_dir: Path, results_dir: Path | None = None) -> list[Path]:
    """Write theory_curves.png/.pdf into out_dir. results_dir is unused: the figure needs no results."""
    del results_dir
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    p_spu = np.linspace(0.5, 1.0, 201)
    colours = {label: c for label, (c, _) in RULES.items()} | {"printed bound": "black"}
    fig, axes = plt.subplots(1, len(MU_SPU), figsize=(4.0 * len(MU_SPU), 4.2), sharey=True)
    for ax, mu in zip(axes, MU_SPU, strict=True):
        for label, by_group in curves(mu, p_spu).items():
            for group, acc in by_group.items():
                # the printed bound underneath, wide and pale, so a curve it coincides with stays visible
                style = (
                    dict(lw=4, alpha=0.45, zorder=1) if label == "printed bound" else dict(lw=1.8, zorder=2)
                )
                ax.plot(p_spu, acc, GROUP_STYLE[group], color=colours[label], **style)
        note = " (printed lemma exact)" if mu == 1.0 else ""
        ax.set_title(f"$\\mu_{{spu}}$ = {mu:g}{note}", fontsize=11)
        ax.set_xlabel("$p_{spu}$ (training)")
        ax.set_xlim(0.5, 1.0)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy on test group")
    handles = [
        Line2D(
            [],
            [],
            color=c,
            lw=4 if label == "printed bound" else 2,
            alpha=0.45 if label == "printed bound" else 1,
            label=label,
        )
        for label, c in colours.items()
    ]
    handles += [
        Line2D([], [], color="gray", ls=ls, lw=2, label=f"{g} group") for g, ls in GROUP_STYLE.items()
    ]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=9.5)
    fig.suptitle(
        "Exact population accuracy vs Theorem 6.2 as printed "
        "($\\sigma_{inv}$=1, $\\sigma_{spu}$=0.5, $\\mu_{inv}$=1, $\\sigma_\\xi$=0); "
        "printed: common acc $\\geq 1-\\Phi(\\kappa_2)$, counter acc $\\leq \\Phi(\\kappa_1)$",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0.07, 1, 0.95))
    return save_figure(fig, out_dir, NAME)


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    paths = make(parser.parse_args(argv).out)
    print("wrote", *paths, sep="\n  ")
    return paths


if __name__ == "__main__":
    main()
