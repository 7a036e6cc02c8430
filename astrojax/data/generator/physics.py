"""The built-in population's physics: closed-form, vectorised and pure (numpy).

Stellar luminosity, orbits, insolation, equilibrium temperature, a grey greenhouse with
water-vapour and ice-albedo feedbacks solved to each planet's own fixed point, liquid water,
biosignatures. :mod:`astrojax.data.generator.sampling` draws planets and runs this physics;
the catalogue (``astrojax.data.archives.catalog``) uses it to derive what archives leave out.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

STAR_TYPES = ("M", "K", "G", "F")
BIOSPHERE_CLASSES = ("none", "methanogenic", "anoxygenic_photosynthesis",
                     "oxygenic_photosynthesis")
CLIMATE_REGIMES = ("snowball", "cold", "temperate", "hot", "runaway")
# Upper surface-temperature bound (K) of every regime but the last.
CLIMATE_REGIME_BOUNDS_K = (230.0, 273.15, 320.0, 500.0)
GASES = ("n2", "o2", "co2", "ch4", "h2o", "h2")

SIGMA_SB = 5.670374419e-8  # W m^-2 K^-4
S_EARTH_WM2 = 1361.0
TEFF_SUN_K = 5772.0
FREEZING_K = 273.15
MIN_LIQUID_PRESSURE_BAR = 0.01  # a little above water's triple point (0.006 bar)
GASEOUS_RADIUS_REARTH = 1.6  # above the radius valley planets keep H2-rich envelopes
AIRLESS_PRESSURE_BAR = 1e-3
_LV_OVER_RV_K = 5209.0  # L_vap / R_vapour, fitted to 6.11 mbar at 273.15 K and 1 atm at 373.15 K
_OCEAN_VAPOUR_BAR = 400.0  # water inventory, as vapour pressure, of a fully ocean-covered planet

# Grey optical depth per bar: coefficients chosen so Earth (1 bar, 420 ppm CO2, 1.8 ppm CH4,
# 1% H2O) has tau = 0.85, i.e. 255 K -> 288 K, split roughly as H2O > CO2 >> CH4.
_TAU_CO2, _TAU_CH4, _TAU_H2O, _TAU_BASE = 0.174, 0.029, 0.1918, 0.08
_REF_CO2, _REF_CH4, _REF_H2O = 1e-4, 1e-6, 1e-3
_CLIMATE_MAX_ITERATIONS, _CLIMATE_TOLERANCE_K = 300, 1e-9
# What archives assume for a planet's equilibrium temperature when its albedo is unknown (the
# catalogue and the observed synthetic catalogue derive T_eq from insolation with it).
ASSUMED_BOND_ALBEDO = 0.3
STAR_TYPE_UPPER_TEFF_K = (3900.0, 5300.0, 6000.0, 7500.0)  # upper bounds of M, K, G, F



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


def star_type_from_teff(teff_k: ArrayLike) -> np.ndarray:
    """Index into STAR_TYPES (M, K, G, F) from Teff; -1 outside 2000-7500 K or unknown (NaN)."""
    teff = np.asarray(teff_k, dtype=np.float64)
    index = np.searchsorted(STAR_TYPE_UPPER_TEFF_K, np.nan_to_num(teff, nan=-1.0), side="right")
    return np.where(np.isfinite(teff) & (teff >= 2000.0) & (index < 4), index, -1)


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
def climate_state(t_guess, s, base_albedo, water_fraction, rel_humidity, p_dry, h2o_floor, dry):
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


def solve_climate(s, base_albedo, water_fraction, rel_humidity, p_dry, h2o_floor, dry):
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
        t_next = climate_state(t[active], *sub)["surface_temperature_k"]
        moving = np.abs(t_next - t[active]) > _CLIMATE_TOLERANCE_K
        t[active] = t_next
        active = active[moving]
        if active.size == 0:
            break
    return climate_state(t, *args, dry)


def resolve_climate(state: dict, where: np.ndarray, climate: tuple, dry: dict) -> dict:
    """``state`` with the climate of the planets in ``where`` solved again for ``dry``."""
    idx = np.flatnonzero(where)
    sub = solve_climate(*(a[idx] for a in climate), {g: v[idx] for g, v in dry.items()})
    out = {k: v.copy() for k, v in state.items()}
    for k in out:
        out[k][idx] = sub[k]
    return out


def normalise_dry_gases(dry: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """N2 is the background gas: it fills what the others leave; then scale to sum 1."""
    others = sum(dry[g] for g in dry if g != "n2")
    out = dict(dry, n2=np.maximum(1.0 - others, 0.0))
    total = sum(out.values())
    return {g: v / total for g, v in out.items()}
