"""A causal world model of the planet population: its graph, neural mechanisms fitted on
observed planets, ``do()`` interventions, counterfactuals, and named what-if questions scored
against the generator run under the same interventions."""

from astrojax.causal.graph import (
    CausalGraph,
    CycleError,
    generator_graph,
    true_adjacency,
    variable_kinds,
    variable_table,
)
from astrojax.data.generator.causal_graph import (
    VARIABLE_NAMES,
    Intervention,
    scale,
    set_to,
    shift,
)

__all__ = [
    "VARIABLE_NAMES", "CausalGraph", "CycleError", "Intervention", "generator_graph", "scale",
    "set_to", "shift", "true_adjacency", "variable_kinds", "variable_table",
]
