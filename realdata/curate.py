"""`python -m realdata.curate`: a CounterAnimal-style split from photos labelled by class and background.

    python -m realdata.curate images=/data/pool out=/data/my-split            # the paper's reference CLIP
    python -m realdata.curate images=/data/pool out=/data/my-split-I model@reference=imagenet_resnet50
    python -m realdata.curate csv=/data/pool.csv out=... \
        'compare=[{family:torchvision,name:resnet50,pretrained:IMAGENET1K_V1}]'

The paper's pipeline (SPEC section 2): every photo of a class carries a background label; a reference model
(ViT-B/32 LAION-400M, "A photo of <label>." over the 1000 ImageNet names) classifies them; a class is kept
when its accuracy varies by more than `threshold` (5 points) across its backgrounds; the best background
becomes common, the worst counter. With an ImageNet classifier as the reference
(`model@reference=imagenet_resnet50`, or `reference.family=timm`) this is the CounterAnimal-I variant.

Input: `images=FOLDER` laid out `<imagenet index> <class name>/<background>/*.jpg`, or `csv=FILE` with columns
path, class ("<index> <name>" or "<index>"), background (paths relative to the CSV's folder). Output in
`out`:

- `split/`: the CounterAnimal layout, `<index> <name>/common-<bg>/` and `counter-<bg>/` holding copies (or
  hard links, `files=hardlink`) of the chosen backgrounds' photos, and `split/manifest.json`; run
  `python -m realdata data.root=OUT/split` on it;
- `accuracies.csv`: per model, class and background: images and accuracy;
- `results.json` (the shared run record): per class the accuracies, the spread, kept or dropped and why,
  the chosen pair; for each `compare` model, the split it would choose, the overlap of chosen pairs with the
  reference's, and the drop of every model on every model's split (does a split overfit its chooser?).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import hydra
import numpy as np
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from realdata.classnames import imagenet_classnames
from realdata.config import (
    CLASSNAME_LISTS,
    DEVICES,
    PRECISIONS,
    PROMPT_SETS,
    ModelConfig,
    expect_choices,
    register,
    run_name,
)
from realdata.dataset import (
    CLASS_DIR_RE,
    IMAGE_EXTENSIONS,
    N_IMAGENET,
    CounterAnimal,
    ImageRecord,
    Skipped,
    file_signature,
)
from realdata.evaluate import PACKAGES, model_predictions
from realdata.labels import candidate_mask
from realdata.metrics import group_metrics
from realdata.models import describe, resolve_device
from theory.runrecord import expect, json_safe, provenance, recorded_run
from theory.runrecord.configs import config_path

log = logging.getLogger("realdata.curate")
CURATE_LABEL_SPACES = ("1v1000", "input")  # all ImageNet classes, or only the classes of the input
FILE_MODES = ("copy", "hardlink")  # how the split's photos are written
POOL = "pool"  # the group of every input photo before the split
ACCURACY_COLUMNS = ("model", "imagenet_index", "class_name", "background", "n", "acc")


@dataclass
class CurateConfig:
    """Every key of `python -m realdata.curate` and its default (the one source: conf/realdata/curate.yaml
    names only the defaults list and Hydra's run folder)."""

    images: str | None = None  # <imagenet index> <class name>/<background>/*.jpg
    csv: str | None = None  # or a CSV with columns path, class, background
    # split/, accuracies.csv, results.json (not under results/realdata/)
    out: str = "results/curate/${now:%Y-%m-%d_%H-%M-%S}"
    reference: ModelConfig = field(
        default_factory=lambda: ModelConfig(
            family="open_clip", name="ViT-B-32-quickgelu", pretrained="laion400m_e31"
        )
    )
    # other models (model configs) for the report: their splits, overlap, drops
    compare: list[ModelConfig] = field(default_factory=list)
    threshold: float = (
        0.05  # keep a class whose accuracy varies by more than this (5 points) across backgrounds
    )
    min_images: int = 1  # a background with fewer photos is not a candidate for common or counter
    label_space: str = "1v1000"  # CURATE_LABEL_SPACES: 1v1000 | input (only the classes of the input compete)
    prompts: str = "single"
    classnames: str = "synset"
    files: str = "copy"  # copy | hardlink (FILE_MODES)
    batch_size: int = 64
    num_workers: int = 4
    device: str = "auto"
    precision: str = "auto"
    cache_dir: str = "results/realdata/cache"
    seed: int = 0
    progress: bool = True
    verbose: bool = False


def check(cfg) -> None:
    expect(
        (cfg.images is None) != (cfg.csv is None),
        "images, csv",
        (cfg.images, cfg.csv),
        "exactly one of images= (a folder) or csv= (a file)",
    )
    expect_choices(
        cfg,
        {
            "label_space": CURATE_LABEL_SPACES,
            "prompts": PROMPT_SETS,
            "classnames": CLASSNAME_LISTS,
            "files": FILE_MODES,
            "device": DEVICES,
            "precision": PRECISIONS,
        },
    )
    expect(0 <= cfg.threshold < 1, "threshold", cfg.threshold, "a fraction in [0, 1) (0.05 = 5 points)")
    expect(cfg.min_images >= 1, "min_images", cfg.min_images, "at least 1")


# ---------------------------------------------------------------- input


def _class_of(text: str, where: str) -> tuple[int, str]:
    m = CLASS_DIR_RE.match(text) or (text.isdigit() and CLASS_DIR_RE.match(f"{text} -"))
    if not m or not 0 <= int(m.group(1)) < N_IMAGENET:
        raise ValueError(
            f"{where}: class {text!r} is not '<imagenet index> <class name>' (or '<index>') with an index in "
            f"0..{N_IMAGENET - 1}"
        )
    index = int(m.group(1))
    name = m.group(2) if m.group(2) != "-" else imagenet_classnames("synset")[index].split(", ")[0]
    return index, name


def pool_from_folder(folder: str | Path) -> CounterAnimal:
    """Every photo of <index> <class name>/<background>/ (any depth below the background folder)."""
    base = Path(folder).expanduser()
    if not base.is_dir():
        raise FileNotFoundError(f"images={str(base)!r} is not a folder of <index> <class name>/<background>/")
    records, skipped, ignored = [], [], []
    for class_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        if not CLASS_DIR_RE.match(class_dir.name):
            ignored.append(Skipped(class_dir.name, "not a class folder ('<imagenet index> <class name>')"))
            continue
        index, name = _class_of(class_dir.name, f"images={str(base)!r}")
        for bg_dir in sorted(p for p in class_dir.iterdir() if p.is_dir()):
            for f in sorted(bg_dir.rglob("*")):
                if not f.is_file():
                    continue
                rel = f.relative_to(base).as_posix()
                if f.suffix.lower() not in IMAGE_EXTENSIONS:
                    skipped.append(Skipped(rel, f"not an image file (extension {f.suffix!r})"))
                    continue
                sig = file_signature(f)
                records.append(ImageRecord(rel, POOL, index, name, bg_dir.name, sig[0], sig))
    if not records:
        raise ValueError(f"no photos under {str(base)!r}: expected <index> <class name>/<background>/*.jpg")
    return CounterAnimal(base, records, skipped, ignored)


def pool_from_csv(path: str | Path) -> CounterAnimal:
    """Photos listed in a CSV with columns path, class, background (paths relative to the CSV's folder)."""
    path = Path(path).expanduser()
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    need = {"path", "class", "background"}
    if not rows or not need <= set(rows[0]):
        raise ValueError(f"csv={str(path)!r} needs the columns {sorted(need)} and at least one row")
    base = path.parent
    records = []
    for i, row in enumerate(rows, start=2):
        index, name = _class_of(row["class"].strip(), f"{path}:{i}")
        file = base / row["path"]
        if not file.is_file():
            raise FileNotFoundError(
                f"{path}:{i}: {row['path']!r} is not a file (paths are relative to {base})"
            )
        sig = file_signature(file)
        records.append(ImageRecord(row["path"], POOL, index, name, row["background"].strip(), sig[0], sig))
    records.sort(key=lambda r: r.path)
    return CounterAnimal(base, records, [])


# ---------------------------------------------------------------- the threshold rule


def background_accuracies(records, readable, correct) -> dict[int, dict[str, tuple[int, float]]]:
    """class -> background -> (readable images, accuracy)."""
    out: dict[int, dict[str, list[bool]]] = {}
    hits = iter(correct)
    for r, ok in zip(records, readable, strict=True):
        if ok:
            out.setdefault(r.label, {}).setdefault(r.background, []).append(bool(next(hits)))
    return {
        c: {bg: (len(v), float(np.mean(v))) for bg, v in sorted(bgs.items())}
        for c, bgs in sorted(out.items())
    }


def choose(
    accs: dict[int, dict[str, tuple[int, float]]], threshold: float, min_images: int = 1
) -> dict[int, dict]:
    """Per class: the best background (common) and the worst (counter) among those with >= min_images photos,
    kept when best - worst > threshold. Ties go to the background first in name order."""
    out = {}
    for c, bgs in accs.items():
        usable = {bg: a for bg, (n, a) in bgs.items() if n >= min_images}
        if len(usable) < 2:
            out[c] = {
                "kept": False,
                "why": f"{len(usable)} background(s) with >= {min_images} photos, need 2",
            }
            continue
        order = sorted(usable)
        common = max(order, key=lambda bg: usable[bg])  # max/min keep the first of equal values
        counter = min(order, key=lambda bg: usable[bg])
        spread = usable[common] - usable[counter]
        kept = bool(spread > threshold)
        out[c] = {
            "kept": kept,
            "common": common,
            "counter": counter,
            "spread": spread,
            "why": ""
            if kept
            else f"accuracy spread {spread:.4f} across backgrounds is not above {threshold}",
        }
    return out


def split_drop(records, readable, correct, chosen: dict[int, dict]) -> dict:
    """A model's class-balanced common and counter accuracy on a split (the photos of the chosen pairs).

    correct: one entry per readable record."""
    labels, groups, hits = [], [], []
    for r, hit in zip([r for r, ok in zip(records, readable, strict=True) if ok], correct, strict=True):
        pick = chosen.get(r.label, {})
        if pick.get("kept") and r.background in (pick["common"], pick["counter"]):
            labels.append(r.label)
            groups.append("common" if r.background == pick["common"] else "counter")
            hits.append(bool(hit))
    if not labels:
        return {"acc_common": None, "acc_counter": None, "drop": None, "n_classes": 0}
    m = group_metrics(np.array(labels), np.array(groups), np.array(hits), np.array(hits))
    return {k: m[k] for k in ("acc_common", "acc_counter", "drop", "n_classes", "n_common", "n_counter")}


def overlap(a: dict[int, dict], b: dict[int, dict]) -> dict:
    """How two references' splits agree: classes kept by both, identical (common, counter) pairs, Jaccard."""
    pa = {(c, x["common"], x["counter"]) for c, x in a.items() if x["kept"]}
    pb = {(c, x["common"], x["counter"]) for c, x in b.items() if x["kept"]}
    ka, kb = {p[0] for p in pa}, {p[0] for p in pb}
    union = pa | pb
    return {
        "classes_kept_by_both": len(ka & kb),
        "classes_kept_by_either": len(ka | kb),
        "same_pairs": len(pa & pb),
        "pair_jaccard": len(pa & pb) / len(union) if union else None,
    }


# ---------------------------------------------------------------- output


def write_split(pool: CounterAnimal, chosen: dict[int, dict], out: Path, files: str) -> list[dict]:
    """The CounterAnimal layout under out (copies or hard links of the chosen backgrounds' photos)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for r in pool.records:
        pick = chosen.get(r.label, {})
        if not pick.get("kept") or r.background not in (pick["common"], pick["counter"]):
            continue
        group = "common" if r.background == pick["common"] else "counter"
        target = out / f"{r.label} {r.class_name}" / f"{group}-{r.background}" / Path(r.path).name
        if target.exists():
            raise FileExistsError(
                f"{target} exists: two photos of {r.label} {r.background} share a file name"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        source = pool.root / r.path
        os.link(source, target) if files == "hardlink" else shutil.copy2(source, target)
        written.append({"path": target.relative_to(out).as_posix(), "source": str(source), "group": group})
    return written


def _write_accuracies(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=ACCURACY_COLUMNS)
        w.writeheader()
        w.writerows(rows)


def curate(cfg, out: str | Path | None = None) -> dict:
    """Run the curation under the run contract; returns the results document (out/results.json)."""
    out = Path(out or cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    head = {
        **provenance("counteranimal_curation", PACKAGES, str(cfg.device)),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    return recorded_run(out, head, lambda checkpoint: _work(cfg, out))


def _work(cfg, out: Path) -> dict:
    check(cfg)
    if (out / "split").exists():
        raise FileExistsError(f"{out / 'split'} exists; choose another out= (a split is never overwritten)")
    device = resolve_device(cfg.device)
    pool = pool_from_csv(cfg.csv) if cfg.csv else pool_from_folder(cfg.images)
    labels = np.array([r.label for r in pool.records], dtype=int)
    if cfg.label_space == "1v1000":
        mask = candidate_mask("1v1000", labels)
    else:
        mask = np.zeros((len(labels), N_IMAGENET), dtype=bool)
        mask[:, sorted(set(labels.tolist()))] = True
    models = {"reference": cfg.reference, **{f"compare[{i}]": m for i, m in enumerate(cfg.compare)}}
    per_model, rows = {}, []
    for key, mcfg in models.items():
        spec = describe(mcfg, device, cfg.seed, cfg.precision, cfg.verbose, key, cfg.cache_dir)
        pred, _, readable, errors, _, _ = model_predictions(
            spec,
            pool,
            mask,
            cfg.prompts,
            cfg.classnames,
            cfg.cache_dir,
            cfg.batch_size,
            cfg.num_workers,
            cfg.progress,
        )
        kept_records = [r for r, ok in zip(pool.records, readable, strict=True) if ok]
        correct = pred == np.array([r.label for r in kept_records])
        accs = background_accuracies(pool.records, readable, correct)
        name = run_name(mcfg.name, mcfg.pretrained)
        rows += [
            {
                "model": name,
                "imagenet_index": c,
                "class_name": pool.classes()[c],
                "background": bg,
                "n": n,
                "acc": a,
            }
            for c, bgs in accs.items()
            for bg, (n, a) in bgs.items()
        ]
        per_model[key] = {
            "run_name": name,
            "family": spec.family,
            "identity": spec.identity,
            "readable": readable,
            "correct": correct,
            "accuracies": accs,
            "chosen": choose(accs, cfg.threshold, cfg.min_images),
            "unreadable": [{"path": pool.records[p].path, "reason": e} for p, e in sorted(errors.items())],
        }
    ref = per_model["reference"]
    written = write_split(pool, ref["chosen"], out / "split", cfg.files)
    classes = pool.classes()
    split_classes = [
        {
            "imagenet_index": c,
            "class_name": classes[c],
            **x,
            "accuracies": {bg: {"n": n, "acc": a} for bg, (n, a) in ref["accuracies"][c].items()},
        }
        for c, x in ref["chosen"].items()
    ]
    manifest = {
        "reference": {"run_name": ref["run_name"], "family": ref["family"], "identity": ref["identity"]},
        "threshold": cfg.threshold,
        "min_images": cfg.min_images,
        "label_space": cfg.label_space,
        "prompts": cfg.prompts,
        "classnames": cfg.classnames,
        "classes": split_classes,
        "files": written,
    }
    (out / "split" / "manifest.json").write_text(json.dumps(json_safe(manifest), indent=1))
    _write_accuracies(out / "accuracies.csv", rows)
    drops = {
        chooser: {
            m["run_name"]: split_drop(pool.records, m["readable"], m["correct"], per_model[chooser]["chosen"])
            for m in per_model.values()
        }
        for chooser in per_model
    }
    compare = {
        key: {
            "run_name": m["run_name"],
            "family": m["family"],
            "chosen": m["chosen"],
            "overlap_with_reference": overlap(ref["chosen"], m["chosen"]),
        }
        for key, m in per_model.items()
        if key != "reference"
    }
    kept = [c for c, x in ref["chosen"].items() if x["kept"]]
    log.info("kept %d of %d classes; split written to %s", len(kept), len(classes), out / "split")
    return {
        "split": str(out / "split"),
        "reference": manifest["reference"],
        "classes": split_classes,
        "n_kept": len(kept),
        "n_classes": len(classes),
        "compare": compare,
        # drops[chooser][model]: the model's drop on the split chosen by `chooser`
        "drops": drops,
        "unreadable": ref["unreadable"],
        "skipped_files": [{"path": s.path, "reason": s.reason} for s in pool.skipped],
        "metrics": drops["reference"][ref["run_name"]],
    }


def _register() -> None:
    register()
    ConfigStore.instance().store(name="curate_schema", node=CurateConfig)


_register()


@hydra.main(version_base="1.3", config_path=config_path("realdata"), config_name="curate")
def main(cfg) -> None:
    doc = curate(cfg)
    print(
        f"kept {doc['n_kept']} of {doc['n_classes']} classes; split in {doc['split']}; "
        f"report in {cfg.out}/results.json"
    )
    if doc["n_kept"]:
        print(f"evaluate it: python -m realdata data.root={doc['split']}")
    else:
        print(f"no class varies by more than threshold={cfg.threshold} across its backgrounds: empty split")


if __name__ == "__main__":
    main()
