"""Counter accuracy of InfoNCE against p_spu, beside the exact theory, from Python (synthetic.run_point).

python docs/examples/run_point.py                      # 4 points, 3 seeds, ~1 compile + seconds a point
python docs/examples/run_point.py --steps 200 --out /tmp/rp
"""

import argparse

import synthetic


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--p-spu", default="0.5,0.75,0.9,1.0")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="results/synthetic/run_point_example")
    parser.add_argument("overrides", nargs="*", help="more python -m synthetic overrides (data.n=1024 ...)")
    args = parser.parse_intermixed_args(argv)
    docs = []
    for p in args.p_spu.split(","):
        overrides = ["objective=clip", f"data.p_spu={p}", f"train.steps={args.steps}", f"seeds={args.seeds}"]
        doc = synthetic.run_point([*overrides, *args.overrides], out_dir=f"{args.out}/p_spu={p}")
        m, theory = doc["metrics"]["acc_counter"], doc["theory"].get("acc_counter")
        shown = "none" if theory is None else f"{theory:.3f}"
        print(
            f"p_spu={p}: counter {m['mean']:.3f} +- {m['std']:.3f} (theory {shown}), status {doc['status']}"
        )
        docs.append(doc)
    return docs


if __name__ == "__main__":
    main()
