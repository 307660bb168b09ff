"""`python -m realdata.bench`: images/s of feature extraction on a generated CounterAnimal-layout fixture.

For each model (tiny-clip and ViT-B-32, random weights, CPU by default) it times
  - the evaluator's extraction (DataLoader batches, workers, chunked cache writes), fresh cache;
  - a plain loop over the same files: open, preprocess, call the model on one image at a time;
  - a cached re-run of the whole evaluation (no image opened).
Prints a table and saves benchmarks/out/realdata_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from realdata.config import RealdataConfig, register
from realdata.dataset import scan
from realdata.evaluate import evaluate
from realdata.features import extract_features
from realdata.fixture import TINY_CONFIG, make_counteranimal
from realdata.models import load_encoder

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


def bench_model(key: str, root: Path, work: Path, args) -> dict:
    register()
    cfg = OmegaConf.merge(
        OmegaConf.structured(RealdataConfig),
        {
            "data": {"root": str(root)},
            "model": MODELS[key],
            "batch_size": args.batch_size,
            "num_workers": args.num_workers,
            "device": args.device,
            "cache_dir": str(work / f"cache-{key}"),
            "progress": False,
        },
    )
    device = torch.device("cuda" if args.device == "cuda" else "cpu")
    encoder = load_encoder(cfg.model, device)
    data = scan(root)
    n = len(data.records)
    t = time.perf_counter()
    extract_features(encoder, data, cfg.cache_dir, cfg.batch_size, cfg.num_workers, progress=False)
    t_extract = time.perf_counter() - t
    t_plain = plain_loop(encoder, data)
    evaluate(cfg, work / f"run-{key}-1")  # fills the text-classifier cache too
    t = time.perf_counter()
    evaluate(cfg, work / f"run-{key}-2")
    t_cached = time.perf_counter() - t
    return {
        "model": key,
        "n_images": n,
        "extract_s": t_extract,
        "extract_images_per_s": n / t_extract,
        "plain_loop_s": t_plain,
        "plain_loop_images_per_s": n / t_plain,
        "speedup": t_plain / t_extract,
        "cached_evaluate_s": t_cached,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m realdata.bench", description=__doc__)
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--per-group", type=int, default=8, help="images per class and group")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
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
        )
        for key in args.models:
            rows.append(bench_model(key, root, work, args))
            r = rows[-1]
            print(
                f"{r['model']:<10} {r['n_images']:>4} images: "
                f"evaluator {r['extract_images_per_s']:8.1f} img/s, "
                f"plain loop {r['plain_loop_images_per_s']:8.1f} img/s (x{r['speedup']:.2f}), "
                f"cached re-run {r['cached_evaluate_s']:.2f} s",
                flush=True,
            )
    result = {
        "benchmark": "realdata feature extraction",
        "settings": vars(args) | {"out": str(args.out)},
        "rows": rows,
        "machine": {
            "cpus": os.cpu_count(),
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
