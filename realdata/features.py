"""Image feature extraction through the cache: only missing chunks are computed, each saved when complete.

The model is built only when a chunk is missing (``ModelSpec.encoder()``)."""

from __future__ import annotations

import logging

import numpy as np

from realdata.cache import CorruptChunks, FeatureCache
from realdata.dataset import CounterAnimal, ImageFiles, collate
from realdata.models import ModelSpec

log = logging.getLogger(__name__)


def extract_features(
    spec: ModelSpec,
    data: CounterAnimal,
    cache_dir,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, dict[int, str], FeatureCache]:
    """Features (N, D), readable mask (N,), unreadable-image errors by position, and the cache used.

    A cached chunk that cannot be read back is named in a warning, deleted and extracted again."""
    paths = [r.path for r in data.records]
    cache = FeatureCache(cache_dir, spec.identity, data.fingerprint(), paths)
    _fill(spec, data, cache, batch_size, num_workers, progress)
    try:
        feats, readable, errors = cache.load()
    except CorruptChunks as e:
        for path in e.paths:
            log.warning("feature cache chunk %s cannot be read back; deleting and rebuilding it", path)
            path.unlink()
        _fill(spec, data, cache, batch_size, num_workers, progress)
        feats, readable, errors = cache.load()
    return feats, readable, errors, cache


def _fill(
    spec: ModelSpec, data: CounterAnimal, cache: FeatureCache, batch_size, num_workers, progress
) -> None:
    """Extract and write every missing chunk."""
    missing = cache.missing_chunks()
    if not missing:
        return
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from realdata.config import loader_workers

    encoder = spec.encoder()
    positions = [p for c in missing for p in cache.chunk_range(c)]
    loader = DataLoader(
        ImageFiles(data.root, cache.paths, encoder.transform, positions),
        batch_size=batch_size,
        num_workers=loader_workers(num_workers),
        collate_fn=collate,
        pin_memory=encoder.device.type == "cuda",
        persistent_workers=False,
    )
    pending = {c: _ChunkBuffer(cache.chunk_range(c)) for c in missing}
    chunk_of = {p: c for c in missing for p in cache.chunk_range(c)}
    bar = tqdm(total=len(positions), desc=f"features {spec.name}", disable=not progress)
    for ok_positions, images, failed in loader:
        if images is not None:
            for p, f in zip(ok_positions, encoder.encode(images, ok_positions), strict=True):
                pending[chunk_of[p]].put(p, f)
        for p, err in failed:
            pending[chunk_of[p]].fail(p, err)
        for c in [c for c, buf in pending.items() if buf.complete]:
            cache.write_chunk(c, *pending.pop(c).arrays())
        bar.update(len(ok_positions) + len(failed))
    bar.close()
    if pending:
        raise RuntimeError(f"extraction ended with chunks {sorted(pending)} incomplete")


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
