"""Label spaces: which ImageNet classes compete for each image.

1v1000: all 1000 ImageNet classes (the paper's default).
45way:  the paper's 45 CounterAnimal classes.
1v20:   per class, k=20 candidates: the class and its 19 most confusable labels
        (one_vs_20.true_class_in_k=true, the default), or the class plus 20 confusable labels (false),
        ranked by the mean cosine similarity between that class's images (common and counter together) and
        each label's prompt under a reference CLIP.
        Computed once, saved as JSON and reused for every model (CLIPs and ImageNet classifiers alike).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from realdata.config import LABEL_SPACES
from theory.runrecord import expect

N_IMAGENET = 1000


def check_one_vs_k(k, true_class_in_k: bool, n_labels: int = N_IMAGENET) -> None:
    """1 vs k means something only with at least one wrong candidate and fewer candidates than labels:
    one_vs_20.k=1 with the true class in k leaves the true class alone, and every model scores 100%."""
    n = k if true_class_in_k else k + 1
    expect(
        not isinstance(k, bool) and isinstance(k, int) and 2 <= n <= n_labels,
        "one_vs_20.k",
        k,
        f"2..{n_labels} candidates per image with one_vs_20.true_class_in_k={true_class_in_k} (it gives {n}; "
        "one candidate is the true class alone, so every prediction is right)",
    )


def confusable_labels(
    mean_sim_CxK: np.ndarray, class_indices: list[int], k: int, true_class_in_k: bool = True
) -> dict[int, list[int]]:
    """Per class: [class, then its most similar other labels, most similar first]: k labels in all when
    true_class_in_k, else the class plus k others.

    mean_sim_CxK[c, j]: mean cosine similarity of class_indices[c]'s images to label j.
    Ties go to the lower label index.
    """
    mean_sim_CxK = np.asarray(mean_sim_CxK, dtype=np.float64)
    if mean_sim_CxK.shape[0] != len(class_indices):
        raise ValueError(f"{mean_sim_CxK.shape[0]} rows of similarities for {len(class_indices)} classes")
    expect(k < mean_sim_CxK.shape[1], "k", k, f"fewer than the number of labels {mean_sim_CxK.shape[1]}")
    check_one_vs_k(k, true_class_in_k, mean_sim_CxK.shape[1])
    n_others = k - 1 if true_class_in_k else k
    out = {}
    for row, cls in zip(mean_sim_CxK, class_indices, strict=True):
        order = np.lexsort((np.arange(row.size), -row))  # by similarity descending, then index ascending
        others = [int(j) for j in order if j != cls][:n_others]
        out[int(cls)] = [int(cls), *others]
    return out


def class_mean_similarity(
    scores_NxK: np.ndarray, labels_N: np.ndarray, class_indices: list[int]
) -> np.ndarray:
    """Mean of each class's image-to-label similarities: (C, K)."""
    return np.stack([scores_NxK[labels_N == c].mean(axis=0) for c in class_indices])


def save_confusable(path: Path, sets: dict[int, list[int]], meta: dict) -> None:
    from realdata.cache import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({**meta, "sets": {str(c): v for c, v in sorted(sets.items())}}, indent=1)
    atomic_write(path, lambda p: p.write_text(text))


def load_confusable(path: Path) -> tuple[dict[int, list[int]], dict]:
    blob = json.loads(Path(path).read_text())
    sets = {int(c): [int(j) for j in v] for c, v in blob.pop("sets").items()}
    return sets, blob


def candidate_mask(
    label_space: str,
    labels_N: np.ndarray,
    reference_indices: list[int] | None = None,
    one_vs_20: dict[int, list[int]] | None = None,
) -> np.ndarray:
    """Boolean (N, 1000): True where label j is a candidate for image n."""
    expect(label_space in LABEL_SPACES, "label_space", label_space, f"one of {list(LABEL_SPACES)}")
    labels_N = np.asarray(labels_N)
    mask = np.zeros((labels_N.size, N_IMAGENET), dtype=bool)
    if label_space == "1v1000":
        mask[:] = True
    elif label_space == "45way":
        allowed = set(reference_indices or [])
        outside = sorted(set(labels_N.tolist()) - allowed)
        if outside:
            raise ValueError(f"label_space=45way: classes {outside} are not among the paper's 45 classes")
        mask[:, sorted(allowed)] = True
    else:  # 1v20
        missing = sorted(set(labels_N.tolist()) - set(one_vs_20 or {}))
        if missing:
            raise ValueError(f"label_space=1v20: no candidate set saved for classes {missing}")
        single = sorted(c for c in set(labels_N.tolist()) if len(set(one_vs_20[c])) < 2)
        if single:
            raise ValueError(
                f"label_space=1v20: the candidate sets of classes {single} hold one label (the class "
                "itself), so every prediction would be right; expected at least 2 candidates"
            )
        for c in np.unique(labels_N):
            mask[np.ix_(labels_N == c, one_vs_20[int(c)])] = True
    return mask


def restricted_topk(scores_NxK: np.ndarray, mask_NxK: np.ndarray, k: int = 5) -> np.ndarray:
    """Top-k label indices per image among its candidates, best first: (N, k)."""
    masked = np.where(mask_NxK, scores_NxK, -np.inf)
    k = min(k, int(mask_NxK.sum(axis=1).min()))
    top = np.argpartition(-masked, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(masked, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)
