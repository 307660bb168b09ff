"""realdata: CounterAnimal layout, evaluator vs open_clip/torchvision called directly, metrics, 1v20, cache.

Offline and CPU-only: a generated CounterAnimal-layout fixture and tiny random-weight checkpoints.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from realdata import cache as cache_mod
from realdata import dataset as dataset_mod
from realdata.check import differences
from realdata.check import main as check_main
from realdata.classnames import SYNSET_FILE, imagenet_classnames, synset_rows_from_timm
from realdata.config import ZOO_FIELDS, RealdataConfig, register
from realdata.dataset import DatasetLayoutError, reference_classes, resolve_root, scan
from realdata.evaluate import evaluate
from realdata.families import open_clip as open_clip_family
from realdata.features import extract_features
from realdata.fixture import TINY_CONFIG, make_counteranimal, save_tiny_clip
from realdata.labels import candidate_mask, class_mean_similarity, confusable_labels
from realdata.metrics import group_metrics, per_class_table
from realdata.models import describe, load_encoder, templates

register()
torch.set_num_threads(1)


@pytest.fixture
def open_clip():
    """open_clip for the tests that call it directly; imported at collection, it would cost every xdist
    worker its import (torchvision, timm, transformers: seconds) whichever worker runs this module."""
    import open_clip

    return open_clip


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory) -> Path:
    """3 classes, unequal groups, a corrupt .jpg and a stray .txt, wrapped in LAION-final/."""
    top = tmp_path_factory.mktemp("counteranimal")
    make_counteranimal(top, n_classes=3, n_common=[4, 3, 2], n_counter=[2, 1, 3], wrap="LAION-final")
    return top


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    return save_tiny_clip(tmp_path_factory.mktemp("ckpt") / "tiny.pt", seed=1)


def make_cfg(root, cache_dir, **over):
    model = {"name": "tiny-clip", "config_file": str(TINY_CONFIG), "family": "open_clip"}
    model.update(over.pop("model", {}))
    base = OmegaConf.structured(RealdataConfig)
    cfg = OmegaConf.merge(
        base,
        {
            "data": {"root": str(root)},
            "model": model,
            "batch_size": 4,
            "num_workers": 0,
            "device": "cpu",
            "cache_dir": str(cache_dir),
            "progress": False,
        },
        over,
    )
    return cfg


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- layout


def test_scan_lists_images_skips_non_images_and_accepts_wrapped_root(fixture_root):
    data = scan(fixture_root)  # one level above the class folders
    assert data.root == fixture_root / "LAION-final"
    assert scan(fixture_root / "LAION-final").fingerprint() == data.fingerprint()
    ref = reference_classes()[:3]
    assert data.classes() == {c.imagenet_index: c.class_name for c in ref}
    # 4+3+2 common, 2+1+3 counter, plus the corrupt .jpg listed as an image (it fails only when opened)
    groups = [r.group for r in data.records]
    assert groups.count("common") == 9 and groups.count("counter") == 7
    assert {Path(r.path).suffix for r in data.records} == {".jpg", ".JPG", ".jpeg", ".png"}
    assert [s.path for s in data.skipped] == [
        f"{ref[0].imagenet_index} {ref[0].class_name}/counter-water/notes.txt"
    ]
    assert [d.path for d in data.ignored] == []
    first = data.records[0]
    assert not Path(first.path).is_absolute() and (data.root / first.path).is_file()


def test_missing_and_empty_roots_fail_naming_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.*expected"):
        resolve_root(tmp_path / "nope")
    (tmp_path / "empty" / "some folder").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match="empty.*<imagenet index> <class name>"):
        scan(tmp_path / "empty")
    (tmp_path / "noimg" / "9 ostrich" / "common-ground").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match="no images"):
        scan(tmp_path / "noimg")


def test_check_prints_differences_as_plain_lines(fixture_root, tmp_path, capsys):
    diffs = differences(scan(fixture_root))
    assert not any("folder" in d for d in diffs)
    assert "missing class 360 otter" in diffs
    assert any("ostrich: 4 common images, paper 206" in d for d in diffs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a Python warning would fail here
        assert check_main([str(fixture_root)]) == 0
    out = capsys.readouterr().out
    assert "3 classes" in out and "9 common, 7 counter" in out
    assert "differs from the paper's CounterAnimal in" in out and "\n  missing class 360 otter\n" in out
    assert "Warning" not in out
    assert check_main([str(tmp_path / "absent")]) == 2


def test_check_lists_what_is_not_read(tmp_path):
    base = make_counteranimal(tmp_path, n_classes=1, n_common=1, n_counter=1, corrupt=False, stray=False)
    (base / "9 ostrich" / "misc").mkdir()
    (base / "__MACOSX").mkdir()  # left by unzipping on a Mac: not a class folder
    (base / "9 ostrich" / "loose.jpg").write_bytes(b"")  # an image outside both groups
    data = scan(base)
    assert [d.path for d in data.ignored] == ["__MACOSX", "9 ostrich/misc"] and len(data.records) == 2
    assert [(s.path, s.reason) for s in data.skipped] == [
        ("9 ostrich/loose.jpg", "not inside a group folder")
    ]
    diffs = differences(data)
    reason = "not a group folder (common-<background> or counter-<background>)"
    assert f"folder '9 ostrich/misc' is not read: {reason}" in diffs
    assert any(d.startswith("folder '__MACOSX' is not read") for d in diffs)


# ---------------------------------------------------------------- metrics and label spaces


def test_metrics_balanced_vs_unbalanced_on_hand_made_predictions():
    # class 1: 4 common (3 right), 1 counter (0 right); class 2: 1 common (1 right), 4 counter (4 right)
    labels = np.array([1, 1, 1, 1, 1, 2, 2, 2, 2, 2])
    groups = np.array(["common"] * 4 + ["counter"] + ["common"] + ["counter"] * 4)
    correct = np.array([1, 1, 1, 0, 0, 1, 1, 1, 1, 1], bool)
    top5 = correct | (np.arange(10) == 4)
    m = group_metrics(labels, groups, correct, top5)
    assert m["acc_common"] == pytest.approx((3 / 4 + 1) / 2)  # class-balanced
    assert m["acc_counter"] == pytest.approx((0 + 4 / 4) / 2)
    assert m["acc_common_unbalanced"] == pytest.approx(4 / 5)  # per image
    assert m["acc_counter_unbalanced"] == pytest.approx(4 / 5)
    assert m["acc_common"] != m["acc_common_unbalanced"]
    assert m["drop"] == pytest.approx(m["acc_common"] - m["acc_counter"])
    assert m["top5_counter"] == pytest.approx(1.0)
    assert (m["n_common"], m["n_counter"]) == (5, 5)
    rows = {r["imagenet_index"]: r for r in per_class_table(labels, groups, correct)}
    assert rows[1]["acc_common"] == 0.75 and rows[1]["acc_counter"] == 0.0 and rows[1]["drop"] == 0.75
    assert np.mean([r["drop"] for r in rows.values()]) == pytest.approx(m["drop"])
    # a third class with common images only (3 wrong) is left out of both groups: nothing changes
    m3 = group_metrics(
        np.r_[labels, 3, 3, 3],
        np.r_[groups, ["common"] * 3],
        np.r_[correct, [False] * 3],
        np.r_[top5, [0] * 3],
    )
    for key in ("acc_common", "acc_counter", "drop", "acc_common_unbalanced", "top5_common", "n_common"):
        assert m3[key] == pytest.approx(m[key]), key
    assert m3["n_classes"] == m["n_classes"] == 2


def test_one_vs_20_from_a_known_similarity_matrix():
    # 2 classes (labels 1 and 4) over 6 labels; k=3 confusers, ranked by mean similarity, own label first
    scores = np.array(
        [
            [0.1, 0.9, 0.2, 0.5, 0.3, 0.0],
            [0.3, 0.7, 0.2, 0.1, 0.5, 0.0],  # class 1 mean: [.2, .8, .2, .3, .4, 0]
            [0.9, 0.0, 0.6, 0.2, 0.8, 0.1],  # class 4: [.9, 0, .6, .2, .8, .1]
        ]
    )
    labels = np.array([1, 1, 4])
    mean = class_mean_similarity(scores, labels, [1, 4])
    np.testing.assert_allclose(mean[0], [0.2, 0.8, 0.2, 0.3, 0.4, 0.0])
    sets = confusable_labels(mean, [1, 4], k=3, true_class_in_k=False)  # the class plus k=3 others
    assert sets[1] == [1, 4, 3, 0]  # 0.4, 0.3, then the tie 0.2/0.2 goes to the lower index 0
    assert sets[4] == [4, 0, 2, 3]  # own label excluded from the ranking even though it scores 0.8
    # the default reading: k=3 candidates in all, the true class among them
    assert confusable_labels(mean, [1, 4], k=3) == {1: [1, 4, 3], 4: [4, 0, 2]}
    mask = candidate_mask("1v20", np.array([4, 1]), one_vs_20=sets)
    assert mask.shape == (2, 1000)
    assert sorted(np.flatnonzero(mask[0])) == [0, 2, 3, 4] and sorted(np.flatnonzero(mask[1])) == [0, 1, 3, 4]
    with pytest.raises(ValueError, match="no candidate set saved for classes \\[7\\]"):
        candidate_mask("1v20", np.array([7]), one_vs_20=sets)
    ref45 = [c.imagenet_index for c in reference_classes()]
    assert candidate_mask("45way", np.array([9]), ref45).sum() == 45


# ---------------------------------------------------------------- models


def test_unknown_model_names_fail_clearly(tmp_path, tiny_ckpt):
    cpu = torch.device("cpu")
    bad = OmegaConf.merge(
        OmegaConf.structured(RealdataConfig().model), {"name": "ViT-B-33", "family": "open_clip"}
    )
    with pytest.raises(
        ValueError, match="model.name='ViT-B-33': expected a model name of open_clip.*ViT-B-32"
    ):
        load_encoder(bad, cpu)
    bad_tv = OmegaConf.merge(bad, {"name": "resnet51", "family": "torchvision"})
    with pytest.raises(ValueError, match="model.name='resnet51': expected a model name of torchvision"):
        load_encoder(bad_tv, cpu)
    bad_tag = OmegaConf.merge(bad, {"name": "ViT-B-32", "pretrained": "laion400m_e99"})
    with pytest.raises(
        ValueError, match="model.pretrained='laion400m_e99': expected .*open_clip tag of 'ViT-B-32'"
    ):
        load_encoder(bad_tag, cpu)
    no_file = OmegaConf.merge(bad, {"name": "ViT-B-32", "pretrained": str(tmp_path / "w.pt")})
    with pytest.raises(FileNotFoundError, match="w.pt"):
        load_encoder(no_file, cpu)
    with pytest.raises(ValueError, match="classnames='wordnet'"):
        imagenet_classnames("wordnet")


def test_prompt_sets_are_the_papers_and_open_clips(open_clip):
    assert templates("single") == ("A photo of {}.",)
    assert templates("openai80") is open_clip.OPENAI_IMAGENET_TEMPLATES and len(templates("openai80")) == 80
    with pytest.raises(ValueError, match="prompts='simple'"):
        templates("simple")


def test_quick_gelu_follows_the_weights_tag(monkeypatch, open_clip):
    """load_clip turns on QuickGELU exactly for tags trained with it (OpenAI, LAION-400M), unless told."""
    seen = {}

    class Stop(Exception):
        pass

    def capture(name, pretrained=None, force_quick_gelu=False, device=None):
        seen[name, pretrained] = force_quick_gelu
        raise Stop  # no download: only the arguments matter here

    monkeypatch.setattr(open_clip, "create_model_and_transforms", capture)
    base = OmegaConf.structured(RealdataConfig().model)
    cases = [
        ("ViT-B-32", "laion400m_e31", None, True),
        ("ViT-B-32", "openai", None, True),
        ("ViT-B-32", "datacomp_xl_s13b_b90k", None, False),
        ("ViT-B-32", "laion400m_e31", False, False),  # an explicit choice wins
    ]
    for name, tag, force, expected in cases:
        mcfg = OmegaConf.merge(base, {"name": name, "pretrained": tag, "force_quick_gelu": force})
        with pytest.raises(Stop):
            load_encoder(mcfg, torch.device("cpu"))
        assert seen.pop((name, tag)) is expected, (name, tag, force)


def _direct_open_clip_predictions(ckpt: Path, root: Path, paths: list[str], names=None) -> np.ndarray:
    """The zero-shot protocol written out with open_clip's model calls only (default: the synset names,
    read here from timm's ImageNet metadata, not from the package's file)."""
    import open_clip
    from PIL import Image

    names = names or [d for _, _, d in synset_rows_from_timm()]

    open_clip.add_model_config(TINY_CONFIG)
    model, _, preprocess = open_clip.create_model_and_transforms("tiny-clip", pretrained=str(ckpt))
    model.eval()
    tok = open_clip.get_tokenizer("tiny-clip")
    with torch.no_grad():
        text = model.encode_text(tok([f"A photo of {c}." for c in names]))
        text = text / text.norm(dim=-1, keepdim=True)
        images = torch.stack([preprocess(Image.open(root / p).convert("RGB")) for p in paths])
        feats = model.encode_image(images)
        feats = feats / feats.norm(dim=-1, keepdim=True)
    return (feats @ text.T).argmax(dim=1).numpy()


def test_evaluator_matches_open_clip_called_directly(fixture_root, tiny_ckpt, tmp_path):
    cfg = make_cfg(fixture_root, tmp_path / "cache", model={"pretrained": str(tiny_ckpt)})
    res = evaluate(cfg, tmp_path / "out")
    preds = read_csv(tmp_path / "out" / "predictions.csv")
    data_root = fixture_root / "LAION-final"
    expected = _direct_open_clip_predictions(tiny_ckpt, data_root, [r["path"] for r in preds])
    assert [int(r["pred"]) for r in preds] == expected.tolist()
    assert len(preds) == 15  # 16 listed images minus the corrupt one
    skipped = {s["path"].rsplit("/", 1)[1]: s["reason"] for s in res["metrics"]["skipped_files"]}
    assert set(skipped) == {"notes.txt", "broken.jpg"} and "unreadable" in skipped["broken.jpg"]
    assert res["metrics"]["n_skipped"] == 2
    correct = np.array([int(r["pred"]) == int(r["label"]) for r in preds])
    assert [int(r["correct"]) for r in preds] == correct.astype(int).tolist()
    per_class = read_csv(tmp_path / "out" / "per_class.csv")
    assert [(int(r["n_common"]), int(r["n_counter"])) for r in per_class] == [(4, 2), (3, 1), (2, 3)]


def _forbid(monkeypatch, target, attr, what):
    def fail(*a, **k):
        raise AssertionError(f"{what} although everything is cached")

    monkeypatch.setattr(target, attr, fail)


def test_cached_reanalysis_opens_no_image_and_builds_no_model(
    fixture_root, tiny_ckpt, tmp_path, monkeypatch, open_clip
):
    cfg = make_cfg(fixture_root, tmp_path / "cache", model={"pretrained": str(tiny_ckpt)})
    first = evaluate(cfg, tmp_path / "a")
    _forbid(monkeypatch, dataset_mod.ImageFiles, "__getitem__", "an image was read")
    _forbid(monkeypatch, open_clip, "create_model_and_transforms", "a model was built")
    _forbid(monkeypatch, open_clip, "create_model", "a model was built")
    with pytest.raises(AssertionError, match="a model was built"):  # the traps work
        load_encoder(cfg.model, torch.device("cpu"))
    _forbid(monkeypatch, open_clip_family, "identity", "open_clip was asked for the identity")  # remembered
    second = evaluate(OmegaConf.merge(cfg, {"label_space": "45way"}), tmp_path / "b")
    assert second["status"] == "ok" and second["text_classifier"] == first["text_classifier"]
    assert second["feature_cache"] == first["feature_cache"]
    assert second["metrics"]["n_skipped"] == 2  # unreadable images are remembered by the cache
    preds = read_csv(tmp_path / "b" / "predictions.csv")
    ref45 = {c.imagenet_index for c in reference_classes()}
    assert all(int(r["pred"]) in ref45 for r in preds)


def test_interrupted_extraction_resumes(fixture_root, tiny_ckpt, tmp_path, monkeypatch):
    monkeypatch.setattr(cache_mod, "CHUNK_SIZE", 4)
    cfg = make_cfg(fixture_root, tmp_path / "cache", model={"pretrained": str(tiny_ckpt)}, batch_size=2)
    spec = describe(cfg.model, torch.device("cpu"))
    encoder = spec.encoder()
    data = scan(fixture_root)
    calls = {"n": 0}
    real_encode = encoder.encode

    def flaky(images, positions):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # the user stops the run during the 4th batch
        return real_encode(images, positions)

    monkeypatch.setattr(encoder, "encode", flaky)
    with pytest.raises(KeyboardInterrupt):
        extract_features(spec, data, cfg.cache_dir, batch_size=2, progress=False)
    written = sorted(p.name for p in next((tmp_path / "cache" / "features").iterdir()).glob("chunk-*.npz"))
    assert written == ["chunk-00000.npz"]  # 3 batches of 2 images: chunk 0 (4 images) complete
    calls["n"] = -100
    feats, readable, errors, _ = extract_features(spec, data, cfg.cache_dir, batch_size=2, progress=False)
    assert calls["n"] == -100 + 6  # 12 remaining images (one unreadable) in 3 chunks of 4 -> 6 batches of 2
    fresh, fresh_ok, _, _ = extract_features(spec, data, tmp_path / "fresh", batch_size=2, progress=False)
    np.testing.assert_allclose(feats, fresh, atol=1e-6)
    assert (readable == fresh_ok).all() and len(errors) == 1


def test_one_vs_20_is_computed_once_and_reused(fixture_root, tiny_ckpt, tmp_path):
    ref = {"name": "tiny-clip", "pretrained": str(tiny_ckpt), "config_file": str(TINY_CONFIG), "kind": "clip"}
    saved = tmp_path / "sets.json"
    over = {"label_space": "1v20", "one_vs_20": {"reference": ref, "file": str(saved)}}
    cfg = make_cfg(fixture_root, tmp_path / "cache", model={"pretrained": str(tiny_ckpt)}, **over)
    evaluate(cfg, tmp_path / "a")
    sets = {int(c): v for c, v in json.loads(saved.read_text())["sets"].items()}
    assert set(sets) == {9, 10, 16} and all(len(v) == 20 and v[0] == c for c, v in sets.items())
    preds = read_csv(tmp_path / "a" / "predictions.csv")
    assert all(int(r["pred"]) in sets[int(r["label"])] for r in preds)
    stamp = saved.stat().st_mtime_ns
    # another model (random weights) reuses the saved sets: the file is not rewritten, its sets apply
    other = OmegaConf.merge(cfg, {"model": {"pretrained": ""}, "seed": 5})
    evaluate(other, tmp_path / "b")
    assert saved.stat().st_mtime_ns == stamp
    preds_b = read_csv(tmp_path / "b" / "predictions.csv")
    assert [r["pred"] for r in preds_b] != [r["pred"] for r in preds]  # really another model
    assert all(int(r["pred"]) in sets[int(r["label"])] for r in preds_b)


def test_local_dir_model_matches_the_weights_file(fixture_root, tiny_ckpt, tmp_path):
    """'local-dir:FOLDER' (open_clip_config.json + weights, as Hugging Face ships them) = the same weights."""
    folder = tmp_path / "tiny-dir"
    folder.mkdir()
    cfg_json = {"model_cfg": json.loads(TINY_CONFIG.read_text()), "preprocess_cfg": {}}
    (folder / "open_clip_config.json").write_text(json.dumps(cfg_json))
    cfg = make_cfg(
        fixture_root, tmp_path / "cache", model={"name": f"local-dir:{folder}", "config_file": None}
    )
    with pytest.raises(FileNotFoundError, match="holds no weights file"):
        load_encoder(
            cfg.model, torch.device("cpu")
        )  # open_clip itself would only warn and use random weights
    (folder / "open_clip_pytorch_model.bin").write_bytes(tiny_ckpt.read_bytes())
    with pytest.raises(ValueError, match="brings its own weights"):
        load_encoder(OmegaConf.merge(cfg.model, {"pretrained": str(tiny_ckpt)}), torch.device("cpu"))
    evaluate(cfg, tmp_path / "out")
    preds = read_csv(tmp_path / "out" / "predictions.csv")
    expected = _direct_open_clip_predictions(
        tiny_ckpt, fixture_root / "LAION-final", [r["path"] for r in preds]
    )
    assert [int(r["pred"]) for r in preds] == expected.tolist()


def test_imagenet_classifier_path_matches_torchvision(fixture_root, tmp_path):
    import torchvision
    from PIL import Image

    torch.manual_seed(3)
    net = torchvision.models.get_model("mobilenet_v3_small", weights=None).eval()
    weights_file = tmp_path / "mnv3.pt"
    torch.save(net.state_dict(), weights_file)
    cfg = make_cfg(
        fixture_root,
        tmp_path / "cache",
        model={
            "name": "mobilenet_v3_small",
            "pretrained": str(weights_file),
            "family": "torchvision",
            "config_file": None,
        },
        label_space="45way",
    )
    res = evaluate(cfg, tmp_path / "out")
    assert (res["family"], res["zero_shot"]) == ("torchvision", False)
    preds = read_csv(tmp_path / "out" / "predictions.csv")
    transform = torchvision.models.MobileNet_V3_Small_Weights.IMAGENET1K_V1.transforms()
    root = fixture_root / "LAION-final"
    with torch.no_grad():
        x = torch.stack([transform(Image.open(root / r["path"]).convert("RGB")) for r in preds])
        logits = net(x)
    ref45 = sorted(c.imagenet_index for c in reference_classes())
    expected = np.array(ref45)[logits[:, ref45].argmax(dim=1).numpy()]
    assert [int(r["pred"]) for r in preds] == expected.tolist()


# ---------------------------------------------------------------- issue 12: identity, like with like, errors


def test_shipped_synset_names_match_timm_and_the_folder_names():
    """The synset list equals timm's ImageNet metadata; its first lemma is CounterAnimal's folder name for all
    45 classes, while open_clip's cleaned names differ on 13 of them."""
    synset, openai = imagenet_classnames("synset"), imagenet_classnames("openai")
    assert list(synset) == [d for _, _, d in synset_rows_from_timm()] and len(synset) == 1000
    assert synset[20] == "water ouzel, dipper" and openai[20] == "American dipper"
    ref = reference_classes()
    assert all(synset[c.imagenet_index].split(", ")[0] == c.class_name for c in ref)
    assert sum(openai[c.imagenet_index] != c.class_name for c in ref) == 13
    assert SYNSET_FILE.suffix == ".csv"  # shipped as package data (pyproject: reference/*.csv)


def test_text_classifier_is_cached_by_class_names(fixture_root, tiny_ckpt, tmp_path):
    """classnames=openai and =synset give different classifiers, each equal to open_clip called directly."""
    cfg = make_cfg(fixture_root, tmp_path / "cache", model={"pretrained": str(tiny_ckpt)})
    runs = {}
    for names in ("openai", "synset"):
        runs[names] = evaluate(OmegaConf.merge(cfg, {"classnames": names}), tmp_path / names)
        preds = read_csv(tmp_path / names / "predictions.csv")
        direct = _direct_open_clip_predictions(
            tiny_ckpt,
            fixture_root / "LAION-final",
            [r["path"] for r in preds],
            list(imagenet_classnames(names)),
        )
        assert [int(r["pred"]) for r in preds] == direct.tolist()
        assert runs[names]["classnames"] == names
    assert runs["openai"]["text_classifier"] != runs["synset"]["text_classifier"]
    assert runs["openai"]["feature_cache"] == runs["synset"]["feature_cache"]
    assert "WordNet" in runs["synset"]["classnames_source"]


def test_evaluator_on_real_photographs(tiny_ckpt, tmp_path):
    """Crops of scikit-learn's two bundled photographs, beside the generated images of the other tests."""
    base = make_counteranimal(tmp_path / "photos", n_classes=2, n_common=3, n_counter=2, photos=True, size=64)
    res = evaluate(make_cfg(base, tmp_path / "cache", model={"pretrained": str(tiny_ckpt)}), tmp_path / "out")
    preds = read_csv(tmp_path / "out" / "predictions.csv")
    assert len(preds) == 10  # 11 images listed, the corrupt one skipped
    direct = _direct_open_clip_predictions(tiny_ckpt, base, [r["path"] for r in preds])
    assert [int(r["pred"]) for r in preds] == direct.tolist()
    from PIL import Image

    with Image.open(base / preds[0]["path"]) as im:  # a photograph, not noise: neighbouring pixels agree
        px = np.asarray(im.convert("L"), dtype=float)
    assert np.abs(np.diff(px, axis=1)).mean() < 30
    assert res["metrics"]["n_common"] + res["metrics"]["n_counter"] == 10


def test_group_prefixes_match_in_any_case(tmp_path):
    base = make_counteranimal(tmp_path, n_classes=2, n_common=2, n_counter=2, corrupt=False, stray=False)
    (base / "10 brambling" / "counter-sky").rename(base / "10 brambling" / "Counter-Sky")
    data = scan(base)
    counter = [r for r in data.records if r.label == 10 and r.group == "counter"]
    assert len(counter) == 2 and counter[0].background == "Sky" and data.ignored == []


def test_duplicate_indices_are_an_error_naming_both_folders(tmp_path):
    base = make_counteranimal(tmp_path, n_classes=1, n_common=1, n_counter=1, corrupt=False, stray=False)
    (base / "9 ostrich copy" / "common-ground").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match="9: '9 ostrich', '9 ostrich copy'"):
        scan(base)


def test_out_of_range_label_is_listed_and_not_scored(tiny_ckpt, tmp_path):
    base = make_counteranimal(
        tmp_path / "d", n_classes=2, n_common=2, n_counter=2, corrupt=False, stray=False
    )
    (base / "9 ostrich").rename(base / "1009 ostrich")
    res = evaluate(make_cfg(base, tmp_path / "cache", model={"pretrained": str(tiny_ckpt)}), tmp_path / "out")
    assert {"path": "1009 ostrich", "reason": "ImageNet index 1009 is outside 0..999"} in res[
        "ignored_folders"
    ]
    preds = read_csv(tmp_path / "out" / "predictions.csv")
    assert {int(r["label"]) for r in preds} == {10} and res["metrics"]["n_classes"] == 1


def test_symlinked_group_outside_its_class_is_listed_not_read(tiny_ckpt, tmp_path):
    base = make_counteranimal(
        tmp_path / "d", n_classes=2, n_common=2, n_counter=3, corrupt=False, stray=False
    )
    os.symlink(base / "10 brambling" / "counter-sky", base / "9 ostrich" / "counter-lake")
    data = scan(base)
    assert [d.path for d in data.ignored] == ["9 ostrich/counter-lake"]
    assert "resolves outside its class folder" in data.ignored[0].reason
    assert sum(r.label == 9 and r.group == "counter" for r in data.records) == 3  # counter-water only
    res = evaluate(make_cfg(base, tmp_path / "cache", model={"pretrained": str(tiny_ckpt)}), tmp_path / "out")
    assert res["ignored_folders"][0]["path"] == "9 ostrich/counter-lake" and res["metrics"]["n_counter"] == 6


def test_class_missing_a_group_is_left_out_of_both_and_listed(tiny_ckpt, tmp_path, caplog):
    """An empty counter folder: its class leaves both means (a warning and results.json say so)."""
    base = make_counteranimal(tmp_path / "d", n_classes=3, n_common=[2, 3, 2], n_counter=2, corrupt=False)
    for f in (base / "16 bulbul" / "counter-grass").iterdir():
        f.unlink()
    cfg = make_cfg(base, tmp_path / "cache", model={"pretrained": str(tiny_ckpt)})
    with caplog.at_level(logging.WARNING, logger="realdata"):
        res = evaluate(cfg, tmp_path / "out")
    assert res["classes_missing_a_group"] == [
        {"imagenet_index": 16, "class_name": "bulbul", "missing": ["counter"]}
    ]
    assert any("16 bulbul (no counter)" in r.getMessage() for r in caplog.records)
    preds = read_csv(tmp_path / "out" / "predictions.csv")
    assert sum(r["label"] == "16" for r in preds) == 2  # still predicted and written
    acc = {
        (c, g): np.mean([r["correct"] == "1" for r in preds if r["label"] == c and r["group"] == g])
        for c in ("9", "10")
        for g in ("common", "counter")
    }
    m = res["metrics"]
    assert m["acc_common"] == pytest.approx((acc["9", "common"] + acc["10", "common"]) / 2)
    assert m["acc_counter"] == pytest.approx((acc["9", "counter"] + acc["10", "counter"]) / 2)
    assert (m["n_common"], m["n_counter"], m["n_classes"]) == (5, 4, 2)


def test_all_counter_folders_empty_is_a_failed_run_with_the_reason(tiny_ckpt, tmp_path):
    base = make_counteranimal(
        tmp_path / "d", n_classes=2, n_common=2, n_counter=0, corrupt=False, stray=False
    )
    cfg = make_cfg(base, tmp_path / "cache", model={"pretrained": str(tiny_ckpt)})
    with pytest.raises(DatasetLayoutError, match="no counter images"):
        evaluate(cfg, tmp_path / "out")
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["status"] == "failed" and "no counter images" in res["error"]
    assert not (tmp_path / "cache" / "features").exists()  # stopped before any extraction
    # both groups have images, but no class has both: no like-with-like accuracy either
    for f in (base / "9 ostrich" / "common-ground").iterdir():
        os.replace(f, base / "9 ostrich" / "counter-water" / f.name)  # ostrich: counter only
    with pytest.raises(ValueError, match="no class .* has readable images in both groups"):
        evaluate(cfg, tmp_path / "out2")
    assert json.loads((tmp_path / "out2" / "results.json").read_text())["status"] == "failed"


def test_root_without_a_readable_image_says_so_with_the_count(tiny_ckpt, tmp_path):
    base = make_counteranimal(
        tmp_path / "d", n_classes=1, n_common=2, n_counter=1, corrupt=False, stray=False
    )
    for f in base.rglob("img_*"):
        f.write_bytes(b"not an image")
    cfg = make_cfg(base, tmp_path / "cache", model={"pretrained": str(tiny_ckpt)})
    with pytest.raises(ValueError, match="no readable image under .*all 3 image files tried"):
        evaluate(cfg, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "results.json").read_text())["status"] == "failed"


def test_junk_weights_file_is_named(fixture_root, tmp_path):
    junk = tmp_path / "weights.pt"
    junk.write_bytes(b"definitely not a checkpoint" * 100)
    cfg = make_cfg(fixture_root, tmp_path / "cache", model={"pretrained": str(junk)})
    with pytest.raises(ValueError, match=f"model.pretrained='{junk}' is not a checkpoint"):
        evaluate(cfg, tmp_path / "out")
    tv = {"name": "mobilenet_v3_small", "pretrained": str(junk), "family": "torchvision", "config_file": None}
    with pytest.raises(ValueError, match="is not a checkpoint"):
        evaluate(make_cfg(fixture_root, tmp_path / "cache", model=tv), tmp_path / "out2")


def test_one_vs_20_without_reference_fails_before_extraction(fixture_root, tiny_ckpt, tmp_path):
    cfg = make_cfg(
        fixture_root,
        tmp_path / "cache",
        model={"pretrained": str(tiny_ckpt)},
        label_space="1v20",
        one_vs_20={
            "file": str(tmp_path / "sets.json"),
            "reference": {"pretrained": str(tmp_path / "gone.pt")},
        },
    )
    with pytest.raises(RuntimeError, match="one_vs_20.file=.*sets.json.*one_vs_20.reference") as err:
        evaluate(cfg, tmp_path / "out")
    assert "gone.pt" in str(err.value)
    assert not (tmp_path / "cache" / "features").exists()  # no image was read for any model


def test_one_vs_20_both_readings_are_selectable_and_recorded(fixture_root, tiny_ckpt, tmp_path):
    ref = {"name": "tiny-clip", "pretrained": str(tiny_ckpt), "config_file": str(TINY_CONFIG), "kind": "clip"}
    sizes = {}
    for inside in (True, False):
        over = {"label_space": "1v20", "one_vs_20": {"reference": ref, "k": 5, "true_class_in_k": inside}}
        cfg = make_cfg(fixture_root, tmp_path / "cache", model={"pretrained": str(tiny_ckpt)}, **over)
        res = evaluate(cfg, tmp_path / f"out-{inside}")
        sets, _ = json.loads(Path(res["one_vs_20_file"]).read_text()).pop("sets"), None
        sizes[inside] = {len(v) for v in sets.values()}
        assert res["one_vs_20"]["true_class_in_k"] is inside and res["one_vs_20"]["n_candidates"] == (
            5 if inside else 6
        )
        assert res["config"]["one_vs_20"]["true_class_in_k"] is inside
    assert sizes == {True: {5}, False: {6}}
    # a sets file made elsewhere (no metadata): its reading follows from the set sizes, and must match
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"sets": {"9": [9, 1, 2], "10": [10, 1, 2], "16": [16, 1, 2]}}))
    over = {"label_space": "1v20", "one_vs_20": {"file": str(foreign), "k": 3}}
    cfg = make_cfg(fixture_root, tmp_path / "cache", model={"pretrained": str(tiny_ckpt)}, **over)
    assert evaluate(cfg, tmp_path / "foreign")["one_vs_20"]["n_candidates"] == 3
    with pytest.raises(ValueError, match=r"one_vs_20.file.*sets of \[3\] labels.*true_class_in_k=False"):
        evaluate(OmegaConf.merge(cfg, {"one_vs_20": {"true_class_in_k": False}}), tmp_path / "foreign2")


def test_truncated_cache_chunk_is_named_and_rebuilt(fixture_root, tiny_ckpt, tmp_path, caplog):
    cfg = make_cfg(fixture_root, tmp_path / "cache", model={"pretrained": str(tiny_ckpt)})
    first = evaluate(cfg, tmp_path / "a")
    chunk = Path(first["feature_cache"]) / "chunk-00000.npz"
    chunk.write_bytes(chunk.read_bytes()[:100])
    with caplog.at_level(logging.WARNING):
        second = evaluate(cfg, tmp_path / "b")
    assert any(str(chunk) in r.getMessage() and "rebuilding" in r.getMessage() for r in caplog.records)
    assert second["metrics"] == first["metrics"]
    assert read_csv(tmp_path / "a" / "predictions.csv") == read_csv(tmp_path / "b" / "predictions.csv")


def test_failed_rerun_keeps_the_earlier_good_result(fixture_root, tiny_ckpt, tmp_path):
    cfg = make_cfg(fixture_root, tmp_path / "cache", model={"pretrained": str(tiny_ckpt)})
    good = evaluate(cfg, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="typo"):
        evaluate(OmegaConf.merge(cfg, {"data": {"root": str(tmp_path / "typo")}}), tmp_path / "out")
    assert json.loads((tmp_path / "out" / "results.json").read_text())["status"] == "failed"
    (kept,) = (tmp_path / "out").glob("earlier-*/results.json")
    earlier = json.loads(kept.read_text())
    assert earlier["status"] == "ok" and earlier["metrics"] == good["metrics"]
    assert (kept.parent / "predictions.csv").is_file() and (kept.parent / "per_class.csv").is_file()


def test_zoo_metadata_only_when_the_run_is_the_zoo_entry(fixture_root, tiny_ckpt, tmp_path):
    from realdata.__main__ import zoo_entry_of

    meta = {
        "pretrained": str(tiny_ckpt),
        "backbone": "ViT-B/32",
        "pretrain_data": "LAION400M",
        "paper_common": 67.13,
    }
    cfg = make_cfg(fixture_root, tmp_path / "cache", model=meta)
    other = evaluate(cfg, tmp_path / "a", zoo_entry=None)
    assert other["zoo_entry"] is None and "zoo" not in other
    assert not set(ZOO_FIELDS) & set(other["config"]["model"])
    assert other["run_name"] == "tiny-clip_tiny" and other["model"] == "tiny-clip"
    entry = evaluate(cfg, tmp_path / "b", zoo_entry="my_entry")
    assert entry["zoo_entry"] == "my_entry" and entry["zoo"]["paper_common"] == 67.13
    assert entry["config"]["model"]["backbone"] == "ViT-B/32"  # the old field names, kept for zoo runs
    assert zoo_entry_of("tiny", ["data.root=/x", "label_space=45way"]) == "tiny"
    assert zoo_entry_of("tiny", ["model.pretrained=/x.pt"]) is None
    assert zoo_entry_of("tiny", ["+model.force_quick_gelu=true"]) is None


def test_ctrl_c_leaves_status_interrupted(fixture_root, tiny_ckpt, tmp_path, monkeypatch):
    from realdata.models import LoadedModel

    def stop(self, images, positions):
        raise KeyboardInterrupt

    monkeypatch.setattr(LoadedModel, "encode", stop)
    cfg = make_cfg(fixture_root, tmp_path / "cache", model={"pretrained": str(tiny_ckpt)})
    with pytest.raises(KeyboardInterrupt):
        evaluate(cfg, tmp_path / "out")
    text = (tmp_path / "out" / "results.json").read_text()
    res = json.loads(text)
    assert res["status"] == "interrupted" and "SIGINT" in res["error"] and "NaN" not in text
    assert res["data_root"].endswith("LAION-final")  # the checkpointed listing survives


def test_open_clip_info_is_hidden_unless_verbose(tiny_ckpt, caplog, open_clip):
    mcfg = OmegaConf.merge(
        OmegaConf.structured(RealdataConfig().model),
        {"name": "tiny-clip", "pretrained": str(tiny_ckpt), "config_file": str(TINY_CONFIG)},
    )
    prefix = str(Path(open_clip.__file__).parent)
    seen = {}
    for verbose in (False, True):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            describe(mcfg, torch.device("cpu"), verbose=verbose).encoder()
        seen[verbose] = [
            r for r in caplog.records if r.pathname.startswith(prefix) and r.levelno == logging.INFO
        ]
    assert seen[False] == [] and len(seen[True]) > 0
