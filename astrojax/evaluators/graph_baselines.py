"""Closed-form baselines for metabolic graphs: link-prediction rules and count features.

Link prediction: preferential attachment and two weightings of the paths of length three (L3
of Kovács et al. 2019, and resource allocation) score each held-out (metabolite, reaction)
pair on the training links alone; their ROC AUC and AP on the held-out links and non-links
are the numbers a learned link predictor has to beat (:func:`link_baseline_report` for one
network's validation and test sets, :func:`heldout_baselines` per planet). The path scores
themselves live in ``astrojax.data.linkpred``, which also gives them to the model as pair
features. For graph-level labels, :func:`graph_count_features` are the simple counts a probe
of a learned graph embedding is compared with.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from astrojax.data.linkpred import LinkSplit, biadjacency, node_degrees, path_scores
from astrojax.data.metabolic import NODE_FEATURES, NUM_NODE_FEATURES
from astrojax.evaluators.metrics import average_precision, roc_auc

BASELINES = ("preferential_attachment", "l3", "resource_allocation")


def preferential_attachment(split: LinkSplit, pairs: np.ndarray) -> np.ndarray:
    """``deg(m) * deg(r)`` in the training graph for each (metabolite, reaction) pair."""
    metabolite_degree, reaction_degree = node_degrees(_train_adjacency(split))
    return metabolite_degree[pairs[:, 0]] * reaction_degree[pairs[:, 1]]


def l3_score(split: LinkSplit, pairs: np.ndarray) -> np.ndarray:
    """Degree-normalised length-3 paths m-r'-m'-r in the training graph (Kovács et al. 2019).

    ``sum over r', m' of 1 / sqrt(deg(r') deg(m'))``. The sum runs over walks, but for a pair
    that is not a training edge every walk is a path (going back to m or r would need the
    edge m-r itself).
    """
    return path_scores(_train_adjacency(split), pairs, exponent=0.5)


def resource_allocation(split: LinkSplit, pairs: np.ndarray) -> np.ndarray:
    """Length-3 paths m-r'-m'-r weighted ``1 / (deg(r') deg(m'))``: the resource-allocation
    index (Zhou et al. 2009) along paths of three, which punishes hubs (h2o, h+, atp) harder
    than L3 does."""
    return path_scores(_train_adjacency(split), pairs, exponent=1.0)


SCORERS = {"preferential_attachment": preferential_attachment, "l3": l3_score,
           "resource_allocation": resource_allocation}


def rule_ranking(rule: str, split: LinkSplit, pairs: np.ndarray,
                 negatives: np.ndarray) -> tuple[float, float]:
    """``(AUC, AP)`` of ``rule``'s scores of ``pairs`` against ``negatives`` on the training
    links of ``split``."""
    pos, neg = SCORERS[rule](split, pairs), SCORERS[rule](split, negatives)
    return roc_auc(pos, neg), average_precision(pos, neg)


def link_baseline_report(split: LinkSplit) -> dict[str, float]:
    """Validation and test AUC and AP of each baseline, keyed like ``"l3/test_auc"``."""
    report = {}
    for rule in BASELINES:
        for part, pos, neg in (("val", split.val_pairs, split.val_negatives),
                               ("test", split.test_pairs, split.test_negatives)):
            if len(pos) == 0:
                continue
            auc, ap = rule_ranking(rule, split, pos, neg)
            report[f"{rule}/{part}_auc"], report[f"{rule}/{part}_ap"] = auc, ap
    return report


def heldout_baselines(splits: Sequence[LinkSplit]) -> dict[str, float]:
    """Each baseline's AUC and AP on the test links of each split (one per planet, scored on
    its own training links), averaged over the splits: ``"l3/heldout_auc"``, ... (none
    without splits)."""
    out = {}
    for rule in BASELINES if splits else ():
        auc, ap = np.mean([rule_ranking(rule, split, split.test_pairs, split.test_negatives)
                           for split in splits], axis=0)
        out[f"{rule}/heldout_auc"], out[f"{rule}/heldout_ap"] = float(auc), float(ap)
    return out


def graph_count_features(sub_batch: dict[str, np.ndarray]) -> np.ndarray:
    """Per graph of a padded sub-batch: metabolite, reaction and edge counts and the mean of
    each node feature, ``[graphs + 1, 3 + NUM_NODE_FEATURES]``."""
    num_graphs = len(sub_batch["n_node"])
    graph = sub_batch["node_graph"]
    n_node = np.maximum(sub_batch["n_node"], 1)[:, None]
    sums = np.zeros((num_graphs, NUM_NODE_FEATURES))
    np.add.at(sums, graph, sub_batch["nodes"])
    metabolites = sums[:, NODE_FEATURES.index("is_metabolite")]
    return np.concatenate([metabolites[:, None], (sub_batch["n_node"] - metabolites)[:, None],
                           sub_batch["n_edge"][:, None], sums / n_node], axis=1)


def _train_adjacency(split: LinkSplit) -> sp.csr_matrix:
    return biadjacency(split.train_pairs, split.num_metabolites, split.num_reactions)
