"""The causal world model: the generator's graph, the generator under interventions, the
learned mechanisms, do(), counterfactuals and the named questions."""

import numpy as np
import pytest

from astrojax.causal import (
    CausalGraph,
    CycleError,
    generator_graph,
    scale,
    set_to,
    true_adjacency,
    variable_table,
)
from astrojax.data.generator import generate_population
from astrojax.data.generator.causal_graph import VARIABLE_BY_NAME, VARIABLE_NAMES
from astrojax.data.generator.sampling import simulate_variables

N = 1024


@pytest.fixture(scope="module")
def natural() -> dict[str, np.ndarray]:
    return simulate_variables(N, 3)


# ------------------------------------------------------------------------------- the graph
def test_a_cycle_is_refused_by_name():
    with pytest.raises(CycleError, match=r"b -> d -> c -> b"):
        CausalGraph(("a", "b", "c", "d"), {"b": ("a", "c"), "c": ("d",), "d": ("b",)})
    with pytest.raises(CycleError, match=r"a -> a"):
        CausalGraph(("a",), {"a": ("a",)})
    with pytest.raises(ValueError, match="'z' is not a node"):
        CausalGraph(("a", "b"), {"b": ("z",)})


def test_graph_adjacency_and_order():
    g = CausalGraph(("c", "a", "b"), {"c": ("b",), "b": ("a",)})
    np.testing.assert_array_equal(g.adjacency(), [[0, 0, 0], [0, 0, 1], [1, 0, 0]])
    assert g.topological_order() == ("a", "b", "c")
    assert g.descendants("a") == {"b", "c"} and g.ancestors("c") == {"a", "b"}
    again = CausalGraph.from_adjacency(g.nodes, g.adjacency())
    assert again.parents == g.parents


def test_generator_graph_is_a_dag_in_computation_order():
    g = generator_graph()
    assert g.nodes == VARIABLE_NAMES and len(g) == 49
    assert g.topological_order() == g.nodes  # declared in the order _simulate computes them
    a = true_adjacency()
    assert a.shape == (49, 49) and set(np.unique(a)) == {0, 1} and np.trace(a) == 0
    # The biosphere's feedback is unrolled: abiotic climate -> life -> living climate.
    assert "abiotic_temperature_k" in g.ancestors("living_ch4")
    assert "biosphere" not in g.ancestors("living_temperature_k")
    assert g.children("eccentricity") == ()


# --------------------------------------------------------------- the generator under do()
def test_no_intervention_is_bitwise_the_population(natural):
    plain, empty = generate_population(N, 3), generate_population(N, 3, do={})
    for name, column in plain.columns().items():
        assert column.tobytes() == getattr(empty, name).tobytes(), name
    for name in ("star_teff_k", "insolation_searth", "water_fraction", "surface_temperature_k",
                 "x_o2", "x_ch4", "habitable", "biosphere", "biosignature"):
        assert natural[name].tobytes() == getattr(plain, name).tobytes(), name
    table = variable_table(N, 3, rows=[0, 5])
    assert table.shape == (2, 49)
    assert table[1, VARIABLE_NAMES.index("x_o2")] == np.log10(plain.x_o2[5])


def test_an_intervention_moves_only_descendants(natural):
    g = generator_graph()
    out = simulate_variables(N, 3, do={"biosphere": 0})
    changed = {n for n in VARIABLE_NAMES if not np.array_equal(out[n], natural[n])}
    assert changed and changed <= g.descendants("biosphere") | {"biosphere"}
    assert (out["biosphere"] == 0).all()
    lifeless = natural["biosphere"] == 0
    np.testing.assert_array_equal(out["x_o2"][lifeless], natural["x_o2"][lifeless])
    np.testing.assert_array_equal(out["x_o2"], natural["abiotic_x_o2"])
    warmer = generate_population(N, 3, do={"insolation_searth": scale(1.25)})
    np.testing.assert_allclose(warmer.insolation_searth, 1.25 * natural["insolation_searth"])
    np.testing.assert_allclose(warmer.semi_major_axis_au,
                               natural["semi_major_axis_au"] / np.sqrt(1.25))
    assert warmer.surface_temperature_k.mean() > natural["surface_temperature_k"].mean()


def test_bad_interventions_are_named():
    with pytest.raises(ValueError, match="'ozone_column_du': not a variable"):
        generate_population(8, do={"ozone_column_du": 1.0})
    with pytest.raises(ValueError, match="biosphere takes classes 0-3"):
        generate_population(8, do={"biosphere": 4})
    with pytest.raises(ValueError, match="habitable is binary: set it"):
        generate_population(8, do={"habitable": scale(2.0)})
    with pytest.raises(ValueError, match="one per planet"):
        generate_population(8, do={"water_fraction": np.zeros(7)})


# Edges the code reads whose effect is below what 1,024 planets show on their child: the first
# climate's H2O floor, H2 and O2 rarely decide a steam atmosphere, and CH4 changes the O2
# mixing ratio only through normalisation when the other gases exceed the whole atmosphere.
WEAK_EDGES = {("h2o_floor", "steam_atmosphere"), ("dry_h2", "steam_atmosphere"),
              ("outgassed_o2", "steam_atmosphere"), ("dry_ch4", "abiotic_x_o2"),
              ("living_ch4", "living_x_o2")}


def _perturbed(name, values, rng):
    var = VARIABLE_BY_NAME[name]
    if var.kind == "binary":
        return ~values
    if var.kind == "categorical":
        return (values + 1) % var.num_classes
    if var.scale == "linear":
        return values + 0.3 * rng.uniform(-1, 1, values.shape)
    return values * 10 ** rng.uniform(-1.5, 1.5, values.shape)


@pytest.mark.slow
def test_generator_computes_each_variable_from_exactly_its_parents(natural):
    """With its parents clamped at their natural values, a variable does not move when every
    other non-descendant is perturbed (no undeclared edge); with all parents but one clamped,
    perturbing that one moves it (no idle edge)."""
    g, rng = generator_graph(), np.random.default_rng(0)
    for j in g.nodes:
        parents = g.parents[j]
        others = set(g.nodes) - set(parents) - g.descendants(j) - {j}
        do = {p: set_to(natural[p]) for p in parents}
        do.update({k: set_to(_perturbed(k, natural[k], rng)) for k in others})
        # Insolation and the orbit are one draw (insolation is recomputed from L and a), and a
        # clamped temperature's vapour is taken at T rather than the last iterate: both agree
        # to rounding.
        np.testing.assert_allclose(simulate_variables(N, 3, do)[j], natural[j], rtol=1e-9,
                                   err_msg=f"{j} depends on a variable outside its parents")
        for i in parents:
            if (i, j) in WEAK_EDGES:
                continue
            do = {p: set_to(natural[p]) for p in parents if p != i}
            do[i] = set_to(_perturbed(i, natural[i], rng))
            assert not np.array_equal(simulate_variables(N, 3, do)[j], natural[j]), (i, j)
