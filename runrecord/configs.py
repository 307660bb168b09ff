"""Where an app's Hydra configs are: ``conf/<app>/`` of a source checkout, or the copy a wheel ships.

``conf/`` stays the one source folder; pyproject.toml maps ``conf/<app>`` into the wheel as the package
data ``<app>.conf`` (``[tool.setuptools.package-dir]``), so an installed app reads ``pkg://<app>.conf``.
"""

from __future__ import annotations

from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]


def config_path(app: str) -> str:
    """Hydra ``config_path`` of ``app`` (``synthetic`` or ``realdata``): the checkout's ``conf/<app>`` when
    this package runs from a checkout (or an editable install), else ``pkg://<app>.conf``."""
    here = CHECKOUT / "conf" / app
    if (here / f"{app}.yaml").is_file():
        return str(here)
    return f"pkg://{app}.conf"


def initialize(app: str):
    """``hydra.initialize_*`` for :func:`config_path` (a context manager), to ``hydra.compose`` ``app``."""
    from hydra import initialize_config_dir, initialize_config_module

    path = config_path(app)
    if path.startswith("pkg://"):
        return initialize_config_module(path.removeprefix("pkg://"), version_base="1.3")
    return initialize_config_dir(path, version_base="1.3")
