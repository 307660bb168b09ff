"""A CLIP in memory (open_clip weights, perhaps fine-tuned first) on CounterAnimal: realdata.evaluate_model.

python docs/examples/evaluate_model.py /data/CounterAnimal                        # ViT-B-32 LAION-400M
python docs/examples/evaluate_model.py /data/CounterAnimal --model ViT-B-16 --pretrained laion2b_s34b_b88k
"""

import argparse

import open_clip

import realdata


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_root")
    parser.add_argument("--model", default="ViT-B-32-quickgelu")
    parser.add_argument("--pretrained", default="laion400m_e31", help="an open_clip tag or a weights file")
    parser.add_argument("--out", default=None, help="default: results/realdata/<label space>_<prompts>/...")
    parser.add_argument(
        "overrides", nargs="*", help="python -m realdata keys: label_space=1v20 num_workers=0"
    )
    args = parser.parse_intermixed_args(argv)
    model, _, preprocess = open_clip.create_model_and_transforms(args.model, pretrained=args.pretrained)
    tokenizer = open_clip.get_tokenizer(args.model)
    # ... fine-tune, prune or edit `model` here: evaluate_model scores the object as it is now
    doc = realdata.evaluate_model(
        model,
        preprocess,
        tokenizer,
        args.data_root,
        name=args.model,
        out_dir=args.out,
        overrides=args.overrides,
    )
    m = doc["metrics"]
    print(f"{args.model}: common {100 * m['acc_common']:.2f}%, counter {100 * m['acc_counter']:.2f}%, "
          f"drop {100 * m['drop']:.2f} points ({doc['status']})")  # fmt: skip
    return doc


if __name__ == "__main__":
    main()
