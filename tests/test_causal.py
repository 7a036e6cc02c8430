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
    shift,
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


# ------------------------------------------------------------------ the learned mechanisms
@pytest.fixture(scope="module")
def untrained():
    """Mechanisms at their initialisation: abduction and do() are exact for any mechanisms."""
    from flax import nnx

    from astrojax.causal.mechanisms import Layout, Mechanisms
    from astrojax.causal.scm import StructuralCausalModel

    graph = generator_graph()
    table = variable_table(N, 3).astype(np.float32)
    layout = Layout.build(graph, table[:512])
    model = Mechanisms(layout, 8, "heteroscedastic", rngs=nnx.Rngs(0))
    return StructuralCausalModel(graph, layout, model), table[512:576]


@pytest.mark.slow
def test_each_mechanism_reads_only_its_parents(untrained):
    scm, table = untrained
    features = scm.layout.features(table)
    out = np.asarray(scm.model(features))
    rng = np.random.default_rng(0)
    for j, name in enumerate(scm.graph.nodes):
        parents = {scm.graph.index(p) for p in scm.graph.parents[name]}
        shuffled = table.copy()
        for k in set(range(len(scm.graph))) - parents:
            shuffled[:, k] = rng.permutation(shuffled[:, k])
        moved = np.asarray(scm.model.node(scm.layout.features(shuffled), j))
        np.testing.assert_allclose(moved, out[:, j], rtol=1e-5, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(np.asarray(scm.model.node(features, j)), out[:, j],
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_counterfactual_without_action_is_the_planet(untrained):
    scm, table = untrained
    cf = scm.counterfactual(table, None, num_samples=3)
    assert cf.shape == (3, *table.shape)
    discrete = np.array([VARIABLE_BY_NAME[n].kind != "continuous" for n in scm.graph.nodes])
    np.testing.assert_array_equal(cf[..., discrete], np.broadcast_to(table[:, discrete],
                                                                     cf[..., discrete].shape))
    np.testing.assert_allclose(cf[..., ~discrete], np.broadcast_to(
        table[:, ~discrete], cf[..., ~discrete].shape), rtol=1e-4, atol=1e-3)


@pytest.mark.slow
def test_counterfactual_action_reaches_only_descendants(untrained):
    scm, table = untrained
    cf = scm.counterfactual(table, {"insolation_searth": scale(0.8)}, num_samples=2)
    j = scm.graph.index("insolation_searth")
    np.testing.assert_allclose(cf[..., j], np.broadcast_to(table[:, j] + np.log10(0.8),
                                                           cf[..., j].shape), atol=1e-5)
    moved = scm.graph.descendants("insolation_searth") | {"insolation_searth"}
    untouched = [scm.graph.index(n) for n in scm.graph.nodes if n not in moved]
    np.testing.assert_allclose(cf[..., untouched], np.broadcast_to(
        table[:, untouched], cf[..., untouched].shape), rtol=1e-4, atol=1e-3)
    assert np.abs(cf[..., scm.graph.index("semi_major_axis_au")]
                  - table[:, scm.graph.index("semi_major_axis_au")]).max() > 1e-3


@pytest.mark.slow
def test_sampling_under_do(untrained):
    scm, _ = untrained
    samples = scm.sample(64, {"biosphere": 0, "water_fraction": 0.5}, seed=1)
    assert (samples[:, scm.graph.index("biosphere")] == 0).all()
    np.testing.assert_allclose(samples[:, scm.graph.index("water_fraction")], 0.5)
    star = samples[:, scm.graph.index("star_type")]
    assert set(np.unique(star)) <= {0, 1, 2, 3}
    np.testing.assert_array_equal(star, scm.sample(64, seed=1)[:, scm.graph.index("star_type")])
    with pytest.raises(ValueError, match="log10: scale it"):
        scm.sample(4, {"insolation_searth": shift(0.1)})


def _toy_scm_data(num, seed):
    """z -> x, z -> y, x -> y with heteroscedastic noise on y: y's regression on x alone is
    confounded by z."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=num)
    x = z + 0.5 * rng.normal(size=num)
    y = np.sin(x) + 2.0 * z + (0.1 + 0.1 * np.abs(x)) * rng.normal(size=num)
    return np.stack([z, x, y], 1).astype(np.float32)


@pytest.mark.slow
def test_fitted_scm_recovers_interventions_and_counterfactuals():
    from astrojax.causal.mechanisms import SCMConfig
    from astrojax.causal.scm import StructuralCausalModel

    graph = CausalGraph(("z", "x", "y"), {"x": ("z",), "y": ("z", "x")})
    train, test = _toy_scm_data(4000, 0), _toy_scm_data(200, 1)
    scm = StructuralCausalModel.fit(graph, train, SCMConfig(steps=600, hidden=32,
                                                            learning_rate=1e-2), log_every=100)
    assert scm.losses[-1] < scm.losses[0] - 1.0
    # E[y | do(x = 1)] = sin(1) + 2 E[z] = 0.84; conditioning on x = 1 would give ~2.4.
    samples = scm.sample(20000, {"x": 1.0})
    assert abs(samples[:, 2].mean() - np.sin(1.0)) < 0.15
    # Counterfactual y under do(x = x + 1): the same z and the same standardised noise.
    cf = scm.counterfactual(test, {"x": shift(1.0)}, num_samples=1)[0]
    z, x, y = test.T
    eps = (y - np.sin(x) - 2 * z) / (0.1 + 0.1 * np.abs(x))
    truth = np.sin(x + 1) + 2 * z + (0.1 + 0.1 * np.abs(x + 1)) * eps
    assert np.sqrt(np.mean((cf[:, 2] - truth) ** 2)) < 0.15
    assert np.sqrt(np.mean((y - truth) ** 2)) > 0.5  # "nothing changes" is far off


def test_fit_refuses_bad_tables():
    from astrojax.causal.mechanisms import SCMConfig, fit_mechanisms

    graph = CausalGraph(("a", "b"), {"b": ("a",)})
    with pytest.raises(ValueError, match="non-finite"):
        fit_mechanisms(graph, np.array([[0.0, np.nan]] * 4), SCMConfig(steps=1))
    with pytest.raises(ValueError, match="for 2 variables"):
        fit_mechanisms(graph, np.zeros((4, 3)), SCMConfig(steps=1))
    with pytest.raises(ValueError, match="SCMConfig.noise"):
        SCMConfig(noise="laplace")


# --------------------------------------------------------------------- the named questions
def test_named_questions_have_exact_answers():
    from astrojax.causal.questions import QUESTION_BY_NAME, QUESTIONS, true_answers

    for q in QUESTIONS:
        assert set(q.do) | set(q.outcomes) <= set(VARIABLE_NAMES), q.name
    truth = true_answers(QUESTION_BY_NAME["remove_biosphere"], N, 3, rows=np.arange(100))
    natural = generate_population(N, 3)
    np.testing.assert_array_equal(truth["x_o2"]["factual"], np.log10(natural.x_o2[:100]))
    lifeless = natural.biosphere[:100] == 0
    np.testing.assert_array_equal(truth["x_o2"]["counterfactual"][lifeless],
                                  truth["x_o2"]["factual"][lifeless])
    assert not truth["biosignature"]["counterfactual"].any()  # no abiotic source makes one
    colder = true_answers(QUESTION_BY_NAME["insolation_0.8"], N, 3)["surface_temperature_k"]
    # Colder on average, but not everywhere: weathering leaves more CO2 on a dimmer wet planet.
    assert (colder["counterfactual"] - colder["factual"]).mean() < -10.0
    assert (colder["counterfactual"] > colder["factual"]).any()
