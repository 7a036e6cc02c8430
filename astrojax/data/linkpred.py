"""Link prediction on one metabolic network: the VGAE edge split, training folds, pair features.

The protocol is that of Kipf & Welling (2016, "Variational Graph Auto-Encoders"): hold out a
fraction of the edges for validation and test, pair each held-out set with as many sampled
non-edges, train on the rest, and report ROC AUC and average precision. The network is
bipartite, so a candidate link is a (metabolite, reaction) pair, and the edges are the unique
pairs that share a stoichiometric entry (a metabolite on both sides of one reaction is one
pair). Weighted counts of the paths of length three (:func:`path_scores`: L3 of Kovács et al.
2019, and resource allocation), computed on the graph the model passes messages on, are its
structural pair features (:func:`pair_features`); the same scores on the training links are
the non-learned baselines a learned model has to beat (``astrojax.evaluators.graph_baselines``,
with the metrics in ``astrojax.evaluators.metrics``). For training, :func:`target_folds` hides
one fold of the training links at a time, so that the links a model learns to predict are
missing from its graph exactly as held-out links are.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from astrojax.data.metabolic import MetabolicNetwork

PAIR_FEATURES = ("log1p_l3", "log1p_resource_allocation", "log1p_paths3",
                 "log1p_metabolite_degree", "log1p_reaction_degree", "compartment_share")


@dataclasses.dataclass(frozen=True)
class LinkSplit:
    """Edges and non-edges of one network, each ``[K, 2]`` int32 of (metabolite, reaction)."""

    train_pairs: np.ndarray
    val_pairs: np.ndarray
    val_negatives: np.ndarray
    test_pairs: np.ndarray
    test_negatives: np.ndarray
    num_metabolites: int
    num_reactions: int


def unique_pairs(net: MetabolicNetwork) -> np.ndarray:
    """``[E, 2]`` int32: the distinct (metabolite, reaction) pairs of the stoichiometry, sorted."""
    codes = np.unique(_pair_codes(net.stoich_metabolite, net.stoich_reaction, net.num_reactions))
    return _decode(codes, net.num_reactions)


def split_links(net: MetabolicNetwork, val_fraction: float = 0.05, test_fraction: float = 0.1,
                seed: int = 0) -> LinkSplit:
    """Hold out ``floor(fraction * E)`` edges each for validation and test, with as many
    non-edges (pairs absent from the whole network, distinct across both sets); by seed.
    ``val_fraction=0`` holds out a test set only."""
    if not (0 <= val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"val_fraction={val_fraction} and test_fraction={test_fraction} must "
                         f"lie in [0, 1) and (0, 1) and sum to less than 1")
    pairs = unique_pairs(net)
    num_edges = len(pairs)
    # Rounded before flooring so that 0.29 * 100 gives 29, not 28.
    num_val = int(round(val_fraction * num_edges, 9))
    num_test = int(round(test_fraction * num_edges, 9))
    if num_test < 1 or (val_fraction > 0 and num_val < 1) or num_val + num_test >= num_edges:
        raise ValueError(f"{net.name}: {num_edges} metabolite-reaction edges are too few to hold "
                         f"out {val_fraction:.0%} for validation and {test_fraction:.0%} for "
                         f"test with at least one edge in each split and one left to train on")
    num_pairs = net.num_metabolites * net.num_reactions
    if num_pairs - num_edges < num_val + num_test:
        raise ValueError(f"{net.name}: only {num_pairs - num_edges} non-edges exist, fewer than "
                         f"the {num_val + num_test} needed as validation and test negatives")
    rng = np.random.default_rng(seed)
    shuffled = pairs[rng.permutation(num_edges)]
    test, val, train = np.split(shuffled, [num_test, num_test + num_val])
    edge_codes = _pair_codes(pairs[:, 0], pairs[:, 1], net.num_reactions)
    negatives = _decode(_sample_non_edges(rng, edge_codes, num_pairs, num_val + num_test),
                        net.num_reactions)
    return LinkSplit(
        train_pairs=_sorted_pairs(train, net.num_reactions), val_pairs=val,
        val_negatives=negatives[:num_val], test_pairs=test, test_negatives=negatives[num_val:],
        num_metabolites=net.num_metabolites, num_reactions=net.num_reactions)


def train_network(net: MetabolicNetwork, split: LinkSplit) -> MetabolicNetwork:
    """``net`` without the stoichiometric entries of held-out pairs; node indices unchanged."""
    _check_matches(net, split)
    return keep_pairs(net, split.train_pairs, f"{net.name} (training links)")


def keep_pairs(net: MetabolicNetwork, pairs: np.ndarray, name: str) -> MetabolicNetwork:
    """``net`` with only the stoichiometric entries of ``pairs`` (metabolite, reaction)."""
    entry_codes = _pair_codes(net.stoich_metabolite, net.stoich_reaction, net.num_reactions)
    keep = np.isin(entry_codes, _pair_codes(pairs[:, 0], pairs[:, 1], net.num_reactions))
    return dataclasses.replace(
        net, name=name, stoich_metabolite=net.stoich_metabolite[keep],
        stoich_reaction=net.stoich_reaction[keep], coefficient=net.coefficient[keep])


def target_folds(split: LinkSplit, num_folds: int, negatives_per_link: int,
                 seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``num_folds`` ways to hide training links: per fold ``(graph_pairs, targets, negatives)``.

    The training links are dealt into ``num_folds`` folds at random; fold ``k``'s targets are
    hidden from its graph (the other folds' links), as validation and test links are hidden
    from the training graph. Negatives are ``negatives_per_link`` uniform (metabolite,
    reaction) pairs per target that are not training links: the test negatives are uniform
    too, and excluding held-out links would use what the model must not know.
    """
    if num_folds < 2:
        raise ValueError(f"need at least 2 folds to hide training links, got {num_folds}")
    pairs = split.train_pairs
    if len(pairs) < num_folds:
        raise ValueError(f"{len(pairs)} training links do not fill {num_folds} folds")
    rng = np.random.default_rng(seed)
    fold_of = rng.permutation(len(pairs)) % num_folds
    train_codes = _pair_codes(pairs[:, 0], pairs[:, 1], split.num_reactions)
    num_pairs = split.num_metabolites * split.num_reactions
    folds = []
    for k in range(num_folds):
        targets = pairs[fold_of == k]
        negatives = _decode(_sample_non_edges(rng, train_codes, num_pairs,
                                              negatives_per_link * len(targets)),
                            split.num_reactions)
        folds.append((pairs[fold_of != k], targets, negatives))
    return folds


def biadjacency(pairs: np.ndarray, num_metabolites: int, num_reactions: int) -> sp.csr_matrix:
    """Binary ``[M, R]`` biadjacency of (metabolite, reaction) pairs."""
    return sp.csr_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                         shape=(num_metabolites, num_reactions))


def node_degrees(adjacency: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Metabolite degrees ``[M]`` and reaction degrees ``[R]`` of a biadjacency ``[M, R]``."""
    return np.asarray(adjacency.sum(axis=1)).ravel(), np.asarray(adjacency.sum(axis=0)).ravel()


def path_scores(adjacency: sp.csr_matrix, pairs: np.ndarray, exponent: float) -> np.ndarray:
    """``sum over paths m-r'-m'-r of (deg(r') deg(m'))^-exponent`` in ``adjacency`` [M, R];
    exponent 0 counts the paths, 0.5 is L3, 1 resource allocation."""
    metabolite_degree, reaction_degree = node_degrees(adjacency)
    by_reaction = adjacency @ sp.diags(_inverse_power(reaction_degree, exponent))  # m - r'
    by_metabolite = sp.diags(_inverse_power(metabolite_degree, exponent)) @ adjacency  # m'-r'
    metabolite_paths = (by_reaction @ by_metabolite.T).tocsr()  # [M, M'] via r'
    rows = metabolite_paths[pairs[:, 0]]  # [K, M']
    targets = adjacency[:, pairs[:, 1]].T.tocsr()  # [K, M']: m' - r
    return np.asarray(rows.multiply(targets).sum(axis=1)).ravel()


def pair_features(adjacency: sp.csr_matrix, pairs: np.ndarray,
                  compartment: np.ndarray) -> np.ndarray:
    """``[K, len(PAIR_FEATURES)]`` float32: the structural scores of each candidate pair in
    ``adjacency`` (the graph the model sees, never one holding the pairs it must predict):
    the three path scores and both degrees, log1p-scaled, and the share of the reaction's
    metabolites that lie in the metabolite's compartment (``compartment`` [M])."""
    metabolite_degree, reaction_degree = node_degrees(adjacency)
    one_hot = np.eye(int(compartment.max(initial=0)) + 1)[compartment]  # [M, C]
    reaction_compartments = (adjacency.T @ one_hot) / np.maximum(reaction_degree, 1)[:, None]
    share = np.sum(reaction_compartments[pairs[:, 1]] * one_hot[pairs[:, 0]], axis=1)
    columns = [path_scores(adjacency, pairs, exponent) for exponent in (0.5, 1.0, 0.0)]
    columns += [metabolite_degree[pairs[:, 0]], reaction_degree[pairs[:, 1]]]
    return np.stack([*np.log1p(columns), share], axis=1).astype(np.float32)


def _pair_codes(metabolite: np.ndarray, reaction: np.ndarray, num_reactions: int) -> np.ndarray:
    return np.asarray(metabolite, np.int64) * num_reactions + np.asarray(reaction, np.int64)


def _decode(codes: np.ndarray, num_reactions: int) -> np.ndarray:
    return np.stack([codes // num_reactions, codes % num_reactions], axis=1).astype(np.int32)


def _sorted_pairs(pairs: np.ndarray, num_reactions: int) -> np.ndarray:
    return pairs[np.argsort(_pair_codes(pairs[:, 0], pairs[:, 1], num_reactions))]


def _sample_non_edges(rng: np.random.Generator, edge_codes: np.ndarray, num_pairs: int,
                      count: int) -> np.ndarray:
    """``count`` distinct pair codes in ``[0, num_pairs)`` outside ``edge_codes``, in draw order.

    Rejection sampling: metabolic networks are sparse (well under 1% of pairs are edges), so a
    batch or two suffices, and memory stays O(count) even for networks with millions of pairs.
    """
    chosen = np.empty(0, np.int64)
    while len(chosen) < count:
        draws = rng.integers(0, num_pairs, size=max(2 * count, 1024))
        draws = draws[~np.isin(draws, edge_codes)]
        candidates = np.concatenate([chosen, draws])
        _, first = np.unique(candidates, return_index=True)
        chosen = candidates[np.sort(first)]
    return chosen[:count]


def _inverse_power(degree: np.ndarray, exponent: float) -> np.ndarray:
    # A node of degree 0 lies on no path, so its weight is never used; 0 avoids dividing by 0.
    return np.divide(1.0, degree**exponent, out=np.zeros_like(degree, float), where=degree > 0)


def _check_matches(net: MetabolicNetwork, split: LinkSplit) -> None:
    if (split.num_metabolites, split.num_reactions) != (net.num_metabolites, net.num_reactions):
        raise ValueError(f"{net.name} has {net.num_metabolites} metabolites and "
                         f"{net.num_reactions} reactions, but the split was made for "
                         f"{split.num_metabolites} and {split.num_reactions}")
