"""Figures from saved results (or the paper's reported numbers). Nothing here trains or evaluates a model,
except ``demo`` (what ``make demo`` runs), which launches the CPU-size synthetic sweeps and then draws them.

``python -m paper_figs`` draws every figure of :data:`FIGURES` (``__main__``); ``python -m paper_figs sweep
DIR`` any synthetic sweep (``sweep``). The figure contract: each module named in :data:`FIGURES` exposes
``make(out_dir, results_dir=None) -> list[Path]`` (``results_dir=None``: its default place under results/;
no results there: ``FileNotFoundError`` naming the command that makes them). A new figure is its own module
plus one entry here. CounterAnimal's figures (``fig_common_vs_counter``, ``fig_drop_vs_size``,
``fig_drop_by_data``, ``fig_per_class``, sharing ``ca_panels``) are drawn by ``counteranimal``; ``aggregate``
writes the CounterAnimal table, ``reference`` holds the paper's numbers, ``common`` how a figure is written.
See docs/figures.md.
"""

#: The figure registry: the modules ``python -m paper_figs`` draws, in order (imported when their turn comes).
FIGURES = ("theory_curves", "synthetic_vs_theory", "captions", "mnist", "coloredcoco", "counteranimal")
