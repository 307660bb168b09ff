"""The PyTorch peer of ``python -m synthetic.bench``: a plain per-seed training loop on the same problem.

What a PyTorch user would write for ``python -m synthetic`` on the paper's binary model with linear encoders:
per seed, draw the data (torch, the model of ``synthetic.data.GaussianData``), build two bias-free
``nn.Linear`` towers (init N(0, init_scale^2 / d)), train with ``torch.optim.Adam`` and a cosine schedule
(as optax.cosine_decay_schedule) on minibatches drawn without replacement (one ``randperm`` per epoch,
sliced per step), then score zero-shot on fresh test sets (common, counter, balanced, id; the "class" and
"mean" prompts). Objectives: ``linear_clip`` (+ (rho/2) ||W_I^T W_T||_F^2) and ``clip`` (symmetric InfoNCE
on normalised embeddings, learnable log-scale clamped to [0, log 100] after each step, as open_clip).
``--encoder mlp --render-depth 2 --n 0`` is the nonlinear set-up: images through a fixed invertible random
MLP (leaky_relu(x Q_l), Q_l orthogonal), MLP towers (GELU, LeCun-normal init) and fresh pairs every step.

It imports neither JAX nor the rest of the package, so timing it as its own process measures PyTorch alone:

    python -m synthetic.bench_torch --objective clip --n 4096 --d 64 --h 8 --batch 512 --steps 3000 --seeds 5
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import torch
from torch import nn

GROUPS = ("common", "counter", "balanced", "id")


def sample(gen: torch.Generator, n: int, p_spu, world, a: argparse.Namespace):
    """n pairs of the binary model: y = +-1, a = y w.p. p_spu, z = [z_inv, z_spu], captions name a."""
    D_image, D_text, render = world
    y = torch.where(torch.rand(n, generator=gen) < 0.5, 1.0, -1.0)
    attr = torch.where(torch.rand(n, generator=gen) < p_spu, y, -y)
    z_inv = a.mu_inv * y + a.sigma_inv * torch.randn(n, generator=gen)
    z_spu = a.mu_spu * attr + a.sigma_spu * torch.randn(n, generator=gen)
    z = torch.stack([z_inv, z_spu], 1)
    x_image = z @ D_image.T + a.sigma_xi / math.sqrt(a.d) * torch.randn(n, a.d, generator=gen)
    for q in render:
        x_image = nn.functional.leaky_relu(x_image @ q, 0.2)
    x_text = z @ D_text.T + a.sigma_xi / math.sqrt(a.d) * torch.randn(n, a.d, generator=gen)
    return x_image, x_text, (y < 0).long()  # class 0 is y = +1


def orthonormal(gen: torch.Generator, d: int, r: int = 2) -> torch.Tensor:
    q, rr = torch.linalg.qr(torch.randn(d, r, generator=gen))
    return q * torch.sign(torch.diagonal(rr))


def tower(a: argparse.Namespace, gen: torch.Generator) -> nn.Module:
    if a.encoder == "linear":
        layer = nn.Linear(a.d, a.h, bias=False)
        with torch.no_grad():
            layer.weight.normal_(0.0, a.init_scale / math.sqrt(a.d), generator=gen)
        return layer
    dims = [a.d] + [a.width] * a.depth
    layers: list[nn.Module] = []
    for i, o in zip(dims[:-1], dims[1:], strict=True):
        layers += [nn.Linear(i, o), nn.GELU(approximate="tanh")]  # jax.nn.gelu's default
    layers.append(nn.Linear(dims[-1], a.h))
    with torch.no_grad():
        for m in layers:
            if isinstance(m, nn.Linear):
                m.weight.normal_(0.0, a.init_scale / math.sqrt(m.in_features), generator=gen)
                m.bias.zero_()
    return nn.Sequential(*layers)


class TwoTower(nn.Module):
    def __init__(self, a: argparse.Namespace, gen: torch.Generator):
        super().__init__()
        self.image, self.text = tower(a, gen), tower(a, gen)
        self.normalize = a.objective == "clip"
        if self.normalize:
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def embed(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        e = net(x)
        return nn.functional.normalize(e, dim=-1) if self.normalize else e


def loss_fn(model: TwoTower, xi: torch.Tensor, xt: torch.Tensor, a: argparse.Namespace) -> torch.Tensor:
    ei, et = model.embed(model.image, xi), model.embed(model.text, xt)
    b = ei.shape[0]
    if a.objective == "linear_clip":
        base = (ei.sum(0) @ et.sum(0) - b * (ei * et).sum()) / (b * (b - 1))
        wi, wt = model.image.weight, model.text.weight
        return base + 0.5 * a.rho * ((wi @ wi.T) * (wt @ wt.T)).sum()
    logits = model.logit_scale.exp() * ei @ et.T
    labels = torch.arange(b)
    ce = nn.functional.cross_entropy
    return 0.5 * (ce(logits, labels) + ce(logits.T, labels))


def run_seed(seed: int, a: argparse.Namespace) -> dict:
    gen = torch.Generator().manual_seed(seed)
    world = (
        orthonormal(gen, a.d),
        orthonormal(gen, a.d),
        [orthonormal(gen, a.d, a.d) for _ in range(a.render_depth)],
    )
    if a.n:
        x_image, x_text, _ = sample(gen, a.n, a.p_spu, world, a)
    model = TwoTower(a, gen)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    cosine = lambda t: 0.5 * (1 + math.cos(math.pi * min(t, a.steps) / a.steps))  # noqa: E731 (optax's)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine)
    per_epoch = a.n // a.batch
    losses = torch.empty(a.steps)
    for t in range(a.steps):
        if not a.n:  # fresh pairs every step
            xi, xt, _ = sample(gen, a.batch, a.p_spu, world, a)
        else:
            if t % per_epoch == 0:
                perm = torch.randperm(a.n, generator=gen)
            idx = perm[(t % per_epoch) * a.batch : (t % per_epoch + 1) * a.batch]
            xi, xt = x_image[idx], x_text[idx]
        loss = loss_fn(model, xi, xt, a)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if model.normalize:
            with torch.no_grad():
                model.logit_scale.clamp_(0.0, math.log(100.0))
        losses[t] = loss.detach()
    finite = bool(torch.isfinite(losses).all())
    return {"final_loss": float(losses[-1]), "finite": finite, **evaluate(model, gen, world, a)}


@torch.no_grad()
def evaluate(model: TwoTower, gen, world, a: argparse.Namespace) -> dict:
    codes = torch.tensor([[1.0], [-1.0]])
    prompts = {
        "": torch.cat([codes, torch.zeros_like(codes)], 1),
        "_prompt_mean": torch.cat([a.mu_inv * codes, a.mu_spu * (2 * a.p_spu - 1) * codes], 1),
    }
    out = {}
    for group, p in zip(GROUPS, (1.0, 0.0, 0.5, a.p_spu), strict=True):
        x_image, _, y = sample(gen, a.n_test, p, world, a)
        ei = model.embed(model.image, x_image)
        for suffix, e_KxR in prompts.items():
            scores = ei @ model.embed(model.text, e_KxR @ world[1].T).T
            out[f"acc_{group}{suffix}"] = float((scores.argmax(1) == y).float().mean())
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m synthetic.bench_torch")
    p.add_argument("--objective", choices=("linear_clip", "clip"), default="linear_clip")
    p.add_argument("--n", type=int, default=4096)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--h", type=int, default=8)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--encoder", choices=("linear", "mlp"), default="linear")
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--render-depth", type=int, default=0)
    p.add_argument("--sigma-xi", type=float, default=0.0)
    p.add_argument(
        "--init-scale", type=float, default=0.0, help="0: the encoder's default (0.1 linear, 1 mlp)"
    )
    p.add_argument("--n-test", type=int, default=10000)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--p-spu", type=float, default=0.9)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: os.cpu_count())")
    p.add_argument("--json", help="write the per-seed results here")
    a = p.parse_args(argv)
    a.mu_inv, a.mu_spu, a.sigma_inv, a.sigma_spu = 1.0, 2.0, 1.0, 0.5  # GaussianData's defaults
    a.init_scale = a.init_scale or (0.1 if a.encoder == "linear" else 1.0)  # the encoders' defaults
    a.rho = 1.0  # objective.rho
    if a.objective == "linear_clip" and a.encoder != "linear":
        p.error("linear_clip needs --encoder linear")
    if a.threads:
        torch.set_num_threads(a.threads)
    start = time.perf_counter()
    seeds = [run_seed(s, a) for s in range(a.seeds)]
    wall = time.perf_counter() - start
    out = {
        "args": vars(a),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "loop_s": round(wall, 3),
        "seed_steps_per_s": round(a.seeds * a.steps / wall, 1),
        "per_seed": seeds,
        "mean": {k: sum(s[k] for s in seeds) / len(seeds) for k in seeds[0] if k != "finite"},
    }
    print(json.dumps({k: out[k] for k in ("loop_s", "seed_steps_per_s", "mean")}), file=sys.stderr)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
