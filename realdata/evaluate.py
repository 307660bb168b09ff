"""One evaluation: a model on CounterAnimal in one label space, prompt set and class-name list.

``evaluate(cfg, out_dir)`` runs under the shared run contract (theory.runrecord.recorded_run): results.json is
written atomically at the start (status interrupted), at the end (ok) or on an exception (failed /
interrupted), beside predictions.csv and per_class.csv. Earlier outputs in out_dir are moved to
``out_dir/earlier-<time>/`` first (by the shared writer, runrecord.keep_earlier), so a failed re-run never
destroys a good result; a config error (validate) writes nothing.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from realdata.cache import cached_array, digest, text_classifier_path
from realdata.classnames import SOURCES, imagenet_classnames
from realdata.config import ZOO_FIELDS, run_name, validate
from realdata.dataset import CounterAnimal, reference_classes, require_both_groups, scan
from realdata.features import extract_features
from realdata.labels import (
    candidate_mask,
    class_mean_similarity,
    confusable_labels,
    load_confusable,
    restricted_topk,
    save_confusable,
)
from realdata.metrics import group_metrics, missing_groups, per_class_table
from realdata.models import ModelSpec, describe, device_name, resolve_device, scores, templates
from theory.runrecord import RESULTS_FILE, finished_result, provenance, recorded_run, track

log = logging.getLogger("realdata")
PACKAGES = (
    "numpy",
    "torch",
    "torchvision",
    "open_clip_torch",
    "timm",
    "transformers",
    "pillow",
    "hydra-core",
)
OUTPUT_FILES = (RESULTS_FILE, "predictions.csv", "per_class.csv")
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


def text_weights(spec: ModelSpec, prompts: str, classnames: str, cache_dir) -> tuple[np.ndarray | None, str]:
    """A zero-shot model's text classifier, cached by (model identity, templates, class names); builds the
    model only when it is not cached. (None, "") for other heads (fixed logits, scorers)."""
    if spec.head != "zero_shot":
        return None, ""
    path = text_classifier_path(cache_dir, spec.identity, templates(prompts), imagenet_classnames(classnames))
    return cached_array(path, lambda: spec.encoder().text_weights(prompts, classnames)), str(path)


def one_vs_20_path(cfg, data: CounterAnimal, ref_identity: dict | None = None) -> Path:
    """one_vs_20.file, or a file under cache_dir keyed by the reference's identity (its weights' content
    hash, not the file stem: Hugging Face names every checkpoint open_clip_pytorch_model.bin), the class
    names, k and the image list."""
    if cfg.one_vs_20.file:
        return Path(cfg.one_vs_20.file)
    ref = cfg.one_vs_20.reference
    how = "in" if cfg.one_vs_20.true_class_in_k else "plus"
    name = f"{run_name(ref.name, ref.pretrained)}-{cfg.classnames}-k{cfg.one_vs_20.k}{how}"
    name += f"-{data.fingerprint()[:12]}-{digest(ref_identity)[:12]}"
    return Path(cfg.cache_dir) / "one_vs_20" / f"{name}.json"


def one_vs_20_sets(cfg, data: CounterAnimal, device) -> tuple[dict[int, list[int]], Path]:
    """Load the saved 1v20 candidate sets, or compute them once with the reference CLIP and save them.

    Runs before the evaluated model's extraction, so a missing reference fails before any work."""
    o = cfg.one_vs_20
    ref_cfg = o.reference
    ref, why = None, None
    try:
        ref = describe(
            ref_cfg, device, cfg.seed, cfg.precision, cfg.verbose, "one_vs_20.reference", cfg.cache_dir
        )
        if ref.head != "zero_shot":
            raise ValueError(
                f"one_vs_20.reference: family {ref.family!r} has no text classifier (head {ref.head!r}); the "
                "paper ranks labels by image-text similarity under a CLIP"
            )
    except Exception as e:  # fatal below unless one_vs_20.file names saved sets
        why = e
    path = one_vs_20_path(cfg, data, ref.identity if ref is not None else None)
    if path.exists():
        sets, meta = load_confusable(path)
        sizes = sorted({len(v) for v in sets.values()})
        have = (meta.get("k"), meta.get("true_class_in_k"))
        if have == (None, None) and sizes in ([o.k], [o.k + 1]):  # a sets file from elsewhere: read its sizes
            have = (o.k, sizes == [o.k])
        if have != (o.k, o.true_class_in_k):
            raise ValueError(
                f"{path} (one_vs_20.file) holds sets of {sizes} labels with (k, true_class_in_k)={have}, but "
                f"one_vs_20.k={o.k}, one_vs_20.true_class_in_k={o.true_class_in_k}"
            )
        lacking = sorted(c for c, v in sets.items() if c not in v)
        if lacking:
            raise ValueError(
                f"{path} (one_vs_20.file): the sets of classes {lacking} do not hold the class itself"
            )
        return sets, path
    try:
        if why is not None:
            raise why
        ref.encoder()  # weights that are not here fail now, before any image is read
    except Exception as e:
        raise RuntimeError(
            f"label_space=1v20 needs candidate sets: one_vs_20.file={str(path)!r} does not exist, and the "
            f"reference CLIP that ranks them, one_vs_20.reference (name={ref_cfg.name!r}, "
            f"pretrained={ref_cfg.pretrained!r}), cannot be loaded ({type(e).__name__}: {e}). Point "
            "one_vs_20.file at saved sets or one_vs_20.reference at weights available on this machine."
        ) from e
    feats, readable, _, _ = extract_features(
        ref, data, cfg.cache_dir, cfg.batch_size, cfg.num_workers, cfg.progress
    )
    labels = np.array([r.label for r in data.records])[readable]
    weights, _ = text_weights(ref, "single", cfg.classnames, cfg.cache_dir)
    classes = sorted(set(labels.tolist()))
    sim = class_mean_similarity(scores("zero_shot", feats[readable], weights), labels, classes)
    sets = confusable_labels(sim, classes, o.k, o.true_class_in_k)
    meta = {
        "reference": {
            "family": ref.family,
            "name": ref_cfg.name,
            "pretrained": ref_cfg.pretrained,
            "identity": ref.identity,
        },
        "k": o.k,
        "true_class_in_k": o.true_class_in_k,
        "prompts": "single",
        "classnames": cfg.classnames,
        "ranking": "mean cosine similarity over the class's common and counter images",
        "image_list_fingerprint": data.fingerprint(),
    }
    save_confusable(path, sets, meta)
    return sets, path


def model_predictions(
    spec: ModelSpec,
    data: CounterAnimal,
    mask_NxK: np.ndarray,
    prompts: str,
    classnames: str,
    cache_dir,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = True,
):
    """Top-1 and top-5 of every readable image of data among its candidate labels, whatever the family.

    mask_NxK: (N, 1000) candidates of each image of data.records. Features (or a scorer's candidate scores)
    and text classifiers come through the caches. Returns (pred_R, top5_Rx5, readable_N, errors by position,
    the feature cache, the text classifier's path or "")."""
    candidates = None
    if spec.head == "scorer":  # a scorer scores each image's candidates only: they are part of its features
        candidates = candidate_lists(mask_NxK)
        spec = spec.with_candidates(candidates, imagenet_classnames(classnames))
    feats, readable, errors, cache = extract_features(
        spec, data, cache_dir, batch_size, num_workers, progress
    )
    if not readable.any():
        raise ValueError(
            f"no readable image under {str(data.root)!r}: all {len(data.records)} image files tried failed "
            f"to open (first: {data.records[0].path}: {errors.get(0, '?')})"
        )
    weights, weights_path = text_weights(spec, prompts, classnames, cache_dir)
    score = scores(spec.head, feats[readable], weights, None if candidates is None else candidates[readable])
    pred, top5 = predict(score, mask_NxK[readable])
    return pred, top5, readable, errors, cache, weights_path


def candidate_lists(mask_NxK: np.ndarray) -> np.ndarray:
    """(N, k) candidate labels of each image from a label-space mask; every image has the same k."""
    counts = set(mask_NxK.sum(axis=1).tolist())
    if len(counts) != 1:
        raise ValueError(f"images have different numbers of candidate labels {sorted(counts)}")
    return np.stack([np.flatnonzero(row) for row in mask_NxK])


def _family_fields(mcfg) -> dict:
    """family and zero_shot for results.json; a config that names no usable family records what it says
    (the run then fails in validate with the reason)."""
    from realdata.families import family_name, is_zero_shot, load_family

    try:
        family = family_name(mcfg)
        return {"family": family, "zero_shot": is_zero_shot(load_family(family).HEAD)}
    except Exception:
        return {"family": mcfg.get("family") or mcfg.get("kind"), "zero_shot": None}


def predict(scores_NxK: np.ndarray, mask_NxK: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 (first maximum, as torch/numpy argmax) and top-5 among each image's candidate labels."""
    pred = np.argmax(np.where(mask_NxK, scores_NxK, -np.inf), axis=1)
    return pred, restricted_topk(scores_NxK, mask_NxK, 5)


def zoo_fields(cfg, zoo_entry: str | None) -> dict:
    """The zoo entry's table metadata, only when the run is that entry (else nothing)."""
    if zoo_entry is None:
        return {}
    return {k: OmegaConf.select(cfg, f"model.{k}") for k in ZOO_FIELDS}


def recorded_config(cfg, zoo_entry: str | None) -> dict:
    """The resolved config; a run that is not a zoo entry carries no zoo metadata in it."""
    config = OmegaConf.to_container(cfg, resolve=True)
    if zoo_entry is None:
        for k in ZOO_FIELDS:
            config["model"].pop(k, None)
    return config


def run_header(cfg, zoo_entry: str | None = None, device: str = "") -> dict:
    """The fields every results.json starts with, a failed run's too: the shared provenance, CLIP_benchmark's
    flat shape (dataset, model, pretrained, task) and what tells runs apart."""
    o = cfg.one_vs_20
    return {
        **provenance("counteranimal", PACKAGES, device),
        "dataset": "counteranimal",
        "model": cfg.model.name,
        "pretrained": cfg.model.pretrained,
        "task": "zeroshot_classification",
        **_family_fields(cfg.model),
        "run_name": run_name(cfg.model.name, cfg.model.pretrained),
        "label_space": cfg.label_space,
        "prompts": cfg.prompts,  # ImageNet classifiers ignore it; kept so sweeps group runs alike
        "classnames": cfg.classnames,
        "classnames_source": SOURCES.get(cfg.classnames, ""),
        "one_vs_20": {
            "k": o.k,
            "true_class_in_k": o.true_class_in_k,
            "n_candidates": o.k if o.true_class_in_k else o.k + 1,
            "reference": run_name(o.reference.name, o.reference.pretrained),
        },
        "zoo_entry": zoo_entry,
        **({"zoo": zoo_fields(cfg, zoo_entry)} if zoo_entry else {}),
        "config": recorded_config(cfg, zoo_entry),
    }


def evaluate(cfg, out_dir: str | Path, zoo_entry: str | None = None) -> dict:
    """Run one evaluation under the run contract; returns the results document written to out_dir.

    zoo_entry: the conf/realdata/model entry this run is exactly (None when any model key was changed).
    ``resume=true``: a finished run of the same config in out_dir is returned as it is. The run is logged to
    ``cfg.logger`` (theory.runrecord.track), a failed one too."""
    out_dir = Path(out_dir)
    if cfg.get("resume"):
        done, why = finished_result(out_dir, recorded_config(cfg, zoo_entry))
        log.info("resume: %s%s", why, "; skipped" if done else "; running it")
        if done:
            return done
    try:
        device = resolve_device(cfg.device)
        where = device_name(device)
    except Exception:  # reported as the run's failure by work() below
        device, where = None, str(cfg.device)
    out_dir.mkdir(parents=True, exist_ok=True)
    head = run_header(cfg, zoo_entry, where)
    name = str(out_dir)
    work = lambda checkpoint: _work(cfg, out_dir, device, checkpoint)  # noqa: E731
    try:
        # a config error writes nothing; earlier outputs are moved aside by the shared writer
        doc = recorded_run(out_dir, head, work, check=lambda: validate(cfg), outputs=OUTPUT_FILES)
    except Exception:
        try:  # the failed run too, with its status; a tracker error must not hide the run's own
            track.log_results(cfg.get("logger"), out_dir, name)
        except Exception as e:
            log.error("logging the failed run to %s failed: %r", cfg.logger.get("_target_"), e)
        raise
    if track.open_tracker(cfg.get("logger")) is not None:
        track.log_results(cfg.logger, out_dir, name, per_class_figure(out_dir / "per_class.csv"))
    return doc


def per_class_figure(path: Path) -> dict:
    """``{"per_class": Figure}``: each class's counter against its common accuracy (what trackers show)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["acc_common"] and r["acc_counter"]]
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls="--")
    ax.scatter([float(r["acc_common"]) for r in rows], [float(r["acc_counter"]) for r in rows], s=12)
    ax.set(xlabel="common accuracy", ylabel="counter accuracy", xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
    ax.set_title(f"{len(rows)} classes", fontsize=9)
    fig.tight_layout()
    return {"per_class": fig}


def _work(cfg, out_dir: Path, device, checkpoint) -> dict:
    device = device if device is not None else resolve_device(cfg.device)
    data = scan(cfg.data.root)
    listing = {
        "data_root": str(data.root),
        "ignored_folders": [{"path": s.path, "reason": s.reason} for s in data.ignored],
    }
    checkpoint(listing)
    spec = describe(cfg.model, device, cfg.seed, cfg.precision, cfg.verbose, cache_dir=cfg.cache_dir)
    sets, sets_path = one_vs_20_sets(cfg, data, device) if cfg.label_space == "1v20" else (None, None)
    ref45 = [c.imagenet_index for c in reference_classes()]
    all_labels = np.array([r.label for r in data.records], dtype=int)
    mask = candidate_mask(cfg.label_space, all_labels, ref45, sets)
    pred, top5, readable, errors, cache, weights_path = model_predictions(
        spec,
        data,
        mask,
        cfg.prompts,
        cfg.classnames,
        cfg.cache_dir,
        cfg.batch_size,
        cfg.num_workers,
        cfg.progress,
    )
    records = [r for r, ok in zip(data.records, readable, strict=True) if ok]
    labels = np.array([r.label for r in records], dtype=int)
    groups = np.array([r.group for r in records])
    require_both_groups(groups.tolist(), f"readable images under {str(data.root)!r}")
    correct = pred == labels
    in_top5 = (top5 == labels[:, None]).any(axis=1)

    names = {int(c): data.classes()[int(c)] for c in set(labels.tolist())}
    missing = [
        {"imagenet_index": c, "class_name": names[c], "missing": lacking}
        for c, lacking in missing_groups(labels, groups).items()
    ]
    if missing:
        log.warning(
            "%d classes lack a group and are left out of both accuracies: %s",
            len(missing),
            ", ".join(
                f"{m['imagenet_index']} {m['class_name']} (no {'/'.join(m['missing'])})" for m in missing
            ),
        )
    if len(missing) == len(names):
        raise ValueError(
            f"no class under {str(data.root)!r} has readable images in both groups (every class lacks "
            "common or counter), so there is no like-with-like accuracy to compare"
        )
    skipped = [{"path": s.path, "reason": s.reason} for s in data.skipped]
    skipped += [{"path": data.records[p].path, "reason": e} for p, e in sorted(errors.items())]
    metrics = group_metrics(labels, groups, correct, in_top5)
    metrics.update(n_skipped=len(skipped), skipped_files=skipped)

    class_names = imagenet_classnames(cfg.classnames)
    _write_predictions(out_dir / "predictions.csv", records, pred, correct, top5, class_names)
    _write_per_class(out_dir / "per_class.csv", data, labels, groups, correct)
    m = metrics
    log.info(
        "%s [%s, %s, %s names]: common %.2f%%, counter %.2f%%, drop %.2f points over %d classes -> %s",
        run_name(cfg.model.name, cfg.model.pretrained),
        cfg.label_space,
        cfg.prompts,
        cfg.classnames,
        100 * m["acc_common"],
        100 * m["acc_counter"],
        100 * m["drop"],
        m["n_classes"],
        out_dir / RESULTS_FILE,
    )
    return {
        **listing,
        "metrics": metrics,
        "classes_missing_a_group": missing,
        "family": spec.family,
        "zero_shot": spec.zero_shot,
        "protocol": spec.protocol(),
        "weights": spec.identity["weights"],
        "feature_cache": str(cache.dir),
        "text_classifier": weights_path,
        "one_vs_20_file": str(sets_path) if sets_path else None,
    }


def _write_predictions(path: Path, records, pred, correct, top5, class_names) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(PREDICTION_COLUMNS)
        for r, p, ok, t5 in zip(records, pred, correct, top5, strict=True):
            row = [
                r.path,
                r.group,
                r.label,
                int(p),
                int(ok),
                " ".join(map(str, t5)),
                r.class_name,
                r.background,
            ]
            w.writerow(row + [class_names[int(p)]])


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
