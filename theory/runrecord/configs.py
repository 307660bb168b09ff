"""Where an app's Hydra configs are: ``conf/<app>/`` of a source checkout, or the copy a wheel ships.

``conf/`` stays the one source folder; pyproject.toml maps ``conf/<app>`` into the wheel as the package
data ``<app>.conf`` (``[tool.setuptools.package-dir]``), so an installed app reads ``pkg://<app>.conf``.
"""

from __future__ import annotations

from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]  # theory/runrecord/configs.py -> the checkout


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


def _yaml_files(scheme: str, where: str) -> dict[str, str]:
    """``group/name.yaml`` -> its path, for every YAML file of a config source (``file`` or ``pkg``)."""
    from importlib import resources

    if scheme == "file":
        root = Path(where)
        return {str(p.relative_to(root)): str(p) for p in root.rglob("*.yaml")} if root.is_dir() else {}
    if scheme != "pkg":
        return {}
    try:
        top = resources.files(where)
    except ModuleNotFoundError:
        return {}
    out, stack = {}, [(top, "")]
    while stack:
        node, rel = stack.pop()
        for child in node.iterdir():
            name = f"{rel}{child.name}"
            if child.is_dir():
                stack.append((child, name + "/"))
            elif child.name.endswith(".yaml"):
                out[name] = f"pkg://{where}/{name}"
    return out


def shadowed(sources) -> list[str]:
    """Config files of a user's folder (``--config-dir DIR`` or ``hydra.searchpath``) named like one of the
    app's own (``objective/clip.yaml``). Hydra takes the first source that has a name and ignores the
    other without a word, so a user file would silently lose to the built-in: each such pair is listed
    (the apps stop on any, naming both files). ``sources``: Hydra's ``runtime.config_sources`` (each with
    ``provider``, ``schema``, ``path``)."""

    def user(provider: str) -> bool:
        return provider == "command-line" or provider.startswith("hydra.searchpath")

    own: dict[str, str] = {}
    for s in sources:
        if s.provider == "main":
            own.update(_yaml_files(s.schema, s.path))
    clashes = []
    for s in sources:
        if user(s.provider):
            for name, where in sorted(_yaml_files(s.schema, s.path).items()):
                if name in own:
                    clashes.append(f"{where} has the name of the built-in {own[name]}")
    return clashes


def check_not_shadowed(sources) -> None:
    """Stop (runrecord.ConfigError) when a user's config file is named like a built-in (:func:`shadowed`)."""
    from theory.runrecord import ConfigError

    clashes = shadowed(sources)
    if clashes:
        raise ConfigError(
            "; ".join(clashes)
            + ": Hydra would use only one of them; rename yours (e.g. objective/my_clip.yaml)"
        )
