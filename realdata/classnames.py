"""The ImageNet class names behind the prompt "A photo of {}.": two lists, chosen by `classnames`.

- ``synset`` (default): the full WordNet synset string of each ILSVRC-2012 class, all lemmas joined by ", "
  ("water ouzel, dipper", "tench, Tinca tinca"), as in ImageNet's LOC_synset_mapping.txt and the
  ``imagenet_names.txt`` that some copies of CounterAnimal ship beside the class folders. Shipped as
  realdata/reference/imagenet_synset_names.csv (index, WordNet id, names), written from
  ``timm.data.ImageNetInfo`` (timm's imagenet_synset_to_lemma.txt) by ``python -m realdata.classnames``.
- ``openai``: ``open_clip.IMAGENET_CLASSNAMES``, the cleaned names of OpenAI's CLIP notebook
  ("American dipper", "tench").

Why synset is the default (the evidence for the published tables): docs/realdata.md section 4.
"""

from __future__ import annotations

import csv
import sys
from functools import cache

from realdata.config import CLASSNAME_LISTS, PACKAGE_DIR
from theory.runrecord import expect

SYNSET_FILE = PACKAGE_DIR / "reference" / "imagenet_synset_names.csv"
SOURCES = {
    "synset": "WordNet synset lemmas of the ILSVRC-2012 classes, comma-joined (LOC_synset_mapping.txt; "
    "realdata/reference/imagenet_synset_names.csv, written from timm.data.ImageNetInfo)",
    "openai": "open_clip.IMAGENET_CLASSNAMES (OpenAI's cleaned ImageNet names)",
}


@cache
def _synset_rows() -> tuple[tuple[int, str, str], ...]:
    with open(SYNSET_FILE, newline="") as f:
        rows = tuple((int(r["imagenet_index"]), r["wnid"], r["names"]) for r in csv.DictReader(f))
    if [r[0] for r in rows] != list(range(1000)):
        raise ValueError(f"{SYNSET_FILE} must list ImageNet indices 0..999 in order")
    return rows


def imagenet_classnames(which: str = "synset") -> tuple[str, ...]:
    """The 1000 ImageNet class names of the chosen list, in ImageNet index order."""
    expect(which in CLASSNAME_LISTS, "classnames", which, f"one of {list(CLASSNAME_LISTS)}")
    if which == "openai":
        from open_clip import IMAGENET_CLASSNAMES

        return tuple(IMAGENET_CLASSNAMES)
    return tuple(names for _, _, names in _synset_rows())


def synset_rows_from_timm() -> list[tuple[int, str, str]]:
    """(index, WordNet id, lemmas) from timm's ImageNet metadata: the source of the shipped file."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [(i, info.index_to_label_name(i), info.index_to_description(i)) for i in range(info.num_classes())]


def main() -> int:
    with open(SYNSET_FILE, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["imagenet_index", "wnid", "names"])
        w.writerows(synset_rows_from_timm())
    print(f"wrote {SYNSET_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
