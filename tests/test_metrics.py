"""Metrics from summed statistics: summed over uneven batches, as the train loop sums them (in
jit, padded and masked; and in numpy), each equals the direct computation on all the data at
once: scikit-learn's where it has the metric, numpy's otherwise."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

from astrojax.evaluators.metrics import (
    accuracy_from_sums,
    accuracy_score,
    accuracy_sums,
    average_precision,
    calibration_from_sums,
    calibration_sums,
    flatten_sums,
    language_model_from_sums,
    r2_from_sums,
    r2_score,
    r2_sums,
    ranking_from_sums,
    ranking_sums,
    roc_auc,
)

BATCH_SIZES = (7, 1, 12, 4)  # uneven, one of a single example
PADDED = 12


def loop_totals(per_batch):
    """Totals as ``train.loop.evaluate`` makes them: each batch's scalars, added as floats."""
    totals = {}
    for sums in per_batch:
        for key, value in flatten_sums(sums).items():
            totals[key] = totals.get(key, 0.0) + float(value)
    return totals


def batches(*arrays):
    """The arrays cut into BATCH_SIZES pieces along the first axis."""
    bounds = np.cumsum((0, *BATCH_SIZES))
    assert all(len(a) == bounds[-1] for a in arrays)
    return [[a[lo:hi] for a in arrays] for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


def padded(*arrays, fill=0, size=PADDED):
    """Each array padded to ``size`` rows, and the mask of the real rows: the shape an eval
    step sees (one compilation for every batch)."""
    n = len(arrays[0])
    out = [np.concatenate([a, np.full((size - n, *a.shape[1:]), fill, a.dtype)])
           for a in arrays]
    return (*out, np.arange(size) < n)


def both_ways(sums_fn, *arrays):
    """Totals of ``sums_fn`` over the batches of ``arrays``: in numpy on the uneven batches,
    and in jit on the padded ones (mask last)."""
    in_numpy = loop_totals(sums_fn(*batch, None) for batch in batches(*arrays))
    jitted = jax.jit(sums_fn)
    in_jit = loop_totals(jitted(*map(jnp.asarray, padded(*batch))) for batch in batches(*arrays))
    return in_numpy, in_jit


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_accuracy_and_balanced_accuracy_from_sums():
    rng = np.random.default_rng(0)
    n = sum(BATCH_SIZES)
    labels = rng.choice([0, 1, 3], n, p=[0.6, 0.3, 0.1])  # class 2 never occurs
    predicted = np.where(rng.random(n) < 0.7, labels, rng.integers(0, 4, n))
    for totals in both_ways(lambda y, p, m: accuracy_sums(y, p, m, num_classes=4),
                            labels, predicted):
        got = accuracy_from_sums(totals)
        assert got["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted))
        assert got["balanced_accuracy"] == pytest.approx(
            skm.balanced_accuracy_score(labels, predicted), rel=1e-6)
    # a majority guess: accuracy 0.6-ish, balanced accuracy 1/3 (3 classes present)
    guess = accuracy_score(labels, np.zeros(n, int), num_classes=4)
    assert guess["balanced_accuracy"] == pytest.approx(1 / 3)
    assert guess["accuracy"] == pytest.approx(np.mean(labels == 0))
    assert accuracy_from_sums(accuracy_sums(labels, predicted, np.zeros(n, bool)))[
        "accuracy"] == 0.0


def test_prefixes_name_the_sums_and_the_metrics():
    sums = accuracy_sums(np.array([1, 0]), np.array([1, 1]), prefix="heldout_link_")
    assert set(sums) == {"heldout_link_correct", "heldout_link_count"}
    assert accuracy_from_sums(sums, prefix="heldout_link_") == {"heldout_link_accuracy": 0.5}


def test_r2_from_sums_per_target_with_missing_targets():
    rng = np.random.default_rng(1)
    n = sum(BATCH_SIZES)
    targets = rng.normal(280.0, 30.0, (n, 3))  # offset like temperatures: tests cancellation
    predicted = targets + rng.normal(0.0, 10.0, (n, 3)) * [1.0, 0.3, 3.0]
    targets[rng.random((n, 3)) < 0.2] = np.nan  # missing labels
    finite = np.isfinite(targets)
    expected = [skm.r2_score(targets[finite[:, j], j], predicted[finite[:, j], j])
                for j in range(3)]
    in_numpy, in_jit = both_ways(lambda y, p, m: r2_sums(y, p, None if m is None else
                                                         m[:, None] & jnp.isfinite(y)),
                                 targets, predicted)
    np.testing.assert_allclose(r2_from_sums(in_numpy)["r2"], expected, rtol=1e-10)
    np.testing.assert_allclose(r2_from_sums(in_jit)["r2"], expected, rtol=1e-3)
    assert r2_from_sums(in_numpy)["r2_mean"] == pytest.approx(np.mean(expected))
    assert r2_score(targets[:, 0], predicted[:, 0]) == pytest.approx(expected[0])


def test_r2_is_nan_where_undefined():
    constant = r2_from_sums(r2_sums(np.array([[2.0, 1.0], [2.0, np.nan]]),
                                    np.array([[1.0, 0.0], [3.0, 0.0]])))
    assert np.isnan(constant["r2"]).all()  # no variance; a single value
    assert math.isnan(constant["r2_mean"])
    # a prediction missing where the label is known makes R^2 unknown, not better
    assert math.isnan(r2_score(np.array([1.0, 2.0, 3.0]), np.array([1.0, np.nan, 3.0])))


@pytest.mark.parametrize("pos, neg, auc, ap", [
    ([0.9, 0.8], [0.1], 1.0, 1.0),  # perfect separation
    ([0.1], [0.9], 0.0, 0.5),  # reversed: the positive is found only with the negative
    ([0.5, 0.5], [0.5], 0.5, 2 / 3),  # all tied: one threshold, precision 2/3
    ([0.8, 0.4], [0.6, 0.2], 0.75, 0.5 * 1 + 0.5 * 2 / 3),
    ([3, 1, 2], [2, 0], 4.5 / 6, (1 / 3) * 1 + (1 / 3) * 2 / 3 + (1 / 3) * 3 / 4),
])
def test_auc_and_ap_on_hand_computed_examples(pos, neg, auc, ap):
    pos, neg = np.array(pos, float), np.array(neg, float)
    assert roc_auc(pos, neg) == pytest.approx(auc)
    assert average_precision(pos, neg) == pytest.approx(ap)
    one_group = ranking_from_sums(ranking_sums(pos, neg))  # (in jit: the grouped test)
    assert one_group == pytest.approx({"auc": auc, "ap": ap})


def test_auc_and_ap_reject_empty_and_nan():
    with pytest.raises(ValueError, match="at least one positive"):
        roc_auc(np.array([]), np.array([0.1]))
    with pytest.raises(ValueError, match="finite"):
        average_precision(np.array([np.nan]), np.array([0.1]))


def test_auc_and_ap_match_scikit_learn_with_ties():
    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, 5, 40).astype(float), rng.integers(0, 4, 60).astype(float)
    labels, scores = np.r_[np.ones(40), np.zeros(60)], np.r_[pos, neg]
    assert roc_auc(pos, neg) == pytest.approx(skm.roc_auc_score(labels, scores))
    assert average_precision(pos, neg) == pytest.approx(
        skm.average_precision_score(labels, scores))


def test_grouped_ranking_sums_are_the_mean_over_groups():
    """Per group (a planet): its own positives against its own negatives, uneven counts, ties;
    groups split over batches in jit (padded) and numpy; one group has no negative and is not
    scored."""
    rng = np.random.default_rng(2)
    per_batch_np, per_batch_jit, expected = [], [], {"auc": [], "ap": []}
    jitted = jax.jit(lambda p, n, pg, ng, pm, nm: ranking_sums(p, n, pg, ng, pm, nm,
                                                               num_groups=3))
    for b in range(3):
        num_pos, num_neg = rng.integers(1, 6, 3), rng.integers(1, 7, 3)
        num_neg[b] = 0 if b == 1 else num_neg[b]
        pos_group, neg_group = np.repeat(np.arange(3), num_pos), np.repeat(np.arange(3), num_neg)
        pos = rng.integers(0, 4, len(pos_group)).astype(np.float32)  # integers: ties
        neg = rng.integers(0, 3, len(neg_group)).astype(np.float32)
        for g in range(3):
            if num_neg[g]:
                labels = np.r_[np.ones(num_pos[g]), np.zeros(num_neg[g])]
                scores = np.r_[pos[pos_group == g], neg[neg_group == g]]
                expected["auc"].append(skm.roc_auc_score(labels, scores))
                expected["ap"].append(skm.average_precision_score(labels, scores))
        per_batch_np.append(ranking_sums(pos, neg, pos_group, neg_group, num_groups=3))
        p, pg, pm = padded(pos, pos_group, fill=3, size=20)
        n, ng, nm = padded(neg, neg_group, fill=3, size=20)
        per_batch_jit.append(jitted(p, n, pg, ng, pm, nm))
    want = {k: np.mean(v) for k, v in expected.items()}
    assert len(expected["auc"]) == 8
    for per_batch in (per_batch_np, per_batch_jit):
        totals = loop_totals(per_batch)
        assert totals["groups"] == 8
        assert ranking_from_sums(totals) == pytest.approx(want, rel=1e-6)


def _direct_ece(labels, probs, num_bins):
    """Expected calibration error from its definition, bin by bin."""
    confidence = np.maximum(probs, 1.0 - probs)
    correct = (probs >= 0.5) == (labels == 1)
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    ece = 0.0
    for k in range(num_bins):
        last = k == num_bins - 1
        in_bin = (confidence >= edges[k]) & ((confidence <= edges[k + 1]) if last
                                             else (confidence < edges[k + 1]))
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return ece


@pytest.mark.parametrize("num_bins", [10, 15])
def test_expected_calibration_error_from_binned_sums(num_bins):
    rng = np.random.default_rng(3)
    n = sum(BATCH_SIZES)
    true_p = rng.random(n)
    labels = (rng.random(n) < true_p).astype(np.int32)
    probs = np.clip(true_p + rng.normal(0.0, 0.2, n), 0.0, 1.0)  # miscalibrated
    probs[:3] = [0.5, 1.0, 0.0]  # the edges: a tie, both certainties
    probs = probs.astype(np.float32).astype(np.float64)  # what the jitted half sees
    expected = _direct_ece(labels, probs, num_bins)
    assert expected > 0.02
    for totals in both_ways(lambda y, p, m: calibration_sums(y, p, m, num_bins=num_bins),
                            labels, probs):
        assert calibration_from_sums(totals)["ece"] == pytest.approx(expected, rel=1e-5)
    # always 90% sure and always right: 0.1; right 90% of the time at 90%: calibrated
    always = calibration_sums(np.ones(10), np.full(10, 0.9), num_bins=num_bins)
    assert calibration_from_sums(always)["ece"] == pytest.approx(0.1)
    calibrated = calibration_sums(np.r_[np.ones(9), 0], np.full(10, 0.9), num_bins=num_bins)
    assert calibration_from_sums(calibrated)["ece"] == pytest.approx(0.0, abs=1e-12)


def test_language_model_metrics_from_summed_batches():
    rng = np.random.default_rng(4)
    n, vocab = sum(BATCH_SIZES), 11
    logits = rng.normal(size=(n, vocab)) * 2
    targets = rng.integers(0, vocab, n)
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    nll = -log_p[np.arange(n), targets]
    totals = loop_totals({"nll_sum": nll_b.sum(), "correct": (lg.argmax(1) == t).sum(),
                          "count": len(t)} for nll_b, lg, t in batches(nll, logits, targets))
    got = language_model_from_sums(totals)
    assert got["loss"] == pytest.approx(nll.mean())
    assert got["accuracy"] == pytest.approx(np.mean(logits.argmax(1) == targets))
    assert got["perplexity"] == pytest.approx(np.exp(nll.mean()))
    assert got["bits_per_byte"] == pytest.approx(nll.mean() / np.log(2))
    huge = language_model_from_sums({"nll_sum": 1e4, "correct": 0.0, "count": 1.0})
    assert math.isfinite(huge["perplexity"])


def test_finalizers_name_a_missing_statistic():
    with pytest.raises(KeyError, match="bin_count"):
        calibration_from_sums({"ece_sum": 1.0})


def test_binned_ranking_matches_the_exact_auc_and_ap_over_uneven_batches():
    from astrojax.evaluators.metrics import ranking_from_histograms, score_histogram_sums

    rng = np.random.default_rng(3)
    labels = rng.random(900) < 0.2
    scores = rng.normal(size=900) + 1.5 * labels
    totals = {}
    for lo, hi in ((0, 100), (100, 101), (101, 650), (650, 900)):
        sums = score_histogram_sums(labels[lo:hi], scores[lo:hi])
        totals = {k: totals.get(k, 0) + np.asarray(v) for k, v in sums.items()}
    binned = ranking_from_histograms(totals)
    assert binned["auc"] == pytest.approx(roc_auc(scores[labels], scores[~labels]), abs=2e-3)
    assert binned["ap"] == pytest.approx(
        average_precision(scores[labels], scores[~labels]), abs=5e-3)
    jitted = jax.jit(lambda y, s: score_histogram_sums(y, s, jnp.ones_like(s, bool)))(
        jnp.asarray(labels), jnp.asarray(scores, jnp.float32))
    np.testing.assert_allclose(jitted["pos_hist"], totals["pos_hist"])
    assert np.isnan(ranking_from_histograms(score_histogram_sums(np.zeros(5), scores[:5]))["auc"])
