"""Evaluators: the Witten-Bell n-gram model against a plain-Python reference of its formula,
linear probes against scikit-learn, graph count features against the networks they count.
(The metrics have their own file, test_metrics.py.)"""

import collections
import math

import numpy as np
import pytest

from astrojax.evaluators import NGramModel, graph_count_features, linear_probe, ridge_probe
from astrojax.evaluators.probes import RIDGE_PENALTIES

DOCS = [np.array(d) for d in ([1, 3, 4, 3, 4, 5, 2], [1, 4, 3, 4, 2], [1, 3, 3, 5, 4, 2])]
V = 6


def reference_prob(docs, order, history, w):
    """Witten-Bell from its definition, with dicts (history: the ids before, oldest first;
    the boundary symbol V marks the start)."""
    counts = collections.Counter()
    for doc in docs:
        padded = [V] * (order - 1) + list(doc)
        for i in range(order, len(padded)):  # every token after the first
            for length in range(order):
                counts[(tuple(padded[i - length:i]), padded[i])] += 1

    def p(h):
        if h is None:
            return 1.0 / V
        shorter = h[1:] if h else None
        seen = {x: c for (ctx, x), c in counts.items() if ctx == h}
        total, types = sum(seen.values()), len(seen)
        if total == 0:
            return p(shorter)
        return (seen.get(w, 0) + types * p(shorter)) / (total + types)

    return p(tuple(history[len(history) - (order - 1):]) if order > 1 else ())


@pytest.mark.parametrize("order", [1, 2, 3])
def test_probabilities_match_the_definition_and_sum_to_one(order):
    model = NGramModel(order, V).fit(DOCS)
    rows = np.array([[1, 3, 4, 5, 3, 0, 0], [4, 4, 3, 2, 1, 3, 4]])
    segments = np.array([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 2, 2, 2]])
    contexts, targets = model.contexts_of(rows, segments)
    log_p = model.log_probs(contexts)
    np.testing.assert_allclose(np.exp(log_p).sum(axis=1), 1.0, rtol=1e-12)
    # the targets: tokens that continue their segment, in row order
    assert targets.tolist() == [3, 4, 5, 3, 4, 3, 2, 3, 4]
    histories = [[1], [1, 3], [1, 3, 4], [1, 3, 4, 5], [4], [4, 4], [4, 4, 3], [1], [1, 3]]
    for i, (history, target) in enumerate(zip(histories, targets, strict=True)):
        padded = [V] * (order - 1) + history
        want = reference_prob(DOCS, order, padded, int(target))
        assert math.isclose(math.exp(log_p[i, target]), want, rel_tol=1e-12), (i, order)


def test_score_counts_what_the_lm_task_counts():
    model = NGramModel(2, V).fit(DOCS)
    contexts, targets = model.contexts_of(np.array([[1, 3, 4, 3, 4, 5, 2]]), np.ones((1, 7)))
    sums = model.score(contexts, targets)
    assert sums["count"] == 6
    assert 0 <= sums["correct"] <= 6 and sums["nll_sum"] > 0
    # on text with structure, context helps: a periodic sequence is nearly certain given one
    # previous id, a unigram model cannot know which comes next
    periodic = [np.array([1] + [3, 4, 5] * 20 + [2])] * 3
    rows = periodic[0][None]
    scores = {o: NGramModel(o, V).fit(periodic).score(*NGramModel(o, V).contexts_of(
        rows, np.ones_like(rows)))["nll_sum"] / (rows.size - 1) for o in (1, 2)}
    assert scores[1] > 1.0 and scores[2] < 0.2


def test_ids_out_of_range_are_refused():
    with pytest.raises(ValueError, match=r"\[0, 6\)"):
        NGramModel(2, V).fit([np.array([1, 7])])


def test_linear_probe_separates_separable_classes_only():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    x = rng.normal(size=(600, 5)) + 4.0 * np.eye(3, 5)[y]
    good = linear_probe(x[:400], y[:400], x[400:], y[400:], num_classes=3)
    assert good["accuracy"] > 0.95 and good["balanced_accuracy"] > 0.95
    noise = linear_probe(rng.normal(size=(400, 5)), y[:400], rng.normal(size=(200, 5)),
                         y[400:], num_classes=3)
    assert noise["accuracy"] < 0.5
    majority = np.bincount(y[:400]).argmax()
    assert noise["majority_accuracy"] == pytest.approx(np.mean(y[400:] == majority))


def test_ridge_probe_matches_scikit_learn():
    from sklearn.linear_model import Ridge, RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6)) * [1, 2, 3, 1, 1, 50] + 7
    y = x @ [1.0, -0.5, 0.2, 0.0, 0.0, 0.01] + rng.normal(0, 1.0, 120)
    probe = ridge_probe(x[:100], y[:100], x[100:], y[100:])
    z = StandardScaler().fit(x[:100])
    chosen = RidgeCV(alphas=np.array(RIDGE_PENALTIES) * 100).fit(z.transform(x[:100]), y[:100])
    assert probe["penalty"] * 100 == pytest.approx(chosen.alpha_)
    expected = Ridge(alpha=chosen.alpha_).fit(z.transform(x[:100]), y[:100])
    np.testing.assert_allclose(probe["prediction"], expected.predict(z.transform(x[100:])),
                               atol=1e-9)
    assert probe["r2"] == pytest.approx(r2_score(y[100:], probe["prediction"]))
    # a missing held-out label is predicted but not scored
    y_test = y[100:].copy()
    y_test[:5] = np.nan
    assert ridge_probe(x[:100], y[:100], x[100:], y_test)["r2"] == pytest.approx(
        r2_score(y[105:], probe["prediction"][5:]))


def test_graph_count_features_count_each_graph_of_a_sub_batch():
    from astrojax.data import graphs
    from astrojax.data.generator import generate_population
    from astrojax.data.generator.biochem import generate_networks
    from astrojax.data.metabolic import NODE_FEATURES

    networks = generate_networks(generate_population(3, seed=0), 0)
    examples = [graphs.graph_example(net, 2) for net in networks]
    batch = graphs.pad_examples(examples, graphs.Bucket(160, 400), num_graphs=4)
    features = graph_count_features(batch)
    assert features.shape == (5, 3 + len(NODE_FEATURES))
    for g, (net, ex) in enumerate(zip(networks, examples, strict=True)):
        np.testing.assert_allclose(features[g, :3], [net.num_metabolites, net.num_reactions,
                                                     len(ex["senders"])])
        np.testing.assert_allclose(features[g, 3:], ex["nodes"].mean(0), rtol=1e-6)
    np.testing.assert_array_equal(features[3], 0.0)  # an empty slot
