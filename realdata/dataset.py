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
import stat
from dataclasses import dataclass, field
from pathlib import Path

GROUPS = ("common", "counter")
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
# ASCII digits only: Python's \d also matches full-width digits, and int() reads them ('３９７' -> 397)
CLASS_DIR_RE = re.compile(r"^([0-9]+) (.+)$")
GROUP_DIR_RE = re.compile(r"^(common|counter)-(.+)$", re.IGNORECASE)  # 'Counter-snow' is a counter group
N_IMAGENET = 1000
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
    # (size, mtime_ns, ctime_ns, inode): changes whenever the file's content does (see file_signature)
    signature: tuple = ()


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass
class CounterAnimal:
    """The image list of one copy of CounterAnimal (no image is opened to build it)."""

    root: Path  # the folder holding the class folders
    records: list[ImageRecord]
    skipped: list[Skipped]  # files that are not images, or outside a group, found at listing time
    # folders that are not read, with why: not a class (beside the class folders), not a group (inside one),
    # a class index outside 0..999, a group that resolves outside its class folder
    ignored: list[Skipped] = field(default_factory=list)

    def fingerprint(self) -> str:
        """Hash of the sorted image list (path, group, label and each file's signature): keys the feature
        cache and the 1v20 sets, so an image rewritten in place (even with its size and mtime restored, or
        repaired after it was unreadable) gets new features."""
        h = hashlib.sha256()
        for r in self.records:
            h.update(f"{r.path}\t{r.group}\t{r.label}\t{r.size}\t{r.signature}\n".encode())
        return h.hexdigest()

    def classes(self) -> dict[int, str]:
        return {r.label: r.class_name for r in self.records}

    def backgrounds(self) -> dict[tuple[int, str], set[str]]:
        out: dict[tuple[int, str], set[str]] = {}
        for r in self.records:
            out.setdefault((r.label, r.group), set()).add(r.background)
        return out


def file_signature(path: str | Path) -> tuple[int, int, int, int]:
    """(size, mtime_ns, ctime_ns, inode) of a file: a cheap stand-in for its content that cannot be fooled
    by writing the same number of bytes and restoring the mtime: the kernel sets ctime to the current time
    on every write and on every utime() call, and no system call sets it to a chosen value."""
    st = Path(path).stat()
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _not_a_file(f: Path) -> str | None:
    """Why a path named like an image cannot be read as one (None: a regular file, or a folder)."""
    try:
        st = f.stat()
    except FileNotFoundError:
        return f"broken symbolic link (to {str(f.readlink())!r})" if f.is_symlink() else "vanished"
    except OSError as e:
        return f"cannot be read ({type(e).__name__}: {e})"
    if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
        return None
    kind = "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else "a socket or device file"
    return f"not a regular file: {kind}, which would block or never end when read"


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


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def scan(root: str | Path) -> CounterAnimal:
    """List every image of every class and group, sorted; what is not read is listed with the reason.

    Errors: a missing root, no class folders, two class folders with the same index, no image at all, or a
    group (common/counter) with no image in any class."""
    base = resolve_root(root)
    records: list[ImageRecord] = []
    skipped: list[Skipped] = []
    # folders beside the class folders that are not classes (e.g. __MACOSX/ from unzipping): listed, not read
    ignored = [
        Skipped(p.name, "not a class folder ('<imagenet index> <class name>')")
        for p in sorted(base.iterdir())
        if p.is_dir() and not CLASS_DIR_RE.match(p.name)
    ]
    by_index: dict[int, list[str]] = {}
    for class_dir in _class_dirs(base):
        by_index.setdefault(int(CLASS_DIR_RE.match(class_dir.name).group(1)), []).append(class_dir.name)
    duplicates = {i: names for i, names in by_index.items() if len(names) > 1}
    if duplicates:
        listed = "; ".join(f"{i}: {', '.join(map(repr, names))}" for i, names in sorted(duplicates.items()))
        raise DatasetLayoutError(
            f"several class folders under {str(base)!r} share an ImageNet index ({listed}); merge or remove "
            "them so that each index names one class"
        )
    for class_dir in _class_dirs(base):
        index, class_name = CLASS_DIR_RE.match(class_dir.name).groups()
        if not 0 <= int(index) < N_IMAGENET:
            ignored.append(
                Skipped(class_dir.name, f"ImageNet index {int(index)} is outside 0..{N_IMAGENET - 1}")
            )
            continue
        for entry in sorted(class_dir.iterdir()):
            if not entry.is_dir():  # outside common-/counter-: no group, so it cannot be evaluated
                why = _not_a_file(entry)
                reason = "not inside a group folder" + (f"; {why}" if why else "")
                skipped.append(Skipped(entry.relative_to(base).as_posix(), reason))
        for group_dir in sorted(p for p in class_dir.iterdir() if p.is_dir()):
            rel_dir = group_dir.relative_to(base).as_posix()
            m = GROUP_DIR_RE.match(group_dir.name)
            if m is None:
                ignored.append(
                    Skipped(rel_dir, "not a group folder (common-<background> or counter-<background>)")
                )
                continue
            if not _inside(group_dir, class_dir):
                ignored.append(
                    Skipped(rel_dir, f"resolves outside its class folder (to {str(group_dir.resolve())!r})")
                )
                continue
            group, background = m.group(1).lower(), m.group(2)
            for f in sorted(group_dir.rglob("*")):
                why = _not_a_file(f)
                if why is None and not f.is_file():  # a sub-folder: its files are listed by rglob
                    continue
                rel = f.relative_to(base).as_posix()
                if why is not None:
                    skipped.append(Skipped(rel, why))
                elif f.suffix.lower() not in IMAGE_EXTENSIONS:
                    skipped.append(Skipped(rel, f"not an image file (extension {f.suffix!r})"))
                elif not _inside(f, class_dir):
                    skipped.append(
                        Skipped(rel, f"resolves outside its class folder (to {str(f.resolve())!r})")
                    )
                else:
                    sig = file_signature(f)
                    records.append(ImageRecord(rel, group, int(index), class_name, background, sig[0], sig))
    if not records:
        raise DatasetLayoutError(f"no images found under {str(base)!r}; expected {EXPECTED_LAYOUT}")
    require_both_groups([r.group for r in records], f"image files listed under {str(base)!r}")
    return CounterAnimal(base, records, skipped, ignored)


def require_both_groups(groups, what: str) -> None:
    """A run needs images in both groups: the drop compares them."""
    for g in GROUPS:
        if g not in set(groups):
            raise DatasetLayoutError(
                f"no {g} images among the {what}: every {g}-<background> folder is empty, missing or "
                f"unreadable, so there is no {g} accuracy to compare"
            )


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
                image = to_rgb(im)
        except UnsupportedImage as e:  # read, but with no known intensity scale: listed, never guessed
            return pos, None, str(e)
        except Exception as e:  # corrupt, truncated or unreadable: skipped and listed, never fatal
            return pos, None, f"unreadable image ({type(e).__name__}: {e})"
        return pos, self.transform(image), None


class UnsupportedImage(ValueError):
    """An image whose pixel values have no known mapping to 8-bit RGB."""


def to_rgb(im):
    """8-bit RGB of a PIL image, with high-bit-depth modes scaled, not clipped.

    PIL's ``convert("RGB")`` clips 16-bit and float pixels to 0..255, so a 16-bit PNG comes out nearly white
    and a float TIFF in [0, 1] black. 16-bit grey is scaled by 255/65535; a float image in [0, 1] by 255; a
    float image outside [0, 1] or a 32-bit integer image (other than a PNG's 16-bit grey) has no known scale
    and is refused (the caller lists it as skipped)."""
    import numpy as np
    from PIL import Image

    if im.mode.startswith("I;16") or (im.mode == "I" and im.format == "PNG"):
        a = np.asarray(im, dtype=np.float64) / 65535.0
    elif im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if not (np.isfinite(a).all() and lo >= 0.0 and hi <= 1.0):
            raise UnsupportedImage(
                f"float image (mode F) with values in [{lo:g}, {hi:g}], outside [0, 1]: "
                "no known scale to 8 bits"
            )
    elif im.mode == "I":
        raise UnsupportedImage(f"32-bit integer image (mode I, {im.format}): no known scale to 8 bits")
    else:
        return im.convert("RGB")
    return Image.fromarray(np.round(a * 255.0).astype(np.uint8), "L").convert("RGB")


def collate(batch):
    """Stack the readable images; keep positions and errors of the others."""
    import torch

    ok = [(pos, x) for pos, x, err in batch if err is None]
    failed = [(pos, err) for pos, x, err in batch if err is not None]
    images = torch.stack([x for _, x in ok]) if ok else None
    return [pos for pos, _ in ok], images, failed
