"""Generated CounterAnimal-layout folders and tiny checkpoints for tests and benchmarks (no download).

python -m realdata.fixture OUT [--classes N]    # OUT/data/LAION-final/... and OUT/tiny-clip.pt

The command's tiny CLIP is fitted to the data it writes (:func:`fit_tiny_clip`): right on most common images
and on few counter ones, as a model leaning on the background would be, so that the commands it prints and
the figures drawn from them show a drop. Everything runs offline; the printed commands set HF_HUB_OFFLINE=1,
so that a weights download they would need fails at once instead of waiting for a network.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from realdata.dataset import reference_classes

TINY_CONFIG = Path(__file__).parent / "model_configs" / "tiny-clip.json"


def make_counteranimal(
    root: str | Path,
    n_classes: int = 3,
    n_common: int | list[int] = 3,
    n_counter: int | list[int] = 2,
    size: int = 40,
    wrap: str | None = None,
    corrupt: bool = True,
    stray: bool = True,
    seed: int = 0,
    photos: bool = False,
) -> Path:
    """Write JPEG/PNG images in the released layout, for the first `n_classes` reference classes.

    Images are random pixels, or with `photos` crops of the two real photographs scikit-learn bundles
    (`sklearn.datasets.load_sample_images`). Extensions alternate in case (.jpg, .JPG, .jpeg, .png); with
    `corrupt` one .jpg holds garbage bytes, with `stray` a notes.txt sits among the images. Returns the folder
    holding the class folders.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    sources = load_photos() if photos else None
    base = Path(root) / wrap if wrap else Path(root)
    classes = reference_classes()[:n_classes]
    exts = (".jpg", ".JPG", ".jpeg", ".png")
    for ci, c in enumerate(classes):
        for group, bg, n in (
            ("common", c.common_background, n_common),
            ("counter", c.counter_background, n_counter),
        ):
            count = n[ci] if isinstance(n, list) else n
            folder = base / f"{c.imagenet_index} {c.class_name}" / f"{group}-{bg}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                shape = (size, size + 8 * i % 17)
                pixels = (
                    photo_crop(sources, rng, shape) if photos else rng.integers(0, 256, (*shape, 3), np.uint8)
                )
                ext = exts[(i + ci) % len(exts)]
                Image.fromarray(pixels).save(
                    folder / f"img_{i:03d}{ext}", format="PNG" if ext == ".png" else "JPEG"
                )
    first = (
        base
        / f"{classes[0].imagenet_index} {classes[0].class_name}"
        / f"counter-{classes[0].counter_background}"
    )
    if corrupt:
        (first / "broken.jpg").write_bytes(b"this is not a jpeg" * 10)
    if stray:
        (first / "notes.txt").write_text("not an image")
        (base / "imagenet_names.txt").write_text("some copies ship this beside the class folders\n")
    return base


def load_photos() -> list[np.ndarray]:
    """The two real photographs bundled with scikit-learn (china.jpg, flower.jpg; 427 x 640 RGB)."""
    from sklearn.datasets import load_sample_images

    return list(load_sample_images().images)


def photo_crop(photos: list[np.ndarray], rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A random crop of one photograph, resized to shape (h, w)."""
    from PIL import Image

    photo = photos[int(rng.integers(len(photos)))]
    h = int(rng.integers(photo.shape[0] // 3, photo.shape[0] + 1))
    w = int(rng.integers(photo.shape[1] // 3, photo.shape[1] + 1))
    y, x = int(rng.integers(photo.shape[0] - h + 1)), int(rng.integers(photo.shape[1] - w + 1))
    crop = Image.fromarray(photo[y : y + h, x : x + w])
    return np.asarray(crop.resize((shape[1], shape[0]), Image.BILINEAR))


def save_tiny_clip(path: str | Path, seed: int = 0) -> Path:
    """A random-weight tiny open_clip model (model_configs/tiny-clip.json) saved as a state_dict file."""
    import open_clip
    import torch

    from realdata.models import register_config_file

    register_config_file(TINY_CONFIG, "tiny-clip")
    torch.manual_seed(seed)
    model = open_clip.create_model("tiny-clip", pretrained=None)
    path = Path(path)
    torch.save(model.state_dict(), path)
    return path


def intended_correct(group: str, i: int, class_ordinal: int) -> bool:
    """Whether the fixture's fitted model is meant to be right on image ``i`` of a class's ``group``: all
    but about one common image in five, about one counter image in four."""
    if group == "common":
        return (i + class_ordinal) % 5 != 4
    return (i + class_ordinal) % 4 == 0


def fit_tiny_clip(path: str | Path, data_root: str | Path, seed: int = 0) -> dict:
    """Save a tiny open_clip model whose image projection is fitted (least squares) so that each image of
    the fixture at ``data_root`` embeds onto its intended class's zero-shot text embedding ("A photo of
    {synset}."): its own class where :func:`intended_correct`, else the next reference class. Exact while
    the images are no more than the image tower's width (32: 3 classes of 5 images); returns
    ``{relative path: intended label}``."""
    import open_clip
    import torch

    from realdata.classnames import imagenet_classnames
    from realdata.dataset import scan, to_rgb
    from realdata.models import register_config_file, templates

    register_config_file(TINY_CONFIG, "tiny-clip")
    torch.manual_seed(seed)
    model, _, preprocess = open_clip.create_model_and_transforms("tiny-clip", pretrained=None)
    model.eval()
    tokenizer = open_clip.get_tokenizer("tiny-clip")
    data = scan(data_root)
    ring = [c.imagenet_index for c in reference_classes()]
    ordinal = {c: k for k, c in enumerate(sorted({r.label for r in data.records}))}
    position: dict[tuple[int, str], int] = {}
    images, intended = [], {}
    from PIL import Image

    for r in sorted(data.records, key=lambda r: r.path):
        try:
            with Image.open(data.root / r.path) as im:
                image = preprocess(to_rgb(im))
        except Exception:  # the fixture's corrupt file: the evaluator skips it too
            continue
        i = position[(r.label, r.group)] = position.get((r.label, r.group), -1) + 1
        right = intended_correct(r.group, i, ordinal[r.label])
        intended[r.path] = r.label if right else ring[(ring.index(r.label) + 1) % len(ring)]
        images.append(image)
    wanted = sorted(set(intended.values()))
    names = imagenet_classnames("synset")
    with torch.no_grad():  # the wanted columns of the evaluator's classifier (an exact fit beats all 1000)
        text = open_clip.build_zero_shot_classifier(
            model, tokenizer, [names[c] for c in wanted], templates("single"), device="cpu"
        )
        proj = model.visual.proj
        model.visual.proj = None  # the pooled image features, before the projection
        feats = model.visual(torch.stack(images))
        target = text[:, [wanted.index(c) for c in intended.values()]].T
        fitted = torch.linalg.lstsq(feats.double(), target.double()).solution.float()
        model.visual.proj = torch.nn.Parameter(fitted, requires_grad=proj.requires_grad)
    torch.save(model.state_dict(), Path(path))
    return intended


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m realdata.fixture",
        description="Write a generated CounterAnimal-layout folder and a tiny random-weight open_clip "
        "checkpoint, to try `python -m realdata` without the real data or weights.",
    )
    parser.add_argument("out", type=Path, help="folder to write data/ and tiny-clip.pt into")
    parser.add_argument("--classes", type=int, default=3, help="how many of the 45 classes (default 3)")
    args = parser.parse_args(argv)
    make_counteranimal(args.out / "data", n_classes=args.classes, wrap="LAION-final")
    ckpt = args.out / "tiny-clip.pt"
    fit_tiny_clip(ckpt, args.out / "data")
    run = f"HF_HUB_OFFLINE=1 python -m realdata data.root={args.out / 'data'} model=tiny"
    run += f" model.pretrained={ckpt}"
    run += " device=cpu num_workers=0"
    reference = f"one_vs_20.reference.name=tiny-clip one_vs_20.reference.pretrained={ckpt}"
    reference += f" one_vs_20.reference.config_file={TINY_CONFIG}"
    print(
        f"wrote {args.out / 'data'} and {ckpt} (a tiny CLIP fitted to be right on most common images and few "
        "counter ones); try:\n"
        f"  {run}\n"
        f"  {run} label_space=1v20 {reference}   # 1 vs 20, the labels ranked by the tiny model itself"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
