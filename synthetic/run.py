"""A Gaussian-model run of ``python -m synthetic``: all seeds, per-seed metrics, the exact theory beside them.

:func:`run` returns a results body (:func:`synthetic.results.body`), as ``synthetic.mnist.run.run`` does;
a seed whose loss went non-finite has null metrics (never NaN) and the run is "diverged".
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

import numpy as np

import theory
from synthetic import train as T
from synthetic.config import GaussianRunConfig, resolve, to_plain
from synthetic.results import body, convergence, group_summaries

#: Per-seed outputs of the compiled run that are arrays, not scalar metrics (kept in "extra").
ARRAY_OUTPUTS = ("latent_product", "loss_curve", "first_bad_step", "params")

#: Set by the batched launcher (hydra_plugins/sober_clip_launcher) around one job of a group it ran as one
#: program (synthetic/batch.py): (the resolved config it ran, its per-seed outputs, the group's record).
#: run() then records these outputs instead of computing them again; everything else is the same path.
#: An exception instead (the group was refused before compiling, e.g. too large for memory) is raised.
PRECOMPUTED: ContextVar[tuple | BaseException | None] = ContextVar("PRECOMPUTED", default=None)


def _rank(run: GaussianRunConfig) -> int | None:
    return run.encoder.h if run.encoder.LINEAR else None


def theory_predictions(run: GaussianRunConfig) -> dict:
    """Exact population predictions at this run's point (theory/), with the printed Theorem 6.2 bound.

    ``objective``: the objective the prediction is for (the run's own); ``acc_<group>`` and
    ``acc_<group>_prompt_mean``: its zero-shot accuracy, null with ``note`` saying why where no prediction
    applies (never another objective's numbers under the run's name). ``linear_clip``: the linearised-CLIP
    prediction (rank h for linear encoders) whatever the objective; ``supervised_acc_<group>``: the
    population least-squares classifier; the printed bound and whether its assumptions hold.
    """
    model = run.data.theory_model()
    name = run.objective.THEORY
    out: dict = {"objective": name or type(run.objective).__name__}
    if model is None:
        return {**out, "note": run.data.theory_note(), **_nulls()}
    rank = _rank(run)

    def accs(**kwargs) -> dict:
        per = {}
        for g in theory.GROUPS:
            for prompt, suffix in (("class", ""), ("mean", "_prompt_mean")):
                per[f"acc_{g}{suffix}"] = float(
                    theory.zero_shot_accuracy(model, g, prompt, rank=rank, **kwargs)
                )
        return _derived(per)

    out["linear_clip"] = accs()
    if not all(np.isfinite(v) for v in out["linear_clip"].values()):  # e.g. a non-unique rank-1 optimum
        out["linear_clip"]["note"] = theory.prediction_applies(model, "linear_clip", "linear", rank)
    why_not = _not_predicted(run, model, name, rank)
    if why_not:
        out.update(note=why_not, **_nulls())
    else:  # the run's own objective (InfoNCE: large-batch limit; SigLIP: the run's batch)
        batch = run.train.batch_size or run.data.n
        own = accs(objective=name, **run.objective.theory_kwargs(batch))
        if all(np.isfinite(v) for v in own.values()):
            out.update(own)
            reduction = theory.prediction_reduction(model, name)
            if reduction:  # never unmarked: the noisy prediction rests on the G = 0 reduction, so it
                out["objective"] = f"{name}_g0"  # carries a name of its own (docs/theory.md 9.9)
                out["reduction"] = reduction
        else:  # a numerical prediction that did not settle is no prediction: say so, never a bare null
            out.update(note=f"theory/ returned no finite {name} prediction at this point", **_nulls())
    for g in theory.GROUPS:
        out[f"supervised_acc_{g}"] = float(theory.supervised_accuracy(model, g))
    out.update({k: float(v) for k, v in theory.paper_bounds(model).items()})
    out["counter_accuracy_upper_bound"] = 1.0 - out["counter_error_lower_bound"]
    out["assumptions_hold"] = bool(theory.theorem_assumptions_hold(model))
    optimum = run.objective.optimum(model, rank) if run.encoder.LINEAR else None
    if optimum is not None:
        out["optimum"] = optimum.tolist()
    return out


def _derived(per: dict) -> dict:
    one = {k: [v] for k, v in per.items()}
    return {k: v[0] for k, v in group_summaries(one).items()}


def _nulls() -> dict:
    names = [f"acc_{g}{s}" for g in (*theory.GROUPS, "worst") for s in ("", "_prompt_mean")]
    return {**dict.fromkeys(names), "drop": None, "drop_prompt_mean": None}


def _not_predicted(run: GaussianRunConfig, model, name: str | None, rank: int | None) -> str | None:
    """Why the run's own objective has no prediction here, or None."""
    if name is None:
        return f"no exact prediction for {type(run.objective).__name__}"
    if not run.encoder.LINEAR:
        return f"the exact prediction for {name} assumes linear encoders, not {type(run.encoder).__name__}"
    if theory.prediction_reduction(model, name) and run.data.n > 0:
        return (
            f"no {name} prediction for noisy data with a finite training set (data.n={run.data.n}): the "
            "noisy prediction (the G = 0 reduction) is the fresh-sample optimum, tested with data.n=0 only; "
            "with n pairs in d dimensions the encoders can fit the noise"
        )
    return theory.prediction_applies(model, name, "linear", rank)


def seed_metrics(raw: dict[str, np.ndarray], run: GaussianRunConfig) -> dict[str, list[float | None]]:
    """Scalar metrics per seed; diverged seeds get None."""
    bad = raw["first_bad_step"] >= 0
    per_seed = {name: v.astype(float) for name, v in raw.items() if name not in ARRAY_OUTPUTS}
    model = run.data.theory_model()
    optimum = (
        run.objective.optimum(model, _rank(run)) if model is not None and "latent_product" in raw else None
    )
    if optimum is not None:
        dist = np.linalg.norm(raw["latent_product"] - optimum, axis=(1, 2)) / np.linalg.norm(optimum)
        per_seed["dist_optimum"] = dist
    return {
        name: [None if b or not np.isfinite(x) else float(x) for x, b in zip(v, bad, strict=True)]
        for name, v in per_seed.items()
    }


def check(cfg) -> None:
    """Every config value checked (components built, nothing compiled): the run record's ``check``."""
    resolve(cfg)


def run(cfg, on_chunk: Callable[[dict], None] | None = None, save_dir=None) -> dict:
    """Train and evaluate every seed; ``on_chunk`` receives the partial body after each seed chunk.
    ``train.save=true``: each seed's parameters are written under ``save_dir`` (the run folder) as each
    chunk ends (:func:`synthetic.saved.save_params`)."""
    run_cfg = resolve(cfg)  # every value checked before anything compiles
    spec, hp = T.split(run_cfg)
    prediction = theory_predictions(run_cfg)
    config = to_plain(run_cfg)
    pre = PRECOMPUTED.get()
    if isinstance(pre, BaseException):
        raise pre
    if pre is not None:
        ran, raw, group = pre
        if to_plain(ran) != config:  # never record one grid point's numbers under another's config
            raise ValueError(f"the batched launcher handed this job the outputs of {to_plain(ran)}")
        timings = {"compile_s": group.compile_s, "run_s": group.run_s}
        _save([raw], 0, run_cfg, save_dir)
        return _saved(
            {"config": config, **_collect([raw], run_cfg, spec, prediction, timings, group.record())}, run_cfg
        )
    chunk = run_cfg.train.seed_chunk or run_cfg.seeds
    raws: list[dict[str, np.ndarray]] = []
    timings = {"compile_s": 0.0, "run_s": 0.0}
    for start in range(0, run_cfg.seeds, chunk):
        count = min(chunk, run_cfg.seeds - start)
        label = f"seeds {start}-{start + count - 1}: " if chunk < run_cfg.seeds else ""
        raw, took = T.run_seeds(spec, hp, T.seed_keys(run_cfg.seed, start, count), label)
        raws.append(raw)
        timings = {name: timings[name] + took[name] for name in timings}
        _save(raws[-1:], start, run_cfg, save_dir)
        result = _saved({"config": config, **_collect(raws, run_cfg, spec, prediction, timings)}, run_cfg)
        if on_chunk is not None and start + chunk < run_cfg.seeds:
            on_chunk(result)
    return result


def _save(raws: list[dict], start: int, run_cfg: GaussianRunConfig, save_dir) -> None:
    if not run_cfg.train.save:
        return
    if save_dir is None:
        raise ValueError(
            "train.save=true needs the run folder to save into (synthetic.run.run(save_dir=...))"
        )
    from synthetic.saved import save_params

    save_params(save_dir, raws[0]["params"], start)


def _saved(result: dict, run_cfg: GaussianRunConfig) -> dict:
    if run_cfg.train.save:  # where synthetic.load finds them
        result["extra"]["params"] = [f"params/seed_{i}" for i in range(result["seeds_done"])]
    return result


def _collect(
    raws: list[dict[str, np.ndarray]],
    run_cfg: GaussianRunConfig,
    spec: T.Spec,
    prediction: dict,
    timings: dict,
    batched: dict | None = None,
) -> dict:
    raw = {name: np.concatenate([r[name] for r in raws]) for name in raws[0] if name != "params"}
    first_bad = raw["first_bad_step"]
    diverged = first_bad[first_bad >= 0]
    extra = {
        "first_bad_step_per_seed": [int(s) if s >= 0 else None for s in first_bad],
        "loss_curve_steps": T.curve_index(spec).tolist(),
        "loss_curve_per_seed": raw["loss_curve"],  # non-finite points are null (json_safe)
        "loss_curve_mean_ok_seeds": raw["loss_curve"][first_bad < 0].mean(0).tolist()
        if (first_bad < 0).any()
        else None,
        "compile_s": round(timings["compile_s"], 3),
        "run_s": round(timings["run_s"], 3),
        "xla_options": T.compiler_options(spec),  # how the program was compiled (None: backend defaults)
    }
    if batched is not None:  # compile_s / run_s are then the whole group's program (extra.batched.jobs)
        extra["batched"] = batched
    if "latent_product" in raw:
        extra["latent_product_per_seed"] = raw["latent_product"]  # null where a seed diverged (json_safe)
    per_seed = seed_metrics(raw, run_cfg)
    converge = convergence(raw["loss_curve"][first_bad < 0], per_seed, run_cfg.eval.n_test)
    return body(per_seed, int(diverged.min()) if diverged.size else None, extra, prediction, converge)
