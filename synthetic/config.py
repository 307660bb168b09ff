"""The schemas of ``python -m synthetic``: one per experiment kind, registered in Hydra's ConfigStore.

``conf/synthetic/synthetic.yaml`` picks a ``task`` (``conf/synthetic/task/<kind>.yaml``), which lists its
kind's schema node first, so every YAML file and override is checked against that kind's dataclass alone:
a Gaussian run carries no MultiColoredMNIST keys and vice versa, and a misspelt key or a wrong type fails
at start-up with the key's name.

* :class:`GaussianRunConfig` (``task=gaussian``): ``data``, ``encoder`` and ``objective`` are component
  nodes (``_target_`` + fields; see :mod:`synthetic.components`), so a user's own component plugs in;
  :func:`resolve` builds them, which checks their fields.
* :class:`MNISTRunConfig` (``task=multicolored_mnist``): ``mnist`` (the dataset), ``mnist_encoder`` and
  ``mnist_objective`` are component nodes the same way (config groups ``conf/synthetic/mnist_encoder/``,
  ``conf/synthetic/mnist_objective/``); :func:`resolve_mnist` builds them.

Both share :class:`TrainConfig` and the run keys (``name``, ``seeds``, ``seed``). The dataclass defaults are
the defaults (the YAML files repeat them only where a file exists to set them; a test checks they agree).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from synthetic.components import build, expect

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine")


@dataclass(unsafe_hash=True)  # hashable: part of the compiled program's static key
class TrainConfig:
    steps: int = 1000
    batch_size: int = 0  # 0 = the full training set each step (needs data.n > 0)
    lr: float = 0.05
    optimizer: str = "sgd"  # sgd | adam | adamw
    schedule: str = "cosine"  # constant | cosine (decays to 0 at the last step)
    weight_decay: float = 0.0  # adamw only
    seed_chunk: int = 0  # seeds compiled together per chunk (0 = all); results.json is updated per chunk
    loss_curve_points: int = 100  # how many points of the loss curve results.json keeps
    # report steps from a host callback; JAX does not write programs with a host callback to its persistent
    # compilation cache, so false lets a later process reuse the compiled program (.cache/jax)
    progress: bool = True
    save: bool = False  # true: each seed's trained parameters -> <run folder>/params/seed_<i> (orbax)

    def check(self) -> None:
        expect(self.steps >= 1, "train.steps", self.steps, "at least 1 step")
        expect(math.isfinite(self.lr) and self.lr > 0, "train.lr", self.lr, "a finite learning rate > 0")
        expect(self.optimizer in OPTIMIZERS, "train.optimizer", self.optimizer, f"one of {list(OPTIMIZERS)}")
        expect(self.schedule in SCHEDULES, "train.schedule", self.schedule, f"one of {list(SCHEDULES)}")
        wd = self.weight_decay
        expect(math.isfinite(wd) and wd >= 0, "train.weight_decay", wd, "a finite weight decay >= 0")
        expect(self.batch_size >= 0, "train.batch_size", self.batch_size, "a batch size >= 0 (0 = full set)")
        expect(self.seed_chunk >= 0, "train.seed_chunk", self.seed_chunk, "seeds per chunk >= 0 (0 = all)")
        expect(self.loss_curve_points >= 2, "train.loss_curve_points", self.loss_curve_points, ">= 2")


@dataclass(unsafe_hash=True)
class EvalConfig:
    n_test: int = 10000  # fresh test samples per group (common, counter, balanced, id)
    # linear encoders + finite n: distance to the exact finite-sample minimiser of the linearised loss
    empirical_optimum: bool = False


def _node(target: str | None):
    # Not in struct mode: a component's YAML need not list every field; `objective.<field>=v` sets one it
    # leaves out (the component's dataclass then checks the name and the value, naming the key).
    return field(default_factory=lambda: OmegaConf.create({"_target_": target}, flags={"struct": False}))


@dataclass
class GaussianRunConfig:
    task: str = "gaussian"
    name: str = "default"  # experiment name: the sweep directory results/synthetic/<name>/<time>
    seeds: int = 5  # how many seeds (vmapped; sharded over local devices)
    seed: int = 0  # base seed; seed i uses fold_in(key(seed), i)
    data: Any = _node("synthetic.data.GaussianData")
    encoder: Any = _node("synthetic.encoders.Linear")
    objective: Any = _node("synthetic.objectives.LinearClip")
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logger: Any = _node(None)  # conf/synthetic/logger/ (theory.runrecord.track); none by default
    resume: bool = False  # true: skip the run when its folder holds an ok results.json of the same config


@dataclass
class MNISTRunConfig:
    task: str = "multicolored_mnist"
    name: str = "multicolored_mnist"
    seeds: int = 5
    seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)
    mnist: Any = _node("synthetic.mnist.data.MultiColoredMNIST")
    mnist_encoder: Any = _node("synthetic.mnist.models.MLP")
    mnist_objective: Any = _node("synthetic.mnist.models.Contrastive")
    logger: Any = _node(None)
    resume: bool = False

    # what synthetic.train.split reads of a run (a Gaussian run's own fields)
    @property
    def data(self) -> Any:
        return self.mnist

    @property
    def encoder(self) -> Any:
        return self.mnist_encoder

    @property
    def objective(self) -> Any:
        return self.mnist_objective

    @property
    def eval(self) -> EvalConfig:
        return EvalConfig()  # unused: the dataset evaluates itself (synthetic.mnist.data)


#: MultiColoredMNIST keys that moved when its objectives and encoders became config groups: old -> new.
MNIST_RENAMED = {
    "objective": "mnist_objective={}",
    "encoder": "mnist_encoder={}",
    "width": "mnist_encoder.width={}",
    "embed_dim": "mnist_objective.embed_dim={} (with mnist_objective=two_tower)",
}


SCHEMAS = {"gaussian": GaussianRunConfig, "multicolored_mnist": MNISTRunConfig}


def to_plain(cfg) -> dict:
    """The resolved config as plain data (what results.json stores)."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    return {f.name: _plain(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def _plain(v):
    if isinstance(v, DictConfig):  # a component node not built (the schema's default: an open DictConfig)
        return OmegaConf.to_container(v, resolve=True)
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        out = {f.name: _plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if hasattr(v, "KEY"):  # a component: say which class built it, as its YAML does
            out = {"_target_": f"{type(v).__module__}.{type(v).__qualname__}", **out}
        return out
    return v


def _typed(cfg: DictConfig, schema: type, kind: str):
    """A composed config as its kind's ``schema`` dataclass, its ``train``/``eval`` nodes as theirs (the
    component nodes stay plain dicts for :func:`build`); a key the schema lacks stops, naming it."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    names = {f.name for f in dataclasses.fields(schema)}
    unknown = set(plain) - names
    expect(not unknown, "config", sorted(unknown), f"only the keys of a {kind} run")
    nodes = (("train", TrainConfig), ("eval", EvalConfig))
    nested = {k: c(**plain.pop(k, {})) for k, c in nodes if k in names}
    return schema(**plain, **nested)


def resolve(cfg) -> GaussianRunConfig:
    """A Gaussian run config with its components built and every value checked (no JAX work)."""
    from synthetic.data import DataModel, check_dims
    from synthetic.encoders import Encoder
    from synthetic.objectives import Objective

    if isinstance(cfg, DictConfig):
        cfg = _typed(cfg, GaussianRunConfig, "Gaussian")
    run = dataclasses.replace(
        cfg,
        data=build(cfg.data, "data", DataModel),
        encoder=build(cfg.encoder, "encoder", Encoder),
        objective=build(cfg.objective, "objective", Objective),
    )
    d, t, o = run.data, run.train, run.objective
    expect(run.seeds >= 1, "seeds", run.seeds, "at least 1 seed")
    t.check()
    expect(
        d.n > 0 or t.batch_size > 0, "train.batch_size", t.batch_size, "> 0 when data.n = 0 (fresh samples)"
    )
    expect(d.n == 0 or t.batch_size <= d.n, "train.batch_size", t.batch_size, f"<= data.n = {d.n}")
    batch = t.batch_size or d.n
    expect(batch >= o.MIN_BATCH, "train.batch_size", batch, f">= {o.MIN_BATCH} for {type(o).__name__}")
    expect(run.eval.n_test >= 1, "eval.n_test", run.eval.n_test, "a test-set size >= 1")
    o.check(run.encoder)
    check_dims(d)
    return run


def resolve_mnist(cfg) -> MNISTRunConfig:
    """A MultiColoredMNIST run config with its components built and every value checked (no JAX work)."""
    from synthetic.mnist.data import MultiColoredMNIST
    from synthetic.mnist.models import ImageEncoder, MNISTObjective

    if isinstance(cfg, DictConfig):
        cfg = _typed(cfg, MNISTRunConfig, "MultiColoredMNIST")
    mnist = cfg.mnist
    if not isinstance(mnist, MultiColoredMNIST):
        for old, new in MNIST_RENAMED.items():
            if old in (mnist or {}):  # renamed (CHANGELOG): say to what
                expect(False, f"mnist.{old}", mnist[old], f"{new.format(mnist[old])} (the key was renamed)")
    run = dataclasses.replace(
        cfg,
        mnist=build(mnist, "mnist", MultiColoredMNIST),
        mnist_encoder=build(cfg.mnist_encoder, "mnist_encoder", ImageEncoder),
        mnist_objective=build(cfg.mnist_objective, "mnist_objective", MNISTObjective),
    )
    t = run.train
    expect(run.seeds >= 1, "seeds", run.seeds, "at least 1 seed")
    t.check()
    expect(
        t.batch_size >= 1, "train.batch_size", t.batch_size, ">= 1 (MultiColoredMNIST trains on minibatches)"
    )
    expect(
        not t.save,
        "train.save",
        t.save,
        "false: it saves Gaussian runs' models (synthetic.load), MNIST has none",
    )
    return run


def register_configs() -> None:
    """Store each kind's schema node (``/<kind>_schema``), listed first by conf/synthetic/task/<kind>.yaml."""
    cs = ConfigStore.instance()
    for kind, schema in SCHEMAS.items():
        # at the root, not in the task group: --help lists the tasks, not these internal nodes
        cs.store(name=f"{kind}_schema", node=schema, package="_global_")
