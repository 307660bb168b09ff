"""Feature cache: image features per (model, weights, image list), written in chunks so extraction resumes.

Layout: <cache_dir>/features/<key>/manifest.json (model identity, image-list fingerprint, paths, chunk size)
and chunk-00000.npz ... (features, readable mask, errors). A chunk is written atomically once all
of its images are done, so an interrupted run loses at most one chunk per worker batch in flight.
A chunk that cannot be read back (truncated, overwritten, or holding non-finite features from before they
were refused) is named in a warning, deleted and rebuilt. Non-finite features or classifiers are never
written (:class:`NonFinite`). A write that fails (a full disk) names the file and leaves no ``*.tmp`` behind.
Text classifiers: <cache_dir>/text/<model>-<key>.npy, keyed by (model identity, templates, class names).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path

import numpy as np

CHUNK_SIZE = 256
log = logging.getLogger(__name__)


def digest(blob) -> str:
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:20]


def cache_key(identity: dict, fingerprint: str) -> str:
    return digest({"model": identity, "images": fingerprint})


def _folder_stem(text: str) -> str:
    """A model name as (the last 60 characters of) a folder name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[-60:]


def atomic_write(path: Path, write) -> None:
    """``write(tmp)`` then rename onto ``path``; on failure (e.g. ENOSPC) the temporary file is removed and
    the error names ``path``."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # per process: parallel sweep jobs share caches
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OSError(e.errno, f"cannot write {path} ({e.strerror or e}); nothing was kept", str(path)) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class NonFinite(ValueError):
    """Features or a classifier with NaN/inf entries: a broken model, never cached and never scored."""


def require_finite(what: str, values: np.ndarray, rows: list[str] | None = None) -> None:
    """Stop on non-finite values, naming ``what`` and the first rows (e.g. image paths) that hold them."""
    values = np.asarray(values)
    bad = ~np.isfinite(values)
    if not bad.any():
        return
    where = ""
    if rows is not None and values.ndim == 2:
        idx = np.flatnonzero(bad.any(axis=1))
        where = f" in {idx.size} of {len(values)} rows (first: {', '.join(rows[i] for i in idx[:3])})"
    raise NonFinite(
        f"{what} has {int(bad.sum())} non-finite values{where}: the model's weights hold NaN/inf or "
        "overflow; nothing was cached and no accuracy is reported"
    )


class CorruptChunks(RuntimeError):
    """Chunks of a feature cache that cannot be read back; ``paths`` names them."""

    def __init__(self, paths: list[Path], reasons: list[str]):
        self.paths = paths
        listed = "; ".join(f"{p} ({r})" for p, r in zip(paths, reasons, strict=True))
        super().__init__(
            f"unreadable feature cache chunks: {listed}; delete them and run again to rebuild them"
        )


class FeatureCache:
    def __init__(self, cache_dir: str | Path, identity: dict, fingerprint: str, paths: list[str]):
        self.key = cache_key(identity, fingerprint)
        self.dir = Path(cache_dir) / "features" / f"{_folder_stem(identity['name'])}-{self.key}"
        self.paths = paths
        self.n = len(paths)
        manifest = self.dir / "manifest.json"
        if manifest.exists():
            try:
                meta = json.loads(manifest.read_text())
                matches = meta["fingerprint"] == fingerprint and meta["paths"] == paths
                self.chunk_size = int(meta["chunk_size"])
            except (ValueError, KeyError, TypeError) as e:
                raise RuntimeError(
                    f"feature cache manifest {manifest} cannot be read ({type(e).__name__}: {e}); delete the "
                    f"folder {self.dir} to rebuild this model's features"
                ) from e
            if not matches:
                raise RuntimeError(
                    f"feature cache {self.dir} does not match this image list; delete the folder"
                )
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
        rows = [self.paths[p] for p in self.chunk_range(c)]
        require_finite(
            f"image features of {self.dir.name}",
            features[readable],
            [r for r, ok in zip(rows, readable, strict=True) if ok],
        )
        err = np.array([errors.get(p, "") for p in self.chunk_range(c)], dtype=str)

        def write(p: Path):
            with open(p, "wb") as f:
                np.savez(f, features=features.astype(np.float32), readable=readable, errors=err)

        atomic_write(self.chunk_path(c), write)

    def _read_chunk(self, c: int):
        n = len(self.chunk_range(c))
        with np.load(self.chunk_path(c)) as z:
            feats, readable, errors = z["features"], z["readable"], z["errors"]
        if feats.ndim != 2 or len(feats) != n or readable.shape != (n,) or errors.shape != (n,):
            raise ValueError(f"holds {len(feats)} rows, expected {n}")
        if not np.isfinite(feats[readable]).all():  # written before non-finite features were refused
            raise ValueError("holds non-finite features")
        return feats, readable, errors

    def load(self) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
        """All features (N, D), the readable mask (N,) and the unreadable images' errors by position.

        Raises CorruptChunks naming every chunk that cannot be read back."""
        missing = self.missing_chunks()
        if missing:
            raise RuntimeError(f"feature cache {self.dir} is missing chunks {missing}")
        feats, readable, errors, bad, why = [], [], {}, [], []
        for c in range(self.n_chunks):
            try:
                f, r, e = self._read_chunk(c)
            except Exception as err:  # truncated zip, bad header, wrong shapes: all mean "rebuild it"
                bad.append(self.chunk_path(c))
                why.append(f"{type(err).__name__}: {err}")
                continue
            feats.append(f)
            readable.append(r)
            errors.update({p: str(x) for p, x in zip(self.chunk_range(c), e, strict=True) if x})
        if bad:
            raise CorruptChunks(bad, why)
        dim = max(f.shape[1] for f in feats)  # a chunk of only unreadable images is stored as (n, 0)
        feats = [f if f.shape[1] == dim else np.zeros((len(f), dim), np.float32) for f in feats]
        return np.concatenate(feats), np.concatenate(readable), errors


def cached_array(path: Path, compute) -> np.ndarray:
    """np.load(path), or compute() and save it atomically; an unreadable or non-finite file is named, then
    recomputed; a non-finite result is refused (:class:`NonFinite`), never saved."""
    if path.exists():
        try:
            value = np.load(path)
            require_finite(str(path), value)
            return value
        except Exception as e:
            log.warning(
                "cached array %s cannot be read (%s: %s); computing it again", path, type(e).__name__, e
            )
    value = compute()
    require_finite(f"the array for {path}", value)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(p: Path):
        with open(p, "wb") as f:
            np.save(f, value)

    atomic_write(path, write)
    return value


def template_texts(templates) -> list[str]:
    """Templates as text: open_clip's OPENAI_IMAGENET_TEMPLATES are functions (c -> text), so each is
    written as its text for the class '{}' (what a str.format template would say)."""
    return [t("{}") if callable(t) else str(t) for t in templates]


def cached_json(path: Path, compute, check=lambda blob: None) -> dict:
    """A JSON document cached at ``path``: read (and ``check``-ed, which may raise), or, when missing,
    unreadable or failing the check, computed, saved atomically and returned (the bad file is named)."""
    if path.is_file():
        try:
            blob = json.loads(path.read_text())
            check(blob)
            return blob
        except Exception as e:
            log.warning("cached file %s cannot be used (%s: %s); rebuilding it", path, type(e).__name__, e)
    blob = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(blob)
    atomic_write(path, lambda p: p.write_text(text))
    return blob


def text_classifier_path(cache_dir, identity: dict, templates, classnames) -> Path:
    """Where a zero-shot classifier is cached: keyed by model identity, templates and class names."""
    key = digest({"model": identity, "templates": template_texts(templates), "classnames": list(classnames)})
    return Path(cache_dir) / "text" / f"{_folder_stem(identity['name'])}-{key}.npy"
