"""Fine-tuning on ColoredCOCO (realdata.finetune) with a tiny open_clip model on the generated fixture, and
the Table 7 aggregation (paper_figs.coloredcoco)."""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from realdata import coloredcoco as cc
from realdata import finetune as ft
from realdata.fixture import TINY_CONFIG

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf" / "realdata"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.mask")
TINY = ["model.name=tiny-clip", "model.pretrained=", f"model.config_file={TINY_CONFIG}"]
# 36 training images, batch 18: 2 steps per epoch, a checkpoint each epoch
TRAIN = ["train.steps=24", "train.batch_size=18", "train.lr=1e-3", "captions=obj"]
# one thread, as the other realdata test modules: torch's default (every core) only spins on 2 shared cores
torch.set_num_threads(1)


def _cfg(manifest: Path, *overrides: str):
    ft.register()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("finetune", overrides=[f"data.manifest={manifest}", *TINY, *TRAIN, *overrides])


@pytest.fixture(scope="session")
def manifest(tmp_path_factory) -> Path:
    root = cc.make_fixture(tmp_path_factory.mktemp("coco"), n_per_class=9, n_val=0)
    out = tmp_path_factory.mktemp("built") / "cc"
    return cc.build(
        cc.BuildConfig(coco=cc.CocoSource(root=str(root)), out=str(out), n_train=4, n_id_test=3, n_ood_test=2)
    )


@pytest.fixture(scope="session")
def clip_run(manifest, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("clip")
    return {**ft.run(_cfg(manifest), out), "_dir": out}


def test_losses_match_open_clip_and_a_naive_formula():
    from open_clip.loss import ClipLoss, SigLipLoss

    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(6, 8, generator=g), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(6, 8, generator=g), dim=-1)
    scale, bias = torch.tensor(7.0), torch.tensor([-2.0])
    ids = torch.tensor([0, 1, 0, 2, 1, 0])  # repeated captions
    i, t = img.double().numpy(), txt.double().numpy()
    logits = 7.0 * i @ t.T

    def ce(rows_logits, allowed):
        out = []
        for r in range(len(rows_logits)):
            keep = allowed[r]
            out.append(-(rows_logits[r, r] - np.log(np.exp(rows_logits[r, keep]).sum())))
        return np.mean(out)

    all_pairs = np.ones((6, 6), bool)
    distinct = (ids.numpy()[:, None] != ids.numpy()[None, :]) | np.eye(6, dtype=bool)
    for same_negatives, allowed in ((True, all_pairs), (False, distinct)):
        cfg = OmegaConf.create({"objective": "clip", "same_caption_negatives": same_negatives})
        ours = ft.batch_loss(cfg, lambda a, b: (img, txt, scale), ClipLoss(), None, None, caption_ids=ids)
        naive = (ce(logits, allowed) + ce(logits.T, allowed.T)) / 2
        assert float(ours) == pytest.approx(naive, rel=1e-5)
        if same_negatives:
            assert float(ours) == pytest.approx(float(ClipLoss()(img, txt, scale)), rel=1e-6)
    for same_negatives, allowed in ((True, all_pairs), (False, distinct)):
        cfg = OmegaConf.create({"objective": "siglip", "same_caption_negatives": same_negatives})
        ours = ft.batch_loss(
            cfg, lambda a, b: (img, txt, scale, bias), SigLipLoss(), None, None, caption_ids=ids
        )
        z = logits - 2.0
        sign = 2 * np.eye(6) - 1
        naive = (np.log1p(np.exp(-sign * z)) * allowed).sum() / 6
        assert float(ours) == pytest.approx(naive, rel=1e-5)
        if same_negatives:
            assert float(ours) == pytest.approx(float(SigLipLoss()(img, txt, scale, bias)), rel=1e-6)


def test_one_optimiser_step_matches_a_direct_open_clip_step(manifest):
    import open_clip
    from open_clip.loss import ClipLoss
    from open_clip_train.scheduler import cosine_lr

    from realdata.families.open_clip import register_config_file

    cfg = _cfg(manifest, "train.wd=0.1", "train.lr=1e-2")
    register_config_file(TINY_CONFIG, "tiny-clip")
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-clip")
    twin = copy.deepcopy(model)
    data, _ = ft.load_manifest(manifest)
    pre = ft.Preprocess(model)
    images = pre(data["train"].images[:8])
    texts = open_clip.get_tokenizer("tiny-clip")([r["caption_obj"] for r in data["train"].rows[:8]])

    opt = ft.make_optimizer(cfg, model)
    cosine_lr(opt, cfg.train.lr, 0, cfg.train.steps)(0)
    ft.batch_loss(cfg, model, ft.make_loss(cfg), images, texts).backward()
    opt.step()

    decay = [p for n, p in twin.named_parameters() if p.ndim >= 2 and "logit_scale" not in n]
    rest = [p for n, p in twin.named_parameters() if not (p.ndim >= 2 and "logit_scale" not in n)]
    direct = torch.optim.AdamW(
        [{"params": rest, "weight_decay": 0.0}, {"params": decay, "weight_decay": 0.1}],
        lr=1e-2,
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    ClipLoss()(*twin(images, texts)).backward()
    direct.step()
    for (name, a), b in zip(model.named_parameters(), twin.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-7), name


def test_clip_fine_tuning_learns_and_records_the_run_contract(clip_run):
    r = clip_run
    assert r["status"] == "ok" and r["kind"] == "coloredcoco" and r["method"] == "clip_obj"
    curve = r["loss_curve"]
    assert len(curve) == 24 and np.mean(curve[-4:]) < np.mean(curve[:4]) - 0.2
    m = r["metrics"]
    assert m["acc_id"] > 1 / 9 + 0.1  # chance is 1/9
    assert m["drop"] == pytest.approx(m["acc_id"] - m["acc_ood"])
    assert m["n_id"] == 27 and m["n_ood"] == 18
    assert set(m["per_class"]["id_test"]) == set(cc.CLASSES)
    assert set(m["per_colour"]["id_test"]) == set(cc.BIASED_NAMES)
    assert 0 <= r["zero_shot_metrics"]["acc_id"] <= 1 and r["negatives"] == "all_other_pairs"
    assert r["hyperparameters"] == {"lr": 1e-3, "wd": 0.1, "warmup": 0, "steps": 24, "batch_size": 18}
    assert r["checkpoint"] is None and not (r["_dir"] / ft.CHECKPOINT).exists()  # kept only when asked
    on_disk = json.loads((r["_dir"] / "results.json").read_text())
    assert on_disk["metrics"] == m and on_disk["config"]["objective"] == "clip"


class Killed(BaseException):
    """Stands in for SIGKILL: like a killed process, nothing catches it, so no final record is written."""


@pytest.mark.parametrize("how", [KeyboardInterrupt, Killed])
def test_resume_after_an_interruption_gives_the_same_numbers(manifest, clip_run, tmp_path, capsys, how):
    def stop(step):
        if step == 10:
            raise how

    with pytest.raises(how):
        ft.run(_cfg(manifest), tmp_path, on_checkpoint=stop)
    left = json.loads((tmp_path / "results.json").read_text())
    assert left["status"] == "interrupted" and (tmp_path / ft.CHECKPOINT).exists()
    if how is Killed:  # the record is the last checkpoint's, as a SIGKILLed run leaves it
        assert left["checkpoint_step"] == 10 and left["error"].startswith("not finished")
    resumed = ft.run(_cfg(manifest), tmp_path)
    assert "resuming at step 10" in capsys.readouterr().out
    assert resumed["loss_curve"] == clip_run["loss_curve"]
    assert resumed["metrics"] == clip_run["metrics"]
    assert not (tmp_path / ft.CHECKPOINT).exists()  # train.keep_checkpoint=false
    if how is KeyboardInterrupt:
        again = ft.run(_cfg(manifest), tmp_path)  # finished with this config: returned as it is
        assert "nothing to do" in capsys.readouterr().out and again["metrics"] == resumed["metrics"]


def test_supervised_baseline_siglip_and_a_diverged_run(manifest, tmp_path):
    import open_clip

    from realdata.families.open_clip import register_config_file

    register_config_file(TINY_CONFIG, "tiny-clip")
    torch.manual_seed(3)
    weights = tmp_path / "tiny.pt"
    torch.save(open_clip.create_model("tiny-clip").state_dict(), weights)  # a local weights file
    overrides = ("objective=supervised", "train.steps=8", f"model.pretrained={weights}", "zero_shot=false")
    r = ft.run(_cfg(manifest, *overrides, "train.keep_checkpoint=true"), tmp_path / "s")
    assert r["status"] == "ok" and r["method"] == "supervised" and r["captions"] is None
    assert r["pretrained"] == str(weights) and r["zero_shot_metrics"] is None
    assert np.mean(r["loss_curve"][-2:]) < r["loss_curve"][0]
    assert 0 <= r["metrics"]["acc_id"] <= 1
    kept = torch.load(r["checkpoint"], weights_only=False)  # kept when asked: the encoder and its new head
    assert kept["step"] == 8 and kept["model"]["head.2.weight"].shape == (9, 512)
    sig = ft.run(_cfg(manifest, "objective=siglip", "train.steps=4", "zero_shot=false"), tmp_path / "g")
    assert sig["status"] == "ok" and sig["method"] == "siglip_obj" and len(sig["loss_curve"]) == 4
    bad = ft.run(_cfg(manifest, "train.lr=1e30", "train.steps=6", "zero_shot=false"), tmp_path / "d")
    assert bad["status"] == "diverged" and bad["metrics"]["acc_id"] is None
    assert "non-finite loss" in bad["error"]


def _plant(root: Path, name: str, model: str, method: str, acc_id, status="ok", lr=1e-4):
    from theory.runrecord import write_results

    objective = "supervised" if method == "supervised" else method.split("_")[0]
    doc = {
        "kind": "coloredcoco",
        "model": model,
        "pretrained": "openai",
        "method": method,
        "objective": objective,
        "status": status,
        "hyperparameters": {"lr": lr, "wd": 0.1, "warmup": 0, "steps": 10},
        "metrics": {"acc_id": acc_id, "acc_ood": 0.1 if acc_id is not None else None},
        "zero_shot_metrics": {"acc_id": 0.7, "acc_ood": 0.68},
        "config": {},
    }
    write_results(root / name, doc)


def test_selection_picks_the_best_id_accuracy_and_the_table_shows_the_paper(tmp_path):
    from paper_figs import coloredcoco as fig

    res = tmp_path / "results"
    _plant(res, "a", "RN50-quickgelu", "clip_obj", 0.90, lr=1e-3)
    _plant(res, "b", "RN50-quickgelu", "clip_obj", 0.95, lr=1e-4)  # the best finished one
    _plant(res, "c", "RN50-quickgelu", "clip_obj", 0.99, status="failed", lr=1e-5)  # never chosen
    _plant(res, "d", "RN50-quickgelu", "clip_obj", None, status="diverged")
    _plant(res, "e", "RN50-quickgelu", "supervised", 0.80)
    _plant(res, "f", "ViT-B-16-quickgelu", "clip_objbkg", 0.97)
    runs, _ = fig.collect(res)
    chosen, candidates, notes = fig.select(runs)
    assert chosen[("RN50", "clip_obj")]["hyperparameters"]["lr"] == 1e-4
    assert chosen[("RN50", "zero_shot")]["metrics"]["acc_id"] == 0.7
    assert sum(c["selected"] for c in candidates) == 3 and len(notes) == 2
    paths = fig.make(tmp_path / "out", res)
    table = (tmp_path / "out" / "coloredcoco_table7.md").read_text()
    assert "95.00 (95.67)" in table and "97.00 (97.11)" in table and "- (94.44)" not in table
    assert "80.00 (94.44)" in table and "lr=0.0001" in table
    assert all(p.exists() for p in paths)
    paper_only = fig.table_rows(fig.select(fig.collect(tmp_path / "nothing")[0])[0])
    assert paper_only[0]["zero_shot ID"] == "- (69.67)" and paper_only[1]["clip_obj OOD"] == "- (21.00)"
    with pytest.raises(FileNotFoundError, match="experiment=coloredcoco"):  # the figure contract
        fig.make(tmp_path / "none", tmp_path / "nothing")


def test_configs_compose_validate_and_the_grid_is_the_papers(manifest, tmp_path):
    ft.register()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "finetune", overrides=["data.manifest=x", "experiment=coloredcoco"], return_hydra_config=True
        )
        with pytest.raises(Exception, match="train.stpes"):
            compose("finetune", overrides=["data.manifest=x", "train.stpes=3"])
    params = cfg.hydra.sweeper.params
    assert [float(v) for v in params["train.lr"].split(",")] == [1e-3, 1e-4, 1e-5]
    assert [float(v) for v in params["train.wd"].split(",")] == [1e-1, 1e-3, 1e-5]
    assert params["train.warmup"] == "0,1000" and params["objective"] == "clip,supervised"
    assert params["model.name"] == "RN50-quickgelu,ViT-B-16-quickgelu" and cfg.model.pretrained == "openai"
    for bad, match in (("objective=ce", "objective='ce'"), ("train.warmup=30", "train.warmup=30")):
        with pytest.raises(ValueError, match=match):
            ft.validate(_cfg(manifest, bad))
    from theory.runrecord import ConfigError

    with pytest.raises(ConfigError, match="data.manifest='/nowhere/manifest.csv' does not exist"):
        ft.run(_cfg(manifest, "data.manifest=/nowhere/manifest.csv"), tmp_path / "never")
    with pytest.raises(ConfigError, match="captions='cls'"):
        ft.run(_cfg(manifest, "captions=cls"), tmp_path / "never")
    assert not (tmp_path / "never").exists()  # a config error writes nothing


def _cli(args: list[str], launcher: list[str] | None = None, timeout: int = 400):
    cmd = [*(launcher or [sys.executable]), "-m", "realdata.finetune", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_python_m_realdata_finetune_grid_then_selection(manifest, tmp_path):
    """The experiment's multirun, restricted to two learning rates of the tiny model: one folder per job,
    and the aggregation picks the job with the higher ID accuracy."""
    from paper_figs import coloredcoco as fig

    _cli(
        [
            "-m",
            "experiment=coloredcoco",
            f"data.manifest={manifest}",
            *TINY,
            "objective=clip",
            "captions=obj",
            "train.lr=1e-3,1e-6",
            "train.wd=0.1",
            "train.warmup=0",
            "train.steps=8",
            "train.batch_size=18",
            "logger=tensorboard",
            f"hydra.sweep.dir={tmp_path}",
        ]
    )
    jobs = sorted(tmp_path.rglob("results.json"))
    assert all(any((p.parent / "tensorboard").glob("events.out.tfevents.*")) for p in jobs)  # logged
    names = {p.parent.name for p in jobs}
    assert names == {"lr1e-06_wd0.1_wu0_steps8_seed0", "lr0.001_wd0.1_wu0_steps8_seed0"}
    docs = [json.loads(p.read_text()) for p in jobs]
    assert all(d["status"] == "ok" and d["method"] == "clip_obj" for d in docs)
    chosen, _, _ = fig.select(fig.collect(tmp_path)[0])
    best = max(docs, key=lambda d: (d["metrics"]["acc_id"], -d["hyperparameters"]["lr"]))
    assert chosen[("tiny-clip_random", "clip_obj")]["metrics"] == best["metrics"]


@pytest.mark.slow
def test_torchrun_two_processes_match_one(manifest, tmp_path):
    """torch.distributed (gloo on CPU) through open_clip's gathered ClipLoss, a Hydra multirun under
    torchrun: 2 processes x 9 images give the loss curve of 1 process x 18 images, with identical captions
    as negatives and masked (the caption ids gathered like the features)."""
    extra = ["train.steps=4", "train.batch_size=18", "device=cpu", "dist.local_loss=true",
             "dist.gather_with_grad=true", "zero_shot=false"]  # fmt: skip
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29581"]
    sweep = ["-m", f"data.manifest={manifest}", *TINY, *TRAIN, *extra, "same_caption_negatives=true,false"]
    _cli([*sweep, f"hydra.sweep.dir={tmp_path / 'two'}"], launcher=torchrun)
    for negatives, method in (("true", "clip_obj"), ("false", "clip_obj_masked")):
        (path,) = (tmp_path / "two" / "tiny-clip_random" / method).rglob("results.json")
        two = json.loads(path.read_text())
        one = ft.run(_cfg(manifest, *extra, f"same_caption_negatives={negatives}"), tmp_path / method)
        assert two["protocol"]["world_size"] == 2 and one["protocol"]["world_size"] == 1
        assert two["status"] == one["status"] == "ok"
        np.testing.assert_allclose(two["loss_curve"], one["loss_curve"], rtol=1e-5)


@pytest.mark.coco
@pytest.mark.weights
def test_real_coloredcoco_zero_shot_rn50_matches_table7(tmp_path):
    """With SOBER_CLIP_COCO (a COCO 2017 copy) and SOBER_CLIP_WEIGHTS (holding OpenAI's RN50.pt): the
    zero-shot column of Table 7's RN50 row within 3 points."""
    weights = sorted(Path(os.environ["SOBER_CLIP_WEIGHTS"]).glob("RN50*.pt"))
    assert weights, "put OpenAI's RN50.pt in $SOBER_CLIP_WEIGHTS"
    manifest = cc.build(
        cc.BuildConfig(coco=cc.CocoSource(root=os.environ["SOBER_CLIP_COCO"]), out=str(tmp_path / "cc"))
    )
    cfg = _cfg(
        manifest,
        "model.name=RN50-quickgelu",
        f"model.pretrained={weights[0]}",
        "model.config_file=null",
        "train.steps=1",
        "train.batch_size=32",
    )
    zs = ft.run(cfg, tmp_path / "run")["zero_shot_metrics"]
    assert abs(100 * zs["acc_id"] - 69.67) < 3 and abs(100 * zs["acc_ood"] - 68.33) < 3
