"""InfoNCE / SigLIP population prediction (theory.contrastive) against trained runs: a markdown table.

The table in docs/theory.md section 9.7 (COMMON = encoder.h=16 data.d_image=16 data.d_text=16 data.n=0
train.batch_size=256 train.optimizer=adam train.lr=0.01 train.steps=2000 seeds=3 eval.n_test=4000):

    python -m synthetic -m objective=clip data.p_spu=0.75,1.0 data.caption_q=0.25,0.75,1.0 COMMON \
        hydra.sweep.dir=results/synthetic/contrastive/clip
    python -m synthetic -m objective=clip data.p_spu=0.9 data.caption_q=0,0.5,0.9,0.99,1.0 COMMON \
        hydra.sweep.dir=results/synthetic/contrastive/clip_q
    python -m synthetic -m objective=siglip data.p_spu=0.75,1.0 data.caption_q=0.25,0.75,1.0 COMMON \
        hydra.sweep.dir=results/synthetic/contrastive/siglip
    python -m synthetic -m objective=siglip objective.siglip_b_init=-100 objective.siglip_t_init=4.6 \
        data.p_spu=0.75,0.9 data.caption_q=1.0 COMMON hydra.sweep.dir=results/synthetic/contrastive/siglip_b
    python benchmarks/contrastive_theory.py results/synthetic/contrastive/clip  (and each other folder)

Reads every results.json below the given folders (objective clip or siglip), computes
theory.zero_shot_accuracy for the run's own point and width (SigLIP: the run's batch size; InfoNCE: the
large-batch limit) and prints one row per run: trained seed mean +- seed std / the prediction, common and
counter, class and mean prompt, and the largest absolute difference (or why there is no prediction).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import theory

FIELDS = ("p_spu", "mu_inv", "mu_spu", "sigma_inv", "sigma_spu", "sigma_xi", "d_image", "d_text", "caption_q")


def _name(node: dict) -> str | None:
    """A config group's name: ``name`` (older configs) or the class of ``_target_`` (Clip -> clip)."""
    return node.get("name") or (node.get("_target_") or "").rsplit(".", 1)[-1].lower() or None


def rows(folders: list[str]) -> list[dict]:
    out = []
    for folder in folders:
        for f in sorted(Path(folder).rglob("results.json")):
            doc = json.loads(f.read_text())
            cfg = doc.get("config", {})
            objective = _name(cfg.get("objective", {}))
            if objective not in theory.contrastive.CONTRASTIVE or doc.get("status") != "ok":
                continue
            m = theory.GaussianSpuriousModel(**{k: cfg["data"][k] for k in FIELDS})
            h = cfg["encoder"]["h"]
            # SigLIP's loss depends on B; InfoNCE's prediction is its large-batch limit (docs/theory.md 9.4)
            B = (cfg["train"]["batch_size"] or cfg["data"]["n"]) if objective == "siglip" else None
            why = theory.prediction_applies(
                m,
                objective,
                _name(cfg["encoder"]),
                h,
                k=cfg["data"]["k"],
                render_depth=cfg["data"]["render_depth"],
            )
            row = {"objective": objective, "p_spu": m.p_spu, "caption_q": m.caption_q, "note": why or ""}
            for prompt, suffix in (("class", ""), ("mean", "_prompt_mean")):
                for group in ("common", "counter"):
                    got = doc["metrics"][f"acc_{group}{suffix}"]
                    pred = (
                        float(theory.zero_shot_accuracy(m, group, prompt, h, objective, B))
                        if why is None
                        else None
                    )
                    row[f"{group}_{prompt}"] = (got["mean"], got.get("std", 0.0), pred)
            out.append(row)
    return sorted(out, key=lambda r: (r["objective"], r["p_spu"], r["caption_q"]))


def markdown(table: list[dict]) -> str:
    cols = ("common_class", "counter_class", "common_mean", "counter_mean")
    head = (
        "| objective | p_spu | q | " + " | ".join(f"{c} trained / theory" for c in cols) + " | max abs diff |"
    )
    lines = [head, "|" + "---|" * (len(cols) + 4)]
    for r in table:
        cells, diffs = [], []
        for c in cols:
            got, sd, pred = r[c]
            cells.append(f"{got:.3f} +- {sd:.3f} / " + ("n/a" if pred is None else f"{pred:.3f}"))
            if pred is not None:
                diffs.append(abs(got - pred))
        worst = f"{max(diffs):.3f}" if diffs else r["note"]
        lines.append(
            f"| {r['objective']} | {r['p_spu']:g} | {r['caption_q']:g} | "
            + " | ".join(cells)
            + f" | {worst} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(rows(sys.argv[1:])))
