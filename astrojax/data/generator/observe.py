"""What an astronomer could know of a built-in planet, and what they would want to learn.

The population knows each planet's true state; a model must see only what an observer could
have, or one closed-form rule on one input gives the answer away. From the truth this module
makes (random stream ``STREAM``; planet ``i`` depends only on ``(seed, i)``, as in sampling.py):

- :func:`observe_catalogue`: the catalogue row as archives publish it: measured values with
  1-sigma errors and gaps, the rest derived as the archives (and ``build-catalog``) derive it.
  Nothing of the atmosphere, climate, water or life.
- :func:`modality_masks`: which views beyond the catalogue row a planet has.
- :func:`planet_labels`: habitable, biosignature, biosphere, climate regime and the true
  atmosphere (log10 mixing ratios and surface pressure) as a retrieval target.
- :func:`presence_labels`: per molecule, whether its bands are detectable in the planet's
  transmission spectrum (``present_h2o``, ...), known for the transiting planets only.
- :func:`assumed_population`: the modeller's world: the climate solved with the generator's
  own physics for the catalogue's (noisy, incomplete) planet under the atmosphere a modeller
  would assume, Earth's without life. ``climate.planet_cubes`` of it are the planets' climate
  cubes, which therefore know no more than the catalogue and the assumption.
- :func:`hypothesised_networks`: the network modality. No exoplanet's metabolism can be
  observed; what exists is an astrobiologist's hypothesis: the abiotic chemistry of the
  modeller's world (``biochem.generate_networks`` of ``assumed_population``) and, where that
  world has surface liquid water on a rocky planet, a biosphere class drawn from a stated prior
  (:func:`hypothesised_biospheres`), never the planet's own. Its reaction draws use biochem's
  stream under a seed derived from ``(seed, NETWORK_STREAM)``, so they are independent of the
  planet's true network.
- Observing notes (the text modality) are in ``generator/notes.py`` (random stream 6).

**Measurements.** A measured positive quantity is ``x_true * exp(r z)`` with ``z`` standard
normal, published with 1-sigma error ``r * x_obs``: ``(ln x_obs - ln x_true) / (sigma / x_obs)``
is exactly N(0, 1). ``r`` is the configured median relative error times ``exp(s z')``
(``s = CatalogueModel.precision_spread``): precision differs between bright, quiet hosts and
faint, active ones. Measured: host Teff, radius and mass; the period; the transit's radius
ratio ``Rp / R*``; the planet mass (radial velocities or transit timing). Eccentricity has an
absolute error and is published as ``|e + sigma z|`` (small eccentricities are biased high, as
Lucy & Sweeney 1971 found for real orbits).

**Derived as archives do** (``astrojax.data.archives.catalog``): ``L = R*^2 (Teff / 5772)^4``;
``a`` from Kepler's third law with ``P`` and ``M*``; ``S = L / a^2``; ``T_eq`` from ``S`` with
a Bond albedo of ``ASSUMED_BOND_ALBEDO`` (0.3; the planet's true albedo is unknown to an
observer); ``Rp = (Rp / R*) R*``; ``g = 9.81 M / R^2`` where mass and radius exist. Errors are
propagated to first order, which is exact in log space here.

**Gaps.** A planet transits (``transit_fraction``) or was found by radial velocities only: then
it has no radius and its mass is ``M sin i`` (isotropic orbits), as the NASA Exoplanet
Archive's ``pl_bmasse`` is for such planets. A derived value exists where its inputs do. The
default shares of known values are rough figures for the Archive's ``pscomppars`` table
(2024-2025), as we remember them, not measured here: host Teff, radius and mass for about 95%
of planets; about three quarters of planets transiting; a measured mass for a minority of small
transiting planets (about 30%); an eccentricity for about 40% of planets, mostly those with
radial velocities. Simplified: measurements are missing at random given the discovery method
(real masses are measured preferentially around bright hosts, for large RV amplitudes) and
there are no selection effects (the population is the catalogue).

The random layout is fixed: per block of ``BLOCK_SIZE`` planets, ``len(_NORMALS)`` rows of
normals, then ``len(_UNIFORMS)`` rows of uniforms; a new draw goes at the end of ``_UNIFORMS``
(a new normal would shift the uniforms).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from astrojax.data.generator.physics import (
    ASSUMED_BOND_ALBEDO,
    BIOSPHERE_CLASSES,
    CLIMATE_REGIMES,
    GASEOUS_RADIUS_REARTH,
    GASES,
    biosignature_present,
    climate_regime,
    equilibrium_temperature,
    insolation,
    liquid_water_possible,
    normalise_dry_gases,
    orbital_period_days,
    ozone_column_du,
    planet_mass_from_radius,
    solve_climate,
    star_type_from_teff,
    stellar_luminosity,
    surface_gravity,
)
from astrojax.data.generator.population import PlanetPopulation, planet_rows
from astrojax.data.generator.sampling import BLOCK_SIZE, block_rng
from astrojax.data.generator.spectra import MOLECULES, spectrum_labels

STREAM = 5  # this module's random stream: sampling.py 0-1, biochem 2, climate 3, spectra 4
NETWORK_STREAM = 7  # hypothesised networks' seed is derived from (seed, 7); notes.py takes 6
# The hypothesis for a planet whose modelled world has surface liquid water (a prior, stated,
# not fitted): methanogenic, anoxygenic and oxygenic photosynthetic biospheres equally likely.
HYPOTHESIS_CLASS_PROBABILITIES = (1 / 3, 1 / 3, 1 / 3)
# The catalogue's float columns, in the order of astrojax.data.archives.catalog's schema.
CATALOGUE_COLUMNS = ("star_teff_k", "star_radius_rsun", "star_mass_msun", "star_luminosity_lsun",
                     "semi_major_axis_au", "orbital_period_days", "eccentricity",
                     "planet_radius_rearth", "planet_mass_mearth", "surface_gravity_ms2",
                     "insolation_searth", "equilibrium_temperature_k")
MEASURED = ("star_teff_k", "star_radius_rsun", "star_mass_msun", "orbital_period_days",
            "eccentricity", "planet_radius_rearth", "planet_mass_mearth")
DERIVED = tuple(c for c in CATALOGUE_COLUMNS if c not in MEASURED)
MODALITIES = ("catalogue", "spectrum", "climate", "network", "text")
PRESENCE_LABELS = tuple(f"present_{m}" for m in MOLECULES)  # presence_labels' binary labels
CLASS_LABELS = {"habitable": 2, "biosignature": 2, "biosphere": len(BIOSPHERE_CLASSES),
                "climate_regime": len(CLIMATE_REGIMES), **dict.fromkeys(PRESENCE_LABELS, 2)}
# Mixing ratios below 1e-12 are invisible to any spectrum: the retrieval target stops there.
LOG10_MIXING_RATIO_FLOOR = -12.0
RETRIEVAL_TARGETS = (*(f"log10_x_{g}" for g in GASES), "log10_surface_pressure_bar")
_H2O_FLOOR = 1e-6  # the modeller's dry-air water vapour floor (the generator's rocky minimum)

_NORMALS = ("teff", "star_radius", "star_mass", "period", "radius_ratio", "planet_mass",
            "eccentricity", *(f"precision_{m}" for m in ("teff", "star_radius", "star_mass",
                                                          "period", "radius_ratio",
                                                          "planet_mass", "eccentricity")))
_UNIFORMS = ("transit", "inclination", "teff_known", "star_radius_known", "star_mass_known",
             "mass_known", "eccentricity_known", "spectrum", "climate", "network", "text",
             "hypothesis")


def _check_fraction(owner: str, name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{owner}.{name} must be a number in [0, 1], got {value!r}")


@dataclasses.dataclass(frozen=True)
class CatalogueModel:
    """How the catalogue is observed: median 1-sigma relative errors (``*_error``; eccentricity's
    is absolute), the spread of precision between planets (ln-space standard deviation), the
    share of planets that transit, and the shares of planets with each measurement
    (``*_known``). Defaults and where they come from: the module docstring."""

    teff_error: float = 0.02
    star_radius_error: float = 0.04
    star_mass_error: float = 0.06
    period_error: float = 1e-4
    radius_ratio_error: float = 0.03
    planet_mass_error: float = 0.2
    eccentricity_error: float = 0.03
    precision_spread: float = 0.3
    transit_fraction: float = 0.8
    teff_known: float = 0.97
    star_radius_known: float = 0.95
    star_mass_known: float = 0.95
    mass_known_if_transiting: float = 0.3
    eccentricity_known_with_mass: float = 0.8
    eccentricity_known_without_mass: float = 0.1

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            _check_fraction("CatalogueModel", field.name, value)
            if field.name.endswith("_error") and not 0.0 < value < 1.0:
                raise ValueError(f"CatalogueModel.{field.name} must be in (0, 1), got {value!r}")


@dataclasses.dataclass(frozen=True, eq=False)
class ObservedCatalogue:
    """Observed catalogue rows of a population: ``values`` and 1-sigma ``errors`` per column of
    CATALOGUE_COLUMNS (NaN where not published), whether each planet ``transiting`` (the
    discovery method is published) and ``star_type`` from the observed Teff (-1: unknown)."""

    planet_index: np.ndarray
    name: np.ndarray
    seed: int
    transiting: np.ndarray
    star_type: np.ndarray
    values: dict[str, np.ndarray]
    errors: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.planet_index)

    def rows(self, indices=None) -> np.ndarray:
        """Row numbers ``[k]`` int64 of ``indices`` (see ``population.planet_rows``)."""
        return planet_rows(len(self), indices, "catalogue")

    def known(self, column: str) -> np.ndarray:
        """Where ``column`` is published; KeyError naming the columns if it is not one."""
        if column not in self.values:
            raise KeyError(f"no catalogue column {column!r}; the columns are "
                           f"{', '.join(CATALOGUE_COLUMNS)}")
        return np.isfinite(self.values[column])

    def as_population(self) -> tuple[PlanetPopulation, dict[str, np.ndarray]]:
        """The rows in ``PlanetPopulation``'s schema and a known mask per column, as
        ``load_catalog`` gives a real catalogue: unknown floats NaN, unknown classes -1,
        unknown flags False; nothing of atmospheres, climate or life is known."""
        n = len(self)
        columns: dict[str, np.ndarray] = {}
        for name in PlanetPopulation.column_names():
            if name in self.values:
                columns[name] = self.values[name].copy()
            elif name in ("planet_index", "text_variant"):
                columns[name] = self.planet_index.copy()
            elif name == "name":
                columns[name] = self.name.copy()
            elif name == "star_type":
                columns[name] = self.star_type.copy()
            elif name in ("biosphere", "climate_regime"):
                columns[name] = np.full(n, -1, np.int64)
            elif name in ("liquid_water", "habitable", "biosignature"):
                columns[name] = np.zeros(n, bool)
            else:
                columns[name] = np.full(n, np.nan)
        known = {}
        for name, values in columns.items():
            if name in ("planet_index", "text_variant", "name"):
                known[name] = np.ones(n, bool)
            elif values.dtype.kind == "f":
                known[name] = np.isfinite(values)
            elif values.dtype.kind == "b":
                known[name] = np.zeros(n, bool)
            else:
                known[name] = values >= 0
        return PlanetPopulation(**columns), known


def _draws(seed: int, planet_index: np.ndarray) -> tuple[dict, dict]:
    """The normals and uniforms of stream STREAM for each planet index."""
    index = np.asarray(planet_index, np.int64)
    block_of = index // BLOCK_SIZE
    z = np.empty((len(_NORMALS), len(index)))
    u = np.empty((len(_UNIFORMS), len(index)))
    for block in np.unique(block_of):
        rng = block_rng(seed, int(block), STREAM)
        normals = rng.standard_normal((len(_NORMALS), BLOCK_SIZE))
        uniforms = rng.random((len(_UNIFORMS), BLOCK_SIZE))
        here = np.flatnonzero(block_of == block)
        z[:, here] = normals[:, index[here] % BLOCK_SIZE]
        u[:, here] = uniforms[:, index[here] % BLOCK_SIZE]
    return dict(zip(_NORMALS, z, strict=True)), dict(zip(_UNIFORMS, u, strict=True))


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def observe_catalogue(population: PlanetPopulation, seed: int = 0,
                      model: CatalogueModel = CatalogueModel()) -> ObservedCatalogue:
    """The catalogue rows an archive would publish for ``population`` (see the module
    docstring); planet ``i`` depends only on ``(seed, population.planet_index[i])`` and its own
    true columns. Use the population's own seed."""
    if not isinstance(population, PlanetPopulation):
        raise TypeError(f"population must be a PlanetPopulation, got {type(population).__name__}")
    if not isinstance(model, CatalogueModel):
        raise TypeError(f"model must be a CatalogueModel, got {type(model).__name__}")
    seed = check_seed(seed)
    z, u = _draws(seed, population.planet_index)
    n = len(population)

    def precision(key: str) -> np.ndarray:
        return getattr(model, f"{key}_error") * np.exp(model.precision_spread
                                                       * z[f"precision_{key}"])

    def measure(true, key: str, known) -> tuple[np.ndarray, np.ndarray]:
        r = precision(key)
        value = np.asarray(true, np.float64) * np.exp(r * z[key])
        return np.where(known, value, np.nan), np.where(known, r, np.nan)  # value, sigma / value

    transiting = u["transit"] < model.transit_fraction
    values, rel = {}, {}
    for column, key in (("star_teff_k", "teff"), ("star_radius_rsun", "star_radius"),
                        ("star_mass_msun", "star_mass")):
        known = u[f"{key}_known"] < getattr(model, f"{key}_known")
        values[column], rel[column] = measure(getattr(population, column), key, known)
    values["orbital_period_days"], rel["orbital_period_days"] = measure(
        population.orbital_period_days, "period", np.ones(n, bool))
    # A transit gives Rp / R*; the radius needs the host's radius too.
    ratio, ratio_rel = measure(population.planet_radius_rearth / population.star_radius_rsun,
                               "radius_ratio", transiting)
    values["planet_radius_rearth"] = ratio * values["star_radius_rsun"]
    rel["planet_radius_rearth"] = np.hypot(ratio_rel, rel["star_radius_rsun"])
    # Radial-velocity planets: the mass is all there is, and only M sin i (cos i uniform).
    sin_i = np.where(transiting, 1.0, np.sqrt(1.0 - u["inclination"] ** 2))
    mass_known = ~transiting | (u["mass_known"] < model.mass_known_if_transiting)
    values["planet_mass_mearth"], rel["planet_mass_mearth"] = measure(
        population.planet_mass_mearth * sin_i, "planet_mass", mass_known)
    ecc_known = u["eccentricity_known"] < np.where(mass_known, model.eccentricity_known_with_mass,
                                                   model.eccentricity_known_without_mass)
    sigma_e = precision("eccentricity")
    ecc = np.minimum(np.abs(population.eccentricity + sigma_e * z["eccentricity"]), 0.95)
    values["eccentricity"] = np.where(ecc_known, ecc, np.nan)

    with np.errstate(invalid="ignore"):  # NaN inputs give NaN outputs, silently
        values["star_luminosity_lsun"] = stellar_luminosity(values["star_radius_rsun"],
                                                            values["star_teff_k"])
        rel["star_luminosity_lsun"] = np.hypot(2 * rel["star_radius_rsun"],
                                               4 * rel["star_teff_k"])
        values["semi_major_axis_au"] = ((values["orbital_period_days"] / 365.25) ** (2 / 3)
                                        * values["star_mass_msun"] ** (1 / 3))
        rel["semi_major_axis_au"] = np.hypot(2 / 3 * rel["orbital_period_days"],
                                             rel["star_mass_msun"] / 3)
        values["insolation_searth"] = insolation(values["star_luminosity_lsun"],
                                                 values["semi_major_axis_au"])
        rel["insolation_searth"] = np.hypot(rel["star_luminosity_lsun"],
                                            2 * rel["semi_major_axis_au"])
        values["equilibrium_temperature_k"] = equilibrium_temperature(
            values["insolation_searth"], ASSUMED_BOND_ALBEDO)
        rel["equilibrium_temperature_k"] = rel["insolation_searth"] / 4
        values["surface_gravity_ms2"] = surface_gravity(values["planet_mass_mearth"],
                                                        values["planet_radius_rearth"])
        rel["surface_gravity_ms2"] = np.hypot(rel["planet_mass_mearth"],
                                              2 * rel["planet_radius_rearth"])
    values = {c: values[c] for c in CATALOGUE_COLUMNS}
    errors = {c: values[c] * rel[c] for c in CATALOGUE_COLUMNS if c != "eccentricity"}
    errors["eccentricity"] = np.where(ecc_known, sigma_e, np.nan)
    return ObservedCatalogue(
        planet_index=np.asarray(population.planet_index, np.int64).copy(),
        name=np.asarray(population.name).copy(), seed=seed, transiting=transiting,
        star_type=star_type_from_teff(values["star_teff_k"]).astype(np.int64), values=values,
        errors={c: errors[c] for c in CATALOGUE_COLUMNS})


def modellable(catalogue: ObservedCatalogue) -> np.ndarray:
    """Where a modeller can solve a planet's climate (bool ``[n]``): its radius and insolation
    are published. Only these planets have a climate cube or a hypothesised network."""
    return catalogue.known("planet_radius_rearth") & catalogue.known("insolation_searth")


def modality_masks(catalogue: ObservedCatalogue, *, spectrum: float = 0.3, climate: float = 0.15,
                   network: float = 0.1, text: float = 0.2) -> dict[str, np.ndarray]:
    """Which views each planet has, MODALITIES -> bool ``[n]``: the catalogue row always; a
    transmission spectrum for a share ``spectrum`` of the transiting planets; a climate cube and
    a hypothesised network for shares ``climate`` and ``network`` of the planets a modeller can
    model (:func:`modellable`: radius and insolation known); observing notes for a share
    ``text`` of all planets. Each is an independent draw per planet (stream STREAM, seeded like
    the catalogue)."""
    rates = {"spectrum": spectrum, "climate": climate, "network": network, "text": text}
    for name, rate in rates.items():
        _check_fraction("modality_masks", name, rate)
    _, u = _draws(catalogue.seed, catalogue.planet_index)
    can = {"spectrum": catalogue.transiting, "climate": modellable(catalogue),
           "network": modellable(catalogue), "text": np.ones(len(catalogue), bool)}
    masks = {"catalogue": np.ones(len(catalogue), bool)}
    masks.update({name: can[name] & (u[name] < rate) for name, rate in rates.items()})
    return {name: masks[name] for name in MODALITIES}


def planet_labels(population: PlanetPopulation) -> dict[str, np.ndarray]:
    """What a model is asked, by name: ``habitable`` and ``biosignature`` (bool),
    ``biosphere`` and ``climate_regime`` (indices into BIOSPHERE_CLASSES and CLIMATE_REGIMES),
    and RETRIEVAL_TARGETS (float64): the true atmosphere's log10 mixing ratios (floored at
    LOG10_MIXING_RATIO_FLOOR) and log10 surface pressure in bar."""
    out = {"habitable": np.asarray(population.habitable, bool).copy(),
           "biosignature": np.asarray(population.biosignature, bool).copy(),
           "biosphere": np.asarray(population.biosphere, np.int64).copy(),
           "climate_regime": np.asarray(population.climate_regime, np.int64).copy()}
    for gas in GASES:
        x = np.asarray(getattr(population, f"x_{gas}"), np.float64)
        out[f"log10_x_{gas}"] = np.log10(np.maximum(x, 10.0**LOG10_MIXING_RATIO_FLOOR))
    out["log10_surface_pressure_bar"] = np.log10(np.asarray(population.surface_pressure_bar,
                                                            np.float64))
    return out


def presence_labels(population: PlanetPopulation, catalogue: ObservedCatalogue,
                    instrument="nirspec_prism") -> dict[str, np.ndarray]:
    """Per molecule of ``spectra.MOLECULES``, ``present_M`` (bool) and ``present_M_known``
    (bool): whether M's bands in the planet's noiseless transmission spectrum on
    ``instrument``'s grid stand out of the instrument's systematic floor at SNR >= 5
    (``spectrum_labels(...).present`` with no transit count: detectable with as many
    transits as it takes), for the planets the catalogue says transit; the others have no
    transmission spectrum to detect anything in, so their label is unknown (and False).

    Why detectable, not "mixing ratio above a threshold": an observer choosing JWST targets
    asks which gases a spectrum of this planet could show. A threshold label would call CH4
    present under a cloud deck or in a thin, cold atmosphere where no transit reveals it, and
    absent below the threshold where a puffy atmosphere's strong band shows it; the retrieval
    targets already carry the mixing ratios. The label does not depend on the number of
    transits, so a detection curve compares the same labels at 1 and 30 transits."""
    if len(catalogue) != len(population) or not np.array_equal(
            catalogue.planet_index, np.asarray(population.planet_index)):
        raise ValueError("presence_labels: the catalogue is not of this population (planet "
                         "indices differ)")
    rows = np.flatnonzero(catalogue.transiting)
    present = np.zeros((len(population), len(MOLECULES)), bool)
    if len(rows):
        present[rows] = spectrum_labels(population, instrument, catalogue.seed, rows).present
    out = {}
    for j, name in enumerate(PRESENCE_LABELS):
        out[name] = present[:, j]
        out[f"{name}_known"] = catalogue.transiting.copy()
    return out


@dataclasses.dataclass(frozen=True)
class AssumedAtmosphere:
    """The atmosphere a modeller assumes for a planet known only from its catalogue row:
    Earth's without life (1 bar of N2 with 400 ppm CO2, no O2, an ocean over 70% of the surface
    at Earth's surface relative humidity, Earth's Bond albedo before ice); the climate solver
    adds the water vapour and the ice. Simplified: one assumption for every planet, sub-Neptunes
    above the radius valley included, where a modeller would assume an H2 envelope."""

    dry_pressure_bar: float = 1.0
    x_co2: float = 4e-4
    x_ch4: float = 0.0
    water_fraction: float = 0.7
    relative_humidity: float = 0.77
    bond_albedo: float = 0.3

    def __post_init__(self) -> None:
        if not (isinstance(self.dry_pressure_bar, int | float)
                and 0.0 < self.dry_pressure_bar <= 100.0):
            raise ValueError("AssumedAtmosphere.dry_pressure_bar must be in (0, 100], got "
                             f"{self.dry_pressure_bar!r}")
        for name in ("x_co2", "x_ch4", "water_fraction", "relative_humidity", "bond_albedo"):
            _check_fraction("AssumedAtmosphere", name, getattr(self, name))
        if self.x_co2 + self.x_ch4 >= 1.0:
            raise ValueError("AssumedAtmosphere.x_co2 + x_ch4 must leave room for N2 (< 1)")


def assumed_population(catalogue: ObservedCatalogue,
                       atmosphere: AssumedAtmosphere = AssumedAtmosphere()) -> PlanetPopulation:
    """The modeller's world: the catalogue's planets with ``atmosphere`` in place of the true
    one and the climate solved for it by the generator's physics (``physics.solve_climate``).

    Per planet the modeller takes the observed insolation, period, radius, stellar columns;
    the observed mass, else the median mass for the radius (``planet_mass_from_radius``); the
    observed eccentricity, else 0. Its ``liquid_water``, ``habitable``, ``biosignature`` and
    ``climate_regime`` are the modeller's world's (no biosphere), never the planet's labels.
    Planets whose radius or insolation is unknown cannot be modelled: their climate columns are
    NaN (climate_regime -1) and ``modality_masks`` never gives them a cube.
    ``climate.planet_cubes(assumed_population(catalogue), seed=catalogue.seed, indices=...)``
    are the planets' climate cubes.
    """
    if not isinstance(atmosphere, AssumedAtmosphere):
        raise TypeError(f"atmosphere must be an AssumedAtmosphere, got "
                        f"{type(atmosphere).__name__}")
    population, _ = catalogue.as_population()
    columns = population.columns()
    v = catalogue.values
    n = len(catalogue)
    radius, s = v["planet_radius_rearth"], v["insolation_searth"]
    modelled = modellable(catalogue)
    with np.errstate(invalid="ignore"):
        mass = np.where(np.isfinite(v["planet_mass_mearth"]), v["planet_mass_mearth"],
                        planet_mass_from_radius(radius))
        columns["planet_mass_mearth"] = np.where(np.isfinite(radius), mass, v["planet_mass_mearth"])
        columns["surface_gravity_ms2"] = surface_gravity(columns["planet_mass_mearth"], radius)
    columns["eccentricity"] = np.where(np.isfinite(v["eccentricity"]), v["eccentricity"], 0.0)
    if not np.all(np.isfinite(v["orbital_period_days"])):  # the catalogue always has it today
        period = orbital_period_days(v["semi_major_axis_au"], v["star_mass_msun"])
        columns["orbital_period_days"] = np.where(np.isfinite(v["orbital_period_days"]),
                                                  v["orbital_period_days"], period)

    idx = np.flatnonzero(modelled)
    ones = np.ones(len(idx))
    dry = normalise_dry_gases({"co2": atmosphere.x_co2 * ones, "ch4": atmosphere.x_ch4 * ones,
                               "o2": 0.0 * ones, "h2": 0.0 * ones})
    water, humidity = atmosphere.water_fraction * ones, atmosphere.relative_humidity * ones
    state = solve_climate(s[idx], atmosphere.bond_albedo * ones, water, humidity,
                          atmosphere.dry_pressure_bar * ones, _H2O_FLOOR * ones, dry)

    def spread(values: np.ndarray) -> np.ndarray:
        out = np.full(n, np.nan)
        out[idx] = values
        return out

    for key, values in state.items():
        columns[key] = spread(values)
    columns["water_fraction"], columns["relative_humidity"] = spread(water), spread(humidity)
    columns["ozone_column_du"] = spread(ozone_column_du(state["x_o2"],
                                                        state["surface_pressure_bar"]))
    liquid = liquid_water_possible(state["surface_temperature_k"], state["surface_pressure_bar"],
                                   water)
    columns["liquid_water"] = np.zeros(n, bool)
    columns["liquid_water"][idx] = liquid
    rocky = np.nan_to_num(radius) <= GASEOUS_RADIUS_REARTH
    columns["habitable"] = columns["liquid_water"] & rocky
    columns["biosphere"] = np.where(modelled, 0, -1).astype(np.int64)
    columns["biosignature"] = np.zeros(n, bool)
    columns["biosignature"][idx] = biosignature_present(state["x_o2"], state["x_ch4"])
    columns["climate_regime"] = np.full(n, -1, np.int64)
    columns["climate_regime"][idx] = climate_regime(state["surface_temperature_k"])
    return PlanetPopulation(**columns)


def _check_probabilities(probabilities) -> np.ndarray:
    p = np.asarray(probabilities, np.float64)
    if p.shape != (len(BIOSPHERE_CLASSES) - 1,) or (p < 0).any() or abs(p.sum() - 1.0) > 1e-9:
        raise ValueError(f"class_probabilities must be {len(BIOSPHERE_CLASSES) - 1} "
                         f"non-negative numbers summing to 1 (for {BIOSPHERE_CLASSES[1:]}), "
                         f"got {probabilities!r}")
    return p


def _hypothesis(assumed: PlanetPopulation, planet_index: np.ndarray, seed: int,
                probabilities: np.ndarray) -> np.ndarray:
    _, u = _draws(seed, planet_index)
    drawn = 1 + np.minimum(np.searchsorted(np.cumsum(probabilities), u["hypothesis"],
                                           side="right"), len(probabilities) - 1)
    return np.where(assumed.biosphere < 0, -1, np.where(assumed.habitable, drawn, 0))


def hypothesised_biospheres(catalogue: ObservedCatalogue, seed: int,
                            atmosphere: AssumedAtmosphere = AssumedAtmosphere(),
                            class_probabilities=HYPOTHESIS_CLASS_PROBABILITIES) -> np.ndarray:
    """The biosphere an astrobiologist hypothesises for each planet (int64 ``[n]``, an index
    into BIOSPHERE_CLASSES; -1 where the planet cannot be modelled): where the modeller's world
    (:func:`assumed_population` under ``atmosphere``) is habitable, surface liquid water on a
    rocky planet, a class drawn with ``class_probabilities`` (methanogenic, anoxygenic,
    oxygenic; uniform draw ``hypothesis`` of stream STREAM, planet ``i`` depending only on
    ``(seed, i)``); elsewhere none. It depends on the catalogue row alone, never on the
    planet's true biosphere."""
    probabilities = _check_probabilities(class_probabilities)
    seed = check_seed(seed)
    return _hypothesis(assumed_population(catalogue, atmosphere), catalogue.planet_index, seed,
                       probabilities)


def hypothesised_networks(catalogue: ObservedCatalogue, seed: int, indices=None, *,
                          atmosphere: AssumedAtmosphere = AssumedAtmosphere(),
                          class_probabilities=HYPOTHESIS_CLASS_PROBABILITIES) -> list:
    """The hypothesised metabolic networks (``MetabolicNetwork``) of the planets at ``indices``
    (default: all), in that order: ``biochem.generate_networks`` of the modeller's world
    (:func:`assumed_population`: the abiotic chemistry of the assumed atmosphere and modelled
    climate) with the biosphere of :func:`hypothesised_biospheres`. Reaction draws: biochem's
    stream under a seed derived from ``(seed, NETWORK_STREAM)``. Planet ``i``'s network depends
    only on its catalogue row and ``(seed, i)``, so a small population's networks are the
    prefix of a larger one's. A planet that cannot be modelled (:func:`modellable`) has no
    network: asking for one is a ValueError naming it (``modality_masks`` never gives it one)."""
    from astrojax.data.generator.biochem import generate_networks

    if not isinstance(catalogue, ObservedCatalogue):
        raise TypeError(f"catalogue must be an ObservedCatalogue, got {type(catalogue).__name__}")
    probabilities = _check_probabilities(class_probabilities)
    seed = check_seed(seed)
    rows = catalogue.rows(indices)
    unmodelled = rows[~modellable(catalogue)[rows]]
    if unmodelled.size:
        i = int(unmodelled[0])
        raise ValueError(f"planet {catalogue.name[i]} (row {i}) cannot be modelled (radius or "
                         f"insolation unknown), so it has no hypothesised network; "
                         f"{unmodelled.size} of the {rows.size} planets asked for are so")
    assumed = assumed_population(catalogue, atmosphere)
    biosphere = _hypothesis(assumed, catalogue.planet_index, seed, probabilities)
    world = dataclasses.replace(assumed, biosphere=biosphere)
    return generate_networks(world, _network_seed(seed), indices=rows)


def _network_seed(seed: int) -> int:
    """biochem's seed for the hypothesised networks: derived from ``(seed, NETWORK_STREAM)``,
    so their draws are not those of the planets' true networks (biochem with ``seed``)."""
    return int(np.random.SeedSequence([seed, NETWORK_STREAM]).generate_state(1)[0])


__all__ = ["CATALOGUE_COLUMNS", "CLASS_LABELS", "DERIVED", "HYPOTHESIS_CLASS_PROBABILITIES",
           "LOG10_MIXING_RATIO_FLOOR", "MEASURED", "MODALITIES", "NETWORK_STREAM",
           "PRESENCE_LABELS", "RETRIEVAL_TARGETS", "STREAM", "AssumedAtmosphere",
           "CatalogueModel", "ObservedCatalogue", "assumed_population", "check_seed",
           "hypothesised_biospheres", "hypothesised_networks", "modality_masks", "modellable",
           "observe_catalogue", "planet_labels", "presence_labels"]
