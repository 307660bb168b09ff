"""Hydra configs of python -m realdata; the wheel ships them as the package realdata.conf."""
