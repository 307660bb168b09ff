"""Model families: one module per family, registered by name, selected with ``model.family``.

A family module (like CLIP_benchmark's loaders, which each return model, transform and tokenizer) defines:

- ``HEAD``: how its images become scores over the ImageNet labels:
  ``"zero_shot"`` (image embeddings against a text classifier built from class names and prompt templates),
  ``"logits"`` (a fixed 1000-way ImageNet head) or ``"scorer"`` (a score per candidate label and image,
  e.g. a multimodal LLM's answer loss);
- ``identity(mcfg, seed) -> dict``: what the model is (``name``, ``weights`` and anything that changes its
  outputs), computed without building it; it keys the feature cache and names the model in results.json;
- ``build(mcfg, identity, device, seed, key) -> Built``: the model pieces the evaluator uses (``key``: the
  config key the model came from, for error messages).

Optionally ``protocol(mcfg) -> dict`` (recorded in results.json) and ``memo_paths(mcfg) -> list[str]`` (files
whose size and mtime decide whether a remembered identity is still valid; default: ``model.pretrained``,
``model.config_file`` and ``model.name`` as paths).

``model.family`` is one of ``FAMILIES`` or the (dotted) name of an importable module of yours (``my_family``),
so a new family needs no edit to this package: your module plus a YAML in a config folder of yours
(``hydra.searchpath``). A built-in family is its module plus one line in ``FAMILIES``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType

from theory.runrecord import expect

FAMILIES = {
    "open_clip": "realdata.families.open_clip",
    "torchvision": "realdata.families.torchvision",
    "timm": "realdata.families.timm",
    "hf_clip": "realdata.families.hf_clip",
    "mllm": "realdata.families.mllm",
}
# model.kind, the key before issue 20, still selects a family
KIND_ALIASES = {"clip": "open_clip", "imagenet": "torchvision"}
HEADS = ("zero_shot", "logits", "scorer")
DEFAULT_FAMILY = "open_clip"


@dataclass
class Built:
    """A built model. ``encode(images)`` gives a (B, D) image embedding (zero_shot) or (B, 1000) logits
    (logits). Zero-shot families give ``text_classifier(classnames, templates)`` -> (D, C) unit columns;
    scorers give ``score(images, names_BxK)`` -> (B, K), higher is better."""

    model: object
    transform: Callable
    encode: Callable | None = None
    text_classifier: Callable[[Sequence[str], Sequence[str]], object] | None = None
    score: Callable | None = None
    tokenizer: object = None


def family_name(mcfg, key: str = "model") -> str:
    """The family a model config selects: ``family``, else the ``kind`` alias, else open_clip."""
    family = mcfg.get("family") or None
    kind = mcfg.get("kind") or None
    aliases = ", ".join(f"{k} = {v}" for k, v in KIND_ALIASES.items())
    expect(
        kind is None or kind in KIND_ALIASES,
        f"{key}.kind",
        kind,
        f"one of {list(KIND_ALIASES)} (kept as an alias of {key}.family: {aliases}); use {key}.family",
    )
    if family and kind and KIND_ALIASES[kind] != family:
        raise ValueError(
            f"{key}.family={family!r} and {key}.kind={kind!r} (= family {KIND_ALIASES[kind]!r}) disagree; "
            f"set only {key}.family"
        )
    return family or (KIND_ALIASES[kind] if kind else DEFAULT_FAMILY)


def load_family(name: str, key: str = "model") -> ModuleType:
    """The family module: a registered name or the dotted name of any importable module."""
    module_name = FAMILIES.get(name, name)
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        expect(False, f"{key}.family", name, f"one of {list(FAMILIES)} or the dotted name of a module ({e})")
    missing = [a for a in ("HEAD", "identity", "build") if not hasattr(module, a)]
    expect(
        not missing,
        f"{key}.family",
        name,
        f"a family module: HEAD, identity(mcfg, seed) and build(mcfg, identity, device, seed, key) "
        f"({module_name!r} lacks {', '.join(missing)})",
    )
    expect(
        module.HEAD in HEADS,
        f"{key}.family",
        name,
        f"a module whose HEAD is one of {list(HEADS)}, not {module.HEAD!r}",
    )
    return module


def is_zero_shot(head: str) -> bool:
    """Zero-shot: the model never saw the labels as training classes (CLIPs, multimodal LLMs)."""
    return head != "logits"
