"""realdata model families: each family's evaluation equals its library called directly, on tiny random models
built from configs (no download): timm, transformers CLIP / SigLIP / LLaVA folders, an open_clip hf-hub: name
read from a Hugging Face cache laid out here, and a user's own family plugged in from outside the package."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from realdata.classnames import imagenet_classnames
from realdata.config import RealdataConfig, register
from realdata.dataset import reference_classes
from realdata.evaluate import evaluate
from realdata.families import FAMILIES, HEADS, family_name, load_family
from realdata.fixture import TINY_CONFIG, make_counteranimal, save_tiny_clip
from realdata.models import describe

register()
torch.set_num_threads(1)
REF45 = sorted(c.imagenet_index for c in reference_classes())
SPECIALS = ["<pad>", "<unk>", "<s>", "</s>", "<image>"]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return make_counteranimal(
        tmp_path_factory.mktemp("ca"),
        n_classes=2,
        n_common=2,
        n_counter=1,
        size=32,
        corrupt=False,
        stray=False,
    )


def cfg_for(root, tmp, model: dict, **over):
    base = OmegaConf.structured(RealdataConfig)
    run = {"data": {"root": str(root)}, "model": model, "batch_size": 4, "num_workers": 0, "device": "cpu"}
    run.update(cache_dir=str(tmp / "cache"), progress=False)
    return OmegaConf.merge(base, run, over)


def predictions(out: Path) -> list[dict]:
    with open(out / "predictions.csv", newline="") as f:
        return list(csv.DictReader(f))


def pil(root: Path, rows) -> list:
    from PIL import Image

    return [Image.open(root / r["path"]).convert("RGB") for r in rows]


def word_tokenizer(words, max_length: int, template: str):
    """A word-level fast tokenizer over the given words (built offline with `tokenizers`)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(SPECIALS + sorted(set(words) - set(SPECIALS)))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=[("<s>", 2), ("</s>", 3)]
    )
    special = dict(unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=max_length, **special), len(vocab)


def name_words() -> list[str]:
    from tokenizers import pre_tokenizers

    split = pre_tokenizers.Whitespace().pre_tokenize_str
    text = " ".join(imagenet_classnames("synset")) + " A photo of a ."
    return [w for w, _ in split(text)]


# ---------------------------------------------------------------- registry


def test_family_names_aliases_and_errors():
    for name in FAMILIES:  # every registered family is a module with the family interface
        assert load_family(name).HEAD in HEADS
    assert sorted(p.stem for p in Path(load_family("timm").__file__).parent.glob("[!_]*.py")) == sorted(
        FAMILIES
    )
    assert family_name({"kind": "clip"}) == "open_clip" and family_name({"kind": "imagenet"}) == "torchvision"
    assert family_name({}) == "open_clip" and family_name({"family": "timm"}) == "timm"
    with pytest.raises(ValueError, match="model.family='timm' and model.kind='clip'.*disagree"):
        family_name({"family": "timm", "kind": "clip"})
    with pytest.raises(ValueError, match=r"model.kind='vlm': expected one of \['clip', 'imagenet'\]"):
        family_name({"kind": "vlm"})
    with pytest.raises(
        ValueError, match=r"model.family='jax_clip': expected one of \['open_clip', 'torchvision'.*jax"
    ):
        load_family("jax_clip")
    with pytest.raises(ValueError, match="lacks HEAD, identity, build"):
        load_family("realdata.metrics")  # a module, but not a family


USER_FAMILY = '''
"""A user's family: 1000 logits that are a fixed linear map of the mean colour."""
import numpy as np
import torch
from realdata.families import Built

HEAD = "logits"


def identity(mcfg, seed):
    return {"name": mcfg.name, "weights": f"seed{mcfg.options['seed']}"}


def weights(seed):
    return torch.randn(3, 1000, generator=torch.Generator().manual_seed(seed))


def transform(image):
    return torch.from_numpy(np.asarray(image.resize((8, 8)), dtype=np.float32)).permute(2, 0, 1) / 255


def build(mcfg, identity, device, seed, key):
    w = weights(mcfg.options["seed"])
    return Built(w, transform, encode=lambda images: images.mean(dim=(2, 3)) @ w)
'''


def test_a_user_family_plugs_in_from_outside_the_package(root, tmp_path, monkeypatch):
    """One module of the user's, one YAML in a config folder of theirs (hydra.searchpath): no package edit."""
    from hydra import compose, initialize_config_dir

    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "my_mean_colour.py").write_text(USER_FAMILY)
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    (tmp_path / "conf" / "model").mkdir(parents=True)
    yaml = "family: my_mean_colour\nname: mean-colour\noptions:\n  seed: 7\n"
    (tmp_path / "conf" / "model" / "mine.yaml").write_text(yaml)
    conf = Path(__file__).resolve().parent.parent / "conf" / "realdata"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        over = [f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "model=mine", f"data.root={root}"]
        cfg = compose("realdata", overrides=over)
    cfg = OmegaConf.merge(cfg, {"device": "cpu", "num_workers": 0, "cache_dir": str(tmp_path / "c")})
    res = evaluate(cfg, tmp_path / "out")
    assert (res["family"], res["zero_shot"], res["model"]) == ("my_mean_colour", False, "mean-colour")
    import my_mean_colour

    rows = predictions(tmp_path / "out")
    x = torch.stack([my_mean_colour.transform(im) for im in pil(root, rows)])
    expected = (x.mean(dim=(2, 3)) @ my_mean_colour.weights(7)).argmax(dim=1)
    assert [int(r["pred"]) for r in rows] == expected.tolist()


# ---------------------------------------------------------------- timm


def test_timm_family_matches_timm(root, tmp_path):
    import timm
    from timm.data import create_transform, resolve_data_config

    torch.manual_seed(0)
    net = timm.create_model("test_resnet", pretrained=False).eval()
    torch.save(net.state_dict(), tmp_path / "w.pth")
    model = {"family": "timm", "name": "test_resnet", "pretrained": str(tmp_path / "w.pth")}
    res = evaluate(cfg_for(root, tmp_path, model, label_space="45way"), tmp_path / "out")
    assert (res["family"], res["zero_shot"]) == ("timm", False)
    rows = predictions(tmp_path / "out")
    transform = create_transform(**resolve_data_config({}, model=net))
    with torch.no_grad():
        logits = net(torch.stack([transform(im) for im in pil(root, rows)]))
    expected = np.array(REF45)[logits[:, REF45].argmax(dim=1).numpy()]
    assert [int(r["pred"]) for r in rows] == expected.tolist()
    with pytest.raises(ValueError, match="model.pretrained=.*: expected .*a timm tag of 'test_resnet'"):
        evaluate(cfg_for(root, tmp_path, {**model, "pretrained": "in1k_v9"}), tmp_path / "bad")


# ---------------------------------------------------------------- transformers CLIP and SigLIP


def save_hf_clip(folder: Path, siglip: bool) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, SiglipConfig, SiglipModel

    tokenizer, vocab = word_tokenizer(name_words(), 16, "$A </s>")
    text = dict(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1)
    text.update(num_attention_heads=2, max_position_embeddings=16)
    vision = dict(image_size=32, patch_size=8, hidden_size=16, intermediate_size=32, num_hidden_layers=1)
    vision.update(num_attention_heads=2)
    torch.manual_seed(1)
    if siglip:
        model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
    else:
        text.update(eos_token_id=3, bos_token_id=2, pad_token_id=0)  # pooled at the first </s>
        model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        folder
    )
    return folder


@pytest.mark.parametrize("siglip", [False, True], ids=["clip", "siglip"])
def test_hf_clip_family_matches_transformers(root, tmp_path, siglip):
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    folder = save_hf_clip(tmp_path / "model", siglip)
    res = evaluate(cfg_for(root, tmp_path, {"family": "hf_clip", "name": str(folder)}), tmp_path / "out")
    assert (res["family"], res["zero_shot"]) == ("hf_clip", True)
    rows = predictions(tmp_path / "out")
    model, tok = AutoModel.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    processor = AutoImageProcessor.from_pretrained(folder)
    assert type(model).__name__ == ("SiglipModel" if siglip else "CLIPModel")
    prompts = [f"A photo of {c}." for c in imagenet_classnames("synset")]
    with torch.no_grad():
        padding = "max_length" if siglip else True  # as transformers' SigLIP and CLIP examples do
        t = model.get_text_features(**tok(prompts, padding=padding, truncation=True, return_tensors="pt"))
        t = t.pooler_output
        i = model.get_image_features(**processor(images=pil(root, rows), return_tensors="pt")).pooler_output
    sims = (i / i.norm(dim=-1, keepdim=True)) @ (t / t.norm(dim=-1, keepdim=True)).T
    assert [int(r["pred"]) for r in rows] == sims.argmax(dim=1).tolist()
    assert len(set(sims.argmax(dim=1).tolist())) > 1 or siglip  # the classes' texts really differ


# ---------------------------------------------------------------- open_clip hf-hub:


def test_open_clip_hf_hub_name_reads_the_local_cache_offline(root, tmp_path, monkeypatch):
    """An 'hf-hub:org/repo' name resolves from a Hugging Face cache laid out here, with the hub offline; the
    result equals the same weights given as a file, and a repository missing from the cache fails clearly."""
    import huggingface_hub.constants as hf_constants

    ckpt = save_tiny_clip(tmp_path / "tiny.pt", seed=2)
    repo = tmp_path / "hub" / "models--someone--tiny-clip"
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    config = {"model_cfg": json.loads(TINY_CONFIG.read_text()), "preprocess_cfg": {}}
    (snapshot / "open_clip_config.json").write_text(json.dumps(config))
    (snapshot / "open_clip_pytorch_model.bin").write_bytes(ckpt.read_bytes())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))

    hub = {"family": "open_clip", "name": "hf-hub:someone/tiny-clip"}
    res = evaluate(cfg_for(root, tmp_path, hub), tmp_path / "hub-out")
    assert res["status"] == "ok" and res["weights"].startswith("hf-hub:open_clip_pytorch_model.bin:")
    direct = {"family": "open_clip", "name": "tiny-clip", "config_file": str(TINY_CONFIG)}
    evaluate(cfg_for(root, tmp_path, {**direct, "pretrained": str(ckpt)}), tmp_path / "file-out")
    got = [r["pred"] for r in predictions(tmp_path / "hub-out")]
    assert got == [r["pred"] for r in predictions(tmp_path / "file-out")]
    with pytest.raises(FileNotFoundError, match="hf-hub:someone/absent.*HF_HUB_OFFLINE"):
        evaluate(cfg_for(root, tmp_path, {**hub, "name": "hf-hub:someone/absent"}), tmp_path / "absent")


# ---------------------------------------------------------------- multimodal LLMs (LLaVA)


def save_tiny_llava(folder: Path) -> Path:
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    words = name_words() + "USER : What is the main object in the image ? ASSISTANT Is there".split()
    tokenizer, vocab = word_tokenizer(words, 64, "<s> $A")
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    vision = CLIPVisionConfig(
        image_size=32,
        patch_size=8,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
    )
    text = LlamaConfig(
        vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
    )
    text.update(dict(num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0))
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=SPECIALS.index("<image>"),
        vision_feature_layer=-2,
    )
    torch.manual_seed(3)
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_mllm_scores_are_the_answer_losses_computed_by_hand(root, tmp_path):
    """family=mllm on a tiny LLaVA in a 1v20-style space (k=3 saved sets): every cached score is minus the
    answer's loss from the model called by hand per candidate (transformers' own loss over the answer tokens),
    and the prediction is the lowest loss; the protocol is recorded; another question changes the scores."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    folder = save_tiny_llava(tmp_path / "llava")
    sets = {"9": [9, 10, 130], "10": [10, 9, 1]}
    (tmp_path / "sets.json").write_text(json.dumps({"sets": sets}))
    over = {"label_space": "1v20", "one_vs_20": {"k": 3, "file": str(tmp_path / "sets.json")}}
    res = evaluate(cfg_for(root, tmp_path, {"family": "mllm", "name": str(folder)}, **over), tmp_path / "out")
    assert (res["family"], res["zero_shot"]) == ("mllm", True)
    assert res["protocol"]["question"] == "What is the main object in the image?"
    assert res["protocol"]["answer"] == "A {}"
    model = LlavaForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(folder)
    names = imagenet_classnames("synset")

    def by_hand(out: Path, cache: Path, question: str, answer: str) -> None:
        rows = predictions(out)
        with np.load(cache / "chunk-00000.npz") as z:
            cached = z["features"]  # (N, 3): the score of each image's candidates, in label order
        manifest = json.loads((cache / "manifest.json").read_text())["paths"]
        for row, image in zip(rows, pil(root, rows), strict=True):
            losses = {}
            for label in sorted(sets[row["label"]]):
                prompt = f"USER: <image>\n{question.replace('{}', names[label])} ASSISTANT:"
                inputs = processor(text=prompt, images=image, return_tensors="pt")
                said = processor.tokenizer(answer.replace("{}", names[label]), add_special_tokens=False)
                said = torch.tensor([said["input_ids"]])
                ids = torch.cat([inputs["input_ids"], said], dim=1)
                labels = torch.full_like(ids, -100)
                labels[:, inputs["input_ids"].shape[1] :] = said
                with torch.no_grad():
                    out_ = model(input_ids=ids, pixel_values=inputs["pixel_values"], labels=labels)
                losses[label] = out_.loss.item()
            np.testing.assert_allclose(
                cached[manifest.index(row["path"])], [-v for v in losses.values()], rtol=1e-4
            )
            assert int(row["pred"]) == min(losses, key=losses.get)

    by_hand(tmp_path / "out", Path(res["feature_cache"]), "What is the main object in the image?", "A {}")
    # the paper's yes/no variant: the candidate in the question, the same answer for all
    yes = {"question": "Is there a {} in the image?", "answer": "Yes"}
    cfg = cfg_for(root, tmp_path, {"family": "mllm", "name": str(folder), "options": yes}, **over)
    res_yes = evaluate(cfg, tmp_path / "yes")
    assert res_yes["protocol"]["question"] == yes["question"]
    by_hand(tmp_path / "yes", Path(res_yes["feature_cache"]), yes["question"], "Yes")
    yes_no = {"question": "Is there an animal in the image?"}
    other = OmegaConf.merge(
        cfg_for(root, tmp_path, {"family": "mllm", "name": str(folder)}), {"model": {"options": yes_no}}
    )
    spec = describe(other.model, torch.device("cpu"))  # another question: another identity, so other scores
    assert spec.protocol()["question"] == yes_no["question"]
    assert (
        spec.identity
        != describe(
            cfg_for(root, tmp_path, {"family": "mllm", "name": str(folder)}).model, torch.device("cpu")
        ).identity
    )
    with pytest.raises(ValueError, match=r"model.options=\['questoin'\]: expected only the keys"):
        evaluate(OmegaConf.merge(other, {"model": {"options": {"questoin": "x"}}}), tmp_path / "bad")


@pytest.mark.data
@pytest.mark.weights
def test_llava_reproduces_table5(tmp_path):
    """LLaVA-1.5-7B (the transformers folder $SOBER_CLIP_WEIGHTS/llava-1.5-7b-hf) on the real CounterAnimal,
    1 vs 20 ranked by ViT-B/32 LAION-400M from its released file: within 3 points of Table 5 (40.06/30.09)."""
    import os

    weights = Path(os.environ["SOBER_CLIP_WEIGHTS"])
    clip = sorted(weights.glob("vit_b_32-quickgelu-laion400m_e31*"))
    assert (weights / "llava-1.5-7b-hf").is_dir() and clip, "put llava-1.5-7b-hf/ and the ViT-B/32 file there"
    reference = {"family": "open_clip", "name": "ViT-B-32-quickgelu", "pretrained": str(clip[0])}
    model = {"family": "mllm", "name": str(weights / "llava-1.5-7b-hf")}
    cfg = cfg_for(
        os.environ["SOBER_CLIP_DATA"], tmp_path, model, label_space="1v20", one_vs_20={"reference": reference}
    )
    m = evaluate(OmegaConf.merge(cfg, {"device": "auto", "batch_size": 8}), tmp_path / "out")["metrics"]
    assert abs(100 * m["acc_common"] - 40.06) < 3 and abs(100 * m["acc_counter"] - 30.09) < 3
