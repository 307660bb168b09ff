"""CounterAnimal on disk: find the class folders, list images per group, load them for a DataLoader.

Released layout (SPEC section 2):
    [LAION-final/]<imagenet index> <class name>/common-<background>/*.jpg
                                               /counter-<background>/*.jpg
The label is the integer before the first space of the class folder name.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

GROUPS = ("common", "counter")
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
CLASS_DIR_RE = re.compile(r"^(\d+) (.+)$")
GROUP_DIR_RE = re.compile(r"^(common|counter)-(.+)$")
REFERENCE_DIR = Path(__file__).parent / "reference"

EXPECTED_LAYOUT = (
    "<root>/<imagenet index> <class name>/common-<background>/*.jpg and "
    "<root>/<imagenet index> <class name>/counter-<background>/*.jpg "
    "(root may also be the folder one level above, e.g. the one holding LAION-final/)"
)


class DatasetLayoutError(ValueError):
    """The data root does not look like CounterAnimal."""


@dataclass(frozen=True)
class ImageRecord:
    path: str  # relative to the folder holding the class folders, with '/' separators
    group: str  # common | counter
    label: int  # ImageNet index
    class_name: str
    background: str
    size: int  # bytes, part of the image-list fingerprint


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass
class CounterAnimal:
    """The image list of one copy of CounterAnimal (no image is opened to build it)."""

    root: Path  # the folder holding the class folders
    records: list[ImageRecord]
    skipped: list[Skipped]  # files that are not images, found at listing time
    # folders that are neither classes (beside the class folders) nor groups (inside them)
    ignored: list[str] = field(default_factory=list)

    def fingerprint(self) -> str:
        """Hash of the sorted image list (path, group, label, size): keys the feature cache."""
        h = hashlib.sha256()
        for r in self.records:
            h.update(f"{r.path}\t{r.group}\t{r.label}\t{r.size}\n".encode())
        return h.hexdigest()

    def classes(self) -> dict[int, str]:
        return {r.label: r.class_name for r in self.records}

    def backgrounds(self) -> dict[tuple[int, str], set[str]]:
        out: dict[tuple[int, str], set[str]] = {}
        for r in self.records:
            out.setdefault((r.label, r.group), set()).add(r.background)
        return out


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and CLASS_DIR_RE.match(p.name))


def resolve_root(root: str | Path) -> Path:
    """Return the folder holding the class folders: `root` itself or its single sub-folder that does."""
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(
            f"CounterAnimal root {str(root)!r} does not exist; expected {EXPECTED_LAYOUT}"
        )
    if not root.is_dir():
        raise DatasetLayoutError(
            f"CounterAnimal root {str(root)!r} is not a folder; expected {EXPECTED_LAYOUT}"
        )
    if _class_dirs(root):
        return root
    inner = [p for p in sorted(root.iterdir()) if p.is_dir() and _class_dirs(p)]
    if len(inner) == 1:
        return inner[0]
    if len(inner) > 1:
        names = ", ".join(p.name for p in inner)
        raise DatasetLayoutError(
            f"{str(root)!r} holds several CounterAnimal copies ({names}); point data.root at one"
        )
    raise DatasetLayoutError(f"no class folders found in {str(root)!r}; expected {EXPECTED_LAYOUT}")


def scan(root: str | Path) -> CounterAnimal:
    """List every image of every class and group, sorted; non-image files are recorded as skipped."""
    base = resolve_root(root)
    records: list[ImageRecord] = []
    skipped: list[Skipped] = []
    ignored: list[str] = []
    # folders beside the class folders that are not classes (e.g. __MACOSX/ from unzipping): listed, not read
    ignored += [p.name for p in sorted(base.iterdir()) if p.is_dir() and not CLASS_DIR_RE.match(p.name)]
    for class_dir in _class_dirs(base):
        index, class_name = CLASS_DIR_RE.match(class_dir.name).groups()
        for entry in sorted(class_dir.iterdir()):
            if entry.is_file():  # outside common-/counter-: no group, so it cannot be evaluated
                skipped.append(Skipped(entry.relative_to(base).as_posix(), "not inside a group folder"))
        for group_dir in sorted(p for p in class_dir.iterdir() if p.is_dir()):
            m = GROUP_DIR_RE.match(group_dir.name)
            if m is None:
                ignored.append(group_dir.relative_to(base).as_posix())
                continue
            group, background = m.groups()
            for f in sorted(group_dir.rglob("*")):
                if not f.is_file():
                    continue
                rel = f.relative_to(base).as_posix()
                if f.suffix.lower() not in IMAGE_EXTENSIONS:
                    skipped.append(Skipped(rel, f"not an image file (extension {f.suffix!r})"))
                    continue
                records.append(ImageRecord(rel, group, int(index), class_name, background, f.stat().st_size))
    if not records:
        raise DatasetLayoutError(f"no images found under {str(base)!r}; expected {EXPECTED_LAYOUT}")
    return CounterAnimal(base, records, skipped, ignored)


@dataclass(frozen=True)
class ReferenceClass:
    class_name: str
    imagenet_index: int
    common_background: str
    n_common: int
    counter_background: str
    n_counter: int


def reference_classes() -> list[ReferenceClass]:
    """The paper's 45 classes (realdata/reference/counteranimal_classes.csv)."""
    with open(REFERENCE_DIR / "counteranimal_classes.csv", newline="") as f:
        return [
            ReferenceClass(
                r["class_name"],
                int(r["imagenet_index"]),
                r["common_background"],
                int(r["n_common"]),
                r["counter_background"],
                int(r["n_counter"]),
            )
            for r in csv.DictReader(f)
        ]


class ImageFiles:
    """torch-style map dataset over image records: (position, tensor or None, error or None)."""

    def __init__(self, root: Path, paths: list[str], transform, positions: list[int] | None = None):
        self.root = Path(root)
        self.paths = paths
        self.transform = transform
        self.positions = list(range(len(paths))) if positions is None else positions

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int):
        from PIL import Image

        pos = self.positions[i]
        try:
            with Image.open(self.root / self.paths[pos]) as im:
                image = im.convert("RGB")
        except Exception as e:  # corrupt, truncated or unreadable: skipped and listed, never fatal
            return pos, None, f"unreadable image ({type(e).__name__}: {e})"
        return pos, self.transform(image), None


def collate(batch):
    """Stack the readable images; keep positions and errors of the others."""
    import torch

    ok = [(pos, x) for pos, x, err in batch if err is None]
    failed = [(pos, err) for pos, x, err in batch if err is not None]
    images = torch.stack([x for _, x in ok]) if ok else None
    return [pos for pos, _ in ok], images, failed
