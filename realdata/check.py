"""`python -m realdata.check ROOT`: classes, backgrounds, image counts of a CounterAnimal copy vs the paper.

Differences from the paper are printed as plain lines (exit status 0); a missing or empty root, or one the
evaluator cannot use (duplicate class indices, a group with no image), is an error (exit status 2).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from realdata.dataset import GROUPS, CounterAnimal, reference_classes, scan
from realdata.metrics import missing_groups

REFERENCE_TOTALS = {"common": 7174, "counter": 5926}


def class_rows(data: CounterAnimal) -> list[dict]:
    """One row per class: index, name, background(s) and image count per group."""
    counts = Counter((r.label, r.group) for r in data.records)
    backgrounds = data.backgrounds()
    rows = []
    for label, name in sorted(data.classes().items()):
        row = {"imagenet_index": label, "class_name": name}
        for g in GROUPS:
            row[f"{g}_background"] = "/".join(sorted(backgrounds.get((label, g), set()))) or "-"
            row[f"n_{g}"] = counts.get((label, g), 0)
        rows.append(row)
    return rows


def differences(data: CounterAnimal) -> list[str]:
    """Every way this copy differs from the 45-class reference (empty when it matches)."""
    ref = {c.imagenet_index: c for c in reference_classes()}
    rows = {r["imagenet_index"]: r for r in class_rows(data)}
    diffs = []
    for idx in sorted(set(ref) - set(rows)):
        diffs.append(f"missing class {idx} {ref[idx].class_name}")
    for idx in sorted(set(rows) - set(ref)):
        diffs.append(f"extra class {idx} {rows[idx]['class_name']} (not one of the paper's 45)")
    for idx in sorted(set(rows) & set(ref)):
        r, c = rows[idx], ref[idx]
        for g, bg, n in (
            ("common", c.common_background, c.n_common),
            ("counter", c.counter_background, c.n_counter),
        ):
            if r[f"{g}_background"] != bg:
                diffs.append(
                    f"class {idx} {c.class_name}: {g} background {r[f'{g}_background']!r}, paper {bg!r}"
                )
            if r[f"n_{g}"] != n:
                diffs.append(f"class {idx} {c.class_name}: {r[f'n_{g}']} {g} images, paper {n}")
    diffs += [f"folder {d.path!r} is not read: {d.reason}" for d in data.ignored]
    labels, groups = [r.label for r in data.records], [r.group for r in data.records]
    diffs += [
        f"class {c} {rows[c]['class_name']} has no {'/'.join(g)} images: left out of both accuracies"
        for c, g in missing_groups(labels, groups).items()
    ]
    for g in GROUPS:
        n = sum(r[f"n_{g}"] for r in rows.values())
        if n != REFERENCE_TOTALS[g]:
            diffs.append(f"{n} {g} images in total, paper {REFERENCE_TOTALS[g]}")
    return diffs


def report(data: CounterAnimal) -> str:
    rows = class_rows(data)
    lines = [f"CounterAnimal at {data.root}: {len(rows)} classes"]
    lines.append(f"{'index':>5}  {'class':<26} {'common':<18} {'n':>5}  {'counter':<18} {'n':>5}")
    for r in rows:
        lines.append(
            f"{r['imagenet_index']:>5}  {r['class_name']:<26} {r['common_background']:<18} "
            f"{r['n_common']:>5}  {r['counter_background']:<18} {r['n_counter']:>5}"
        )
    totals = {g: sum(r[f"n_{g}"] for r in rows) for g in GROUPS}
    lines.append(
        f"total: {totals['common']} common, {totals['counter']} counter "
        f"(paper: {REFERENCE_TOTALS['common']} / {REFERENCE_TOTALS['counter']})"
    )
    if data.skipped:
        lines.append(f"{len(data.skipped)} files will be skipped:")
        lines.extend(f"  {s.path}: {s.reason}" for s in data.skipped)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m realdata.check", description=__doc__)
    parser.add_argument(
        "root", help="CounterAnimal root (the folder holding the class folders, or its parent)"
    )
    args = parser.parse_args(argv)
    try:
        data = scan(args.root)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report(data))
    diffs = differences(data)
    if diffs:
        print(f"this copy differs from the paper's CounterAnimal in {len(diffs)} ways:")
        print("\n".join(f"  {d}" for d in diffs))
    else:
        print("matches the paper's 45 classes, backgrounds and counts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
