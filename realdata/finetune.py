"""Fine-tune a pretrained open_clip model on ColoredCOCO (paper Table 7): CLIP or SigLIP loss, or supervised.

    python -m realdata.finetune data.manifest=OUT/manifest.csv              # RN50 OpenAI, CLIP loss, obj
    python -m realdata.finetune data.manifest=... objective=clip captions=objbkg train.lr=1e-5
    python -m realdata.finetune -m experiment=coloredcoco data.manifest=...  # the paper's grid
    torchrun --nproc_per_node=4 -m realdata.finetune data.manifest=... [-m experiment=coloredcoco]

Config: conf/realdata/finetune.yaml, checked against :class:`FinetuneConfig`. One run = one results.json
(the run record's contract) with the zero-shot accuracy before fine-tuning, the fine-tuned one, per class and
per colour, the chosen hyperparameters and the loss curve. The losses are open_clip's own ``ClipLoss`` /
``SigLipLoss``; the optimiser is AdamW with open_clip_train's warmup + cosine schedule and its rule for
which parameters get weight decay. Multi-GPU: torchrun sets WORLD_SIZE; the losses gather features across
processes with open_clip's ``local_loss`` / ``gather_with_grad`` options (``dist.*``), gradients go through
DistributedDataParallel. docs/coloredcoco.md has the protocol choices.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import MISSING, OmegaConf

from realdata.coloredcoco import CAPTION_SETS
from realdata.config import DEVICES, PACKAGE_DIR, PRECISIONS, ModelConfig, expect_choices, run_name
from theory.runrecord import (
    RESULTS_FILE,
    RUN_KEYS,
    ConfigError,
    expect,
    keep_earlier,
    provenance,
    recorded_run,
)

log = logging.getLogger("realdata.finetune")
OBJECTIVES = ("clip", "siglip", "supervised")
BACKENDS = ("auto", "nccl", "gloo")  # dist.backend; auto: nccl on CUDA, gloo on CPU
PACKAGES = ("numpy", "torch", "torchvision", "open_clip_torch", "pillow", "hydra-core")
CHECKPOINT = "checkpoint.pt"
# captions identical to the positive count as negatives (open_clip's and OpenAI CLIP's convention), or not
NEGATIVES = {True: "all_other_pairs", False: "masked_same_caption"}


@dataclass
class FTData:
    manifest: str = MISSING  # OUT/manifest.csv of `python -m realdata.coloredcoco build`
    root: str | None = None  # image paths are relative to it; None: the manifest's folder


@dataclass
class FTTrain:
    steps: int = 3000
    batch_size: int = 128  # global (split over processes under torchrun)
    lr: float = 1e-5
    wd: float = 0.1
    warmup: int = 0  # linear warmup steps, then cosine to 0 (open_clip_train.scheduler.cosine_lr)
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    grad_clip_norm: float | None = None
    save_every_epochs: int = 1  # checkpoint cadence (resume point); an epoch = one pass over train
    keep_checkpoint: bool = False  # keep checkpoint.pt (the fine-tuned weights) after the run ends


@dataclass
class FTHead:
    hidden: int = 512  # supervised: MLP head embed_dim -> hidden -> ReLU -> n_classes on the image encoder


@dataclass
class FTDist:
    local_loss: bool = False  # open_clip ClipLoss options under torchrun (ignored with one process)
    gather_with_grad: bool = False
    backend: str = "auto"  # BACKENDS: auto (nccl on CUDA, gloo on CPU) | nccl | gloo


@dataclass
class FTSiglip:
    init_bias: float = -10.0  # a logit_bias for models without one (the SigLIP paper's init)


@dataclass
class FinetuneConfig:
    """Every key of `python -m realdata.finetune` and its default (the one source: conf/realdata/finetune.yaml
    names only the defaults list and Hydra's output folders)."""

    data: FTData = field(default_factory=FTData)
    # as the evaluator's keys: an open_clip name (or local-dir:FOLDER, hf-hub:ORG/REPO), a tag or weights file
    model: ModelConfig = field(
        default_factory=lambda: ModelConfig(family="open_clip", name="RN50-quickgelu", pretrained="openai")
    )
    objective: str = "clip"  # OBJECTIVES: clip | siglip | supervised
    # CAPTION_SETS: obj ("a photo of dog") | objbkg ("a photo of dog in gold background"); not supervised
    captions: str = "obj"
    same_caption_negatives: bool = True  # true: open_clip's convention; false: mask identical captions
    eval_template: str = "a photo of {}"  # zero-shot classifier prompt (before and after fine-tuning)
    zero_shot: bool = True  # evaluate the model before fine-tuning
    train: FTTrain = field(default_factory=FTTrain)
    head: FTHead = field(default_factory=FTHead)
    dist: FTDist = field(default_factory=FTDist)
    siglip: FTSiglip = field(default_factory=FTSiglip)
    device: str = "auto"  # DEVICES: auto | cpu | cuda
    precision: str = "auto"  # PRECISIONS: auto (bf16 autocast on CUDA, fp32 on CPU) | fp32
    eval_batch_size: int = 256
    seed: int = 0
    verbose: bool = False
    logger: Any = field(
        default_factory=lambda: {"_target_": None}
    )  # conf/realdata/logger/ (theory.runrecord.track)


def method(objective: str, captions: str, same_caption_negatives: bool = True) -> str:
    """The Table 7 column a run fills: supervised, or the objective with its caption set (clip_obj), with
    _masked when identical captions are not negatives of each other."""
    if objective == "supervised":
        return "supervised"
    return f"{objective}_{captions}" + ("" if same_caption_negatives else "_masked")


def register() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="finetune_schema", node=FinetuneConfig)
    for name, fn in (
        ("realdata_dir", lambda: str(PACKAGE_DIR)),
        ("realdata_run_name", run_name),
        ("coloredcoco_method", method),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


def validate(cfg) -> None:
    expect_choices(
        cfg,
        {
            "objective": OBJECTIVES,
            "captions": CAPTION_SETS,
            "device": DEVICES,
            "precision": PRECISIONS,
            "dist.backend": BACKENDS,
        },
    )
    from realdata.families import family_name

    family = family_name(cfg.model)
    expect(family == "open_clip", "model.family", family, "open_clip (fine-tuning needs an open_clip model)")
    for key in (
        "train.steps",
        "train.batch_size",
        "train.save_every_epochs",
        "head.hidden",
        "eval_batch_size",
    ):
        expect(OmegaConf.select(cfg, key) >= 1, key, OmegaConf.select(cfg, key), "at least 1")
    t = cfg.train
    expect(0 <= t.warmup < t.steps, "train.warmup", t.warmup, f"a step count in [0, train.steps={t.steps})")
    expect(t.lr > 0, "train.lr", t.lr, "a learning rate > 0")
    expect(t.wd >= 0, "train.wd", t.wd, "a weight decay >= 0")


# ---------------------------------------------------------------------------------------------------------
# data: the whole manifest as uint8 tensors (ColoredCOCO is 9 x 1000 images of 64 x 64: ~110 MB)


@dataclass
class Split:
    images: torch.Tensor  # N x 3 x H x W uint8
    labels: torch.Tensor  # N int64
    rows: list[dict]


def load_manifest(manifest: str | Path, root: str | Path | None = None) -> tuple[dict[str, Split], list[str]]:
    """Read manifest.csv and its images; returns the splits and the class names (index = label)."""
    from PIL import Image

    from realdata.coloredcoco import MANIFEST_COLUMNS, SPLITS

    manifest = Path(manifest).expanduser()
    if not manifest.is_file():
        raise FileNotFoundError(
            f"data.manifest={str(manifest)!r} does not exist (build it with "
            "`python -m realdata.coloredcoco build coco.root=DIR out=DIR`)"
        )
    root = Path(root).expanduser() if root else manifest.parent
    with open(manifest, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in MANIFEST_COLUMNS[:8] if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{manifest}: columns {missing} are missing (expected {list(MANIFEST_COLUMNS)})")
        rows = list(reader)
    names: dict[int, str] = {}
    for r in rows:
        r["label"] = int(r["label"])
        if names.setdefault(r["label"], r["class_name"]) != r["class_name"]:
            raise ValueError(
                f"{manifest}: label {r['label']} is both {names[r['label']]!r} and {r['class_name']!r}"
            )
    classnames = [names[k] for k in sorted(names)]
    if sorted(names) != list(range(len(names))):
        raise ValueError(f"{manifest}: labels {sorted(names)} are not 0..{len(names) - 1}")
    out = {}
    for split in SPLITS:
        sel = [r for r in rows if r["split"] == split]
        if not sel:
            raise ValueError(f"{manifest}: no row with split={split!r}")
        arrays = []
        for r in sel:
            try:
                with Image.open(root / r["path"]) as im:
                    arrays.append(np.asarray(im.convert("RGB")))
            except OSError as e:
                raise OSError(f"{manifest}: image {str(root / r['path'])!r} cannot be read ({e})") from e
        images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
        out[split] = Split(images, torch.tensor([r["label"] for r in sel]), sel)
    return out, classnames


class Preprocess(torch.nn.Module):
    """uint8 batches -> the model's input on its device: bicubic resize (antialiased) to the model's image
    size and its mean/std. Done on the accelerator, so no per-step image decoding."""

    def __init__(self, model):
        super().__init__()
        from open_clip.model import get_model_preprocess_cfg

        pcfg = get_model_preprocess_cfg(model)
        size = pcfg.get("size", model.visual.image_size)
        self.size = tuple(size) if isinstance(size, list | tuple) else (size, size)
        self.register_buffer("mean", torch.tensor(pcfg["mean"]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(pcfg["std"]).view(1, 3, 1, 1))

    def forward(self, x_uint8: torch.Tensor) -> torch.Tensor:
        x = x_uint8.to(self.mean.device, non_blocking=True).float() / 255.0
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bicubic", align_corners=False, antialias=True)
        return (x.clamp(0, 1) - self.mean) / self.std


# ---------------------------------------------------------------------------------------------------------
# model, losses, one step


class Supervised(torch.nn.Module):
    """The baseline: the image encoder with a new MLP head, trained with cross-entropy."""

    def __init__(self, visual: torch.nn.Module, embed_dim: int, hidden: int, n_classes: int):
        super().__init__()
        self.visual = visual
        self.head = torch.nn.Sequential(
            torch.nn.Linear(embed_dim, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, n_classes)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.visual(images))


def same_caption_bias(
    rows_R: torch.Tensor, cols_C: torch.Tensor | None = None, offset: int = 0
) -> torch.Tensor:
    """R x C additive logit mask: -inf where row i's caption equals column j's and j is not i's own pair
    (column i + offset), else 0. Added to the logits (open_clip's losses take a logit_bias), it removes those
    pairs from the softmax (CLIP) or the sum (SigLIP). Columns default to the rows (one process)."""
    cols_C = rows_R if cols_C is None else cols_C
    same_RxC = rows_R[:, None] == cols_C[None, :]
    own = torch.arange(len(rows_R), device=rows_R.device) + offset
    same_RxC[torch.arange(len(rows_R), device=rows_R.device), own] = False
    return torch.zeros(same_RxC.shape, device=rows_R.device).masked_fill(same_RxC, float("-inf"))


def caption_mask(cfg, caption_ids_B: torch.Tensor, rank: int = 0, world: int = 1) -> torch.Tensor:
    """The same-caption mask in the shape of open_clip ClipLoss's logits: B x B on one process; under
    torch.distributed the caption ids are gathered like the features, giving B_all x B_all, or
    B x B_all with dist.local_loss (this process's rows)."""
    if world == 1:
        return same_caption_bias(caption_ids_B)
    import torch.distributed as dist

    gathered = [torch.empty_like(caption_ids_B) for _ in range(world)]
    dist.all_gather(gathered, caption_ids_B)
    all_ids = torch.cat(gathered)
    if cfg.dist.local_loss:
        return same_caption_bias(caption_ids_B, all_ids, offset=rank * len(caption_ids_B))
    return same_caption_bias(all_ids)


def make_loss(cfg, rank: int = 0, world_size: int = 1):
    """open_clip's own loss for the objective (torch.nn.CrossEntropyLoss for supervised)."""
    from open_clip.loss import ClipLoss, SigLipLoss

    if cfg.objective == "clip":
        return ClipLoss(
            local_loss=cfg.dist.local_loss,
            gather_with_grad=cfg.dist.gather_with_grad,
            cache_labels=True,
            rank=rank,
            world_size=world_size,
        )
    if cfg.objective == "siglip":
        return SigLipLoss(rank=rank, world_size=world_size)
    return torch.nn.CrossEntropyLoss()


def batch_loss(
    cfg, net, loss_fn, images, texts=None, labels=None, caption_ids=None, rank: int = 0, world: int = 1
) -> torch.Tensor:
    """The objective on one (local) batch; `net` is the (possibly DDP-wrapped) model."""
    if cfg.objective == "supervised":
        return loss_fn(net(images), labels)
    image_features, text_features, logit_scale, *bias = net(images, texts)
    logit_bias = bias[0] if bias else None
    if not cfg.same_caption_negatives:
        mask = caption_mask(cfg, caption_ids, rank, world)
        logit_bias = mask if logit_bias is None else logit_bias + mask
    return loss_fn(image_features, text_features, logit_scale, logit_bias)


def make_optimizer(cfg, module: torch.nn.Module) -> torch.optim.AdamW:
    """AdamW with open_clip_train's rule: no weight decay on gains, biases, norms, logit scale/bias."""

    def exclude(n, p):
        return p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n

    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if exclude(n, p)], "weight_decay": 0.0},
        {"params": [p for n, p in named if not exclude(n, p)], "weight_decay": cfg.train.wd},
    ]
    t = cfg.train
    return torch.optim.AdamW(groups, lr=t.lr, betas=(t.beta1, t.beta2), eps=t.eps, foreach=True)


# ---------------------------------------------------------------------------------------------------------
# evaluation


@torch.no_grad()
def predict(
    cfg, model, trainable, preprocess, split: Split, classnames, tokenizer, device, amp
) -> np.ndarray:
    """Predicted labels of a split: the head for supervised fine-tuned models, else zero-shot over the class
    names with cfg.eval_template (open_clip.build_zero_shot_classifier)."""
    from open_clip import build_zero_shot_classifier

    was = trainable.training
    trainable.eval()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        weights = None
        if not isinstance(trainable, Supervised):
            weights = build_zero_shot_classifier(
                model, tokenizer, classnames, [cfg.eval_template], num_classes_per_batch=None, device=device
            ).float()
        preds = []
        for i in range(0, len(split.labels), cfg.eval_batch_size):
            x = preprocess(split.images[i : i + cfg.eval_batch_size])
            if weights is None:
                out = trainable(x)
            else:
                out = F.normalize(model.encode_image(x).float(), dim=-1) @ weights
            preds.append(out.float().argmax(-1).cpu())
    trainable.train(was)
    return torch.cat(preds).numpy()


def split_metrics(split: Split, pred: np.ndarray, classnames) -> dict:
    correct = pred == split.labels.numpy()
    per_class = {
        c: float(correct[split.labels.numpy() == k].mean())
        for k, c in enumerate(classnames)
        if (split.labels.numpy() == k).any()
    }
    colours = np.array([r["colour_name"] for r in split.rows])
    per_colour = {c: float(correct[colours == c].mean()) for c in sorted(set(colours))}
    return {
        "acc": float(correct.mean()),
        "n": int(len(correct)),
        "per_class": per_class,
        "per_colour": per_colour,
    }


def evaluate_all(cfg, model, trainable, preprocess, data, classnames, tokenizer, device, amp) -> dict:
    """acc_id, acc_ood, drop (fractions; drop = acc_id - acc_ood) and the per-class / per-colour tables."""
    out = {}
    for split in ("id_test", "ood_test"):
        pred = predict(cfg, model, trainable, preprocess, data[split], classnames, tokenizer, device, amp)
        out[split] = split_metrics(data[split], pred, classnames)
    return {
        "acc_id": out["id_test"]["acc"],
        "acc_ood": out["ood_test"]["acc"],
        "drop": out["id_test"]["acc"] - out["ood_test"]["acc"],
        "n_id": out["id_test"]["n"],
        "n_ood": out["ood_test"]["n"],
        "per_class": {s: out[s]["per_class"] for s in out},
        "per_colour": {s: out[s]["per_colour"] for s in out},
    }


# ---------------------------------------------------------------------------------------------------------
# the run


def identity(cfg) -> str:
    """What makes two runs the same (a resume must match it): the config minus what cannot change the
    numbers, and the manifest's bytes. Supervised runs ignore `captions` and `same_caption_negatives`."""
    c = OmegaConf.to_container(cfg, resolve=True)
    for key in (
        "verbose",
        "eval_batch_size",
        *RUN_KEYS,
    ):  # how a run is shown or logged, not what it computes
        c.pop(key, None)
    c["train"].pop("keep_checkpoint", None)
    if cfg.objective == "supervised":
        c.pop("captions", None)
        c.pop("same_caption_negatives", None)
    c["manifest_sha256"] = hashlib.sha256(Path(cfg.data.manifest).expanduser().read_bytes()).hexdigest()
    return hashlib.sha256(json.dumps(c, sort_keys=True).encode()).hexdigest()[:16]


def _dist_setup(cfg):
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, None
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    backend = cfg.dist.backend
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() and cfg.device != "cpu" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    if backend == "nccl":
        torch.cuda.set_device(local)
    return dist.get_rank(), dist.get_world_size(), local


def _device(cfg, local_rank):
    from realdata.models import resolve_device

    device = torch.device(resolve_device(cfg.device))
    if device.type == "cuda" and local_rank is not None:
        device = torch.device("cuda", local_rank)
    return device


def _prior(out_dir: Path, ident: str) -> tuple[str, dict | None]:
    """What out_dir already holds for this run: 'done' (its results), 'resume', or 'fresh'."""
    res = out_dir / RESULTS_FILE
    ckpt = out_dir / CHECKPOINT
    try:
        doc = json.loads(res.read_text()) if res.is_file() else None
    except (OSError, ValueError):  # unreadable: not this run's record; kept aside below
        doc = None
    same = isinstance(doc, dict) and doc.get("run_identity") == ident
    if same and doc.get("status") in ("ok", "diverged"):
        return "done", doc
    if ckpt.is_file():
        saved = torch.load(ckpt, map_location="cpu", weights_only=False)
        if saved.get("run_identity") == ident:
            return "resume", None
    keep_earlier(out_dir, (RESULTS_FILE, CHECKPOINT))  # another config: its outputs go to earlier-<time>/
    return "fresh", None


def run(cfg, out_dir: str | Path, on_checkpoint=None) -> dict:
    """One fine-tuning run into out_dir under the run contract; returns the results document.

    Re-running the same config in the same folder returns a finished run as it is and resumes an
    unfinished one from its last checkpoint. ``on_checkpoint(step)`` (tests) is called after each save."""
    from open_clip_train.scheduler import cosine_lr

    from realdata.models import device_name, load_encoder, open_clip_logs

    out_dir = Path(out_dir)
    rank, world, local = _dist_setup(cfg)
    try:  # found before any work: nothing is written (the CLI prints one line, exit status 2)
        validate(cfg)
        if not Path(cfg.data.manifest).expanduser().is_file():
            raise ValueError(
                f"data.manifest={cfg.data.manifest!r} does not exist (build it with "
                "`python -m realdata.coloredcoco build coco.root=DIR out=DIR`)"
            )
        expect(
            world == 1 or cfg.same_caption_negatives or cfg.objective != "siglip",
            "same_caption_negatives",
            cfg.same_caption_negatives,
            f"true with objective=siglip under {world} processes, or one process: SigLipLoss exchanges text "
            "features between neighbours without their caption ids",
        )
        device = _device(cfg, local)
    except (ValueError, RuntimeError) as e:
        raise ConfigError(str(e)) from e
    amp = device.type == "cuda" and cfg.precision == "auto"
    ident = identity(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    state, done = _prior(out_dir, ident) if rank == 0 else ("fresh", None)
    if world > 1:
        import torch.distributed as dist

        box = [state]
        dist.broadcast_object_list(box, src=0)
        state = box[0]
    if state == "done":
        print(f"{out_dir}: finished earlier with this config (status {done['status']}); nothing to do")
        return done if done is not None else {}

    head = {
        **provenance("coloredcoco", PACKAGES, device_name(device)),
        "dataset": "coloredcoco",
        "task": "finetune",
        "model": cfg.model.name,
        "pretrained": cfg.model.pretrained,
        "run_name": run_name(cfg.model.name, cfg.model.pretrained),
        "objective": cfg.objective,
        "captions": None if cfg.objective == "supervised" else cfg.captions,
        "method": method(cfg.objective, cfg.captions, cfg.same_caption_negatives),
        "run_identity": ident,
        "hyperparameters": {
            "lr": cfg.train.lr,
            "wd": cfg.train.wd,
            "warmup": cfg.train.warmup,
            "steps": cfg.train.steps,
            "batch_size": cfg.train.batch_size,
        },
        "negatives": NEGATIVES[bool(cfg.same_caption_negatives)] if cfg.objective != "supervised" else None,
        "config": OmegaConf.to_container(cfg, resolve=True),
    }

    def work(record):
        data, classnames = load_manifest(cfg.data.manifest, cfg.data.root)
        with open_clip_logs(cfg.verbose):
            enc = load_encoder(cfg.model, device, cfg.seed, precision="fp32")
        model, tokenizer = enc.model, enc.tokenizer
        preprocess = Preprocess(model).to(device)
        captions = [r[f"caption_{cfg.captions}"] for r in data["train"].rows]
        unique = sorted(set(captions))
        caption_ids = torch.tensor([unique.index(c) for c in captions])
        tokens = tokenizer(unique)
        fixed = {
            "protocol": {  # choices where the paper is silent (docs/coloredcoco.md)
                "image_pipeline": f"{tuple(data['train'].images.shape[-2:])} uint8 -> bicubic antialiased "
                f"resize to {preprocess.size} -> model mean/std; no augmentation",
                "optimizer": "AdamW (no weight decay on gains, biases, norms, logit scale/bias), "
                "linear warmup + cosine (open_clip_train.scheduler.cosine_lr), drop_last, reshuffled",
                "precision": "bf16 autocast" if amp else "fp32",
                "eval": f"zero-shot over the {len(classnames)} class names with {cfg.eval_template!r} (CLIP/"
                "SigLIP runs), the MLP head's argmax (supervised)",
                "supervised_head": f"Linear(embed_dim, {cfg.head.hidden}) -> ReLU -> "
                f"Linear(., {len(classnames)})",
                "world_size": world,
            },
            "classes": classnames,
            "data_manifest": str(Path(cfg.data.manifest).expanduser().resolve()),
        }

        def checkpoint(body):  # every record carries the protocol, also an interrupted one
            record({**fixed, **body})

        zero_shot = None
        if cfg.zero_shot:
            zero_shot = evaluate_all(cfg, model, model, preprocess, data, classnames, tokenizer, device, amp)
            checkpoint({"zero_shot_metrics": zero_shot})
        if cfg.objective == "supervised":
            torch.manual_seed(cfg.seed)
            embed_dim = model.visual.output_dim if hasattr(model.visual, "output_dim") else model.embed_dim
            trainable = Supervised(model.visual, embed_dim, cfg.head.hidden, len(classnames)).to(device)
        else:
            trainable = model
            if cfg.objective == "siglip" and getattr(model, "logit_bias", None) is None:
                model.logit_bias = torch.nn.Parameter(torch.tensor([cfg.siglip.init_bias], device=device))
        trainable.train()
        opt = make_optimizer(cfg, trainable)
        sched = cosine_lr(opt, cfg.train.lr, cfg.train.warmup, cfg.train.steps)
        loss_fn = make_loss(cfg, rank, world)
        net = trainable
        if world > 1:
            net = torch.nn.parallel.DistributedDataParallel(
                trainable, device_ids=[device.index] if device.type == "cuda" else None
            )
        n = len(data["train"].labels)
        bs = cfg.train.batch_size
        expect(bs % world == 0, "train.batch_size", bs, f"a multiple of the {world} processes")
        expect(bs <= n, "train.batch_size", bs, f"at most the {n} training images")
        per_epoch = n // bs
        start, curve = 0, []
        ckpt_path = out_dir / CHECKPOINT
        if state == "resume":
            saved = torch.load(ckpt_path, map_location=device, weights_only=False)
            trainable.load_state_dict(saved["model"])
            opt.load_state_dict(saved["optimizer"])
            start, curve = saved["step"], saved["loss_curve"]
            print(f"{out_dir}: resuming at step {start} (epoch {start // per_epoch})")
        diverged = None
        perm = None
        for step in range(start, cfg.train.steps):
            epoch, i = divmod(step, per_epoch)
            if perm is None or i == 0:  # one shuffle per epoch, a function of (seed, epoch): resumable
                perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
            idx = perm[i * bs : (i + 1) * bs][rank::world]
            sched(step)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = batch_loss(
                    cfg,
                    net,
                    loss_fn,
                    preprocess(data["train"].images[idx]),
                    texts=tokens[caption_ids[idx]].to(device),
                    labels=data["train"].labels[idx].to(device),
                    caption_ids=caption_ids[idx].to(device),
                    rank=rank,
                    world=world,
                )
            value = float(loss.detach())
            if world > 1:
                import torch.distributed as dist

                v = torch.tensor([value], device=device)
                dist.all_reduce(v)
                value = float(v) / world
            if not math.isfinite(value):
                diverged = step
                msg = f"DIVERGED: the loss is {value} at step {step} (lr={cfg.train.lr}); stopping"
                log.error(msg)
                print(msg, file=sys.stderr)
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.train.grad_clip_norm:
                torch.nn.utils.clip_grad_norm_(trainable.parameters(), cfg.train.grad_clip_norm)
            opt.step()
            if cfg.objective != "supervised":
                with torch.no_grad():  # open_clip_train clamps the temperature the same way
                    model.logit_scale.clamp_(0, math.log(100))
            curve.append(value)
            end_of_epoch = i == per_epoch - 1 and (epoch + 1) % cfg.train.save_every_epochs == 0
            if rank == 0 and (end_of_epoch or step == cfg.train.steps - 1):
                tmp = ckpt_path.with_name(f".{CHECKPOINT}.tmp")
                torch.save(
                    {
                        "model": trainable.state_dict(),
                        "optimizer": opt.state_dict(),
                        "step": step + 1,
                        "loss_curve": curve,
                        "run_identity": ident,
                    },
                    tmp,
                )
                os.replace(tmp, ckpt_path)
                checkpoint({"zero_shot_metrics": zero_shot, "loss_curve": curve, "checkpoint_step": step + 1})
                if on_checkpoint is not None:
                    on_checkpoint(step + 1)
        body = {
            **fixed,
            "zero_shot_metrics": zero_shot,
            "loss_curve": curve,
            # the same curve in the shape the trackers and `python -m paper_figs curves` read (one "seed")
            "extra": {
                "loss_curve_steps": list(range(1, len(curve) + 1)),
                "loss_curve_per_seed": [curve],
                "loss_curve_mean_ok_seeds": curve if diverged is None else None,
            },
            "steps_done": len(curve),
            "epochs_done": len(curve) / per_epoch,
        }
        if diverged is not None:
            body.update(
                status="diverged",
                diverged_at_step=diverged,
                error=f"non-finite loss at step {diverged}; no accuracy is reported",
                metrics={"acc_id": None, "acc_ood": None, "drop": None},
            )
        else:
            body["metrics"] = evaluate_all(
                cfg, model, trainable, preprocess, data, classnames, tokenizer, device, amp
            )
        if rank == 0 and not cfg.train.keep_checkpoint and ckpt_path.exists():
            ckpt_path.unlink()
        body["checkpoint"] = str(ckpt_path) if cfg.train.keep_checkpoint else None
        return body

    if rank != 0:  # only rank 0 writes; the others compute alongside (the losses need them)
        return work(lambda body: None)
    from theory.runrecord import track

    try:
        doc = recorded_run(out_dir, head, work)
    finally:  # the run is logged to cfg.logger (theory.runrecord.track) whatever its status
        track.log_results(cfg.get("logger"), out_dir, str(out_dir))
    return doc


if __name__ == "__main__":
    import hydra
    from hydra.core.hydra_config import HydraConfig

    register()

    from theory.runrecord.configs import config_path

    @hydra.main(version_base="1.3", config_path=config_path("realdata"), config_name="finetune")
    def _main(cfg) -> float | None:
        out_dir = Path(HydraConfig.get().runtime.output_dir)
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ:
            import torch.distributed as dist

            rank, _, _ = _dist_setup(cfg)
            box = [str(out_dir)]
            dist.broadcast_object_list(box, src=0)  # every process writes (rank 0 only) into rank 0's folder
            out_dir = Path(box[0])
        try:
            results = run(cfg, out_dir)
        except ConfigError as e:  # found before any work: one line, and no run folder left behind
            from theory.runrecord import remove_if_unused

            remove_if_unused(out_dir)
            print(f"[realdata.finetune] config error: {e}", file=sys.stderr, flush=True)
            sys.exit(2)
        return (results.get("metrics") or {}).get("acc_id")

    _main()
