"""Overhead of the progress callback: the same compiled run with and without it (best of 2 each).

    JAX_PLATFORMS=cpu python benchmarks/progress_overhead.py      # -> benchmarks/out/progress_overhead.json

Problem of issue 13: n = 4096 pairs, d = 64, h = 8, minibatch 512, Adam, 3000 steps, 5 seeds.
"""

import json
import time
from pathlib import Path

from synthetic import train as T
from synthetic.config import EvalConfig, GaussianRunConfig, TrainConfig, resolve
from synthetic.data import GaussianData
from synthetic.encoders import Linear
from synthetic.objectives import Clip, LinearClip

OUT = Path("benchmarks/out/progress_overhead.json")


def main() -> dict:
    out = {}
    for objective in (LinearClip(), Clip()):
        run = resolve(
            GaussianRunConfig(
                seeds=5,
                data=GaussianData(n=4096, d_image=64, d_text=64),
                encoder=Linear(h=8),
                objective=objective,
                train=TrainConfig(steps=3000, batch_size=512, optimizer="adam", lr=0.01),
                eval=EvalConfig(n_test=2000),
            )
        )
        keys = T.seed_keys(0, 0, run.seeds)
        times: dict[bool, list[float]] = {True: [], False: []}
        for progress in (True, False, True, False):
            spec, hp = T.split(run, progress=progress)
            T.run_seeds(spec, hp, keys)  # compile (cached afterwards)
            start = time.perf_counter()
            T.run_seeds(spec, hp, keys)
            times[progress].append(time.perf_counter() - start)
        on, off = min(times[True]), min(times[False])
        out[type(objective).__name__] = {"with_progress_s": on, "without_s": off, "overhead": on / off - 1}
        print(type(objective).__name__, out[type(objective).__name__], flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
