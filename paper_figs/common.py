"""What every figure module shares: where figures go and how one is written."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

DEFAULT_OUT = Path("paper_figs/out")  # every command's default --out


def save_figure(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    """Write PNG and PDF into ``out_dir`` (created if needed), close the figure, return both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return paths
