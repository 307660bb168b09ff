"""realdata.curate: on a pool whose per-background accuracies are planted for two fixed fake models, the
threshold rule rebuilds the known split (classes dropped by the threshold, by min_images, with one
background), the report gives the known overlap and drops, and the split runs through realdata's evaluator
and paper_figs; `python -m realdata.curate` on the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from realdata.config import RealdataConfig
from realdata.curate import choose, curate
from realdata.evaluate import evaluate

REPO = Path(__file__).resolve().parent.parent
# A fake family: the photo's colour says its true label (red, green) and which fake model gets it right
# (blue: bit 0 the reference, bit 1 the other model); a wrong answer is the next label.
FAKE = """
import numpy as np
import torch
from realdata.families import Built

HEAD = "logits"


def identity(mcfg, seed):
    return {"name": mcfg.name, "weights": f"bit{mcfg.options['bit']}"}


def transform(image):
    pixels = np.asarray(image.convert("RGB").resize((4, 4), 0), dtype=np.int64)  # 0: nearest, exact
    return torch.from_numpy(pixels).permute(2, 0, 1)


def build(mcfg, identity, device, seed, key):
    bit = mcfg.options["bit"]

    def encode(x):
        label = x[:, 1, 0, 0] * 256 + x[:, 0, 0, 0]
        right = (x[:, 2, 0, 0] >> bit) & 1
        pred = torch.where(right == 1, label, (label + 1) % 1000)
        return torch.nn.functional.one_hot(pred, 1000).float()

    return Built(None, transform, encode=encode)
"""
# class -> background -> (reference right per photo, other model right per photo)
PLANTED = {
    "9 ostrich": {
        "grass": ([1, 1, 1, 1], [1, 0, 0, 0]),
        "water": ([1, 0, 0, 0], [1, 1, 1, 1]),
        "sand": ([1, 1, 0, 0], [1, 1, 0, 0]),
    },
    "10 brambling": {"sky": ([1, 1, 0, 0], [1, 1, 1, 1]), "tree": ([0, 0, 1, 1], [0, 0, 0, 0])},
    "16 bulbul": {"snow": ([1, 1, 1, 0], [1, 1, 1, 0]), "rock": ([1, 1, 0, 0], [1, 1, 0, 0])},
    "18 magpie": {
        "grass": ([1, 1, 1, 1], [1, 1, 1, 1]),
        "water": ([0, 0, 0, 0], [0, 0, 0, 0]),
        "indoor": ([0], [1]),
    },
    "22 bald eagle": {"sky": ([1, 0], [0, 1])},
}
THRESHOLD, MIN_IMAGES = 0.3, 2
# the known split: ostrich and magpie kept (magpie's 1-photo indoor is no candidate); brambling's and bulbul's
# spreads (0, 0.25) are not above 0.3; the eagle has one background
EXPECTED = {9: ("grass", "water"), 18: ("grass", "water")}
EXPECTED_OTHER = {9: ("water", "grass"), 10: ("sky", "tree"), 18: ("grass", "water")}


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Path:
    from PIL import Image

    top = tmp_path_factory.mktemp("pool")
    for cls, bgs in PLANTED.items():
        label = int(cls.split()[0])
        for bg, (ref, other) in bgs.items():
            (top / "photos" / cls / bg).mkdir(parents=True)
            for i, (a, b) in enumerate(zip(ref, other, strict=True)):
                colour = (label % 256, label // 256, a + 2 * b)
                Image.new("RGB", (6, 6), colour).save(top / "photos" / cls / bg / f"{bg}_{i}.png")
    (top / "code").mkdir()
    (top / "code" / "fake_bits.py").write_text(FAKE)
    return top


@pytest.fixture
def fake_on_path(pool, monkeypatch):
    monkeypatch.syspath_prepend(str(pool / "code"))


def fake(bit: int) -> dict:
    return {"family": "fake_bits", "name": f"fake{bit}", "pretrained": "", "options": {"bit": bit}}


def curate_cfg(pool: Path, out: Path, **over):
    with initialize_config_dir(config_dir=str(REPO / "conf" / "realdata"), version_base="1.3"):
        cfg = compose("curate", overrides=[f"images={pool / 'photos'}", f"out={out}"])
    OmegaConf.set_struct(cfg, False)  # the fake family's options are not in the default reference's YAML
    run = {"reference": fake(0), "compare": [fake(1)], "threshold": THRESHOLD, "min_images": MIN_IMAGES}
    run.update(device="cpu", num_workers=0, batch_size=5, cache_dir=str(out.parent / "cache"), progress=False)
    return OmegaConf.merge(cfg, run, over)


def planted_drop(which: int, split: dict) -> float:
    """Class-balanced common - counter accuracy of a fake model on a split, from the planted table."""
    per_class = []
    for cls, (common, counter) in split.items():
        bgs = next(b for name, b in PLANTED.items() if name.startswith(f"{cls} "))
        per_class.append(np.mean(bgs[common][which]) - np.mean(bgs[counter][which]))
    return float(np.mean(per_class))


def test_curate_rebuilds_the_planted_split_and_it_evaluates(pool, tmp_path, fake_on_path):
    from paper_figs.aggregate import load_measured, table_rows

    doc = curate(curate_cfg(pool, tmp_path / "out"))
    assert doc["status"] == "ok"
    chosen = {c["imagenet_index"]: (c["common"], c["counter"]) for c in doc["classes"] if c["kept"]}
    assert chosen == EXPECTED
    why = {c["imagenet_index"]: c["why"] for c in doc["classes"] if not c["kept"]}
    assert set(why) == {10, 16, 22} and "not above 0.3" in why[16] and "1 background(s)" in why[22]
    other = doc["compare"]["compare[0]"]
    assert {
        int(c): (x["common"], x["counter"]) for c, x in other["chosen"].items() if x["kept"]
    } == EXPECTED_OTHER
    assert other["overlap_with_reference"] == {
        "classes_kept_by_both": 2,
        "classes_kept_by_either": 3,
        "same_pairs": 1,
        "pair_jaccard": 0.25,
    }
    # the drop of each model on each model's split, against the planted accuracies
    for chooser, split in (("reference", EXPECTED), ("compare[0]", EXPECTED_OTHER)):
        for which in (0, 1):
            got = doc["drops"][chooser][f"fake{which}_random"]["drop"]
            assert got == pytest.approx(planted_drop(which, split)), (chooser, which)
    assert doc["drops"]["reference"]["fake0_random"]["drop"] == pytest.approx(0.875)  # the chooser's own

    split = tmp_path / "out" / "split"
    folders = sorted(str(p.relative_to(split)) for p in split.glob("*/*"))
    assert folders == [
        "18 magpie/common-grass",
        "18 magpie/counter-water",
        "9 ostrich/common-grass",
        "9 ostrich/counter-water",
    ]
    manifest = json.loads((split / "manifest.json").read_text())
    assert len(manifest["files"]) == 16 and manifest["threshold"] == THRESHOLD

    # the split is a CounterAnimal folder: the evaluator on it gives the reference's planted accuracies
    cfg = OmegaConf.merge(
        OmegaConf.structured(RealdataConfig),
        {
            "data": {"root": str(split)},
            "model": fake(0),
            "device": "cpu",
            "num_workers": 0,
            "progress": False,
        },
        {"cache_dir": str(tmp_path / "cache"), "label_space": "1v1000"},
    )
    res = evaluate(cfg, tmp_path / "eval")
    assert res["metrics"]["acc_common"] == pytest.approx(1.0) and res["metrics"]["acc_counter"] == 0.125
    assert res["metrics"]["drop"] == pytest.approx(doc["drops"]["reference"]["fake0_random"]["drop"])
    (measured,), _ = load_measured([tmp_path / "eval"])
    assert measured.point.drop == pytest.approx(87.5) and measured.point.kind == "imagenet"  # not zero-shot
    assert table_rows([measured])[0]["family"] == "fake_bits"
    import matplotlib.pyplot as plt

    from paper_figs import fig_common_vs_counter as fig2

    fig = fig2.draw([measured.point])  # Figure 2 draws it at (common, counter) in percent
    drawn = [xy for ax in fig.axes for c in ax.collections for xy in np.asarray(c.get_offsets()).tolist()]
    assert [100.0, 12.5] in drawn
    plt.close(fig)

    # the same photos listed in a CSV (path, class, background) give the same split
    photos = pool / "photos"
    listing = ["path,class,background"] + [
        f"{f.relative_to(photos).as_posix()},{f.parent.parent.name},{f.parent.name}"
        for f in sorted(photos.rglob("*.png"))
    ]
    (photos / "pool.csv").write_text("\n".join(listing) + "\n")
    by_csv = curate(curate_cfg(pool, tmp_path / "csv", images=None, csv=str(photos / "pool.csv")))
    assert [
        (c["imagenet_index"], c["kept"], c.get("common"), c.get("counter")) for c in by_csv["classes"]
    ] == [(c["imagenet_index"], c["kept"], c.get("common"), c.get("counter")) for c in doc["classes"]]
    with pytest.raises(FileExistsError, match="split exists"):
        curate(curate_cfg(pool, tmp_path / "out"))


def test_threshold_rule_edges():
    accs = {1: {"a": (3, 0.5), "b": (3, 0.5)}, 2: {"a": (2, 0.9), "b": (2, 0.8), "c": (1, 0.0)}}
    out = choose(accs, threshold=0.05)
    assert not out[1]["kept"] and (out[1]["common"], out[1]["counter"]) == ("a", "a")  # a tie: name order
    assert out[2]["kept"] and (out[2]["common"], out[2]["counter"]) == ("a", "c")
    assert choose(accs, 0.05, min_images=2)[2]["counter"] == "b"
    assert not choose(accs, 0.1 + 1e-9, min_images=2)[2]["kept"]  # strictly more than the threshold


@pytest.mark.slow
def test_python_m_realdata_curate(pool, tmp_path):
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO), str(pool / "code")]),
    }
    common = ["device=cpu", "num_workers=0", f"cache_dir={tmp_path / 'cache'}", "progress=false"]
    ref = [
        "reference.family=fake_bits",
        "reference.name=fake0",
        "reference.pretrained=",
        "+reference.options.bit=0",
    ]
    args = [
        f"images={pool / 'photos'}",
        f"out={tmp_path / 'out'}",
        f"threshold={THRESHOLD}",
        f"min_images={MIN_IMAGES}",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "realdata.curate", *args, *ref, *common],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "kept 2 of 5 classes" in proc.stdout
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["status"] == "ok" and doc["metrics"]["drop"] == pytest.approx(0.875)
    assert doc["config"]["reference"]["family"] == "fake_bits"  # the CLI override reached the reference
    assert (tmp_path / "out" / "split" / "9 ostrich" / "counter-water" / "water_0.png").is_file()
