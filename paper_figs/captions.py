"""``python -m paper_figs.captions``: the captions maps, simulation on theory, per objective.

Two figures. **Caption fidelity** (``captions_fidelity.{png,pdf,csv}``, ``--fidelity DIR --class-sweep DIR``;
default: the newest ``experiment=caption_fidelity`` and ``experiment=caption_class`` sweeps): robustness
against what the captions say about the image's own invariant content, captions never naming the
background; x = caption fidelity r (class-only captions at the left, "class"), one column per objective,
rows counter and common accuracy (class prompt; at caption_q = 0 the mean prompt is the same rule), one
colour per p_spu: points are the seed mean +- std, lines the exact prediction of theory/ on a fine r grid
(its value at each run is ``theory.<metric>`` in its results.json, also in the CSV), dotted horizontal lines
supervised ERM. The command also prints the markdown table of docs/synthetic.md.

**Caption naming** (``captions_map.*``, positional ``DIR``): a ``python -m synthetic -m experiment=captions``
sweep (default: the newest under
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

import theory
from paper_figs.common import DEFAULT_OUT, save_figure
from paper_figs.sweep import with_components
from synthetic.aggregate import collect
from theory.runrecord import latest_sweep

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


# ---------------------------------------------------------------- caption fidelity

FIDELITY_ROWS = (("acc_counter", "counter acc. (class prompt)"), ("acc_common", "common acc. (class prompt)"))
CLASS_X = -0.15  # where class-only captions sit on the fidelity axis
THEORY_R = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98, 1.0)
MODEL_FIELDS = ("mu_inv", "mu_spu", "sigma_inv", "sigma_spu", "sigma_xi", "d_image", "d_text", "caption_q")


def fidelity_table(rows: list[dict]) -> list[dict]:
    """One row per (run, metric): objective, caption_kind, caption_fidelity, p_spu, simulation, theory."""
    out = []
    for r in with_components(rows):
        if r["status"] != "ok":
            continue
        for metric in ("acc_common", "acc_counter", "acc_common_prompt_mean", "acc_counter_prompt_mean"):
            if r.get(f"{metric}_mean") in (None, ""):
                continue
            out.append(
                {
                    "objective": r["objective"],
                    "caption_kind": r.get("data.caption_kind") or "latent",
                    "caption_fidelity": _num(r.get("data.caption_fidelity", 1.0)),
                    "p_spu": _num(r["data.p_spu"]),
                    "metric": metric,
                    "sim_mean": _num(r[f"{metric}_mean"]),
                    "sim_std": _num(r[f"{metric}_std"]),
                    "n_seeds": int(_num(r[f"{metric}_n"])),
                    "theory": _num(r.get(f"theory.{metric}")),
                    "theory_objective": r.get("theory.objective"),
                    **{f"data.{k}": r.get(f"data.{k}") for k in MODEL_FIELDS},
                    "encoder.h": r.get("encoder.h"),
                    "train.batch_size": r.get("train.batch_size"),
                }
            )
    return out


def _x(e: dict) -> float:
    return CLASS_X if e["caption_kind"] == "class" else e["caption_fidelity"]


def theory_curve(e: dict, objective: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """The exact prediction over caption fidelity r at the model point of entry ``e`` (its run's data)."""
    kw = {k: float(e[f"data.{k}"]) for k in MODEL_FIELDS if e.get(f"data.{k}") not in (None, "")}
    m = theory.GaussianSpuriousModel(p_spu=e["p_spu"], caption_fidelity=np.array(THEORY_R), **kw)
    group = metric.removeprefix("acc_").removesuffix("_prompt_mean")
    prompt = "mean" if metric.endswith("_prompt_mean") else "class"
    h = e.get("encoder.h")
    objective = objective.removesuffix("_g0")  # a noisy run's G = 0 reduction: the same call, sigma_xi in m
    extra = {"batch_size": int(e["train.batch_size"])} if objective == "siglip" else {}
    acc = theory.zero_shot_accuracy(m, group, prompt, None if h in (None, "") else int(h), objective, **extra)
    return np.array(THEORY_R), np.asarray(acc)


def fidelity_figure(entries: list[dict]) -> Figure:
    objectives = [o for o in dict.fromkeys(e["objective"] for e in entries) if o != "Supervised"]
    ps = sorted({e["p_spu"] for e in entries})
    colours = dict(zip(ps, plt.get_cmap("viridis")(np.linspace(0, 0.9, len(ps))), strict=True))
    n_rows, n_cols = len(FIDELITY_ROWS), len(objectives)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.4 * n_cols, 2.9 * n_rows), squeeze=False)
    for i, (metric, label) in enumerate(FIDELITY_ROWS):
        for j, obj in enumerate(objectives):
            ax = axes[i, j]
            for p in ps:
                pts = sorted(
                    (
                        e
                        for e in entries
                        if e["objective"] == obj and e["p_spu"] == p and e["metric"] == metric
                    ),
                    key=_x,
                )
                if not pts:
                    continue
                ax.errorbar(
                    [_x(e) for e in pts], [e["sim_mean"] for e in pts], [e["sim_std"] for e in pts],
                    ls="none", marker="o", ms=4, capsize=2, color=colours[p], label=f"p_spu = {p:g}",
                )  # fmt: skip
                theory_obj = pts[0]["theory_objective"]
                if theory_obj and any(np.isfinite(e["theory"]) for e in pts):
                    r, acc = theory_curve(pts[0], theory_obj, metric)
                    ax.plot(r, acc, lw=1.2, color=colours[p])
                    for e in pts:
                        if e["caption_kind"] == "class" and np.isfinite(e["theory"]):
                            ax.plot([CLASS_X], [e["theory"]], marker="_", ms=14, mew=1.5, color=colours[p])
                sup = [e for e in entries if e["objective"] == "Supervised" and e["p_spu"] == p]
                sup = [e for e in sup if e["metric"] == metric]
                if sup:
                    ax.axhline(sup[0]["sim_mean"], ls=":", lw=1.0, color=colours[p])
            ax.set_xticks([CLASS_X, 0, 0.25, 0.5, 0.75, 1], ["class", "0", ".25", ".5", ".75", "1"])
            if metric == "acc_counter":
                ax.set_ylim(-0.02, 1.02)
            ax.set_title(obj, fontsize=9)
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
            if i == n_rows - 1:
                ax.set_xlabel("caption fidelity r")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(ps), frameon=False)
    fig.suptitle(
        "captions never name the background; points: simulation (mean +- std over seeds); "
        "lines / bars: exact prediction; dotted: supervised ERM",
        y=0.0,
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0.03, 1, 0.94))
    return fig


def fidelity_markdown(entries: list[dict]) -> str:
    """The docs table: counter / common accuracy (class prompt), simulation (prediction), per p_spu."""
    ps = sorted({e["p_spu"] for e in entries})
    head = "| objective | captions | " + " | ".join(f"p_spu = {p:g}" for p in ps) + " | max abs diff |"
    lines = [head, "|" + "---|" * (len(ps) + 3)]
    cells = {}
    for e in entries:
        cap = "class only" if e["caption_kind"] == "class" else f"r = {e['caption_fidelity']:g}"
        cap = "(no captions)" if e["objective"] == "Supervised" else cap
        key = (e["objective"], cap, -_x(e))
        cells.setdefault(key, {}).setdefault(e["p_spu"], {})[e["metric"]] = e
    order = {"LinearClip": 0, "Clip": 1, "SigLIP": 2, "Supervised": 3}
    for (obj, cap, _), by_p in sorted(cells.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0][2])):
        row, diffs = [], []
        for p in ps:
            d = by_p.get(p, {})
            if "acc_counter" not in d:
                row.append("")
                continue
            k, c = d["acc_counter"], d["acc_common"]
            cell = f"{k['sim_mean']:.3f} / {c['sim_mean']:.3f}"
            if np.isfinite(k["theory"]):
                cell += f" ({k['theory']:.3f} / {c['theory']:.3f})"
                diffs += [abs(e["sim_mean"] - e["theory"]) for e in d.values() if np.isfinite(e["theory"])]
            row.append(cell)
        worst = f"{max(diffs):.3f}" if diffs else "no prediction"
        lines.append(f"| {obj} | {cap} | " + " | ".join(row) + f" | {worst} |")
    return "\n".join(lines)


def make_fidelity(
    out_dir: Path = DEFAULT_OUT,
    results_dir: Path | None = None,
    fidelity: Path | None = None,
    class_sweep: Path | None = None,
) -> list[Path]:
    base = results_dir or RESULTS
    hint = "create it with `python -m synthetic -m experiment={}`"
    rows = collect(fidelity or latest_sweep(Path(base) / "caption_fidelity", hint.format("caption_fidelity")))
    rows += collect(class_sweep or latest_sweep(Path(base) / "caption_class", hint.format("caption_class")))
    entries = fidelity_table(rows)
    if not entries:
        raise FileNotFoundError(f"{fidelity}: no finished run to draw")
    paths = save_figure(fidelity_figure(entries), Path(out_dir), "captions_fidelity")
    md = Path(out_dir) / "captions_fidelity.md"
    md.write_text(fidelity_markdown(entries) + "\n")
    return [*paths, write_csv(entries, Path(out_dir) / "captions_fidelity.csv"), md]


def make(
    out_dir: Path = DEFAULT_OUT, results_dir: Path | None = None, sweep: Path | None = None
) -> list[Path]:
    """The caption-naming map of ``sweep`` (default: the newest captions sweep) and, when no sweep is
    named, the caption-fidelity map too where its sweeps exist (at least one of the two must)."""
    paths, missing = [], []
    if sweep is None:
        try:
            paths += make_fidelity(out_dir, results_dir)
        except FileNotFoundError as err:
            missing.append(str(err))
    try:
        hint = "create it with `python -m synthetic -m experiment=captions`"
        sweep = sweep or latest_sweep(Path(results_dir or RESULTS) / "captions", hint)
        entries = table(collect(sweep))
        if not entries:
            raise FileNotFoundError(f"{sweep}: no finished run to draw")
        paths += save_figure(figure(entries), Path(out_dir), "captions_map")
        paths.append(write_csv(entries, Path(out_dir) / "captions_map.csv"))
    except FileNotFoundError as err:
        if not paths:
            raise FileNotFoundError("; ".join([*missing, str(err)])) from None
    return paths


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(
        prog="python -m paper_figs.captions", description=__doc__.splitlines()[0]
    )
    parser.add_argument("sweep", nargs="?", type=Path, help="a captions sweep folder (caption naming map)")
    parser.add_argument("--fidelity", type=Path, help="a caption_fidelity sweep folder (default: the newest)")
    parser.add_argument("--class-sweep", type=Path, help="a caption_class sweep folder (default: the newest)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.fidelity or args.class_sweep:
        paths = make_fidelity(args.out, fidelity=args.fidelity, class_sweep=args.class_sweep)
    else:
        paths = make(args.out, sweep=args.sweep)
    for p in paths:
        print(f"written: {p}")
        if p.suffix == ".md":
            print(p.read_text())
    return paths


if __name__ == "__main__":
    main()
