"""The built-in dataset: a deterministic, physically self-consistent synthetic planet population.

Each planet depends only on ``(seed, planet index)``: random draws come in fixed blocks of
``BLOCK_SIZE`` planets (see ``block_rng``) and the physics is elementwise, each planet's climate
iterated to its own convergence, so a small population is exactly the prefix of a larger one
(bitwise on one machine; transcendental functions may differ in the last bit across CPUs).
The chain: star -> orbit -> insolation -> atmosphere -> grey greenhouse climate with
water-vapour and ice-albedo feedbacks -> liquid water -> biosphere (which alters the
atmosphere, after which the climate is solved again) -> labels, a templated description and
a biochemical network (``astrojax.data.biochem``, which draws from its own random stream).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
from numpy.typing import ArrayLike

STAR_TYPES = ("M", "K", "G", "F")
BIOSPHERE_CLASSES = ("none", "methanogenic", "anoxygenic_photosynthesis",
                     "oxygenic_photosynthesis")
CLIMATE_REGIMES = ("snowball", "cold", "temperate", "hot", "runaway")
# Upper surface-temperature bound (K) of every regime but the last.
CLIMATE_REGIME_BOUNDS_K = (230.0, 273.15, 320.0, 500.0)
GASES = ("n2", "o2", "co2", "ch4", "h2o", "h2")
BLOCK_SIZE = 1024

SIGMA_SB = 5.670374419e-8  # W m^-2 K^-4
S_EARTH_WM2 = 1361.0
TEFF_SUN_K = 5772.0
FREEZING_K = 273.15
MIN_LIQUID_PRESSURE_BAR = 0.01  # a little above water's triple point (0.006 bar)
GASEOUS_RADIUS_REARTH = 1.6  # above the radius valley planets keep H2-rich envelopes
AIRLESS_PRESSURE_BAR = 1e-3
_LV_OVER_RV_K = 5209.0  # L_vap / R_vapour, fitted to 6.11 mbar at 273.15 K and 1 atm at 373.15 K
_OCEAN_VAPOUR_BAR = 400.0  # water inventory, as vapour pressure, of a fully ocean-covered planet

_STAR_TYPE_PROB = (0.45, 0.25, 0.18, 0.12)  # M most common; F kept frequent enough to learn
_STAR_TEFF_RANGE_K = ((2700.0, 3900.0), (3900.0, 5300.0), (5300.0, 6000.0), (6000.0, 7300.0))
# Main-sequence Teff -> mass, radius (after Pecaut & Mamajek 2013), interpolated in between.
_MS_TEFF_K = np.array([2700, 3000, 3300, 3550, 3850, 4440, 5040, 5400, 5772, 6000, 6550, 7300.0])
_MS_MASS_MSUN = np.array([0.09, 0.16, 0.27, 0.44, 0.57, 0.68, 0.82, 0.90, 1.0, 1.11, 1.33, 1.61])
_MS_RADIUS_RSUN = np.array([0.12, 0.19, 0.29, 0.45, 0.59, 0.70, 0.79, 0.87, 1.0, 1.12, 1.40, 1.70])
# Grey optical depth per bar: coefficients chosen so Earth (1 bar, 420 ppm CO2, 1.8 ppm CH4,
# 1% H2O) has tau = 0.85, i.e. 255 K -> 288 K, split roughly as H2O > CO2 >> CH4.
_TAU_CO2, _TAU_CH4, _TAU_H2O, _TAU_BASE = 0.174, 0.029, 0.1918, 0.08
_REF_CO2, _REF_CH4, _REF_H2O = 1e-4, 1e-6, 1e-3
_ORBIT_QUANTILES, _ORBIT_LOG10_S = (0.0, 0.15, 0.85, 1.0), (-1.5, -0.6, 0.3, 1.5)
_CLIMATE_MAX_ITERATIONS, _CLIMATE_TOLERANCE_K = 300, 1e-9


# ---------------------------------------------------------------- physics (pure, vectorised)
def stellar_luminosity(radius_rsun: ArrayLike, teff_k: ArrayLike) -> np.ndarray:
    """Luminosity in L_sun from radius (R_sun) and effective temperature (K), Stefan-Boltzmann."""
    return np.asarray(radius_rsun) ** 2 * (np.asarray(teff_k) / TEFF_SUN_K) ** 4


def insolation(luminosity_lsun: ArrayLike, semi_major_axis_au: ArrayLike) -> np.ndarray:
    """Incident stellar flux in units of Earth's (S_earth = 1361 W/m^2), inverse square law."""
    return np.asarray(luminosity_lsun) / np.asarray(semi_major_axis_au) ** 2


def orbital_period_days(semi_major_axis_au: ArrayLike, star_mass_msun: ArrayLike) -> np.ndarray:
    """Orbital period in days from Kepler's third law (planet mass neglected)."""
    return 365.25 * np.sqrt(np.asarray(semi_major_axis_au) ** 3 / np.asarray(star_mass_msun))


def planet_mass_from_radius(radius_rearth: ArrayLike) -> np.ndarray:
    """Median mass (M_earth) for a radius (R_earth): rocky M = R^3.7, gas-rich M ~ R^1.7."""
    r = np.asarray(radius_rearth)
    rocky = r**3.7
    gaseous = GASEOUS_RADIUS_REARTH**3.7 * (r / GASEOUS_RADIUS_REARTH) ** 1.7
    return np.where(r <= GASEOUS_RADIUS_REARTH, rocky, gaseous)


def surface_gravity(mass_mearth: ArrayLike, radius_rearth: ArrayLike) -> np.ndarray:
    """Surface gravity in m/s^2 from mass (M_earth) and radius (R_earth)."""
    return 9.81 * np.asarray(mass_mearth) / np.asarray(radius_rearth) ** 2


def equilibrium_temperature(insolation_searth: ArrayLike, bond_albedo: ArrayLike) -> np.ndarray:
    """Planetary equilibrium temperature in K: T = (S (1 - A) / (4 sigma))^(1/4)."""
    flux = np.asarray(insolation_searth) * S_EARTH_WM2 * (1.0 - np.asarray(bond_albedo))
    return (flux / (4.0 * SIGMA_SB)) ** 0.25


def greenhouse_optical_depth(pressure_bar: ArrayLike, x_co2: ArrayLike, x_ch4: ArrayLike,
                             x_h2o: ArrayLike) -> np.ndarray:
    """Grey infrared optical depth (dimensionless) of an atmosphere.

    Each gas adds a logarithmic (band-saturating) term in its mixing ratio; the sum scales with
    surface pressure (more absorbers and pressure broadening), plus a pressure-induced baseline.
    """
    per_bar = (_TAU_CO2 * np.log1p(np.asarray(x_co2) / _REF_CO2)
               + _TAU_CH4 * np.log1p(np.asarray(x_ch4) / _REF_CH4)
               + _TAU_H2O * np.log1p(np.asarray(x_h2o) / _REF_H2O) + _TAU_BASE)
    return np.asarray(pressure_bar) * per_bar


def surface_temperature(t_eq_k: ArrayLike, optical_depth: ArrayLike) -> np.ndarray:
    """Surface temperature in K of a grey atmosphere: T_s = T_eq (1 + 0.75 tau)^(1/4)."""
    return np.asarray(t_eq_k) * (1.0 + 0.75 * np.asarray(optical_depth)) ** 0.25


def saturation_vapour_pressure_bar(temperature_k: ArrayLike) -> np.ndarray:
    """Water's saturation vapour pressure in bar (Clausius-Clapeyron, 6.11 mbar at 273.15 K)."""
    return 6.11e-3 * np.exp(_LV_OVER_RV_K * (1.0 / FREEZING_K - 1.0 / np.asarray(temperature_k)))


def boiling_point_k(pressure_bar: ArrayLike) -> np.ndarray:
    """Water's boiling point in K at a pressure in bar, capped at the critical point (647 K):
    the inverse of saturation_vapour_pressure_bar."""
    p = np.maximum(np.asarray(pressure_bar), 1e-12)
    inv_t = 1.0 / FREEZING_K - np.log(p / 6.11e-3) / _LV_OVER_RV_K
    return np.where(inv_t > 1.0 / 647.0, 1.0 / np.maximum(inv_t, 1.0 / 647.0), 647.0)


def liquid_water_possible(surface_temperature_k: ArrayLike, pressure_bar: ArrayLike,
                          water_fraction: ArrayLike) -> np.ndarray:
    """True where surface water exists, the pressure can hold a liquid and T is between
    freezing and the boiling point at that pressure."""
    t, p = np.asarray(surface_temperature_k), np.asarray(pressure_bar)
    return ((np.asarray(water_fraction) > 0) & (p >= MIN_LIQUID_PRESSURE_BAR)
            & (t > FREEZING_K) & (t < boiling_point_k(p)))


def climate_regime(surface_temperature_k: ArrayLike) -> np.ndarray:
    """Index into CLIMATE_REGIMES from surface temperature (K) and CLIMATE_REGIME_BOUNDS_K."""
    return np.searchsorted(CLIMATE_REGIME_BOUNDS_K, surface_temperature_k, side="right")


def biosignature_present(x_o2: ArrayLike, x_ch4: ArrayLike) -> np.ndarray:
    """True for O2 > 1% coexisting with CH4 > 1 ppm (disequilibrium) or CH4 > 100 ppm,
    far above what the generator's abiotic sources make (<= 30 ppm)."""
    o2, ch4 = np.asarray(x_o2), np.asarray(x_ch4)
    return ((o2 > 0.01) & (ch4 > 1e-6)) | (ch4 > 1e-4)


def ozone_column_du(x_o2: ArrayLike, pressure_bar: ArrayLike) -> np.ndarray:
    """Ozone column proxy in Dobson units: ~300 DU for Earth, ~sqrt(O2), thinned below 1 bar."""
    return 300.0 * np.sqrt(np.asarray(x_o2) / 0.21) * np.minimum(np.asarray(pressure_bar), 1.0)


# ---------------------------------------------------------------- climate solver
def _climate_state(t_guess, s, base_albedo, water_fraction, rel_humidity, p_dry, h2o_floor, dry):
    """Everything the climate implies if the surface were at ``t_guess``; its ``t_surf`` is the
    next iterate. Storing one state keeps every column exactly consistent with every other."""
    # Ice-albedo feedback: oceans freeze over a 25 K range below 273 K, raising albedo to 0.6.
    ice = water_fraction * np.clip((FREEZING_K - t_guess) / 25.0, 0.0, 1.0)
    albedo = base_albedo + np.maximum(0.6 - base_albedo, 0.0) * ice
    vapour = np.minimum(rel_humidity * saturation_vapour_pressure_bar(t_guess),
                        _OCEAN_VAPOUR_BAR * water_fraction)
    vapour = np.maximum(vapour, h2o_floor * p_dry / (1.0 - h2o_floor))
    pressure = p_dry + vapour
    x = {g: dry[g] * (p_dry / pressure) for g in dry}
    x["h2o"] = vapour / pressure
    tau = greenhouse_optical_depth(pressure, x["co2"], x["ch4"], x["h2o"])
    t_eq = equilibrium_temperature(s, albedo)
    return {"bond_albedo": albedo, "equilibrium_temperature_k": t_eq,
            "surface_pressure_bar": pressure, "greenhouse_tau": tau,
            "surface_temperature_k": surface_temperature(t_eq, tau),
            **{f"x_{g}": x[g] for g in GASES}}


def _solve_climate(s, base_albedo, water_fraction, rel_humidity, p_dry, h2o_floor, dry):
    """Fixed-point iteration of the climate; both feedbacks raise T with T, so it is monotone.

    Each planet iterates until its own step is below _CLIMATE_TOLERANCE_K (or the cap), so no
    planet depends on its neighbours' convergence.
    """
    args = (s, base_albedo, water_fraction, rel_humidity, p_dry, h2o_floor)
    # A temperate start picks the warm branch where ice makes the climate bistable and the
    # non-runaway branch where water vapour does (the planet's history is not modelled).
    t = np.full(np.shape(s), 300.0)
    active = np.arange(t.size)
    for _ in range(_CLIMATE_MAX_ITERATIONS):
        sub = [a[active] for a in args] + [{g: v[active] for g, v in dry.items()}]
        t_next = _climate_state(t[active], *sub)["surface_temperature_k"]
        moving = np.abs(t_next - t[active]) > _CLIMATE_TOLERANCE_K
        t[active] = t_next
        active = active[moving]
        if active.size == 0:
            break
    return _climate_state(t, *args, dry)


def _resolve(state: dict, where: np.ndarray, climate: tuple, dry: dict) -> dict:
    """``state`` with the climate of the planets in ``where`` solved again for ``dry``."""
    idx = np.flatnonzero(where)
    sub = _solve_climate(*(a[idx] for a in climate), {g: v[idx] for g, v in dry.items()})
    out = {k: v.copy() for k, v in state.items()}
    for k in out:
        out[k][idx] = sub[k]
    return out


def _normalise(dry: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """N2 is the background gas: it fills what the others leave; then scale to sum 1."""
    others = sum(dry[g] for g in dry if g != "n2")
    out = dict(dry, n2=np.maximum(1.0 - others, 0.0))
    total = sum(out.values())
    return {g: v / total for g, v in out.items()}


# ---------------------------------------------------------------- random draws
_UNIFORMS = ("star_type", "teff", "orbit", "ecc", "radius", "airless", "has_water", "water",
             "humidity", "albedo", "co2", "ch4", "h2", "o2", "h2o", "envelope_p", "o2_loss",
             "o2_loss_level", "life", "life_class", "bio_gas", "bio_gas2", "text")
_NORMALS = ("star_radius", "star_mass", "planet_mass", "pressure")


def block_rng(seed: int, block: int, stream: int) -> np.random.Generator:
    """The generator of one block of planets. Streams 0-1 are this module's; later modalities
    (datacube, spectrum, network) take their own stream ids so they never shift these draws."""
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
def _simulate(u: dict, z: dict) -> dict[str, np.ndarray]:
    """All physical columns from the uniform (``u``) and standard normal (``z``) draws."""
    c: dict[str, np.ndarray] = {}
    star_type = np.minimum(np.searchsorted(np.cumsum(_STAR_TYPE_PROB), u["star_type"]), 3)
    low, high = np.array(_STAR_TEFF_RANGE_K)[star_type].T
    teff = low + (high - low) * u["teff"]
    c["star_type"], c["star_teff_k"] = star_type, teff
    scatter_r, scatter_m = np.exp(0.04 * z["star_radius"]), np.exp(0.04 * z["star_mass"])
    c["star_radius_rsun"] = np.interp(teff, _MS_TEFF_K, _MS_RADIUS_RSUN) * scatter_r
    c["star_mass_msun"] = np.interp(teff, _MS_TEFF_K, _MS_MASS_MSUN) * scatter_m
    lum = c["star_luminosity_lsun"] = stellar_luminosity(c["star_radius_rsun"], teff)
    # Orbits are drawn in insolation so every star gets the same spread (0.03-30 S_earth):
    # log-uniform pieces, 70% of the planets in 0.25-2 S_earth around the habitable zone.
    log_s = np.interp(u["orbit"], _ORBIT_QUANTILES, _ORBIT_LOG10_S)
    c["semi_major_axis_au"] = np.sqrt(lum / 10.0**log_s)
    c["orbital_period_days"] = orbital_period_days(c["semi_major_axis_au"], c["star_mass_msun"])
    c["eccentricity"] = np.minimum(0.05 * np.sqrt(-2.0 * np.log1p(-u["ecc"])), 0.5)  # Rayleigh
    radius = c["planet_radius_rearth"] = _log_uniform(u["radius"], np.log10(0.5), np.log10(2.0))
    c["planet_mass_mearth"] = planet_mass_from_radius(radius) * np.exp(0.15 * z["planet_mass"])
    c["surface_gravity_ms2"] = surface_gravity(c["planet_mass_mearth"], radius)
    s = c["insolation_searth"] = insolation(lum, c["semi_major_axis_au"])

    gaseous = radius > GASEOUS_RADIUS_REARTH
    # Small, strongly irradiated planets lose their atmospheres (energy-limited escape ~ S/g^2).
    escape = s / (c["surface_gravity_ms2"] / 9.81) ** 2
    airless = ~gaseous & (u["airless"] < 0.05 + 0.55 * escape / (escape + 8.0))
    rocky_air = ~gaseous & ~airless
    p_dry = np.where(gaseous, _log_uniform(u["envelope_p"], 1.0, 2.5),
                     np.where(airless, _log_uniform(u["envelope_p"], -9.0, -4.0),
                              np.clip(10.0 ** (0.7 * z["pressure"]), 2e-3, 300.0)))
    water = np.where(rocky_air & (u["has_water"] < 0.85), 0.05 + 0.9 * u["water"], 0.0)
    c["water_fraction"] = water
    c["relative_humidity"] = np.where(water > 0, 0.3 + 0.6 * u["humidity"], 0.0)
    base_albedo = np.where(airless, 0.05 + 0.25 * u["albedo"], 0.1 + 0.45 * u["albedo"])
    h2o_floor = np.where(gaseous, _log_uniform(u["h2o"], -3, -2), _log_uniform(u["h2o"], -6, -4))
    dry = {"o2": _log_uniform(u["o2"], -10, -6), "ch4": _log_uniform(u["ch4"], -9, -4.5),
           "co2": np.where(gaseous, _log_uniform(u["co2"], -6, -2), _log_uniform(u["co2"], -5, 0)),
           "h2": np.where(gaseous, 0.75 + 0.2 * u["h2"], _log_uniform(u["h2"], -7, -3))}
    # Carbonate-silicate cycle: weathering on wet planets draws CO2 down where it is warm, so
    # CO2 builds up (adding its own pressure) as insolation falls, widening the habitable zone.
    p_co2 = np.minimum(_log_uniform(u["co2"], -4.5, -2.5) * s**-7.0, 5.0)
    p_dry = np.where(water > 0, p_dry + p_co2, p_dry)
    dry["co2"] = np.where(water > 0, p_co2 / p_dry, dry["co2"])
    # Rayleigh scattering by a thick atmosphere brightens the planet (why CO2 cannot warm
    # without limit); it uses the dry pressure so the climate feedbacks stay monotone.
    base_albedo = base_albedo + (0.75 - base_albedo) * (1.0 - np.exp(-p_dry / 10.0))
    climate = (s, base_albedo, water, c["relative_humidity"], p_dry, h2o_floor)
    first = _solve_climate(*climate, _normalise(dry))

    # Abiotic O2 false positives: a steam atmosphere photolyses, H escapes, O2 builds up and
    # oxidises CH4 away (likeliest around active M dwarfs).
    steam = (water > 0) & (first["surface_temperature_k"]
                           > boiling_point_k(first["surface_pressure_bar"]))
    o2_loss = steam & (u["o2_loss"] < np.where(star_type == 0, 0.6, 0.3))
    dry["o2"] = np.where(o2_loss, _log_uniform(u["o2_loss_level"], -2, -0.5), dry["o2"])
    dry["ch4"] = np.where(o2_loss, np.minimum(dry["ch4"], 1e-8), dry["ch4"])
    abiotic = _resolve(first, o2_loss, climate, _normalise(dry))
    habitable = _habitable(abiotic, water, radius)

    # Life where water is liquid, likelier the more temperate and wetter the planet.
    t = abiotic["surface_temperature_k"]
    chance = np.exp(-(((t - 300.0) / 60.0) ** 2)) * (0.7 + 0.3 * water)
    kind = 1 + np.searchsorted((1 / 3, 2 / 3), u["life_class"])
    kind = np.where(habitable & (u["life"] < chance), kind, 0)
    # Methanogens and anoxygenic phototrophs make CH4 from CO2 and H2; oxygenic phototrophs
    # make O2 (and ozone), bury CO2 and oxidise H2, leaving a little CH4 in disequilibrium.
    oxygenic = kind == 3
    ch4_made = np.select([kind == 1, kind == 2], [_log_uniform(u["bio_gas"], -3.7, -2),
                                                  _log_uniform(u["bio_gas"], -4.5, -3)],
                         _log_uniform(u["bio_gas2"], -5.85, -4.7))
    bio = dict(dry, ch4=np.where(kind > 0, np.maximum(dry["ch4"], ch4_made), dry["ch4"]))
    bio["o2"] = np.where(oxygenic, _log_uniform(u["bio_gas"], -2.5, -0.5), dry["o2"])
    bio["h2"] = np.where(kind > 0, dry["h2"] * np.where(oxygenic, 0.01, 0.1), dry["h2"])
    bio["co2"] = np.where(kind > 0, dry["co2"] * np.where(oxygenic, 0.5, 0.7), dry["co2"])
    living = _resolve(abiotic, kind > 0, climate, _normalise(bio))
    # A biosphere that would push its own climate out of the liquid range cannot persist;
    # those planets keep the abiotic state, which had liquid water.
    kind = np.where(_habitable(living, water, radius), kind, 0)
    final = {k: np.where(kind > 0, living[k], abiotic[k]) for k in living}
    c.update(final)
    c["ozone_column_du"] = ozone_column_du(final["x_o2"], final["surface_pressure_bar"])
    c["liquid_water"] = liquid_water_possible(final["surface_temperature_k"],
                                              final["surface_pressure_bar"], water)
    c["habitable"] = _habitable(final, water, radius)
    c["biosphere"] = kind
    c["biosignature"] = biosignature_present(final["x_o2"], final["x_ch4"])
    c["climate_regime"] = climate_regime(final["surface_temperature_k"])
    c["text_variant"] = np.floor(u["text"] * 2**20).astype(np.int64)
    return c


def _habitable(state: dict, water_fraction: np.ndarray, radius_rearth: np.ndarray) -> np.ndarray:
    """Liquid surface water on a rocky (not gas-rich) planet under at most 100 bar."""
    p = state["surface_pressure_bar"]
    return (liquid_water_possible(state["surface_temperature_k"], p, water_fraction)
            & (np.asarray(radius_rearth) <= GASEOUS_RADIUS_REARTH) & (p <= 100.0))


# ---------------------------------------------------------------- text
_GAS_LABELS = {"n2": "N2", "o2": "O2", "co2": "CO2", "ch4": "CH4", "h2o": "H2O", "h2": "H2"}
_STAR_ARTICLE = {"M": "an", "K": "a", "G": "a", "F": "an"}
_BIOSPHERE_TEXT = ("no biosphere", "a methanogenic biosphere",
                   "an anoxygenic photosynthetic biosphere", "an oxygenic photosynthetic biosphere")


def _num(x: float) -> str:
    """About three significant figures, never in exponent notation."""
    for limit, digits in ((100, 0), (10, 1), (1, 2), (0.01, 3)):
        if x >= limit:
            return f"{x:.{digits}f}"
    return f"{x:.4f}"


def _amount(x: float) -> str:
    """A mixing ratio as a percentage, or in ppm below 0.1%."""
    if x >= 1e-3:
        return f"{100 * x:.1f}%"
    return f"{1e6 * x:.0f} ppm" if x >= 0.5e-6 else "under 1 ppm"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _atmosphere_text(r: dict) -> str:
    if r["surface_pressure_bar"] < AIRLESS_PRESSURE_BAR:
        return "it has no real atmosphere (under 0.001 bar) and so no greenhouse effect"
    ranked = sorted(GASES, key=lambda g: -r[f"x_{g}"])
    main = [f"{_amount(r[f'x_{g}'])} {_GAS_LABELS[g]}" for g in ranked[:3]]
    extra = [f"{_GAS_LABELS[g]} at {_amount(r[f'x_{g}'])}" for g in ("co2", "ch4")
             if g not in ranked[:3]]
    text = f"its {_num(r['surface_pressure_bar'])} bar atmosphere is {', '.join(main[:2])}"
    text += f" and {main[2]}"
    return text + (f", with {' and '.join(extra)}" if extra else "")


def _habitability_text(r: dict, phrasing: int) -> str:
    if r["habitable"]:
        return ("liquid water is stable on its surface, so it is habitable",
                "it is habitable, with liquid water on its surface")[phrasing]
    t, p = r["surface_temperature_k"], r["surface_pressure_bar"]
    if r["planet_radius_rearth"] > GASEOUS_RADIUS_REARTH:
        why = f"at {r['planet_radius_rearth']:.2f} Earth radii it is a gas-rich mini-Neptune"
    elif p < MIN_LIQUID_PRESSURE_BAR:
        why = "its atmosphere is too thin to hold liquid water"
    elif r["water_fraction"] == 0:
        why = "its surface is dry"
    elif t <= FREEZING_K:
        why = "its surface is below freezing"
    elif t >= boiling_point_k(p):
        why = "its surface is above the boiling point of water"
    else:
        why = "its surface pressure is crushing"
    return ("it is not habitable: ", "it is uninhabitable because ")[phrasing] + why


def _life_text(r: dict, phrasing: int) -> str:
    life = _BIOSPHERE_TEXT[r["biosphere"]]
    if r["biosignature"]:
        kind = "O2 with CH4" if r["x_o2"] > 0.01 and r["x_ch4"] > 1e-6 else "abundant CH4"
        sign = f"a biosignature ({kind}) is detectable"
    else:
        sign = "no biosignature is detectable"
    return (f"It hosts {life} and {sign}.", f"Life: {life}; {sign}.")[phrasing]


def describe_planet(record: dict, variant: int) -> str:
    """Plain-ASCII English description of one planet record; ``variant`` (any int) picks the
    template and phrasing. Every number stated is the record's own, rounded."""
    r, v = record, int(variant)
    star = STAR_TYPES[r["star_type"]]
    ts, teq = f"{r['surface_temperature_k']:.0f} K", f"{r['equilibrium_temperature_k']:.0f} K"
    a, period = f"{_num(r['semi_major_axis_au'])} AU", f"{_num(r['orbital_period_days'])} days"
    s, albedo = _num(r["insolation_searth"]), f"{r['bond_albedo']:.2f}"
    regime, teff = CLIMATE_REGIMES[r["climate_regime"]], f"{r['star_teff_k']:.0f} K"
    atmo = _atmosphere_text(r)
    hab, life = _habitability_text(r, (v >> 2) & 1), _life_text(r, (v >> 3) & 1)
    template = v % 4
    if template == 0:
        text = (f"{r['name']} orbits {_STAR_ARTICLE[star]} {star}-type star ({teff}) at {a}, "
                f"once every {period}. It receives {s} times Earth's insolation; with a Bond "
                f"albedo of {albedo} its equilibrium temperature is {teq}. {_cap(atmo)}. "
                f"The surface is at {ts}, a {regime} climate, and {hab}. {life}")
    elif template == 1:
        text = (f"Planet {r['name']}: a {r['planet_radius_rearth']:.2f} Earth-radius world "
                f"around a {teff} {star} star, {a} out, period {period}, insolation {s} "
                f"S_earth. Equilibrium temperature {teq} (albedo {albedo}); {atmo}. The surface "
                f"temperature is {ts}, so its climate is {regime}. {_cap(hab)}. {life}")
    elif template == 2:
        text = (f"Circling {_STAR_ARTICLE[star]} {star} dwarf of {teff} at {a} every {period}, "
                f"{r['name']} gets {s} times the starlight Earth does, for an equilibrium "
                f"temperature of {teq} (albedo {albedo}); {atmo}. It actually averages {ts} at the "
                f"surface ({regime} regime). {_cap(hab)}. {life}")
    else:
        text = (f"{r['name']}. Star: {star}-type, {teff}. Orbit: {a}, {period}. Insolation: "
                f"{s} x Earth. Bond albedo: {albedo}. Equilibrium temperature: {teq}. "
                f"Atmosphere: {atmo}. Surface temperature: {ts}. Climate: {regime}. "
                f"Habitability: {_habitability_text(r, 1)}. {life}")
    return text


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

    def descriptions(self) -> list[str]:
        """The templated English text of every planet, in order."""
        return [describe_planet(r, r["text_variant"]) for r in self.records()]

    def networks(self, seed: int) -> list[MetabolicNetwork]:  # noqa: F821 (imported below)
        """Every planet's biochemical network, in order (see ``astrojax.data.biochem``)."""
        from astrojax.data.biochem import generate_networks  # biochem imports this module

        return generate_networks(self, seed)

    def datacubes(self, seed: int, grid=None, indices=None) -> np.ndarray:
        """Climate cubes ``[n, variable, time, level, lat, lon]`` of the planets at ``indices``
        (default: all) on ``grid`` (default ``CubeGrid()``; see ``astrojax.data.climate``)."""
        from astrojax.data.climate import CubeGrid, planet_cubes  # climate imports this module

        return planet_cubes(self, CubeGrid() if grid is None else grid, seed, indices)


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def generate_population(num_planets: int, seed: int = 0) -> PlanetPopulation:
    """``num_planets`` planets; planet i depends only on ``(seed, i)``."""
    num_planets = _check_int("num_planets", num_planets, minimum=1)
    seed = _check_int("seed", seed, minimum=0)
    # Whole blocks are simulated and then cut, so every planet sees identical array layouts.
    num_blocks = -(-num_planets // BLOCK_SIZE)
    cols = _simulate(*_draw(seed, num_blocks))
    cols = {k: v[:num_planets] for k, v in cols.items()}
    index = np.arange(num_planets, dtype=np.int64)
    names = np.array([f"ASTRO-{seed}-{i:06d} b" for i in range(num_planets)])
    return PlanetPopulation(planet_index=index, name=names, **cols)
