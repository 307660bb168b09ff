"""Structured configs of ``python -m synthetic`` (registered in Hydra's ConfigStore).

The primary config ``conf/synthetic.yaml`` starts from the ``synthetic_schema`` node stored here, so every
YAML file and command-line override is checked against these dataclasses: a misspelt key or a wrong type
fails at start-up with the key's name. The data fields keep the names of :class:`theory.GaussianSpuriousModel`
and mean the same; that class validates their values (see :func:`synthetic.train.split_config`).

``unsafe_hash=True`` lets the static part of a config key JAX's compilation cache (fields are never mutated
after composition).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

from synthetic.mnist.config import MNISTConfig


@dataclass(unsafe_hash=True)
class DataConfig:
    name: str = "gaussian"  # data model: a key of synthetic.data.DATA_MODELS
    p_spu: float = 0.9  # P(a = y) in training
    mu_inv: float = 1.0
    mu_spu: float = 2.0
    sigma_inv: float = 1.0
    sigma_spu: float = 0.5
    sigma_xi: float = 0.0  # total noise scale per modality (per-coordinate variance sigma_xi^2 / d)
    d_image: int = 64
    d_text: int = 64
    n: int = 1024  # training pairs; 0 = fresh samples every step
    k: int = 2  # classes (2: the paper's +-1 model; k > 2: one-hot codes, attribute uniform over the others)
    caption_q: float = 1.0  # P(caption names the background); 1 = the paper, 0 = invariant-only captions
    render_depth: int = 0  # layers of the fixed invertible random MLP applied to images (0 = linear data)
    render_slope: float = 0.2  # negative slope of the rendering's leaky ReLU (> 0 keeps it invertible)


@dataclass(unsafe_hash=True)
class EncoderConfig:
    name: str = "linear"  # a key of synthetic.encoders.ENCODERS
    h: int = 16  # embedding width
    width: int = 128  # hidden width (mlp)
    depth: int = 2  # hidden layers (mlp)
    init_scale: float = 1.0  # weights ~ N(0, init_scale^2 / fan_in)


@dataclass(unsafe_hash=True)
class ObjectiveConfig:
    name: str = "linear_clip"  # a key of synthetic.objectives.OBJECTIVES
    rho: float = 1.0  # weight of (rho / 2) ||W_I^T W_T||_F^2 in the linearised loss
    logit_scale_init: float = 2.6592600369644043  # clip: log(1 / 0.07), as open_clip
    logit_scale_max: float = 100.0  # clip, siglip: the scale is clamped at 100 each step, as open_clip
    siglip_t_init: float = 2.302585092994046  # siglip: t' = log 10
    siglip_b_init: float = -10.0  # siglip: b


@dataclass(unsafe_hash=True)
class TrainConfig:
    steps: int = 1000
    batch_size: int = 0  # 0 = the full training set each step (needs data.n > 0)
    lr: float = 0.05
    optimizer: str = "sgd"  # sgd | adam | adamw
    schedule: str = "cosine"  # constant | cosine (decays to 0 at the last step)
    weight_decay: float = 0.0  # adamw only
    seed_chunk: int = 0  # seeds compiled together per chunk (0 = all); results.json is updated per chunk
    loss_curve_points: int = 100  # how many points of the loss curve results.json keeps


@dataclass(unsafe_hash=True)
class EvalConfig:
    n_test: int = 10000  # fresh test samples per group (common, counter, balanced, id)
    # linear_clip + linear + finite n: distance to the exact finite-sample minimiser (a d_image x d_text SVD)
    empirical_optimum: bool = False


@dataclass
class SyntheticConfig:
    task: str = "gaussian"  # gaussian | multicolored_mnist
    name: str = "default"  # experiment name: the sweep directory results/synthetic/<name>/<time>
    seeds: int = 5  # how many seeds (vmapped; sharded over local devices)
    seed: int = 0  # base seed; seed i uses fold_in(key(seed), i)
    data: DataConfig = field(default_factory=DataConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    mnist: MNISTConfig = field(default_factory=MNISTConfig)


TASKS = ("gaussian", "multicolored_mnist")


def register_configs() -> None:
    """Store the schema node that conf/synthetic.yaml lists first in its defaults."""
    ConfigStore.instance().store(name="synthetic_schema", node=SyntheticConfig)
