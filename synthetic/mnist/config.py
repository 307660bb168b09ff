"""Structured config of the MultiColoredMNIST experiment, embedded as ``mnist`` in conf/synthetic.yaml."""

from dataclasses import dataclass

# The allowed values of the string keys below: the one list of each (models.py, data.py, run.py, table.py,
# paper_figs/mnist.py read these).
OBJECTIVES = ("contrastive", "two_tower", "supervised")
ENCODERS = ("mlp", "cnn")
SOURCES = ("offline", "sklearn", "idx")
CONSTRUCTIONS = ("paper", "all_coupled")
IMAGE_SIZES = (28, 14)


@dataclass
class MNISTConfig:
    k: int = 2  # number of classes (digits 0..k-1), 2..10
    n: int | None = None  # training samples; None: the paper's count for k (PAPER_N in digits.py)
    n_test: int | None = None  # per test set; None: every MNIST test digit < k (idx) or 5000 (offline)
    p_inv: float = 0.9  # P(digit shape agrees with the label); the rest is label noise
    p_spu: float = 0.9  # P(a coupled class carries its own colour) in training
    p_rev: float = 0.1  # the same probability in the Rev test set (Rand uses 1/k)
    coupled: int = 2  # classes 0..coupled-1 have a designated colour (the paper: 0 red, 1 green)
    source: str = "offline"  # offline: font glyphs | sklearn: load_digits | idx: MNIST IDX files
    root: str | None = None  # folder with the four MNIST IDX files (source=idx)
    data_seed: int = 0  # seed of the offline digit images (the colours and label noise use the run's seeds)
    image_size: int = 28  # 28, or 14 (2x2 mean pooling, 4x cheaper)
    objective: str = "contrastive"  # contrastive (a) | two_tower (b) | supervised (c)
    encoder: str = "mlp"  # mlp | cnn
    width: int = 256  # hidden width of the encoders
    embed_dim: int = 64  # joint embedding size of two_tower
    eval_batch: int = 1000  # images per evaluation chunk
    # "paper": classes 0..coupled-1 coupled, Rev = own colour w.p. p_rev; "all_coupled": every class
    # coupled, Rev = colour of class (y+1) mod k w.p. 1 - p_rev (data.colour_law; docs/mnist.md)
    construction: str = "paper"
