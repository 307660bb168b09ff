"""`python -m paper_figs sweep DIR`: any synthetic sweep folder drawn against its swept key; and
paper_figs.synthetic_vs_theory on sweeps whose components are named by `_target_`.

The sweep folders are written here as results.json files in the shape README's "Where results go" describes
(resolved config, metrics.<name> with mean/std/n/per_seed, theory.<name>, status); expected numbers are
computed from the per-seed values with numpy, not read back through paper_figs.
"""

import csv
import json
import re
import zlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.legend import Legend  # noqa: E402

from paper_figs import __main__ as driver  # noqa: E402
from paper_figs import sweep  # noqa: E402

P_SPU = (0.5, 0.75, 1.0)
# objective class -> its config node as results.json stores it (_target_ + fields); MyObjective: a user's
OBJECTIVES = {
    "Supervised": {"_target_": "synthetic.objectives.Supervised"},
    "MyObjective": {"_target_": "my_pkg.objectives.MyObjective", "temperature": 0.5, "margin": 1.0},
    "Clip": {"_target_": "synthetic.objectives.Clip", "temperature": 0.07, "logit_scale_max": 100.0},
}
METRICS = ("acc_common", "acc_counter")


def per_seed(objective: str, p_spu: float, metric: str) -> list[float]:
    """Five seeds whose mean depends on the objective, p_spu and the metric."""
    rng = np.random.default_rng(zlib.crc32(f"{objective} {p_spu} {metric}".encode()))
    base = 0.9 - 0.4 * (p_spu - 0.5) * (metric == "acc_counter") - 0.1 * list(OBJECTIVES).index(objective)
    return list(base + rng.normal(0, 0.02, 5))


def theory_acc(p_spu: float, metric: str) -> float:
    return 0.95 - 0.5 * (p_spu - 0.5) * (metric == "acc_counter")


def write_run(folder: Path, config: dict, metrics: dict[str, list[float]], theory: dict, status: str = "ok"):
    """One results.json as python -m synthetic writes it."""
    folder.mkdir(parents=True)
    doc = {
        "config": config,
        "status": status,
        "diverged_step": None,
        "metrics": {
            name: {
                "mean": float(np.mean(v)),
                "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,  # as synthetic.results
                "n": len(v),
                "per_seed": [float(x) for x in v],
            }
            for name, v in metrics.items()
        },
        "theory": theory,
        "wall_time_s": float(np.random.default_rng(len(str(folder))).uniform(1, 9)),  # varies: not a key
        "versions": {"python": "3.11"},
        "device": {"backend": "cpu", "count": 1, "kind": "cpu"},
        "extra": {},
    }
    (folder / "results.json").write_text(json.dumps(doc, allow_nan=False))


def config(objective: str, p_spu: float) -> dict:
    return {
        "name": "objectives",
        "seeds": 5,
        "data": {"_target_": "synthetic.data.GaussianData", "p_spu": p_spu, "mu_spu": 2.0, "n": 256},
        "encoder": {"_target_": "synthetic.encoders.Linear", "h": 16},
        "objective": OBJECTIVES[objective],  # temperature changes with the objective: not a key of its own
        "train": {"steps": 500, "lr": 0.003},
        "hydra": {"job": {"num": 0}},
    }


@pytest.fixture
def objectives_sweep(tmp_path) -> Path:
    """3 objectives x 3 values of p_spu, job folders in scrambled order; theory depends on p_spu only."""
    root = tmp_path / "objectives" / "2026-01-01_00-00-00"
    jobs = [(o, p) for o in OBJECTIVES for p in P_SPU]
    order = np.random.default_rng(0).permutation(len(jobs))
    for job, i in enumerate(order):
        objective, p = jobs[i]
        write_run(
            root / str(job),
            config(objective, p),
            {m: per_seed(objective, p, m) for m in METRICS},
            {m: theory_acc(p, m) for m in METRICS} | {"clip_optimum": [[1.0]], "note": "exact"},
        )
    return root


def series_on(ax) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, str]]:
    """label -> (x, y, error-bar half length, colour) for every errorbar series on the axes."""
    out = {}
    for container in ax.containers:
        line = container.lines[0]
        segments = container.lines[2][0].get_segments()
        half = np.array([(s[1][1] - s[0][1]) / 2 for s in segments])
        out[container.get_label()] = (line.get_xdata(), line.get_ydata(), half, to_hex(line.get_color()))
    return out


def test_objectives_sweep_one_series_per_objective_with_theory(objectives_sweep):
    fig = sweep.figure(objectives_sweep)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == list(METRICS)
    for ax, metric in zip(axes, METRICS, strict=True):
        assert ax.get_xlabel() == "data.p_spu"  # the one numeric key that varies (not wall time)
        drawn = series_on(ax)
        assert sorted(drawn) == sorted(OBJECTIVES)  # the unknown objective included
        assert len({colour for *_, colour in drawn.values()}) == len(OBJECTIVES)
        for objective in OBJECTIVES:
            x, y, err, _ = drawn[objective]
            seeds = [per_seed(objective, p, metric) for p in P_SPU]
            np.testing.assert_allclose(x, P_SPU)
            np.testing.assert_allclose(y, [np.mean(s) for s in seeds], rtol=1e-12)
            np.testing.assert_allclose(err, [np.std(s, ddof=1) for s in seeds], rtol=1e-9)
        legend = ax.get_legend()
        assert legend.get_title().get_text() == "objective"  # not objective.temperature nor ._target_
        labels = [t.get_text() for t in legend.get_texts()]
        assert labels == ["Clip", "MyObjective", "Supervised", f"exact theory (theory.{metric})"]
        # every objective has the same theory here: one black dashed curve
        (theory,) = [line for line in ax.get_lines() if line.get_label().startswith("exact theory")]
        assert theory.get_linestyle() == "--" and to_hex(theory.get_color()) == "#000000"
        np.testing.assert_allclose(theory.get_xdata(), P_SPU)
        np.testing.assert_allclose(theory.get_ydata(), [theory_acc(p, metric) for p in P_SPU])


def test_theory_per_series_and_runs_not_ok_left_out(tmp_path):
    """Theory that differs between series is drawn once per series in its colour; a diverged run is left
    out and counted in the title."""
    root = tmp_path / "mu" / "t0"
    for job, (mu, p) in enumerate([(m, p) for m in (1.5, 3.0) for p in P_SPU]):
        cfg = {"data": {"p_spu": p, "mu_spu": mu}, "objective": {"name": "linear_clip"}}
        metrics = {"acc_counter": [0.5 + 0.1 * mu - 0.2 * p, 0.52 + 0.1 * mu - 0.2 * p]}
        write_run(root / str(job), cfg, metrics, {"acc_counter": mu * p})
    write_run(root / "99", {"data": {"p_spu": 0.6, "mu_spu": 9.0}}, {"acc_counter": [0.1]}, {}, "diverged")
    fig = sweep.figure(root, x="data.p_spu", metrics=["acc_counter"])
    (ax,) = fig.axes
    assert "6 runs (1 runs not ok left out)" in fig.get_suptitle()
    drawn = series_on(ax)
    assert sorted(drawn) == ["1.5", "3.0"]  # the diverged run's mu_spu = 9 is not a series
    for line in ax.get_lines():
        if line.get_label().startswith("exact theory, "):
            mu = line.get_label().removeprefix("exact theory, ")
            assert to_hex(line.get_color()) == drawn[mu][3]
            np.testing.assert_allclose(line.get_ydata(), [float(mu) * p for p in P_SPU])
    assert sorted(line.get_label() for line in ax.get_lines() if "theory" in line.get_label()) == [
        "exact theory, 1.5",
        "exact theory, 3.0",
    ]


def test_explicit_x_categorical_objectives_and_p_spu_as_series(objectives_sweep):
    fig = sweep.figure(objectives_sweep, x="objective", metrics=["acc_counter"])
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == sorted(OBJECTIVES)
    drawn = series_on(ax)
    assert list(drawn) == [str(p) for p in P_SPU]
    for p in P_SPU:
        x, y, _, _ = drawn[str(p)]
        np.testing.assert_allclose(x, range(len(OBJECTIVES)))
        np.testing.assert_allclose(y, [np.mean(per_seed(o, p, "acc_counter")) for o in sorted(OBJECTIVES)])


def test_swept_keys_recorded_by_the_runs_decide_what_varies():
    """swept_keys (comma-separated) wins over detection. A group name stands for its component (the class
    in its _target_) or, in results without targets, for its keys that vary; _target_ keys never count."""
    old = [
        {
            "run": str(i),
            "status": "ok",
            "swept_keys": "objective,data.p_spu",
            "data.p_spu": p,
            "data.mu_spu": 2.0 + i,  # varies, but the sweep did not sweep it
            "objective.name": o,
            "acc_counter_mean": 0.5,
            "acc_counter_std": 0.0,
            "acc_counter_n": 1,
        }
        for i, (o, p) in enumerate([("a", 0.5), ("a", 0.9), ("b", 0.5), ("b", 0.9)])
    ]
    assert sweep.varying_keys(old) == ["objective.name", "data.p_spu"]
    assert sweep.choose_x(old, Path("d")) == ("data.p_spu", ["objective.name"])
    targets = {"a": "synthetic.objectives.Clip", "b": "user.mine.Clip"}  # same class name, two modules
    new = sweep.with_components(
        [
            {k: v for k, v in r.items() if k != "objective.name"}
            | {"objective._target_": targets[r["objective.name"]], "objective.t": r["data.mu_spu"] // 4}
            for r in old
        ]
    )
    assert [r["objective"] for r in new] == [targets[o] for o in "aabb"]  # full paths: short names collide
    for r in new:
        r["swept_keys"] = "objective._target_,data.p_spu,objective.t"  # as synthetic.aggregate records it
    assert sweep.varying_keys(new) == ["objective", "data.p_spu"]
    for rows in (old, new):
        for r in rows:
            del r["swept_keys"]
    assert sweep.varying_keys(old) == ["data.p_spu", "data.mu_spu", "objective.name"]
    # objective.t (0, 0, 1, 1) changes only with the objective: part of it, not a key of its own
    assert sweep.varying_keys(new) == ["data.p_spu", "data.mu_spu", "objective"]
    with pytest.raises(
        ValueError, match=r"d: several keys vary \(\['data.p_spu', 'data.mu_spu', 'objective'\]\)"
    ):
        sweep.choose_x(new, Path("d"))


def test_command_writes_png_and_pdf(objectives_sweep, tmp_path, capsys):
    out = tmp_path / "figs"
    assert driver.main(["sweep", str(objectives_sweep), "--metrics", "acc_counter", "--out", str(out)]) == 0
    stem = "sweep_objectives_2026-01-01_00-00-00"
    assert sorted(p.name for p in out.iterdir()) == [f"{stem}.pdf", f"{stem}.png"]
    assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(out / f"{stem}.png") in capsys.readouterr().out


def test_bad_input_names_the_folder_and_the_key(objectives_sweep, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=rf"{re.escape(str(empty))}: no .*results.json below it"):
        sweep.figure(empty)
    with pytest.raises(FileNotFoundError, match=f"{re.escape(str(tmp_path / 'absent'))}: no such directory"):
        sweep.figure(tmp_path / "absent")
    with pytest.raises(
        ValueError, match=rf"{re.escape(str(objectives_sweep))}: --x 'data.sigma' is not a config key"
    ):
        sweep.figure(objectives_sweep, x="data.sigma")
    with pytest.raises(ValueError, match=r"--x 'p_spu' is not a config key .* did you mean \['data.p_spu'\]"):
        sweep.figure(objectives_sweep, x="p_spu")
    with pytest.raises(
        ValueError, match=r"metric\(s\) \['acc_rare'\] not in these runs; they have \['acc_common'"
    ):
        sweep.figure(objectives_sweep, metrics=["acc_common", "acc_rare"])
    assert driver.main(["sweep", str(empty)]) == 2
    assert re.search(rf"error: {re.escape(str(empty))}: no .*results.json below it", capsys.readouterr().err)
    assert driver.main(["sweep", str(objectives_sweep), "--x", "nope", "--out", str(tmp_path / "o")]) == 2
    assert "--x 'nope' is not a config key of these runs" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_nothing_varies_asks_for_x(tmp_path):
    root = tmp_path / "one"
    write_run(root / "0", config("Clip", 0.9), {"acc_counter": [0.4, 0.5]}, {})
    with pytest.raises(
        ValueError, match=f"{re.escape(str(root))}: no config key varies across its 1 runs; name the x axis"
    ):
        sweep.figure(root)
    (ax,) = sweep.figure(root, x="data.p_spu").axes  # named explicitly, a single point is drawn
    np.testing.assert_allclose(series_on(ax)["simulation"][1], [0.45])


# ------------------------------------------------------------------ synthetic_vs_theory on the same shape
GROUPS = ("common", "counter", "balanced", "id")


def gaussian_config(p_spu: float, objective: dict) -> dict:
    data = dict(mu_inv=1.0, mu_spu=2.0, sigma_inv=1.0, sigma_spu=0.5, sigma_xi=1.0, caption_q=1.0)
    return {
        "data": {"_target_": "synthetic.data.GaussianData", "p_spu": p_spu, "n": 256, "d_image": 256}
        | {"d_text": 256}
        | data,
        "encoder": {"_target_": "synthetic.encoders.Linear", "h": 16, "init_scale": 0.1},
        "objective": objective,
    }


def test_synthetic_vs_theory_reads_components_by_target(tmp_path, monkeypatch):
    """theorem62 + objectives sweeps whose config names components by _target_ (no objective.name): the
    panel-(a) table holds the numbers written, and every objective, a user's own included, is drawn."""
    from paper_figs import synthetic_vs_theory as F

    objectives = {
        "Clip": {"_target_": "synthetic.objectives.Clip", "logit_scale_init": 2.66},
        "MyObjective": {"_target_": "my_pkg.objectives.MyObjective"},
        "Supervised": {"_target_": "synthetic.objectives.Supervised"},
    }
    expected = {}
    for job, p in enumerate(P_SPU):
        metrics = {f"acc_{g}": per_seed("Clip", p, f"linear {g}") for g in GROUPS}  # any five seeds
        th = {f"acc_{g}": theory_acc(p, "acc_counter") - 0.01 * i for i, g in enumerate(GROUPS)}
        th |= {"common_accuracy_lower_bound": 0.3 + p / 10, "counter_accuracy_upper_bound": 0.9 - p / 10}
        lin = {"_target_": "synthetic.objectives.LinearClip", "rho": 1.0}
        write_run(tmp_path / "theorem62" / "t1" / str(job), gaussian_config(p, lin), metrics, th)
        expected |= {(p, g): (np.mean(metrics[f"acc_{g}"]), th[f"acc_{g}"]) for g in GROUPS}
        for k, (name, node) in enumerate(objectives.items()):
            ms = {f"acc_{g}{s}": per_seed(name, p, g + s) for g in GROUPS for s in ("", "_prompt_mean")}
            write_run(tmp_path / "objectives" / "t1" / f"{job}{k}", gaussian_config(p, node), ms, {})
    drawn = {}

    def keep(fig, out_dir, stem):  # instead of writing the figure, keep it to look at
        drawn[stem] = fig
        return []

    monkeypatch.setattr(F, "save_figure", keep)
    (csv_path,) = F.make(tmp_path / "out", tmp_path)
    with csv_path.open() as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(expected)
    for row in table:
        sim, th = expected[(float(row["p_spu"]), row["group"])]
        assert float(row["sim_mean"]) == pytest.approx(sim) and float(row["theory"]) == pytest.approx(th)
        assert float(row["sim_minus_theory"]) == pytest.approx(sim - th)
    counter_panel = drawn["synthetic_vs_theory"].axes[1]
    labels = [c.get_label() for c in counter_panel.containers]
    assert labels == [
        "LinearClip, class prompt",
        "Clip, class prompt",
        "Clip, mean prompt",
        "MyObjective, class prompt",
        "Supervised",
    ]
    mine = counter_panel.containers[labels.index("MyObjective, class prompt")].lines[0]
    np.testing.assert_allclose(
        mine.get_ydata(), [np.mean(per_seed("MyObjective", p, "counter")) for p in P_SPU]
    )


def test_two_series_keys_colour_and_style_legends_off_the_data_clipped(tmp_path):
    """objective x mu_spu against p_spu: colour per objective, line style and marker per mu_spu, two
    legends below the panel; accuracy error bars and the axis stay within [0, 1]."""
    root = tmp_path / "two" / "t0"
    job = 0
    for objective in ("Clip", "Supervised"):
        for mu in (1.0, 3.0):
            for p in P_SPU:
                cfg = {"data": {"p_spu": p, "mu_spu": mu}, "objective": {"_target_": f"m.{objective}"}}
                write_run(root / str(job), cfg, {"acc_counter": [0.99, 0.5]}, {})  # std 0.35 > 1 - 0.745
                job += 1
    fig = sweep.figure(root, x="data.p_spu", metrics=["acc_counter"])
    (ax,) = fig.axes
    drawn = {c.get_label(): c for c in ax.containers}
    assert sorted(drawn) == ["Clip, 1.0", "Clip, 3.0", "Supervised, 1.0", "Supervised, 3.0"]
    line = {k: c.lines[0] for k, c in drawn.items()}
    assert (
        line["Clip, 1.0"].get_color() == line["Clip, 3.0"].get_color() != line["Supervised, 1.0"].get_color()
    )
    assert line["Clip, 1.0"].get_linestyle() == line["Supervised, 1.0"].get_linestyle()
    assert (line["Clip, 1.0"].get_linestyle(), line["Clip, 1.0"].get_marker()) != (
        line["Clip, 3.0"].get_linestyle(),
        line["Clip, 3.0"].get_marker(),
    )
    for c in drawn.values():
        for segment in c.lines[2][0].get_segments():
            assert 0.0 <= segment[0][1] <= segment[1][1] <= 1.0  # clipped, mean 0.745 +- 0.35
    assert ax.get_ylim() == (-0.03, 1.03)
    legends = [a for a in ax.get_children() if isinstance(a, Legend)]
    assert sorted(lg.get_title().get_text() for lg in legends) == ["data.mu_spu", "objective"]
    fig.canvas.draw()
    box = ax.get_window_extent()
    for lg in legends:
        assert lg.get_window_extent().y1 <= box.y0  # below the panel, off the data


def test_synthetic_vs_theory_pairs_sweeps_of_one_size_or_the_chosen_ones(tmp_path, monkeypatch):
    """The newest theorem62 sweep (t2) ran at another size than the only objectives sweep (t1): the figure
    draws the newest pair of one size (t1 + t1); chosen sweeps of different sizes are refused, naming them."""
    from paper_figs import synthetic_vs_theory as F

    def sweep(folder, n, objective):
        for job, p in enumerate(P_SPU):
            cfg = gaussian_config(p, objective)
            cfg["data"]["n"] = n
            metrics = {f"acc_{g}{s}": [0.5, 0.6] for g in GROUPS for s in ("", "_prompt_mean")}
            th = {f"acc_{g}": 0.5 for g in GROUPS}
            th |= {"common_accuracy_lower_bound": 0.3, "counter_accuracy_upper_bound": 0.9}
            write_run(folder / str(job), cfg, metrics, th)

    lin = {"_target_": "synthetic.objectives.LinearClip", "rho": 1.0}
    clip = {"_target_": "synthetic.objectives.Clip"}
    sweep(tmp_path / "theorem62" / "t1", 256, lin)
    sweep(tmp_path / "theorem62" / "t2", 4096, lin)  # newer, another size
    sweep(tmp_path / "objectives" / "t1", 256, clip)
    pair, _ = F.matching_pair(tmp_path)
    assert pair == {"theorem62": tmp_path / "theorem62" / "t1", "objectives": tmp_path / "objectives" / "t1"}
    chosen = {"theorem62": tmp_path / "theorem62" / "t2", "objectives": tmp_path / "objectives" / "t1"}
    with pytest.raises(ValueError, match="data.n differs"):
        F.matching_pair(tmp_path, chosen)
    sweep(tmp_path / "objectives" / "t0", 4096, clip)  # older, but of t2's size: the newest pair is t2 + t0
    pair, _ = F.matching_pair(tmp_path)
    assert pair["theorem62"].name == "t2" and pair["objectives"].name == "t0"
    monkeypatch.setattr(F, "save_figure", lambda fig, out, stem: [])
    chosen = {"theorem62": tmp_path / "theorem62" / "t1", "objectives": tmp_path / "objectives" / "t1"}
    argv = ["--results", str(tmp_path), "--out", str(tmp_path / "o")]
    F.main(argv + [f"--{k}={v}" for k, v in chosen.items()])  # the chosen pair draws
