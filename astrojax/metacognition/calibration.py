"""Calibration of binary probabilities: temperature scaling fitted on val, expected calibration
error, reliability curves and their diagram.

Temperature scaling (Guo et al. 2017) divides every logit by one scalar ``T`` fitted to the
val split's negative log-likelihood; it leaves the ranking (AUC) unchanged. For a deep ensemble
the temperature divides each member's logit and the members' probabilities are then averaged
(the ensemble's predictive probability), so ``T`` is fitted to that average. One scalar needs no
optimizer: a grid over ``log T`` and a golden-section refinement around its best point find the
minimum of the (smooth, one-dimensional) NLL to 1e-4 in ``log T``.

ECE is :func:`astrojax.evaluators.metrics.binary_report`'s (15 confidence bins, the rest of the
project's definition); the reliability curve bins ``P(label)`` itself into ``bins`` equal bins,
as ``benchmarks/fusion_run.py`` draws it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from astrojax.evaluators.metrics import binary_report, calibration_from_sums, calibration_sums

_LOG_T_RANGE = (-3.0, 3.0)  # T from 0.05 to 20
_EPS = 1e-7


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, np.float64)))


def ensemble_probability(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """The ensemble's predictive probability: the mean over members (axis 0 of ``logits``
    ``[members, n]``; a ``[n]`` array is one member) of ``sigmoid(logit / temperature)``."""
    z = np.asarray(logits, np.float64)
    return sigmoid(z / temperature).mean(axis=0) if z.ndim > 1 else sigmoid(z / temperature)


def nll(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean binary negative log-likelihood (nats) of ``probs`` = P(label 1)."""
    y = np.asarray(labels).reshape(-1) > 0.5
    p = np.clip(np.asarray(probs, np.float64).reshape(-1), _EPS, 1.0 - _EPS)
    return float(-np.mean(np.where(y, np.log(p), np.log1p(-p))))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, grid: int = 121) -> float:
    """The temperature minimizing the NLL of :func:`ensemble_probability` on ``labels`` (fit it
    on val, never on test). ``logits``: ``[members, n]`` or ``[n]``."""
    y = np.asarray(labels).reshape(-1)
    if y.size == 0 or y.min() == y.max():
        raise ValueError("fit_temperature needs both classes among the labels")

    def loss(log_t: float) -> float:
        return nll(y, ensemble_probability(logits, math.exp(log_t)))

    points = np.linspace(*_LOG_T_RANGE, grid)
    best = int(np.argmin([loss(t) for t in points]))
    lo, hi = points[max(best - 1, 0)], points[min(best + 1, grid - 1)]
    golden = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - golden * (hi - lo), lo + golden * (hi - lo)
    fa, fb = loss(a), loss(b)
    while hi - lo > 1e-4:
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - golden * (hi - lo)
            fa = loss(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + golden * (hi - lo)
            fb = loss(b)
    return float(math.exp(0.5 * (lo + hi)))


def calibration_report(labels: np.ndarray, probs: np.ndarray, *, seed: int = 0,
                       bootstrap: int = 200) -> dict[str, float]:
    """``binary_report`` (AUC, AP, accuracy, ECE, count) plus the NLL, the Brier score, the
    bootstrap standard error of the ECE (``bootstrap`` resamples of the planets) and
    ``ece_if_calibrated``: the mean ECE of these probabilities against labels drawn from them
    (``bootstrap`` draws), what a perfectly calibrated model would show on as many planets. The
    ECE of a few hundred planets is itself noisy and biased upwards; these are its yardsticks."""
    y = np.asarray(labels).reshape(-1) > 0.5
    p = np.asarray(probs, np.float64).reshape(-1)
    out = {**binary_report(y, p), "nll": nll(y, p), "brier": float(np.mean((p - y) ** 2))}
    rng = np.random.default_rng(seed)
    eces = []
    for _ in range(bootstrap):
        pick = rng.integers(0, len(y), len(y))
        eces.append(calibration_from_sums(calibration_sums(y[pick], p[pick]))["ece"])
    out["ece_bootstrap_se"] = float(np.std(eces)) if eces else math.nan
    floor = [calibration_from_sums(calibration_sums(rng.random(len(p)) < p, p))["ece"]
             for _ in range(bootstrap)]
    out["ece_if_calibrated"] = float(np.mean(floor)) if floor else math.nan
    return out


def reliability_curve(labels: np.ndarray, probs: np.ndarray, bins: int = 10) -> dict[str, list]:
    """Per non-empty bin of ``P(label)`` (``bins`` equal bins of [0, 1]): the mean predicted
    probability, the observed rate and the number of planets."""
    y = np.asarray(labels).reshape(-1).astype(np.float64)
    p = np.asarray(probs, np.float64).reshape(-1)
    which = np.clip(np.floor(p * bins).astype(int), 0, bins - 1)
    used = [b for b in range(bins) if (which == b).any()]
    return {"mean_probability": [float(p[which == b].mean()) for b in used],
            "observed_rate": [float(y[which == b].mean()) for b in used],
            "count": [int((which == b).sum()) for b in used]}


def plot_reliability(path: str | Path, panels: dict[str, dict[str, tuple]], title: str = ""
                     ) -> None:
    """One panel per key of ``panels`` (a label); in each, one line per ``name -> (labels,
    probs)`` with its ECE in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.2), squeeze=False)
    for ax, (panel, lines) in zip(axes[0], panels.items(), strict=True):
        ax.plot([0, 1], [0, 1], color="0.7", lw=1)
        for name, (y, p) in lines.items():
            curve = reliability_curve(y, p)
            ece = binary_report(np.asarray(y) > 0.5, p)["ece"]
            ax.plot(curve["mean_probability"], curve["observed_rate"], "o-", ms=4,
                    label=f"{name} (ECE {ece:.3f})")
        ax.set(title=panel, xlabel="predicted probability", ylabel="observed rate",
               xlim=(0, 1), ylim=(0, 1))
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
