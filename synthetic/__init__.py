"""JAX simulations of CLIP-style training on the invariant + spurious data model (docs/synthetic.md).

Modules: ``config`` (structured Hydra configs), ``data`` (samplers; registry DATA_MODELS), ``encoders``
(Flax NNX; ENCODERS), ``objectives`` (losses; OBJECTIVES), ``train`` (one compiled run per seed batch),
``run`` (a Gaussian run with theory beside it), ``results`` / ``aggregate`` (results.json, CSV), ``app``
(``python -m synthetic``), ``demo``, ``bench``; ``mnist/`` holds MultiColoredMNIST. Importing the package
imports nothing heavy (figures use ``synthetic.aggregate`` without JAX).
"""
