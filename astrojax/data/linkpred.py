"""Link prediction on one metabolic network: the VGAE edge split, baselines and ranking metrics.

The protocol is that of Kipf & Welling (2016, "Variational Graph Auto-Encoders"): hold out a
fraction of the edges for validation and test, pair each held-out set with as many sampled
non-edges, train on the rest, and report ROC AUC and average precision. The network is
bipartite, so a candidate link is a (metabolite, reaction) pair, and the edges are the unique
pairs that share a stoichiometric entry (a metabolite on both sides of one reaction is one
pair). The non-learned baselines, preferential attachment and the L3 path score of Kovács et
al. (2019), are the numbers a learned model has to beat.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from astrojax.data.metabolic import MetabolicNetwork

BASELINES = ("preferential_attachment", "l3")


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
    non-edges (pairs absent from the whole network, distinct across both sets); by seed."""
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"val_fraction={val_fraction} and test_fraction={test_fraction} must "
                         f"each lie in (0, 1) and sum to less than 1")
    pairs = unique_pairs(net)
    num_edges = len(pairs)
    # Rounded before flooring so that 0.29 * 100 gives 29, not 28.
    num_val = int(round(val_fraction * num_edges, 9))
    num_test = int(round(test_fraction * num_edges, 9))
    if min(num_val, num_test) < 1 or num_val + num_test >= num_edges:
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
    entry_codes = _pair_codes(net.stoich_metabolite, net.stoich_reaction, net.num_reactions)
    train_codes = _pair_codes(split.train_pairs[:, 0], split.train_pairs[:, 1],
                              net.num_reactions)
    keep = np.isin(entry_codes, train_codes)
    return dataclasses.replace(
        net, name=f"{net.name} (training links)", stoich_metabolite=net.stoich_metabolite[keep],
        stoich_reaction=net.stoich_reaction[keep], coefficient=net.coefficient[keep])


def preferential_attachment(split: LinkSplit, pairs: np.ndarray) -> np.ndarray:
    """``deg(m) * deg(r)`` in the training graph for each (metabolite, reaction) pair."""
    adjacency = _train_adjacency(split)
    metabolite_degree = np.asarray(adjacency.sum(axis=1)).ravel()
    reaction_degree = np.asarray(adjacency.sum(axis=0)).ravel()
    return metabolite_degree[pairs[:, 0]] * reaction_degree[pairs[:, 1]]


def l3_score(split: LinkSplit, pairs: np.ndarray) -> np.ndarray:
    """Degree-normalised length-3 paths m-r'-m'-r in the training graph (Kovács et al. 2019).

    ``sum over r', m' of 1 / sqrt(deg(r') deg(m'))``. The sum runs over walks, but for a pair
    that is not a training edge every walk is a path (going back to m or r would need the
    edge m-r itself).
    """
    adjacency = _train_adjacency(split)  # [M, R]
    metabolite_degree = np.asarray(adjacency.sum(axis=1)).ravel()
    reaction_degree = np.asarray(adjacency.sum(axis=0)).ravel()
    by_reaction = adjacency @ sp.diags(_inverse_sqrt(reaction_degree))  # m - r'
    by_metabolite = sp.diags(_inverse_sqrt(metabolite_degree)) @ adjacency  # m' - r'
    metabolite_paths = (by_reaction @ by_metabolite.T).tocsr()  # [M, M'] via r'
    rows = metabolite_paths[pairs[:, 0]]  # [K, M']
    targets = adjacency[:, pairs[:, 1]].T.tocsr()  # [K, M']: m' - r
    return np.asarray(rows.multiply(targets).sum(axis=1)).ravel()


def roc_auc(pos_scores: np.ndarray, neg_scores: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counting one half (Mann-Whitney U)."""
    pos, neg = _check_scores(pos_scores, neg_scores)
    neg_sorted = np.sort(neg)
    below = np.searchsorted(neg_sorted, pos, side="left")
    tied = np.searchsorted(neg_sorted, pos, side="right") - below
    return float((below.sum() + 0.5 * tied.sum()) / (len(pos) * len(neg)))


def average_precision(pos_scores: np.ndarray, neg_scores: np.ndarray) -> float:
    """``sum_n (R_n - R_{n-1}) P_n`` over descending score thresholds, as in scikit-learn."""
    pos, neg = _check_scores(pos_scores, neg_scores)
    scores = np.concatenate([pos, neg])
    is_positive = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    order = np.argsort(-scores, kind="stable")
    scores, is_positive = scores[order], is_positive[order]
    # The last index of each run of equal scores: one threshold per distinct score.
    threshold_end = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    true_positives = np.cumsum(is_positive)[threshold_end]
    precision = true_positives / (threshold_end + 1)
    recall = true_positives / len(pos)
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def baseline_report(split: LinkSplit) -> dict[str, float]:
    """Validation and test AUC and AP of each baseline, keyed like ``"l3/test_auc"``."""
    scorers = {"preferential_attachment": preferential_attachment, "l3": l3_score}
    report = {}
    for name in BASELINES:
        for part, pos, neg in (("val", split.val_pairs, split.val_negatives),
                               ("test", split.test_pairs, split.test_negatives)):
            pos_scores, neg_scores = scorers[name](split, pos), scorers[name](split, neg)
            report[f"{name}/{part}_auc"] = roc_auc(pos_scores, neg_scores)
            report[f"{name}/{part}_ap"] = average_precision(pos_scores, neg_scores)
    return report


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


def _train_adjacency(split: LinkSplit) -> sp.csr_matrix:
    """Binary ``[M, R]`` biadjacency of the training pairs."""
    pairs = split.train_pairs
    return sp.csr_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                         shape=(split.num_metabolites, split.num_reactions))


def _inverse_sqrt(degree: np.ndarray) -> np.ndarray:
    # A node of degree 0 lies on no path, so its weight is never used; 0 avoids dividing by 0.
    return np.divide(1.0, np.sqrt(degree), out=np.zeros_like(degree, float), where=degree > 0)


def _check_matches(net: MetabolicNetwork, split: LinkSplit) -> None:
    if (split.num_metabolites, split.num_reactions) != (net.num_metabolites, net.num_reactions):
        raise ValueError(f"{net.name} has {net.num_metabolites} metabolites and "
                         f"{net.num_reactions} reactions, but the split was made for "
                         f"{split.num_metabolites} and {split.num_reactions}")


def _check_scores(pos_scores: np.ndarray, neg_scores: np.ndarray) -> tuple[np.ndarray, ...]:
    pos = np.asarray(pos_scores, np.float64).ravel()
    neg = np.asarray(neg_scores, np.float64).ravel()
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError(f"need at least one positive and one negative score, got {len(pos)} "
                         f"and {len(neg)}")
    if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(neg))):
        raise ValueError("scores must be finite (NaN or inf found)")
    return pos, neg
