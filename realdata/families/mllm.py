"""Multimodal LLMs (LLaVA-style, transformers' LlavaForConditionalGeneration and its processor) with the
paper's protocol (appendix C.3): ask "What is the main object in the image?" and score each candidate label
by the language-model loss of the answer "A <object name>"; the lowest loss wins.

``model.name``: a local folder (or a repository id in the local Hugging Face cache, e.g.
``llava-hf/llava-1.5-7b-hf``). ``model.options`` (defaults: the paper's protocol in LLaVA-1.5's format):

- ``question``: the question asked; a ``{}`` in it stands for the candidate's class name (the paper's yes/no
  variant: ``question="Is there a {} in the image?"``, ``answer=Yes``);
- ``answer``: the answer scored per candidate, ``{}`` standing for the class name;
- ``prompt``: the conversation around the question, ``{question}`` and the processor's image token
  ``<image>`` in it; the answer follows it directly.

The score of a candidate is minus the mean cross-entropy of the answer tokens given the image and prompt (no
end-of-sequence token is scored). The candidates of one image are scored in one batch.
"""

from __future__ import annotations

import functools

import torch

from realdata.families import Built
from realdata.families.hf_clip import folder_identity, hf_folder, image_transform, memo_paths  # noqa: F401
from theory.runrecord import expect

HEAD = "scorer"
DEFAULTS = {
    "question": "What is the main object in the image?",
    "answer": "A {}",
    "prompt": "USER: <image>\n{question} ASSISTANT:",
}


def options(mcfg, key: str = "model") -> dict:
    given = dict(mcfg.get("options") or {})
    unknown = sorted(set(given) - set(DEFAULTS))
    expect(
        not unknown,
        f"{key}.options",
        unknown,
        f"only the keys {sorted(DEFAULTS)} of family mllm (unknown keys)",
    )
    opts = {**DEFAULTS, **given}
    expect(
        "{}" in opts["answer"] + opts["question"],
        f"{key}.options.answer",
        opts["answer"],
        f"'{{}}' where the class name goes, in it or in question={opts['question']!r} (else every candidate "
        "scores the same)",
    )
    prompt = opts["prompt"]
    expect(
        "{question}" in prompt and "<image>" in prompt,
        f"{key}.options.prompt",
        prompt,
        "'{question}' and '<image>' in it",
    )
    return opts


def protocol(mcfg) -> dict:
    opts = options(mcfg)
    return {
        **opts,
        "score": "minus the mean cross-entropy of the answer tokens (no end-of-sequence token); highest wins",
    }


def identity(mcfg, seed: int) -> dict:
    return {**folder_identity(mcfg), "protocol": protocol(mcfg)}


def prompt_text(opts: dict, name: str) -> str:
    return opts["prompt"].format(question=opts["question"].replace("{}", name))


def load_llava(name: str, device: torch.device | str = "cpu", key: str = "model"):
    """(LlavaForConditionalGeneration in eval mode, its processor) from a folder or cached repository."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    folder = hf_folder(name, key)
    device = torch.device(device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    model = LlavaForConditionalGeneration.from_pretrained(folder, dtype=dtype).eval().to(device)
    return model, AutoProcessor.from_pretrained(folder)


def answer_losses(model, prompt_ids, answer_ids, pixel_values, pad_id: int) -> torch.Tensor:
    """Mean cross-entropy of each answer given one image and its prompt: (K,), one batch of K sequences
    (right-padded). prompt_ids: K lists of token ids, the image tokens expanded; answer_ids: K lists of
    token ids; pixel_values: (C, H, W)."""
    k = len(answer_ids)
    length = max(len(p) + len(a) for p, a in zip(prompt_ids, answer_ids, strict=True))
    ids = torch.full((k, length), pad_id, dtype=torch.long)
    attention = torch.zeros((k, length), dtype=torch.long)
    answer = torch.zeros((k, length), dtype=torch.bool)
    for i, (p, a) in enumerate(zip(prompt_ids, answer_ids, strict=True)):
        n = len(p) + len(a)
        ids[i, :n] = torch.as_tensor([*p, *a])
        attention[i, :n] = 1
        answer[i, len(p) : n] = True
    device = pixel_values.device
    ids, attention, answer = ids.to(device), attention.to(device), answer.to(device)
    pixels = pixel_values.unsqueeze(0).expand(k, *pixel_values.shape).to(model.dtype)
    logits = model(input_ids=ids, attention_mask=attention, pixel_values=pixels).logits.float()
    # token t is predicted from the logits at t - 1
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
    target = answer[:, 1:]
    return (nll * target).sum(dim=1) / target.sum(dim=1)


def build(mcfg, identity: dict, device: torch.device, seed: int, key: str = "model") -> Built:
    from PIL import Image

    opts = options(mcfg, key)
    model, processor = load_llava(mcfg.name, device, key)
    tokenizer = processor.tokenizer
    size = processor.image_processor.crop_size if hasattr(processor.image_processor, "crop_size") else None
    probe = Image.new("RGB", (size["width"], size["height"]) if size else (336, 336))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    @functools.cache
    def prompt_ids(name: str) -> list[int]:
        """The prompt with its image tokens expanded as the processor does for any image it resizes."""
        return processor(text=prompt_text(opts, name), images=probe)["input_ids"][0]

    @functools.cache
    def answer_ids(name: str) -> list[int]:
        return tokenizer(opts["answer"].replace("{}", name), add_special_tokens=False)["input_ids"]

    def score(images, names_BxK):
        out = []
        for pixels, names in zip(images, names_BxK, strict=True):
            prompts, answers = [prompt_ids(n) for n in names], [answer_ids(n) for n in names]
            out.append(-answer_losses(model, prompts, answers, pixels, pad_id))
        return torch.stack(out)

    return Built(model, image_transform(processor.image_processor), score=score, tokenizer=tokenizer)
