"""``hydra/launcher=batched``: the jobs of a ``-m`` sweep that compile to the same program run as one.

Jobs of ``python -m synthetic`` (``task=gaussian``) are grouped by their static part
(:func:`synthetic.batch.static_key`: everything that changes the compiled program); each group of two or
more runs as one program with the grid points and the seeds on the vmapped axis, chunked to fit memory
(:func:`synthetic.batch.run_group`; ``hydra.launcher.chunk`` rows per chunk, 0 = chosen from
``hydra.launcher.memory_fraction`` of the available memory). Then every job goes through Hydra's own
``run_job`` with the app's task function, exactly as under the basic launcher (its folder, ``.hydra/``,
its log, results.json written by the same code), except that its run records the rows the group computed
(:data:`synthetic.run.PRECOMPUTED`) instead of computing them again. Everything else -- other kinds,
other apps (realdata), a group of one, a group whose program fails to build -- runs one by one as under
the basic launcher.

Before anything runs, each synthetic job's folder gets its ``.hydra/`` and a results.json saying
"interrupted" (what the run contract writes at a run's start), so a Ctrl-C, a kill or a crash leaves
every unfinished job "interrupted"; a job whose results.json is already finished is not touched.
"""

import copy
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, _save_config, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

log = logging.getLogger(__name__)


@dataclass
class BatchedLauncherConf:
    _target_: str = "hydra_plugins.sober_clip_launcher.batched_launcher.BatchedLauncher"
    chunk: int = 0  # rows (grid points x seeds) per compiled chunk; 0 = as many as fit in memory
    memory_fraction: float = 0.5  # of the available memory (host RAM on CPU, free device memory on GPU)


ConfigStore.instance().store(
    group="hydra/launcher", name="batched", node=BatchedLauncherConf, provider="sober-clip"
)


INTERRUPTED = "stopped by the user (SIGINT)"


def _log_job(idx: int, config: DictConfig) -> None:
    log.info(f"\t#{idx} : {' '.join(filter_overrides(config.hydra.overrides.task))}")


def _task_cfg(config: DictConfig) -> DictConfig:
    """The job's config without its hydra node, as run_job hands it to the task function."""
    task = copy.deepcopy(config)
    with read_write(task), open_dict(task):
        del task["hydra"]
    return task


def _prepare(config: DictConfig) -> Path:
    """Set the job's output dir in its config, as run_job does, and write its ``.hydra/`` as run_job
    will (config.yaml, hydra.yaml, overrides.yaml); returns the job's folder."""
    HydraConfig.instance().set_config(config)
    out = os.path.join(str(OmegaConf.select(config, "hydra.sweep.dir")), str(config.hydra.sweep.subdir))
    with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
        config.hydra.runtime.output_dir = os.path.abspath(out)
    HydraConfig.instance().set_config(config)
    if config.hydra.output_subdir is not None:
        hydra_out = Path(config.hydra.runtime.output_dir) / str(config.hydra.output_subdir)
        _save_config(_task_cfg(config), "config.yaml", hydra_out)
        _save_config(copy.deepcopy(HydraConfig.instance().cfg), "hydra.yaml", hydra_out)
        _save_config(config.hydra.overrides.task, "overrides.yaml", hydra_out)
    return Path(config.hydra.runtime.output_dir)


class BatchedLauncher(Launcher):
    def __init__(self, chunk: int = 0, memory_fraction: float = 0.5) -> None:
        if not (isinstance(chunk, int) and chunk >= 0):
            raise ValueError(f"hydra.launcher.chunk={chunk!r}: expected rows per chunk >= 0 (0 = auto)")
        if not 0 < memory_fraction <= 1:
            raise ValueError(f"hydra.launcher.memory_fraction={memory_fraction!r}: expected one in (0, 1]")
        self.chunk = chunk
        self.memory_fraction = memory_fraction
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def _run_job(self, config: DictConfig, task_function: TaskFunction) -> JobReturn:
        assert self.config is not None and self.hydra_context is not None
        ret = run_job(
            hydra_context=self.hydra_context,
            task_function=task_function,
            config=config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return ret

    def launch(self, job_overrides, initial_job_idx: int) -> list[JobReturn]:
        setup_globals()
        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        configs = []
        for i, overrides in enumerate(job_overrides):
            c = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(c):
                c.hydra.job.id = c.hydra.job.num = initial_job_idx + i
            configs.append(c)
        dirs = {i: self._pending(configs[i]) for i in range(len(configs)) if self._is_synthetic(configs[i])}
        groups = self._groups(configs, dirs)
        grouped = {i for g in groups for i in g}
        log.info(
            f"Launching {len(configs)} jobs: {len(grouped)} in {len(groups)} compiled group(s) "
            f"({', '.join(str(len(g)) for g in groups) or 'none'} jobs), "
            f"{len(configs) - len(grouped)} one by one"
        )
        done: set[int] = set()
        try:
            returns: dict[int, JobReturn] = {}
            group_of = {i: g for g in groups for i in g}
            for i, c in enumerate(configs):
                if i in returns:
                    continue
                if i not in group_of:
                    _log_job(initial_job_idx + i, c)
                    returns[i] = self._run_job(c, self.task_function)
                    done.add(i)
                    continue
                g = group_of[i]
                label = f"group {groups.index(g) + 1}/{len(groups)} ({len(g)} jobs): "
                returns.update(self._run_group(g, configs, initial_job_idx, label, done))
            return [returns[i] for i in range(len(configs))]
        except KeyboardInterrupt:
            from synthetic.app import write_pending

            for i, out in dirs.items():
                if i not in done:
                    write_pending(_task_cfg(configs[i]), out, f"KeyboardInterrupt: {INTERRUPTED}")
            print(
                f"[synthetic] interrupted (SIGINT): {len(dirs) - len(done & set(dirs))} unfinished jobs' "
                "results.json say status interrupted",
                file=sys.stderr,
                flush=True,
            )
            sys.stdout.flush()
            os._exit(130)  # as python -m synthetic does: do not wait for (or abort in) the XLA thread

    @staticmethod
    def _is_synthetic(config: DictConfig) -> bool:
        task = OmegaConf.select(config, "task", default=None)
        if task is None:
            return False
        from synthetic.app import KINDS

        return task in KINDS

    def _pending(self, config: DictConfig) -> Path:
        from synthetic.app import write_pending

        out = _prepare(config)
        write_pending(_task_cfg(config), out)
        return out

    def _groups(self, configs: list[DictConfig], dirs: dict[int, Path]) -> list[list[int]]:
        """Indices of the jobs that share one compiled program, groups of two or more, in job order. A job
        that ``resume=true`` will skip (its folder holds a finished run of its config) joins none."""
        if not any(OmegaConf.select(c, "task", default=None) == "gaussian" for c in configs):
            return []  # nothing to batch: do not import JAX
        from synthetic.batch import static_key

        by_key: dict[Any, list[int]] = {}
        for i, c in enumerate(configs):
            HydraConfig.instance().set_config(c)  # for interpolations that read the hydra node
            if i in dirs and self._resumed(c, dirs[i]):
                continue
            key = static_key(_task_cfg(c))
            if key is not None:
                by_key.setdefault(key, []).append(i)
        return [g for g in by_key.values() if len(g) > 1]

    @staticmethod
    def _resumed(config: DictConfig, out_dir: Path) -> bool:
        if not OmegaConf.select(config, "resume", default=False):
            return False
        from synthetic.app import recorded_config
        from theory.runrecord import finished_result

        try:
            return finished_result(out_dir, recorded_config(_task_cfg(config)))[0] is not None
        except Exception:  # a config that does not resolve: its own run says why
            return False

    def _run_group(self, g, configs, initial_job_idx, label, done) -> dict[int, JobReturn]:
        from synthetic.batch import run_group
        from synthetic.config import resolve

        assert self.task_function is not None
        for i in g:
            _log_job(initial_job_idx + i, configs[i])
        try:
            runs = []
            for i in g:  # each job's own hydra node, for interpolations that read it (as _groups does)
                HydraConfig.instance().set_config(configs[i])
                runs.append(resolve(_task_cfg(configs[i])))
        except Exception:  # a config error: each job's own run prints its one line and exits 2
            return self._run_one_by_one(g, configs, done)
        try:
            per_run, info = run_group(runs, self.chunk, self.memory_fraction, label)
            handed = [(run, raw, info) for run, raw in zip(runs, per_run, strict=True)]
        except MemoryError as e:  # refused before compiling: every job of the group records why
            log.error(f"{label}{e}")
            handed = [e] * len(g)
        except Exception as e:  # the group's program did not build or run: each job on its own
            log.warning(f"{label}running its jobs one by one: {type(e).__name__}: {e}")
            handed = [None] * len(g)
        if isinstance(handed[0], tuple):
            info = handed[0][2]
            gib = 1 << 30
            xla = f"{info.xla_bytes / gib:.2f} GiB" if info.xla_bytes is not None else "n/a"
            estimate = info.row_bytes_estimate * info.chunk / gib
            log.info(
                f"{label}{info.rows} rows in {info.chunks} chunk(s) of {info.chunk}; compile "
                f"{info.compile_s:.1f} s, run {info.run_s:.1f} s; memory: estimate {estimate:.2f} GiB, "
                f"XLA {xla}, available {info.available_bytes / gib:.2f} GiB"
            )
        out = {}
        for i, h in zip(g, handed, strict=True):
            out[i] = self._run_job(configs[i], self._handing(h))
            done.add(i)
        return out

    def _run_one_by_one(self, g, configs, done) -> dict[int, JobReturn]:
        assert self.task_function is not None
        out = {}
        for i in g:
            out[i] = self._run_job(configs[i], self.task_function)
            done.add(i)
        return out

    def _handing(self, handed) -> TaskFunction:
        """The app's task function, run with this job's precomputed rows (or the group's error) in hand."""
        task_function = self.task_function
        assert task_function is not None
        if handed is None:
            return task_function
        from synthetic.run import PRECOMPUTED

        def task(cfg):
            token = PRECOMPUTED.set(handed)
            try:
                return task_function(cfg)
            finally:
                PRECOMPUTED.reset(token)

        return task
