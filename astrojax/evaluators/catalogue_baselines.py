"""Closed-form rules on a catalogue row: the conservative habitable zone, and the best rule on
any single input (how much one column, alone, gives away).

**The habitable zone** of Kopparapu et al. (2014, ApJL 787, L29; the 1 M_earth limits are those
of Kopparapu et al. 2013, ApJ 765, 131, recomputed), in the polynomial form of their Table 1 and
of Kopparapu's own calculator (hzcalc, April 2014): the effective stellar flux of a limit is
``S_eff = S_sun + a T + b T^2 + c T^3 + d T^4`` with ``T = Teff - 5780 K``, fitted for
2600 K <= Teff <= 7200 K (outside it we hold Teff at the nearer end). The *conservative* zone
lies between the runaway greenhouse (inner) and the maximum greenhouse (outer) limits; a planet
is inside when its insolation (in Earth's) lies between them; the *optimistic* zone runs from
recent Venus to early Mars. The margin
``min(ln(S_inner / S), ln(S / S_outer))`` (positive inside) ranks planets for a ROC curve.

**Single-input rules** (:func:`single_input_aucs`) score one input (NaN where unknown) against a
binary label over all planets, by ROC AUC:

- ``threshold``: the value itself as the score, in either direction, unknowns at either end:
  every threshold rule at once.
- ``interval``: the best yes/no band rule (inside or outside ``[lo, hi]`` over ``bins`` quantile
  bins of the value, unknowns counted in or out); a yes/no rule's AUC is its balanced accuracy.
  Chosen on the planets it is scored on, so slightly optimistic.
- ``binned``: the label rate of the value's quantile bin (unknowns: a bin of their own), learned
  on half of the planets and scored on the other half, both ways: any shape of one-input rule,
  scored out of sample.

A column that gives a label away reaches an AUC near 1 in one of them.

**Baselines fitted on train planets and scored on held-out ones** (the fusion model's bars):
:func:`catalogue_row_features` turns a planet table's catalogue row into a feature matrix
(values, NaN where unknown, and known masks) for a NaN-aware tree model such as scikit-learn's
``HistGradientBoostingClassifier``; :class:`BinnedRule` is the ``binned`` rule as a fitted
object (a probability per value), and :func:`best_single_input_rule` picks, on train planets,
the input whose binned rule scores best out of fold and fits it on all of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from astrojax.data.generator.observe import CATALOGUE_COLUMNS
from astrojax.evaluators.metrics import roc_auc

if TYPE_CHECKING:
    from astrojax.data.planets import PlanetTable

# limit -> (S_eff at Teff = 5780 K, a, b, c, d): Kopparapu et al. (2014), Table 1.
KOPPARAPU_2014 = {
    "recent_venus": (1.776, 2.136e-4, 2.533e-8, -1.332e-11, -3.097e-15),
    "runaway_greenhouse": (1.107, 1.332e-4, 1.580e-8, -8.308e-12, -1.931e-15),
    "maximum_greenhouse": (0.356, 6.171e-5, 1.698e-9, -3.198e-12, -5.575e-16),
    "early_mars": (0.320, 5.547e-5, 1.526e-9, -2.874e-12, -5.011e-16),
    "runaway_greenhouse_5_mearth": (1.188, 1.433e-4, 1.707e-8, -8.968e-12, -2.084e-15),
    "runaway_greenhouse_0.1_mearth": (0.99, 1.209e-4, 1.404e-8, -7.418e-12, -1.713e-15),
}
KOPPARAPU_TEFF_RANGE_K = (2600.0, 7200.0)
CONSERVATIVE_LIMITS = ("runaway_greenhouse", "maximum_greenhouse")  # inner, outer
OPTIMISTIC_LIMITS = ("recent_venus", "early_mars")
RULES = ("threshold", "interval", "binned")


def habitable_zone_flux(teff_k: ArrayLike, limit: str) -> np.ndarray:
    """The effective flux (in Earth's insolation) of one of KOPPARAPU_2014's limits for a
    star of effective temperature ``teff_k`` (held within KOPPARAPU_TEFF_RANGE_K)."""
    if limit not in KOPPARAPU_2014:
        raise KeyError(f"no habitable-zone limit {limit!r}; the limits are "
                       f"{', '.join(KOPPARAPU_2014)}")
    s_sun, a, b, c, d = KOPPARAPU_2014[limit]
    t = np.clip(np.asarray(teff_k, np.float64), *KOPPARAPU_TEFF_RANGE_K) - 5780.0
    return s_sun + a * t + b * t**2 + c * t**3 + d * t**4


def habitable_zone_margin(teff_k: ArrayLike, insolation_searth: ArrayLike,
                          limits: tuple[str, str] = CONSERVATIVE_LIMITS) -> np.ndarray:
    """``min(ln(S_inner / S), ln(S / S_outer))`` for the zone between ``limits`` (inner, outer;
    the conservative zone by default): positive inside, the distance in ln flux to the nearer
    edge; NaN where Teff or S is unknown (NaN)."""
    s = np.asarray(insolation_searth, np.float64)
    inner = habitable_zone_flux(teff_k, limits[0])
    outer = habitable_zone_flux(teff_k, limits[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.minimum(np.log(inner / s), np.log(s / outer))


def conservative_habitable_zone(teff_k: ArrayLike, insolation_searth: ArrayLike) -> np.ndarray:
    """True inside the conservative habitable zone; False outside it or where Teff or S is
    unknown (NaN): nobody can place such a planet in the zone."""
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(habitable_zone_margin(teff_k, insolation_searth), nan=-1.0) > 0.0


def _labels(labels: ArrayLike, n: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) like the values, got {y.shape}")
    y = y.astype(bool)
    if y.all() or not y.any():
        raise ValueError("labels must contain both classes")
    return y


def score_auc(scores: ArrayLike, labels: ArrayLike) -> float:
    """ROC AUC of finite scores (higher: more likely positive) for a binary label."""
    scores = np.asarray(scores, np.float64)
    y = _labels(labels, len(scores))
    return roc_auc(scores[y], scores[~y])


def _bin_edges(x: np.ndarray, bins: int) -> np.ndarray:
    known = x[np.isfinite(x)]
    if known.size == 0:
        return np.array([])
    return np.unique(np.quantile(known, np.linspace(0.0, 1.0, bins + 1)[1:-1]))


def _bin_of(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index 0..len(edges) of known values, len(edges) + 1 for unknown ones."""
    out = np.searchsorted(edges, np.nan_to_num(x), side="right")
    return np.where(np.isfinite(x), out, len(edges) + 1)


def _threshold_auc(x: np.ndarray, y: np.ndarray) -> float:
    known = np.isfinite(x)
    if not known.any():
        return 0.5
    low, high = x[known].min() - 1.0, x[known].max() + 1.0
    best = 0.0
    for fill in (low, high):
        auc = score_auc(np.where(known, x, fill), y)
        best = max(best, auc, 1.0 - auc)
    return best


def _interval_auc(x: np.ndarray, y: np.ndarray, bins: int) -> float:
    edges = _bin_edges(x, bins)
    b, k = _bin_of(x, edges), len(edges) + 1  # known bins 0..k-1, unknown k
    pos = np.bincount(b[y], minlength=k + 1).astype(np.float64)
    neg = np.bincount(b[~y], minlength=k + 1).astype(np.float64)
    (pos, pos_unknown), (neg, neg_unknown) = (pos[:k], pos[k]), (neg[:k], neg[k])
    cum_pos, cum_neg = np.r_[0.0, np.cumsum(pos)], np.r_[0.0, np.cumsum(neg)]
    # Every band [lo, hi] of known bins: counts inside it.
    tp = cum_pos[None, 1:] - cum_pos[:-1, None]
    fp = cum_neg[None, 1:] - cum_neg[:-1, None]
    valid = np.triu(np.ones_like(tp, bool))
    best = 0.5
    for with_unknown in (0.0, 1.0):
        tpr = (tp + with_unknown * pos_unknown) / y.sum()
        fpr = (fp + with_unknown * neg_unknown) / (~y).sum()
        auc = 0.5 * (1.0 + tpr - fpr)[valid]
        best = max(best, float(auc.max()), float(1.0 - auc.min()))
    return best


@dataclasses.dataclass(frozen=True, eq=False)
class BinnedRule:
    """The label rate of a value's quantile bin, learned from labelled planets: any shape of
    one-input rule. ``edges`` are the inner quantile edges of the known values; ``rates`` holds
    one rate per known bin and a last one for unknown values (NaN), each bin smoothed by one
    pseudo-planet at the overall rate, so a tiny bin falls back towards it. Calling the rule on
    values gives P(label) for each: a probability, so accuracy and calibration mean something."""

    edges: np.ndarray
    rates: np.ndarray  # [len(edges) + 2]: known bins 0..len(edges), then unknown

    @classmethod
    def fit(cls, values: ArrayLike, labels: ArrayLike, bins: int = 32) -> BinnedRule:
        """The rule with ``bins`` quantile bins of the known ``values`` (NaN: unknown) for
        binary ``labels`` (both classes present)."""
        x = _finite_or_nan(values)
        y = _labels(labels, len(x))
        _check_bins(bins)
        edges = _bin_edges(x, bins)
        k = len(edges) + 2
        b = _bin_of(x, edges)
        pos, count = np.bincount(b[y], minlength=k), np.bincount(b, minlength=k)
        return cls(edges, (pos + y.mean()) / (count + 1.0))

    def __call__(self, values: ArrayLike) -> np.ndarray:
        return self.rates[_bin_of(_finite_or_nan(values), self.edges)]


def _binned_auc(x: np.ndarray, y: np.ndarray, bins: int, seed: int) -> float:
    fold = np.random.default_rng(seed).permutation(len(x)) % 2
    scores = np.empty(len(x))
    for f in (0, 1):
        fit, held = fold != f, fold == f
        scores[held] = BinnedRule.fit(x[fit], y[fit], bins)(x[held])
    return score_auc(scores, y)


def _finite_or_nan(values: ArrayLike) -> np.ndarray:
    x = np.asarray(values, np.float64).reshape(-1)
    if np.isinf(x).any():
        raise ValueError("values must be finite or NaN (unknown), not infinite")
    return x


def _check_bins(bins) -> None:
    if not isinstance(bins, int) or isinstance(bins, bool) or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")


def single_input_aucs(values: ArrayLike, labels: ArrayLike, *, bins: int = 32,
                      seed: int = 0) -> dict[str, float]:
    """``{rule: AUC}`` for RULES and ``best`` (the largest), on one input ``values`` (NaN where
    unknown) for binary ``labels`` (see the module docstring)."""
    x = _finite_or_nan(values)
    y = _labels(labels, len(x))
    _check_bins(bins)
    out = {"threshold": _threshold_auc(x, y), "interval": _interval_auc(x, y, bins),
           "binned": _binned_auc(x, y, bins, seed)}
    out["best"] = max(out.values())
    return out


def habitable_zone_report(teff_k: ArrayLike, insolation_searth: ArrayLike,
                          labels: ArrayLike) -> dict[str, float]:
    """The conservative habitable zone as a baseline for one binary label: the yes/no rule's
    AUC (its balanced accuracy) and the margin's AUC (unknowns ranked last), with the share of
    planets the rule can place at all (Teff and S known) and the share inside; and the
    optimistic zone's (recent Venus to early Mars) yes/no AUC beside them."""
    margin = habitable_zone_margin(teff_k, insolation_searth)
    known = np.isfinite(margin)
    inside = conservative_habitable_zone(teff_k, insolation_searth)
    low = margin[known].min() - 1.0 if known.any() else 0.0
    with np.errstate(invalid="ignore"):
        optimistic = np.nan_to_num(habitable_zone_margin(teff_k, insolation_searth,
                                                         OPTIMISTIC_LIMITS), nan=-1.0) > 0.0
    return {"inside_auc": score_auc(inside.astype(np.float64), labels),
            "margin_auc": score_auc(np.where(known, margin, low), labels),
            "coverage": float(known.mean()), "inside_share": float(inside.mean()),
            "optimistic_inside_auc": score_auc(optimistic.astype(np.float64), labels)}


def best_single_input_rule(inputs: Mapping[str, ArrayLike], labels: ArrayLike, *,
                           bins: int = 32, seed: int = 0) -> tuple[str, BinnedRule, float]:
    """``(name, rule, auc)``: of ``inputs`` (name -> values over the same planets, NaN where
    unknown), the one whose binned rule scores best out of fold on these planets (the
    ``binned`` AUC of :func:`single_input_aucs`), and that rule fitted on all of them. Give it
    train planets only; score the rule on held-out ones."""
    if not inputs:
        raise ValueError("best_single_input_rule needs at least one input")
    _check_bins(bins)
    aucs = {}
    for name, values in inputs.items():
        x = _finite_or_nan(values)
        if x.shape != np.shape(labels):
            raise ValueError(f"input {name!r} has {x.size} values for {np.size(labels)} labels")
        aucs[name] = _binned_auc(x, _labels(labels, len(x)), bins, seed)
    name = max(aucs, key=aucs.get)
    return name, BinnedRule.fit(inputs[name], labels, bins), aucs[name]


def catalogue_row_features(table: PlanetTable, rows: ArrayLike | None = None,
                           columns: Sequence[str] = CATALOGUE_COLUMNS
                           ) -> tuple[np.ndarray, tuple[str, ...]]:
    """``(x [n, 2 C] float64, names)``: for ``rows`` of ``table`` (all by default), each of the
    float ``columns`` (the catalogue's, by default) as its value, NaN where unknown, then each
    one's known mask (1.0 / 0.0), named ``COLUMN`` and ``COLUMN_known``: the values and masks
    ``CatalogueSource`` gives a model, in the form a NaN-aware tree model reads. (The masks
    repeat what the NaNs say; a model that cannot read NaN needs them.)"""
    index = np.arange(len(table)) if rows is None else np.asarray(rows, np.int64)
    values, known = [], []
    for name in columns:
        column, mask = table.column(name)
        column = np.asarray(column)
        if column.dtype.kind != "f":
            raise ValueError(f"catalogue column {name!r} is not a float column "
                             f"({column.dtype}); choose float columns")
        column = column[index].astype(np.float64)
        mask = np.asarray(mask, bool)[index] & np.isfinite(column)
        values.append(np.where(mask, column, np.nan))
        known.append(mask.astype(np.float64))
    names = (*columns, *(f"{name}_known" for name in columns))
    return np.stack(values + known, axis=1).reshape(len(index), 2 * len(columns)), names
