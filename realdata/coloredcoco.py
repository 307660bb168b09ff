"""ColoredCOCO (paper section 6, appendix D.3, Table 7): COCO objects pasted on a coloured background whose
colour is a controlled spurious feature, after Ahmed et al. 2021 ("predictive group invariance",
coco_colours).

    python -m realdata.coloredcoco build coco.root=/data/coco out=/data/coloredcoco   # n_train=800 ... seed=0
    python -m realdata.coloredcoco fixture /tmp/coco-try    # a generated COCO-format folder (tests, demo)

The build reads a local COCO 2017 copy in its standard layout (``annotations/instances_{train,val}2017.json``,
``{train,val}2017/*.jpg``) through pycocotools and writes, per class, ``n_train`` / ``n_id_test`` /
``n_ood_test`` 64 x 64 PNGs plus ``OUT/manifest.csv`` (all splits) and ``OUT/<split>.csv`` (one split each,
the file to hand open_clip's CSV training: ``--csv-img-key path --csv-caption-key caption_obj``, run from
OUT since paths are relative to it) and ``OUT/build.json`` (the parameters, the colours, what was skipped).

Colours: each class has one biased colour. Train images get it with probability ``confounder_strength``
(0.8) and otherwise one of ``n_random_colours`` (10) random colours at squared RGB distance > 2500 from
every biased colour; the ID test always gets the class's biased colour; the OOD test gets one of the other
8 biased colours, uniformly. Everything is drawn from numpy generators seeded by ``seed`` (and the class
index), so a build is a pure function of its parameters and the COCO copy.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import MISSING, OmegaConf

from theory.runrecord import expect

# Ahmed et al.'s 9 classes and their biased colours, in this order (class i <-> colour i).
CAPTION_SETS = ("obj", "objbkg")  # the paper's two caption sets (caption); finetune's `captions` key
CLASSES = ("boat", "airplane", "truck", "dog", "zebra", "horse", "bird", "train", "bus")
BIASED_RGB = (
    (0, 100, 0),
    (188, 143, 143),
    (255, 0, 0),
    (255, 215, 0),
    (0, 255, 0),
    (65, 105, 225),
    (0, 225, 225),
    (0, 0, 255),
    (255, 20, 147),
)
# The sources give no colour names; these are the CSS names of the RGB values ((0,225,225) is closest to
# CSS darkturquoise, but it reads as cyan, which the generator presumably meant).
BIASED_NAMES = ("dark green", "rosy brown", "red", "gold", "lime", "royal blue", "cyan", "blue", "deep pink")
SPLITS = ("train", "id_test", "ood_test")
MANIFEST_COLUMNS = (
    "path",
    "split",
    "label",
    "class_name",
    "colour_rgb",
    "colour_name",
    "caption_obj",
    "caption_objbkg",
    "colour_kind",  # biased (the class's own), random (train only), other_biased (OOD test)
    "coco_split",
    "coco_image_id",
    "coco_ann_id",
)
MIN_SQ_DISTANCE = 2500  # random colours: squared RGB distance to every biased colour must exceed this


def caption(kind: str, class_name: str, colour_name: str) -> str:
    """The two caption sets of the paper: obj names the object only, objbkg also its background colour."""
    expect(kind in CAPTION_SETS, "captions", kind, f"one of {list(CAPTION_SETS)}")
    return f"a photo of {class_name}" + (f" in {colour_name} background" if kind == "objbkg" else "")


@dataclass
class CocoSource:
    root: str = MISSING  # the COCO 2017 folder: annotations/, train2017/, val2017/
    train_split: str = "train2017"  # where training images come from
    # where the ID and OOD test images come from. Default train2017 too: val2017 holds fewer than 200 images
    # of some classes (zebra: 85) with a large enough instance. Images never repeat across splits.
    test_split: str = "train2017"


@dataclass
class BuildConfig:
    coco: CocoSource = field(default_factory=CocoSource)
    out: str = MISSING
    n_train: int = 800
    n_id_test: int = 100
    n_ood_test: int = 100
    seed: int = 0
    image_size: int = 64
    min_area: float = 10000.0  # the largest (non-crowd) instance's COCO `area`, in original pixels
    confounder_strength: float = 0.8
    n_random_colours: int = 10
    field_scale: float = 0.75  # the colour field is colour * field_scale (the generator's 0.75 scaling)


def random_colours(n: int, seed: int) -> list[tuple[int, int, int]]:
    """n distinct RGB colours, each at squared distance > 2500 from every biased colour (rejection)."""
    rng = np.random.default_rng([seed, 10_000])
    biased = np.array(BIASED_RGB)
    out: list[tuple[int, int, int]] = []
    while len(out) < n:
        c = rng.integers(0, 256, 3)
        if ((biased - c) ** 2).sum(1).min() > MIN_SQ_DISTANCE and tuple(c) not in out:
            out.append(tuple(int(v) for v in c))
    return out


def colour_name(rgb) -> str:
    """A biased colour's name, or the nearest xkcd colour name (plain words) that is not a biased name."""
    rgb = tuple(int(v) for v in rgb)
    if rgb in BIASED_RGB:
        return BIASED_NAMES[BIASED_RGB.index(rgb)]
    from matplotlib.colors import XKCD_COLORS, to_rgb

    best, best_d = "", float("inf")
    for key, hexcode in XKCD_COLORS.items():
        name = key.removeprefix("xkcd:")
        if name in BIASED_NAMES:
            continue
        d = sum((255 * a - b) ** 2 for a, b in zip(to_rgb(hexcode), rgb, strict=True))
        if d < best_d:
            best, best_d = name, d
    return best


class BuildError(ValueError):
    """Bad input to the build: names the file, class or key and what was expected."""


def _load_coco(root: Path, split: str):
    from pycocotools.coco import COCO

    ann_file = root / "annotations" / f"instances_{split}.json"
    if not ann_file.is_file():
        raise BuildError(
            f"coco.root={str(root)!r}: annotation file {str(ann_file)!r} does not exist (expected the COCO "
            "2017 layout: annotations/instances_{train,val}2017.json beside train2017/ and val2017/)"
        )
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        try:
            return COCO(str(ann_file))
        except (json.JSONDecodeError, KeyError, TypeError, AssertionError) as e:
            raise BuildError(f"{ann_file}: not a COCO instances file ({type(e).__name__}: {e})") from e


def candidates(coco, class_name: str, min_area: float, ann_file: str) -> list[tuple[int, dict]]:
    """(image id, its largest non-crowd instance of the class) for every image whose largest instance has
    COCO area >= min_area, in image-id order."""
    cat_ids = coco.getCatIds(catNms=[class_name])
    if not cat_ids:
        raise BuildError(f"{ann_file}: no category named {class_name!r}")
    out = []
    for img_id in sorted(coco.getImgIds(catIds=cat_ids)):
        anns = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=img_id, catIds=cat_ids)) if not a["iscrowd"]]
        if anns:
            largest = max(anns, key=lambda a: (a["area"], -a["id"]))
            if largest["area"] >= min_area:
                out.append((img_id, largest))
    return out


def composite(image_path: Path, coco, ann: dict, rgb, size: int, field_scale: float) -> np.ndarray:
    """The instance's pixels on a uniform colour field (colour * field_scale), resized to size x size."""
    from PIL import Image

    with Image.open(image_path) as im:
        im = im.convert("RGB")
        info = coco.loadImgs(ann["image_id"])[0]
        if im.size != (info["width"], info["height"]):
            raise OSError(f"size {im.size} differs from the annotation's {(info['width'], info['height'])}")
        pixels = np.asarray(im.resize((size, size), Image.BILINEAR), dtype=np.float32)
    mask = coco.annToMask(ann)
    mask = np.asarray(Image.fromarray(mask * 255).resize((size, size), Image.NEAREST)) > 127
    colour_field = np.array(rgb, np.float32) * field_scale
    out = np.where(mask[..., None], pixels, colour_field)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _colour_plan(cfg: BuildConfig, ci: int, split: str, n: int, rng, randoms) -> list[tuple[tuple, str]]:
    own = BIASED_RGB[ci]
    if split == "id_test":
        return [(own, "biased")] * n
    if split == "ood_test":
        others = [c for j, c in enumerate(BIASED_RGB) if j != ci]
        return [(others[k], "other_biased") for k in rng.integers(0, len(others), n)]
    biased = rng.random(n) < cfg.confounder_strength
    picks = rng.integers(0, len(randoms), n)
    return [(own, "biased") if b else (randoms[k], "random") for b, k in zip(biased, picks, strict=True)]


def _params(cfg: BuildConfig) -> dict:
    d = asdict(cfg)
    d.pop("out")
    d["coco"] = {k: v for k, v in d["coco"].items() if k != "root"}
    return d


def _write_csv(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def build(cfg: BuildConfig) -> Path:
    """Build the dataset into cfg.out; returns the manifest path. A finished build (manifest.csv present)
    is never overwritten: the same parameters return it as it is, other parameters are an error."""
    from PIL import Image

    out = Path(cfg.out).expanduser()
    manifest = out / "manifest.csv"
    info_file = out / "build.json"
    params = _params(cfg)
    if manifest.exists():
        done = json.loads(info_file.read_text()).get("params") if info_file.is_file() else None
        if done == params:
            print(f"{manifest}: already built with these parameters; nothing to do")
            return manifest
        raise BuildError(
            f"out={str(out)!r} already holds a finished build ({manifest.name}) with other parameters "
            f"({info_file.name}: {done}); choose another out= or delete that folder"
        )
    for key in ("n_train", "n_id_test", "n_ood_test", "image_size", "n_random_colours"):
        if getattr(cfg, key) < (0 if key.startswith("n_") and key != "n_random_colours" else 1):
            raise BuildError(f"{key}={getattr(cfg, key)} must be positive")
    if not 0 <= cfg.confounder_strength <= 1:
        raise BuildError(f"confounder_strength={cfg.confounder_strength} must be in [0, 1]")
    root = Path(cfg.coco.root).expanduser()
    if not root.is_dir():
        raise BuildError(f"coco.root={str(root)!r} is not a folder")
    randoms = random_colours(cfg.n_random_colours, cfg.seed)
    sources = {"train": cfg.coco.train_split, "id_test": cfg.coco.test_split, "ood_test": cfg.coco.test_split}
    cocos = {s: _load_coco(root, s) for s in sorted(set(sources.values()))}
    need = {"train": cfg.n_train, "id_test": cfg.n_id_test, "ood_test": cfg.n_ood_test}
    all_pools = []
    for ci, name in enumerate(CLASSES):  # every class is checked before any image is written
        pools = {}
        for coco_split in sorted(set(sources.values())):
            ann_file = str(root / "annotations" / f"instances_{coco_split}.json")
            cands = candidates(cocos[coco_split], name, cfg.min_area, ann_file)
            wanted = sum(need[s] for s in SPLITS if sources[s] == coco_split)
            if len(cands) < wanted:
                raise BuildError(
                    f"class {name!r}: {ann_file} has {len(cands)} images whose largest {name} instance has "
                    f"area >= min_area={cfg.min_area:g}, fewer than the {wanted} needed from {coco_split} "
                    f"(n_train={cfg.n_train}, n_id_test={cfg.n_id_test}, n_ood_test={cfg.n_ood_test}); "
                    "lower the counts or min_area"
                )
            rng = np.random.default_rng([cfg.seed, ci, 1 if coco_split == cfg.coco.train_split else 2])
            pools[coco_split] = [cands[k] for k in rng.permutation(len(cands))]
        all_pools.append(pools)
    rows: list[dict] = []
    skipped: list[dict] = []
    for ci, name in enumerate(CLASSES):
        pools = all_pools[ci]
        for split in SPLITS:
            coco_split, coco = sources[split], cocos[sources[split]]
            rng = np.random.default_rng([cfg.seed, ci, SPLITS.index(split) + 10])
            plan = _colour_plan(cfg, ci, split, need[split], rng, randoms)
            folder = out / split / name
            folder.mkdir(parents=True, exist_ok=True)
            done = 0
            pool = pools[coco_split]
            while done < need[split]:
                if not pool:
                    raise BuildError(
                        f"class {name!r}: {coco_split} ran out of qualifying images for {split} after "
                        f"skipping {len(skipped)} unreadable ones (listed above); lower the counts or fix "
                        "the images"
                    )
                img_id, ann = pool.pop(0)
                file_name = coco.loadImgs(img_id)[0]["file_name"]
                image_path = root / coco_split / file_name
                rgb, kind = plan[done]
                try:
                    pixels = composite(image_path, coco, ann, rgb, cfg.image_size, cfg.field_scale)
                except (OSError, ValueError, SyntaxError) as e:  # PIL: missing, truncated, not an image
                    skipped.append({"path": str(image_path), "reason": f"{type(e).__name__}: {e}"})
                    print(f"skipped unreadable image {image_path}: {e}", file=sys.stderr)
                    continue
                rel = Path(split) / name / f"{done:05d}.png"
                Image.fromarray(pixels).save(out / rel)
                cname = colour_name(rgb)
                rows.append(
                    {
                        "path": rel.as_posix(),
                        "split": split,
                        "label": ci,
                        "class_name": name,
                        "colour_rgb": ",".join(map(str, rgb)),
                        "colour_name": cname,
                        "caption_obj": caption("obj", name, cname),
                        "caption_objbkg": caption("objbkg", name, cname),
                        "colour_kind": kind,
                        "coco_split": coco_split,
                        "coco_image_id": img_id,
                        "coco_ann_id": ann["id"],
                    }
                )
                done += 1
    for split in SPLITS:
        _write_csv(out / f"{split}.csv", [r for r in rows if r["split"] == split])
    info = {
        "params": params,
        "coco_root": str(root),
        "classes": list(CLASSES),
        "biased_colours": [
            {"class_name": c, "rgb": list(rgb), "name": n}
            for c, rgb, n in zip(CLASSES, BIASED_RGB, BIASED_NAMES, strict=True)
        ],
        "random_colours": [{"rgb": list(c), "name": colour_name(c)} for c in randoms],
        "skipped": skipped,
        "n_images": len(rows),
    }
    info_file.write_text(json.dumps(info, indent=1))
    _write_csv(manifest, rows)  # last: its presence marks a finished build
    print(f"wrote {len(rows)} images, {manifest} (skipped {len(skipped)} unreadable)")
    return manifest


# ---------------------------------------------------------------------------------------------------------
# A generated COCO-format folder: tiny images with polygon and RLE masks of simple shapes (tests, demo).

COCO_CATEGORY_IDS = {
    "airplane": 5,
    "bus": 6,
    "train": 7,
    "truck": 8,
    "boat": 9,
    "bird": 16,
    "dog": 18,
    "horse": 19,
    "zebra": 24,
}


def _polygon(ci: int, cx: float, cy: float, r: float) -> list[float]:
    """A regular polygon with ci + 3 corners: each class has its own shape."""
    k = ci + 3
    angles = np.linspace(0, 2 * np.pi, k, endpoint=False) + 0.3 * ci
    return [float(v) for a in angles for v in (cx + r * np.cos(a), cy + r * np.sin(a))]


def make_fixture(
    root: str | Path, n_per_class: int = 6, n_val: int = 2, size: int = 240, seed: int = 0
) -> Path:
    """Write a COCO 2017-layout folder: per class n_per_class train2017 and n_val val2017 JPEGs holding one
    large instance (area > 10000; a class-specific polygon, or for odd images an RLE mask), a small instance
    of the same class and a crowd region; plus, per class, one image whose only instance is too small."""
    from PIL import Image, ImageDraw
    from pycocotools import mask as mask_utils

    root = Path(root)
    rng = np.random.default_rng(seed)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    categories = [{"id": i, "name": n, "supercategory": "thing"} for n, i in COCO_CATEGORY_IDS.items()]
    img_id, ann_id = 1, 1
    for split, n in (("train2017", n_per_class), ("val2017", n_val)):
        (root / split).mkdir(exist_ok=True)
        images, anns = [], []
        for ci, name in enumerate(CLASSES):
            for k in range(n + 1):
                small_only = k == n
                canvas = rng.integers(0, 256, (size, size, 3), np.uint8)  # cluttered "photo"
                im = Image.fromarray(canvas)
                draw = ImageDraw.Draw(im)
                shade = (40 + 20 * ci, 200 - 15 * ci, 90 + 10 * ci)
                objs = [(size * 0.12, False)] if small_only else [(size * 0.42, True), (size * 0.1, False)]
                for r, big in objs:
                    cx, cy = (size / 2, size / 2) if big else (size * 0.15, size * 0.15)
                    poly = _polygon(ci, cx, cy, r)
                    draw.polygon(poly, fill=shade)
                    m = np.zeros((size, size), np.uint8)
                    mim = Image.fromarray(m)
                    ImageDraw.Draw(mim).polygon(poly, fill=1)
                    m = np.asarray(mim)
                    if big and k % 2:  # RLE (uncompressed counts, as COCO stores them) for odd images
                        rle = mask_utils.encode(np.asfortranarray(m))
                        seg = {"size": [size, size], "counts": _uncompressed_counts(m)}
                        area = float(mask_utils.area(rle))
                    else:
                        seg = [poly]
                        area = float(m.sum())
                    ys, xs = np.nonzero(m)
                    bbox = [float(xs.min()), float(ys.min()), float(np.ptp(xs) + 1), float(np.ptp(ys) + 1)]
                    anns.append(
                        {
                            "id": ann_id,
                            "image_id": img_id,
                            "category_id": COCO_CATEGORY_IDS[name],
                            "segmentation": seg,
                            "area": area,
                            "bbox": bbox,
                            "iscrowd": 0,
                        }
                    )
                    ann_id += 1
                # a crowd region larger than everything: must never be the chosen instance
                crowd = np.zeros((size, size), np.uint8)
                crowd[: size // 2 + 10, :] = 1
                anns.append(
                    {
                        "id": ann_id,
                        "image_id": img_id,
                        "category_id": COCO_CATEGORY_IDS[name],
                        "segmentation": {"size": [size, size], "counts": _uncompressed_counts(crowd)},
                        "area": float(crowd.sum()),
                        "bbox": [0.0, 0.0, float(size), float(size // 2 + 10)],
                        "iscrowd": 1,
                    }
                )
                ann_id += 1
                file_name = f"{img_id:012d}.jpg"
                im.save(root / split / file_name, quality=90)
                images.append({"id": img_id, "file_name": file_name, "width": size, "height": size})
                img_id += 1
        doc = {
            "info": {"description": "sober-clip generated COCO-format fixture"},
            "licenses": [],
            "images": images,
            "annotations": anns,
            "categories": categories,
        }
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    return root


def _uncompressed_counts(m: np.ndarray) -> list[int]:
    """COCO's uncompressed RLE: run lengths over the column-major flattened mask, starting with zeros."""
    flat = m.flatten(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    return ([0] + counts) if flat[0] == 1 else counts


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    usage = (
        "usage: python -m realdata.coloredcoco build coco.root=DIR out=DIR [n_train=800 n_id_test=100 "
        "n_ood_test=100 seed=0 ...]\n       python -m realdata.coloredcoco fixture OUT"
    )
    if argv[:1] == ["fixture"] and len(argv) == 2:
        root = make_fixture(argv[1])
        print(
            f"wrote a COCO-format fixture to {root}; build it with:\n  python -m realdata.coloredcoco build "
            f"coco.root={root} out={root}/built n_train=4 n_id_test=1 n_ood_test=1"
        )
        return 0
    if argv[:1] != ["build"] or any(a in ("-h", "--help") for a in argv):
        print(usage + "\n\nkeys (defaults):\n" + OmegaConf.to_yaml(OmegaConf.structured(BuildConfig)))
        return 0 if any(a in ("-h", "--help") for a in argv) else 2
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(BuildConfig), OmegaConf.from_dotlist(argv[1:]))
        for key in ("coco.root", "out"):
            if OmegaConf.is_missing(cfg, key):
                raise BuildError(f"{key} is required ({usage.splitlines()[0]})")
        build(OmegaConf.to_object(cfg))
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # omegaconf: a misspelt key or a wrong type, named by omegaconf
        if type(e).__module__.startswith("omegaconf"):
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
