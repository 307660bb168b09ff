"""Experiment tracking for both apps: the ``logger`` config group (``none`` | ``tensorboard`` | ``wandb`` |
``mlflow``; ``conf/<app>/logger/``).

A tracker logs a finished run from its results document, after the run: the config, the loss curve the
compiled run recorded (``extra.loss_curve_steps`` with ``loss_curve_per_seed`` / ``loss_curve_mean_ok_seeds``,
one value per recorded step), the final metrics and figures. So the training program stays one compiled
program (no host callback per step) and a failed run is logged too, with its status.

The libraries (the ``track`` extra), matplotlib and Hydra are imported only when a tracker is in use, so
the run record stays light.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from theory.runrecord import RESULTS_FILE, RUN_KEYS


def open_tracker(logger_cfg):
    """The tracker the ``logger`` node names (None for ``logger=none``), built with Hydra's instantiate."""
    if logger_cfg is None or not logger_cfg.get("_target_"):
        return None
    from hydra.utils import instantiate

    return instantiate(logger_cfg, _convert_="all")


def log_results(logger_cfg, run_dir: str | Path, name: str, figures: dict | None = None) -> None:
    """Log the run in ``run_dir`` (its results.json, whatever its status) to the configured tracker."""
    tracker = open_tracker(logger_cfg)
    run_dir = Path(run_dir)
    if tracker is None or not (run_dir / RESULTS_FILE).is_file():  # a config error records nothing
        return
    doc = json.loads((run_dir / RESULTS_FILE).read_text())
    figures = {**loss_figures(doc), **(figures or {})}
    try:
        tracker.log(run_dir, name, doc, figures)
    finally:
        import matplotlib.pyplot as plt

        for fig in figures.values():
            plt.close(fig)


# ---- what is logged, from a results document ----


def flat_config(doc: dict) -> dict[str, object]:
    """The run's config as dotted keys (``train.lr``), without the keys that only say how it is recorded."""
    out: dict[str, object] = {}

    def walk(prefix: str, node) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}{k}.", v)
        else:
            out[prefix[:-1]] = node

    walk("", {k: v for k, v in doc.get("config", {}).items() if k not in RUN_KEYS})
    return out


def curves(doc: dict) -> dict[str, tuple[list[int], list[float]]]:
    """Loss curves recorded by the run: ``loss/seed_<i>`` and ``loss/mean`` (over the seeds that did not
    diverge) -> (steps, values); non-finite points (null in results.json) are left out."""
    extra = doc.get("extra") or {}
    steps = extra.get("loss_curve_steps")
    if not steps:
        return {}
    named = {f"loss/seed_{i}": c for i, c in enumerate(extra.get("loss_curve_per_seed") or [])}
    if extra.get("loss_curve_mean_ok_seeds") is not None:
        named["loss/mean"] = extra["loss_curve_mean_ok_seeds"]
    out = {}
    for name, values in named.items():
        pairs = [(int(s), float(v)) for s, v in zip(steps, values, strict=True) if v is not None]
        if pairs:
            out[name] = ([s for s, _ in pairs], [v for _, v in pairs])
    return out


def final_metrics(doc: dict) -> dict[str, float]:
    """Scalar final metrics: a synthetic ``metrics.<name>`` gives ``<name>`` (mean over seeds) and
    ``<name>_std``; a realdata metric that is a number gives itself. Nulls are left out."""
    out: dict[str, float] = {}
    for name, m in (doc.get("metrics") or {}).items():
        if isinstance(m, dict):
            for key, suffix in (("mean", ""), ("std", "_std")):
                if isinstance(m.get(key), int | float):
                    out[f"{name}{suffix}"] = float(m[key])
        elif isinstance(m, int | float) and not isinstance(m, bool):
            out[name] = float(m)
    return out


def last_step(doc: dict) -> int:
    steps = (doc.get("extra") or {}).get("loss_curve_steps") or [0]
    return int(steps[-1])


def draw_curves(ax, doc: dict, label: str = "", colour=None) -> bool:
    """Draw a run's loss curves on ``ax``: thin lines per seed, the mean bold; False when it has none."""
    got = curves(doc)
    for name, (s, v) in got.items():
        mean = name == "loss/mean"
        style = {"lw": 1.8, "label": label or "mean over seeds"} if mean else {"lw": 0.6, "alpha": 0.35}
        ax.plot(s, v, color=colour, **style)
    return bool(got)


def loss_figures(doc: dict) -> dict:
    """``{"loss_curve": Figure}`` for a run with a recorded curve, else nothing."""
    if not curves(doc):
        return {}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    draw_curves(ax, doc)
    ax.set(xlabel="step", ylabel="training loss", title=f"status {doc.get('status')}")
    ax.legend(frameon=False)
    fig.tight_layout()
    return {"loss_curve": fig}


def _png(fig) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


DT_STRING = 7  # tensorboard.compat.proto.types_pb2.DT_STRING: the text plugin's tensor type


# ---- the trackers (conf/<app>/logger/*.yaml name them by _target_) ----


@dataclass
class TensorBoard:
    """Event files (tensorboard's own writer) in ``dir`` (null: ``<run folder>/tensorboard``);
    ``tensorboard --logdir`` a sweep folder shows every job."""

    dir: str | None = None

    def log(self, run_dir: Path, name: str, doc: dict, figures: dict) -> Path:
        from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        where = Path(self.dir) if self.dir else run_dir / "tensorboard"
        writer = EventFileWriter(str(where))
        S = summary_pb2.Summary

        def add(step: int, *values) -> None:
            writer.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=S(value=list(values))))

        def text(tag: str, body: str):
            meta = summary_pb2.SummaryMetadata(
                plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text")
            )
            shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1)])
            tensor = tensor_pb2.TensorProto(
                dtype=7, tensor_shape=shape, string_val=[body.encode()]
            )  # DT_STRING
            return S.Value(tag=tag, metadata=meta, tensor=tensor)

        config = flat_config(doc)
        table = "\n".join(f"| {k} | {json.dumps(v)} |" for k, v in config.items())
        add(0, text("config", f"{name}, status {doc.get('status')}\n\n| key | value |\n|---|---|\n{table}"))
        for tag, (steps, values) in curves(doc).items():
            for s, v in zip(steps, values, strict=True):
                add(s, S.Value(tag=tag, simple_value=v))
        end = last_step(doc)
        add(end, *[S.Value(tag=f"final/{k}", simple_value=v) for k, v in final_metrics(doc).items()])
        for tag, fig in figures.items():
            png = _png(fig)
            w, h = fig.canvas.get_width_height()
            image = S.Image(height=h, width=w, colorspace=4, encoded_image_string=png)
            add(end, S.Value(tag=f"figures/{tag}", image=image))
        writer.close()
        return where


@dataclass
class WandB:
    """A Weights & Biases run, offline by default (``mode``): files under ``dir`` (null: the run folder)
    ``/wandb/offline-run-*``; ``wandb sync`` uploads them later."""

    project: str = "sober-clip"
    mode: str = "offline"
    dir: str | None = None
    group: str | None = None  # null: the run's experiment name

    def log(self, run_dir: Path, name: str, doc: dict, figures: dict) -> Path:
        import wandb

        where = Path(self.dir) if self.dir else run_dir
        where.mkdir(parents=True, exist_ok=True)
        config = flat_config(doc)
        run = wandb.init(
            project=self.project,
            mode=self.mode,
            dir=str(where.resolve()),
            name=name,
            group=self.group or str(config.get("name", "")) or None,
            config=config,
            tags=[str(doc.get("status"))],
            reinit="finish_previous",
        )
        try:
            by_step: dict[int, dict] = {}
            for tag, (steps, values) in curves(doc).items():
                for s, v in zip(steps, values, strict=True):
                    by_step.setdefault(s, {})[tag] = v
            for s in sorted(by_step):
                run.log(by_step[s], step=s)
            run.log({f"figures/{k}": wandb.Image(fig) for k, fig in figures.items()}, step=last_step(doc))
            run.summary.update({**final_metrics(doc), "status": doc.get("status")})
        finally:
            run.finish(exit_code=0 if doc.get("status") in ("ok", "diverged") else 1)
        return where / "wandb"


@dataclass
class MLflow:
    """An MLflow run in ``tracking_uri``: a folder path is a local file store (default ``results/mlruns``,
    relative to the launch folder; ``mlflow ui --backend-store-uri results/mlruns``), or any MLflow URI
    (``sqlite:///mlflow.db``). ``experiment`` null: the run's experiment name."""

    tracking_uri: str = "results/mlruns"
    experiment: str | None = None

    def uri(self) -> str:
        if "://" in self.tracking_uri or self.tracking_uri.startswith("file:"):
            return self.tracking_uri
        return Path(self.tracking_uri).resolve().as_uri()

    def log(self, run_dir: Path, name: str, doc: dict, figures: dict) -> str:
        uri = self.uri()
        if uri.startswith("file:"):
            # MLflow 3 refuses its file store unless opted in (its own switch); this logger is asked for it
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow import MlflowClient
        from mlflow.entities import Metric, Param

        client = MlflowClient(tracking_uri=uri)
        config = flat_config(doc)
        exp_name = self.experiment or str(config.get("name") or doc.get("kind") or "sober-clip")
        exp = client.get_experiment_by_name(exp_name)
        try:
            exp_id = exp.experiment_id if exp else client.create_experiment(exp_name)
        except Exception:  # a parallel job created it first
            exp_id = client.get_experiment_by_name(exp_name).experiment_id
        run = client.create_run(exp_id, run_name=name, tags={"status": str(doc.get("status"))})
        rid = run.info.run_id
        try:
            params = [Param(k[:250], json.dumps(v)[:6000]) for k, v in config.items()]
            for i in range(0, len(params), 100):  # MLflow's batch limit
                client.log_batch(rid, params=params[i : i + 100])
            now = int(time.time() * 1000)
            metrics = [
                Metric(tag, v, now, s)
                for tag, (steps, values) in curves(doc).items()
                for s, v in zip(steps, values, strict=True)
            ]
            end = last_step(doc)
            metrics += [Metric(f"final/{k}", v, now, end) for k, v in final_metrics(doc).items()]
            for i in range(0, len(metrics), 1000):
                client.log_batch(rid, metrics=metrics[i : i + 1000])
            client.log_dict(rid, doc.get("config", {}), "config.json")
            for tag, fig in figures.items():
                client.log_figure(rid, fig, f"figures/{tag}.png")
        finally:
            ok = doc.get("status") in ("ok", "diverged")
            client.set_terminated(rid, status="FINISHED" if ok else "FAILED")
        return rid
