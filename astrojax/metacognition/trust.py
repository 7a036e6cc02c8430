"""Per-planet modality trust: how much each input a planet has moved its prediction.

For a modality the planet has, its trust is ``p(all) - p(all but it)``: the change in the
calibrated ensemble's probability when that modality alone is hidden (the model's ``keep``
masks, the same mechanism as modality dropout in training, so the model has met such inputs).
The catalogue row is always there in training (modality dropout never hides it), so hiding it
whole is out of distribution; its trust is reported by groups of columns instead, hidden
through their known masks (a missing column is routine in the catalogue): the host star
(Teff, radius, mass, luminosity), the orbit (period, semi-major axis, eccentricity, insolation,
T_eq) and the planet (radius, mass, surface gravity). A positive trust means the input raised
the probability. An input the planet lacks has trust NaN.
"""

from __future__ import annotations

import numpy as np

COLUMN_GROUPS = {
    "star": ("star_teff_k", "star_radius_rsun", "star_mass_msun", "star_luminosity_lsun"),
    "orbit": ("orbital_period_days", "semi_major_axis_au", "eccentricity", "insolation_searth",
              "equilibrium_temperature_k"),
    "planet": ("planet_radius_rearth", "planet_mass_mearth", "surface_gravity_ms2"),
}


def trust(ensemble, inputs: dict[str, np.ndarray], label: str) -> dict[str, np.ndarray]:
    """Per input (``row:GROUP`` for the catalogue's column groups, then each other modality the
    model reads through per-planet inputs) ``p(all) - p(without it)`` ``[planets]``, NaN where
    the planet lacks it; ``inputs`` as for :meth:`Ensemble.logits`."""
    n = len(inputs["row_values"])

    def p(run_inputs, keep=None):
        return ensemble.probability(ensemble.logits(run_inputs, keep)[label], label)

    full = p(inputs)
    out = {}
    columns = list(ensemble.task.row_columns)
    known = np.asarray(inputs["row_known"], bool)
    for group, names in COLUMN_GROUPS.items():
        idx = [columns.index(c) for c in names if c in columns]
        if not idx:
            continue
        hidden = known.copy()
        hidden[:, idx] = False
        has = known[:, idx].any(axis=1)
        out[f"row:{group}"] = np.where(has, full - p({**inputs, "row_known": hidden}), np.nan)
    model = ensemble.members[0].model
    for name in model.modalities():
        if name == "row" or f"has_{name}" not in inputs:
            continue
        has = np.asarray(inputs[f"has_{name}"], bool)
        out[name] = np.where(has, full - p(inputs, {name: np.zeros(n, bool)}), np.nan)
    return out


def trust_text(trust_by_input: dict[str, np.ndarray], i: int, digits: int = 3) -> str:
    """Planet ``i``'s trust as one string, largest effect first: ``row:orbit=-0.081
    row:planet=+0.012 spectrum=+0.001``."""
    items = [(name, float(v[i])) for name, v in trust_by_input.items() if np.isfinite(v[i])]
    items.sort(key=lambda item: -abs(item[1]))
    return " ".join(f"{name}={value:+.{digits}f}" for name, value in items)
