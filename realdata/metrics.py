"""Group metrics: class-balanced accuracy (the headline), per-image accuracy, top-5, drop, per class.

Like with like: every metric is taken over the classes that have images in both groups; a class missing a
group is left out of both (and listed by the evaluator), so the drop always compares the same classes.
"""

from __future__ import annotations

import numpy as np

from realdata.dataset import GROUPS


def per_class_table(labels_N, groups_N, correct_N) -> list[dict]:
    """One row per class: n and accuracy per group, drop = common - counter (NaN when a group is empty)."""
    labels_N, groups_N, correct_N = np.asarray(labels_N), np.asarray(groups_N), np.asarray(correct_N, bool)
    rows = []
    for c in np.unique(labels_N):
        row = {"imagenet_index": int(c)}
        for g in GROUPS:
            sel = (labels_N == c) & (groups_N == g)
            row[f"n_{g}"] = int(sel.sum())
            row[f"acc_{g}"] = float(correct_N[sel].mean()) if sel.any() else float("nan")
        row["drop"] = row["acc_common"] - row["acc_counter"]
        rows.append(row)
    return rows


def missing_groups(labels_N, groups_N) -> dict[int, list[str]]:
    """Classes that lack a group: {class: [missing groups]}."""
    labels_N, groups_N = np.asarray(labels_N), np.asarray(groups_N)
    present = {g: set(labels_N[groups_N == g].tolist()) for g in GROUPS}
    out = {}
    for c in sorted(set(labels_N.tolist())):
        lacking = [g for g in GROUPS if c not in present[g]]
        if lacking:
            out[int(c)] = lacking
    return out


def balanced_accuracy(labels_N, groups_N, correct_N, group: str) -> float:
    """Mean over classes (with at least one image in the group) of the class's accuracy in that group."""
    labels_N, groups_N, correct_N = np.asarray(labels_N), np.asarray(groups_N), np.asarray(correct_N, bool)
    in_group = groups_N == group
    accs = [correct_N[in_group & (labels_N == c)].mean() for c in np.unique(labels_N[in_group])]
    return float(np.mean(accs)) if accs else float("nan")


def unbalanced_accuracy(groups_N, correct_N, group: str) -> float:
    groups_N, correct_N = np.asarray(groups_N), np.asarray(correct_N, bool)
    sel = groups_N == group
    return float(correct_N[sel].mean()) if sel.any() else float("nan")


def group_metrics(labels_N, groups_N, correct_N, top5_N) -> dict:
    """acc_* and top5_* are class-balanced; *_unbalanced are per image; drop = acc_common - acc_counter.

    Only images of classes present in both groups count (``n_classes`` of them)."""
    labels_N, groups_N = np.asarray(labels_N), np.asarray(groups_N)
    correct_N, top5_N = np.asarray(correct_N, bool), np.asarray(top5_N, bool)
    keep = ~np.isin(labels_N, list(missing_groups(labels_N, groups_N)))
    labels_N, groups_N, correct_N, top5_N = labels_N[keep], groups_N[keep], correct_N[keep], top5_N[keep]
    m = {}
    for g in GROUPS:
        m[f"acc_{g}"] = balanced_accuracy(labels_N, groups_N, correct_N, g)
    m["drop"] = m["acc_common"] - m["acc_counter"]
    for g in GROUPS:
        m[f"acc_{g}_unbalanced"] = unbalanced_accuracy(groups_N, correct_N, g)
    m["drop_unbalanced"] = m["acc_common_unbalanced"] - m["acc_counter_unbalanced"]
    for g in GROUPS:
        m[f"top5_{g}"] = balanced_accuracy(labels_N, groups_N, top5_N, g)
    for g in GROUPS:
        m[f"n_{g}"] = int((groups_N == g).sum())
    m["n_classes"] = len(set(labels_N.tolist()))
    return m
