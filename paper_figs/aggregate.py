"""Aggregate realdata ``results.json`` files into one CounterAnimal table beside the paper's reported numbers.

    python -m paper_figs.aggregate results/realdata [MORE_PATHS...] [--out paper_figs/out]

Each path is a results.json file or a folder searched recursively (a Hydra multirun directory). One row
per (model, weights, label space, prompts, protocol variant, data root, number of classes): everything that
changes the number (the variant says how the class names and the 1 vs k sets differ from the defaults), in
percent like the paper: common, counter, drop and, where the paper reports the same model under the same
protocol ("1 vs 1000", single prompt, the 45 classes, the default names), its numbers and measured - reported.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

from paper_figs.reference import (
    PAPER_LABEL_SPACE,
    PAPER_PROMPTS,
    UNKNOWN,
    ClassDrop,
    ModelPoint,
    clip_arch,
    data_from_tag,
    is_finite_number,
    paper_match,
    paper_points,
)
from realdata.config import LABEL_SPACES, PROMPT_SETS  # the names realdata writes
from theory.runrecord import FINISHED, RESULTS_FILE, ResultsError, load_results, result_paths

DEFAULT_RESULTS = Path("results/realdata")  # where `python -m realdata` writes (conf/realdata.yaml)
PER_CLASS_NAME = "per_class.csv"
REQUIRED_KEYS = ("dataset", "model", "pretrained", "family", "zero_shot", "label_space", "prompts")
REQUIRED_KEYS += ("classnames", "zoo_entry", "metrics")
TABLE_STEM = "counteranimal_table"
MEASURED_TITLE = "CounterAnimal: measured vs reported"
REFERENCE_TITLE = "CounterAnimal: reported numbers (paper Tables 3-4)"
TABLE_COLUMNS = (
    "kind",
    "family",
    "model",
    "pretrained",
    "backbone",
    "pretrain_data",
    "high_quality",
    "label_space",
    "prompts",
    "variant",
    "source",
    "common",
    "counter",
    "drop",
    "paper_common",
    "paper_counter",
    "paper_drop",
    "diff_common",
    "diff_counter",
    "diff_drop",
    "n_classes",
    "data_root",
    "n_common",
    "n_counter",
    "status",
    "results_file",
)


class FailedRun(ResultsError):
    """A realdata run that did not finish (status failed or interrupted): its results.json says why."""


PAPER_CLASSNAMES = "synset"  # realdata's default class-name list (docs/realdata.md section 4)
PAPER_N_CLASSES = 45
DEFAULT_ONE_VS_20 = {"k": 20, "true_class_in_k": True, "reference": "ViT-B-32-quickgelu_laion400m_e31"}


@dataclass(frozen=True)
class Measured:
    """One parsed results.json: the point (percent) plus what the table shows beside it."""

    point: ModelPoint
    n_common: int | None
    n_counter: int | None
    status: str
    variant: str = ""  # how the protocol differs from the paper's defaults ("" when it does not)
    n_classes: int | None = None  # classes the accuracies are balanced over
    data_root: str = ""
    sets_file: str = ""  # the 1v20 candidate sets (keyed by the reference's content): part of the row key
    family: str = ""  # results.json's model family (open_clip, torchvision, timm, hf_clip, mllm, a user's)


def _fraction(path: Path, metrics: dict, key: str, low: float = 0.0) -> float:
    value = metrics.get(key)
    if not is_finite_number(value) or not low <= value <= 1.0:
        raise ResultsError(f"{path}: metrics.{key} = {value!r}, expected a fraction in [{low:g}, 1]")
    return float(value)


def load_result(path: Path) -> Measured:
    """Parse one realdata results.json, checking its shape; metadata from the paper if it has the model."""
    path = Path(path)
    data = load_results(path)  # the run record's own checks (JSON object, status, config, metrics)
    if data.get("dataset") == "counteranimal" and data["status"] not in FINISHED:
        raise FailedRun(
            f"{path}: {data.get('status')} run of {data.get('model')} {data.get('pretrained')}: "
            f"{data.get('error')}"
        )
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ResultsError(
            f"{path} is not a realdata CounterAnimal results file: missing keys {missing} "
            f"(expected {list(REQUIRED_KEYS)})"
        )
    if data["dataset"] != "counteranimal":
        raise ResultsError(f"{path}: dataset = {data['dataset']!r}, expected 'counteranimal'")
    for key, allowed in (
        ("label_space", LABEL_SPACES),
        ("prompts", PROMPT_SETS),
    ):
        if data[key] not in allowed:
            raise ResultsError(f"{path}: {key} = {data[key]!r}, expected one of {list(allowed)}")
    metrics = data["metrics"]
    if not isinstance(metrics, dict):
        raise ResultsError(f"{path}: metrics must be an object, got {type(metrics).__name__}")
    common = _fraction(path, metrics, "acc_common")
    counter = _fraction(path, metrics, "acc_counter")
    drop = _fraction(path, metrics, "drop", low=-1.0)

    if not isinstance(data["zero_shot"], bool):
        raise ResultsError(f"{path}: zero_shot = {data['zero_shot']!r}, expected true or false")
    # the figures' two kinds, whatever the family: zero-shot models (CLIPs, multimodal LLMs) against
    # fixed-head ImageNet classifiers
    kind = "clip" if data["zero_shot"] else "imagenet"
    model, pretrained = str(data["model"]), str(data["pretrained"] or "")
    ref = paper_match(kind, model, pretrained, paper_points())
    fields = data.get("zoo") or {}  # realdata writes "zoo" only when the run is exactly that zoo entry
    if ref is not None:
        backbone, pretrain_data, high_quality = ref.backbone, ref.pretrain_data, ref.high_quality
    else:
        # open_clip / torchvision names identify the architecture; the data set follows the weights tag.
        default_data = data_from_tag(pretrained) if kind == "clip" else "ImageNet-1K"
        backbone = str(fields.get("backbone") or (clip_arch(model) if kind == "clip" else model))
        pretrain_data = str(fields.get("pretrain_data") or default_data)
        hq = fields.get("high_quality_data")
        high_quality = bool(hq) if hq is not None else None
    point = ModelPoint(
        kind=kind,
        model=model,
        pretrained=pretrained,
        backbone=backbone,
        pretrain_data=pretrain_data,
        high_quality=high_quality,
        label_space=data["label_space"],
        prompts=data["prompts"],
        common=100 * common,
        counter=100 * counter,
        drop=100 * drop,
        source="measured",
        path=path,
    )
    n_common, n_counter = metrics.get("n_common"), metrics.get("n_counter")
    return Measured(
        point=point,
        n_common=int(n_common) if is_finite_number(n_common) else None,
        n_counter=int(n_counter) if is_finite_number(n_counter) else None,
        status=str(data.get("status", UNKNOWN)),
        variant=protocol_variant(data),
        family=str(data["family"]),
        n_classes=int(metrics["n_classes"]) if is_finite_number(metrics.get("n_classes")) else None,
        data_root=str(data.get("data_root") or ""),
        sets_file=Path(data["one_vs_20_file"]).name
        if data["label_space"] == "1v20" and data.get("one_vs_20_file")
        else "",
    )


def protocol_variant(data: dict) -> str:
    """How a run's protocol differs from realdata's defaults: class-name list, 1v20 reading ("" if not)."""
    parts = []
    classnames = data["classnames"]
    if classnames != PAPER_CLASSNAMES:
        parts.append(f"classnames={classnames}")
    one_vs_20 = data.get("one_vs_20")
    if data.get("label_space") == "1v20" and isinstance(one_vs_20, dict):
        k = one_vs_20.get("k", 20)
        if not one_vs_20.get("true_class_in_k", True):
            parts.append(f"1v20 true class + {k}")
        elif k != DEFAULT_ONE_VS_20["k"]:
            parts.append(f"1v20 k={k}")
        ref = one_vs_20.get("reference", DEFAULT_ONE_VS_20["reference"])
        if ref != DEFAULT_ONE_VS_20["reference"]:
            parts.append(f"1v20 reference={ref}")
    return "; ".join(parts)


def row_key(m: Measured) -> tuple:
    """One table row per (model, weights, label space, prompts, protocol variant, data root, classes, 1v20
    sets): every field that changes the number, so a 3-class run never replaces the 45-class row."""
    p = m.point
    return (
        p.kind,
        p.arch,
        p.pretrained,
        p.label_space,
        p.prompts,
        m.variant,
        m.data_root,
        m.n_classes,
        m.sets_file,
    )


def load_measured(paths: list[Path] | tuple[Path, ...]) -> tuple[list[Measured], list[str]]:
    """All results under paths, one per row key (the newest file wins); failed runs are skipped.

    Notes say which runs were skipped or superseded. No usable result at all is an error."""
    chosen: dict[tuple, Measured] = {}
    notes: list[str] = []
    for file in (p.resolve() for p in result_paths(paths)):
        try:
            m = load_result(file)
        except FailedRun as err:
            notes.append(f"skipped {err}")
            continue
        key = row_key(m)
        old = chosen.get(key)
        if old is not None:
            newer, older = (m, old) if file.stat().st_mtime >= old.point.path.stat().st_mtime else (old, m)
            notes.append(f"{key}: using {newer.point.path}, ignoring older {older.point.path}")
            m = newer
        chosen[key] = m
    if not chosen:
        raise ResultsError("no usable results (every run failed):\n" + "\n".join(notes))
    return list(chosen.values()), notes


def missing_paper_models(points: list[ModelPoint]) -> list[ModelPoint]:
    """The paper's models with no measured point under the paper's protocol."""
    measured = {
        p.identity for p in points if p.source == "measured" and p.panel == (PAPER_LABEL_SPACE, PAPER_PROMPTS)
    }
    return [p for p in paper_points() if p.identity not in measured]


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _sort_key(p: ModelPoint, order: dict) -> tuple:
    ref = order.get(p.identity)
    return (p.kind != "clip", ref is None, ref if ref is not None else 0, p.arch, p.pretrained, p.panel)


def table_rows(measured: list[Measured] | None = None) -> list[dict[str, str]]:
    """Table rows as strings: the paper's rows when measured is None, else one row per measured result."""
    papers = paper_points()
    if measured is None:
        return [_row(p, None, None, None, "") for p in papers]
    order = {p.identity: i for i, p in enumerate(papers)}
    rows = []
    for m in sorted(measured, key=lambda m: _sort_key(m.point, order)):
        p = m.point
        on_protocol = p.panel == (PAPER_LABEL_SPACE, PAPER_PROMPTS) and not m.variant
        on_protocol = on_protocol and m.n_classes in (None, PAPER_N_CLASSES)
        ref = paper_match(p.kind, p.model, p.pretrained, papers) if on_protocol else None
        rows.append(
            _row(p, ref, m.n_common, m.n_counter, m.status, m.variant, m.n_classes, m.data_root, m.family)
        )
    return rows


def _row(
    p: ModelPoint,
    ref: ModelPoint | None,
    n_common,
    n_counter,
    status: str,
    variant: str = "",
    n_classes: int | None = PAPER_N_CLASSES,
    data_root: str = "",
    family: str = "",
) -> dict[str, str]:
    diff = (lambda a, b: _pct(a - b)) if ref is not None else (lambda a, b: "")
    return {
        "kind": p.kind,
        "family": family,
        "model": p.model,
        "pretrained": p.pretrained,
        "backbone": p.backbone,
        "pretrain_data": p.pretrain_data,
        "high_quality": "" if p.high_quality is None else str(int(p.high_quality)),
        "label_space": p.label_space,
        "prompts": p.prompts,
        "variant": variant,
        "source": p.source,
        "common": _pct(p.common),
        "counter": _pct(p.counter),
        "drop": _pct(p.drop),
        "paper_common": _pct(ref.common) if ref else "",
        "paper_counter": _pct(ref.counter) if ref else "",
        "paper_drop": _pct(ref.drop) if ref else "",
        "diff_common": diff(p.common, ref.common) if ref else "",
        "diff_counter": diff(p.counter, ref.counter) if ref else "",
        "diff_drop": diff(p.drop, ref.drop) if ref else "",
        "n_classes": "" if n_classes is None else str(n_classes),
        "data_root": data_root,
        "n_common": "" if n_common is None else str(n_common),
        "n_counter": "" if n_counter is None else str(n_counter),
        "status": status,
        "results_file": str(p.path) if p.path else "",
    }


def to_markdown(rows: list[dict[str, str]], title: str) -> str:
    compare = any(r["paper_common"] for r in rows) or any(r["source"] == "measured" for r in rows)
    cols = [
        ("model", "model"),
        ("pretrained", "weights"),
        ("backbone", "backbone"),
        ("pretrain_data", "data"),
    ]
    cols += [("label_space", "labels"), ("prompts", "prompts")]
    if any(r["variant"] for r in rows):
        cols += [("variant", "variant")]
    classes = {r["n_classes"] for r in rows}
    if len(classes) > 1:
        cols += [("n_classes", "classes")]
    if len({r["data_root"] for r in rows}) > 1:
        cols += [("data_root", "data root")]
    cols += [("common", "common"), ("counter", "counter"), ("drop", "drop")]
    if compare:
        cols += [
            ("paper_common", "paper common"),
            ("paper_counter", "paper counter"),
            ("paper_drop", "paper drop"),
        ]
        cols += [("diff_common", "Δ common"), ("diff_counter", "Δ counter"), ("diff_drop", "Δ drop")]
    over = f"the {classes.pop()} classes" if len(classes) == 1 and "" not in classes else "each row's classes"
    where = {r["data_root"] for r in rows} - {""}
    lines = [f"# {title}", "", f"Accuracies in percent, class-balanced over {over}."]
    if len(where) == 1:
        lines.append(f"Data: {where.pop()}.")
    if len(classes) > 1 or "" in classes:
        lines.append("Rows differ in their classes (column 'classes'): compare like with like.")
    if compare:
        lines.append(
            "Paper numbers are shown only for the paper's protocol (1v1000, single prompt, the 45 classes, "
            "the default class names); Δ = measured - paper."
        )
    lines += ["", "| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(r[k] for k, _ in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_table(rows: list[dict[str, str]], out_dir: Path, title: str, footer: str = "") -> list[Path]:
    """CSV + Markdown of the rows; footer (e.g. the models not yet measured) goes under the Markdown table."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / f"{TABLE_STEM}.csv", out_dir / f"{TABLE_STEM}.md"
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=TABLE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    md_path.write_text(to_markdown(rows, title) + (f"\n{footer}\n" if footer else ""))
    return [csv_path, md_path]


def load_per_class(results_json: Path) -> list[ClassDrop]:
    """per_class.csv beside a results.json (fractions) as percentages."""
    path = Path(results_json).parent / PER_CLASS_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: realdata writes it beside {RESULTS_FILE}")
    needed = ("imagenet_index", "class_name", "common_background", "counter_background")
    needed += ("acc_common", "acc_counter", "drop")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        absent = [c for c in needed if c not in (reader.fieldnames or [])]
        if absent:
            raise ResultsError(f"{path}: missing columns {absent} (expected {list(needed)})")
        rows = list(reader)
    out = []
    for i, r in enumerate(rows, start=2):
        try:
            out.append(
                ClassDrop(
                    class_name=r["class_name"],
                    imagenet_index=int(r["imagenet_index"]),
                    common_background=r["common_background"],
                    counter_background=r["counter_background"],
                    common=100 * float(r["acc_common"]),
                    counter=100 * float(r["acc_counter"]),
                    drop=100 * float(r["drop"]),
                )
            )
        except ValueError as err:
            raise ResultsError(f"{path} line {i}: {err}") from err
    if not out:
        raise ResultsError(f"{path} has no class rows")
    return out


def describe_missing(points: list[ModelPoint]) -> str:
    missing = missing_paper_models(points)
    if not missing:
        return "every model of the paper's Tables 3 and 4 has a measured 1v1000/single result"
    names = ", ".join(f"{p.model}/{p.pretrained}" if p.kind == "clip" else p.model for p in missing)
    total = len(paper_points())
    return f"{len(missing)} of the paper's {total} models not measured (1v1000, single prompt): {names}"


def aggregate(paths: list[Path], out_dir: Path) -> tuple[list[Path], list[Measured], list[str]]:
    """Write the measured-vs-paper table; returns its files, the parsed results and notes to print."""
    measured, notes = load_measured(paths)
    # a paper model counts as measured only under the paper's full protocol (its 45 classes, default names)
    full = [m.point for m in measured if not m.variant and m.n_classes in (None, PAPER_N_CLASSES)]
    missing = describe_missing(full)
    files = write_table(table_rows(measured), out_dir, MEASURED_TITLE, footer=missing)
    notes.append(missing)
    return files, measured, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m paper_figs.aggregate", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "paths", nargs="+", type=Path, help="results.json files or folders searched recursively"
    )
    parser.add_argument("--out", type=Path, default=Path("paper_figs/out"), help="output folder")
    args = parser.parse_args(argv)
    try:
        files, measured, notes = aggregate(args.paths, args.out)
    except (ResultsError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(files[1].read_text())
    for note in notes:
        print(note)
    print(f"{len(measured)} rows -> " + ", ".join(map(str, files)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
