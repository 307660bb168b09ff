"""Training held against the exact theory, divergence, the k-class/rendered path, and seed sharding."""

import dataclasses
import json
import os
import re
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import ndtr

import theory
from synthetic import run as R
from synthetic import train as T
from synthetic.config import EvalConfig, GaussianRunConfig, TrainConfig, resolve
from synthetic.data import GaussianData
from synthetic.encoders import MLP, Linear
from synthetic.objectives import Clip, LinearClip, SigLIP, Supervised
from tests.conftest import FAST_COMPILE_FLAGS


def split(cfg):
    return T.split(resolve(cfg))


# Seconds-size point where the finite-sample optimum is within ~2% of the population one (n large, d small).
SMALL = GaussianRunConfig(
    seeds=3,
    data=GaussianData(p_spu=0.9, sigma_xi=0.5, n=4096, d_image=8, d_text=8),
    encoder=Linear(h=4, init_scale=0.1),
    objective=LinearClip(rho=1.0),
    train=TrainConfig(steps=400, batch_size=0, lr=0.05, optimizer="sgd", schedule="cosine"),
    eval=EvalConfig(n_test=10000, empirical_optimum=True),
)


@pytest.fixture(scope="module")
def small_raw():
    spec, hp = split(SMALL)
    return T.run_seeds(spec, hp, T.seed_keys(SMALL.seed, 0, SMALL.seeds))[0]


def test_linear_clip_reaches_theory_optimum(small_raw):
    model = SMALL.data.theory_model()
    K = theory.clip_optimum(model, rank=SMALL.encoder.h)
    dist = np.linalg.norm(small_raw["latent_product"] - K, axis=(1, 2)) / np.linalg.norm(K)
    assert np.all(dist < 0.05), dist
    # Optimisation itself converged to the finite-sample minimiser (n/(n-1)) C_hat / rho.
    assert np.all(small_raw["dist_empirical_optimum"] < 0.01), small_raw["dist_empirical_optimum"]
    assert np.all(small_raw["first_bad_step"] == -1)


def test_counter_accuracy_matches_theory_within_sampling_error(small_raw):
    model = SMALL.data.theory_model()
    n, s = SMALL.eval.n_test, SMALL.seeds
    for group in ("common", "counter", "balanced", "id"):
        acc = small_raw[f"acc_{group}"]
        exact = float(theory.zero_shot_accuracy(model, group, "class", rank=SMALL.encoder.h))
        se = max(acc.std(ddof=1) / np.sqrt(s), np.sqrt(exact * (1 - exact) / (n * s)))
        assert abs(acc.mean() - exact) < 4 * se + 1e-3, (group, acc, exact)
    # Each seed's counter accuracy equals the exact accuracy of the rule it learned (test noise only).
    for lp, acc in zip(small_raw["latent_product"], small_raw["acc_counter"], strict=True):
        exact = float(theory.linear_rule_accuracy(model, lp @ np.array([1.0, 0.0]), "counter"))
        assert abs(acc - exact) < 4 * np.sqrt(exact * (1 - exact) / n) + 1e-3, (acc, exact)
    # The "mean" prompt (E[z_T | y]) is also checked against theory.
    exact_mean = float(theory.zero_shot_accuracy(model, "counter", "mean", rank=SMALL.encoder.h))
    assert abs(small_raw["acc_counter_prompt_mean"].mean() - exact_mean) < 0.02


def test_absurd_learning_rate_is_reported_as_diverged():
    cfg = dataclasses.replace(SMALL, train=dataclasses.replace(SMALL.train, lr=1e6))
    result = R.run(cfg)
    assert result["status"] == "diverged"
    assert isinstance(result["diverged_step"], int) and 0 <= result["diverged_step"] < SMALL.train.steps
    assert all(v is None for v in result["metrics"]["acc_counter"]["per_seed"])  # never a silent NaN
    json.dumps(result, allow_nan=False)


def _compiled(fn, *args, static: str | None = None):
    """fn jitted and compiled for args (``static``: the name of its static argument, given last) with a
    short run's compiler options (T.SHORT_RUN_OPTIONS: a test program); returns it, to be called without
    the static argument."""
    jitted = jax.jit(fn, static_argnames=static) if static else jax.jit(fn)
    return jitted.lower(*args).compile(T.SHORT_RUN_OPTIONS)


#: Supervised ERM on a small point, trained by run_one's steps with its parameters kept (one compilation,
#: shared by the tests below).
SUPERVISED = GaussianRunConfig(
    data=GaussianData(p_spu=0.9, sigma_xi=0.0, n=512, d_image=6, d_text=6),
    encoder=Linear(h=3, init_scale=1.0),
    objective=Supervised(),
    train=TrainConfig(steps=200, batch_size=64, lr=0.01, optimizer="adam"),
    eval=EvalConfig(n_test=20000),
)


@pytest.fixture(scope="module")
def supervised():
    """(spec, hp, carry, fixed, measured) of SUPERVISED: the final training state and run_one's metrics."""
    spec, hp = split(SUPERVISED)

    def train_and_evaluate(key):  # run_one's steps, keeping the parameters
        carry, fixed = T.setup(key, hp, spec)
        carry, _ = jax.lax.scan(
            lambda c, t: T.step(c, t, fixed, hp, spec), carry, jnp.arange(spec.train.steps)
        )
        return carry, fixed, T.evaluate(carry.params, fixed, hp, spec)

    key = jax.random.key(3)
    return spec, hp, *_compiled(train_and_evaluate, key)(key)


def test_non_finite_parameters_after_the_last_step_mark_it_bad(supervised):
    """A last update that overflows (finite last loss) must not yield accuracies from NaN scores."""
    spec, hp, carry, fixed, _ = supervised
    losses = jnp.zeros(spec.train.steps)
    finish = _compiled(T._finish, carry, fixed, losses, hp, spec, static="spec")
    assert int(finish(carry, fixed, losses, hp)["first_bad_step"]) == -1
    params = jax.tree.map(jnp.asarray, carry.params)  # a copy: the fixture's state stays as it was
    params["image"]["proj"]["kernel"][...] = jnp.full_like(params["image"]["proj"]["kernel"][...], jnp.nan)
    bad = finish(carry._replace(params=params), fixed, losses, hp)
    assert int(bad["first_bad_step"]) == spec.train.steps - 1
    assert np.isfinite(np.asarray(carry.params["image"]["proj"]["kernel"][...])).all()


def test_supervised_head_accuracy_is_the_exact_accuracy_of_its_learned_rule(supervised):
    """Supervised ERM: each group's measured head accuracy equals the exact Gaussian accuracy of the affine
    rule the model learned (class +1 iff v . z + c > 0, computed here from the parameters)."""
    cfg = SUPERVISED
    _, _, carry, fixed, measured = supervised
    p = carry.params
    w_HxD = np.asarray(p["image"]["proj"]["kernel"][...]).T
    head_HxK, bias_K = (
        np.asarray(p["extra"]["head"]["kernel"][...]),
        np.asarray(p["extra"]["head"]["bias"][...]),
    )
    v = np.asarray(fixed.world.D_image).T @ w_HxD.T @ (head_HxK[:, 0] - head_HxK[:, 1])  # class 0 is y = +1
    c = bias_K[0] - bias_K[1]
    model = cfg.data.theory_model()
    sd = np.sqrt(v[0] ** 2 * model.sigma_inv**2 + v[1] ** 2 * model.sigma_spu**2)
    exact = {}
    for g in ("common", "counter"):
        m = v @ model.group_mean(g)  # y = +1 has mean group_mean, y = -1 its negative
        exact[g] = 0.5 * (ndtr((m + c) / sd) + ndtr((m - c) / sd))
    exact["balanced"] = 0.5 * (exact["common"] + exact["counter"])
    exact["id"] = 0.9 * exact["common"] + 0.1 * exact["counter"]
    for g, acc in exact.items():
        assert abs(float(measured[f"acc_{g}"]) - acc) < 4 * np.sqrt(acc * (1 - acc) / 20000) + 1e-3, (g, acc)
    assert exact["common"] - exact["counter"] > 0.05  # it did learn to use the background


def test_a_seeds_result_does_not_depend_on_its_batch_and_chunks_hand_over_finished_seeds(small_raw):
    """Seed i's key is fold_in(key(seed), i) and its draws do not depend on the other keys under vmap, so
    seeds 1, 2 run beside seed 3 give what they gave beside seed 0. train.seed_chunk=3 with 6 seeds:
    on_chunk receives the first 3 seeds' results before the next chunk runs (same compiled program)."""
    spec, hp = split(SMALL)
    shifted, _ = T.run_seeds(spec, hp, T.seed_keys(SMALL.seed, 1, SMALL.seeds))  # seeds 1, 2, 3
    np.testing.assert_allclose(
        shifted["latent_product"][:2], small_raw["latent_product"][1:], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(shifted["acc_counter"][:2], small_raw["acc_counter"][1:])
    partials = []
    six = dataclasses.replace(SMALL, seeds=6, train=dataclasses.replace(SMALL.train, seed_chunk=3))
    result = R.run(six, on_chunk=partials.append)
    assert len(partials) == 1 and len(partials[0]["metrics"]["acc_counter"]["per_seed"]) == 3
    np.testing.assert_allclose(partials[0]["metrics"]["acc_counter"]["per_seed"], small_raw["acc_counter"])
    np.testing.assert_allclose(result["metrics"]["acc_counter"]["per_seed"][3], shifted["acc_counter"][2])
    assert result["status"] == "ok" and result["seeds_done"] == 6


def test_same_key_same_result_and_seeds_differ(small_raw):
    """...and the second run reuses the compiled program; run_seeds returns its timings (no module-level
    counters to reset)."""
    spec, hp = split(SMALL)
    hits = T.compiled_run.cache_info().hits
    again, took = T.run_seeds(spec, hp, T.seed_keys(SMALL.seed, 0, SMALL.seeds))
    assert T.compiled_run.cache_info().hits == hits + 1 and set(took) == {"compile_s", "run_s"}
    assert not hasattr(T, "TIMINGS") and not hasattr(T, "_COMPILED")
    np.testing.assert_array_equal(again["latent_product"], small_raw["latent_product"])
    assert len(set(small_raw["acc_counter"].tolist())) == SMALL.seeds


def test_a_short_run_compiles_with_the_short_run_options_and_computes_what_the_long_run_ones_do():
    """compiler_options is a function of the Spec: at most SHORT_RUN example-steps a seed (steps x batch)
    compile with SHORT_RUN_OPTIONS, longer runs with COMPILER_OPTIONS; on a short InfoNCE run both give the
    same numbers up to float reassociation."""
    cfg = GaussianRunConfig(
        seeds=2,
        data=GaussianData(n=256, d_image=4, d_text=4),
        encoder=Linear(h=2),
        objective=Clip(),
        train=TrainConfig(steps=T.SHORT_RUN // 32, batch_size=32, optimizer="adam", lr=0.01),
        eval=EvalConfig(n_test=2000),
    )
    spec, hp = split(cfg)
    longer = dataclasses.replace(spec, train=dataclasses.replace(spec.train, steps=spec.train.steps + 1))
    assert (
        T.compiler_options(spec) == T.SHORT_RUN_OPTIONS and T.compiler_options(longer) == T.COMPILER_OPTIONS
    )
    assert T.SHORT_RUN_OPTIONS != T.COMPILER_OPTIONS
    # tests/conftest.py's XLA_FLAGS for everything else the suite compiles: the same options, as flags
    assert FAST_COMPILE_FLAGS == {k: str(v).lower() for k, v in T.SHORT_RUN_OPTIONS.items()}
    keys = T.seed_keys(0, 0, cfg.seeds)
    lowered = T._run_many.lower(keys, hp, spec)  # the program run_seeds compiles, compiled both ways
    short, long = (
        lowered.compile(options)(keys, hp) for options in (T.compiler_options(spec), T.COMPILER_OPTIONS)
    )
    for name in ("acc_common", "acc_counter"):  # up to two of 2000 test points on the other side of a tie
        np.testing.assert_allclose(short[name], long[name], atol=1e-3, err_msg=name)
    np.testing.assert_allclose(short["final_loss"], long["final_loss"], rtol=1e-4)
    assert np.all(np.asarray(long["acc_common"]) > 0.6)  # it trained: not two chance-level runs agreeing


def _with(**change):
    """SMALL with some components or settings changed (built lazily: bad values raise when built)."""
    return lambda: dataclasses.replace(SMALL, **{k: v() for k, v in change.items()})


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (_with(encoder=lambda: MLP()), "encoder='MLP'"),
        (_with(data=lambda: GaussianData(p_spu=1.5)), "data.p_spu=1.5"),
        (_with(train=lambda: TrainConfig(optimizer="lbfgs")), "train.optimizer='lbfgs'"),
        (
            _with(data=lambda: GaussianData(n=0), train=lambda: TrainConfig(batch_size=0)),
            "train.batch_size=0",
        ),
        (_with(objective=lambda: Clip(logit_scale_init=5.0)), "objective.logit_scale_init=5.0"),
        (_with(objective=lambda: SigLIP(siglip_t_init=-1.0)), "objective.siglip_t_init=-1.0"),
        # each of these trained nothing, or crashed with an unrelated error, before they were checked
        (_with(encoder=lambda: Linear(init_scale=0.0)), "encoder.init_scale=0.0"),
        (_with(train=lambda: TrainConfig(lr=float("inf"))), "train.lr=inf"),
        (_with(train=lambda: TrainConfig(seed_chunk=-1)), "train.seed_chunk=-1"),
        (_with(encoder=lambda: MLP(width=0)), "encoder.width=0"),
        (_with(encoder=lambda: MLP(depth=-1)), "encoder.depth=-1"),
        (_with(train=lambda: TrainConfig(optimizer="adamw", weight_decay=-0.1)), "train.weight_decay=-0.1"),
        (_with(data=lambda: GaussianData(k=1)), "data.k=1"),
        (_with(objective=lambda: LinearClip(rho=0.0)), "objective.rho=0.0"),
    ],
)
def test_bad_configs_name_the_key(change, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        split(change())


SHARDED = """
import json, jax
from synthetic import train as T
from synthetic.config import resolve
from tests.test_synthetic_train import SMALL
spec, hp = T.split(resolve(SMALL))
keys = T.seed_keys(SMALL.seed, 0, SMALL.seeds)
sharded, n_dev = T._shard_seeds(keys)
out, _ = T.run_seeds(spec, hp, keys)
print(json.dumps({"n_dev": n_dev, "n_shards": len(sharded.sharding.device_set),
                  "latent_product": out["latent_product"].tolist(),
                  "acc_counter": out["acc_counter"].tolist()}))
"""


def _sharded_run():
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2".strip()
    env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SHARDED)], env=env, cwd=root, capture_output=True, text=True
    )


@pytest.mark.slow
def test_two_host_devices_give_the_same_result(small_raw):
    proc = _sharded_run()
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["n_dev"] == 2 and got["n_shards"] == 2
    np.testing.assert_allclose(got["latent_product"], small_raw["latent_product"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["acc_counter"], small_raw["acc_counter"], atol=1e-4)
