"""The built-in dataset: a deterministic, physically self-consistent synthetic planet population.

- :mod:`~astrojax.data.generator.physics`: the closed-form physics and the climate solver.
- :mod:`~astrojax.data.generator.sampling`: the random draws and ``generate_population``.
- :mod:`~astrojax.data.generator.population`: the ``PlanetPopulation`` container.
- :mod:`~astrojax.data.generator.text`: the templated descriptions.
- :mod:`~astrojax.data.generator.climate`: climate datacubes (random stream 3).
- :mod:`~astrojax.data.generator.biochem`: metabolic networks (random stream 2).
- :mod:`~astrojax.data.generator.observe`: what an observer could know (random stream 5): the
  catalogue rows with errors and gaps, modality masks, the labels, the modeller's climate.
- :mod:`~astrojax.data.generator.spectra`: transmission spectra on JWST grids (random stream 4).

The modalities import the core modules, never the reverse; this package's namespace holds the
core only, so generating a population does not import the cube or network generators.
"""

from astrojax.data.generator.physics import (
    AIRLESS_PRESSURE_BAR,
    BIOSPHERE_CLASSES,
    CLIMATE_REGIME_BOUNDS_K,
    CLIMATE_REGIMES,
    FREEZING_K,
    GASEOUS_RADIUS_REARTH,
    GASES,
    SIGMA_SB,
    STAR_TYPES,
    biosignature_present,
    boiling_point_k,
    climate_regime,
    equilibrium_temperature,
    greenhouse_optical_depth,
    insolation,
    liquid_water_possible,
    orbital_period_days,
    ozone_column_du,
    planet_mass_from_radius,
    saturation_vapour_pressure_bar,
    stellar_luminosity,
    surface_gravity,
    surface_temperature,
)
from astrojax.data.generator.population import PlanetPopulation
from astrojax.data.generator.sampling import BLOCK_SIZE, block_rng, generate_population
from astrojax.data.generator.text import describe_planet

__all__ = [
    "AIRLESS_PRESSURE_BAR", "BIOSPHERE_CLASSES", "BLOCK_SIZE", "CLIMATE_REGIMES",
    "CLIMATE_REGIME_BOUNDS_K", "FREEZING_K", "GASEOUS_RADIUS_REARTH", "GASES", "SIGMA_SB",
    "STAR_TYPES", "PlanetPopulation", "biosignature_present", "block_rng", "boiling_point_k",
    "climate_regime", "describe_planet", "equilibrium_temperature", "generate_population",
    "greenhouse_optical_depth", "insolation", "liquid_water_possible", "orbital_period_days",
    "ozone_column_du", "planet_mass_from_radius", "saturation_vapour_pressure_bar",
    "stellar_luminosity", "surface_gravity", "surface_temperature",
]
