"""Transmission spectra of the built-in planets: transit depth against wavelength, on JWST grids.

**The atmosphere** is each planet's true one: isothermal at ``equilibrium_temperature_k``, with
the mean molecular weight mu of its six gases (N2, O2, CO2, CH4, H2O, H2, summing to 1) and
the population's surface gravity, so its scale height is H = k T / (mu m_H g). Three trace
gases the population lacks are added on top (not renormalised), drawn on this module's own
random stream (``STREAM``):

* O3 from ``ozone_column_du``, all of it above the cold trap (below), evenly: Earth's 300 DU
  are 0.4 ppm over the column, 4 ppm above 0.1 bar (measured: up to 8 ppm near 30 km);
* CO from photochemistry: CO / CO2 log-uniform in 1e-5..1e-3 on wet planets (OH from water
  recombines CO with O), 1e-3..3e-2 on dry ones (Mars' 1e-3 up to the CO build-up of dry CO2
  atmospheres, Hu et al. 2012), +0.5 dex around M dwarfs (more far-UV), x 0.1 where a biosphere
  lives (life eats CO: Schwieterman et al. 2018), 0.1..3 in H2 envelopes (quenched
  thermochemistry);
* N2O from oxygenic biospheres only, log-uniform 1e-7..1e-5 (Earth 3.3e-7, up to 10 ppm in
  high-production scenarios: Schwieterman et al. 2022); 1e-11..1e-9 otherwise (lightning).

Water condenses: above a cold trap at 0.1 bar (or the surface, if lower; Robinson & Catling
2014) its mixing ratio is at most the saturation vapour pressure (over ice below 273 K) at a
cold point of 0.75 T_eq over the trap's pressure (Earth: 191 K and 4 ppm, as measured), so a
temperate planet's water bands stay below its stratosphere and a hot one's do not.

**The spectrum.** In an isothermal atmosphere the slant optical depth at altitude z is
tau(z) = kappa n_s exp(-z / H) sqrt(2 pi R_p H), so the radius at which tau = 0.56
(Lecavelier des Etangs et al. 2008) sits at z = H ln(kappa n_s sqrt(2 pi R_p H) / 0.56), with
kappa = sum_m x_m sigma_m(lambda) the opacity per molecule and n_s the number density at the
surface (for an H2 envelope, at the radius the population gives). A band thus spans
N_H = ln(kappa_band / kappa_continuum) scale heights and adds about 2 R_p H N_H / R_s^2 to the
baseline (R_p / R_s)^2; the depth is ((R_p + z) / R_s)^2, averaged over 8 points per bin.
Below and above the cold trap kappa differs (water, ozone); z is found in each layer. Opacity:

* molecular bands (``BANDS``) of H2O, CO2, CH4, O2, O3, CO and N2O at their real centres, each
  exp(-ln 2 |2 (nu - nu_0) / FWHM|^1.5) in wavenumber (between a Gaussian core and the slower,
  near-exponential fall of real band wings, so bands fill the windows between them as water's
  do), integrating to S / 10: S is a HITRAN-like room-temperature band strength (cm/molecule,
  rounded), and a bin, which averages depth and so ln sigma over a band's lines, sees their
  geometric mean, well below the arithmetic mean S / width (one factor of 10 for every band;
  O3's Chappuis band, a continuum, keeps its measured 5e-21 cm^2 peak);
* Rayleigh scattering, lambda^-4, per gas (cross sections at 0.55 um from refractivities);
* collision-induced absorption (H2-H2, N2-N2, O2-O2: ``CIA``) ~ n^2, which has half the
  scale height: z = (H / 2) ln(k x_a x_b n_s^2 sqrt(pi R_p H) / 0.56). It limits how deep an
  H2 envelope's windows reach (to ~0.1 bar) and shows N2 at 4.3 um and O2-O2 at 1.06/1.27 um
  in thick N2 / O2 air (N2's strength from Lafferty et al. 1996; the others order-of-magnitude);
* refraction: rays below the altitude where the bending, (n - 1) sqrt(2 pi R_p / H), exceeds the
  star's angular radius R_s / a seen from the planet never reach the observer (an Earth twin
  around the Sun: nothing below 12 km; around an M dwarf, little is hidden);
* grey clouds and hazes: a cloud-top pressure below which nothing is seen (a floor at
  z = H ln(p_s / p_cloud)). A rocky planet with air has a deck with probability 0.15, plus up
  to 0.6 for warm, wet planets (0.6 x water fraction x a ramp from 250 K to 350 K surface
  temperature) and 0.3 for a photochemical haze where CH4 / CO2 > 0.1 (Arney et al. 2016),
  its top log-uniform in 0.01..0.8 p_s. H2 envelopes (radius > GASEOUS_RADIUS_REARTH: low mu,
  large H) are cloudy with probability 0.5, tops log-uniform in 1e-5..0.1 bar.

The altitude is the largest of the line, CIA, refraction and cloud altitudes (at least 0),
capped where the pressure falls to 1e-7 bar. Airless planets (p_s < AIRLESS_PRESSURE_BAR)
show the flat (R_p / R_s)^2. For reference (not fitted): an Earth twin around the Sun shows
its windows at 12-17 km, O2 0.76 um at 29 km, CH4 3.3 um at 22 km, O3 9.6 um at 37 km and
CO2 4.3 um at 86 km.

**Noise** per bin and transit is photon noise: the star is a blackbody of its T_eff and radius
at a distance drawn per planet (p(d) ~ d^2 in 5..50 pc, which gives its J magnitude), seen by
JWST's 25.4 m^2 with the instrument's throughput over the transit duration (P / pi) R_s / a,
with an equally long baseline: sigma_1 = sqrt(2 / N). A star brighter than the mode's bright
limit is observed as if it were at the limit (the rest saturates): the photon-noise floor.
Over n transits sigma = sqrt(sigma_1^2 / n + floor^2), with the instrument's systematic floor
(20 ppm for NIRSpec PRISM and NIRISS SOSS, 40 ppm for MIRI LRS, assumed). Noisy spectra add
sigma z with z ~ N(0, 1) drawn per planet, bin and ``realisation``, the same z for every n,
so a detection curve over 1, 3, 10, 30 transits compares the same planets and draws.

**Grids** (``INSTRUMENTS``): bins tile each mode's range at the native resolving power where it
is coarser than the binning's (NIRSpec PRISM 0.6-5.3 um, R 30-330, binned to at most R = 100:
142 bins; NIRISS SOSS 0.6-2.8 um, R ~ 700 binned to 100: 154; MIRI LRS 5-12 um, R 40-200
binned to 50: 43).

**Simplifications**, all deliberate: isothermal atmospheres, well mixed but for water and
ozone's two layers; no line lists, band shapes independent of temperature and pressure, bands
and their overlaps add in opacity; one factor (10) for how much a bin's lines fall below
their mean; g constant with height; clouds grey and sharp-topped; blackbody stars; no
stellar contamination (spots, faculae), limb darkening, red noise, or saturation beyond the
bright limit. Band strengths are good to a factor of a few, i.e. ~1 scale height in a feature.

Every draw for planet ``i`` comes from fixed blocks of ``BLOCK_SIZE`` planets (``block_rng``
with ``STREAM``), so its spectrum depends only on ``(seed, i)``: a small population's spectra
are the prefix of a larger one's, and nothing here shifts another modality's draws.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Sequence

import numpy as np

from astrojax.data.generator.physics import (
    AIRLESS_PRESSURE_BAR,
    FREEZING_K,
    GASEOUS_RADIUS_REARTH,
    GASES,
    saturation_vapour_pressure_bar,
)
from astrojax.data.generator.population import PlanetPopulation
from astrojax.data.generator.sampling import BLOCK_SIZE, block_rng

STREAM = 4  # this modality's random stream: sampling.py uses 0-1, biochem.py 2, climate.py 3
MOLECULES = ("h2o", "co2", "ch4", "o2", "o3", "co", "n2o")
SPECIES = (*GASES, "o3", "co", "n2o")  # the atmosphere's gases: the population's six + traces
# (centre um, band strength S cm/molecule, FWHM cm^-1) per band.
BANDS = {
    "h2o": ((0.94, 5e-20, 400), (1.14, 7e-20, 400), (1.4, 7e-19, 400), (1.9, 9e-19, 350),
            (2.7, 8e-18, 400), (6.3, 1.05e-17, 450)),
    "co2": ((1.6, 5e-21, 250), (2.0, 4e-20, 250), (2.7, 4e-18, 200), (4.3, 1.0e-16, 100),
            (15.0, 8e-18, 100)),
    "ch4": ((1.7, 1.5e-19, 300), (2.3, 1.2e-18, 300), (3.3, 1.1e-17, 250), (7.7, 5.5e-18, 200)),
    "o2": ((0.76, 2.3e-22, 150), (1.27, 8e-24, 100)),
    "o3": ((0.6, 2.1e-17, 4000), (9.6, 1.4e-17, 100)),
    "co": ((2.35, 7.5e-20, 150), (4.6, 1.0e-17, 150)),
    "n2o": ((2.9, 3.5e-19, 100), (4.5, 4.8e-17, 100), (7.8, 1.0e-17, 100)),
}
# Collision-induced absorption: pair -> (centre um, peak cm^5 molecule^-2, FWHM cm^-1) per band.
CIA = {
    ("h2", "h2"): ((2.4, 1e-45, 1000), (1.2, 3e-47, 1000), (16.7, 3e-45, 700)),
    ("n2", "n2"): ((4.3, 1.3e-45, 250),),
    ("o2", "o2"): ((1.27, 5e-46, 150), (1.06, 2e-46, 150)),
}
_MOLAR_MASS_G = {"n2": 28.01, "o2": 32.00, "co2": 44.01, "ch4": 16.04, "h2o": 18.02,
                 "h2": 2.016, "o3": 48.00, "co": 28.01, "n2o": 44.01}
# Refractivity n - 1 at 273 K and 1 atm (Loschmidt's number density): bending by refraction.
_REFRACTIVITY_STP = {"n2": 2.98e-4, "o2": 2.72e-4, "co2": 4.49e-4, "ch4": 4.41e-4,
                     "h2o": 2.56e-4, "h2": 1.39e-4, "o3": 5.2e-4, "co": 3.38e-4, "n2o": 5.16e-4}
_LOSCHMIDT_M3 = 2.6868e25
_RAYLEIGH_CM2_AT_055UM = {"n2": 4.6e-27, "o2": 4.1e-27, "co2": 1.2e-26, "ch4": 9.7e-27,
                          "h2o": 3.1e-27, "h2": 9.8e-28, "o3": 1.2e-26, "co": 5.8e-27,
                          "n2o": 1.3e-26}
_K_B, _AMU, _H, _C = 1.380649e-23, 1.66053907e-27, 6.62607015e-34, 2.99792458e8
_R_EARTH_M, _R_SUN_M, _AU_M, _PC_M = 6.371e6, 6.957e8, 1.495978707e11, 3.0857e16
_TAU_EQ, _TOP_BAR, _SUBSAMPLES = 0.56, 1e-7, 8
# Band profile exp(-ln 2 |2 dnu / FWHM|^p): p = 2 would be a Gaussian, whose wings die so fast
# that windows between bands stay empty down to the surface and a gas at 0.01 ppm still shows.
_PROFILE_POWER = 1.5
# A bin averages depth, i.e. ln sigma, over a band's lines: it sees their geometric mean, well
# below the arithmetic mean S / width. One factor for every band; O3's Chappuis band is a
# continuum (no lines), so it keeps its cross section.
_LINE_GAP, _CONTINUUM_BANDS_UM = 10.0, (0.6,)
_PROFILE_AREA = math.gamma(1.0 + 1.0 / _PROFILE_POWER) / math.log(2.0) ** (1.0 / _PROFILE_POWER)
# The cold trap: 0.1 bar, at 0.75 T_eq (Earth: 191 K, its tropical cold point is 190-195 K).
_TRAP_BAR, _COLD_POINT, _LS_OVER_RV_K = 0.1, 0.75, 6140.0
_JWST_AREA_M2 = 25.4
_J_CENTRE_UM, _J_ZERO_W_M2_UM = 1.235, 3.129e-9  # 2MASS J (Cohen et al. 2003)
_DU_PER_M2 = 2.687e20
_DISTANCE_PC = (5.0, 50.0)
PRESENCE_SNR = 5.0
# Draws per planet, in this order, from block_rng(seed, block, STREAM).
_DRAWS = ("cloud", "cloud_top", "co", "n2o", "distance")


# ------------------------------------------------------------------------------ instruments
@dataclasses.dataclass(frozen=True)
class Instrument:
    """A spectroscopic mode: range, native resolving power (knots), the binning's resolving
    power, throughput, systematic floor and bright limit (J magnitude)."""

    name: str
    range_um: tuple[float, float]
    native_r: tuple[tuple[float, float], ...]  # (wavelength um, R) knots, interpolated
    bin_r: float
    throughput: float
    floor_ppm: float
    bright_limit_j: float

    def edges_um(self) -> np.ndarray:
        """Bin edges tiling the range with one bin per 1 / min(R_native, bin_r) in ln lambda."""
        lo, hi = self.range_um
        lam = np.exp(np.linspace(np.log(lo), np.log(hi), 20_001))
        knots = np.array(self.native_r)
        r = np.minimum(np.interp(lam, knots[:, 0], knots[:, 1]), self.bin_r)
        count = np.concatenate([[0.0], np.cumsum(0.5 * (r[1:] + r[:-1]) * np.diff(np.log(lam)))])
        n = int(round(count[-1]))
        return np.interp(np.linspace(0.0, count[-1], n + 1), count, lam)


INSTRUMENTS = {
    # Knots approximating STScI's PRISM dispersion curve (R ~ 30 at its minimum near 1.1 um,
    # ~100 at 3 um, ~300 at 5); throughputs, floors and bright limits (J) are round, assumed
    # numbers of the published order (PRISM saturates near J = 10.5, SOSS SUBSTRIP256 near 8).
    "nirspec_prism": Instrument(
        "nirspec_prism", (0.6, 5.3),
        ((0.6, 85), (0.8, 50), (1.0, 35), (1.2, 30), (1.5, 35), (2.0, 55), (2.5, 75), (3.0, 101),
         (3.5, 140), (4.0, 185), (4.5, 240), (5.0, 295), (5.3, 330)),
        bin_r=100.0, throughput=0.35, floor_ppm=20.0, bright_limit_j=10.5),
    "niriss_soss": Instrument("niriss_soss", (0.6, 2.8), ((0.6, 700), (2.8, 700)), bin_r=100.0,
                              throughput=0.3, floor_ppm=20.0, bright_limit_j=8.1),
    "miri_lrs": Instrument("miri_lrs", (5.0, 12.0),
                           ((5.0, 40), (7.5, 100), (10.0, 160), (12.0, 200)),
                           bin_r=50.0, throughput=0.2, floor_ppm=40.0, bright_limit_j=6.0),
}


@dataclasses.dataclass(frozen=True, eq=False)
class SpectralGrid:
    """Bins (centres and widths in um) of one instrument or several concatenated; each bin
    carries its instrument's index into ``instruments``."""

    instruments: tuple[str, ...]
    wavelength_um: np.ndarray
    width_um: np.ndarray
    instrument: np.ndarray

    @property
    def name(self) -> str:
        return "+".join(self.instruments)

    def __len__(self) -> int:
        return len(self.wavelength_um)

    def per_bin(self, field: str) -> np.ndarray:
        """An :class:`Instrument` field's value in every bin."""
        values = np.array([getattr(INSTRUMENTS[n], field) for n in self.instruments], float)
        return values[self.instrument]


def spectral_grid(instrument: str | Sequence[str] | SpectralGrid = "nirspec_prism"
                  ) -> SpectralGrid:
    """The bins of one instrument (``"nirspec_prism"``) or several, concatenated in the order
    given (``"niriss_soss+miri_lrs"`` or a list of names). ValueError names unknown ones."""
    if isinstance(instrument, SpectralGrid):
        return instrument
    names = tuple(instrument.split("+")) if isinstance(instrument, str) else tuple(instrument)
    unknown = [n for n in names if n not in INSTRUMENTS]
    if unknown or not names:
        raise ValueError(f"unknown instrument {unknown[0] if unknown else instrument!r}; "
                         f"known: {', '.join(INSTRUMENTS)}")
    edges = [INSTRUMENTS[n].edges_um() for n in names]
    return SpectralGrid(names, np.concatenate([0.5 * (e[1:] + e[:-1]) for e in edges]),
                        np.concatenate([np.diff(e) for e in edges]),
                        np.concatenate([np.full(len(e) - 1, k) for k, e in enumerate(edges)]))


# ------------------------------------------------------------------------------ the planets
@dataclasses.dataclass(frozen=True, eq=False)
class SpectrumInputs:
    """Everything a planet's spectrum depends on, one 1-D array per field (``x`` is
    ``[n, len(SPECIES)]`` volume mixing ratios)."""

    planet_radius_rearth: np.ndarray
    star_radius_rsun: np.ndarray
    star_teff_k: np.ndarray
    gravity_ms2: np.ndarray
    temperature_k: np.ndarray
    surface_pressure_bar: np.ndarray
    cloud_top_bar: np.ndarray  # = surface pressure where there is no cloud deck
    x: np.ndarray  # below the cold trap
    x_above: np.ndarray  # above it: water capped by the trap, all the ozone
    trap_bar: np.ndarray
    distance_pc: np.ndarray
    transit_hours: np.ndarray
    star_radius_over_a: np.ndarray  # the star's angular radius seen from the planet (rad)

    def __len__(self) -> int:
        return len(self.planet_radius_rearth)

    def take(self, rows) -> SpectrumInputs:
        return SpectrumInputs(**{f.name: getattr(self, f.name)[rows]
                                 for f in dataclasses.fields(self)})

    def mixing_ratio(self, species: str) -> np.ndarray:
        """The column-mean mixing ratio (ozone's, below the trap is 0: its column is above)."""
        k = SPECIES.index(species)
        if species == "o3":
            return self.x_above[:, k] * self.trap_bar / self.surface_pressure_bar
        return self.x[:, k]

    @property
    def airless(self) -> np.ndarray:
        return self.surface_pressure_bar < AIRLESS_PRESSURE_BAR

    @property
    def mean_molecular_weight(self) -> np.ndarray:
        """mu (g/mol) of the population's six gases; the trace gases do not change it."""
        return self.x[:, :len(GASES)] @ np.array([_MOLAR_MASS_G[s] for s in GASES])

    @property
    def scale_height_m(self) -> np.ndarray:
        return (_K_B * self.temperature_k
                / (self.mean_molecular_weight * _AMU * self.gravity_ms2))

    @property
    def j_mag(self) -> np.ndarray:
        """The star's J magnitude (a blackbody of its T_eff and radius at its distance)."""
        flux = _photon_flux(self.star_teff_k, self.star_radius_rsun, self.distance_pc,
                            np.array([_J_CENTRE_UM]))[:, 0] * _H * _C / (_J_CENTRE_UM * 1e-6)
        return -2.5 * np.log10(flux / _J_ZERO_W_M2_UM)


def _block_draws(seed: int, planet_index: np.ndarray, count: int, *extra: int,
                 normal: bool = False) -> np.ndarray:
    """``[len(planet_index), count]`` draws, planet i's from its block's generator (uniform, or
    standard normal), so they depend only on (seed, planet_index, stream, extra)."""
    out = np.empty((len(planet_index), count))
    blocks = planet_index // BLOCK_SIZE
    for block in np.unique(blocks):
        rng = (block_rng(seed, int(block), STREAM) if not extra else np.random.default_rng(
            np.random.SeedSequence([seed, int(block), STREAM, *extra])))
        draws = (rng.standard_normal if normal else rng.random)((BLOCK_SIZE, count))
        here = blocks == block
        out[here] = draws[planet_index[here] % BLOCK_SIZE]
    return out


def _saturation_bar(t_k: np.ndarray) -> np.ndarray:
    """Water's saturation vapour pressure (bar): over ice below freezing, else the liquid's."""
    ice = 6.11e-3 * np.exp(_LS_OVER_RV_K * (1.0 / FREEZING_K - 1.0 / np.minimum(t_k, FREEZING_K)))
    return np.where(t_k < FREEZING_K, ice, saturation_vapour_pressure_bar(t_k))


def _log_uniform(u, low_log10, high_log10):
    return 10.0 ** (low_log10 + (high_log10 - low_log10) * u)


def spectrum_inputs(population: PlanetPopulation, seed: int = 0, indices=None) -> SpectrumInputs:
    """The planets' spectrum inputs: their columns plus the draws of ``STREAM`` (trace gases,
    cloud deck, distance), for ``indices`` (default all), in that order."""
    rows = population.rows(indices)

    def col(name):
        return np.asarray(getattr(population, name), np.float64)[rows]

    u = dict(zip(_DRAWS, _block_draws(int(seed), np.asarray(population.planet_index)[rows],
                                      len(_DRAWS)).T, strict=True))
    x = {g: col(f"x_{g}") for g in GASES}
    p, g = col("surface_pressure_bar"), col("surface_gravity_ms2")
    t_s = col("surface_temperature_k")
    water, biosphere = col("water_fraction"), col("biosphere").astype(int)
    gaseous = col("planet_radius_rearth") > GASEOUS_RADIUS_REARTH
    mu = sum(x[s] * _MOLAR_MASS_G[s] for s in GASES)
    column_per_m2 = p * 1e5 / (mu * _AMU * g)
    x["o3"] = col("ozone_column_du") * _DU_PER_M2 / column_per_m2
    co_ratio = np.where(water > 0, _log_uniform(u["co"], -5, -3),
                        _log_uniform(u["co"], -3, -1.5))
    co_ratio = co_ratio * np.where(col("star_type") == 0, 10**0.5, 1.0)
    co_ratio = co_ratio * np.where(biosphere > 0, 0.1, 1.0)
    co_ratio = np.where(gaseous, _log_uniform(u["co"], -1, 0.5), co_ratio)
    x["co"] = co_ratio * x["co2"]
    x["n2o"] = np.where(biosphere == 3, _log_uniform(u["n2o"], -7, -5),
                        _log_uniform(u["n2o"], -11, -9))
    warm_wet = water * np.clip((t_s - 250.0) / 100.0, 0.0, 1.0)
    hazy = x["ch4"] > 0.1 * x["co2"]
    chance = np.where(gaseous, 0.5, np.minimum(0.15 + 0.6 * warm_wet + 0.3 * hazy, 1.0))
    top = np.where(gaseous, _log_uniform(u["cloud_top"], -5, -1),
                   p * _log_uniform(u["cloud_top"], -2, np.log10(0.8)))
    cloudy = (u["cloud"] < chance) & (p >= AIRLESS_PRESSURE_BAR)
    lo, hi = _DISTANCE_PC  # p(d) ~ d^2: uniform in volume
    distance = (lo**3 + (hi**3 - lo**3) * u["distance"]) ** (1 / 3)
    a_over_rs = col("semi_major_axis_au") * _AU_M / (col("star_radius_rsun") * _R_SUN_M)
    transit_hours = col("orbital_period_days") * 24.0 / np.pi * np.arcsin(
        np.minimum(1.0 / a_over_rs, 1.0))
    trap = np.minimum(_TRAP_BAR, p)
    cold_point = _COLD_POINT * col("equilibrium_temperature_k")
    above = dict(x, h2o=np.minimum(x["h2o"], _saturation_bar(cold_point) / trap),
                 o3=x["o3"] * p / trap)
    x["o3"] = np.where(trap < p, 0.0, x["o3"])
    return SpectrumInputs(
        planet_radius_rearth=col("planet_radius_rearth"), star_radius_rsun=col("star_radius_rsun"),
        star_teff_k=col("star_teff_k"), gravity_ms2=g,
        temperature_k=col("equilibrium_temperature_k"), surface_pressure_bar=p,
        cloud_top_bar=np.where(cloudy, np.minimum(top, p), p),
        x=np.stack([x[s] for s in SPECIES], axis=1),
        x_above=np.stack([above[s] for s in SPECIES], axis=1), trap_bar=trap,
        distance_pc=distance,
        transit_hours=transit_hours, star_radius_over_a=1.0 / a_over_rs)


# ------------------------------------------------------------------------------ the model
def _bands(bands, nu_cm: np.ndarray, integrated: bool) -> np.ndarray:
    """Sum of bands at wavenumbers ``nu_cm``, each exp(-ln 2 |2 (nu - nu_0) / FWHM|^1.5) times
    its peak, or (``integrated``) scaled so that its integral is the band strength divided by
    _LINE_GAP (but for continua, whose cross section is what it is)."""
    out = np.zeros_like(nu_cm)
    for centre_um, strength, fwhm in bands:
        if integrated:
            gaps = 1.0 if centre_um in _CONTINUUM_BANDS_UM else _LINE_GAP
            peak = strength / (_PROFILE_AREA * fwhm * gaps)
        else:
            peak = strength
        # Floored at e^-200 of the peak: far wings matter to nothing, and subnormal floats
        # would slow every later product and log ~10x.
        exponent = -np.log(2.0) * np.abs(2.0 * (nu_cm - 1e4 / centre_um) / fwhm) ** _PROFILE_POWER
        out += peak * np.exp(np.maximum(exponent, -200.0))
    return out


def cross_sections(wavelength_um: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per molecule ``[len(SPECIES), L]`` cm^2: bands and Rayleigh scattering; per pair
    ``[len(CIA), L]`` cm^5: collision-induced absorption."""
    nu = 1e4 / np.asarray(wavelength_um, np.float64)
    bands = np.stack([_bands(BANDS[s], nu, True) if s in BANDS else np.zeros_like(nu)
                      for s in SPECIES])
    rayleigh = np.stack([_RAYLEIGH_CM2_AT_055UM[s] * (0.55 * nu / 1e4) ** 4 for s in SPECIES])
    return bands, rayleigh, np.stack([_bands(b, nu, False) for b in CIA.values()])


def _subsamples(grid: SpectralGrid) -> np.ndarray:
    offsets = (np.arange(_SUBSAMPLES) + 0.5) / _SUBSAMPLES - 0.5
    return (grid.wavelength_um[:, None] + grid.width_um[:, None] * offsets).reshape(-1)


def model_depth(inputs: SpectrumInputs, instrument="nirspec_prism",
                without: Sequence[str] = ()) -> np.ndarray:
    """Noiseless transit depths (fractions) ``[n, bins]``; ``without`` drops those species'
    band and CIA opacity (not their Rayleigh scattering, which names no gas, and they still
    set mu and refraction), to measure a molecule's imprint."""
    grid = spectral_grid(instrument)
    bands_cm2, rayleigh_cm2, cia_cm5 = cross_sections(_subsamples(grid))
    sigma_cm2 = np.concatenate([bands_cm2, rayleigh_cm2])  # weighted by [x * keep, x]
    keep = np.array([s not in without for s in SPECIES], float)
    out = np.empty((len(inputs), len(grid)))
    for start in range(0, len(inputs), 512):  # bounds memory: ~8 arrays of 512 x 8 x bins
        sub = inputs.take(slice(start, start + 512))
        out[start:start + len(sub)] = _depth(sub, sigma_cm2, cia_cm5, keep, len(grid))
    return out


def _depth(inputs: SpectrumInputs, sigma_cm2, cia_cm5, keep, bins) -> np.ndarray:
    h = inputs.scale_height_m[:, None]
    rp = inputs.planet_radius_rearth[:, None] * _R_EARTH_M
    n_s = inputs.surface_pressure_bar[:, None] * 1e5 / (_K_B * inputs.temperature_k[:, None])
    x = inputs.x * keep
    pairs = np.stack([x[:, SPECIES.index(a)] * x[:, SPECIES.index(b)] for a, b in CIA], axis=1)
    # einsum, not BLAS: an 18-deep product gains nothing from threads, and a threaded BLAS on a
    # busy machine made these three products 10x slower than the rest of the model.
    kappa_m2 = np.einsum("ns,sl->nl", np.hstack([x, inputs.x]), sigma_cm2) * 1e-4
    kappa_above_m2 = np.einsum("ns,sl->nl", np.hstack([inputs.x_above * keep, inputs.x_above]),
                               sigma_cm2) * 1e-4
    k_cia_m5 = np.einsum("np,pl->nl", pairs, cia_cm5) * 1e-10
    column = n_s * np.sqrt(2 * np.pi * rp * h) / _TAU_EQ
    p_s = inputs.surface_pressure_bar[:, None]
    # Refraction: below the altitude where a ray's bending, (n - 1) sqrt(2 pi R_p / H), exceeds
    # the star's angular radius seen from the planet, no starlight reaches the observer.
    refractivity = inputs.x @ np.array([_REFRACTIVITY_STP[s] for s in SPECIES])
    n_bent = (_LOSCHMIDT_M3 * inputs.star_radius_over_a
              / (refractivity * np.sqrt(2 * np.pi * rp[:, 0] / h[:, 0])))
    z_refraction = h * np.log(np.maximum(n_s / n_bent[:, None], 1.0))
    z_trap = h * np.log(p_s / inputs.trap_bar[:, None])
    with np.errstate(divide="ignore"):
        # Two layers: tau = 0.56 is below the trap, above it, or (a water band saturated
        # below and thin above) at it; where the upper layer is the more opaque (ozone), this
        # misses its share of the slant path below the trap: at most ln 2 scale heights.
        z_line = np.maximum(np.minimum(h * np.log(kappa_m2 * column), z_trap),
                            h * np.log(kappa_above_m2 * column))
        z_cia = 0.5 * h * np.log(k_cia_m5 * n_s**2 * np.sqrt(np.pi * rp * h) / _TAU_EQ)
    z_cloud = h * np.log(p_s / inputs.cloud_top_bar[:, None])
    z = np.maximum(np.maximum(z_line, z_cia), np.maximum(z_cloud, z_refraction))
    z = np.minimum(z, h * np.log(np.maximum(p_s / _TOP_BAR, 1.0)))
    z = np.where(inputs.airless[:, None], 0.0, z)
    rs = inputs.star_radius_rsun[:, None] * _R_SUN_M
    return (((rp + z) / rs) ** 2).reshape(len(inputs), bins, _SUBSAMPLES).mean(axis=2)


# ------------------------------------------------------------------------------ the noise
def _photon_flux(teff_k, radius_rsun, distance_pc, wavelength_um) -> np.ndarray:
    """Photons s^-1 m^-2 um^-1 at the observer, ``[n, L]``, from a blackbody star."""
    lam = np.asarray(wavelength_um)[None, :] * 1e-6
    t = np.asarray(teff_k)[:, None]
    dilution = ((np.asarray(radius_rsun) * _R_SUN_M / (np.asarray(distance_pc) * _PC_M)) ** 2)
    photon_radiance = 2.0 * _C / lam**4 / np.expm1(_H * _C / (lam * _K_B * t))  # per m, sr
    return np.pi * photon_radiance * dilution[:, None] * 1e-6


def noise_sigma(inputs: SpectrumInputs, instrument="nirspec_prism", n_transits=1) -> np.ndarray:
    """1-sigma depth errors ``[n, bins]`` (fractions) after ``n_transits`` (a number, or one
    per planet): sqrt(photon^2 / n + floor^2)."""
    grid = spectral_grid(instrument)
    n = np.asarray(n_transits, np.float64)
    if np.any(~(n > 0)) or n.ndim > 1 or (n.ndim == 1 and len(n) != len(inputs)):
        raise ValueError(f"n_transits must be positive, one number or one per planet "
                         f"({len(inputs)}), got {n_transits!r}")
    rate = (_photon_flux(inputs.star_teff_k, inputs.star_radius_rsun, inputs.distance_pc,
                         grid.wavelength_um) * grid.width_um
            * _JWST_AREA_M2 * grid.per_bin("throughput"))
    # Brighter than the bright limit: observed as if at the limit (the rest saturates).
    excess = np.maximum(grid.per_bin("bright_limit_j")[None, :] - inputs.j_mag[:, None], 0.0)
    counts = rate * 10.0 ** (-0.4 * excess) * inputs.transit_hours[:, None] * 3600.0
    photon = np.sqrt(2.0 / counts)
    floor = grid.per_bin("floor_ppm") * 1e-6
    return np.sqrt(photon**2 / np.reshape(n, (-1, 1) if n.ndim else ()) + floor**2)


def noise_draws(population: PlanetPopulation, instrument="nirspec_prism", seed: int = 0,
                indices=None, realisation: int = 0) -> np.ndarray:
    """Standard normal ``[n, bins]`` of ``realisation``; each instrument's bins draw from their
    own generator (seeded with its name), so a concatenated grid repeats the single ones."""
    grid = spectral_grid(instrument)
    planets = np.asarray(population.planet_index)[population.rows(indices)]
    parts = [_block_draws(int(seed), planets, int(np.sum(grid.instrument == k)), 1,
                          int(realisation), zlib.crc32(name.encode()), normal=True)
             for k, name in enumerate(grid.instruments)]
    return np.concatenate(parts, axis=1)


def planet_spectra(population: PlanetPopulation, instrument="nirspec_prism", n_transits=1,
                   seed: int = 0, indices=None, noise: bool = True, realisation: int = 0
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(depth [n, bins], sigma [n, bins], wavelength_um [bins])`` of the planets at ``indices``
    (default all): depths as fractions, noisy (``noise=True``: one draw of ``realisation``) or
    the noiseless model; ``sigma`` the 1-sigma errors after ``n_transits``."""
    grid = spectral_grid(instrument)
    inputs = spectrum_inputs(population, seed, indices)
    depth = model_depth(inputs, grid)
    sigma = noise_sigma(inputs, grid, n_transits)
    if noise:
        depth = depth + sigma * noise_draws(population, grid, seed, indices, realisation)
    return depth, sigma, grid.wavelength_um.copy()


# ------------------------------------------------------------------------------ labels
@dataclasses.dataclass(frozen=True, eq=False)
class SpectrumLabels:
    """What a retrieval is asked for, per planet: ``log10_x [n, len(MOLECULES)]`` (true volume
    mixing ratios, floored at 1e-12), each molecule's ``imprint_snr`` (its signal against the
    errors, see :func:`spectrum_labels`) and ``present`` (imprint_snr >= PRESENCE_SNR)."""

    log10_x: np.ndarray
    imprint_snr: np.ndarray
    present: np.ndarray


def spectrum_labels(population: PlanetPopulation, instrument="nirspec_prism", seed: int = 0,
                    indices=None, n_transits=None) -> SpectrumLabels:
    """Per-molecule labels. A molecule's imprint is the noiseless spectrum minus the spectrum
    without its opacity; its SNR is sqrt(sum over bins of (imprint / sigma)^2), with sigma the
    systematic floor alone (``n_transits=None``: as many transits as it takes) or the errors
    after ``n_transits``. It is *present* when that SNR reaches PRESENCE_SNR (5): detectable,
    in principle, against the instrument's floor."""
    grid = spectral_grid(instrument)
    inputs = spectrum_inputs(population, seed, indices)
    full = model_depth(inputs, grid)
    sigma = (np.broadcast_to(grid.per_bin("floor_ppm") * 1e-6, full.shape) if n_transits is None
             else noise_sigma(inputs, grid, n_transits))
    snr = np.stack([np.sqrt((((full - model_depth(inputs, grid, (m,))) / sigma) ** 2).sum(1))
                    for m in MOLECULES], axis=1)
    log10_x = np.log10(np.maximum(np.stack([inputs.mixing_ratio(m) for m in MOLECULES], 1),
                                  1e-12))
    return SpectrumLabels(log10_x=log10_x, imprint_snr=snr, present=snr >= PRESENCE_SNR)


# Kempton et al. (2018), table 1: the scale factor of each radius bin (R_earth upper bounds).
_TSM_SCALE = ((1.5, 0.190), (2.75, 1.26), (4.0, 1.28), (10.0, 1.15))


def transmission_metric(population: PlanetPopulation, seed: int = 0, indices=None) -> np.ndarray:
    """Kempton et al. (2018)'s transmission spectroscopy metric, from what a catalogue holds
    (radius, mass, the star's radius and T_eff, the orbit) and the host's J magnitude drawn
    here: scale x R_p^3 T_eq / (M_p R_s^2) x 10^(-J / 5), T_eq for zero albedo and full
    redistribution. Observers rank JWST targets by it; a fusion dataset can give spectra to
    the planets an observer would have chosen."""
    rows = population.rows(indices)
    inputs = spectrum_inputs(population, seed, rows)
    radius = inputs.planet_radius_rearth
    t_eq = inputs.star_teff_k * np.sqrt(inputs.star_radius_over_a) * 0.25**0.25
    bounds, scales = zip(*_TSM_SCALE, strict=True)
    scale = np.array(scales)[np.minimum(np.searchsorted(bounds, radius), len(scales) - 1)]
    mass = np.asarray(population.planet_mass_mearth, np.float64)[rows]
    return (scale * radius**3 * t_eq / (mass * inputs.star_radius_rsun**2)
            * 10.0 ** (-inputs.j_mag / 5.0))
