"""Drawing the built-in population: random draws in fixed blocks, then the physics.

Each planet depends only on ``(seed, planet index)``: random draws come in fixed blocks of
``BLOCK_SIZE`` planets (see ``block_rng``) and the physics is elementwise, each planet's climate
iterated to its own convergence, so a small population is exactly the prefix of a larger one
(bitwise on one machine; transcendental functions may differ in the last bit across CPUs).
The chain: star -> orbit -> insolation -> atmosphere -> grey greenhouse climate with
water-vapour and ice-albedo feedbacks -> liquid water -> biosphere (which alters the
atmosphere, after which the climate is solved again) -> labels. The modalities drawn from a
population (``climate`` cubes, ``biochem`` networks, ``text``) take their own random streams.
"""

from __future__ import annotations

import numpy as np

from astrojax.data.generator.causal_graph import Intervention, Recorder
from astrojax.data.generator.physics import (
    GASEOUS_RADIUS_REARTH,
    biosignature_present,
    boiling_point_k,
    climate_regime,
    climate_state,
    insolation,
    liquid_water_possible,
    normalise_dry_gases,
    orbital_period_days,
    ozone_column_du,
    planet_mass_from_radius,
    resolve_climate,
    solve_climate,
    stellar_luminosity,
    surface_gravity,
)
from astrojax.data.generator.population import PlanetPopulation

BLOCK_SIZE = 1024
_STAR_TYPE_PROB = (0.45, 0.25, 0.18, 0.12)  # M most common; F kept frequent enough to learn
_STAR_TEFF_RANGE_K = ((2700.0, 3900.0), (3900.0, 5300.0), (5300.0, 6000.0), (6000.0, 7300.0))
# Main-sequence Teff -> mass, radius (after Pecaut & Mamajek 2013), interpolated in between.
_MS_TEFF_K = np.array([2700, 3000, 3300, 3550, 3850, 4440, 5040, 5400, 5772, 6000, 6550, 7300.0])
_MS_MASS_MSUN = np.array([0.09, 0.16, 0.27, 0.44, 0.57, 0.68, 0.82, 0.90, 1.0, 1.11, 1.33, 1.61])
_MS_RADIUS_RSUN = np.array([0.12, 0.19, 0.29, 0.45, 0.59, 0.70, 0.79, 0.87, 1.0, 1.12, 1.40, 1.70])
_ORBIT_QUANTILES, _ORBIT_LOG10_S = (0.0, 0.15, 0.85, 1.0), (-1.5, -0.6, 0.3, 1.5)

# ---------------------------------------------------------------- random draws
_UNIFORMS = ("star_type", "teff", "orbit", "ecc", "radius", "airless", "has_water", "water",
             "humidity", "albedo", "co2", "ch4", "h2", "o2", "h2o", "envelope_p", "o2_loss",
             "o2_loss_level", "life", "life_class", "bio_gas", "bio_gas2", "text")
_NORMALS = ("star_radius", "star_mass", "planet_mass", "pressure")


def block_rng(seed: int, block: int, stream: int) -> np.random.Generator:
    """The generator of one block of planets. Streams 0-1 are this module's; the modalities
    take their own stream ids so they never shift these draws: 2 biochem (networks, seeded per
    planet), 3 climate, 4 spectra, 5 observe (catalogue, masks, hypothesised biospheres),
    6 notes (observing notes), 7 observe's hypothesised networks (a derived biochem seed)."""
    return np.random.default_rng(np.random.SeedSequence([seed, block, stream]))


def _draw(seed: int, num_blocks: int) -> tuple[dict, dict]:
    uni = np.concatenate([block_rng(seed, b, 0).random((len(_UNIFORMS), BLOCK_SIZE))
                          for b in range(num_blocks)], axis=1)
    nrm = np.concatenate([block_rng(seed, b, 1).standard_normal((len(_NORMALS), BLOCK_SIZE))
                          for b in range(num_blocks)], axis=1)
    return dict(zip(_UNIFORMS, uni, strict=True)), dict(zip(_NORMALS, nrm, strict=True))


def _log_uniform(u: np.ndarray, low_log10: float, high_log10: float) -> np.ndarray:
    return 10.0 ** (low_log10 + (high_log10 - low_log10) * u)


# ---------------------------------------------------------------- the population
def _simulate(u: dict, z: dict, do=None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """All physical columns, and the causal graph's variables (``causal_graph.VARIABLES``),
    from the uniform (``u``) and standard normal (``z``) draws, under the interventions ``do``
    (``{variable: Intervention or value}``). Each graph variable passes through ``rec`` where
    it is computed, so an intervention reaches exactly its descendants; with none, ``rec``
    hands back the same arrays and the arithmetic is the population's."""
    rec = Recorder(do)
    c: dict[str, np.ndarray] = {}
    star_type = rec("star_type",
                    np.minimum(np.searchsorted(np.cumsum(_STAR_TYPE_PROB), u["star_type"]), 3))
    low, high = np.array(_STAR_TEFF_RANGE_K)[star_type].T
    teff = rec("star_teff_k", low + (high - low) * u["teff"])
    c["star_type"], c["star_teff_k"] = star_type, teff
    scatter_r, scatter_m = np.exp(0.04 * z["star_radius"]), np.exp(0.04 * z["star_mass"])
    c["star_radius_rsun"] = rec("star_radius_rsun",
                                np.interp(teff, _MS_TEFF_K, _MS_RADIUS_RSUN) * scatter_r)
    c["star_mass_msun"] = rec("star_mass_msun",
                              np.interp(teff, _MS_TEFF_K, _MS_MASS_MSUN) * scatter_m)
    lum = c["star_luminosity_lsun"] = rec("star_luminosity_lsun",
                                          stellar_luminosity(c["star_radius_rsun"], teff))
    # Orbits are drawn in insolation so every star gets the same spread (0.03-30 S_earth):
    # log-uniform pieces, 70% of the planets in 0.25-2 S_earth around the habitable zone.
    # Insolation is thus a root of the graph and the orbit its child (to rounding, the column
    # recomputed from L and a is the drawn value).
    log_s = np.interp(u["orbit"], _ORBIT_QUANTILES, _ORBIT_LOG10_S)
    a = np.sqrt(lum / 10.0**log_s)
    s = c["insolation_searth"] = rec("insolation_searth", insolation(lum, a))
    if rec.intervened("insolation_searth"):
        a = np.sqrt(lum / s)
    c["semi_major_axis_au"] = rec("semi_major_axis_au", a)
    c["orbital_period_days"] = rec("orbital_period_days", orbital_period_days(
        c["semi_major_axis_au"], c["star_mass_msun"]))
    c["eccentricity"] = rec("eccentricity", np.minimum(
        0.05 * np.sqrt(-2.0 * np.log1p(-u["ecc"])), 0.5))  # Rayleigh
    radius = c["planet_radius_rearth"] = rec("planet_radius_rearth", _log_uniform(
        u["radius"], np.log10(0.5), np.log10(2.0)))
    c["planet_mass_mearth"] = rec("planet_mass_mearth", planet_mass_from_radius(radius)
                                  * np.exp(0.15 * z["planet_mass"]))
    c["surface_gravity_ms2"] = rec("surface_gravity_ms2",
                                   surface_gravity(c["planet_mass_mearth"], radius))

    gaseous = radius > GASEOUS_RADIUS_REARTH
    # Small, strongly irradiated planets lose their atmospheres (energy-limited escape ~ S/g^2).
    escape = s / (c["surface_gravity_ms2"] / 9.81) ** 2
    airless = rec("airless", ~gaseous & (u["airless"] < 0.05 + 0.55 * escape / (escape + 8.0)))
    rocky_air = ~gaseous & ~airless
    p_dry = np.where(gaseous, _log_uniform(u["envelope_p"], 1.0, 2.5),
                     np.where(airless, _log_uniform(u["envelope_p"], -9.0, -4.0),
                              np.clip(10.0 ** (0.7 * z["pressure"]), 2e-3, 300.0)))
    water = rec("water_fraction", np.where(rocky_air & (u["has_water"] < 0.85),
                                           0.05 + 0.9 * u["water"], 0.0))
    c["water_fraction"] = water
    c["relative_humidity"] = rec("relative_humidity",
                                 np.where(water > 0, 0.3 + 0.6 * u["humidity"], 0.0))
    base_albedo = rec("surface_albedo", np.where(airless, 0.05 + 0.25 * u["albedo"],
                                                 0.1 + 0.45 * u["albedo"]))
    h2o_floor = rec("h2o_floor", np.where(gaseous, _log_uniform(u["h2o"], -3, -2),
                                          _log_uniform(u["h2o"], -6, -4)))
    # The order of the gases matters: normalise_dry_gases sums them in this order.
    dry = {"o2": rec("outgassed_o2", _log_uniform(u["o2"], -10, -6)),
           "ch4": rec("outgassed_ch4", _log_uniform(u["ch4"], -9, -4.5)),
           "co2": np.where(gaseous, _log_uniform(u["co2"], -6, -2), _log_uniform(u["co2"], -5, 0)),
           "h2": rec("dry_h2", np.where(gaseous, 0.75 + 0.2 * u["h2"],
                                        _log_uniform(u["h2"], -7, -3)))}
    # Carbonate-silicate cycle: weathering on wet planets draws CO2 down where it is warm, so
    # CO2 builds up (adding its own pressure) as insolation falls, widening the habitable zone.
    p_co2 = rec("weathering_co2_bar", np.where(water > 0, np.minimum(
        _log_uniform(u["co2"], -4.5, -2.5) * s**-7.0, 5.0), 0.0))
    p_dry = rec("dry_pressure_bar", np.where(water > 0, p_dry + p_co2, p_dry))
    dry["co2"] = rec("dry_co2", np.where(water > 0, p_co2 / p_dry, dry["co2"]))
    # Rayleigh scattering by a thick atmosphere brightens the planet (why CO2 cannot warm
    # without limit); it uses the dry pressure so the climate feedbacks stay monotone.
    base_albedo = base_albedo + (0.75 - base_albedo) * (1.0 - np.exp(-p_dry / 10.0))
    climate = (s, base_albedo, water, c["relative_humidity"], p_dry, h2o_floor)
    first = solve_climate(*climate, normalise_dry_gases(dry))

    # Abiotic O2 false positives: a steam atmosphere photolyses, H escapes, O2 builds up and
    # oxidises CH4 away (likeliest around active M dwarfs).
    steam = rec("steam_atmosphere", (water > 0) & (
        first["surface_temperature_k"] > boiling_point_k(first["surface_pressure_bar"])))
    o2_loss = rec("o2_loss", steam & (u["o2_loss"] < np.where(star_type == 0, 0.6, 0.3)))
    outgassed = dict(dry)
    dry["o2"] = rec("dry_o2", np.where(o2_loss, _log_uniform(u["o2_loss_level"], -2, -0.5),
                                       dry["o2"]))
    dry["ch4"] = rec("dry_ch4", np.where(o2_loss, np.minimum(dry["ch4"], 1e-8), dry["ch4"]))
    # Planets whose gases changed are solved again (without interventions: the O2-loss ones).
    changed = o2_loss | (dry["o2"] != outgassed["o2"]) | (dry["ch4"] != outgassed["ch4"])
    solved = resolve_climate(first, changed, climate, normalise_dry_gases(dry))
    abiotic = _record_climate(rec, "abiotic", solved, climate, dry, water, radius)

    # Life where water is liquid, likelier the more temperate and wetter the planet.
    t = abiotic["surface_temperature_k"]
    chance = np.exp(-(((t - 300.0) / 60.0) ** 2)) * (0.7 + 0.3 * water)
    kind = 1 + np.searchsorted((1 / 3, 2 / 3), u["life_class"])
    kind = rec("life_emerged", np.where(rec.values["abiotic_habitable"] & (u["life"] < chance),
                                        kind, 0))
    # Methanogens and anoxygenic phototrophs make CH4 from CO2 and H2; oxygenic phototrophs
    # make O2 (and ozone), bury CO2 and oxidise H2, leaving a little CH4 in disequilibrium.
    oxygenic = kind == 3
    ch4_made = np.select([kind == 1, kind == 2], [_log_uniform(u["bio_gas"], -3.7, -2),
                                                  _log_uniform(u["bio_gas"], -4.5, -3)],
                         _log_uniform(u["bio_gas2"], -5.85, -4.7))
    bio = dict(dry, ch4=rec("living_ch4", np.where(kind > 0, np.maximum(dry["ch4"], ch4_made),
                                                   dry["ch4"])))
    bio["o2"] = rec("living_o2", np.where(oxygenic, _log_uniform(u["bio_gas"], -2.5, -0.5),
                                          dry["o2"]))
    bio["h2"] = rec("living_h2", np.where(kind > 0, dry["h2"] * np.where(oxygenic, 0.01, 0.1),
                                          dry["h2"]))
    bio["co2"] = rec("living_co2", np.where(kind > 0, dry["co2"] * np.where(oxygenic, 0.5, 0.7),
                                            dry["co2"]))
    # Lifeless planets keep the abiotic climate as solved (not as intervened on: the living
    # climate is a function of the living gases only), unless an intervention changed their gases.
    changed = (kind > 0) | np.any([bio[g] != dry[g] for g in dry], axis=0)
    solved = resolve_climate(solved, changed, climate, normalise_dry_gases(bio))
    living = _record_climate(rec, "living", solved, climate, bio, water, radius)
    # A biosphere that would push its own climate out of the liquid range cannot persist;
    # those planets keep the abiotic state, which had liquid water.
    kind = rec("biosphere", np.where(rec.values["living_habitable"], kind, 0))
    final = {k: np.where(kind > 0, living[k], abiotic[k]) for k in living}
    for name, key in (("surface_temperature_k", "surface_temperature_k"),
                      ("surface_pressure_bar", "surface_pressure_bar"),
                      ("x_o2", "x_o2"), ("x_ch4", "x_ch4")):
        final[key] = rec(name, final[key])
    c.update(final)
    c["ozone_column_du"] = ozone_column_du(final["x_o2"], final["surface_pressure_bar"])
    c["liquid_water"] = liquid_water_possible(final["surface_temperature_k"],
                                              final["surface_pressure_bar"], water)
    c["habitable"] = rec("habitable", _habitable(final, water, radius))
    c["biosphere"] = kind
    c["biosignature"] = rec("biosignature", biosignature_present(final["x_o2"], final["x_ch4"]))
    c["climate_regime"] = climate_regime(final["surface_temperature_k"])
    c["text_variant"] = np.floor(u["text"] * 2**20).astype(np.int64)
    return c, rec.table()


def _record_climate(rec: Recorder, prefix: str, state: dict, climate: tuple, dry: dict,
                    water: np.ndarray, radius: np.ndarray) -> dict:
    """Records one time step's climate variables (``{prefix}_temperature_k``, ...) and returns
    the state with any intervention on them applied: a clamped temperature re-derives the
    state at that temperature; a clamped pressure re-dilutes the gases; a clamped mixing ratio
    replaces that gas's."""
    t = rec(f"{prefix}_temperature_k", state["surface_temperature_k"])
    if rec.intervened(f"{prefix}_temperature_k"):
        state = dict(climate_state(t, *climate, normalise_dry_gases(dry)), surface_temperature_k=t)
    p = rec(f"{prefix}_pressure_bar", state["surface_pressure_bar"])
    if rec.intervened(f"{prefix}_pressure_bar"):
        p_dry, norm = climate[4], normalise_dry_gases(dry)
        state = dict(state, surface_pressure_bar=p, x_h2o=(p - p_dry) / p,
                     **{f"x_{g}": norm[g] * (p_dry / p) for g in norm})
    state = dict(state, x_o2=rec(f"{prefix}_x_o2", state["x_o2"]),
                 x_ch4=rec(f"{prefix}_x_ch4", state["x_ch4"]))
    rec(f"{prefix}_habitable", _habitable(state, water, radius))
    return state


def _habitable(state: dict, water_fraction: np.ndarray, radius_rearth: np.ndarray) -> np.ndarray:
    """Liquid surface water on a rocky (not gas-rich) planet under at most 100 bar."""
    p = state["surface_pressure_bar"]
    return (liquid_water_possible(state["surface_temperature_k"], p, water_fraction)
            & (np.asarray(radius_rearth) <= GASEOUS_RADIUS_REARTH) & (p <= 100.0))


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def generate_population(num_planets: int, seed: int = 0, do=None) -> PlanetPopulation:
    """``num_planets`` planets; planet i depends only on ``(seed, i)``. ``do``: interventions
    ``{variable: Intervention or value}`` on the causal graph's variables
    (``causal_graph.VARIABLE_NAMES``); every descendant is recomputed from the same draws."""
    cols, _ = _simulate_blocks(num_planets, seed, do)
    index = np.arange(num_planets, dtype=np.int64)
    names = np.array([f"ASTRO-{seed}-{i:06d} b" for i in range(num_planets)])
    return PlanetPopulation(planet_index=index, name=names, **cols)


def simulate_variables(num_planets: int, seed: int = 0, do=None) -> dict[str, np.ndarray]:
    """The causal graph's variables (``causal_graph.VARIABLE_NAMES``, in that order) of the
    population ``generate_population(num_planets, seed, do)``, one array per variable."""
    return _simulate_blocks(num_planets, seed, do)[1]


def _simulate_blocks(num_planets: int, seed: int, do) -> tuple[dict, dict]:
    num_planets = _check_int("num_planets", num_planets, minimum=1)
    seed = _check_int("seed", seed, minimum=0)
    # Whole blocks are simulated and then cut, so every planet sees identical array layouts.
    num_blocks = -(-num_planets // BLOCK_SIZE)
    do = {k: _pad_values(v, num_planets, num_blocks) for k, v in (do or {}).items()}
    cols, variables = _simulate(*_draw(seed, num_blocks), do)
    return ({k: v[:num_planets] for k, v in cols.items()},
            {k: v[:num_planets] for k, v in variables.items()})


def _pad_values(spec, num_planets: int, num_blocks: int):
    """An intervention with one value per planet, padded to whole blocks (the padding planets
    keep the first value; they are cut off)."""
    intervention = spec if isinstance(spec, Intervention) else Intervention("set", spec)
    value = np.asarray(intervention.value)
    if value.ndim == 0:
        return intervention
    if value.shape != (num_planets,):
        raise ValueError(f"an intervention's values must be one number or one per planet "
                         f"({num_planets}), got shape {value.shape}")
    padded = np.concatenate([value, np.repeat(value[:1], num_blocks * BLOCK_SIZE - num_planets)])
    return Intervention(intervention.op, padded)
