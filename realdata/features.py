"""Image feature extraction through the cache: only missing chunks are computed, each saved when complete."""

from __future__ import annotations

import numpy as np

from realdata.cache import FeatureCache
from realdata.dataset import CounterAnimal, ImageFiles, collate
from realdata.models import Encoder


def extract_features(
    encoder: Encoder,
    data: CounterAnimal,
    cache_dir,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, dict[int, str], FeatureCache]:
    """Features (N, D), readable mask (N,), unreadable-image errors by position, and the cache used."""
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    paths = [r.path for r in data.records]
    cache = FeatureCache(cache_dir, encoder.identity, data.fingerprint(), paths)
    missing = cache.missing_chunks()
    if missing:
        positions = [p for c in missing for p in cache.chunk_range(c)]
        loader = DataLoader(
            ImageFiles(data.root, paths, encoder.transform, positions),
            batch_size=batch_size,
            num_workers=num_workers,
            collate_fn=collate,
            pin_memory=encoder.device.type == "cuda",
            persistent_workers=False,
        )
        pending = {c: _ChunkBuffer(cache.chunk_range(c)) for c in missing}
        chunk_of = {p: c for c in missing for p in cache.chunk_range(c)}
        bar = tqdm(total=len(positions), desc=f"features {encoder.identity['name']}", disable=not progress)
        for ok_positions, images, failed in loader:
            if images is not None:
                for p, f in zip(ok_positions, encoder.encode(images), strict=True):
                    pending[chunk_of[p]].put(p, f)
            for p, err in failed:
                pending[chunk_of[p]].fail(p, err)
            for c in [c for c, buf in pending.items() if buf.complete]:
                cache.write_chunk(c, *pending.pop(c).arrays())
            bar.update(len(ok_positions) + len(failed))
        bar.close()
        if pending:
            raise RuntimeError(f"extraction ended with chunks {sorted(pending)} incomplete")
    feats, readable, errors = cache.load()
    return feats, readable, errors, cache


class _ChunkBuffer:
    def __init__(self, positions: range):
        self.start = positions.start
        self.n = len(positions)
        self.features: np.ndarray | None = None
        self.readable = np.zeros(self.n, dtype=bool)
        self.errors: dict[int, str] = {}
        self.done = 0

    def put(self, pos: int, feature: np.ndarray) -> None:
        if self.features is None:
            self.features = np.zeros((self.n, feature.shape[-1]), dtype=np.float32)
        self.features[pos - self.start] = feature
        self.readable[pos - self.start] = True
        self.done += 1

    def fail(self, pos: int, err: str) -> None:
        self.errors[pos] = err
        self.done += 1

    @property
    def complete(self) -> bool:
        return self.done == self.n

    def arrays(self):
        # a chunk of only unreadable images still needs a (n, 0) feature array to concatenate; fixed at load
        feats = self.features if self.features is not None else np.zeros((self.n, 0), dtype=np.float32)
        return feats, self.readable, self.errors
