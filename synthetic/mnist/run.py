"""One MultiColoredMNIST run: build the data, train every seed at once (vmapped), evaluate on Rand and Rev."""


def run(cfg) -> dict:
    """Train ``cfg.seeds`` seeds of ``cfg.mnist.objective`` on MultiColoredMNIST and evaluate them.

    Reads ``cfg.mnist`` (an MNISTConfig), ``cfg.seeds`` (how many seeds), ``cfg.train.steps``,
    ``cfg.train.batch_size`` and ``cfg.train.lr``.

    Returns ``{"per_seed": {metric: [float per seed]}, "status": "ok" | "diverged",
    "diverged_step": int | None, "extra": {...}}`` with metrics ``acc_id``, ``acc_rand``, ``acc_rev``.
    """
    raise NotImplementedError("synthetic.mnist.run.run is being written (issue 7)")
