"""`python -m realdata.bench`: fresh vs cached evaluation, and extraction images/s, on a generated fixture.

For each model (tiny-clip and ViT-B-32, random weights, CPU by default), on crops of real photographs in the
CounterAnimal layout (default 8 classes x 2 groups x 40 images = 640):
  - a fresh evaluation (empty cache: build the model, extract every image, build the text classifier, score);
  - a cached re-analysis in another label space (features and text classifier cached: no model is built,
    no image opened), in the same process and, with --cli, as a new `python -m realdata` process;
  - with --plain-loop, a naive baseline: open, preprocess and encode one image at a time.
Prints a table and saves benchmarks/out/realdata_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from realdata.config import register
from realdata.dataset import scan
from realdata.evaluate import evaluate
from realdata.fixture import TINY_CONFIG, make_counteranimal
from realdata.models import load_encoder
from theory.runrecord.configs import config_path

MODELS = {
    "tiny-clip": {"name": "tiny-clip", "config_file": str(TINY_CONFIG), "kind": "clip"},
    "ViT-B-32": {"name": "ViT-B-32", "kind": "clip"},
}
OUT = Path("benchmarks/out/realdata_bench.json")


def plain_loop(encoder, data) -> float:
    """Seconds for the naive baseline: one image at a time, no DataLoader, no cache."""
    from PIL import Image

    start = time.perf_counter()
    with torch.no_grad():
        for r in data.records:
            try:
                image = Image.open(data.root / r.path).convert("RGB")
            except Exception:
                continue
            x = encoder.transform(image).unsqueeze(0).to(encoder.device)
            encoder.model.encode_image(x, normalize=True)
    return time.perf_counter() - start


def overrides(key: str, root: Path, work: Path, args, label_space: str) -> list[str]:
    """The command-line overrides of a run: the in-process runs compose the very same config, so the
    cached re-run as a new process finds every cache (the model identity memo is keyed by the config)."""
    model = MODELS[key]
    out = [f"data.root={root}", f"model.name={model['name']}", "model.pretrained="]
    out += [f"model.config_file={model.get('config_file') or 'null'}", f"cache_dir={work / f'cache-{key}'}"]
    out += [f"device={args.device}", f"label_space={label_space}", "progress=false"]
    return out + [f"batch_size={args.batch_size}", f"num_workers={args.num_workers}"]


def compose_config(ov: list[str]):
    from hydra import compose, initialize_config_dir

    register()
    with initialize_config_dir(config_dir=config_path("realdata"), version_base="1.3"):
        return compose("realdata", overrides=ov)


def cli_rerun(key: str, root: Path, work: Path, args) -> float:
    """Wall time of a cached re-analysis as a new `python -m realdata` process (imports included)."""
    cmd = [sys.executable, "-m", "realdata", *overrides(key, root, work, args, "1v1000")]
    cmd += [f"hydra.run.dir={work / f'cli-{key}'}"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def bench_model(key: str, root: Path, work: Path, args) -> dict:
    cfg = compose_config(overrides(key, root, work, args, "45way"))
    n = len(scan(root).records)
    t = time.perf_counter()
    evaluate(cfg, work / f"run-{key}-fresh")
    t_fresh = time.perf_counter() - t
    t = time.perf_counter()
    evaluate(compose_config(overrides(key, root, work, args, "1v1000")), work / f"run-{key}-cached")
    t_cached = time.perf_counter() - t
    row = {
        "model": key,
        "n_images": n,
        "fresh_evaluate_s": t_fresh,
        "cached_evaluate_s": t_cached,
        "speedup_cached": t_fresh / t_cached,
    }
    if args.cli:
        row["cached_cli_s"] = cli_rerun(key, root, work, args)
        row["speedup_cached_cli"] = t_fresh / row["cached_cli_s"]
    if args.plain_loop:
        encoder = load_encoder(cfg.model, torch.device(args.device))
        row["plain_loop_s"] = plain_loop(encoder, scan(root))
        row["plain_loop_images_per_s"] = n / row["plain_loop_s"]
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m realdata.bench", description=__doc__)
    p.add_argument("--classes", type=int, default=8)
    p.add_argument("--per-group", type=int, default=40, help="images per class and group")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--cli", action="store_true", help="also time the cached re-run as a new process")
    p.add_argument("--plain-loop", action="store_true", help="also time a one-image-at-a-time loop")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        root = make_counteranimal(
            work / "data",
            n_classes=args.classes,
            n_common=args.per_group,
            n_counter=args.per_group,
            size=args.image_size,
            corrupt=False,
            stray=False,
            photos=True,
        )
        for key in args.models:
            rows.append(bench_model(key, root, work, args))
            r = rows[-1]
            line = (
                f"{r['model']:<10} {r['n_images']:>4} images: fresh {r['fresh_evaluate_s']:8.2f} s, "
                f"cached re-analysis {r['cached_evaluate_s']:6.3f} s (x{r['speedup_cached']:.0f})"
            )
            if args.cli:
                line += f", as a new process {r['cached_cli_s']:.2f} s (x{r['speedup_cached_cli']:.0f})"
            if args.plain_loop:
                line += f", plain loop {r['plain_loop_images_per_s']:.1f} img/s"
            print(line, flush=True)
    result = {
        "benchmark": "realdata fresh vs cached evaluation",
        "settings": vars(args) | {"out": str(args.out)},
        "rows": rows,
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg": os.getloadavg(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
