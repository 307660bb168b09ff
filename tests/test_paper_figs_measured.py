"""CounterAnimal figures in measured mode draw what is known and list the rest; the Markdown table keeps
the protocol variant that tells two rows of one model apart."""

import matplotlib

matplotlib.use("Agg")

from paper_figs import aggregate, fig_drop_vs_size  # noqa: E402
from paper_figs.counteranimal import make_counteranimal  # noqa: E402
from tests.test_paper_figs import write_result  # noqa: E402


def test_measured_scaling_draws_known_sizes_and_lists_unknown_checkpoints(tmp_path):
    write_result(tmp_path / "a", "RN50", "openai", 0.60, 0.40)  # a paper model: known size
    write_result(tmp_path / "b", "tiny-clip", "tiny.pt", 0.10, 0.05)  # a local checkpoint: unknown size
    measured, _ = aggregate.load_measured([tmp_path])
    points = [m.point for m in measured]
    fig, note = fig_drop_vs_size.figure("measured", points)
    (ax,) = fig.axes
    drawn = [off for c in ax.collections for off in c.get_offsets()]
    assert len(drawn) == 1 and drawn[0][1] == points[[p.model for p in points].index("RN50")].drop
    assert "1 checkpoint(s) of unknown backbone size left out" in note and "tiny-clip tiny.pt" in note
    files, notes = make_counteranimal("measured", tmp_path / "out", [tmp_path])  # every figure: no abort
    assert (tmp_path / "out" / "counteranimal_scaling.png") in files
    assert any("tiny-clip" in n for n in notes)
    # nothing of known size: the figure says so instead of failing
    fig, note = fig_drop_vs_size.figure("measured", [p for p in points if p.model == "tiny-clip"])
    assert "no model of known backbone size" in fig.axes[0].texts[0].get_text() and "tiny-clip" in note


def test_markdown_table_keeps_the_variant_column(tmp_path):
    write_result(tmp_path / "a", "RN50", "openai", 0.60, 0.40, classnames="synset")
    write_result(tmp_path / "b", "RN50", "openai", 0.62, 0.41, classnames="openai")
    measured, _ = aggregate.load_measured([tmp_path])
    md = aggregate.to_markdown(aggregate.table_rows(measured), "t")
    header = next(line for line in md.splitlines() if line.startswith("| model"))
    assert "variant" in header.split(" | ")
    rows = [line for line in md.splitlines() if line.startswith("| RN50")]
    assert len(rows) == 2 and len(set(rows)) == 2 and any("classnames=openai" in r for r in rows)
