"""Figures from saved results (or the paper's reported numbers); nothing here runs a model.

``python -m paper_figs`` draws every figure (``__main__``); ``python -m paper_figs sweep DIR`` any synthetic
sweep (``sweep``); ``python -m paper_figs.demo`` is ``make demo``. One module per figure: ``theory_curves``,
``synthetic_vs_theory``, ``mnist`` and, for CounterAnimal (driven by ``counteranimal``, sharing
``ca_panels``), ``fig_common_vs_counter``, ``fig_drop_vs_size``, ``fig_drop_by_data``, ``fig_per_class``;
``aggregate`` writes the CounterAnimal table, ``reference`` holds the paper's numbers, ``common`` how a
figure is written. See docs/figures.md.
"""
