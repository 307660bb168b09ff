"""The theory's two commands: the bound map table and the theory figure (tiny, offline)."""

import csv

import numpy as np
import pytest
from scipy.stats import norm

import theory
from paper_figs import theory_curves
from theory import bound_map


def test_bound_map_writes_tables_consistent_with_the_closed_forms(tmp_path, capsys):
    paths = bound_map.main(["--out", str(tmp_path)])
    assert [p.name for p in paths] == [
        "bound_map_summary.csv",
        "bound_map_points.csv",
        "bound_map_examples.csv",
    ]
    summary = list(csv.DictReader(paths[0].open()))
    assert len(summary) == len(bound_map.SIGMA_PAIRS) * len(theory.PROMPTS)
    points = list(csv.DictReader(paths[1].open()))
    assert len(points) == len(summary) * bound_map.P_GRID.size * bound_map.N_MU
    # recomputed directly: fraction of the grid violating the counter bound (first sigma pair, class prompt)
    s_inv, s_spu = bound_map.SIGMA_PAIRS[0]
    rows = [r for r in points if float(r["sigma_inv"]) == s_inv and r["prompt"] == "class"]
    m = theory.GaussianSpuriousModel(
        p_spu=np.array([float(r["p_spu"]) for r in rows]),
        mu_spu=np.array([float(r["mu_spu"]) for r in rows]),
        sigma_inv=s_inv,
        sigma_spu=s_spu,
    )
    violated = (
        theory.zero_shot_accuracy(m, "counter", "class") > norm.cdf(theory.paper_bounds(m)["kappa1"]) + 1e-12
    )
    assert float(summary[0]["counter_violated_frac"]) == pytest.approx(np.mean(violated), abs=1e-12)
    assert "| sigma_inv |" in capsys.readouterr().out


def test_theory_figure_is_written(tmp_path):
    paths = theory_curves.make(tmp_path)
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_printed_bound_coincides_with_exact_class_prompt_at_unit_spurious_mean():
    """mu_spu = 1 (the left panel): printed lemma K = E[zz^T] and group means [1, +-1] are right, so with no
    noise the printed bounds are exactly the class-prompt accuracies; at mu_spu = 2 they are not."""
    p = np.linspace(0.5, 1, 11)
    c = theory_curves.curves(1.0, p)
    for group in ("common", "counter"):
        assert np.allclose(c["printed bound"][group], c["CLIP optimum, class prompt"][group], atol=1e-12)
    c2 = theory_curves.curves(2.0, p)
    assert not np.allclose(
        c2["printed bound"]["counter"], c2["CLIP optimum, class prompt"]["counter"], atol=1e-3
    )
