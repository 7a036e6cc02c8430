"""Causal discovery: SHD and edge scores on hand-made graphs, CPDAGs, NOTEARS recovering known
synthetic graphs and always returning a DAG, PC's CPDAG read correctly, and bad input refused."""

import sys

import numpy as np
import pytest

from astrojax.causal.discovery import (
    NotearsConfig,
    _break_cycles,
    check_table,
    discovery_report,
    notears,
    pc,
)
from astrojax.causal.discovery_scores import (
    cpdag_of,
    edge_errors,
    edge_precision_recall,
    find_cycle,
    structural_hamming_distance,
)

# x0 -> x1 (chain into) a fork at x1 (x1 -> x2, x1 -> x3) and a collider at x4 (x2 -> x4 <- x3).
MIXED_EDGES = [(0, 1), (1, 2), (1, 3), (2, 4), (3, 4)]


def graph(d, edges, undirected=()):
    a = np.zeros((d, d), np.int64)
    for i, j in edges:
        a[i, j] = 1
    for i, j in undirected:
        a[i, j] = a[j, i] = 1
    return a


def linear_sem(adjacency, n, seed, noise_scales=None):
    """A linear-Gaussian SEM on ``adjacency`` (index order is a causal order), weights of
    magnitude 0.8-1.5 with random signs, noise standard deviations ``noise_scales`` (1)."""
    rng = np.random.default_rng(seed)
    d = adjacency.shape[0]
    w = adjacency * rng.choice([-1.0, 1.0], (d, d)) * rng.uniform(0.8, 1.5, (d, d))
    scales = np.ones(d) if noise_scales is None else np.asarray(noise_scales)
    x = np.zeros((n, d))
    for j in range(d):
        x[:, j] = x @ w[:, j] + scales[j] * rng.standard_normal(n)
    return x


@pytest.fixture(scope="module")
def mixed_data():
    return linear_sem(graph(5, MIXED_EDGES), 3000, seed=0)


# ---------------------------------------------------------------- SHD and edge scores
def test_shd_counts_each_kind_of_error_once():
    true = graph(4, [(0, 1), (1, 2), (2, 3)])
    assert structural_hamming_distance(true, true) == 0
    assert structural_hamming_distance(graph(4, [(0, 1), (1, 2), (2, 3), (0, 3)]), true) == 1
    assert structural_hamming_distance(graph(4, [(0, 1), (1, 2)]), true) == 1
    assert structural_hamming_distance(graph(4, [(1, 0), (1, 2), (2, 3)]), true) == 1  # reversal
    assert structural_hamming_distance(graph(4, [(1, 2), (2, 3)], [(0, 1)]), true) == 1
    assert structural_hamming_distance(graph(4, [(3, 2), (0, 2)]), true) == 4
    assert structural_hamming_distance(np.zeros((4, 4)), true) == 3
    # symmetric in the arguments
    a, b = graph(4, [(1, 0), (0, 3)], [(1, 2)]), graph(4, [(0, 1), (2, 3)])
    assert structural_hamming_distance(a, b) == structural_hamming_distance(b, a) == 4


def test_edge_errors_name_the_edges_and_add_up_to_the_shd():
    names = ["star", "orbit", "climate", "life"]
    true = graph(4, [(0, 1), (1, 2), (2, 3)])
    learned = graph(4, [(2, 1), (0, 3)], [(2, 3)])
    errors = edge_errors(learned, true, names)
    assert errors == {"extra": ["star -> life"], "missing": ["star -> orbit"],
                      "reversed": ["climate -> orbit"], "unoriented": ["climate -- life"],
                      "overoriented": []}
    assert sum(map(len, errors.values())) == structural_hamming_distance(learned, true) == 4
    assert edge_errors(graph(4, [(1, 2)]), graph(4, [], [(1, 2)]))["overoriented"] == ["1 -> 2"]


def test_precision_recall_of_skeleton_and_directions():
    true = graph(4, [(0, 1), (1, 2), (2, 3)])
    learned = graph(4, [(2, 1), (0, 3)], [(2, 3)])
    scores = edge_precision_recall(learned, true)
    assert scores["skeleton_precision"] == pytest.approx(2 / 3)
    assert scores["skeleton_recall"] == pytest.approx(2 / 3)
    assert scores["directed_precision"] == 0.0  # 1 -> 2 learned backwards; 0 -> 3 is extra
    assert scores["directed_recall"] == 0.0
    assert edge_precision_recall(true, true) == {k: 1.0 for k in scores}
    assert np.isnan(edge_precision_recall(np.zeros((4, 4)), true)["skeleton_precision"])


def test_cpdag_of_a_dag():
    chain = graph(3, [(0, 1), (1, 2)])
    np.testing.assert_array_equal(cpdag_of(chain), graph(3, [], [(0, 1), (1, 2)]))
    # v-structure 0 -> 2 <- 1, and Meek's rule 1 then orients 2 -> 3
    np.testing.assert_array_equal(cpdag_of(graph(4, [(0, 2), (1, 2), (2, 3)])),
                                  graph(4, [(0, 2), (1, 2), (2, 3)]))
    np.testing.assert_array_equal(cpdag_of(graph(5, MIXED_EDGES)),
                                  graph(5, [(2, 4), (3, 4)], [(0, 1), (1, 2), (1, 3)]))


def test_cpdag_of_matches_causal_learn_on_random_dags():
    pytest.importorskip("causallearn")
    from causallearn.graph.Dag import Dag
    from causallearn.graph.GraphNode import GraphNode
    from causallearn.utils.DAG2CPDAG import dag2cpdag

    rng = np.random.default_rng(1)
    for _ in range(20):
        d = 7
        dag = np.triu(rng.random((d, d)) < 0.35, 1).astype(np.int64)
        perm = rng.permutation(d)
        dag = dag[np.ix_(perm, perm)]
        nodes = [GraphNode(f"x{i}") for i in range(d)]
        g = Dag(nodes)
        for i, j in zip(*np.nonzero(dag), strict=True):
            g.add_directed_edge(nodes[i], nodes[j])
        cl = np.asarray(dag2cpdag(g).graph)
        theirs = (((cl == -1) & (cl.T == 1)) | ((cl == -1) & (cl.T == -1))).astype(np.int64)
        np.testing.assert_array_equal(cpdag_of(dag), theirs)


def test_find_cycle_and_breaking_the_weakest_edge():
    assert find_cycle(graph(3, [(0, 1), (1, 2)])) is None
    assert find_cycle(graph(3, [(0, 1)], [(1, 2)]), pdag=True) is None  # undirected: no cycle
    assert sorted(find_cycle(graph(3, [(0, 1)], [(1, 2)]))) == [1, 2]  # a DAG's 2-cycle
    cyclic = graph(4, [(0, 1), (1, 2), (2, 0), (2, 3)])
    assert sorted(find_cycle(cyclic)) == [0, 1, 2]
    weights = np.where(cyclic, 1.0, 0.0)
    weights[1, 2] = 0.4  # the weakest edge on the cycle
    dag, dropped = _break_cycles(cyclic, weights, ["a", "b", "c", "d"])
    assert find_cycle(dag) is None
    np.testing.assert_array_equal(dag, graph(4, [(0, 1), (2, 0), (2, 3)]))
    assert dropped == ("b -> c (|w| 0.4)",)


def test_shd_refuses_mismatched_or_malformed_graphs():
    with pytest.raises(ValueError, match="learned graph has 3 variables, true graph 4"):
        structural_hamming_distance(np.zeros((3, 3)), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="learned: entries must be 0 or 1"):
        structural_hamming_distance(np.full((2, 2), 0.5), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="true: a variable cannot cause itself"):
        structural_hamming_distance(np.zeros((2, 2)), np.eye(2))


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("data, names, message", [
    (np.ones(10), None, r"expected a \[samples, variables\] table"),
    (np.ones((10, 1)), None, "at least 2 variables, got 1"),
    (np.ones((2, 3)), None, "at least 3 samples"),
    (np.c_[np.arange(5.0), [1, np.nan, 2, 3, 4]], ["a", "b"],
     r"NaN or inf in variable\(s\) \['b'\]"),
    (np.c_[np.arange(5.0), np.full(5, 2.0)], ["a", "flat"], r"constant variable\(s\) \['flat'\]"),
    (np.ones((5, 2)), ["a"], "names: 1 names for 2 variables"),
])
def test_bad_tables_get_one_clear_error(data, names, message):
    with pytest.raises(ValueError, match=message):
        check_table(data, names)
    with pytest.raises(ValueError, match=message):
        notears(data, names)


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="NotearsConfig.model"):
        NotearsConfig(model="gnn")
    with pytest.raises(ValueError, match="NotearsConfig.rho_max"):
        NotearsConfig(rho_max=1.0)


# ---------------------------------------------------------------- NOTEARS
@pytest.mark.slow
def test_notears_recovers_chain_fork_and_collider(mixed_data):
    # Equal noise variances on the raw scale: the setting in which least squares identifies
    # the DAG itself (Peters & Buehlmann 2014), so NOTEARS must find it, directions included.
    found = notears(mixed_data, config=NotearsConfig(standardise=False))
    true = graph(5, MIXED_EDGES)
    assert structural_hamming_distance(found.adjacency, true) <= 1, found.edges()
    assert found.h <= 1e-8 and not found.dropped_for_acyclicity
    assert find_cycle(found.adjacency) is None


@pytest.mark.slow
def test_notears_output_is_a_dag_even_when_the_solve_stops_early(mixed_data):
    # One augmented-Lagrangian step at rho = 1 leaves the weights far from acyclic.
    found = notears(mixed_data, config=NotearsConfig(standardise=False, max_outer=1,
                                                     w_threshold=0.05))
    assert found.h > 1e-3
    assert found.dropped_for_acyclicity
    assert find_cycle(found.adjacency) is None


@pytest.mark.slow
def test_notears_mlp_finds_an_even_mechanism_the_linear_model_cannot():
    # x1 = x0**2 + noise is uncorrelated with x0: invisible to a linear score. Raw scale (the
    # variances grow along the order). NOTEARS-MLP recovers the graph for seeds 0 and 2 here
    # and reverses x0 -> x2 for seed 1; the linear model gets SHD 2-3 on all three.
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal(1000)
    x1 = x0**2 + 0.5 * rng.standard_normal(1000)
    x2 = np.tanh(1.5 * x1) + 0.5 * x0 + 0.5 * rng.standard_normal(1000)
    x, true = np.c_[x0, x1, x2], graph(3, [(0, 1), (0, 2), (1, 2)])
    found = notears(x, config=NotearsConfig(model="mlp", lambda1=0.01, standardise=False))
    assert found.method == "notears-mlp"
    assert structural_hamming_distance(found.adjacency, true) == 0, found.edges()
    assert find_cycle(found.adjacency) is None
    linear = notears(x, config=NotearsConfig(standardise=False))
    assert structural_hamming_distance(linear.adjacency, true) >= 2, linear.edges()


# ---------------------------------------------------------------- PC and the report
@pytest.mark.slow
def test_pc_cpdag_is_read_with_its_undirected_edges(mixed_data):
    pytest.importorskip("causallearn")
    found = pc(mixed_data)
    true = graph(5, MIXED_EDGES)
    # The equivalence class: x0 - x1 - {x2, x3} cannot be oriented, the collider can.
    np.testing.assert_array_equal(found.adjacency, cpdag_of(true))
    assert structural_hamming_distance(found.adjacency, true) == 3  # the 3 unoriented edges
    assert found.edges() == ["x0 -- x1", "x1 -- x2", "x1 -- x3", "x2 -> x4", "x3 -> x4"]


@pytest.mark.slow
def test_discovery_report_scores_every_method(mixed_data, monkeypatch):
    names = ["a", "b", "c", "d", "e"]
    true = graph(5, MIXED_EDGES)
    config = NotearsConfig(standardise=False)
    report = discovery_report(mixed_data, names, true, configs=(config,))
    lin = report["methods"]["notears-linear-raw"]
    assert report["samples"] == 3000 and report["true_edges_unorientable"] == 3
    assert report["empty_graph_shd"] == 5
    assert lin["shd"] == sum(map(len, lin["errors"].values()))
    assert lin["config"]["standardise"] is False
    if "skipped" not in report["methods"]["pc"]:
        assert report["methods"]["pc"]["shd_cpdag"] == 0
    # without causal-learn the PC entry says why it is missing; NOTEARS still runs
    monkeypatch.setitem(sys.modules, "causallearn.search.ConstraintBased.PC", None)
    report = discovery_report(mixed_data, names, true, configs=(config,))
    assert "pip install -e '.[causal]'" in report["methods"]["pc"]["skipped"]
    with pytest.raises(ValueError, match="true_adjacency: 4 variables, data has 5"):
        discovery_report(mixed_data, names, np.zeros((4, 4)))
