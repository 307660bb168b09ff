"""Structured config of the MultiColoredMNIST experiment, embedded as ``mnist`` in conf/synthetic.yaml."""

from dataclasses import dataclass


@dataclass
class MNISTConfig:
    k: int = 2  # number of classes
    n: int = 10610  # training samples (the paper's count for k = 2)
    p_inv: float = 0.9  # P(digit shape agrees with the label)
    p_spu: float = 0.9  # P(classes 0/1 carry their colour red/green)
    source: str = "offline"  # "offline": generated digits, no download; "idx": MNIST IDX files under root
    root: str | None = None
    objective: str = "contrastive"  # contrastive | two_tower | supervised
