"""Climate datacubes: a (variable, time, level, lat, lon) cube per planet from an energy balance.

The surface is a grey, diffusive energy-balance model solved exactly for its periodic orbit
(Fourier in time and longitude, tridiagonal in latitude): seasonal and latitudinal insolation
(obliquity, season phase, eccentricity; tidally locked planets have a fixed substellar point at
longitude 180 instead of seasons, fast rotators are diurnal and zonal means), heat capacity of
air, ocean and ground, grey emission sigma T^4 / (1 + 0.75 tau), heat transport as diffusion
growing with pressure and slower rotation (Williams & Kasting 1997) and a local ice-albedo
feedback; the field is then shifted so its cos(lat)-weighted mean is the population's
``surface_temperature_k``. Aloft: the gas mixture's adiabat, moist-reduced where humid, floored
at the skin temperature; relative humidity after Manabe & Wetherald (1967), drier in sinking
air; Sundqvist clouds; winds diagnosed from thermal wind and Hadley/day-night overturning.
Simplified: no dynamics or cloud radiation, transport and winds are parameterised, and the
population's global climate is taken as given. Planet ``i``'s cube depends only on
``(seed, i)`` and its own columns (random stream ``STREAM``), so cubes are prefix-stable.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from astrojax.data.generator.physics import (
    AIRLESS_PRESSURE_BAR,
    FREEZING_K,
    GASES,
    SIGMA_SB,
    boiling_point_k,
    saturation_vapour_pressure_bar,
)
from astrojax.data.generator.population import PlanetPopulation

STREAM = 3  # this modality's random stream: sampling.py uses 0-1, biochem.py 2
CUBE_VARIABLES = ("temperature", "relative_humidity", "cloud_fraction", "u_wind", "v_wind")
VARIABLE_UNITS = {"temperature": "K", "relative_humidity": "1", "cloud_fraction": "1",
                  "u_wind": "m s-1", "v_wind": "m s-1"}
COORDINATE_UNITS = {"time": "1", "level": "1", "lat": "degrees_north", "lon": "degrees_east"}
LABELS = ("surface_temperature_k", "equilibrium_temperature_k", "log10_surface_pressure_bar",
          "relative_humidity", "tidally_locked")
# The tidal locking time grows as a^6 / M_star^2 (Gladman et al. 1996), which by Kepler's law
# is one orbital period whatever the star: in this population these are mostly M-dwarf planets.
LOCK_PERIOD_DAYS = 30.0
CHUNK_PLANETS = 64

_R_GAS, _L_VAP = 8.314462618, 2.5e6  # J mol^-1 K^-1, J kg^-1
_MOLAR_MASS = {"n2": 0.028, "o2": 0.032, "co2": 0.044, "ch4": 0.016, "h2o": 0.018, "h2": 0.002}
_CP_OVER_R = {"n2": 3.5, "o2": 3.5, "co2": 4.5, "ch4": 4.3, "h2o": 4.0, "h2": 3.5}
_OMEGA_EARTH, _MU_EARTH, _R_EARTH_M = 7.292e-5, 0.029, 6.371e6
_D_EARTH = 0.55  # W m^-2 K^-1, North et al. (1981) diffusion on the unit sphere
# Eddy transport grows as 1 / Omega^2 (Williams & Kasting 1997) until, in slow rotators,
# the overturning circulation limits it.
_ROTATION_FACTOR = (0.1, 4.0)
_DELTA_MAX = 100.0  # transport / radiative damping beyond which a planet is isothermal anyway
_C_MIXED_LAYER, _C_GROUND = 8.4e7, 2e6  # J m^-2 K^-1: 20 m of water, a metre of rock
_ICE_ALBEDO, _ICE_RAMP_K, _GLOBAL_ICE_RAMP_K = 0.6, 10.0, 25.0  # the last as in physics.py
_ICE_ITERATIONS = 4
# Time samples per orbit the model is solved on (at least, an odd multiple of time_steps).
_MIN_INTERNAL_STEPS, _MIN_INTERNAL_STEPS_LOCKED = 24, 8
_FLOOR_FRACTION = 0.3  # night/polar surfaces stay above this fraction of T_s (thermal inertia)
# Draws per planet from stream 3: obliquity, season phase, rotation period, transport scatter.
_NUM_DRAWS, _OBLIQUITY_MAX_DEG, _ROTATION_DAYS, _TRANSPORT_SCATTER = 4, 40.0, (0.3, 3.0), 0.5
_RH_CRITICAL, _CLOUD_MELT_K = 0.5, 20.0  # Sundqvist threshold; clouds fade above boiling
_LAPLACIAN_SCALE = 50.0  # K rad^-2 of surface-temperature curvature for full ascent/descent
_K_OVERTURNING, _U_MAX, _FERREL = 0.3, 150.0, 0.3  # m s^-1 per K rad^-1, cap, Ferrel strength
# Held & Hou's width is too narrow for fast rotators, whose cells stay near 15-20 degrees.
_HADLEY_WIDTH = (np.radians(15.0), np.pi / 2)
_ITCZ_SHARPNESS_K = 2.0  # the ITCZ is a soft argmax of the zonal-mean surface temperature


@dataclasses.dataclass(frozen=True)
class CubeGrid:
    """The sizes of a cube's time (over one orbit), level (sigma), lat and lon axes."""

    time_steps: int = 8
    levels: int = 4
    lat: int = 16
    lon: int = 32

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"CubeGrid.{field.name} must be a positive integer, "
                                 f"got {value!r}")

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self.time_steps, self.levels, self.lat, self.lon


def grid_coordinates(grid: CubeGrid) -> dict[str, np.ndarray]:
    """Coordinates (units in COORDINATE_UNITS): time, lat and lon at cell centres; level is
    sigma = p / p_surface, 1 at level 0 (the surface) and 1 - k / levels at level k."""
    return {"time": (np.arange(grid.time_steps) + 0.5) / grid.time_steps,
            "level": 1.0 - np.arange(grid.levels) / grid.levels,
            "lat": -90.0 + (np.arange(grid.lat) + 0.5) * 180.0 / grid.lat,
            "lon": (np.arange(grid.lon) + 0.5) * 360.0 / grid.lon}


def tidally_locked(population: PlanetPopulation) -> np.ndarray:
    """True for planets whose orbit is shorter than LOCK_PERIOD_DAYS."""
    return np.asarray(population.orbital_period_days) < LOCK_PERIOD_DAYS


def cube_labels(population: PlanetPopulation, indices=None) -> tuple[tuple[str, ...], np.ndarray]:
    """LABELS and their ``[n, len(LABELS)]`` float32 values: what a model can read off a cube.

    Several are readable with no learning at all, by construction (the closed-form rules of
    ``astrojax.evaluators.cube_baselines``): the surface temperature *is* the cube's
    cos(lat)-weighted mean surface level (the calibration above), tidal locking is whether the
    fields vary along longitude, relative humidity is close to the mean surface humidity. The
    equilibrium temperature is exact only where the upper levels reach the skin temperature
    ``T_eq * 2^(-1/4)`` (or there is no atmosphere, so ``T_eq`` = surface temperature); the
    pressure acts only through transport, thermal inertia, the moist lapse rate and where
    clouds boil off (airless: no wind). The climate regime (a class) is
    ``population.climate_regime``, a function of the surface temperature.
    """
    rows = population.rows(indices)
    values = [population.surface_temperature_k, population.equilibrium_temperature_k,
              np.log10(population.surface_pressure_bar), population.relative_humidity,
              tidally_locked(population)]
    return LABELS, np.stack([np.asarray(v, np.float64)[rows] for v in values], 1).astype(np.float32)


def planet_cubes(population: PlanetPopulation, grid: CubeGrid = CubeGrid(), seed: int = 0,
                 indices=None) -> np.ndarray:
    """The cubes of the planets at ``indices`` (default: all), in that order, as float32
    ``[n, len(CUBE_VARIABLES), time_steps, levels, lat, lon]``; planet ``i``'s cube depends
    only on ``(seed, population.planet_index[i])`` and its columns."""
    if not isinstance(grid, CubeGrid):
        raise TypeError(f"grid must be a CubeGrid, got {type(grid).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    rows = population.rows(indices)
    out = np.empty((len(rows), len(CUBE_VARIABLES), *grid.shape), np.float32)
    for start in range(0, len(rows), CHUNK_PLANETS):
        chunk = rows[start:start + CHUNK_PLANETS]
        par = _parameters(population, chunk, int(seed))
        for locked in (False, True):
            sub = np.flatnonzero(par["locked"] == locked)
            if sub.size:
                out[start + sub] = _group_cubes({k: v[sub] for k, v in par.items()}, grid, locked)
    return out


# ---------------------------------------------------------------- per-planet parameters
def _parameters(population: PlanetPopulation, rows: np.ndarray, seed: int) -> dict:
    """The model's per-planet parameters, 1-D arrays over ``rows``."""
    def col(name: str) -> np.ndarray:
        return np.asarray(getattr(population, name), np.float64)[rows]

    u = np.array([np.random.default_rng(np.random.SeedSequence([seed, int(i), STREAM]))
                  .random(_NUM_DRAWS) for i in np.asarray(population.planet_index)[rows]])
    u = u.reshape(len(rows), _NUM_DRAWS)
    x = {g: col(f"x_{g}") for g in GASES}
    mu = sum(x[g] * _MOLAR_MASS[g] for g in GASES)
    cp_over_r = sum(x[g] * _CP_OVER_R[g] for g in GASES)
    r_specific = _R_GAS / mu
    p, gravity = col("surface_pressure_bar"), col("surface_gravity_ms2")
    water = col("water_fraction")
    ts, teq = col("surface_temperature_k"), col("equilibrium_temperature_k")
    locked = tidally_locked(population)[rows]
    has_air = p >= AIRLESS_PRESSURE_BAR
    period_s = col("orbital_period_days") * 86400.0
    rotation_s = 86400.0 * _ROTATION_DAYS[0] * (_ROTATION_DAYS[1] / _ROTATION_DAYS[0]) ** u[:, 2]
    omega = 2.0 * np.pi / np.where(locked, period_s, rotation_s)
    # Grey emission sigma T^4 / (1 + 0.75 tau) linearised in T at T_s: 4 sigma T_eq^4 / T_s.
    damping = 4.0 * SIGMA_SB * teq**4 / ts
    capacity = (np.where(has_air, cp_over_r * r_specific * p * 1e5 / gravity, 0.0)
                + water * _C_MIXED_LAYER + _C_GROUND)
    transport = (_D_EARTH * p * (cp_over_r / 3.5) * (_MU_EARTH / mu) ** 2
                 * np.clip((_OMEGA_EARTH / omega) ** 2, *_ROTATION_FACTOR)
                 * np.exp(_TRANSPORT_SCATTER * (2 * u[:, 3] - 1)))
    # The population's albedo includes its global ice cover; the model adds ice locally.
    albedo = col("bond_albedo")
    ice = water * np.clip((FREEZING_K - ts) / _GLOBAL_ICE_RAMP_K, 0.0, 1.0)
    base = np.where(albedo >= _ICE_ALBEDO, albedo, (albedo - _ICE_ALBEDO * ice) / (1.0 - ice))
    return {"locked": locked, "has_air": has_air, "ts": ts, "t_skin": teq * 2.0**-0.25,
            "albedo": albedo, "base_albedo": base, "water": water, "pressure": p,
            "rh": np.where(has_air, col("relative_humidity"), 0.0),
            "delta": np.where(has_air, np.minimum(transport / damping, _DELTA_MAX), 0.0),
            "gamma": 2.0 * np.pi * capacity / (damping * period_s),
            "eccentricity": col("eccentricity"), "omega": omega,
            "obliquity": np.where(locked, 0.0, np.radians(_OBLIQUITY_MAX_DEG) * u[:, 0]),
            "season_phase": 2.0 * np.pi * u[:, 1], "kappa": 1.0 / cp_over_r,
            "r_specific": r_specific, "cp": cp_over_r * r_specific, "epsilon": 0.018 / mu,
            "radius_m": col("planet_radius_rearth") * _R_EARTH_M}


# ---------------------------------------------------------------- the energy-balance model
def _insolation(par: dict, t_int: int, lat: np.ndarray, lon: np.ndarray | None) -> np.ndarray:
    """Insolation ``[n, t_int, lat, lon or 1]`` with cos(lat)-weighted orbit mean 1."""
    e = par["eccentricity"][:, None]
    mean_anomaly = 2.0 * np.pi * (np.arange(t_int) + 0.5) / t_int  # time 0 is periapsis
    ecc_anomaly = mean_anomaly + e * np.sin(mean_anomaly)
    for _ in range(6):  # Newton on Kepler's equation; e <= 0.5
        ecc_anomaly = ecc_anomaly - ((ecc_anomaly - e * np.sin(ecc_anomaly) - mean_anomaly)
                                     / (1.0 - e * np.cos(ecc_anomaly)))
    distance = (1.0 / (1.0 - e * np.cos(ecc_anomaly))) ** 2  # (a / r)^2
    if lon is None:  # diurnal mean at each latitude and declination (Berger 1978)
        true_anomaly = 2.0 * np.arctan2(np.sqrt(1 + e) * np.sin(ecc_anomaly / 2),
                                        np.sqrt(1 - e) * np.cos(ecc_anomaly / 2))
        sin_dec = np.sin(par["obliquity"][:, None]) * np.sin(true_anomaly
                                                             + par["season_phase"][:, None])
        dec = np.arcsin(sin_dec)[:, :, None]
        hour = np.arccos(np.clip(-np.tan(lat) * np.tan(dec), -1.0, 1.0))
        flux = (hour * np.sin(lat) * np.sin(dec) + np.cos(lat) * np.cos(dec) * np.sin(hour))
        flux = (flux / np.pi * distance[:, :, None])[..., None]
    else:  # substellar point at (0, 180) degrees
        day = np.maximum(np.cos(lat)[:, None] * np.cos(lon - np.pi)[None, :], 0.0)
        flux = distance[:, :, None, None] * day
    weights = np.cos(lat)[:, None] / np.cos(lat).sum()
    mean = _sum_last((flux * weights).reshape(len(e), -1)) / (t_int * flux.shape[-1])
    return flux / mean[:, None, None, None]


def _operator(n_lat: int, n_lon: int) -> tuple[np.ndarray, ...]:
    """Finite-volume -laplacian on the unit sphere: (diag, lower, upper) in latitude and the
    zonal factor multiplying each longitude wavenumber's eigenvalue."""
    edges = np.linspace(-np.pi / 2, np.pi / 2, n_lat + 1)
    dlat, dlon = np.pi / n_lat, 2.0 * np.pi / n_lon
    area = np.diff(np.sin(edges))
    conductance = np.cos(edges[1:-1]) / dlat  # between cells j and j + 1
    below = np.concatenate([[0.0], conductance]) / area
    above = np.concatenate([conductance, [0.0]]) / area
    centres = edges[:-1] + dlat / 2
    zonal = dlat / (np.cos(centres) * area * dlon**2)
    return below + above, -below, -above, zonal


def _solve(forcing: np.ndarray, par: dict, n_lon: int, operator: tuple) -> np.ndarray:
    """Periodic solution e of gamma de/dt = forcing - e + delta laplacian(e) (e = T^4 / T_s^4)."""
    diag, lower, upper, zonal = operator
    f = np.fft.rfftn(forcing, axes=(1, 3))  # [n, k, lat, m]
    k = np.fft.fftfreq(forcing.shape[1], 1.0 / forcing.shape[1])
    m = np.arange(f.shape[3])
    lon_eig = 2.0 - 2.0 * np.cos(2.0 * np.pi * m / n_lon)
    delta = par["delta"][:, None, None]
    inertia = 1j * k[None, :, None, None] * par["gamma"][:, None, None, None]
    b = 1.0 + inertia + delta[..., None] * (diag[:, None] + zonal[:, None] * lon_eig)  # n,k,j,m
    low, up = delta[..., None] * lower[:, None], delta[..., None] * upper[:, None]
    low, up = np.broadcast_to(low, b.shape), np.broadcast_to(up, b.shape)
    n_lat = b.shape[2]
    c_prime, d_prime = np.empty_like(b), np.empty_like(f)
    c_prime[:, :, 0], d_prime[:, :, 0] = up[:, :, 0] / b[:, :, 0], f[:, :, 0] / b[:, :, 0]
    for j in range(1, n_lat):  # Thomas algorithm, diagonally dominant
        w = b[:, :, j] - low[:, :, j] * c_prime[:, :, j - 1]
        c_prime[:, :, j] = up[:, :, j] / w
        d_prime[:, :, j] = (f[:, :, j] - low[:, :, j] * d_prime[:, :, j - 1]) / w
    for j in range(n_lat - 2, -1, -1):
        d_prime[:, :, j] -= c_prime[:, :, j] * d_prime[:, :, j + 1]
    return np.fft.irfftn(d_prime, s=(forcing.shape[1], forcing.shape[3]), axes=(1, 3))


def _surface_temperature(par: dict, grid: CubeGrid, lat: np.ndarray, lon: np.ndarray | None
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated surface temperature ``[n, time_steps, lat, lon or 1]`` and the fractional
    equator-pole contrast of radiative equilibrium (Held & Hou's Delta_H) ``[n]``."""
    # Seasons need a fine orbit; a locked planet's only variation is its distance to the star.
    min_steps = _MIN_INTERNAL_STEPS_LOCKED if lon is not None else _MIN_INTERNAL_STEPS
    repeat = -(-min_steps // grid.time_steps)
    repeat += 1 - repeat % 2  # odd, so the cube's times are samples of the internal grid
    insolation = _insolation(par, grid.time_steps * repeat, lat, lon)
    operator = _operator(grid.lat, grid.lon)
    ts = par["ts"][:, None, None, None]
    emission = _solve(insolation, par, grid.lon, operator)
    absorbed_scale = (1.0 / (1.0 - par["albedo"]))[:, None, None, None]
    ice_range = (par["water"] * np.maximum(_ICE_ALBEDO - par["base_albedo"], 0.0))
    for _ in range(_ICE_ITERATIONS):  # damped fixed point of the local ice-albedo feedback
        t = ts * np.maximum(emission, 0.0) ** 0.25
        icy = np.flatnonzero((ice_range > 0) & (t.reshape(len(t), -1).min(axis=1) < FREEZING_K))
        if icy.size == 0:
            break
        ice = np.clip((FREEZING_K - t[icy]) / _ICE_RAMP_K, 0.0, 1.0)
        albedo = (par["base_albedo"][icy, None, None, None]
                  + ice_range[icy, None, None, None] * ice)
        forcing = insolation[icy] * (1.0 - albedo) * absorbed_scale[icy]
        sub = {"delta": par["delta"][icy], "gamma": par["gamma"][icy]}
        emission[icy] = 0.5 * (emission[icy] + _solve(forcing, sub, grid.lon, operator))
    surface = ts * np.maximum(emission[:, repeat // 2::repeat], 0.0) ** 0.25
    equilibrium = _mean_last(np.moveaxis(insolation.mean(axis=3), 1, 2)) ** 0.25  # n, lat
    return _calibrate(surface, par["ts"], lat), equilibrium.max(1) - equilibrium.min(1)


def _calibrate(surface: np.ndarray, target: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """max(surface + shift, floor) with the shift per planet that makes the cos(lat)-weighted
    mean equal ``target`` (Newton; the mean is convex and piecewise linear in the shift)."""
    n = len(target)
    weights = np.broadcast_to((np.cos(lat) / np.cos(lat).sum())[:, None],
                              surface.shape[2:]) / (surface.shape[1] * surface.shape[3])
    weights = np.broadcast_to(weights, surface.shape[1:]).reshape(-1)
    flat = surface.reshape(n, -1)
    floor = (_FLOOR_FRACTION * target)[:, None]
    shift = target - _sum_last(flat * weights)  # >= the root: max() only adds
    active = np.flatnonzero((flat + shift[:, None]).min(axis=1) < floor[:, 0])
    for _ in range(30):
        if active.size == 0:
            break
        y = flat[active] + shift[active, None]
        above = y > floor[active]
        error = _sum_last(np.where(above, y, floor[active]) * weights) - target[active]
        shift[active] -= error / _sum_last(above * weights)
        active = active[np.abs(error) > 1e-9 * target[active]]
    return np.maximum(surface + shift[:, None, None, None], floor[:, :, None, None])


# ---------------------------------------------------------------- the atmosphere above
def _group_cubes(par: dict, grid: CubeGrid, locked: bool) -> np.ndarray:
    """Cubes of planets that are all locked (``[n, V, T, L, lat, lon]``) or all not (``lon``
    axis of size 1: their fields are zonal means)."""
    coords = grid_coordinates(grid)
    lat, lon = np.radians(coords["lat"]), np.radians(coords["lon"])
    sigma = coords["level"]
    surface, contrast = _surface_temperature(par, grid, lat, lon if locked else None)

    def per_planet(name: str) -> np.ndarray:
        return par[name][:, None, None, None]

    air = per_planet("has_air")
    d_lat, d_lon = np.pi / grid.lat, 2.0 * np.pi / grid.lon
    cos_lat = np.cos(lat)[:, None]
    # Ascent where the surface is locally warmest (the flow converges there), descent in the
    # Hadley cell's sinking branch at the edge of width phi_H (Held & Hou 1980).
    zonal_mean = surface.mean(axis=3)
    weights = (np.exp((zonal_mean - zonal_mean.max(axis=2, keepdims=True)) / _ITCZ_SHARPNESS_K)
               * np.cos(lat))
    itcz = _sum_last(weights * lat) / _sum_last(weights)
    hadley_width = np.clip(np.sqrt(5.0 / 3.0 * par["r_specific"] * par["ts"] * contrast)
                           / (par["omega"] * par["radius_m"]), *_HADLEY_WIDTH)
    from_itcz = (lat[None, None, :] - itcz[:, :, None]) / hadley_width[:, None, None]
    sinking = np.exp(-(((np.abs(from_itcz) - 1.0) / 0.35) ** 2))[..., None]
    ascent = np.tanh(-_laplacian(surface, d_lat, d_lon, cos_lat) / _LAPLACIAN_SCALE)
    moisture = per_planet("rh") * (1.0 + 0.25 * ascent - 0.3 * sinking)

    def humidity(s):  # Manabe & Wetherald (1967): RH falls as (sigma - 0.02) / 0.98
        return np.clip(moisture * max((s - 0.02) / 0.98, 0.0), 0.0, 1.0)

    def lapse(t, s):  # d ln T / d ln sigma: dry R/c_p, moist-reduced where humid
        vapour = saturation_vapour_pressure_bar(t)
        p = s * per_planet("pressure")
        r_sat = np.minimum(per_planet("epsilon") * vapour / np.maximum(p - vapour, 0.1 * p), 5.0)
        latent = _L_VAP * r_sat / (per_planet("r_specific") * t)
        ratio = (1.0 + latent) / (1.0 + latent * _L_VAP * per_planet("epsilon")
                                  / (per_planet("cp") * t))
        return per_planet("kappa") * (1.0 - humidity(s) * (1.0 - np.minimum(ratio, 1.0)))

    temperature, t = [surface], surface
    floor = np.minimum(per_planet("t_skin"), surface)
    for k in range(1, grid.levels):  # midpoint rule in ln(sigma), one step per level
        step = np.log(sigma[k] / sigma[k - 1])
        middle = t * np.exp(0.5 * step * lapse(t, sigma[k - 1]))
        t = t * np.exp(step * lapse(middle, np.sqrt(sigma[k - 1] * sigma[k])))
        temperature.append(np.where(air, np.maximum(t, floor), surface))
    cube = np.empty((len(surface), len(CUBE_VARIABLES), grid.time_steps, grid.levels,
                     *surface.shape[2:]), np.float32)
    temperature = np.stack(temperature, axis=2)  # n, t, level, lat, lon
    rh = np.stack([humidity(s) for s in sigma], axis=2) * air[..., None]
    boiling = boiling_point_k(sigma[None, None, :, None, None] * per_planet("pressure")[..., None])
    liquid_or_ice = np.clip((boiling - temperature) / _CLOUD_MELT_K, 0.0, 1.0)
    cloud = (1.0 - np.sqrt(np.clip((1.0 - rh) / (1.0 - _RH_CRITICAL), 0.0, 1.0))) * liquid_or_ice

    # Thermal wind: du/dln(1/sigma) = -(R / f a) dT/dlat, with f's zero at the equator smoothed.
    coriolis = np.sin(lat) / (np.sin(lat) ** 2 + np.sin(np.radians(10.0)) ** 2)
    shear = -(per_planet("r_specific") / (2.0 * per_planet("omega") * per_planet("radius_m")))
    height = np.log(1.0 / sigma)
    gradient = _d_lat(temperature, d_lat, axis=3)
    layer = 0.5 * (gradient[:, :, 1:] + gradient[:, :, :-1]) * np.diff(height)[:, None, None]
    thermal = np.concatenate([np.zeros_like(gradient[:, :, :1]), np.cumsum(layer, axis=2)], 2)
    u = shear[:, :, None] * coriolis[:, None] * thermal
    # Overturning: towards the warmth at the surface, back aloft (2 sigma - 1 integrates to 0).
    overturning = _K_OVERTURNING * (2.0 * sigma - 1.0)[None, None, :, None, None]
    hadley = ((1.0 + _FERREL) * np.exp(-from_itcz**4)
              - _FERREL * np.exp(-(from_itcz / 2.0) ** 4))[:, :, None, :, None]  # and Ferrel
    v = overturning * hadley * _d_lat(surface, d_lat, axis=2)[:, :, None]
    u = u + overturning * (_d_lon(surface, d_lon) / cos_lat)[:, :, None]
    cube[:, 0], cube[:, 1], cube[:, 2] = temperature, rh, cloud
    cube[:, 3] = _U_MAX * np.tanh(u / _U_MAX) * air[..., None]
    cube[:, 4] = _U_MAX * np.tanh(v / _U_MAX) * air[..., None]
    return cube


def _d_lat(x: np.ndarray, d_lat: float, axis: int) -> np.ndarray:
    if x.shape[axis] < 2:
        return np.zeros_like(x)
    return np.gradient(x, d_lat, axis=axis)


def _d_lon(x: np.ndarray, d_lon: float) -> np.ndarray:
    return (np.roll(x, -1, axis=-1) - np.roll(x, 1, axis=-1)) / (2.0 * d_lon)


def _laplacian(x: np.ndarray, d_lat: float, d_lon: float, cos_lat: np.ndarray) -> np.ndarray:
    """Laplacian on the unit sphere of ``[..., lat, lon]`` fields (K rad^-2)."""
    meridional = _d_lat(cos_lat * _d_lat(x, d_lat, axis=-2), d_lat, axis=-2) / cos_lat
    zonal = (np.roll(x, -1, axis=-1) + np.roll(x, 1, axis=-1) - 2.0 * x) / (d_lon * cos_lat) ** 2
    return meridional + zonal


def _mean_last(x: np.ndarray) -> np.ndarray:
    return _sum_last(x) / x.shape[-1]


def _sum_last(x: np.ndarray) -> np.ndarray:
    """Sum over the last axis of a C-contiguous copy, so a planet's row is summed the same way
    whatever else is in the batch."""
    return np.ascontiguousarray(x).sum(axis=-1)
