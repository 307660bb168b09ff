"""ColoredCOCO (paper Table 7 / Figure 10): ID and OOD accuracy per backbone and method, paper beside ours.

    python -m paper_figs.coloredcoco [--results DIR] [--out DIR] [--reference]

DIR (default results/realdata/coloredcoco) holds the results.json of ``python -m realdata.finetune`` runs,
e.g. the grid ``-m experiment=coloredcoco``. Aggregation = model selection: per (backbone, method) the run
with the highest ID test accuracy (metrics.acc_id) among the finished runs (status ok) is chosen; ties go to
the run whose folder sorts first. Zero-shot is the selected runs' accuracy before fine-tuning
(zero_shot_metrics). Writes coloredcoco_fig10.png/.pdf, coloredcoco_table7.md/.csv (each cell
"measured (paper)", in %) and coloredcoco_selection.csv (every candidate, the chosen one marked). With
no results it is a FileNotFoundError naming the command that makes them (``python -m paper_figs`` lists it
as skipped); ``--reference`` draws the paper's numbers alone.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from paper_figs.common import DEFAULT_OUT, save_figure
from theory.runrecord import has_results, iter_results

NAME = "coloredcoco"
DEFAULT_RESULTS = Path("results/realdata/coloredcoco")
METHODS = ("zero_shot", "clip_obj", "clip_objbkg", "supervised")  # Table 7's columns, in its order
LABELS = {
    "zero_shot": "zero-shot",
    "clip_obj": "CLIP obj",
    "clip_objbkg": "CLIP objbkg",
    "supervised": "supervised",
}
# Paper Table 7, ID / OOD accuracy (%), from SPEC section 1
PAPER = {
    ("RN50", "zero_shot"): (69.67, 68.33),
    ("RN50", "clip_obj"): (95.67, 0.78),
    ("RN50", "clip_objbkg"): (94.11, 0.22),
    ("RN50", "supervised"): (94.44, 5.33),
    ("ViT-B/16", "zero_shot"): (73.11, 71.22),
    ("ViT-B/16", "clip_obj"): (97.89, 21.0),
    ("ViT-B/16", "clip_objbkg"): (97.11, 1.67),
    ("ViT-B/16", "supervised"): (94.78, 1.33),
}
BACKBONES = {
    "RN50-quickgelu": "RN50",
    "RN50": "RN50",
    "ViT-B-16-quickgelu": "ViT-B/16",
    "ViT-B-16": "ViT-B/16",
}


def backbone(doc: dict) -> str:
    """Table 7's row of a run: RN50 / ViT-B/16 for those backbones with OpenAI weights, else the run name."""
    if doc.get("pretrained") == "openai" and doc.get("model") in BACKBONES:
        return BACKBONES[doc["model"]]
    return doc.get("run_name") or str(doc.get("model"))


def collect(results_dir: str | Path) -> tuple[list[dict], list[str]]:
    """Each fine-tuning run (kind coloredcoco) under results_dir, read via the run record, and notes on the
    files left out (unreadable ones; earlier-*/ folders hold replaced runs and are skipped)."""
    runs: list[dict] = []
    notes: list[str] = []
    if not has_results(results_dir):
        return runs, [f"no results under {results_dir}"]
    for path, doc in iter_results(results_dir, on_error=lambda e: notes.append(f"{e}; left out")):
        if doc.get("kind") == "coloredcoco" and not any(p.startswith("earlier-") for p in path.parts):
            runs.append({**doc, "_path": str(path)})
    return runs, notes


def select(runs: list[dict]) -> tuple[dict[tuple[str, str], dict], list[dict], list[str]]:
    """Model selection by ID accuracy: {(backbone, method): chosen run}, the candidate table, notes.

    Runs that are not status ok (diverged, failed, interrupted) are never chosen; they are listed."""
    groups: dict[tuple[str, str], list[dict]] = {}
    notes: list[str] = []
    candidates: list[dict] = []
    for doc in runs:
        key = (backbone(doc), doc["method"])
        ok = doc.get("status") == "ok" and (doc.get("metrics") or {}).get("acc_id") is not None
        candidates.append(
            {
                "backbone": key[0],
                "method": key[1],
                **{k: doc.get("hyperparameters", {}).get(k) for k in ("lr", "wd", "warmup", "steps")},
                "status": doc.get("status"),
                "acc_id": (doc.get("metrics") or {}).get("acc_id"),
                "acc_ood": (doc.get("metrics") or {}).get("acc_ood"),
                "path": doc["_path"],
                "selected": False,
            }
        )
        if ok:
            groups.setdefault(key, []).append(doc)
        else:
            notes.append(f"{doc['_path']}: status {doc.get('status')}, not a candidate for selection")
    chosen = {}
    for key, docs in groups.items():
        best = sorted(docs, key=lambda d: (-d["metrics"]["acc_id"], d["_path"]))[0]
        chosen[key] = best
        for c in candidates:
            if c["path"] == best["_path"]:
                c["selected"] = True
    for row in {backbone(d) for d in runs}:
        zs = [d for k, d in chosen.items() if k[0] == row and d.get("zero_shot_metrics")]
        if zs:
            chosen[(row, "zero_shot")] = {**zs[0], "metrics": zs[0]["zero_shot_metrics"]}
            spread = {round(d["zero_shot_metrics"]["acc_id"], 6) for d in zs}
            if len(spread) > 1:
                notes.append(f"{row}: zero-shot ID accuracy differs across selected runs {sorted(spread)}")
    return chosen, candidates, notes


def _cell(measured: float | None, paper: float | None) -> str:
    m = "-" if measured is None else f"{100 * measured:.2f}"
    return m if paper is None else f"{m} ({paper:.2f})"


def table_rows(chosen: dict) -> list[dict[str, str]]:
    rows = []
    backbones = ["RN50", "ViT-B/16"] + sorted({k[0] for k in chosen} - {"RN50", "ViT-B/16"})
    for b in backbones:
        row = {"backbone": b}
        for m in METHODS:
            doc = chosen.get((b, m))
            paper = PAPER.get((b, m))
            mid = doc["metrics"]["acc_id"] if doc else None
            mood = doc["metrics"]["acc_ood"] if doc else None
            row[f"{m} ID"] = _cell(mid, paper[0] if paper else None)
            row[f"{m} OOD"] = _cell(mood, paper[1] if paper else None)
            pdrop = paper[0] - paper[1] if paper else None
            row[f"{m} drop"] = _cell(None if doc is None else mid - mood, pdrop)
            if doc and m != "zero_shot":
                hp = doc.get("hyperparameters", {})
                row[f"{m} chosen"] = f"lr={hp.get('lr')} wd={hp.get('wd')} warmup={hp.get('warmup')}"
        rows.append(row)
    return rows


def write_tables(chosen: dict, candidates: list[dict], out_dir: Path, note: str) -> list[Path]:
    rows = table_rows(chosen)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    md = out_dir / f"{NAME}_table7.md"
    lines = [
        "# ColoredCOCO, paper Table 7: accuracy %, measured (paper)",
        "",
        note,
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    lines += ["| " + " | ".join(r.get(c, "") for c in cols) + " |" for r in rows]
    md.write_text("\n".join(lines) + "\n")
    paths = [md, out_dir / f"{NAME}_table7.csv", out_dir / f"{NAME}_selection.csv"]
    with open(paths[1], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    with open(paths[2], "w", newline="") as f:
        w = csv.DictWriter(
            f,
            fieldnames=[
                "backbone",
                "method",
                "lr",
                "wd",
                "warmup",
                "steps",
                "status",
                "acc_id",
                "acc_ood",
                "selected",
                "path",
            ],
        )
        w.writeheader()
        w.writerows(sorted(candidates, key=lambda c: (c["backbone"], c["method"], c["path"])))
    return paths


def draw(chosen: dict, out_dir: Path, note: str) -> list[Path]:
    backbones = ["RN50", "ViT-B/16"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    x = np.arange(len(METHODS))
    for ax, b in zip(axes, backbones, strict=True):
        for j, (split, colour) in enumerate((("ID", "tab:blue"), ("OOD", "tab:red"))):
            paper = [PAPER[(b, m)][j] for m in METHODS]
            ours = [
                chosen[(b, m)]["metrics"]["acc_" + split.lower()] * 100 if (b, m) in chosen else np.nan
                for m in METHODS
            ]
            off = -0.3 + 0.2 * j
            ax.bar(x + off, paper, 0.18, color=colour, alpha=0.35, hatch="//", label=f"{split} paper")
            ax.bar(x + off + 0.4, ours, 0.18, color=colour, label=f"{split} measured")
        ax.set_xticks(x, [LABELS[m] for m in METHODS])
        ax.set_title(b)
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, bbox_to_anchor=(0.5, -0.06))
    fig.suptitle(f"ColoredCOCO (Figure 10): {note}", fontsize=9)
    return save_figure(fig, out_dir, f"{NAME}_fig10")


def make(out_dir: Path, results_dir: Path | None = None) -> list[Path]:
    """The figure and the tables into out_dir from the runs under results_dir (default DEFAULT_RESULTS);
    no run there is a FileNotFoundError naming the command that makes them (the figure contract)."""
    where = Path(results_dir) if results_dir is not None else DEFAULT_RESULTS
    runs, notes = collect(where)
    if not runs:
        raise FileNotFoundError(
            f"no ColoredCOCO fine-tuning results under {where}: run `python -m realdata.finetune -m "
            "experiment=coloredcoco data.manifest=...` (docs/coloredcoco.md); "
            "`python -m paper_figs.coloredcoco --reference` draws the paper's numbers alone"
        )
    chosen, candidates, more = select(runs)
    for n in notes + more:
        print(n)
    note = f"measured: {len(runs)} runs under {where}, selected by ID accuracy; hatched = paper"
    return _write(chosen, candidates, Path(out_dir), note)


def make_reference(out_dir: Path) -> list[Path]:
    """Table 7 and Figure 10 from the paper's numbers alone."""
    return _write({}, [], Path(out_dir), "the paper's numbers alone (hatched); nothing measured")


def _write(chosen: dict, candidates: list[dict], out_dir: Path, note: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return write_tables(chosen, candidates, out_dir, note) + draw(chosen, out_dir, note)


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(
        prog="python -m paper_figs.coloredcoco", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--results", type=Path, default=None, help=f"default {DEFAULT_RESULTS}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--reference", action="store_true", help="the paper's numbers alone")
    args = parser.parse_args(argv)
    paths = make_reference(args.out) if args.reference else make(args.out, args.results)
    for p in paths:
        print(p)
    return paths


if __name__ == "__main__":
    import matplotlib

    matplotlib.use("Agg")
    main()
