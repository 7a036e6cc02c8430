"""Baselines: the Witten-Bell n-gram model against a plain-Python reference of its formula."""

import collections
import math

import numpy as np
import pytest

from astrojax.evaluators import NGramModel

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
