"""Figures of the notebooks: data in, matplotlib Figure out (nothing is written to disk).

Save them with :func:`kc.book.output.save_figure`. One module per family of figures, every public
function re-exported here (``from kc.book import plotting; plotting.plot_table1(...)``):

* :mod:`kc.book.plotting.tables`: Tables 1-4 (:func:`plot_table1`, :func:`plot_convergence`,
  :func:`plot_table2`, :func:`plot_refinement`), Sec. 4.1 (:func:`component_figure`) and the
  toy notebook;
* :mod:`kc.book.plotting.components`: the component grids of Figs. 1, 3 and 5
  (:func:`orders_figure`, :func:`diagnosis_figures`, :func:`cross_task_figures`);
* :mod:`kc.book.plotting.fig4`: Fig. 4, compression and born-again networks;
* :mod:`kc.book.plotting.beyond`: the baselines, grounding and planted notebooks.
"""

from kc.book.plotting.beyond import (
    plot_baselines,
    plot_grounding,
    plot_planted_baselines,
    plot_planted_case,
    plot_recovery,
)
from kc.book.plotting.components import (
    cross_task_figures,
    cross_task_instability,
    diagnosis_figures,
    direction_figure,
    orders_figure,
)
from kc.book.plotting.fig4 import (
    plot_blind_spots,
    plot_discarded,
    plot_discarding,
    plot_generations,
    seed_curves,
)
from kc.book.plotting.tables import (
    channel_maps,
    component_figure,
    plot_convergence,
    plot_refinement,
    plot_table1,
    plot_table2,
    plot_toy_cases,
    plot_toy_components,
)

__all__ = [
    "channel_maps",
    "component_figure",
    "cross_task_figures",
    "cross_task_instability",
    "diagnosis_figures",
    "direction_figure",
    "orders_figure",
    "plot_baselines",
    "plot_blind_spots",
    "plot_convergence",
    "plot_discarded",
    "plot_discarding",
    "plot_generations",
    "plot_grounding",
    "plot_planted_baselines",
    "plot_planted_case",
    "plot_recovery",
    "plot_refinement",
    "plot_table1",
    "plot_table2",
    "plot_toy_cases",
    "plot_toy_components",
    "seed_curves",
]
