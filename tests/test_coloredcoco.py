"""ColoredCOCO builder (realdata.coloredcoco) on a generated COCO-format fixture, read through pycocotools."""

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from realdata import coloredcoco as cc

N = {"n_train": 4, "n_id_test": 3, "n_ood_test": 2}
# pycocotools 2.0.11 under numpy 2 warns about __array__(copy=...) on every decode
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.mask")


@pytest.fixture(scope="session")
def coco_root(tmp_path_factory) -> Path:
    return cc.make_fixture(tmp_path_factory.mktemp("coco"), n_per_class=10, n_val=2)


@pytest.fixture(scope="session")
def built(coco_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("built") / "cc"
    cc.build(cc.BuildConfig(coco=cc.CocoSource(root=str(coco_root)), out=str(out), **N))
    return out


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_manifest_columns_counts_colours_and_captions(built):
    rows = _rows(built / "manifest.csv")
    for col in (
        "path",
        "split",
        "label",
        "class_name",
        "colour_rgb",
        "colour_name",
        "caption_obj",
        "caption_objbkg",
    ):
        assert col in rows[0]
    assert len(rows) == 9 * sum(N.values())
    randoms = {tuple(c["rgb"]) for c in json.loads((built / "build.json").read_text())["random_colours"]}
    assert len(randoms) == 10
    for c in randoms:  # squared distance > 2500 from every biased colour
        assert min(sum((a - b) ** 2 for a, b in zip(c, bc, strict=True)) for bc in cc.BIASED_RGB) > 2500
    for r in rows:
        ci = int(r["label"])
        assert cc.CLASSES[ci] == r["class_name"]
        rgb = tuple(int(v) for v in r["colour_rgb"].split(","))
        own = cc.BIASED_RGB[ci]
        if r["split"] == "id_test":
            assert rgb == own
        elif r["split"] == "ood_test":
            assert rgb != own and rgb in cc.BIASED_RGB
        else:
            assert rgb == own or rgb in randoms
        assert r["caption_obj"] == f"a photo of {r['class_name']}"
        assert r["caption_objbkg"] == f"a photo of {r['class_name']} in {r['colour_name']} background"
        assert Image.open(built / r["path"]).size == (64, 64)
    for split, n in zip(cc.SPLITS, N.values(), strict=True):
        assert len(_rows(built / f"{split}.csv")) == 9 * n
    # images never repeat across splits
    ids = [(r["coco_split"], r["coco_image_id"]) for r in rows]
    assert len(set(ids)) == len(ids)


def test_instances_and_pixels_match_pycocotools(built, coco_root):
    """The chosen instance is the largest non-crowd one; background pixels are colour * 0.75, and their
    share matches the instance's mask area from pycocotools (independently decoded)."""
    from pycocotools.coco import COCO

    coco = COCO(str(coco_root / "annotations" / "instances_train2017.json"))
    for r in _rows(built / "manifest.csv")[::5]:
        img_id, ann_id = int(r["coco_image_id"]), int(r["coco_ann_id"])
        cat = coco.getCatIds(catNms=[r["class_name"]])
        anns = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=img_id, catIds=cat)) if not a["iscrowd"]]
        assert max(anns, key=lambda a: a["area"])["id"] == ann_id
        ann = coco.loadAnns(ann_id)[0]
        assert ann["area"] >= 10000
        mask_share = coco.annToMask(ann).mean()
        pixels = np.asarray(Image.open(built / r["path"])).astype(int)
        field = np.rint(np.array([int(v) for v in r["colour_rgb"].split(",")]) * 0.75).astype(int)
        background = (pixels == field).all(-1)
        assert tuple(pixels[0, 0]) == tuple(field)
        assert abs(background.mean() - (1 - mask_share)) < 0.04


def test_build_is_deterministic_and_a_rerun_keeps_a_finished_build(built, coco_root, tmp_path, capsys):
    out = tmp_path / "again"
    cc.build(cc.BuildConfig(coco=cc.CocoSource(root=str(coco_root)), out=str(out), **N))
    assert (out / "manifest.csv").read_text() == (built / "manifest.csv").read_text()
    first = _rows(out / "manifest.csv")[7]["path"]
    assert (out / first).read_bytes() == (built / first).read_bytes()
    stamp = os.stat(out / "manifest.csv").st_mtime_ns
    cc.build(cc.BuildConfig(coco=cc.CocoSource(root=str(coco_root)), out=str(out), **N))
    assert "already built" in capsys.readouterr().out
    with pytest.raises(cc.BuildError, match="already holds a finished build"):
        cc.build(cc.BuildConfig(coco=cc.CocoSource(root=str(coco_root)), out=str(out), **{**N, "seed": 1}))
    assert os.stat(out / "manifest.csv").st_mtime_ns == stamp
    other = tmp_path / "seed1"
    cc.build(cc.BuildConfig(coco=cc.CocoSource(root=str(coco_root)), out=str(other), **{**N, "seed": 1}))
    assert (other / "manifest.csv").read_text() != (out / "manifest.csv").read_text()


def test_colour_plan_follows_the_confounder_strength():
    cfg = cc.BuildConfig(coco=cc.CocoSource(root="x"), out="y")
    randoms = cc.random_colours(10, 0)
    rng = np.random.default_rng(0)
    plan = cc._colour_plan(cfg, 3, "train", 20000, rng, randoms)
    biased = np.mean([rgb == cc.BIASED_RGB[3] for rgb, _ in plan])
    assert abs(biased - 0.8) < 0.01
    ood = [rgb for rgb, _ in cc._colour_plan(cfg, 3, "ood_test", 16000, rng, randoms)]
    counts = {c: ood.count(c) for c in set(ood)}
    assert set(counts) == set(cc.BIASED_RGB) - {cc.BIASED_RGB[3]}
    assert max(counts.values()) - min(counts.values()) < 200  # uniform over the other 8 (2000 each)


def test_build_error_paths(coco_root, tmp_path):
    with pytest.raises(cc.BuildError, match="instances_train2017.json"):
        cc.build(cc.BuildConfig(coco=cc.CocoSource(root=str(tmp_path)), out=str(tmp_path / "o")))
    with pytest.raises(cc.BuildError, match="class 'boat'.*fewer than the 1000 needed"):
        cc.build(cc.BuildConfig(coco=cc.CocoSource(root=str(coco_root)), out=str(tmp_path / "o")))
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").rglob("*.png"))  # checked before writing
    # test images from val2017: 2 qualifying per class there
    with pytest.raises(cc.BuildError, match="instances_val2017.json has 2 images"):
        cc.build(
            cc.BuildConfig(
                coco=cc.CocoSource(root=str(coco_root), test_split="val2017"),
                out=str(tmp_path / "v"),
                n_train=2,
                n_id_test=2,
                n_ood_test=1,
            )
        )
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "annotations").mkdir()
    (bad / "annotations" / "instances_train2017.json").write_text("{not json")
    with pytest.raises(cc.BuildError, match="not a COCO instances file"):
        cc.build(cc.BuildConfig(coco=cc.CocoSource(root=str(bad)), out=str(tmp_path / "b")))
    assert cc.main(["build", "out=/x"]) == 2  # coco.root missing
    assert cc.main(["build", f"coco.root={coco_root}", "out=/x", "n_trian=3"]) == 2  # misspelt key


def test_an_unreadable_image_is_a_listed_skip(tmp_path):
    """Break an image the build draws: the rebuild lists it as skipped and takes the next qualifying one;
    with too few readable images left, the error names the class."""
    root = cc.make_fixture(tmp_path / "coco", n_per_class=3, n_val=0)
    counts = {"n_train": 1, "n_id_test": 1, "n_ood_test": 0}
    cc.build(cc.BuildConfig(coco=cc.CocoSource(root=str(root)), out=str(tmp_path / "clean"), **counts))
    used = [r for r in _rows(tmp_path / "clean" / "manifest.csv") if r["class_name"] == "zebra"]
    from pycocotools.coco import COCO

    coco = COCO(str(root / "annotations" / "instances_train2017.json"))
    broken = root / "train2017" / coco.loadImgs(int(used[0]["coco_image_id"]))[0]["file_name"]
    broken.write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    cc.build(cc.BuildConfig(coco=cc.CocoSource(root=str(root)), out=str(out), **counts))
    skipped = json.loads((out / "build.json").read_text())["skipped"]
    assert [s["path"] for s in skipped] == [str(broken)] and skipped[0]["reason"]
    zebras = [r for r in _rows(out / "manifest.csv") if r["class_name"] == "zebra"]
    assert len(zebras) == 2 and used[0]["coco_image_id"] not in {r["coco_image_id"] for r in zebras}
    (root / "train2017" / coco.loadImgs(int(used[1]["coco_image_id"]))[0]["file_name"]).write_bytes(b"")
    with pytest.raises(cc.BuildError, match="class 'zebra'.*ran out of qualifying images"):
        cc.build(cc.BuildConfig(coco=cc.CocoSource(root=str(root)), out=str(tmp_path / "o2"), **counts))


@pytest.mark.slow  # importing open_clip_train.data (webdataset, pandas) takes seconds
def test_open_clip_csv_training_reads_the_split_files(built, monkeypatch):
    import open_clip
    from open_clip_train.data import CsvDataset

    from realdata.families.open_clip import register_config_file
    from realdata.fixture import TINY_CONFIG

    register_config_file(TINY_CONFIG, "tiny-clip")
    _, _, preprocess = open_clip.create_model_and_transforms("tiny-clip")
    monkeypatch.chdir(built)  # the paths are relative to the build folder
    ds = CsvDataset(
        "train.csv",
        preprocess,
        "path",
        "caption_objbkg",
        sep=",",
        tokenizer=open_clip.get_tokenizer("tiny-clip"),
    )
    image, text = ds[0]
    assert len(ds) == 9 * N["n_train"] and image.shape == (3, 32, 32) and text.shape == (16,)
