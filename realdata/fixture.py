"""Generated CounterAnimal-layout folders and tiny checkpoints for tests and benchmarks (no download).

python -m realdata.fixture OUT [--classes N]    # OUT/data/LAION-final/... and OUT/tiny-clip.pt
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
    ckpt = save_tiny_clip(args.out / "tiny-clip.pt")
    print(
        f"wrote {args.out / 'data'} and {ckpt}; try:\n"
        f"  python -m realdata data.root={args.out / 'data'} model=tiny model.pretrained={ckpt} device=cpu"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
