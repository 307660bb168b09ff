"""paper_figs.captions on a generated captions sweep: every (objective, caption_q, p_spu) point drawn where
it belongs, theory lines only where results.json has a prediction, the CSV equal to numpy on the seeds."""

import csv
import json
import zlib

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from paper_figs import captions  # noqa: E402
from synthetic.aggregate import collect  # noqa: E402
from synthetic.results import body  # noqa: E402

TARGETS = {
    "LinearClip": "synthetic.objectives.LinearClip",
    "Clip": "synthetic.objectives.Clip",
    "Supervised": "synthetic.objectives.Supervised",
}
QS, PS = (0.0, 1.0), (0.5, 0.9)


def _seeds(*key):
    rng = np.random.default_rng(zlib.crc32(repr(key).encode()))
    return rng.uniform(0.2, 0.9, 3).tolist()


def _sweep(tmp_path):
    job = 0
    for obj, target in TARGETS.items():
        for q in QS:
            for p in PS:
                per_seed = {"acc_common": _seeds(obj, q, p, "c"), "acc_counter": _seeds(obj, q, p, "k")}
                theory = {"objective": obj}
                if obj != "Supervised":
                    per_seed["acc_counter_prompt_mean"] = _seeds(obj, q, p, "m")
                    per_seed["acc_common_prompt_mean"] = _seeds(obj, q, p, "cm")
                    theory |= {"acc_counter": 0.1 + p * q, "acc_counter_prompt_mean": 0.2 + p * q}
                config = {"objective": {"_target_": target}, "data": {"caption_q": q, "p_spu": p}}
                doc = {"status": "ok", "config": config, **body(per_seed, None, {}, theory)}
                (tmp_path / str(job)).mkdir(parents=True)
                (tmp_path / str(job) / "results.json").write_text(json.dumps(doc))
                job += 1
    return tmp_path


def test_captions_map_points_lines_and_csv(tmp_path):
    sweep = _sweep(tmp_path / "sweep")
    paths = captions.make(tmp_path / "out", sweep=sweep)
    assert {p.name for p in paths} == {"captions_map.png", "captions_map.pdf", "captions_map.csv"}
    with open(tmp_path / "out" / "captions_map.csv") as f:
        rows = list(csv.DictReader(f))
    got = {(r["objective"], float(r["caption_q"]), float(r["p_spu"]), r["metric"]): r for r in rows}
    for obj in TARGETS:
        for q in QS:
            for p in PS:
                r = got[(obj, q, p, "acc_counter")]
                assert float(r["sim_mean"]) == pytest.approx(np.mean(_seeds(obj, q, p, "k")))
                drop = np.subtract(_seeds(obj, q, p, "c"), _seeds(obj, q, p, "k"))
                assert float(got[(obj, q, p, "drop")]["sim_mean"]) == pytest.approx(drop.mean())
                theory = r["theory"]
                assert (
                    (theory == "nan") if obj == "Supervised" else float(theory) == pytest.approx(0.1 + p * q)
                )
    fig = captions.figure(captions.table(collect(sweep)))
    ax = fig.axes[1 * len(QS) + 1]  # mean-prompt row, caption_q = 1
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 2  # LinearClip and Clip have predictions; Supervised has none
    ys = sorted(tuple(np.round(line.get_ydata(), 6)) for line in dashed)
    assert ys == [tuple(np.round([0.2 + p * 1.0 for p in PS], 6))] * 2
    labels = fig.legends[0].get_texts()
    assert sorted(t.get_text() for t in labels) == sorted(TARGETS)


def test_no_captions_sweep_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="experiment=captions"):
        captions.make(tmp_path / "out", results_dir=tmp_path)


def _fidelity_sweeps(tmp_path):
    """A caption_fidelity sweep (LinearClip over r x p_spu) and a caption_class one (+ Supervised)."""
    dirs = {}
    for name, runs in (
        ("fid", [("LinearClip", "latent", r) for r in (1.0, 0.5, 0.0)]),
        ("cls", [("LinearClip", "class", 1.0), ("Supervised", "class", 1.0)]),
    ):
        job = 0
        for obj, kind, r in runs:
            for p in PS:
                per_seed = {
                    "acc_common": _seeds(obj, kind, r, p, "c"),
                    "acc_counter": _seeds(obj, kind, r, p, "k"),
                }
                theory = {"objective": "linear_clip" if obj == "LinearClip" else obj}
                if obj == "LinearClip":
                    theory |= {"acc_counter": 0.3 + 0.1 * r, "acc_common": 0.9}
                data = {"caption_kind": kind, "caption_fidelity": r, "p_spu": p, "caption_q": 0.0}
                data |= {"d_image": 16, "d_text": 16}
                config = {"objective": {"_target_": TARGETS[obj]}, "data": data, "encoder": {"h": 16}}
                doc = {"status": "ok", "config": config, **body(per_seed, None, {}, theory)}
                (tmp_path / name / str(job)).mkdir(parents=True)
                (tmp_path / name / str(job) / "results.json").write_text(json.dumps(doc))
                job += 1
        dirs[name] = tmp_path / name
    return dirs


def test_caption_fidelity_map_points_curves_table(tmp_path):
    import theory as T

    d = _fidelity_sweeps(tmp_path / "sweeps")
    paths = captions.make_fidelity(tmp_path / "out", fidelity=d["fid"], class_sweep=d["cls"])
    names = {p.name for p in paths}
    assert names == {f"captions_fidelity.{s}" for s in ("png", "pdf", "csv", "md")}
    with open(tmp_path / "out" / "captions_fidelity.csv") as f:
        rows = list(csv.DictReader(f))
    got = {
        (r["objective"], r["caption_kind"], float(r["caption_fidelity"]), float(r["p_spu"]), r["metric"]): r
        for r in rows
    }
    for p in PS:
        for r in (1.0, 0.5, 0.0):
            row = got[("LinearClip", "latent", r, p, "acc_counter")]
            assert float(row["sim_mean"]) == pytest.approx(np.mean(_seeds("LinearClip", "latent", r, p, "k")))
            assert float(row["theory"]) == pytest.approx(0.3 + 0.1 * r)
        assert got[("Supervised", "class", 1.0, p, "acc_counter")]["theory"] == "nan"
    entries = captions.fidelity_table(collect(d["fid"]) + collect(d["cls"]))
    fig = captions.fidelity_figure(entries)
    ax = fig.axes[0]  # counter row, LinearClip
    solid = [line for line in ax.get_lines() if line.get_linestyle() == "-" and len(line.get_xdata()) > 2]
    assert len(solid) == len(PS)  # one theory curve per p_spu, from theory/ on the fine r grid
    for line, p in zip(solid, PS, strict=True):
        m = T.GaussianSpuriousModel(
            p_spu=p, caption_q=0.0, d_image=16, d_text=16, caption_fidelity=np.array(captions.THEORY_R)
        )
        np.testing.assert_allclose(line.get_ydata(), T.zero_shot_accuracy(m, "counter", "class", 16))
    dotted = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert sorted(line.get_ydata()[0] for line in dotted) == pytest.approx(
        sorted(np.mean(_seeds("Supervised", "class", 1.0, p, "k")) for p in PS)
    )
    md = (tmp_path / "out" / "captions_fidelity.md").read_text()
    assert "| LinearClip | class only |" in md and "| Supervised | (no captions) |" in md
