"""Tests for the link-prediction split, the training folds, the pair features and the
closed-form baselines on them (L3, resource allocation, preferential attachment)."""

import importlib.util
import itertools
import math

import numpy as np
import pytest

from astrojax.data.linkpred import (
    PAIR_FEATURES,
    LinkSplit,
    biadjacency,
    pair_features,
    path_scores,
    split_links,
    target_folds,
    train_network,
    unique_pairs,
)
from astrojax.data.metabolic import ELEMENTS, MetabolicNetwork
from astrojax.evaluators.graph_baselines import (
    heldout_baselines,
    l3_score,
    link_baseline_report,
    preferential_attachment,
    resource_allocation,
    rule_ranking,
)


def _network(num_metabolites, num_reactions, metabolites, reactions, coefficients, name="net"):
    m, r = num_metabolites, num_reactions
    return MetabolicNetwork(
        name=name, metabolite_ids=tuple(f"m{i}" for i in range(m)),
        element_counts=np.zeros((m, len(ELEMENTS)), np.float32),
        formula_known=np.zeros(m, bool), charge=np.zeros(m, np.float32),
        compartment=np.zeros(m, np.int32), metabolite_boundary=np.zeros(m, bool),
        reaction_ids=tuple(f"r{j}" for j in range(r)), reversible=np.zeros(r, bool),
        reaction_boundary=np.zeros(r, bool),
        stoich_metabolite=np.asarray(metabolites, np.int32),
        stoich_reaction=np.asarray(reactions, np.int32),
        coefficient=np.asarray(coefficients, np.float32))


def _random_network(seed=0, num_metabolites=60, num_reactions=80, num_entries=500):
    rng = np.random.default_rng(seed)
    metabolites = rng.integers(0, num_metabolites, num_entries)
    reactions = rng.integers(0, num_reactions, num_entries)
    coefficients = rng.choice([-2.0, -1.0, 1.0, 3.0], num_entries)
    # Metabolite 0 on both sides of reaction 0: two entries, one pair.
    return _network(num_metabolites, num_reactions, np.r_[metabolites, 0, 0],
                    np.r_[reactions, 0, 0], np.r_[coefficients, -1.0, 1.0])


def _as_set(pairs):
    return {tuple(p) for p in pairs.tolist()}


def test_unique_pairs_merges_both_sides_of_a_reaction():
    net = _network(2, 2, [0, 0, 1, 1], [0, 0, 0, 1], [-1, 1, 2, -1])
    np.testing.assert_array_equal(unique_pairs(net), [[0, 0], [1, 0], [1, 1]])


def test_split_is_disjoint_sized_and_covers_every_edge():
    net = _random_network()
    edges = _as_set(unique_pairs(net))
    split = split_links(net, val_fraction=0.05, test_fraction=0.1, seed=3)
    train, val, test = (_as_set(p) for p in (split.train_pairs, split.val_pairs,
                                              split.test_pairs))
    assert len(val) == len(split.val_pairs) == int(0.05 * len(edges))
    assert len(test) == len(split.test_pairs) == int(0.1 * len(edges))
    assert not (train & val or train & test or val & test)
    assert train | val | test == edges
    for pairs in (split.train_pairs, split.val_negatives, split.test_negatives):
        assert pairs.dtype == np.int32 and pairs.shape[1] == 2
    assert (split.num_metabolites, split.num_reactions) == (60, 80)


def test_negatives_are_distinct_non_edges_in_range():
    net = _random_network()
    split = split_links(net, seed=1)
    edges = _as_set(unique_pairs(net))
    val_neg, test_neg = _as_set(split.val_negatives), _as_set(split.test_negatives)
    assert len(val_neg) == len(split.val_negatives) == len(split.val_pairs)
    assert len(test_neg) == len(split.test_negatives) == len(split.test_pairs)
    assert not (val_neg & test_neg or val_neg & edges or test_neg & edges)
    negatives = np.concatenate([split.val_negatives, split.test_negatives])
    assert negatives.min() >= 0
    assert negatives[:, 0].max() < 60 and negatives[:, 1].max() < 80


def test_split_is_deterministic_by_seed():
    net = _random_network()
    first, again = split_links(net, seed=7), split_links(net, seed=7)
    other = split_links(net, seed=8)
    for field in ("train_pairs", "val_pairs", "val_negatives", "test_pairs", "test_negatives"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field))
    assert not np.array_equal(first.test_pairs, other.test_pairs)
    assert not np.array_equal(first.test_negatives, other.test_negatives)


def test_train_network_drops_exactly_the_held_out_pairs():
    net = _random_network()
    split = split_links(net, seed=2)
    train = train_network(net, split)
    assert (train.num_metabolites, train.num_reactions) == (net.num_metabolites,
                                                            net.num_reactions)
    np.testing.assert_array_equal(unique_pairs(train), split.train_pairs)
    held_out = _as_set(split.val_pairs) | _as_set(split.test_pairs)
    kept = [(m, r) not in held_out for m, r in zip(net.stoich_metabolite.tolist(),
                                                   net.stoich_reaction.tolist(), strict=True)]
    np.testing.assert_array_equal(train.coefficient, net.coefficient[kept])
    with pytest.raises(ValueError, match="split was made for 60 and 80"):
        train_network(_random_network(num_metabolites=61), split)


@pytest.mark.parametrize("val_fraction, test_fraction", [(0.1, 0.0), (0.1, 1.0), (0.5, 0.5),
                                                         (-0.1, 0.2)])
def test_invalid_fractions_raise(val_fraction, test_fraction):
    with pytest.raises(ValueError, match="must lie in"):
        split_links(_random_network(), val_fraction, test_fraction)


def test_split_without_validation_holds_out_test_only():
    net = _random_network()
    split = split_links(net, val_fraction=0.0, test_fraction=0.1, seed=0)
    assert len(split.val_pairs) == len(split.val_negatives) == 0
    assert len(split.test_pairs) == len(split.test_negatives) == int(0.1 * len(unique_pairs(net)))


def test_network_too_small_to_split_raises():
    tiny = _network(3, 3, [0, 1, 2], [0, 1, 2], [1, 1, 1], name="tiny")
    with pytest.raises(ValueError, match="tiny: 3 metabolite-reaction edges are too few"):
        split_links(tiny)
    # Enough edges (4 of 6 pairs) to hold out 1 + 2, but only 2 non-edges for 3 negatives.
    dense = _network(2, 3, [0, 0, 1, 1], [0, 1, 1, 2], [1, 1, 1, 1], name="dense")
    with pytest.raises(ValueError, match="dense: only 2 non-edges exist, fewer than the 3"):
        split_links(dense, val_fraction=0.25, test_fraction=0.5)


def _hand_split(train_pairs, num_metabolites, num_reactions):
    empty = np.zeros((0, 2), np.int32)
    return LinkSplit(train_pairs=np.array(train_pairs, np.int32), val_pairs=empty,
                     val_negatives=empty, test_pairs=empty, test_negatives=empty,
                     num_metabolites=num_metabolites, num_reactions=num_reactions)


def test_baselines_on_hand_made_graph():
    # Metabolite degrees 2, 3, 2, 0; reaction degrees 2 (m0, m1), 3 (m0, m1, m2), 2 (m1, m2).
    split = _hand_split([[0, 0], [0, 1], [1, 0], [1, 1], [1, 2], [2, 1], [2, 2]], 4, 3)
    pairs = np.array([[0, 2], [2, 0], [3, 1]])
    np.testing.assert_allclose(preferential_attachment(split, pairs), [4, 4, 0])
    # m0 -> m2: r0-m1 (1/sqrt(2*3)), r1-m1 (1/sqrt(3*3)), r1-m2 (1/sqrt(3*2)).
    expected = 2 / math.sqrt(6) + 1 / 3
    np.testing.assert_allclose(l3_score(split, pairs), [expected, expected, 0.0])
    # Resource allocation: the same paths weighted 1 / (deg(r') deg(m')).
    expected = 2 / 6 + 1 / 9
    np.testing.assert_allclose(resource_allocation(split, pairs), [expected, expected, 0.0])


@pytest.mark.parametrize("exponent", [0.0, 0.5, 1.0])
def test_path_scores_match_brute_force(exponent):
    net = _random_network(seed=5, num_metabolites=10, num_reactions=12, num_entries=40)
    split = split_links(net, val_fraction=0.1, test_fraction=0.2, seed=0)
    adjacency = np.zeros((10, 12), bool)
    adjacency[split.train_pairs[:, 0], split.train_pairs[:, 1]] = True
    metabolite_degree, reaction_degree = adjacency.sum(1), adjacency.sum(0)
    pairs = np.concatenate([split.test_pairs, split.test_negatives])
    brute = [sum((reaction_degree[r2] * metabolite_degree[m2]) ** -exponent
                 for r2, m2 in itertools.product(range(12), range(10))
                 if adjacency[m, r2] and adjacency[m2, r2] and adjacency[m2, r])
             for m, r in pairs.tolist()]
    assert max(brute) > 0
    scores = path_scores(biadjacency(split.train_pairs, 10, 12), pairs, exponent)
    np.testing.assert_allclose(scores, brute)


def test_target_folds_hide_each_training_link_once():
    split = split_links(_random_network(), seed=0)
    train = _as_set(split.train_pairs)
    folds = target_folds(split, num_folds=4, negatives_per_link=2, seed=0)
    assert len(folds) == 4
    hidden = set()
    for graph, targets, negatives in folds:
        graph, targets_set = _as_set(graph), _as_set(targets)
        assert graph | targets_set == train and not graph & targets_set
        assert not hidden & targets_set
        hidden |= targets_set
        assert len(negatives) == 2 * len(targets) and not _as_set(negatives) & train
    assert hidden == train
    with pytest.raises(ValueError, match="at least 2 folds"):
        target_folds(split, num_folds=1, negatives_per_link=1, seed=0)


def test_pair_features_are_the_scores_on_the_given_graph():
    split = split_links(_random_network(), seed=0)
    graph, targets, _ = target_folds(split, num_folds=3, negatives_per_link=1, seed=0)[0]
    adjacency = biadjacency(graph, 60, 80)
    compartment = np.arange(60) % 3
    features = pair_features(adjacency, targets, compartment)
    assert features.shape == (len(targets), len(PAIR_FEATURES)) and features.dtype == np.float32
    column = {name: features[:, i] for i, name in enumerate(PAIR_FEATURES)}
    fold_split = _hand_split(graph, 60, 80)
    np.testing.assert_allclose(column["log1p_l3"], np.log1p(l3_score(fold_split, targets)),
                               rtol=1e-6)
    np.testing.assert_allclose(column["log1p_resource_allocation"],
                               np.log1p(resource_allocation(fold_split, targets)), rtol=1e-6)
    # Degrees in the fold's graph, where the target link itself is absent.
    dense = adjacency.toarray()
    np.testing.assert_allclose(np.expm1(column["log1p_metabolite_degree"]),
                               dense.sum(1)[targets[:, 0]], rtol=1e-6)
    m, r = targets[0]
    assert dense[m, r] == 0
    neighbours = np.flatnonzero(dense[:, r])
    share = np.mean(compartment[neighbours] == compartment[m]) if len(neighbours) else 0.0
    assert column["compartment_share"][0] == pytest.approx(share)


def test_l3_matches_brute_force_path_count():
    net = _random_network(seed=4, num_metabolites=12, num_reactions=15, num_entries=50)
    split = split_links(net, val_fraction=0.1, test_fraction=0.2, seed=0)
    adjacency = np.zeros((12, 15), bool)
    adjacency[split.train_pairs[:, 0], split.train_pairs[:, 1]] = True
    metabolite_degree, reaction_degree = adjacency.sum(1), adjacency.sum(0)
    pairs = np.concatenate([split.test_pairs, split.test_negatives])
    brute = [sum(1 / math.sqrt(reaction_degree[r2] * metabolite_degree[m2])
                 for r2, m2 in itertools.product(range(15), range(12))
                 if adjacency[m, r2] and adjacency[m2, r2] and adjacency[m2, r])
             for m, r in pairs.tolist()]
    assert max(brute) > 0
    np.testing.assert_allclose(l3_score(split, pairs), brute)


def test_textbook_baselines_give_finite_auc():
    if importlib.util.find_spec("cobra") is None:
        pytest.skip("cobra (a dev dependency) ships the SBML models")
    from astrojax.data.formats.sbml import packaged_model_path, read_sbml

    split = split_links(read_sbml(packaged_model_path("cobra:textbook")), seed=0)
    report = link_baseline_report(split)
    assert set(report) == {f"{b}/{part}_{metric}" for b in ("preferential_attachment", "l3",
                                                            "resource_allocation")
                           for part in ("val", "test") for metric in ("auc", "ap")}
    assert all(0.0 <= value <= 1.0 and math.isfinite(value) for value in report.values())
    # Paths of length three carry signal on a real network: better than chance on test.
    assert report["l3/test_auc"] > 0.6


def test_heldout_baselines_average_each_planets_own_ranking():
    splits = [split_links(_random_network(seed=s), val_fraction=0.0, test_fraction=0.2, seed=s)
              for s in range(3)]
    report = heldout_baselines(splits)
    assert set(report) == {f"{b}/heldout_{m}" for b in ("preferential_attachment", "l3",
                                                        "resource_allocation")
                           for m in ("auc", "ap")}
    # each planet scored on its own training links: the mean of the one-planet reports
    one = [link_baseline_report(sp) for sp in splits]
    assert report["l3/heldout_auc"] == pytest.approx(np.mean([r["l3/test_auc"] for r in one]))
    assert report["resource_allocation/heldout_ap"] == pytest.approx(
        np.mean([r["resource_allocation/test_ap"] for r in one]))
    # and not on another planet's links: its scores of these pairs differ
    assert rule_ranking("l3", splits[1], splits[0].test_pairs, splits[0].test_negatives) != \
        rule_ranking("l3", splits[0], splits[0].test_pairs, splits[0].test_negatives)
    assert heldout_baselines([]) == {}
