"""One evaluation: a model on CounterAnimal in one label space and prompt set.

Writes results.json, predictions.csv and per_class.csv into the output directory."""

from __future__ import annotations

import csv
import json
import platform
import re
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from realdata.config import validate
from realdata.dataset import CounterAnimal, reference_classes, scan
from realdata.features import extract_features
from realdata.labels import (
    candidate_mask,
    class_mean_similarity,
    confusable_labels,
    load_confusable,
    restricted_topk,
    save_confusable,
)
from realdata.metrics import group_metrics, per_class_table
from realdata.models import Encoder, imagenet_classnames, load_encoder, resolve_device

PER_CLASS_COLUMNS = (
    "imagenet_index",
    "class_name",
    "common_background",
    "counter_background",
    "n_common",
    "n_counter",
    "acc_common",
    "acc_counter",
    "drop",
)
PREDICTION_COLUMNS = (
    "path",
    "group",
    "label",
    "pred",
    "correct",
    "top5",
    "class_name",
    "background",
    "pred_name",
)


def zero_shot_weights(encoder: Encoder, prompts: str, cache_dir) -> np.ndarray | None:
    """Text classifier of a CLIP, cached beside its features (None for ImageNet classifiers)."""
    if encoder.kind != "clip":
        return None
    from realdata.cache import ArrayCache

    return ArrayCache(cache_dir, encoder.identity).get_or_compute(
        f"zeroshot-{prompts}", lambda: encoder.text_weights(prompts)
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(text).name if "/" in text else text) or "none"


def one_vs_20_path(cfg, data: CounterAnimal) -> Path:
    if cfg.one_vs_20.file:
        return Path(cfg.one_vs_20.file)
    ref = cfg.one_vs_20.reference
    name = (
        f"{_slug(ref.name)}-{_slug(ref.pretrained or 'random')}-k{cfg.one_vs_20.k}-{data.fingerprint()[:12]}"
    )
    return Path(cfg.cache_dir) / "one_vs_20" / f"{name}.json"


def one_vs_20_sets(cfg, data: CounterAnimal, device) -> dict[int, list[int]]:
    """Load the saved 1v20 candidate sets, or compute them once with the reference CLIP and save them."""
    path = one_vs_20_path(cfg, data)
    if path.exists():
        sets, meta = load_confusable(path)
        if meta.get("k") != cfg.one_vs_20.k:
            raise ValueError(
                f"{path} holds k={meta.get('k')} confusable labels, one_vs_20.k={cfg.one_vs_20.k}"
            )
        return sets
    ref_cfg = cfg.one_vs_20.reference
    if ref_cfg.kind != "clip":
        raise ValueError(f"one_vs_20.reference.kind={ref_cfg.kind!r}: the paper ranks labels with a CLIP")
    ref = load_encoder(ref_cfg, device, cfg.seed, cfg.precision)
    feats, readable, _, _ = extract_features(
        ref, data, cfg.cache_dir, cfg.batch_size, cfg.num_workers, cfg.progress
    )
    labels = np.array([r.label for r in data.records])[readable]
    scores = ref.scores(feats[readable], "single", zero_shot_weights(ref, "single", cfg.cache_dir))
    classes = sorted(set(labels.tolist()))
    sets = confusable_labels(class_mean_similarity(scores, labels, classes), classes, cfg.one_vs_20.k)
    meta = {
        "reference": {"name": ref_cfg.name, "pretrained": ref_cfg.pretrained},
        "k": cfg.one_vs_20.k,
        "prompts": "single",
        "ranking": "mean cosine similarity over the class's common and counter images",
        "image_list_fingerprint": data.fingerprint(),
    }
    save_confusable(path, sets, meta)
    return sets


def versions() -> dict:
    import hydra
    import open_clip
    import PIL
    import torch
    import torchvision

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "open_clip": open_clip.__version__,
        "pillow": PIL.__version__,
        "hydra": hydra.__version__,
    }


def device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"


def run_header(cfg) -> dict:
    """The keys every results.json starts with, a failed run's too: CLIP_benchmark's flat shape
    (dataset, model, pretrained, task) plus what tells sweep runs apart."""
    return {
        "dataset": "counteranimal",
        "model": cfg.model.name,
        "pretrained": cfg.model.pretrained,
        "task": "zeroshot_classification",
        "model_kind": cfg.model.kind,
        "label_space": cfg.label_space,
        "prompts": cfg.prompts,  # ImageNet classifiers ignore it; kept so sweeps group runs alike
    }


def predict(scores_NxK: np.ndarray, mask_NxK: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 (first maximum, as torch/numpy argmax) and top-5 among each image's candidate labels."""
    pred = np.argmax(np.where(mask_NxK, scores_NxK, -np.inf), axis=1)
    return pred, restricted_topk(scores_NxK, mask_NxK, 5)


def evaluate(cfg, out_dir: str | Path) -> dict:
    """Run one evaluation and write results.json, predictions.csv and per_class.csv into out_dir."""
    start = time.time()
    validate(cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    data = scan(cfg.data.root)
    encoder = load_encoder(cfg.model, device, cfg.seed, cfg.precision)
    feats, readable, errors, cache = extract_features(
        encoder, data, cfg.cache_dir, cfg.batch_size, cfg.num_workers, cfg.progress
    )
    records = [r for r, ok in zip(data.records, readable, strict=True) if ok]
    labels = np.array([r.label for r in records], dtype=int)
    groups = np.array([r.group for r in records])
    scores = encoder.scores(
        feats[readable], cfg.prompts, zero_shot_weights(encoder, cfg.prompts, cfg.cache_dir)
    )

    sets = one_vs_20_sets(cfg, data, device) if cfg.label_space == "1v20" else None
    ref45 = [c.imagenet_index for c in reference_classes()]
    mask = candidate_mask(cfg.label_space, labels, ref45, sets)
    pred, top5 = predict(scores, mask)
    correct = pred == labels
    in_top5 = (top5 == labels[:, None]).any(axis=1)

    skipped = [{"path": s.path, "reason": s.reason} for s in data.skipped]
    skipped += [{"path": data.records[p].path, "reason": e} for p, e in sorted(errors.items())]
    metrics = group_metrics(labels, groups, correct, in_top5)
    metrics.update(n_skipped=len(skipped), skipped_files=skipped)

    _write_predictions(out_dir / "predictions.csv", records, pred, correct, top5)
    _write_per_class(out_dir / "per_class.csv", data, labels, groups, correct)
    results = {
        **run_header(cfg),
        "metrics": metrics,
        "config": OmegaConf.to_container(cfg, resolve=True),
        "status": "ok",
        "wall_time_s": time.time() - start,
        "versions": versions(),
        "device": device_name(device),
        "data_root": str(data.root),
        "feature_cache": str(cache.dir),
    }
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, allow_nan=True))
    return results


def _write_predictions(path: Path, records, pred, correct, top5) -> None:
    names = imagenet_classnames()
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(PREDICTION_COLUMNS)
        for r, p, ok, t5 in zip(records, pred, correct, top5, strict=True):
            w.writerow(
                [
                    r.path,
                    r.group,
                    r.label,
                    int(p),
                    int(ok),
                    " ".join(map(str, t5)),
                    r.class_name,
                    r.background,
                ]
                + [names[int(p)]]
            )


def _write_per_class(path: Path, data: CounterAnimal, labels, groups, correct) -> None:
    names = data.classes()
    backgrounds = data.backgrounds()
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=PER_CLASS_COLUMNS)
        w.writeheader()
        for row in per_class_table(labels, groups, correct):
            c = row["imagenet_index"]
            row["class_name"] = names[c]
            for g in ("common", "counter"):
                row[f"{g}_background"] = "/".join(sorted(backgrounds.get((c, g), set())))
            w.writerow(row)
