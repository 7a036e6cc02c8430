"""Closed-form rules and summary-statistic models for climate datacubes: what a model must beat.

The built-in cubes (``astrojax.data.generator.climate``) are calibrated so that several labels
can be read straight off a cube, with no learning: the area-weighted mean surface temperature *is*
the planet's surface temperature (and so gives the climate regime through its bounds), a
tidally locked planet is the only kind whose fields vary along longitude, and the mean
surface humidity is the planet's relative humidity up to its ascent/descent pattern. Where an
atmosphere's upper levels cool down to the skin temperature ``T_eq * 2^(-1/4)`` they stay
there (the "skin plateau": equal temperatures over cells whose surfaces differ), which gives
the equilibrium temperature exactly on those planets; a planet without an atmosphere has
``T_eq`` equal to its mean surface temperature.

Besides the rules, the simplest fair model: ridge regression (or logistic regression, for
classes) on per-sample summary statistics (per variable and level: area-weighted mean, std,
min and max; and the largest standard deviation along longitude), fitted on the train split
only. Learned models are reported beside both, on the same held-out samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from astrojax.data.formats.store import CubeStore
from astrojax.data.generator import CLIMATE_REGIME_BOUNDS_K, CLIMATE_REGIMES
from astrojax.evaluators.metrics import accuracy_score, r2_score
from astrojax.evaluators.probes import linear_probe, ridge_probe

# Labels that are classes (with their number of classes); every other label is regressed.
CLASS_LABELS = {"climate_regime": len(CLIMATE_REGIMES), "tidally_locked": 2}
_LON_TOLERANCE = 1e-4  # K, %, m/s: float32 noise of a zonal-mean field is far below this
# Cells on the skin plateau must have surfaces this much apart (K): mirror-image cells of a
# symmetric planet share their top temperature too, with surfaces equal up to float32 noise.
_PLATEAU_SURFACE_SPREAD_K = 0.01


def cube_summaries(store: CubeStore, indices: Sequence[int], *,
                   batch: int = 128) -> dict[str, np.ndarray]:
    """:func:`summarize` of the raw cubes ``indices`` of a store, in one streaming pass."""
    schema = store.schema
    indices = np.asarray(indices, np.int64).reshape(-1)
    parts = [summarize(store.read_samples(indices[start:start + batch]), schema.variables,
                       schema.coords.get("lat"))
             for start in range(0, len(indices), batch)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def summarize(cubes: np.ndarray, variables: Sequence[str],
              lat_degrees: Sequence[float] | None = None) -> dict[str, np.ndarray]:
    """Per-sample summaries of raw cubes ``[n, V, T, L, Y, X]``.

    Always: ``mean`` (cos(lat)-weighted; uniform without latitudes), ``std``, ``min``, ``max``
    ``[n, V, L]`` and ``lon_std [n]`` (the largest std along longitude over variables, times,
    levels and latitudes). With a ``temperature`` variable: ``no_atmosphere [n]`` (all its
    levels identical) and ``skin_plateau [n]`` (K, NaN where there is none; see the module
    docstring).
    """
    x = np.asarray(cubes, np.float64)
    t, y_size, x_size = x.shape[2], x.shape[4], x.shape[5]
    lat = np.asarray([] if lat_degrees is None else lat_degrees, np.float64)
    weights = np.cos(np.radians(lat)) if lat.size == y_size else np.ones(y_size)
    weights = weights / weights.sum()
    out = {"mean": np.einsum("bvtlyx,y->bvl", x, weights) / (t * x_size),
           "std": x.std(axis=(2, 4, 5)), "min": x.min(axis=(2, 4, 5)),
           "max": x.max(axis=(2, 4, 5)), "lon_std": x.std(axis=5).max(axis=(1, 2, 3, 4))}
    if "temperature" in variables:
        temp = x[:, list(variables).index("temperature")]  # [n, T, L, Y, X]
        out["no_atmosphere"] = np.all(temp == temp[:, :, :1], axis=(1, 2, 3, 4))
        out["skin_plateau"] = np.array([_skin_plateau(c[:, -1], c[:, 0]) for c in temp])
    return out


def _skin_plateau(top: np.ndarray, surface: np.ndarray) -> float:
    """The skin temperature where the upper atmosphere reaches it, else NaN.

    Levels aloft are floored at ``min(skin, surface)``, so no column that cools with height
    (top below surface) ends below the skin: the coldest such top is the skin exactly when it
    is shared by columns over different surfaces (a plateau, not one column or the mirror
    images of a symmetric planet)."""
    top, surface = top.ravel(), surface.ravel()
    cooling = top < surface
    if not cooling.any():
        return float("nan")
    coldest = top[cooling].min()
    on_plateau = cooling & (top == coldest)
    if np.ptp(surface[on_plateau]) > _PLATEAU_SURFACE_SPREAD_K:
        return float(coldest)
    return float("nan")


def summary_features(summaries: dict[str, np.ndarray]) -> np.ndarray:
    """``[n, 4 V L + 1]``: the mean, std, min and max of every (variable, level), and lon_std."""
    n = len(summaries["lon_std"])
    parts = [summaries[k].reshape(n, -1) for k in ("mean", "std", "min", "max")]
    return np.concatenate([*parts, summaries["lon_std"][:, None]], axis=1)


def rule_predictions(summaries: dict[str, np.ndarray], variables: Sequence[str],
                     label_names: Sequence[str]) -> dict[str, tuple[str, np.ndarray]]:
    """``{label: (rule name, predictions)}`` for the labels a closed-form rule reads off the
    cube (equilibrium temperature: NaN where neither the skin plateau nor a missing atmosphere
    gives it)."""
    variables, out = list(variables), {}
    if "temperature" in variables:
        surface_t = summaries["mean"][:, variables.index("temperature"), 0]
        if "surface_temperature_k" in label_names:
            out["surface_temperature_k"] = ("area_mean_surface_t", surface_t)
        if "climate_regime" in label_names:
            regime = np.searchsorted(CLIMATE_REGIME_BOUNDS_K, surface_t, side="right")
            out["climate_regime"] = ("regime_bounds_of_area_mean_t", regime)
        if "equilibrium_temperature_k" in label_names and "skin_plateau" in summaries:
            teq = np.where(summaries["no_atmosphere"], surface_t,
                           summaries["skin_plateau"] * 2.0**0.25)
            out["equilibrium_temperature_k"] = ("skin_plateau", teq)
    if "relative_humidity" in variables and "relative_humidity" in label_names:
        rh = summaries["mean"][:, variables.index("relative_humidity"), 0]
        out["relative_humidity"] = ("area_mean_surface_rh", rh)
    if "tidally_locked" in label_names:
        locked = (summaries["lon_std"] > _LON_TOLERANCE).astype(np.float64)
        out["tidally_locked"] = ("longitude_variance", locked)
    return out


def cube_baseline_report(train: dict[str, np.ndarray], test: dict[str, np.ndarray],
                    train_labels: np.ndarray, test_labels: np.ndarray,
                    label_names: Sequence[str], variables: Sequence[str]) -> dict[str, float]:
    """Every rule and summary-statistic model on the held-out samples ``test``, fitted (where
    anything is fitted) on ``train`` only: ``{"RULE/r2/LABEL" or "RULE/accuracy/LABEL": value}``.

    Equilibrium temperature's rule covers only some planets; on the others it falls back to the
    summary ridge (``skin_plateau_else_ridge``), and ``skin_plateau/coverage/...`` says on
    what fraction of the held-out planets the rule itself applied.
    """
    x_train, x_test = summary_features(train), summary_features(test)
    rules = rule_predictions(test, variables, label_names)
    out: dict[str, float] = {}
    for j, name in enumerate(label_names):
        y_train, y_test = train_labels[:, j], test_labels[:, j]
        fit = np.isfinite(y_train)
        scored = np.isfinite(y_test)
        if fit.sum() < 2 or scored.sum() < 2:
            continue
        if name in CLASS_LABELS:
            k = CLASS_LABELS[name]
            probe = linear_probe(x_train[fit], y_train[fit], x_test[scored], y_test[scored], k)
            out[f"summary_logistic/accuracy/{name}"] = probe["accuracy"]
            out[f"majority/accuracy/{name}"] = probe["majority_accuracy"]
            if name in rules:
                rule, predicted = rules[name]
                out[f"{rule}/accuracy/{name}"] = accuracy_score(y_test[scored],
                                                                predicted[scored])["accuracy"]
            continue
        ridge = ridge_probe(x_train[fit], y_train[fit], x_test, y_test)
        out[f"summary_ridge/r2/{name}"] = ridge["r2"]
        if name in rules:
            rule, predicted = rules[name]
            covered = np.isfinite(predicted)
            if not covered.all():
                out[f"{rule}/coverage/{name}"] = float(covered[scored].mean())
                predicted, rule = np.where(covered, predicted, ridge["prediction"]), \
                    f"{rule}_else_ridge"
            out[f"{rule}/r2/{name}"] = r2_score(y_test, predicted)
    return out
