"""The population container: one 1-D numpy array per column, one row per planet."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from astrojax.data.generator.text import describe_planet


@dataclasses.dataclass(frozen=True, eq=False)
class PlanetPopulation:
    """A population as a struct of 1-D numpy arrays, one per column, all the same length.

    Units are in the names (``_k`` kelvin, ``_au``, ``_bar``, ``_searth`` Earth insolation,
    ``_rearth``/``_mearth`` Earth radius/mass, ``_rsun``/``_msun``/``_lsun`` solar units,
    ``_ms2`` m/s^2, ``_du`` Dobson units); ``x_*`` are volume mixing ratios summing to 1.
    ``star_type``, ``biosphere`` and ``climate_regime`` index STAR_TYPES, BIOSPHERE_CLASSES
    and CLIMATE_REGIMES.
    """

    planet_index: np.ndarray
    name: np.ndarray
    star_type: np.ndarray
    star_teff_k: np.ndarray
    star_radius_rsun: np.ndarray
    star_mass_msun: np.ndarray
    star_luminosity_lsun: np.ndarray
    semi_major_axis_au: np.ndarray
    orbital_period_days: np.ndarray
    eccentricity: np.ndarray
    planet_radius_rearth: np.ndarray
    planet_mass_mearth: np.ndarray
    surface_gravity_ms2: np.ndarray
    insolation_searth: np.ndarray
    water_fraction: np.ndarray  # surface covered by water (liquid or ice), 0 for dry planets
    relative_humidity: np.ndarray
    bond_albedo: np.ndarray
    equilibrium_temperature_k: np.ndarray
    surface_pressure_bar: np.ndarray
    greenhouse_tau: np.ndarray
    surface_temperature_k: np.ndarray
    x_n2: np.ndarray
    x_o2: np.ndarray
    x_co2: np.ndarray
    x_ch4: np.ndarray
    x_h2o: np.ndarray
    x_h2: np.ndarray
    ozone_column_du: np.ndarray
    liquid_water: np.ndarray
    habitable: np.ndarray
    biosphere: np.ndarray
    biosignature: np.ndarray
    climate_regime: np.ndarray
    text_variant: np.ndarray  # picks the description's template and phrasing

    def __post_init__(self) -> None:
        shapes = {k: np.shape(v) for k, v in self.columns().items()}
        if len(set(shapes.values())) != 1 or len(shapes["planet_index"]) != 1:
            raise ValueError(f"PlanetPopulation columns must be 1-D of one length, got {shapes}")

    def __len__(self) -> int:
        return len(self.planet_index)

    def __getitem__(self, i: int) -> dict:
        """Planet ``i`` as a dict of Python scalars."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"planet index {i} out of range for a population of {n}")
        return {k: v[i].item() for k, v in self.columns().items()}

    @classmethod
    def column_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def columns(self) -> dict[str, np.ndarray]:
        """Column name -> array (the arrays themselves, not copies)."""
        return {k: getattr(self, k) for k in self.column_names()}

    as_dict = columns

    def records(self) -> Iterator[dict]:
        """Every planet as a dict of Python scalars, in order."""
        lists = {k: v.tolist() for k, v in self.columns().items()}
        for values in zip(*lists.values(), strict=True):
            yield dict(zip(lists, values, strict=True))

    def rows(self, indices=None) -> np.ndarray:
        """Row numbers ``[k]`` int64 of ``indices`` (see :func:`planet_rows`)."""
        return planet_rows(len(self), indices, "population")

    def descriptions(self) -> list[str]:
        """The templated English text of every planet, in order."""
        return [describe_planet(r, r["text_variant"]) for r in self.records()]


def planet_rows(n: int, indices=None, what: str = "population") -> np.ndarray:
    """Row numbers ``[k]`` int64 of ``indices`` among ``n`` planets (default: every planet;
    negative ones count from the end); TypeError for non-integers, IndexError naming one out of
    range of the ``what``."""
    if indices is None:
        return np.arange(n)
    rows = np.asarray(indices).reshape(-1)
    if rows.size and not np.issubdtype(rows.dtype, np.integer):
        raise TypeError(f"indices must be integers, got dtype {rows.dtype}")
    bad = rows[(rows < -n) | (rows >= n)]
    if bad.size:
        raise IndexError(f"planet index {bad[0]} out of range for a {what} of {n}")
    return rows.astype(np.int64) % max(n, 1)
