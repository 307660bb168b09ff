"""Fine-tuning throughput: realdata.finetune against open_clip_train on the same CSV, batch and steps.

    python -m realdata.finetune_bench [--epochs 3] [--batch 32] [--repeats 3] [--device auto] [--out DIR]

Both sides run in this one process, alternating (ours, open_clip_train, ours, ...), so that a shared
machine's load hits them alike: the same tiny open_clip model (realdata/model_configs/tiny-clip.json, random
weights), the same training split (OUT/train.csv of a build of the generated COCO fixture, or --manifest),
the same batch size, number of steps, lr / wd / warmup, AdamW + cosine, fp32 on CPU (bf16 autocast on CUDA).
Each side first runs once untimed (imports, first-call set-up); each timed call is then the whole call:
building the model, reading the data, the steps, writing its checkpoint; ours also evaluates the two test
splits at the end, open_clip_train evaluates nothing. Images/s = steps x batch / that time (median over
--repeats). Prints a table and writes OUT/finetune_bench.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from realdata import coloredcoco as cc
from realdata.fixture import TINY_CONFIG


def _data(work: Path, manifest: str | None, n_train: int) -> Path:
    if manifest:
        return Path(manifest)
    root = cc.make_fixture(work / "coco", n_per_class=n_train + 2, n_val=0)
    return cc.build(
        cc.BuildConfig(
            coco=cc.CocoSource(root=str(root)),
            out=str(work / "cc"),
            n_train=n_train,
            n_id_test=1,
            n_ood_test=1,
        )
    )


def ours(manifest: Path, out: Path, steps: int, batch: int, device: str, lr: float) -> float:
    from hydra import compose

    from realdata import finetune as ft
    from theory.runrecord.configs import initialize

    ft.register()
    with initialize("realdata"):
        cfg = compose(
            "finetune",
            overrides=[
                f"data.manifest={manifest}",
                "model.name=tiny-clip",
                "model.pretrained=",
                f"model.config_file={TINY_CONFIG}",
                f"train.steps={steps}",
                f"train.batch_size={batch}",
                f"train.lr={lr}",
                "train.wd=0.1",
                "zero_shot=false",
                f"device={device}",
            ],
        )
    start = time.perf_counter()
    doc = ft.run(cfg, out)
    wall = time.perf_counter() - start
    assert doc["status"] == "ok", doc.get("error")
    return wall


def open_clip_train(manifest: Path, out: Path, epochs: int, batch: int, device: str, lr: float, workers: int):
    from open_clip_train.main import main

    from realdata.families.open_clip import register_config_file

    register_config_file(TINY_CONFIG, "tiny-clip")
    args = [
        "--train-data", "train.csv", "--dataset-type", "csv", "--csv-separator", ",",
        "--csv-img-key", "path", "--csv-caption-key", "caption_obj",
        "--model", "tiny-clip", "--batch-size", str(batch), "--epochs", str(epochs),
        "--lr", str(lr), "--wd", "0.1", "--warmup", "0", "--beta1", "0.9", "--beta2", "0.98", "--eps", "1e-6",
        "--workers", str(workers), "--seed", "0", "--device", device, "--log-every-n-steps", "1000",
        "--precision", "amp_bf16" if device.startswith("cuda") else "fp32",
        "--logs", str(out), "--name", "run", "--save-frequency", "0", "--report-to", "",
    ]  # fmt: skip
    here = os.getcwd()
    os.chdir(manifest.parent)  # the CSV's image paths are relative to the build folder
    try:
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            rc = main(args)
        wall = time.perf_counter() - start
    finally:
        os.chdir(here)
    assert rc in (None, 0), f"open_clip_train returned {rc}"
    return wall


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m realdata.finetune_bench", description=__doc__.split("\n")[0])
    p.add_argument(
        "--manifest", help="a built ColoredCOCO manifest.csv (default: build the generated fixture)"
    )
    p.add_argument("--n-train", type=int, default=32, help="training images per class of the fixture build")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, default=2, help="open_clip_train's DataLoader workers")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    args = p.parse_args(argv)
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        manifest = _data(work, args.manifest, args.n_train)
        with open(manifest.parent / "train.csv") as f:
            n = sum(1 for _ in f) - 1
        steps = args.epochs * (n // args.batch)  # both drop the last partial batch
        times: dict[str, list[float]] = {"realdata.finetune": [], "open_clip_train": []}
        ours(manifest, work / "warm-ours", n // args.batch, args.batch, device, 1e-3)  # untimed warm-up
        open_clip_train(manifest, work / "warm-oct", 1, args.batch, device, 1e-3, args.workers)
        for r in range(args.repeats):
            times["realdata.finetune"].append(
                ours(manifest, work / f"ours{r}", steps, args.batch, device, 1e-3)
            )
            times["open_clip_train"].append(
                open_clip_train(
                    manifest, work / f"oct{r}", args.epochs, args.batch, device, 1e-3, args.workers
                )
            )
    images = steps * args.batch
    result = {
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "train_images": n,
        "batch": args.batch,
        "steps": steps,
        "repeats": args.repeats,
        "wall_s": times,
        "images_per_s": {k: images / statistics.median(v) for k, v in times.items()},
    }
    result["ratio_ours_over_open_clip_train"] = (
        result["images_per_s"]["realdata.finetune"] / result["images_per_s"]["open_clip_train"]
    )
    print(f"{n} training images, batch {args.batch}, {steps} steps, device {device}, {args.repeats} repeats")
    for k, v in result["images_per_s"].items():
        print(f"  {k:<18} {v:8.1f} images/s   (wall s: {', '.join(f'{t:.1f}' for t in times[k])})")
    print(f"  ratio (realdata.finetune / open_clip_train): {result['ratio_ours_over_open_clip_train']:.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "finetune_bench.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
