"""The batched launcher against Hydra's basic launcher on the same sweep, in one run.

    python benchmarks/batched_launcher.py                                   # captions map, reduced + full
    python benchmarks/batched_launcher.py --experiment theorem62 --reduce data.p_spu=0.5,0.75,1.0 --no-full

1. The *reduced* sweep (``--reduce``: command-line sweep overrides that replace the experiment's own, and
   any other overrides) runs as a new ``python -m synthetic -m`` process under ``hydra/launcher=basic``,
   then under ``hydra/launcher=batched``: wall time of each whole process, the ratio, and per job the
   largest difference of any per-seed metric between the two (statuses must agree).
2. With ``--full`` (default) the whole sweep runs under the batched launcher alone: its wall time, and per
   compiled group its rows, chunks, compile and run time and memory (the row estimate, XLA's memory
   analysis of the compiled chunk, the process's peak RSS).

Wall time and the process's CPU time (user + system: what the sweep cost, whatever else the machine
runs) and the load average are printed beside every timing (the machine is shared: compare the ratios,
measured in the same run). Saves benchmarks/out/batched_launcher_<experiment>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sweep(experiment: str, launcher: str, overrides: list[str], out: Path) -> dict:
    """One whole `python -m synthetic -m` process; wall time, peak RSS and the load around it."""
    cmd = [sys.executable, "-m", "synthetic", "-m", f"experiment={experiment}", f"hydra/launcher={launcher}"]
    cmd += [*overrides, f"hydra.sweep.dir={out}"]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    with open(out.parent / f"{out.name}.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed; see {out.parent / (out.name + '.log')}")
    row = {"launcher": launcher, "command": " ".join(["python", *cmd[1:]]), "wall_s": round(wall, 2)}
    row["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 2)  # the process's user + system CPU time
    row.update(peak_rss_gib=round(usage.ru_maxrss / (1 << 20), 3), load_before=round(load, 2))
    row["load_after"] = round(os.getloadavg()[0], 2)
    row["jobs"] = len(list(out.glob("*/results.json")))
    return row


def jobs(folder: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in folder.glob("*/results.json")}


def compare(a: Path, b: Path) -> dict:
    """Per job: statuses agree, and the largest |difference| of any per-seed metric (null seeds agree)."""
    ja, jb = jobs(a), jobs(b)
    if sorted(ja) != sorted(jb):
        raise SystemExit(f"the launchers wrote different jobs: {sorted(ja)} vs {sorted(jb)}")
    worst, where, statuses = 0.0, None, {}
    for job, x in ja.items():
        y = jb[job]
        statuses[x["status"]] = statuses.get(x["status"], 0) + 1
        if x["status"] != y["status"] or x["config"] != y["config"]:
            raise SystemExit(f"job {job}: status {x['status']} vs {y['status']} or configs differ")
        for name, m in x["metrics"].items():
            for u, v in zip(m["per_seed"], y["metrics"][name]["per_seed"], strict=True):
                if (u is None) != (v is None):
                    raise SystemExit(f"job {job} {name}: a seed is null under one launcher only")
                if u is not None and abs(u - v) > worst:
                    worst, where = abs(u - v), f"job {job} {name}"
    return {"max_abs_diff": worst, "at": where, "statuses": statuses}


def groups(folder: Path) -> list[dict]:
    """The compiled groups of a batched sweep, from each job's extra.batched (one record per group)."""
    seen = {}
    for job in jobs(folder).values():
        g = job["extra"].get("batched")
        if g is not None:
            objective = job["config"]["objective"]["_target_"].rsplit(".", 1)[1]
            seen.setdefault(json.dumps(g, sort_keys=True), {"objective": objective, **g})
    gib = 1 << 30
    out = []
    for g in seen.values():
        g["estimate_gib"] = round(g["row_bytes_estimate"] * g["chunk"] / gib, 3)
        g["xla_gib"] = round(g["xla_bytes"] / gib, 3) if g["xla_bytes"] else None
        g["peak_rss_gib"] = round(g["peak_rss_bytes"] / gib, 3) if g["peak_rss_bytes"] else None
        out.append(g)
    return out


def _save(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))


def _line(what: str, row: dict) -> str:
    load = f"load {row['load_before']}-{row['load_after']}"
    return f"{what:<18}{row['jobs']} jobs in {row['wall_s']:.1f} s wall, {row['cpu_s']:.1f} s CPU ({load})"


def captions_table_check(folder: Path) -> dict:
    """The captions map's means against the table in docs/synthetic.md (counter / common, class and
    class-mean prompt, rounded to 0.001 there), for every cell the sweep in ``folder`` covers."""
    doc = (ROOT / "docs" / "synthetic.md").read_text()
    part = doc.split("counter / common accuracy, class prompt")[1]
    tables = dict(
        zip(("", "_prompt_mean"), part.split("counter / common accuracy, class-mean prompt"), strict=True)
    )
    cells = {}
    for suffix, text in tables.items():
        for line in text.split("What it shows")[0].splitlines():
            c = [x.strip() for x in line.strip().strip("|").split("|")]
            if len(c) < 6 or c[0] in ("objective", "---"):
                continue
            for p_spu, cell in zip((0.6, 0.8, 0.9, 1.0), c[2:6], strict=True):
                counter, common = (float(x) for x in cell.split("(")[0].split("/"))
                cells[(c[0], c[1], p_spu, suffix)] = {"counter": counter, "common": common}
    worst, n = 0.0, 0
    for job in jobs(folder).values():
        c = job["config"]
        obj = c["objective"]["_target_"].rsplit(".", 1)[1]
        q = "any (no captions)" if obj == "Supervised" else f"{c['data']['caption_q']:g}"
        for suffix in ("", "_prompt_mean"):
            ref = cells.get((obj, q, float(c["data"]["p_spu"]), suffix))
            for group, value in (ref or {}).items():
                worst = max(worst, abs(job["metrics"][f"acc_{group}{suffix}"]["mean"] - value))
                n += 1
    return {"cells": n, "max_abs_diff": round(worst, 4)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment", default="captions")
    p.add_argument(
        "--reduce",
        default="data.p_spu=0.6,1.0 data.caption_q=0,1",
        help="overrides of the reduced sweep run under both launchers (space-separated)",
    )
    p.add_argument("--overrides", default="", help="overrides for every sweep (space-separated)")
    p.add_argument("--no-full", dest="full", action="store_false", help="skip the full batched sweep")
    p.add_argument("--no-reduced", dest="reduced", action="store_false", help="skip the side-by-side")
    p.add_argument("--work", type=Path, default=None, help="where the sweeps go (default: a temp folder)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    out = args.out or ROOT / "benchmarks" / "out" / f"batched_launcher_{args.experiment}.json"
    work = args.work or Path(tempfile.mkdtemp(prefix="batched-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    common = args.overrides.split()
    report: dict = {"experiment": args.experiment, "cpus": os.cpu_count(), "work": str(work)}
    try:
        import jax

        report["device"] = f"{jax.default_backend()} ({jax.devices()[0].device_kind})"
    except Exception as e:  # report what ran, whatever happens to jax here
        report["device"] = f"unknown ({e})"
    if args.reduced:
        reduce = args.reduce.split()
        basic = sweep(args.experiment, "basic", [*reduce, *common], work / "reduced-basic")
        print(_line("reduced, basic:", basic))
        batched = sweep(args.experiment, "batched", [*reduce, *common], work / "reduced-batched")
        print(_line("reduced, batched:", batched))
        same = compare(work / "reduced-basic", work / "reduced-batched")
        ratio = basic["wall_s"] / batched["wall_s"]
        cpu_ratio = basic["cpu_s"] / batched["cpu_s"]
        print(
            f"  basic / batched: {ratio:.1f}x wall, {cpu_ratio:.1f}x CPU; largest per-seed difference "
            f"{same['max_abs_diff']:.2e}"
        )
        report["reduced"] = {"basic": basic, "batched": batched, "ratio": round(ratio, 2), "agreement": same}
        report["reduced"]["cpu_ratio"] = round(cpu_ratio, 2)
        report["reduced"]["groups"] = groups(work / "reduced-batched")
        if args.experiment == "captions":
            table = captions_table_check(work / "reduced-batched")
            print(f"  batched vs the docs table: {table['cells']} cells, max |diff| {table['max_abs_diff']}")
            report["reduced"]["table"] = table
        _save(report, out)  # kept if the full sweep is stopped
    if args.full:
        full = sweep(args.experiment, "batched", common, work / "full-batched")
        print(_line("full, batched:", full))
        full["groups"] = groups(work / "full-batched")
        for g in full["groups"]:
            print(
                f"  {g['objective']:<11} {g['jobs']} jobs, {g['rows']} rows in {g['chunks']} chunk(s) of "
                f"{g['chunk']}: compile {g['compile_s']:.1f} s, run {g['run_s']:.1f} s; memory estimate "
                f"{g['estimate_gib']} GiB, XLA {g['xla_gib']} GiB, peak RSS {g['peak_rss_gib']} GiB"
            )
        if args.experiment == "captions":
            full["table"] = captions_table_check(work / "full-batched")
            t = full["table"]
            print(f"  vs docs/synthetic.md: {t['cells']} cells, max |diff| {t['max_abs_diff']}")
        report["full"] = full
    _save(report, out)
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
