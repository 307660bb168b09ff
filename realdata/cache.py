"""Feature cache: image features per (model, weights, image list), written in chunks so extraction resumes.

Layout: <cache_dir>/features/<key>/manifest.json (model identity, image-list fingerprint, paths, chunk size)
and chunk-00000.npz ... (features, readable mask, errors). A chunk is written atomically once all
of its images are done, so an interrupted run loses at most one chunk per worker batch in flight.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np

CHUNK_SIZE = 256


def cache_key(identity: dict, fingerprint: str) -> str:
    blob = json.dumps({"model": identity, "images": fingerprint}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[-60:]


def atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # per process: parallel sweep jobs share caches
    write(tmp)
    os.replace(tmp, path)


class FeatureCache:
    def __init__(self, cache_dir: str | Path, identity: dict, fingerprint: str, paths: list[str]):
        self.key = cache_key(identity, fingerprint)
        self.dir = Path(cache_dir) / "features" / f"{_slug(identity['name'])}-{self.key}"
        self.paths = paths
        self.n = len(paths)
        manifest = self.dir / "manifest.json"
        if manifest.exists():
            meta = json.loads(manifest.read_text())
            if meta["fingerprint"] != fingerprint or meta["paths"] != paths:
                raise RuntimeError(
                    f"feature cache {self.dir} does not match this image list; delete the folder"
                )
            self.chunk_size = meta["chunk_size"]
        else:
            self.chunk_size = CHUNK_SIZE
            self.dir.mkdir(parents=True, exist_ok=True)
            meta = {
                "identity": identity,
                "fingerprint": fingerprint,
                "chunk_size": self.chunk_size,
                "n": self.n,
                "paths": paths,
            }
            atomic_write(manifest, lambda p: p.write_text(json.dumps(meta, indent=1)))

    @property
    def n_chunks(self) -> int:
        return -(-self.n // self.chunk_size)

    def chunk_range(self, c: int) -> range:
        return range(c * self.chunk_size, min((c + 1) * self.chunk_size, self.n))

    def chunk_path(self, c: int) -> Path:
        return self.dir / f"chunk-{c:05d}.npz"

    def missing_chunks(self) -> list[int]:
        return [c for c in range(self.n_chunks) if not self.chunk_path(c).exists()]

    def write_chunk(self, c: int, features: np.ndarray, readable: np.ndarray, errors: dict[int, str]) -> None:
        """features: (len(chunk), D) float32; readable: bool mask; errors: position -> reason."""
        err = np.array([errors.get(p, "") for p in self.chunk_range(c)], dtype=str)

        def write(p: Path):
            with open(p, "wb") as f:
                np.savez(f, features=features.astype(np.float32), readable=readable, errors=err)

        atomic_write(self.chunk_path(c), write)

    def load(self) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
        """All features (N, D), the readable mask (N,) and the unreadable images' errors by position."""
        missing = self.missing_chunks()
        if missing:
            raise RuntimeError(f"feature cache {self.dir} is missing chunks {missing}")
        feats, readable, errors = [], [], {}
        for c in range(self.n_chunks):
            with np.load(self.chunk_path(c)) as z:
                feats.append(z["features"])
                readable.append(z["readable"])
                for p, e in zip(self.chunk_range(c), z["errors"], strict=True):
                    if e:
                        errors[p] = str(e)
        dim = max(f.shape[1] for f in feats)  # a chunk of only unreadable images is stored as (n, 0)
        feats = [f if f.shape[1] == dim else np.zeros((len(f), dim), np.float32) for f in feats]
        return np.concatenate(feats), np.concatenate(readable), errors


class ArrayCache:
    """Small named arrays (zero-shot text weights) stored beside the features of one model."""

    def __init__(self, cache_dir: str | Path, identity: dict):
        key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
        self.dir = Path(cache_dir) / "text" / f"{_slug(identity['name'])}-{key}"

    def get_or_compute(self, name: str, compute) -> np.ndarray:
        path = self.dir / f"{name}.npy"
        if path.exists():
            return np.load(path)
        value = compute()
        self.dir.mkdir(parents=True, exist_ok=True)

        def write(p: Path):
            with open(p, "wb") as f:
                np.save(f, value)

        atomic_write(path, write)
        return value
