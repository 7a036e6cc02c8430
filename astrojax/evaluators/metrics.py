"""Every metric, computed from summed statistics: accuracy, R^2, ROC AUC and average precision,
calibration error, and the language model's loss, perplexity and bits per byte.

The train loop evaluates batch by batch: inside jit, each eval batch returns additive sums, the
loop adds them over batches (and processes), and the task's ``finalize_eval`` turns the totals
into metrics. So each metric comes in two halves: ``*_sums`` gives one batch's statistics, and
``*_from_sums`` (numpy, float64) the metric from their totals. The ``*_sums`` functions are
written once for both array libraries: on jax arrays (or inside jit) they run in jax.numpy
(float32), on anything else in numpy (float64), which is how probes and baselines use them
(``r2_score`` and ``accuracy_score`` do both halves at once). Each takes a ``prefix`` for its
keys, and each finalizer reads and names with the same prefix (``prefix="heldout_"`` gives
``heldout_auc`` from ``heldout_auc_sum``).

The loop sums scalars only: statistics that are vectors (per class, per bin, per target) go to
it through :func:`flatten_sums` (one ``KEY/i`` entry each), and the finalizers read either
form. ROC AUC and average precision also have exact numpy versions from the scores themselves
(:func:`roc_auc`, :func:`average_precision`), for the closed-form baselines, and
:func:`binary_report` gives a baseline's AUC, AP, accuracy and calibration error at once.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

Sums = dict  # name -> array (inside jit) or float (totals)


def _xp(*arrays):
    """jax.numpy for jax arrays (tracers included), numpy for anything else."""
    return jnp if any(isinstance(a, jax.Array) for a in arrays) else np


def _floats(xp, x):
    return xp.asarray(x, dtype=jnp.float32 if xp is jnp else np.float64)


def _mask(xp, mask, shape):
    return xp.ones(shape, bool) if mask is None else xp.asarray(mask, bool)


def _prefixed(prefix: str, sums: Sums) -> Sums:
    return {prefix + k: v for k, v in sums.items()}


def _vector(sums: Sums, key: str) -> np.ndarray:
    """``sums[key]``, or the scalars ``key/0``, ``key/1``, ... that :func:`flatten_sums` made."""
    if key in sums:
        return np.asarray(sums[key], np.float64)
    values, i = [], 0
    while f"{key}/{i}" in sums:
        values.append(float(sums[f"{key}/{i}"]))
        i += 1
    if not values:
        raise KeyError(f"no eval statistic {key!r} (nor {key}/0, ...) among {sorted(sums)}")
    return np.asarray(values, np.float64)


def flatten_sums(sums: Sums) -> Sums:
    """Vector statistics as one scalar per entry (``KEY/i``), the form the train loop sums."""
    out = {}
    for key, value in sums.items():
        if np.ndim(value) == 0:
            out[key] = value
        else:
            out.update({f"{key}/{i}": value[i] for i in range(len(value))})
    return out


# ---- accuracy


def accuracy_sums(labels, predicted, mask=None, *, num_classes: int | None = None,
                  prefix: str = "") -> Sums:
    """``correct`` and ``count`` of the entries where ``mask`` holds (all by default); with
    ``num_classes``, also ``class_correct`` and ``class_count`` ``[num_classes]`` (by true
    label) for balanced accuracy."""
    xp = _xp(labels, predicted, mask)
    labels, predicted = xp.asarray(labels), xp.asarray(predicted)
    mask = _mask(xp, mask, labels.shape)
    hit = mask & (labels == predicted)
    out = {"correct": _floats(xp, hit.sum()), "count": _floats(xp, mask.sum())}
    if num_classes:
        in_class = ((labels[..., None] == xp.arange(num_classes)) & mask[..., None]
                    ).reshape(-1, num_classes)
        out["class_correct"] = _floats(xp, (in_class & hit.reshape(-1, 1)).sum(0))
        out["class_count"] = _floats(xp, in_class.sum(0))
    return _prefixed(prefix, out)


def accuracy_from_sums(sums: Sums, prefix: str = "") -> dict[str, float]:
    """``accuracy`` (0 when nothing was counted) and, from per-class sums, ``balanced_accuracy``:
    the mean recall over the classes present, which a majority-class guess cannot inflate."""
    out = {f"{prefix}accuracy": float(sums[f"{prefix}correct"])
           / max(float(sums[f"{prefix}count"]), 1.0)}
    if f"{prefix}class_count" in sums or f"{prefix}class_count/0" in sums:
        count = _vector(sums, f"{prefix}class_count")
        correct = _vector(sums, f"{prefix}class_correct")
        present = count > 0
        out[f"{prefix}balanced_accuracy"] = (float(np.mean(correct[present] / count[present]))
                                             if present.any() else math.nan)
    return out


def accuracy_score(labels, predicted, num_classes: int | None = None) -> dict[str, float]:
    """:func:`accuracy_from_sums` of all of ``labels`` against ``predicted``, in numpy."""
    return accuracy_from_sums(accuracy_sums(np.asarray(labels), np.asarray(predicted),
                                            num_classes=num_classes))


# ---- R^2


def r2_sums(targets, predicted, mask=None, *, prefix: str = "") -> Sums:
    """Per target (summed over the first axis, the batch): ``sse``, ``count``, ``sum_target``
    and ``sum_target_sq`` over the entries where ``mask`` holds (by default: the finite
    targets). Entries outside the mask may hold anything, NaN included."""
    xp = _xp(targets, predicted, mask)
    y, p = _floats(xp, targets), _floats(xp, predicted)
    mask = xp.isfinite(y) if mask is None else xp.asarray(mask, bool)
    y = xp.where(mask, y, 0.0)
    return _prefixed(prefix, {"sse": xp.where(mask, (p - y) ** 2, 0.0).sum(0),
                              "count": _floats(xp, mask.sum(0)), "sum_target": y.sum(0),
                              "sum_target_sq": (y * y).sum(0)})


def r2_from_sums(sums: Sums, prefix: str = "") -> dict[str, np.ndarray | float]:
    """``r2`` per target (NaN where fewer than 2 values or no variance) and ``r2_mean``, its
    mean over the targets that have one (NaN if none)."""
    count, sse = _vector(sums, f"{prefix}count"), _vector(sums, f"{prefix}sse")
    total = _vector(sums, f"{prefix}sum_target")
    sst = _vector(sums, f"{prefix}sum_target_sq") - total**2 / np.maximum(count, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where((count > 1) & (sst > 0), 1.0 - sse / sst, np.nan)
    mean = float(np.nanmean(r2)) if np.isfinite(r2).any() else math.nan
    return {f"{prefix}r2": r2, f"{prefix}r2_mean": mean}


def r2_score(targets, predicted) -> float:
    """Coefficient of determination over the finite targets of a 1-D label, in numpy."""
    return float(r2_from_sums(r2_sums(np.asarray(targets), np.asarray(predicted)))["r2"])


# ---- ranking: ROC AUC and average precision


def ranking_sums(pos, neg, pos_group=None, neg_group=None, pos_mask=None, neg_mask=None, *,
                 num_groups: int = 1, prefix: str = "") -> Sums:
    """The ROC AUC and average precision of each group's positive scores against its negative
    scores (one group by default), summed over the groups that have both: ``auc_sum``,
    ``ap_sum`` and ``groups``. Ties count one half in AUC; AP is the mean over positives of the
    precision among the group's scores at least as high (scikit-learn's step-wise
    ``average_precision_score``). Exact; memory O(P (P + N)), for held-out sets in jit."""
    xp = _xp(pos, neg, pos_group, neg_group, pos_mask, neg_mask)
    pos, neg = _floats(xp, pos), _floats(xp, neg)
    pos_group = xp.zeros(pos.shape, int) if pos_group is None else xp.asarray(pos_group)
    neg_group = xp.zeros(neg.shape, int) if neg_group is None else xp.asarray(neg_group)
    pos_mask, neg_mask = _mask(xp, pos_mask, pos.shape), _mask(xp, neg_mask, neg.shape)
    same_pn = ((pos_group[:, None] == neg_group[None, :]) & pos_mask[:, None]
               & neg_mask[None, :])
    same_pp = ((pos_group[:, None] == pos_group[None, :]) & pos_mask[:, None]
               & pos_mask[None, :])
    wins_p = xp.where(same_pn, (pos[:, None] > neg[None, :])
                      + 0.5 * (pos[:, None] == neg[None, :]), 0.0).sum(1)
    pos_above_p = (same_pp & (pos[None, :] >= pos[:, None])).sum(1)
    neg_above_p = (same_pn & (neg[None, :] >= pos[:, None])).sum(1)
    precision_p = pos_above_p / xp.maximum(pos_above_p + neg_above_p, 1)
    groups = xp.arange(num_groups)
    pos_in_g = _floats(xp, (pos_group[:, None] == groups) & pos_mask[:, None])  # [P, G]
    num_pos_g = pos_in_g.sum(0)
    num_neg_g = ((neg_group[:, None] == groups) & neg_mask[:, None]).sum(0)
    scored_g = (num_pos_g > 0) & (num_neg_g > 0)
    auc_g = (pos_in_g * wins_p[:, None]).sum(0) / xp.maximum(num_pos_g * num_neg_g, 1)
    ap_g = (pos_in_g * precision_p[:, None]).sum(0) / xp.maximum(num_pos_g, 1)
    return _prefixed(prefix, {"auc_sum": xp.where(scored_g, auc_g, 0.0).sum(),
                              "ap_sum": xp.where(scored_g, ap_g, 0.0).sum(),
                              "groups": _floats(xp, scored_g.sum())})


def ranking_from_sums(sums: Sums, prefix: str = "") -> dict[str, float]:
    """``auc`` and ``ap``: their means over the groups scored."""
    groups = max(float(sums[f"{prefix}groups"]), 1.0)
    return {f"{prefix}auc": float(sums[f"{prefix}auc_sum"]) / groups,
            f"{prefix}ap": float(sums[f"{prefix}ap_sum"]) / groups}


def roc_auc(pos_scores, neg_scores) -> float:
    """P(score of a positive > score of a negative), ties counting one half (Mann-Whitney U).
    Numpy, O((P + N) log N)."""
    pos, neg = _check_scores(pos_scores, neg_scores)
    neg_sorted = np.sort(neg)
    below = np.searchsorted(neg_sorted, pos, side="left")
    tied = np.searchsorted(neg_sorted, pos, side="right") - below
    return float((below.sum() + 0.5 * tied.sum()) / (len(pos) * len(neg)))


def average_precision(pos_scores, neg_scores) -> float:
    """``sum_n (R_n - R_{n-1}) P_n`` over descending score thresholds, as in scikit-learn.
    Numpy, O((P + N) log(P + N))."""
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


def _check_scores(pos_scores, neg_scores) -> tuple[np.ndarray, np.ndarray]:
    pos = np.asarray(pos_scores, np.float64).ravel()
    neg = np.asarray(neg_scores, np.float64).ravel()
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError(f"need at least one positive and one negative score, got {len(pos)} "
                         f"and {len(neg)}")
    if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(neg))):
        raise ValueError("scores must be finite (NaN or inf found)")
    return pos, neg


# ---- calibration


def calibration_sums(labels, probs, mask=None, *, num_bins: int = 15,
                     prefix: str = "") -> Sums:
    """Binned statistics of binary probabilities ``probs`` = P(label 1) against 0/1 ``labels``:
    the prediction is the likelier label (1 at 0.5), its confidence ``max(p, 1 - p)``. Per
    confidence bin ``[k / num_bins, (k + 1) / num_bins)`` (the last one closed; bins below 0.5
    stay empty): ``bin_count``, ``bin_confidence`` (summed) and ``bin_correct`` ``[num_bins]``.
    15 bins, as in Guo et al. (2017), by default."""
    xp = _xp(labels, probs, mask)
    p = _floats(xp, probs)
    mask = _mask(xp, mask, p.shape)
    predicted = p >= 0.5
    confidence = xp.where(predicted, p, 1.0 - p)
    correct = _floats(xp, predicted == (xp.asarray(labels) > 0.5))
    bin_of = xp.clip(xp.floor(confidence * num_bins).astype(int), 0, num_bins - 1)
    in_bin = _floats(xp, (bin_of[..., None] == xp.arange(num_bins)) & mask[..., None]
                     ).reshape(-1, num_bins)
    return _prefixed(prefix, {"bin_count": in_bin.sum(0),
                              "bin_confidence": (in_bin * confidence.reshape(-1, 1)).sum(0),
                              "bin_correct": (in_bin * correct.reshape(-1, 1)).sum(0)})


def calibration_from_sums(sums: Sums, prefix: str = "") -> dict[str, float]:
    """``ece``, the expected calibration error: ``sum_k n_k / n |accuracy_k - confidence_k|``
    over the bins (0 when nothing was counted)."""
    count = _vector(sums, f"{prefix}bin_count")
    gap = np.abs(_vector(sums, f"{prefix}bin_correct") - _vector(sums, f"{prefix}bin_confidence"))
    return {f"{prefix}ece": float(gap.sum() / max(count.sum(), 1.0))}


# ---- binned ranking (a whole eval set's AUC and AP from additive histograms)

SCORE_RANGE = (-12.0, 12.0)  # logits; beyond it scores share the outer bins


def score_histogram_sums(labels, scores, mask=None, *, num_bins: int = 480,
                         score_range: tuple[float, float] = SCORE_RANGE,
                         prefix: str = "") -> Sums:
    """Histograms of positive and negative ``scores`` (logits, or any monotone score) over
    ``num_bins`` equal bins of ``score_range``: ``pos_hist``, ``neg_hist`` ``[num_bins]``. Summed
    over batches they give the AUC and AP of the whole set (:func:`ranking_from_histograms`),
    exact up to ties within a bin (0.05 logits by default)."""
    xp = _xp(labels, scores, mask)
    s = _floats(xp, scores)
    mask = _mask(xp, mask, s.shape)
    low, high = score_range
    bin_of = xp.clip(xp.floor((s - low) / (high - low) * num_bins).astype(int), 0, num_bins - 1)
    one_hot = _floats(xp, (bin_of[..., None] == xp.arange(num_bins)) & mask[..., None]
                      ).reshape(-1, num_bins)
    positive = _floats(xp, xp.asarray(labels) > 0.5).reshape(-1, 1)
    return _prefixed(prefix, {"pos_hist": (one_hot * positive).sum(0),
                              "neg_hist": (one_hot * (1.0 - positive)).sum(0)})


def ranking_from_histograms(sums: Sums, prefix: str = "") -> dict[str, float]:
    """``auc`` (ties within a bin count one half) and ``ap`` (precision at each bin's lower
    edge, weighted by the bin's positives) from :func:`score_histogram_sums`; NaN when a class
    is absent."""
    pos, neg = _vector(sums, f"{prefix}pos_hist"), _vector(sums, f"{prefix}neg_hist")
    if pos.sum() == 0 or neg.sum() == 0:
        return {f"{prefix}auc": float("nan"), f"{prefix}ap": float("nan")}
    neg_below = np.cumsum(neg) - neg  # negatives in lower bins
    auc = float(np.sum(pos * (neg_below + 0.5 * neg)) / (pos.sum() * neg.sum()))
    pos_at_least = np.cumsum(pos[::-1])[::-1]  # positives scored in this bin or higher
    all_at_least = pos_at_least + np.cumsum(neg[::-1])[::-1]
    precision = np.where(all_at_least > 0, pos_at_least / np.maximum(all_at_least, 1), 0.0)
    return {f"{prefix}auc": auc, f"{prefix}ap": float(np.sum(pos * precision) / pos.sum())}


def binary_report(labels, probs, *, num_bins: int = 15) -> dict[str, float]:
    """A binary label's held-out report in numpy, for probabilities ``probs`` = P(label 1)
    against 0/1 ``labels``: ``auc`` and ``ap`` (:func:`roc_auc`, :func:`average_precision`;
    NaN when a class is absent), ``accuracy`` of the likelier label (1 from 0.5, as in
    :func:`calibration_sums`), ``ece`` over ``num_bins`` confidence bins, and ``count``."""
    y = np.asarray(labels).reshape(-1) > 0.5
    p = np.asarray(probs, np.float64).reshape(-1)
    if p.shape != y.shape:
        raise ValueError(f"labels and probs must have the same length, got {y.size} and {p.size}")
    if not np.all((p >= 0.0) & (p <= 1.0)):
        raise ValueError("probs must be probabilities in [0, 1] (NaN or out of range found)")
    both = y.any() and not y.all()
    return {"auc": roc_auc(p[y], p[~y]) if both else math.nan,
            "ap": average_precision(p[y], p[~y]) if both else math.nan,
            "accuracy": float(np.mean((p >= 0.5) == y)) if y.size else math.nan,
            **calibration_from_sums(calibration_sums(y, p, num_bins=num_bins)),
            "count": int(y.size)}


# ---- language models


def language_model_from_sums(sums: Sums) -> dict[str, float]:
    """From the summed next-token ``nll_sum`` (nats), ``correct`` and ``count``: ``loss`` (mean
    nats per token), ``accuracy``, ``perplexity`` and ``bits_per_byte`` (the loss in bits: one
    token is one byte for the byte-level tokenizer)."""
    loss = float(sums["nll_sum"]) / max(float(sums["count"]), 1.0)
    return {"loss": loss, **accuracy_from_sums(sums),
            "perplexity": float(np.exp(min(loss, 50.0))), "bits_per_byte": loss / math.log(2)}
