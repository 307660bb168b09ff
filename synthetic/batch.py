"""Grid points x seeds of a sweep as one compiled program: what ``hydra/launcher=batched`` runs.

Jobs of a ``-m`` sweep whose :class:`synthetic.train.Spec` is the same (everything static: shapes,
component classes, step count) differ only in traced hyperparameters (``hp``: p_spu, caption_q, rho, lr
...) and seeds. :func:`run_group` puts every (job, seed) pair on one vmapped axis, the *rows*: hp is
repeated per seed, the seed keys are each job's own (``seed_keys(job.seed, 0, job.seeds)``), so a row
computes what the job's own run computes (threefry draws do not depend on the batch), and a row whose
loss went non-finite spoils no other row (no op reduces across rows). Rows are run in equal chunks, so
a group compiles once; the chunk is the most rows that fit in ``memory_fraction`` of the available
memory (:func:`row_bytes`: a liveness estimate of one row's buffers from the traced program, before
anything compiles) and on CPU at most :func:`cpu_chunk_rows`, or the ``chunk`` the user gave, which is
refused before compiling when it does not fit. The launcher (hydra_plugins/sober_clip_launcher) hands
each job its rows through :data:`synthetic.run.PRECOMPUTED`, and the job's ordinary task writes its
results.json. A hyperparameter every job of the group shares stays one scalar (:func:`stack_hp`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from synthetic import train as T
from synthetic.config import GaussianRunConfig, resolve


def static_key(cfg) -> T.Spec | None:
    """The compiled program a job's config runs (its Spec), or None when it cannot join a group: not a
    Gaussian run, or a config that does not resolve (its own run then records why it failed)."""
    if cfg.get("task") != "gaussian":
        return None
    try:
        return T.split(resolve(cfg))[0]
    except Exception:
        return None


@dataclasses.dataclass
class Group:
    """What run_group measured for one group (written to each job's results.json extra.batched)."""

    jobs: int
    rows: int
    chunk: int
    chunks: int
    row_bytes_estimate: int
    available_bytes: int
    xla_bytes: int | None  # XLA's memory analysis of the compiled chunk (arguments + outputs + temporaries)
    peak_rss_bytes: int | None  # the process's peak resident set after the group (CPU: includes the rest)
    compile_s: float
    run_s: float

    def record(self) -> dict:
        return dataclasses.asdict(self)


def _nbytes(aval) -> int:
    shape = getattr(aval, "shape", None)
    dtype = getattr(aval, "dtype", None)
    if shape is None or dtype is None:
        return 0
    try:
        return math.prod(shape) * np.dtype(dtype).itemsize
    except TypeError:  # key arrays and other extended dtypes: count their words
        return math.prod(shape) * 8


def _subjaxprs(eqn):
    for v in eqn.params.values():
        for x in v if isinstance(v, tuple | list) else (v,):
            if hasattr(x, "jaxpr") and hasattr(x, "consts"):  # ClosedJaxpr
                yield x.jaxpr
            elif hasattr(x, "eqns"):  # Jaxpr
                yield x


def _peak(jaxpr) -> int:
    """Peak bytes of live buffers over a linear schedule of ``jaxpr`` (a value dies at its last use; a
    nested program -- scan body, cond branch, while loop -- adds its own peak while it runs). XLA fuses
    elementwise chains, so this over-counts them: a safe side for choosing a chunk."""
    last: dict = {}
    for i, eqn in enumerate(jaxpr.eqns):
        for v in eqn.invars:
            if not hasattr(v, "val"):  # a Var, not a Literal
                last[v] = i
    for v in jaxpr.outvars:
        if not hasattr(v, "val"):
            last[v] = len(jaxpr.eqns)
    size = {v: _nbytes(v.aval) for v in (*jaxpr.invars, *jaxpr.constvars)}
    live = sum(size.values())
    peak = live
    for i, eqn in enumerate(jaxpr.eqns):
        inner = max((_peak(j) for j in _subjaxprs(eqn)), default=0)
        out = {v: _nbytes(v.aval) for v in eqn.outvars}
        peak = max(peak, live + inner + sum(out.values()))
        size.update(out)
        live += sum(out.values())
        for v in (*eqn.invars, *eqn.outvars):
            if not hasattr(v, "val") and last.get(v, -1) <= i and v in size:
                live -= size.pop(v)
    return peak


def row_bytes(spec: T.Spec, hp: dict) -> int:
    """Estimated bytes one row (one seed of one grid point) needs while the program runs: the peak of
    live buffers of one seed's whole run, from its traced program (no compilation)."""
    key = T.seed_keys(0, 0, 1)[0]
    return _peak(jax.make_jaxpr(lambda k, h: T.run_one(k, h, spec))(key, hp).jaxpr)


def available_bytes() -> int:
    """Memory the program may use: free memory of the local accelerators (summed; rows are sharded
    over them), or on CPU the host's MemAvailable."""
    devices = jax.local_devices()
    if devices[0].platform != "cpu":
        stats = [d.memory_stats() or {} for d in devices]
        if all("bytes_limit" in s for s in stats):
            return sum(s["bytes_limit"] - s.get("bytes_in_use", 0) for s in stats)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _peak_rss() -> int | None:
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux
    except (ImportError, OSError):
        return None


#: Cache budget of an automatic chunk on CPU. A row's step works on B x B matrices (similarities,
#: 256 KiB at batch 256) through a chain of kernels: once a chunk's matrices outgrow the caches each
#: kernel streams them from memory. A clip row-step of the captions map (one pinned core) cost about 1.4x
#: more in chunks of 150 rows than in chunks of 10-30; 253 us in chunks of 5 and 262 in chunks of 15,
#: while linear_clip's (no B x B matrix) 94 and 84 us.
CPU_CACHE_BYTES = 4 << 20  # 4 MiB: 16 rows at batch 256


def cpu_chunk_rows(batch: int) -> int:
    """Rows of an automatic chunk on CPU: as many as keep one B x B float32 matrix a row in the budget."""
    return max(1, CPU_CACHE_BYTES // (4 * batch * batch))


def plan_chunk(
    n_rows: int, per_row: int, available: int, chunk: int, n_devices: int = 1, most: int = 0
) -> int:
    """Rows per compiled chunk: ``chunk`` when given (refused when it does not fit), else the most that
    fit in ``available`` and, when ``most`` > 0, at most ``most``; a multiple of the device count, and
    equal chunks (one compilation)."""
    fit = available // max(per_row, 1)
    gib = 1 << 30
    if chunk:
        if chunk * per_row > available:
            raise MemoryError(
                f"hydra.launcher.chunk={chunk}: {chunk} rows need about {chunk * per_row / gib:.2f} GiB "
                f"({per_row / (1 << 20):.1f} MiB a row), {available / gib:.2f} GiB available; "
                f"use chunk <= {fit} (or 0: chosen from the available memory)"
            )
    else:
        if fit < n_devices:
            raise MemoryError(
                f"one row (one seed of one grid point) needs about {per_row / gib:.2f} GiB and "
                f"{n_devices} device(s) need {n_devices * per_row / gib:.2f} GiB, "
                f"{available / gib:.2f} GiB available: the grid point is too large to run here"
            )
    cap = chunk or (min(fit, most) if most > 0 else fit)  # most rows in a chunk
    cap = max(n_devices, cap - cap % n_devices)
    n_chunks = -(-n_rows // cap)
    even = -(-n_rows // n_chunks)  # the same count of chunks, as equal as possible
    return even + (-even) % n_devices


@functools.partial(jax.jit, static_argnames="spec")
def _run_rows(keys: jax.Array, hp: dict, spec: T.Spec) -> dict[str, jax.Array]:
    """Rows of (key, hp): an hp leaf with a row axis is per row, a scalar leaf is every row's (a value the
    group's jobs share stays unbatched, so a branch on it -- data.embed's noise-free case -- stays one)."""
    hp_axes = jax.tree.map(lambda x: 0 if jnp.ndim(x) else None, hp)
    return jax.vmap(T.run_one, in_axes=(0, hp_axes, None))(keys, hp, spec)


def stack_hp(hps: list[dict], per_row_of: np.ndarray) -> dict:
    """The rows' hyperparameters: a leaf the runs share as one scalar, any other one value per row."""

    def leaf(*values):
        first = np.asarray(values[0])
        if all(np.array_equal(np.asarray(v), first) for v in values):
            return jnp.asarray(values[0])
        return jnp.stack(values)[per_row_of]

    return jax.tree.map(leaf, *hps)


def run_group(
    runs: list[GaussianRunConfig],
    chunk: int = 0,
    memory_fraction: float = 0.5,
    label: str = "",
) -> tuple[list[dict[str, np.ndarray]], Group]:
    """Run every seed of every resolved run of one Spec as rows of one program; per run, its per-seed
    outputs (as :func:`synthetic.train.run_seeds` returns them), and what was measured."""
    specs_hps = [T.split(r) for r in runs]
    spec = specs_hps[0][0]
    bad = [i for i, (s, _) in enumerate(specs_hps) if s != spec]
    if bad:
        raise ValueError(f"run_group: runs {bad} compile to another program than run 0 (another Spec)")
    counts = [r.seeds for r in runs]
    keys = jnp.concatenate([T.seed_keys(r.seed, 0, r.seeds) for r in runs])
    per_row_of = np.repeat(np.arange(len(runs)), counts)  # row -> its run
    hp = stack_hp([h for _, h in specs_hps], per_row_of)
    n_rows = int(sum(counts))
    devices = jax.local_devices()
    per_row = row_bytes(spec, specs_hps[0][1])
    available = int(available_bytes() * memory_fraction)
    most = cpu_chunk_rows(spec.batch) if devices[0].platform == "cpu" else 0
    size = plan_chunk(n_rows, per_row, available, chunk, len(devices), most)
    n_chunks = -(-n_rows // size)
    # pad the rows to n_chunks equal chunks with copies of row 0 (dropped afterwards): one compilation
    idx = np.arange(n_chunks * size) % n_rows
    mesh = Mesh(np.array(devices), ("row",)) if len(devices) > 1 else None

    def place(x):  # per-row arrays sharded over the devices, shared scalars replicated
        spec = PartitionSpec("row") if x.ndim else PartitionSpec()
        return x if mesh is None else jax.device_put(x, NamedSharding(mesh, spec))

    def rows(c: int):
        take = idx[c * size : (c + 1) * size]
        k, h = keys[take], jax.tree.map(lambda x: x[take] if x.ndim else x, hp)
        return place(k), jax.tree.map(place, h)

    start = time.time()
    print(f"[synthetic] {label}compiling {size} rows ...", file=sys.stderr, flush=True)
    options = T.compiler_options(spec)
    # in a thread so that a Ctrl-C during the compile is not lost (train.compiled_run says why)
    compiled = T.in_thread(lambda: _run_rows.lower(*rows(0), spec).compile(options))
    compile_s = time.time() - start
    xla_bytes = None
    try:
        m = compiled.memory_analysis()
        xla_bytes = int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes)
    except Exception:  # not every backend reports it
        pass
    print(f"[synthetic] {label}compiled in {compile_s:.1f} s", file=sys.stderr, flush=True)

    def run_chunk(k, h):
        return jax.block_until_ready(compiled(k, h))

    start = time.time()
    outs = []
    for c in range(n_chunks):
        T._Progress.reset(f"{label}chunk {c + 1}/{n_chunks}: " if n_chunks > 1 else label)
        out = T.in_thread(functools.partial(run_chunk, *rows(c)))
        outs.append(jax.tree.map(np.asarray, out))  # a tree: train.save adds the parameters
    run_s = time.time() - start
    every = jax.tree.map(lambda *xs: np.concatenate(xs)[:n_rows], *outs)
    bounds = np.cumsum([0, *counts])
    per_run = [
        jax.tree.map(lambda v, a=a, b=b: v[a:b], every) for a, b in zip(bounds, bounds[1:], strict=False)
    ]
    info = Group(
        jobs=len(runs),
        rows=n_rows,
        chunk=size,
        chunks=n_chunks,
        row_bytes_estimate=per_row,
        available_bytes=available,
        xla_bytes=xla_bytes,
        peak_rss_bytes=_peak_rss(),
        compile_s=round(compile_s, 3),
        run_s=round(run_s, 3),
    )
    return per_run, info
