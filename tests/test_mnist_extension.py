"""A user's own MultiColoredMNIST objective: one class in the user's module (here) + one YAML in the user's
config folder, nothing in the package (docs/mnist.md, "Adding an MNIST objective"). The tiny grid of
tests/test_mnist_run.py trains it through the app with --config-dir and finds it in the table."""

import dataclasses
import functools
from pathlib import Path
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from hydra import compose
from omegaconf import OmegaConf

from synthetic import train as T
from synthetic.components import expect
from synthetic.config import register_configs, resolve_mnist
from synthetic.mnist import models
from synthetic.mnist.data import ColouredBatch
from synthetic.mnist.models import MNISTObjective
from theory.runrecord.configs import initialize

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf" / "synthetic"
register_configs()


@dataclasses.dataclass(frozen=True)
class SmoothedSupervised(MNISTObjective):
    """Cross-entropy against labels smoothed towards uniform by ``smoothing`` (Szegedy et al. 2016)."""

    TRACED: ClassVar[tuple[str, ...]] = ("smoothing",)  # traced: a sweep over it reuses one program
    smoothing: float = 0.1

    def __post_init__(self):
        expect(0 <= self.smoothing < 1, "mnist_objective.smoothing", self.smoothing, "a weight in [0, 1)")

    def model(self, encoder, image_size, k, rngs):
        return encoder(image_size, k, rngs)  # a k-way head on the image encoder

    def loss(self, model, batch, hp):
        logits_BxK = model(batch.x)
        target_BxK = optax.smooth_labels(jax.nn.one_hot(batch.y, logits_BxK.shape[1]), hp["smoothing"])
        return optax.softmax_cross_entropy(logits_BxK, target_BxK).mean()

    def scores(self, model, x):
        return model(x)


def user_conf(folder: Path) -> Path:
    """The user's config folder: one YAML naming the class (for --config-dir or hydra.searchpath)."""
    (folder / "mnist_objective").mkdir(parents=True, exist_ok=True)
    yaml = "_target_: tests.test_mnist_extension.SmoothedSupervised\nsmoothing: 0.1\n"
    (folder / "mnist_objective" / "smoothed.yaml").write_text(yaml)
    return folder


def _compose(tmp_path, *overrides):
    with initialize("synthetic"):
        search = f"hydra.searchpath=[file://{user_conf(tmp_path / 'conf')}]"
        return compose("synthetic", overrides=[search, "experiment=multicolored_mnist", *overrides])


def test_a_user_objective_is_one_class_and_one_yaml(tmp_path):
    run = resolve_mnist(_compose(tmp_path, "mnist_objective=smoothed", "mnist_objective.smoothing=0.3"))
    assert run.mnist_objective == SmoothedSupervised(smoothing=0.3)
    with pytest.raises(ValueError, match=r"mnist_objective\.smoothing=1\.5: expected a weight in \[0, 1\)"):
        resolve_mnist(_compose(tmp_path, "mnist_objective=smoothed", "mnist_objective.smoothing=1.5"))
    with pytest.raises(ValueError, match=r"mnist_objective\.smoothin: not a field of .*SmoothedSupervised"):
        resolve_mnist(_compose(tmp_path, "mnist_objective=smoothed", "mnist_objective.smoothin=0.3"))


def test_the_loop_hands_the_user_loss_its_traced_field(tmp_path):
    """synthetic.train's loss of the user's run on a batch: smoothing 0 is the built-in supervised loss
    (same model, same batch), 0.3 the smoothed cross-entropy written out in numpy."""
    from synthetic.mnist.run import program

    tiny = ["mnist.k=3", "mnist.image_size=14", "mnist_encoder.width=8", "train.batch_size=16"]
    rng = np.random.default_rng(0)  # stand-in digits (the loop reads them as arrays only)
    digits = {
        "train_grey": rng.integers(0, 256, (64, 14, 14), np.uint8),
        "train_digit": rng.integers(0, 3, 64),
    }
    digits |= {"test_grey": digits["train_grey"][:8], "test_digit": digits["train_digit"][:8]}
    spec, hp = program(resolve_mnist(_compose(tmp_path, "mnist_objective=smoothed", *tiny)), digits)
    assert spec.data.n == 64 and spec.epoch_steps == 4
    # compiled as the loop compiles them (eagerly, each of the many small operations compiles alone)
    jit = functools.partial(jax.jit, compiler_options=T.SHORT_RUN_OPTIONS)
    params = jit(T.init_params, static_argnums=1)(jax.random.key(0), spec)
    loss_fn = jit(T.loss_fn, static_argnums=3)
    y = rng.integers(0, 3, 16)
    batch = ColouredBatch(jnp.asarray(rng.uniform(0, 1, (16, 14, 14, 3)), jnp.float32), y, (y + 1) % 3)
    hp0 = {**hp, "objective": {"smoothing": jnp.float32(0.0)}}
    builtin = dataclasses.replace(spec, objective=models.Supervised())
    np.testing.assert_allclose(
        loss_fn(params, batch, hp0, spec), loss_fn(params, batch, hp0, builtin), rtol=1e-6
    )
    scores = jit(lambda p, x: spec.objective.scores(nnx.merge(T.graphdef(spec), p), x))
    logits = np.asarray(scores(params, batch.x), float)
    target = 0.7 * np.eye(3)[np.asarray(batch.y)] + 0.3 / 3
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    hp3 = {**hp, "objective": {"smoothing": jnp.float32(0.3)}}
    np.testing.assert_allclose(loss_fn(params, batch, hp3, spec), -(target * logp).sum(1).mean(), rtol=1e-5)


GROUP_YAMLS = sorted(CONF.glob("mnist_*/*.yaml"))


@pytest.mark.parametrize("path", GROUP_YAMLS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_mnist_group_yamls_list_their_class_defaults(path):
    """One source of defaults: each YAML of the mnist_encoder / mnist_objective groups lists its class's
    fields at their defaults, and composes into a run that resolves."""
    from hydra.utils import get_class

    node = OmegaConf.to_container(OmegaConf.load(path))
    cls = get_class(node.pop("_target_"))
    assert node == {f.name: f.default for f in dataclasses.fields(cls)}, path
    with initialize("synthetic"):
        cfg = compose(
            "synthetic", overrides=["experiment=multicolored_mnist", f"{path.parent.name}={path.stem}"]
        )
    assert isinstance(getattr(resolve_mnist(cfg), path.parent.name), cls)


def test_the_sweep_is_the_objective_group():
    with initialize("synthetic"):
        cfg = compose("synthetic", overrides=["experiment=multicolored_mnist"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert str(params["mnist_objective"]).split(",") == ["contrastive", "two_tower", "supervised"]
    jobs = np.prod([len(str(v).split(",")) for v in params.values()])
    assert jobs == 72  # the paper's grid: 6 k x 2 p_inv x 2 p_spu x 3 objectives
    assert "mnist.objective" not in params
