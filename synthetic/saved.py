"""Saved models: ``train.save=true`` writes each seed's trained parameters with orbax beside results.json
(``<run folder>/params/seed_<i>/``); :func:`load` gives them back as encoders with a zero-shot scorer.

    run = synthetic.load("results/synthetic/runs/<time>")
    run.models[0].embed_image(x)          # seed 0's DualEncoder (image / text encoders, objective params)
    run.scores(0, x_image)                # zero-shot scores per prompt ("" = "class", "_prompt_mean")
    run.evaluate()                        # per-seed accuracies, recomputed: the run's own numbers

A seed's world (the data model's mixing, the class means, the prompts) and its test sets come from its key
(``fold_in(key(seed), i)``, as in the run), so nothing but the parameters needs saving.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx
from omegaconf import OmegaConf

from synthetic import train as T
from synthetic.config import GaussianRunConfig, resolve
from synthetic.objectives import DualEncoder
from theory.runrecord import RESULTS_FILE

PARAMS_DIR = "params"


def save_params(run_dir: str | Path, params: dict, start: int = 0) -> list[Path]:
    """Write seed ``start + i``'s parameters (``params``: the pure dict of the run's outputs, seed axis
    first) to ``run_dir/params/seed_<start + i>``; returns the folders."""
    base = Path(run_dir).resolve() / PARAMS_DIR
    n = len(jax.tree.leaves(params)[0])
    checkpointer = ocp.StandardCheckpointer()
    paths = []
    for i in range(n):
        path = base / f"seed_{start + i}"
        checkpointer.save(path, jax.tree.map(lambda v, i=i: np.asarray(v[i]), params), force=True)
        paths.append(path)
    checkpointer.wait_until_finished()
    return paths


@dataclass
class SavedRun:
    """A finished Gaussian run with its trained models (see the module docstring)."""

    run_dir: Path
    config: GaussianRunConfig  # resolved: components built
    results: dict  # the run's results.json
    spec: T.Spec
    hp: dict
    models: list[DualEncoder]  # one per seed
    _fixed: dict = field(default_factory=dict, repr=False)

    def key(self, seed: int) -> jax.Array:
        return T.seed_keys(self.config.seed, seed, 1)[0]

    def fixed(self, seed: int) -> T.Fixed:
        """Seed ``seed``'s world, training set and keys, regenerated from its key (kept once made)."""
        if seed not in self._fixed:
            self._fixed[seed] = _setup(self.key(seed), self.hp, self.spec)
        return self._fixed[seed]

    def scores(self, seed: int, x_image) -> dict:
        """Zero-shot scores (N x k) of images ``x_image`` (N x d_image) by seed ``seed``'s model, one entry
        per prompt ("" = the "class" prompt, "_prompt_mean"; a supervised model: its head, "")."""
        prompts = T.prompt_inputs(self.fixed(seed), self.hp, self.spec)
        return self.spec.objective.scores(self.models[seed], jax.numpy.asarray(x_image), prompts)

    def evaluate(self) -> dict[str, list[float]]:
        """Each seed's accuracies (``acc_<group>[_prompt_mean]``) recomputed on its own test sets."""
        per_seed: dict[str, list[float]] = {}
        for i, model in enumerate(self.models):
            out, self._fixed[i] = _evaluate(nnx.split(model)[1], self.key(i), self.hp, self.spec)
            for name, v in out.items():
                if name.startswith("acc_"):
                    per_seed.setdefault(name, []).append(float(v))
        return per_seed


@functools.partial(jax.jit, static_argnums=2)
def _setup(key, hp, spec) -> T.Fixed:
    return T.setup(key, hp, spec)[1]


def _setup_and_evaluate(params, key, hp, spec):
    fixed = T.setup(key, hp, spec)[1]
    return T.evaluate(params, fixed, hp, spec), fixed


_EVALUATE: dict = {}  # compiled per Spec, with the training program's compiler options


def _evaluate(params, key, hp, spec):
    if spec not in _EVALUATE:
        options = T.compiler_options(spec)
        jitted = jax.jit(_setup_and_evaluate, static_argnums=3)
        _EVALUATE[spec] = jitted.lower(params, key, hp, spec).compile(options)
    return _EVALUATE[spec](params, key, hp)


def load(run_dir: str | Path) -> SavedRun:
    """The run in ``run_dir`` (a ``python -m synthetic ... train.save=true`` folder) with its models."""
    run_dir = Path(run_dir)
    path = run_dir / RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {RESULTS_FILE} in {run_dir}")
    results = json.loads(path.read_text())
    saved = (results.get("extra") or {}).get("params")
    if results.get("kind") != "gaussian" or not saved:
        raise ValueError(
            f"{path}: no saved parameters (kind={results.get('kind')!r}, extra.params={saved!r}); "
            "rerun the Gaussian run with train.save=true"
        )
    config = resolve(OmegaConf.create(results["config"]))
    spec, hp = T.split(config)
    models = []
    checkpointer = ocp.StandardCheckpointer()
    for rel in saved:
        if not (run_dir / rel).is_dir():
            raise FileNotFoundError(f"{run_dir / rel}: listed in {path} (extra.params) but not there")
        graph, state = nnx.split(nnx.eval_shape(lambda: T._new_model(jax.random.key(0), spec)))
        restored = checkpointer.restore((run_dir / rel).resolve(), nnx.to_pure_dict(state))
        nnx.replace_by_pure_dict(state, restored)
        models.append(nnx.merge(graph, state))
    return SavedRun(run_dir, config, results, spec, hp, models)
