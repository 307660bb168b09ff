"""paper_figs CounterAnimal figures and `python -m paper_figs`: rendering in every mode, the fitted lines
against numpy's least squares, and the driver's summary when figure modules or their results are missing."""

import csv
import sys
import types
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from paper_figs import __main__ as driver  # noqa: E402
from paper_figs import counteranimal as ca  # noqa: E402
from paper_figs import fig_common_vs_counter as fig2  # noqa: E402
from paper_figs import fig_drop_by_data, fig_drop_vs_size, fig_per_class  # noqa: E402
from paper_figs.aggregate import load_measured  # noqa: E402
from paper_figs.ca_panels import panel_title, select_points  # noqa: E402
from tests.test_paper_figs import REF_DIR, read_csv, write_result  # noqa: E402
from theory.runrecord import ResultsError  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# The file names docs/figures.md promises, one per --figure name.
STEMS = {
    "fig2": "counteranimal_fig2_common_vs_counter",
    "scaling": "counteranimal_scaling",
    "quality": "counteranimal_data_quality",
    "per_class": "counteranimal_per_class",
}


def lstsq_line(x, y) -> tuple[float, float]:
    A = np.stack([np.asarray(x, float), np.ones(len(x))], axis=1)
    (slope, intercept), *_ = np.linalg.lstsq(A, np.asarray(y, float), rcond=None)
    return float(slope), float(intercept)


def write_per_class(folder: Path, seed: int) -> list[dict]:
    """per_class.csv as realdata writes it (fractions), for the 45 reference classes."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in read_csv(REF_DIR / "counteranimal_classes.csv"):
        common, counter = rng.uniform(0.3, 1.0), rng.uniform(0.0, 0.8)
        rows.append(
            {
                "imagenet_index": c["imagenet_index"],
                "class_name": c["class_name"],
                "common_background": c["common_background"],
                "counter_background": c["counter_background"],
                "n_common": c["n_common"],
                "n_counter": c["n_counter"],
                "acc_common": common,
                "acc_counter": counter,
                "drop": common - counter,
            }
        )
    with (folder / "per_class.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


@pytest.fixture
def results_dir(tmp_path) -> Path:
    """A partial sweep: three CLIPs (one with per-class numbers), two ImageNet models, one 1v20 run."""
    root = tmp_path / "results" / "realdata"
    clips = [
        ("ViT-B-32-quickgelu", "laion400m_e31", 0.70, 0.42),
        ("ViT-B-32", "laion2b_s34b_b79k", 0.74, 0.50),
        ("ViT-L-14", "laion2b_s32b_b82k", 0.83, 0.67),
        ("ViT-B-16", "datacomp_xl_s13b_b90k", 0.81, 0.63),
    ]
    for i, (model, tag, common, counter) in enumerate(clips):
        write_result(root / "1v1000_single" / f"clip{i}", model, tag, common, counter)
    write_per_class(root / "1v1000_single" / "clip0", seed=0)
    for i, (model, common, counter) in enumerate([("resnet50", 0.82, 0.67), ("vit_b_16", 0.85, 0.75)]):
        write_result(
            root / "1v1000_single" / f"in{i}", model, "IMAGENET1K_V1", common, counter, kind="imagenet"
        )
    write_result(
        root / "1v20_single" / "clip0", "ViT-B-32-quickgelu", "laion400m_e31", 0.55, 0.44, label_space="1v20"
    )
    return root


def fit_lines_on_axes(ax) -> dict[str, tuple[float, float]]:
    """slope/intercept of every drawn fit line, read back from the artists."""
    out = {}
    for line in ax.get_lines():
        if " fit" in line.get_label():
            x, y = line.get_xdata(), line.get_ydata()
            slope = (y[-1] - y[0]) / (x[-1] - x[0])
            out[line.get_label().split(":")[0]] = (slope, y[0] - slope * x[0])
    return out


def test_fit_line_equals_polyfit():
    rng = np.random.default_rng(3)
    x = rng.uniform(50, 90, 17)
    y = 1.4 * x - 50 + rng.normal(0, 3, 17)
    np.testing.assert_allclose(fig2.fit_line(x, y), np.polyfit(x, y, 1), rtol=1e-10)
    with pytest.raises(ValueError, match="at least two distinct x"):
        fig2.fit_line([70.0, 70.0], [50.0, 60.0])


def test_reference_fig2_lines_match_lstsq_and_imagenet_lies_above_clip():
    points = select_points("reference")
    fig = fig2.draw(points)
    (ax,) = [a for a in fig.axes if a.get_xlabel()]
    drawn = fit_lines_on_axes(ax)
    clip3 = read_csv(REF_DIR / "table3_clip.csv")
    imagenet4 = read_csv(REF_DIR / "table4_imagenet.csv")
    expected = {
        "CLIP fit": lstsq_line([float(r["common"]) for r in clip3], [float(r["counter"]) for r in clip3]),
        "ImageNet fit": lstsq_line(
            [float(r["common"]) for r in imagenet4], [float(r["counter"]) for r in imagenet4]
        ),
    }
    assert set(drawn) == set(expected)
    for name, (slope, intercept) in expected.items():
        np.testing.assert_allclose(drawn[name], (slope, intercept), rtol=1e-9, atol=1e-9)
        key = ("1v1000", "single", "paper", name.split()[0].lower())
        np.testing.assert_allclose(fig2.fits(points)[key], (slope, intercept), rtol=1e-10)
    # As in the paper: at equal common accuracy ImageNet models keep more counter accuracy, all plot long.
    x_lo, x_hi = ax.get_xlim()
    for x in (x_lo, x_hi):
        assert np.polyval(expected["ImageNet fit"], x) > np.polyval(expected["CLIP fit"], x)
    plt.close(fig)


def test_mixed_fig2_fits_measured_and_paper_separately(results_dir):
    measured = [m.point for m in load_measured([results_dir])[0]]
    fig = fig2.draw(select_points("mixed", measured))
    axes = [a for a in fig.axes if a.get_xlabel()]
    assert [a.get_title() for a in axes] == [
        panel_title(("1v1000", "single")),
        panel_title(("1v20", "single")),
    ]
    drawn = fit_lines_on_axes(axes[0])
    clip = [p for p in measured if p.kind == "clip" and p.label_space == "1v1000"]
    imagenet = [p for p in measured if p.kind == "imagenet"]
    np.testing.assert_allclose(
        drawn["CLIP fit"], lstsq_line([p.common for p in clip], [p.counter for p in clip])
    )
    np.testing.assert_allclose(
        drawn["ImageNet fit"], lstsq_line([p.common for p in imagenet], [p.counter for p in imagenet])
    )
    assert {"CLIP (paper) fit", "ImageNet (paper) fit"} <= set(drawn)
    assert fit_lines_on_axes(axes[1]) == {}  # one point in the 1v20 panel: nothing to fit
    plt.close(fig)


@pytest.mark.parametrize(
    ("mode", "figures"), [("reference", ca.FIGURES), ("mixed", ca.FIGURES), ("measured", ("fig2", "quality"))]
)
def test_every_figure_renders(tmp_path, results_dir, mode, figures):
    out = tmp_path / "out"
    results = [] if mode == "reference" else [results_dir]
    files, notes = ca.make_counteranimal(mode, out, results, figures)
    assert set(ca.FIGURES) == set(STEMS)
    stems = {STEMS[f] for f in figures}
    assert {f.name for f in files} == {f"{s}.{e}" for s in stems for e in ("png", "pdf")} | {
        "counteranimal_table.csv",
        "counteranimal_table.md",
    }
    for f in files:
        assert f.stat().st_size > 0
        if f.suffix == ".png":
            assert f.read_bytes()[:8] == PNG_MAGIC
    if mode != "reference":
        assert any("models not measured" in n for n in notes)
    if mode == "mixed":
        assert any("per-class figure from" in n and "clip0" in n for n in notes)


def test_make_follows_the_figure_contract(tmp_path, results_dir, monkeypatch, capsys):
    """make(out_dir, results_dir=None): mixed mode over the results; nothing under the default folder: the
    paper's numbers alone, said so; a given folder without results: an error naming it and the command."""
    monkeypatch.setattr(ca, "FIGURES", ("fig2",))  # every figure is rendered above; the contract is the point
    files = ca.make(tmp_path / "out", results_dir)
    assert {f.name for f in files} == {
        "counteranimal_table.csv",
        "counteranimal_table.md",
        "counteranimal_fig2_common_vs_counter.png",
        "counteranimal_fig2_common_vs_counter.pdf",
    }
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the default folder, results/realdata, does not exist here
    assert {f.name for f in ca.make(tmp_path / "ref")} == {f.name for f in files}
    assert "no realdata results under results/realdata" in capsys.readouterr().out
    with pytest.raises(ResultsError, match=r"no results.json under nothing: run `python -m realdata"):
        ca.make(tmp_path / "out", Path("nothing"))


def test_per_class_sorted_with_backgrounds_and_paper_markers(results_dir):
    measured = [m.point for m in load_measured([results_dir])[0]]
    fig, note = fig_per_class.figure("mixed", measured)
    ax = fig.axes[0]
    rows = read_csv(results_dir / "1v1000_single" / "clip0" / "per_class.csv")
    rows.sort(key=lambda r: float(r["drop"]))
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [
        f"{r['class_name']}  ({r['common_background']} → {r['counter_background']})" for r in rows
    ]
    widths = [bar.get_width() for bar in ax.patches]
    np.testing.assert_allclose(widths, [100 * float(r["drop"]) for r in rows])
    # the measured model is the paper's curating model: its reported per-class drops are drawn beside
    (markers,) = ax.collections
    ref = {r["class_name"]: float(r["ref_drop"]) for r in read_csv(REF_DIR / "counteranimal_classes.csv")}
    np.testing.assert_allclose(markers.get_offsets()[:, 0], [ref[r["class_name"]] for r in rows])
    plt.close(fig)


def test_reference_per_class_uses_the_papers_numbers():
    fig, _ = fig_per_class.figure("reference", [])
    drops = sorted(float(r["ref_drop"]) for r in read_csv(REF_DIR / "counteranimal_classes.csv"))
    np.testing.assert_allclose([b.get_width() for b in fig.axes[0].patches], drops)
    plt.close(fig)


def test_quality_groups_and_size_trend():
    groups = fig_drop_by_data.quality_groups(select_points("reference"))
    by_arch: dict[str, set[str]] = {}
    for r in read_csv(REF_DIR / "table3_clip.csv"):
        by_arch.setdefault(r["open_clip_model"], set()).add(r["pretrain_data"])
    assert {a: set(d) for a, d in groups.items()} == {a: d for a, d in by_arch.items() if len(d) >= 2}
    assert groups["ViT-B-16"][0] in ("OpenAI", "LAION400M") and groups["ViT-H-14"] == ["LAION2B", "DFN5B"]
    laion2b = [p for p in select_points("reference") if p.pretrain_data == "LAION2B" and p.family == "ViT"]
    sizes, drops = fig_drop_vs_size.size_trend(laion2b)
    by_size: dict[float, list[float]] = {}
    for p in laion2b:  # B/16 and B/32 have the same size within 5%; the others are distinct
        key = min(by_size, key=lambda s: abs(s - p.params_m), default=None)
        if key is not None and abs(key - p.params_m) / key < 0.05:
            by_size[key].append(p.drop)
        else:
            by_size[p.params_m] = [p.drop]
    assert drops == pytest.approx([np.mean(v) for _, v in sorted(by_size.items())])
    assert len(sizes) == len(by_size) == len(laion2b) - 1 and sizes == sorted(sizes)


def fake_module(name: str, make) -> types.ModuleType:
    module = types.ModuleType(name)
    module.make = make
    return module


@pytest.fixture
def fig2_only(monkeypatch):
    """Driver tests check its logic; every figure is rendered above, so draw just one to save time."""

    monkeypatch.setattr(ca, "FIGURES", ("fig2",))


def test_driver_reports_missing_parts_and_fails_only_on_breakage(
    tmp_path, monkeypatch, capsys, results_dir, fig2_only
):
    def missing_results(out_dir, results_dir=None):
        raise FileNotFoundError("results/synthetic/theorem62 is missing: run `python -m synthetic -m ...`")

    def works(out_dir, results_dir=None):
        path = out_dir / "mnist.png"
        path.write_bytes(PNG_MAGIC)
        return [path]

    monkeypatch.setitem(sys.modules, "paper_figs.theory_curves", None)  # module not written yet
    monkeypatch.setitem(sys.modules, "paper_figs.synthetic_vs_theory", fake_module("s", missing_results))
    monkeypatch.setitem(sys.modules, "paper_figs.mnist", fake_module("m", works))
    monkeypatch.chdir(results_dir.parents[1])  # default results/realdata exists here: mixed mode
    out = tmp_path / "figs"
    assert driver.main(["--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "theory_curves        skipped  module paper_figs.theory_curves does not exist yet" in text
    assert (
        "synthetic_vs_theory  skipped  results not there yet: results/synthetic/theorem62 is missing" in text
    )
    assert "mnist                ok       1 files" in text
    assert "counteranimal        ok       4 files" in text  # fig2 (PNG, PDF) and the table (CSV, Markdown)
    assert "drawing the paper's reported numbers only" not in text  # results/realdata is there: mixed mode
    assert (out / "counteranimal_fig2_common_vs_counter.pdf").is_file()

    def broken(out_dir, results_dir=None):
        raise RuntimeError("bug in a figure")

    monkeypatch.setitem(sys.modules, "paper_figs.mnist", fake_module("m", broken))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert driver.main(["--out", str(out), "--results", f"counteranimal={empty}"]) == 1
    text = capsys.readouterr().out
    assert "mnist                FAILED   RuntimeError: bug in a figure" in text
    assert f"counteranimal        FAILED   ResultsError: no results.json under {empty}" in text
    with pytest.raises(SystemExit):
        driver.main(["--out", str(out), "--results", str(empty)])  # not FIGURE=DIR
    assert "expected FIGURE=DIR with FIGURE one of" in capsys.readouterr().err


def test_every_registered_figure_has_the_one_contract():
    """paper_figs.FIGURES is the one registry; each module there exposes make(out_dir, results_dir=None)."""
    import importlib
    import inspect

    from paper_figs import FIGURES

    for name in FIGURES:
        params = list(
            inspect.signature(importlib.import_module(f"paper_figs.{name}").make).parameters.values()
        )
        assert [p.name for p in params[:2]] == ["out_dir", "results_dir"], name
        assert params[1].default is None and all(p.default is not p.empty for p in params[1:]), name
    for name, module in ca.FIGURE_MODULES.items():  # the CounterAnimal figures, drawn alike
        params = list(inspect.signature(module.figure).parameters)
        assert params == ["mode", "measured", "model"] and module.STEM.startswith("counteranimal_"), name


def test_driver_reference_mode(tmp_path, monkeypatch, capsys, fig2_only):
    monkeypatch.chdir(tmp_path)  # no results anywhere: must not matter
    assert driver.main(["--reference", "--out", "o"]) == 0
    assert "counteranimal        ok       reference mode, 4 files" in capsys.readouterr().out
    rows = read_csv(tmp_path / "o" / "counteranimal_table.csv")
    assert len(rows) == len(read_csv(REF_DIR / "table3_clip.csv")) + len(
        read_csv(REF_DIR / "table4_imagenet.csv")
    )
