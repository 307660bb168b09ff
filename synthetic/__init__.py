"""JAX simulations of CLIP-style training on the invariant + spurious data model (docs/synthetic.md).

Modules: ``components`` (what data models, encoders and objectives share), ``data``, ``encoders``,
``objectives`` (the built-in components, named by YAML ``_target_``), ``config`` (one schema per
experiment kind, ``resolve``), ``train`` (the compiled program), ``run`` (a Gaussian run with theory
beside it), ``results`` (the results body; the file is written by ``theory.runrecord``), ``aggregate``
(CSV of a sweep), ``app`` (``python -m synthetic``), ``api`` (:func:`run_point`), ``saved``
(``train.save=true`` and :func:`load`), ``bench``; ``mnist/`` holds MultiColoredMNIST.
Importing the package imports nothing heavy (figures use ``synthetic.aggregate`` without JAX).
"""


def load(run_dir):
    """A ``train.save=true`` run with its trained encoders and a zero-shot scorer (:mod:`synthetic.saved`)."""
    from synthetic.saved import load as _load

    return _load(run_dir)


def run_point(overrides=(), out_dir=None) -> dict:
    """One ``python -m synthetic <overrides>`` run from Python; returns its results document
    (:mod:`synthetic.api`)."""
    from synthetic.api import run_point as _run_point

    return _run_point(overrides, out_dir)
