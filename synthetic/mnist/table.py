"""Table of a MultiColoredMNIST multirun: Rand and Rev accuracy (mean +- std over seeds) beside the paper.

    python -m synthetic.mnist.table DIR [--out OUT_DIR]
    python -m synthetic.mnist.table --bound K P_INV P_SPU [--construction paper|all_coupled] [--p-rev 0.1]

DIR is searched recursively for the ``results.json`` files of ``python -m synthetic -m
experiment=multicolored_mnist``; one row per (construction, source, k, p_inv, p_spu, objective), for every
objective the runs have (named after its class: ``TwoTower`` -> ``two_tower``, :func:`objective_name`). Writes
``mnist_table.csv`` and ``mnist_table.md`` into OUT_DIR (default DIR). Accuracies are in percent; the
Bayes columns are the exact accuracy of the rule that is optimal for the training law
(:func:`synthetic.mnist.data.bayes_reference`, for the run's ``mnist.construction``).

``--bound`` prints, for one cell, the Bayes rule's accuracies and the lowest Rand / Rev accuracy that any
classifier with a given in-distribution accuracy can have (:func:`synthetic.mnist.data.worst_accuracy`),
the numbers of docs/mnist.md's argument about the paper's k = 10 cell.
"""

import argparse
import csv
import pathlib
import re
import sys

import numpy as np

import theory.runrecord
from synthetic.mnist import data
from theory.runrecord import RESULTS_FILE, has_results, iter_results

DEFAULT_ROOT = pathlib.Path("results/synthetic/multicolored_mnist")
SWEEP_COMMAND = "python -m synthetic -m experiment=multicolored_mnist"

# The paper's Table 8 cells quoted in SPEC section 1: (k, p_inv, p_spu, objective) -> Rand, Rev (mean, std).
PAPER = {
    (2, 0.9, 0.9, "contrastive"): ((71.56, 1.79), (50.08, 3.97)),
    (2, 0.9, 0.9, "supervised"): ((71.62, 1.58), (50.13, 3.24)),
    (10, 0.75, 0.9, "contrastive"): ((48.03, 1.56), (5.53, 1.25)),
    (10, 0.75, 0.9, "supervised"): ((46.83, 1.33), (5.72, 1.35)),
}
#: The paper's objectives (a), (b), (c) lead the rows in this order; any other follows, by name.
PAPER_ORDER = ("contrastive", "two_tower", "supervised")
COLUMNS = (
    "k",
    "n",
    "p_inv",
    "p_spu",
    "objective",
    "seeds",
    "status",
    "id_mean",
    "id_std",
    "rand_mean",
    "rand_std",
    "rev_mean",
    "rev_std",
    "bayes_rand",
    "bayes_rev",
    "paper_rand_mean",
    "paper_rand_std",
    "paper_rev_mean",
    "paper_rev_std",
    "construction",
    "source",
)


def latest_sweep(root: pathlib.Path = DEFAULT_ROOT) -> pathlib.Path:
    """The newest MultiColoredMNIST sweep folder under ``root`` that holds results."""
    return theory.runrecord.latest_sweep(root, f"run `{SWEEP_COMMAND}`")


def objective_name(config: dict) -> str:
    """The objective of a run's recorded config, named after its class in snake case (``Contrastive`` ->
    ``contrastive``, ``TwoTower`` -> ``two_tower``, ``InfoNCE`` -> ``info_nce``)."""
    node = config.get("mnist_objective")
    if node is None:  # results written before the objectives were a config group: the name itself
        return config["mnist"]["objective"]
    cls = node["_target_"].rsplit(".", 1)[-1]
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", cls).lower()


def _row(path: pathlib.Path, res: dict) -> dict:
    if "metrics" not in res:
        raise ValueError(f"{path}: no 'metrics' key; expected a finished run of `{SWEEP_COMMAND}`")
    cfg = res["config"]
    if cfg.get("task") != "multicolored_mnist":
        raise ValueError(f"{path}: task={cfg.get('task')!r}; expected 'multicolored_mnist'")
    mc, metrics, objective = cfg["mnist"], res["metrics"], objective_name(cfg)
    k, p_inv, p_spu, p_rev, coupled = mc["k"], mc["p_inv"], mc["p_spu"], mc["p_rev"], mc["coupled"]
    construction = mc.get("construction", "paper")  # results from before the key existed: the paper's
    # the paper's numbers sit beside a row only when the construction is the paper's
    is_paper = construction == "paper" and coupled == 2 and p_rev == 0.1
    paper = PAPER.get((k, p_inv, p_spu, objective)) if is_paper else None
    bayes = data.bayes_reference(k, p_inv, p_spu, p_rev, coupled, construction)

    def pct(name, stat):  # the app writes non-finite values (a diverged seed) as null
        value = metrics[name][stat]
        return None if value is None else 100.0 * value

    return {
        "k": k,
        "n": res.get("extra", {}).get("n_train", mc["n"]),
        "p_inv": p_inv,
        "p_spu": p_spu,
        "objective": objective,
        "seeds": len(metrics["acc_rand"]["per_seed"]),
        "status": res.get("status", "ok"),
        "id_mean": pct("acc_id", "mean"),
        "id_std": pct("acc_id", "std"),
        "rand_mean": pct("acc_rand", "mean"),
        "rand_std": pct("acc_rand", "std"),
        "rev_mean": pct("acc_rev", "mean"),
        "rev_std": pct("acc_rev", "std"),
        "bayes_rand": 100.0 * bayes["acc_rand"],
        "bayes_rev": 100.0 * bayes["acc_rev"],
        "paper_rand_mean": paper[0][0] if paper else None,
        "paper_rand_std": paper[0][1] if paper else None,
        "paper_rev_mean": paper[1][0] if paper else None,
        "paper_rev_std": paper[1][1] if paper else None,
        "construction": construction,
        "source": mc.get("source", "offline"),
        "_path": str(path),
    }


def collect(root: pathlib.Path) -> list[dict]:
    """One row per cell and objective, sorted by construction, source, k, p_inv (descending), p_spu,
    objective."""
    root = pathlib.Path(root)
    if not has_results(root):
        raise FileNotFoundError(f"no {RESULTS_FILE} under {root}; create them with `{SWEEP_COMMAND}`")
    rows: dict[tuple, dict] = {}
    for path, res in iter_results(root):
        row = _row(path, res)
        key = (row["construction"], row["source"], row["k"], row["p_inv"], row["p_spu"], row["objective"])
        if key in rows:
            raise ValueError(
                f"two runs of cell {key}: {rows[key]['_path']} and {path}; point the table at a single sweep"
            )
        rows[key] = row
    order = {o: i for i, o in enumerate(PAPER_ORDER)}
    constructions = {c: i for i, c in enumerate(data.CONSTRUCTIONS)}
    return sorted(
        rows.values(),
        key=lambda r: (
            constructions.get(r["construction"], len(constructions)),
            r["source"],
            r["k"],
            -r["p_inv"],
            r["p_spu"],
            order.get(r["objective"], len(order)),
            r["objective"],
        ),
    )


def _pm(mean, std) -> str:
    if mean is None:
        return ""
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def write(rows: list[dict], out_dir: pathlib.Path) -> list[pathlib.Path]:
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / "mnist_table.csv", out_dir / "mnist_table.md"
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "| k | n | p_inv | p_spu | objective | seeds | ID | Rand | Rev | Bayes Rand / Rev "
        "| paper Rand | paper Rev | construction | source |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        status = "" if r["status"] == "ok" else f" ({r['status']})"
        lines.append(
            f"| {r['k']} | {r['n']} | {r['p_inv']} | {r['p_spu']} | {r['objective']}{status} | {r['seeds']} "
            f"| {_pm(r['id_mean'], r['id_std'])} | {_pm(r['rand_mean'], r['rand_std'])} "
            f"| {_pm(r['rev_mean'], r['rev_std'])} | {r['bayes_rand']:.1f} / {r['bayes_rev']:.1f} "
            f"| {_pm(r['paper_rand_mean'], r['paper_rand_std'])} "
            f"| {_pm(r['paper_rev_mean'], r['paper_rev_std'])} | {r['construction']} | {r['source']} |"
        )
    md_path.write_text("\n".join(lines) + "\n")
    return [csv_path, md_path]


def max_train_accuracy(train, test, max_test_accuracy: float, tol: float = 1e-7) -> float:
    """The highest training-law accuracy of any classifier whose test accuracy is <= ``max_test_accuracy``.

    Bisection on :func:`data.worst_accuracy` (nondecreasing in the training accuracy); nan if even the
    lowest test accuracy of any classifier exceeds ``max_test_accuracy``.
    """
    lo, hi = 0.0, float(train.max(axis=0).sum())
    if data.worst_accuracy(train, test, lo)[0] > max_test_accuracy:
        return float("nan")
    if data.worst_accuracy(train, test, hi)[0] <= max_test_accuracy:
        return hi
    while hi - lo > tol:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if data.worst_accuracy(train, test, mid)[0] <= max_test_accuracy else (lo, mid)
    return lo


def bound_report(
    k: int, p_inv: float, p_spu: float, p_rev: float = 0.1, construction: str = "paper", coupled: int = 2
) -> str:
    """Markdown: the Bayes rule; the lowest Rand / Rev accuracy of any classifier at a given ID accuracy."""
    laws = data.laws(k, p_inv, p_spu, p_rev, coupled, construction)
    bayes = data.bayes_reference(k, p_inv, p_spu, p_rev, coupled, construction)
    top = bayes["acc_id"]
    same = bool(np.abs(laws["rand"] - laws["rev"]).max() < 1e-15)
    lines = [
        f"k = {k}, p_inv = {p_inv}, p_spu = {p_spu}, p_rev = {p_rev}, construction = {construction}",
        "",
        f"Bayes rule of the training law: ID {100 * top:.2f}, Rand {100 * bayes['acc_rand']:.2f}, "
        f"Rev {100 * bayes['acc_rev']:.2f}; shape alone: {100 * p_inv:.2f} on every set. "
        f"Rand and Rev laws identical: {'yes' if same else 'no'}.",
        "",
        "| ID accuracy at least | lowest possible Rand | lowest possible Rev |",
        "|---|---|---|",
    ]
    grid = sorted({top, p_inv, 0.74, 0.73, 0.72, 0.70, 0.65, 0.60, 0.50, 0.25}, reverse=True)
    for a in (x for x in grid if x <= top + 1e-12):
        rand = data.worst_accuracy(laws["id"], laws["rand"], a)[0]
        rev = data.worst_accuracy(laws["id"], laws["rev"], a)[0]
        lines.append(f"| {100 * a:.2f} | {100 * rand:.2f} | {100 * rev:.2f} |")
    lines.append("")
    for target in (0.6,):
        at_top = data.worst_accuracy(laws["id"], laws["rev"], top)[0]
        if at_top < target:
            lines.append(
                f"No ID accuracy guarantees Rev >= {100 * target:.0f}: even at the Bayes ID accuracy some "
                f"classifier has Rev {100 * at_top:.2f}."
            )
        else:
            a = max_train_accuracy(laws["id"], laws["rev"], target)
            lines.append(
                f"Every classifier with ID accuracy above {100 * a:.2f} has Rev >= {100 * target:.0f}."
            )
    for objective in PAPER_ORDER:
        cell = PAPER.get((k, p_inv, p_spu, objective))
        if cell is None:
            continue
        (rand_m, _), (rev_m, rev_s) = cell
        worst_rev = data.worst_accuracy(laws["rand"], laws["rev"], rand_m / 100)[0]
        lines.append(
            f"Paper, {objective}: Rev {rev_m} +- {rev_s} allows ID <= "
            f"{100 * max_train_accuracy(laws['id'], laws['rev'], rev_m / 100):.2f} "
            f"(<= {100 * max_train_accuracy(laws['id'], laws['rev'], (rev_m + 2 * rev_s) / 100):.2f} at "
            f"Rev {rev_m + 2 * rev_s:.2f}); its Rand {rand_m} forces Rev >= {100 * worst_rev:.2f}."
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "dir", type=pathlib.Path, nargs="?", help="a multirun directory (searched recursively)"
    )
    parser.add_argument("--out", type=pathlib.Path, default=None, help="output folder (default: DIR)")
    parser.add_argument(
        "--bound", nargs=3, type=float, metavar=("K", "P_INV", "P_SPU"), help="print the bounds of one cell"
    )
    parser.add_argument("--construction", default="paper", choices=data.CONSTRUCTIONS)
    parser.add_argument("--p-rev", type=float, default=0.1)
    args = parser.parse_args(argv)
    if args.bound is not None:
        k, p_inv, p_spu = args.bound
        if k != int(k) or not 2 <= k <= 10:
            parser.error(f"--bound K={k}; expected an integer number of classes in 2..10")
        print(bound_report(int(k), p_inv, p_spu, args.p_rev, args.construction))
        return 0
    if args.dir is None:
        parser.error("give a multirun directory DIR, or --bound K P_INV P_SPU")
    rows = collect(args.dir)
    for path in write(rows, args.out or args.dir):
        print(path)
    print((args.out or args.dir).joinpath("mnist_table.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
