"""Selective prediction: answer only when confident enough, abstain otherwise.

A confidence score orders the planets; keeping the most confident share ``c`` (the coverage)
gives a risk (error rate of the likelier label) at that coverage, and the whole ordering gives
the risk-coverage curve (Geifman & El-Yaniv 2017) and its area (AURC, lower is better). The
scores: the maximum probability ``max(p, 1 - p)``; the predictive entropy ``H[p]``, which for a
binary label orders planets exactly as the maximum probability does (both are functions of
``|p - 1/2|``), so only the first is reported; and the ensemble's disagreement, the mutual
information between the label and the member ``H[mean_m p_m] - mean_m H[p_m]`` (what more data
of the same kind would remove; Depeweg et al. 2018). A threshold on the score for a wanted
coverage is chosen on val and applied unchanged to test and to new planets.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-12


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in bits of a Bernoulli(``p``)."""
    p = np.clip(np.asarray(p, np.float64), _EPS, 1.0 - _EPS)
    return -(p * np.log2(p) + (1.0 - p) * np.log2(1.0 - p))


def max_probability(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, np.float64)
    return np.maximum(p, 1.0 - p)


def disagreement(member_probs: np.ndarray) -> np.ndarray:
    """Mutual information (bits) between the label and the ensemble member, per planet, from
    ``[members, n]`` probabilities (0 for one member)."""
    member_probs = np.asarray(member_probs, np.float64)
    return binary_entropy(member_probs.mean(0)) - binary_entropy(member_probs).mean(0)


def risk_coverage(labels: np.ndarray, probs: np.ndarray, confidence: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(coverage [n], risk [n])``: keeping the ``k`` most confident planets (ties broken by
    position, deterministically) for ``k = 1..n``, the share kept and the error rate of the
    likelier label among them."""
    y = np.asarray(labels).reshape(-1) > 0.5
    wrong = ((np.asarray(probs).reshape(-1) >= 0.5) != y).astype(np.float64)
    order = np.argsort(-np.asarray(confidence, np.float64).reshape(-1), kind="stable")
    k = np.arange(1, len(y) + 1)
    return k / len(y), np.cumsum(wrong[order]) / k


def accuracy_at_coverage(labels, probs, confidence, coverage: float) -> float:
    """Accuracy of the likelier label on the ``coverage`` share of most confident planets."""
    cov, risk = risk_coverage(labels, probs, confidence)
    k = max(int(round(coverage * len(cov))), 1)
    return float(1.0 - risk[k - 1])


def aurc(labels, probs, confidence) -> float:
    """Area under the risk-coverage curve (the mean risk over coverages)."""
    return float(np.mean(risk_coverage(labels, probs, confidence)[1]))


def threshold_for_coverage(confidence: np.ndarray, coverage: float) -> float:
    """The confidence above which a share ``coverage`` of these (val) planets lie: predictions
    at or above it are made, below it abstained from."""
    if not 0.0 < coverage <= 1.0:
        raise ValueError(f"coverage must be in (0, 1], got {coverage}")
    return float(np.quantile(np.asarray(confidence, np.float64), 1.0 - coverage))


def selective_report(labels, probs, scores: dict[str, np.ndarray], coverage: float,
                     thresholds: dict[str, float] | None = None) -> dict[str, dict]:
    """Per confidence score: accuracy at full coverage and at ``coverage``, the AURC, and, with
    ``thresholds`` (chosen on val), the coverage and accuracy the threshold gives here."""
    y = np.asarray(labels).reshape(-1) > 0.5
    p = np.asarray(probs).reshape(-1)
    full = float(np.mean((p >= 0.5) == y))
    out = {}
    for name, score in scores.items():
        row = {"accuracy_full": full,
               f"accuracy_at_{coverage:g}": accuracy_at_coverage(y, p, score, coverage),
               "aurc": aurc(y, p, score)}
        if thresholds and name in thresholds:
            kept = np.asarray(score) >= thresholds[name]
            row["threshold_from_val"] = thresholds[name]
            row["coverage_at_val_threshold"] = float(kept.mean())
            row["accuracy_at_val_threshold"] = float(np.mean((p[kept] >= 0.5) == y[kept])) \
                if kept.any() else float("nan")
        out[name] = row
    return out
