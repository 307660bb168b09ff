"""The MultiColoredMNIST table and figure from results.json files written by the app's own writer."""

import csv
import dataclasses

import numpy as np
import pytest
from omegaconf import OmegaConf

from paper_figs import mnist as fig
from synthetic.config import MNISTRunConfig, resolve_mnist, to_plain
from synthetic.mnist import data, table
from synthetic.mnist.models import MNISTObjective
from synthetic.results import body
from theory.runrecord import write_results

CELLS = [(k, p_inv, 0.9) for k in (2, 10) for p_inv in (0.9, 0.75)]
PAPERS = (
    "synthetic.mnist.models.Contrastive",
    "synthetic.mnist.models.TwoTower",
    "synthetic.mnist.models.Supervised",
)


def _fake_sweep(root, diverged_seed=False, construction="paper", objectives=PAPERS):
    """One job folder per (cell, objective) with made-up per-seed accuracies, written like the app does
    (its recorded config: the components built, each with its _target_)."""
    rng = np.random.default_rng(0)
    job = 0
    for k, p_inv, p_spu in CELLS:
        for target in objectives:
            cfg = OmegaConf.merge(
                OmegaConf.structured(MNISTRunConfig),
                {
                    "mnist": {"k": k, "p_inv": p_inv, "p_spu": p_spu, "construction": construction},
                    "mnist_objective": {"_target_": target},
                    "train": {"batch_size": 128},
                },
            )
            per_seed = {m: rng.uniform(0.3, 0.9, 3).tolist() for m in ("acc_id", "acc_rand", "acc_rev")}
            if diverged_seed and job == 0:
                per_seed["acc_rev"][1] = float("nan")
            folder = root / str(job)
            folder.mkdir(parents=True)
            config = to_plain(resolve_mnist(cfg))
            doc = {"config": config, **body(per_seed, None, {"n_train": 100 * k}), "wall_time_s": 1.0}
            write_results(folder, doc)
            job += 1


def test_table_reads_the_app_results_and_places_the_paper(tmp_path):
    _fake_sweep(tmp_path / "sweep")
    rows = table.collect(tmp_path / "sweep")
    assert len(rows) == len(CELLS) * 3
    paper = {(r["k"], r["p_inv"], r["objective"]): r for r in rows if r["paper_rand_mean"] is not None}
    # SPEC section 1 quotes exactly these four
    assert set(paper) == {
        (2, 0.9, "contrastive"),
        (2, 0.9, "supervised"),
        (10, 0.75, "contrastive"),
        (10, 0.75, "supervised"),
    }
    assert paper[(10, 0.75, "supervised")]["paper_rev_mean"] == 5.72
    r = rows[0]
    assert (r["k"], r["p_inv"], r["objective"], r["n"]) == (2, 0.9, "contrastive", 200)
    assert r["bayes_rand"] == pytest.approx(70.0) and r["bayes_rev"] == pytest.approx(50.0)
    assert r["bayes_rev"] == pytest.approx(100 * data.bayes_accuracy(2, 0.9, 0.9, 0.1))
    paths = table.write(rows, tmp_path / "out")
    with paths[0].open() as f:
        got = list(csv.DictReader(f))
    assert float(got[0]["rand_mean"]) == pytest.approx(r["rand_mean"])
    assert "71.56 ± 1.79" in paths[1].read_text()
    # another construction (every class coupled with a colour) is not the paper's: no paper numbers beside it
    _fake_sweep(tmp_path / "coupled_all", construction="all_coupled")
    assert all(r["paper_rand_mean"] is None for r in table.collect(tmp_path / "coupled_all"))


def test_figure_writes_png_and_pdf_and_tolerates_a_diverged_seed(tmp_path):
    _fake_sweep(tmp_path / "sweep", diverged_seed=True)
    rows = table.collect(tmp_path / "sweep")
    assert rows[0]["rev_mean"] is None  # NaN is stored as null by the app
    paths = fig.make(tmp_path / "figs", tmp_path / "sweep")
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_missing_results_name_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="experiment=multicolored_mnist"):
        fig.make(tmp_path / "figs", tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="experiment=multicolored_mnist"):
        table.latest_sweep(tmp_path)
    (tmp_path / "old").mkdir()
    _fake_sweep(tmp_path / "new")
    assert table.latest_sweep(tmp_path) == tmp_path / "new"


def test_one_cell_figure_puts_the_papers_markers_in_their_objectives_column(tmp_path, monkeypatch):
    """Each reported cell sits at the k offset of the objective it reports, beside that objective's own
    measurement (a sweep of the paper's one (p_inv, p_spu) = (0.75, 0.9) cell)."""
    from matplotlib.colors import to_hex

    monkeypatch.setitem(globals(), "CELLS", [(k, 0.75, 0.9) for k in (2, 10)])  # the one cell
    _fake_sweep(tmp_path / "sweep")
    rows = table.collect(tmp_path / "sweep")
    (ax,) = fig.figure(tmp_path / "sweep").axes
    paper = sorted(
        (float(c.lines[0].get_xdata()[0]), float(c.lines[0].get_ydata()[0]))
        for c in ax.containers
        if to_hex(c.lines[0].get_color()) == "#000000"
    )
    offsets = {o: off for o, (_, off) in fig.objective_styles(rows).items()}
    assert offsets == pytest.approx({"contrastive": -0.12, "two_tower": 0.0, "supervised": 0.12})
    want = sorted(
        (r["k"] + offsets[r["objective"]], r[f"paper_{t}_mean"])
        for r in rows
        for t in ("rand", "rev")
        if r[f"paper_{t}_mean"] is not None
    )
    assert want and np.allclose(paper, want)
    measured = {
        round(float(x), 6)
        for c in ax.containers
        if to_hex(c.lines[0].get_color()) != "#000000"
        for x in c.lines[0].get_xdata()
    }
    assert {round(x, 6) for x, _ in want} <= measured  # beside a measurement


def test_every_objective_the_runs_have_gets_its_own_colour_and_column():
    """A new MultiColoredMNIST objective is drawn without editing the figure: styles come from the rows."""
    rows = [{"objective": o} for o in ("contrastive", "two_tower", "supervised", "my_loss")]
    styles = fig.objective_styles(rows)
    assert list(styles) == ["contrastive", "two_tower", "supervised", "my_loss"]
    assert len({c for c, _ in styles.values()}) == 4
    assert styles["contrastive"][0] == fig.COLOURS["contrastive"]
    offsets = [off for _, off in styles.values()]
    assert offsets == pytest.approx([-0.18, -0.06, 0.06, 0.18])


def test_a_fourth_user_named_objective_is_in_the_table_and_the_figure(tmp_path):
    """Runs of a user's objective (its class in the user's module, here this one) sit beside the paper's
    three in the table and the figure, with no list of objectives to extend."""
    from matplotlib.colors import to_hex

    _fake_sweep(tmp_path / "sweep", objectives=(*PAPERS, f"{__name__}.MyInfoNCE"))
    rows = table.collect(tmp_path / "sweep")
    assert [r["objective"] for r in rows[:4]] == ["contrastive", "two_tower", "supervised", "my_info_nce"]
    assert sum(r["objective"] == "my_info_nce" for r in rows) == len(CELLS)
    lines = (table.write(rows, tmp_path / "out")[1]).read_text().splitlines()
    assert sum("| my_info_nce |" in line for line in lines) == len(CELLS)
    fig_ = fig.figure(tmp_path / "sweep")
    assert "my_info_nce" in [t.get_text() for t in fig_.legends[0].get_texts()]
    colour = to_hex(fig.objective_styles(rows)["my_info_nce"][0])
    drawn = [c for ax in fig_.axes for c in ax.containers if to_hex(c.lines[0].get_color()) == colour]
    panels = {(p_inv, p_spu) for _, p_inv, p_spu in CELLS}
    assert len(drawn) == 2 * len(panels)  # Rand and Rev in every panel, at every k
    assert all(len(c.lines[0].get_xdata()) == len({k for k, _, _ in CELLS}) for c in drawn)


@dataclasses.dataclass(frozen=True)
class MyInfoNCE(MNISTObjective):
    """A user's objective (only its name matters here: the fake runs above record it)."""
