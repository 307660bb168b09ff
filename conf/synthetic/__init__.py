"""Hydra configs of python -m synthetic; the wheel ships them as the package synthetic.conf."""
