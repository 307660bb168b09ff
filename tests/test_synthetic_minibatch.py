"""Minibatches without replacement (train.epoch_index) and the benchmark's loop and PyTorch peer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from synthetic import train as T
from synthetic.config import EvalConfig, GaussianRunConfig, TrainConfig, resolve
from synthetic.data import GaussianData
from synthetic.encoders import Linear


def _compiled(fn, *args, static: int):
    """fn jitted and compiled for args (argument ``static`` static) with a short run's compiler options
    (T.SHORT_RUN_OPTIONS: a test program); returns it, to be called without the static argument."""
    return jax.jit(fn, static_argnums=static).lower(*args).compile(T.SHORT_RUN_OPTIONS)


@pytest.mark.parametrize("n", [2, 3, 5, 64, 100, 1000, 4097])
def test_each_epoch_is_a_permutation_and_epochs_differ(n):
    words = jax.random.bits(jax.random.key(0), (T.SHUFFLE_ROUNDS,), jnp.uint32)
    args = (words, jnp.arange(4), jnp.arange(n), n)
    epochs = _compiled(jax.vmap(T.epoch_index, in_axes=(None, 0, None, None)), *args, static=3)
    perms = list(np.asarray(epochs(*args[:3])))
    for p in perms:
        np.testing.assert_array_equal(np.sort(p), np.arange(n))
    if n >= 64:
        assert len({p.tobytes() for p in perms}) == 4
        # nothing like the identity: about one fixed point per permutation, no position-value correlation
        assert np.mean([(p == np.arange(n)).sum() for p in perms]) < 5
        assert abs(np.corrcoef(np.arange(n), perms[0])[0, 1]) < 0.2


def test_minibatches_cover_the_training_set_once_per_epoch():
    """get_batch: epoch e's n // batch steps visit n // batch * batch distinct pairs, and epochs reshuffle."""
    cfg = GaussianRunConfig(
        data=GaussianData(n=40, d_image=4, d_text=4),
        encoder=Linear(h=2),
        train=TrainConfig(steps=20, batch_size=8),
        eval=EvalConfig(n_test=4),
    )
    spec, hp = T.split(resolve(cfg))
    key = jax.random.key(1)
    _, fixed = _compiled(T.setup, key, hp, spec, static=2)(key, hp)
    rows = {tuple(np.asarray(r)): i for i, r in enumerate(fixed.train_set.x_image)}
    batches = _compiled(
        jax.vmap(T.get_batch, in_axes=(0, None, None, None)), jnp.arange(10), fixed, hp, spec, static=3
    )
    x_image = np.asarray(batches(jnp.arange(10), fixed, hp).x_image)  # steps 0-9: two epochs
    epochs = []
    for e in range(2):
        seen = []
        for t in range(e * 5, e * 5 + 5):
            seen += [rows[tuple(r)] for r in x_image[t]]
        assert sorted(seen) == list(range(40))
        epochs.append(seen)
    assert epochs[0] != epochs[1]


def test_benchmark_python_loop_computes_the_compiled_run():
    from synthetic.bench import python_loop

    cfg = GaussianRunConfig(
        seeds=2,
        data=GaussianData(n=32, d_image=4, d_text=4),
        encoder=Linear(h=2),
        train=TrainConfig(steps=6, batch_size=8, optimizer="adam"),
        eval=EvalConfig(n_test=64),
    )
    spec, hp = T.split(resolve(cfg), progress=False)
    keys = T.seed_keys(0, 0, 2)
    compiled, _ = T.run_seeds(spec, hp, keys)
    looped, _, _ = python_loop(spec, hp, keys)
    for name in ("acc_common", "acc_counter", "final_loss"):
        np.testing.assert_allclose(looped[name], compiled[name], rtol=1e-4, atol=1e-5)


def test_pytorch_peer_trains_both_objectives(tmp_path):
    pytest.importorskip("torch")
    from synthetic import bench_torch

    for objective in ("linear_clip", "clip"):
        args = ["--objective", objective, "--n", "64", "--d", "4", "--h", "2", "--batch", "16"]
        out = bench_torch.main([*args, "--steps", "40", "--seeds", "1", "--n-test", "200", "--threads", "1"])
        seed = out["per_seed"][0]
        assert seed["finite"] and 0 <= seed["acc_common"] <= 1
