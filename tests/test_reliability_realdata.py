"""Issue 18 (realdata): no wrong number under "ok", no silent skip, errors that name the culprit.

Tiny random-weight CLIPs on a generated CounterAnimal folder, CPU only (as tests/test_realdata.py)."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from realdata import cache as cache_mod
from realdata.check import report
from realdata.config import RealdataConfig, register, validate
from realdata.dataset import ImageFiles, scan, to_rgb
from realdata.evaluate import evaluate, text_weights
from realdata.fixture import TINY_CONFIG, make_counteranimal, save_tiny_clip
from realdata.labels import candidate_mask
from realdata.models import describe, templates

register()
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return make_counteranimal(tmp_path_factory.mktemp("ca"), n_classes=2, n_common=2, n_counter=2)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return save_tiny_clip(tmp_path_factory.mktemp("ckpt") / "tiny.pt", seed=1)


def make_cfg(root, cache_dir, **over):
    model = {"name": "tiny-clip", "config_file": str(TINY_CONFIG), "kind": "clip"}
    model.update(over.pop("model", {}))
    base = OmegaConf.structured(RealdataConfig)
    fixed = {
        "batch_size": 4,
        "num_workers": 0,
        "device": "cpu",
        "cache_dir": str(cache_dir),
        "progress": False,
    }
    return OmegaConf.merge(base, {"data": {"root": str(root)}, "model": model, **fixed}, over)


def _sha16(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _rewrite_same_size_and_mtime(path: Path, data: bytes) -> None:
    st = path.stat()
    assert len(data) == st.st_size
    path.write_bytes(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size


# ---------------------------------------------------------------- non-finite weights


def test_nan_weights_stop_the_run_and_cache_nothing(root, ckpt, tmp_path):
    state = torch.load(ckpt, weights_only=True)
    state["visual.proj"] = torch.full_like(state["visual.proj"], float("nan"))
    bad = tmp_path / "nan.pt"
    torch.save(state, bad)
    cfg = make_cfg(root, tmp_path / "cache", model={"pretrained": str(bad)}, label_space="45way")
    with pytest.raises(cache_mod.NonFinite, match="non-finite"):
        evaluate(cfg, tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["status"] == "failed" and "non-finite" in doc["error"]
    assert not list((tmp_path / "cache").rglob("chunk-*.npz"))  # nothing cached


def test_cached_non_finite_array_is_rebuilt_and_a_non_finite_result_is_refused(tmp_path, caplog):
    path = tmp_path / "a.npy"
    np.save(path, np.array([1.0, np.nan]))
    with caplog.at_level(logging.WARNING):
        got = cache_mod.cached_array(path, lambda: np.array([1.0, 2.0]))
    np.testing.assert_array_equal(got, [1.0, 2.0])
    assert str(path) in caplog.text
    with pytest.raises(cache_mod.NonFinite):
        cache_mod.cached_array(tmp_path / "b.npy", lambda: np.array([np.inf]))
    assert not (tmp_path / "b.npy").exists()


# ---------------------------------------------------------------- degenerate label spaces


def test_one_vs_k_with_a_single_candidate_is_refused(root, tmp_path):
    cfg = make_cfg(root, tmp_path, label_space="1v20", one_vs_20={"k": 1})
    with pytest.raises(ValueError, match="one_vs_20.k=1"):
        validate(cfg)
    validate(make_cfg(root, tmp_path, label_space="1v20", one_vs_20={"k": 1, "true_class_in_k": False}))
    with pytest.raises(ValueError, match="hold one label"):
        candidate_mask("1v20", np.array([1, 1]), one_vs_20={1: [1]})


# ---------------------------------------------------------------- content-keyed caches


def test_weights_rewritten_in_place_get_a_new_identity(ckpt, tmp_path):
    weights = tmp_path / "w.pt"
    weights.write_bytes(ckpt.read_bytes())
    mcfg = OmegaConf.create(
        {"name": "tiny-clip", "config_file": str(TINY_CONFIG), "kind": "clip", "pretrained": str(weights)}
    )
    mcfg.force_quick_gelu = None
    first = describe(mcfg, torch.device("cpu"), cache_dir=tmp_path / "cache").identity["weights"]
    assert first == f"file:{_sha16(weights)}"
    blob = bytearray(weights.read_bytes())
    blob[-100] ^= 0xFF  # same size, other content
    _rewrite_same_size_and_mtime(weights, bytes(blob))
    second = describe(mcfg, torch.device("cpu"), cache_dir=tmp_path / "cache").identity["weights"]
    assert second == f"file:{_sha16(weights)}" != first


def test_image_rewritten_in_place_changes_the_fingerprint(tmp_path):
    base = make_counteranimal(tmp_path, n_classes=2, n_common=2, n_counter=2, corrupt=True)
    broken = next(base.rglob("broken.jpg"))
    before = scan(base).fingerprint()
    _rewrite_same_size_and_mtime(broken, bytes(b ^ 1 for b in broken.read_bytes()))  # "repaired"
    assert scan(base).fingerprint() != before


def test_one_vs_20_sets_are_keyed_by_the_reference_weights_content(root, tmp_path):
    """Two references with the same file name (as Hugging Face ships them) get their own sets."""
    files = []
    for seed in (1, 2):
        (tmp_path / f"hf{seed}").mkdir()
        files.append(save_tiny_clip(tmp_path / f"hf{seed}" / "open_clip_pytorch_model.bin", seed=seed))
    used = []
    for f in files:
        ref = {"name": "tiny-clip", "pretrained": str(f), "config_file": str(TINY_CONFIG), "kind": "clip"}
        cfg = make_cfg(root, tmp_path / "cache", label_space="1v20", one_vs_20={"k": 3, "reference": ref})
        doc = evaluate(cfg, tmp_path / f"out-{f.parent.name}")
        assert doc["status"] == "ok"
        sets_file = Path(doc["one_vs_20_file"])
        meta = json.loads(sets_file.read_text())
        assert meta["reference"]["identity"]["weights"] == f"file:{_sha16(f)}"
        used.append(sets_file)
    assert used[0] != used[1]


def test_corrupt_identity_memo_is_named_and_rebuilt(ckpt, tmp_path, caplog):
    mcfg = OmegaConf.create(
        {"name": "tiny-clip", "config_file": str(TINY_CONFIG), "kind": "clip", "pretrained": str(ckpt)}
    )
    mcfg.force_quick_gelu = None
    good = describe(mcfg, torch.device("cpu"), cache_dir=tmp_path).identity
    (memo,) = (tmp_path / "identity").glob("*.json")
    for junk in ("{not json", json.dumps({"identity": {}})):
        memo.write_text(junk)
        with caplog.at_level(logging.WARNING):
            again = describe(mcfg, torch.device("cpu"), cache_dir=tmp_path).identity
        assert again == good and str(memo) in caplog.text
        assert json.loads(memo.read_text())["identity"] == good


def test_disk_full_names_the_file_and_leaves_no_tmp(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    cache = cache_mod.FeatureCache(tmp_path, {"name": "m"}, "fp", ["a.jpg"])
    monkeypatch.setattr(np, "savez", full)
    with pytest.raises(OSError, match="chunk-00000.npz") as e:
        cache.write_chunk(0, np.zeros((1, 2), np.float32), np.ones(1, bool), {})
    assert e.value.errno == errno.ENOSPC
    assert not list(tmp_path.rglob("*.tmp"))
    # the run record's writer too
    import theory.runrecord

    monkeypatch.setattr(Path, "write_text", lambda self, text, *a, **k: full())
    with pytest.raises(OSError, match="results.json"):
        theory.runrecord.write_results(tmp_path / "run", {"status": "ok", "config": {}})
    assert not list(tmp_path.rglob("*.tmp"))


# ---------------------------------------------------------------- image modes, odd files


def test_sixteen_bit_and_float_images_are_scaled_not_clipped(tmp_path):
    from PIL import Image

    grey16 = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        got = np.asarray(to_rgb(im))
    np.testing.assert_array_equal(got[..., 0], np.round(grey16 / 65535 * 255).astype(np.uint8))
    f = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(f).save(tmp_path / "f.tif")
    with Image.open(tmp_path / "f.tif") as im:
        got = np.asarray(to_rgb(im))
    np.testing.assert_array_equal(got[..., 1], np.round(f.astype(np.float64) * 255).astype(np.uint8))
    Image.fromarray(f * 300).save(tmp_path / "hdr.tif")
    _, x, err = ImageFiles(tmp_path, ["hdr.tif"], lambda im: im)[0]
    assert x is None and "outside [0, 1]" in err


def test_broken_links_fifos_and_full_width_digits_are_listed(tmp_path):
    base = make_counteranimal(tmp_path, n_classes=2, n_common=2, n_counter=2, corrupt=False, stray=False)
    group = next(base.glob("*/common-*"))
    (group / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    os.mkfifo(group / "pipe.jpg")
    (base / "３９７ puffer" / "common-water").mkdir(parents=True)
    data = scan(base)
    reasons = {Path(s.path).name: s.reason for s in data.skipped}
    assert "broken symbolic link" in reasons["gone.jpg"]
    assert "FIFO" in reasons["pipe.jpg"]
    assert 397 not in data.classes()
    assert any("３９７ puffer" == s.path for s in data.ignored)
    text = report(data)
    assert "gone.jpg" in text and "pipe.jpg" in text


# ---------------------------------------------------------------- openai80


def test_openai80_prompts_run_and_match_open_clip(ckpt, tmp_path, monkeypatch):
    """The 80 templates are functions in open_clip; the classifier is built and cached over them (3 class
    names here instead of 1000, to keep the test fast: the templates are what broke)."""
    from realdata import evaluate as evaluate_mod
    from realdata import models as models_mod

    names = ("goldfish", "great white shark", "tiger shark")
    monkeypatch.setattr(evaluate_mod, "imagenet_classnames", lambda which: names)
    monkeypatch.setattr(models_mod, "imagenet_classnames", lambda which: names)
    mcfg = OmegaConf.create(
        {"name": "tiny-clip", "config_file": str(TINY_CONFIG), "kind": "clip", "pretrained": str(ckpt)}
    )
    mcfg.force_quick_gelu = None
    spec = describe(mcfg, torch.device("cpu"), cache_dir=tmp_path)
    w, path = text_weights(spec, "openai80", "openai", tmp_path)
    assert Path(path).is_file()
    single, single_path = text_weights(spec, "single", "openai", tmp_path)
    assert single_path != path
    # independent: open_clip's classifier over its own template functions
    from open_clip import OPENAI_IMAGENET_TEMPLATES, build_zero_shot_classifier

    enc = spec.encoder()
    direct = build_zero_shot_classifier(
        enc.model, enc.tokenizer, names, OPENAI_IMAGENET_TEMPLATES, device="cpu"
    )
    np.testing.assert_allclose(w, direct.numpy(), atol=1e-5)
    assert len(templates("openai80")) == 80
    assert cache_mod.template_texts(templates("openai80"))[0] == OPENAI_IMAGENET_TEMPLATES[0]("{}")
