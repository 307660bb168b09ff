"""``realdata.evaluate_model``: a CLIP already in memory (fine-tuned, edited, ...) on CounterAnimal.

    import open_clip, realdata
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained="laion2b_s34b_b79k")
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    doc = realdata.evaluate_model(model, preprocess, tokenizer, "/data/CounterAnimal", out_dir="out/mine")
    doc["metrics"]["acc_common"], doc["metrics"]["acc_counter"]

The model runs through the evaluator's own path (``realdata.evaluate.evaluate``: the same label spaces,
prompts, metrics, results.json, predictions.csv, caches): this module is its model family (HEAD, identity,
build), handing the evaluator the model object instead of building one. Its identity, the cache key of its
features and text classifier, is a digest of its parameters, its preprocessing and its tokenizer, so a
changed model never reads another's cached features.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from theory.runrecord import expect

HEAD = "zero_shot"
#: In-memory models by the digest that names them in the config (model.options.digest).
_MODELS: dict[str, tuple] = {}


def digest(model, preprocess, tokenizer) -> str:
    """SHA-256 of every parameter and buffer (name, dtype, shape, bytes), the preprocessing and tokenizer."""
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}:{t.dtype}:{tuple(tensor.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    h.update(repr(preprocess).encode())
    h.update(f"{type(tokenizer).__module__}.{type(tokenizer).__qualname__}".encode())
    h.update(repr(getattr(tokenizer, "context_length", None)).encode())
    return h.hexdigest()[:16]


def identity(mcfg, seed: int) -> dict:
    key = mcfg.options["digest"]
    expect(key in _MODELS, "model.options.digest", key, "the digest of a model in memory (evaluate_model)")
    return {"name": mcfg.name, "weights": f"in-memory:{key}"}


def build(mcfg, identity: dict, device, seed: int, key: str = "model"):
    from realdata.families.open_clip import built_from

    model, preprocess, tokenizer = _MODELS[mcfg.options["digest"]]
    return built_from(model.eval(), preprocess, tokenizer, device)


def evaluate_model(
    model,
    preprocess,
    tokenizer,
    data_root: str | Path,
    *,
    name: str = "in-memory",
    out_dir: str | Path | None = None,
    label_space: str = "1v1000",
    prompts: str = "single",
    classnames: str = "synset",
    overrides: tuple[str, ...] | list[str] = (),
) -> dict:
    """Evaluate ``model`` (with open_clip's ``encode_image``/``encode_text``), its image ``preprocess`` and
    ``tokenizer`` on the CounterAnimal copy at ``data_root``; returns the results document, also written
    to ``out_dir`` (default ``results/realdata/<label_space>_<prompts>/<name>_in-memory/<time>``).

    ``overrides``: any other ``python -m realdata`` keys (``batch_size=32``, ``num_workers=0``,
    ``cache_dir=...``, ``logger=tensorboard``); ``device`` defaults to the model's own."""
    import datetime

    from hydra import compose

    from realdata.config import register, run_name
    from realdata.evaluate import evaluate
    from theory.runrecord.configs import initialize

    key = digest(model, preprocess, tokenizer)
    _MODELS[key] = (model, preprocess, tokenizer)
    device = next(iter(model.parameters())).device.type
    register()
    with initialize("realdata"):
        cfg = compose(
            "realdata",
            overrides=[
                f"data.root={data_root}",
                f"model.name={name}",
                "model.pretrained=",
                "model.config_file=null",
                f"model.family={__name__}",
                "model.kind=null",
                f"++model.options.digest={key}",
                f"label_space={label_space}",
                f"prompts={prompts}",
                f"classnames={classnames}",
                f"device={device}",
                *overrides,
            ],
        )
    if out_dir is None:
        stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        out_dir = Path("results/realdata") / f"{label_space}_{prompts}" / run_name(name, "in-memory") / stamp
    return evaluate(cfg, out_dir)
