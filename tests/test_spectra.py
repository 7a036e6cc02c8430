"""Transmission spectra: the generator's physics, noise, grids and labels; reading and resampling
real spectrum files; the planet source."""

import dataclasses

import numpy as np
import pytest

from astrojax.data.formats.spectra import SpectrumFileError, read_spectrum, resample
from astrojax.data.generator import BLOCK_SIZE, generate_population
from astrojax.data.generator.spectra import (
    INSTRUMENTS,
    MOLECULES,
    SPECIES,
    SpectrumInputs,
    model_depth,
    noise_draws,
    noise_sigma,
    planet_spectra,
    spectral_grid,
    spectrum_inputs,
    spectrum_labels,
    transmission_metric,
)
from astrojax.data.planets import JointSource, PlanetTable, SpectrumSource, TextSource

DATA = "tests/data/spectra"
WIDE = "nirspec_prism+miri_lrs"


@pytest.fixture(scope="module")
def population():
    return generate_population(1000, seed=0)


@pytest.fixture(scope="module")
def wide(population):
    """The noiseless model on NIRSpec PRISM + MIRI LRS, and depths in scale heights."""
    inputs = spectrum_inputs(population, seed=0)
    depth = model_depth(inputs, WIDE)
    unit = (2 * inputs.planet_radius_rearth * 6.371e6 * inputs.scale_height_m
            / (inputs.star_radius_rsun * 6.957e8) ** 2)
    clear = (inputs.cloud_top_bar == inputs.surface_pressure_bar) & ~inputs.airless
    return inputs, depth, unit, clear


def one_planet(temperature_k=300.0, x=None, pressure_bar=1.0, cloud_top_bar=None):
    """A single planet, 1 R_earth at 9.81 m/s^2 around a 0.2 R_sun star, well mixed."""
    x_ = np.array([[(x or {}).get(s, 0.0) for s in SPECIES]])
    one = np.ones(1)
    return SpectrumInputs(
        planet_radius_rearth=one, star_radius_rsun=0.2 * one, star_teff_k=3000.0 * one,
        gravity_ms2=9.81 * one, temperature_k=temperature_k * one,
        surface_pressure_bar=pressure_bar * one,
        cloud_top_bar=(cloud_top_bar or pressure_bar) * one, x=x_, x_above=x_.copy(),
        trap_bar=min(0.1, pressure_bar) * one, distance_pc=10.0 * one,
        transit_hours=one, star_radius_over_a=0.02 * one)


def imprint(inputs, depth, molecule, unit):
    """What ``molecule`` adds to each bin, in scale heights (2 R_p H / R_s^2)."""
    return (depth - model_depth(inputs, WIDE, (molecule,))) / unit[:, None]


# ------------------------------------------------------------------------------ physics
def test_features_scale_with_the_scale_height():
    gases = {"h2o": 1e-3, "co2": 1e-3}
    cool = one_planet(250.0, dict(gases, n2=0.998))  # mu 28
    hot = one_planet(600.0, dict(gases, h2=0.85, n2=0.148))  # mu 6, H ~11x larger
    ratio_h = hot.scale_height_m[0] / cool.scale_height_m[0]
    assert 8 < ratio_h < 15
    spans = [np.ptp(model_depth(p, "nirspec_prism")[0]) for p in (cool, hot)]
    assert spans[0] > 20e-6  # the cool planet has features too
    assert 0.5 * ratio_h < spans[1] / spans[0] < 2.0 * ratio_h


def test_features_of_every_planet_follow_its_scale_height(population, wide):
    inputs, depth, unit, clear = wide
    gaseous = population.planet_radius_rearth > 1.6  # H2 envelopes: low mu, large H
    mu = inputs.mean_molecular_weight
    assert mu[gaseous].max() < 10 and np.median(mu[~gaseous & ~inputs.airless]) > 25
    rows = np.flatnonzero(clear)
    hotter = inputs.take(rows)
    hotter = dataclasses.replace(hotter, temperature_k=2 * hotter.temperature_k)  # H x 2
    ratio = np.ptp(model_depth(hotter, WIDE), axis=1) / np.ptp(depth[rows], axis=1)
    assert np.all((1.7 < ratio) & (ratio < 3.2)) and abs(np.median(ratio) - 2.0) < 0.25


def test_clouds_mute_bands(wide):
    inputs, depth, unit, clear = wide
    rows = np.flatnonzero(clear)
    sub = inputs.take(rows)
    cloudy = dataclasses.replace(sub, cloud_top_bar=1e-3 * sub.surface_pressure_bar)
    muted = model_depth(cloudy, WIDE)
    assert np.all(muted >= depth[rows] - 1e-15)  # the deck only hides what lies below it
    spans, muted_spans = np.ptp(depth[rows], axis=1), np.ptp(muted, axis=1)
    assert np.all(muted_spans <= spans + 1e-15)
    assert np.median(muted_spans / spans) < 0.8
    # and the population's own cloudy planets are flatter, in scale heights, than its clear ones
    cloudy_rows = ~clear & ~inputs.airless
    span_in_h = np.ptp(depth, axis=1) / unit
    assert np.median(span_in_h[cloudy_rows]) < 0.8 * np.median(span_in_h[clear])


def test_an_airless_planet_is_flat(population, wide):
    inputs, depth, _, clear = wide
    airless = population.surface_pressure_bar < 1e-3
    assert airless.sum() > 50 and np.array_equal(airless, inputs.airless)
    baseline = (inputs.planet_radius_rearth * 6.371e6 / (inputs.star_radius_rsun * 6.957e8))**2
    np.testing.assert_allclose(depth[airless], np.broadcast_to(baseline[airless, None],
                                                               depth[airless].shape), rtol=1e-12)
    assert np.all(np.ptp(depth[~airless & clear], axis=1) > 0)


def test_the_methane_band_appears_only_where_methane_is_abundant(wide):
    inputs, depth, unit, clear = wide
    band = (spectral_grid(WIDE).wavelength_um > 3.2) & (spectral_grid(WIDE).wavelength_um < 3.45)
    ch4 = inputs.mixing_ratio("ch4")
    added = imprint(inputs, depth, "ch4", unit)
    assert np.all(added >= -1e-12)
    assert added[(ch4 < 1e-7) & ~inputs.airless].max() < 1.0  # anywhere in the spectrum
    rich = (ch4 >= 1e-4) & clear
    assert rich.sum() >= 20 and added[rich][:, band].max(axis=1).min() > 3.0
    medians = [np.median(added[(ch4 >= lo) & (ch4 < lo * 10) & clear][:, band].max(axis=1))
               for lo in (1e-7, 1e-6, 1e-5, 1e-4)]
    assert np.all(np.diff(medians) > 0), medians


def test_oxygen_and_ozone_follow_oxygenic_biospheres(population, wide):
    inputs, depth, unit, clear = wide
    grid = spectral_grid(WIDE)
    a_band = (grid.wavelength_um > 0.74) & (grid.wavelength_um < 0.78)
    o2 = imprint(inputs, depth, "o2", unit)[:, a_band].max(axis=1)
    o3 = imprint(inputs, depth, "o3", unit).max(axis=1)
    oxygenic = population.biosphere == 3
    anoxic = ~oxygenic & (inputs.mixing_ratio("o2") < 1e-4)
    assert (oxygenic & clear).sum() >= 10
    assert np.median(o2[oxygenic & clear]) > 0.2 and np.median(o3[oxygenic & clear]) > 0.5
    assert o2[anoxic].max() < 0.05 and o3[anoxic].max() < 0.2
    # every O2 feature comes from an oxygen-rich air: mostly a biosphere's, the rest abiotic
    # (steam atmospheres that lost their hydrogen: the population's false positives)
    assert np.all(inputs.mixing_ratio("o2")[o2 > 0.05] > 5e-4)
    assert oxygenic[o2 > 0.05].mean() > 0.5


# ------------------------------------------------------------------------------ noise
def test_noise_falls_as_one_over_root_transits(population):
    floor = INSTRUMENTS["nirspec_prism"].floor_ppm * 1e-6
    photon = np.sqrt(noise_sigma(spectrum_inputs(population), "nirspec_prism", 1) ** 2
                     - floor**2)
    # the faintest hosts, in bins where photon noise beats the floor 4x even after 30 transits
    dominated = photon > 4 * floor * np.sqrt(30)
    faint = np.argsort(dominated.sum(axis=1))[-3:]
    bins = dominated[faint]
    assert bins.sum() > 100
    model, _, _ = planet_spectra(population, n_transits=1, indices=faint, noise=False)
    std = {}
    for n in (1, 3, 10, 30):
        draws = [planet_spectra(population, n_transits=n, indices=faint, realisation=r)
                 for r in range(50)]
        residual = np.stack([d for d, _, _ in draws]) - model
        sigma = draws[0][1]
        np.testing.assert_allclose(sigma**2, photon[faint] ** 2 / n + floor**2, rtol=1e-9)
        assert abs(np.mean((residual / sigma) ** 2) - 1.0) < 0.04  # the draws have std sigma
        std[n] = residual.std(axis=0)[bins]
    for n in (3, 10, 30):
        assert abs(np.mean(std[1] / std[n]) / np.sqrt(n) - 1.0) < 0.05
    # the systematic floor does not average down
    np.testing.assert_allclose(noise_sigma(spectrum_inputs(population, indices=[0]),
                                           "nirspec_prism", 1e9), floor, rtol=1e-3)
    # and fainter stars are noisier
    inputs = spectrum_inputs(population, indices=faint[:1])
    near, far = (noise_sigma(dataclasses.replace(inputs, distance_pc=np.array([d])),
                             "nirspec_prism", 1) for d in (30.0, 60.0))
    assert np.all(far > near)


def test_noise_arguments_are_checked(population):
    with pytest.raises(ValueError, match="n_transits must be positive"):
        planet_spectra(population, n_transits=0, indices=[0])
    with pytest.raises(ValueError, match="one per planet \\(2\\)"):
        planet_spectra(population, n_transits=[1, 2, 3], indices=[0, 1])
    with pytest.raises(ValueError, match="unknown instrument 'nirspec'; known: nirspec_prism"):
        planet_spectra(population, "nirspec", indices=[0])


# ------------------------------------------------------------------------------ determinism
def test_spectra_depend_only_on_seed_and_planet(population):
    small = generate_population(100, seed=0)
    a = planet_spectra(small, WIDE, n_transits=3)
    b = planet_spectra(population, WIDE, n_transits=3)
    for x, y in zip(a[:2], b[:2], strict=True):
        np.testing.assert_array_equal(x, y[:100])
    again = planet_spectra(small, WIDE, n_transits=3)
    np.testing.assert_array_equal(a[0], again[0])
    assert not np.array_equal(a[0], planet_spectra(small, WIDE, n_transits=3, seed=1)[0])
    assert not np.array_equal(a[0], planet_spectra(small, WIDE, 3, realisation=1)[0])
    # rows across a block boundary, in any order, are the rows of the whole
    big = generate_population(BLOCK_SIZE + 20, seed=0)
    rows = [BLOCK_SIZE + 7, 3, BLOCK_SIZE]
    whole = planet_spectra(big, n_transits=3)[0]
    np.testing.assert_array_equal(planet_spectra(big, n_transits=3, indices=rows)[0],
                                  whole[rows])


def test_instrument_grids():
    for name, lo, hi, r in (("nirspec_prism", 0.6, 5.3, (29, 101)),
                            ("niriss_soss", 0.6, 2.8, (99, 101)),
                            ("miri_lrs", 5.0, 12.0, (39, 51))):
        grid = spectral_grid(name)
        edges_lo = grid.wavelength_um - grid.width_um / 2
        edges_hi = grid.wavelength_um + grid.width_um / 2
        assert edges_lo[0] == pytest.approx(lo) and edges_hi[-1] == pytest.approx(hi)
        np.testing.assert_allclose(edges_hi[:-1], edges_lo[1:], rtol=1e-12)  # tiled
        resolving = grid.wavelength_um / grid.width_um
        assert r[0] < resolving.min() and resolving.max() < r[1]
        assert 30 <= len(grid) <= 200
    prism = spectral_grid("nirspec_prism")
    assert prism.width_um[np.argmin(abs(prism.wavelength_um - 1.2))] > 0.035  # R ~ 30
    both = spectral_grid(["niriss_soss", "miri_lrs"])
    assert both.name == "niriss_soss+miri_lrs" and len(both) == sum(
        len(spectral_grid(n)) for n in ("niriss_soss", "miri_lrs"))
    population = generate_population(10, seed=0)
    np.testing.assert_array_equal(  # a concatenated grid repeats each instrument's draws
        noise_draws(population, both)[:, both.instrument == 1], noise_draws(population, "miri_lrs"))


def test_labels(population, wide):
    labels = spectrum_labels(population, WIDE)
    assert labels.present.shape == (1000, len(MOLECULES))
    x = {m: labels.log10_x[:, k] for k, m in enumerate(MOLECULES)}
    for gas in ("h2o", "co2", "ch4", "o2"):
        np.testing.assert_allclose(x[gas], np.log10(np.maximum(
            getattr(population, f"x_{gas}"), 1e-12)))
    # present only where abundant, never on airless planets, fewer with fewer transits
    present = dict(zip(MOLECULES, labels.present.T, strict=True))
    assert 0 < present["ch4"].sum() and x["ch4"][present["ch4"]].min() > -6.0
    assert 0 < present["co2"].sum() and not labels.present[wide[0].airless].any()
    few = spectrum_labels(population, WIDE, n_transits=1)
    assert np.all(few.present <= labels.present) and few.present.sum() < labels.present.sum()
    # N2O only from oxygenic biospheres
    assert np.all(x["n2o"][population.biosphere != 3] < -8.9)
    assert np.all(x["n2o"][population.biosphere == 3] > -7.1)


def test_the_transmission_metric_ranks_observable_planets(population, wide):
    inputs, depth, _, _ = wide
    tsm = transmission_metric(population)
    i = 7  # by hand: Kempton et al. (2018), eq. 1, a rocky planet (scale 0.190)
    assert population.planet_radius_rearth[i] < 1.5
    t_eq = population.star_teff_k[i] * np.sqrt(inputs.star_radius_over_a[i]) / np.sqrt(2)
    assert tsm[i] == pytest.approx(0.190 * population.planet_radius_rearth[i] ** 3 * t_eq
                                   / population.planet_mass_mearth[i]
                                   / population.star_radius_rsun[i] ** 2
                                   * 10 ** (-inputs.j_mag[i] / 5))
    prism = model_depth(inputs, "nirspec_prism")
    snr = np.sqrt((((prism - prism.min(axis=1, keepdims=True))
                    / noise_sigma(inputs, "nirspec_prism", 10)) ** 2).sum(axis=1))
    top = tsm >= np.quantile(tsm, 0.75)
    assert np.median(snr[top]) > 1.5 * np.median(snr[~top])


# ------------------------------------------------------------------------------ the source
def test_spectrum_source_is_keyed_by_planet_and_joins():
    table = PlanetTable.synthetic(300, seed=0)
    rows = np.array([7, 3, 250])
    source = SpectrumSource(table, rows, n_transits=10)
    depth, sigma, wavelength = planet_spectra(table.population, n_transits=10, indices=rows)
    for i, row in enumerate(rows):
        element = source[i]
        assert element["planet"] == row and element["depth"].dtype == np.float32
        np.testing.assert_allclose(element["depth"], depth[i], rtol=1e-6)
        np.testing.assert_allclose(element["sigma"], sigma[i], rtol=1e-6)
        assert element["known"].all() and element["known"].shape == wavelength.shape
    per_row = SpectrumSource(table, rows, n_transits=np.array([1, 10, 30]))
    np.testing.assert_array_equal(per_row[1]["sigma"], source[1]["sigma"])
    assert np.all(per_row[0]["sigma"] > source[0]["sigma"])
    joint = JointSource(TextSource(table, rows), source)
    assert set(joint[1]) == {"planet", "text", "depth", "sigma", "known"}
    catalogue = PlanetTable(table.ids, table.population, table.known, "a catalogue")
    with pytest.raises(ValueError, match="a catalogue: transmission spectra exist for the "
                                         "built-in population only"):
        SpectrumSource(catalogue, rows)


# ------------------------------------------------------------------------------ reading
def write(path, text):
    path.write_text(text)
    return path


def test_reader_round_trip(tmp_path, population):
    grid = spectral_grid("nirspec_prism")
    depth, sigma, wavelength = planet_spectra(population, grid, 3, indices=[25])
    from astropy.table import Table

    table = Table({"wavelength": wavelength, "bin_width": grid.width_um,
                   "depth": depth[0] * 1e6, "depth_err": sigma[0] * 1e6})
    for name in ("wavelength", "bin_width"):
        table[name].unit = "um"
    for name in ("depth", "depth_err"):
        table[name].unit = "ppm"
    table.write(tmp_path / "s.ecsv", format="ascii.ecsv")
    lines = ["# a comment", "wavelength (um), depth, error, bin_width (um)"]
    lines += [", ".join(repr(float(v)) for v in row)
              for row in zip(wavelength, depth[0], sigma[0], grid.width_um, strict=True)]
    write(tmp_path / "s.csv", "\n".join(lines))
    for path, unit, origin in ((tmp_path / "s.ecsv", "ppm", "file"),
                               (tmp_path / "s.csv", "fraction", "detected")):
        spectrum = read_spectrum(path)
        assert (spectrum.depth_unit, spectrum.unit_origin) == (unit, origin)
        np.testing.assert_allclose(spectrum.depth, depth[0], rtol=1e-12)
        back, back_sigma, known = resample(spectrum, grid)
        assert known.all()
        np.testing.assert_allclose(back, depth[0], rtol=1e-9)
        np.testing.assert_allclose(back_sigma, sigma[0], rtol=1e-6)


def test_resampling_carries_errors_like_a_direct_computation():
    rng = np.random.default_rng(0)
    edges = np.sort(rng.uniform(1.0, 3.0, 301))
    from astrojax.data.formats.spectra import ObservedSpectrum

    data = ObservedSpectrum("random", 0.5 * (edges[1:] + edges[:-1]), edges[:-1], edges[1:],
                            rng.normal(0.01, 1e-4, 300), rng.uniform(1e-5, 1e-4, 300),
                            "fraction", "test")
    grid = spectral_grid("nirspec_prism")
    depth, sigma, known = resample(data, grid)
    for b, (c, w) in enumerate(zip(grid.wavelength_um, grid.width_um, strict=True)):
        lo, hi = c - w / 2, c + w / 2
        covered = weights = weighted = variance = 0.0
        for i in range(300):
            overlap = max(0.0, min(edges[i + 1], hi) - max(edges[i], lo))
            share = overlap / (edges[i + 1] - edges[i])
            weight = share / data.sigma[i] ** 2
            covered, weights = covered + overlap, weights + weight
            weighted += weight * data.depth[i]
            variance += weight**2 * data.sigma[i] ** 2
        if covered / w < 0.5:
            assert not known[b] and np.isnan(depth[b])
            continue
        assert known[b]
        assert depth[b] == pytest.approx(weighted / weights, rel=1e-12)
        assert sigma[b] == pytest.approx(np.sqrt(variance) / weights, rel=1e-12)
    assert known.sum() > 30 and not known.all()
    # data bins wholly inside one grid bin: the error of the inverse-variance mean
    inside = ObservedSpectrum("inside", np.array([1.1, 1.3, 1.5, 1.7]),
                              np.array([1.0, 1.2, 1.4, 1.6]), np.array([1.2, 1.4, 1.6, 1.8]),
                              np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 2.0, 1.0]),
                              "fraction", "test")
    d, s, k = resample(inside, (np.array([1.4, 3.0]), np.array([0.8, 0.2])))
    assert d[0] == pytest.approx((1 + 2 / 4 + 3 / 4 + 4) / (1 + 1 / 4 + 1 / 4 + 1))
    assert s[0] == pytest.approx(1 / np.sqrt(2.5)) and k.tolist() == [True, False]


def test_the_example_files_read():
    prism = read_spectrum(f"{DATA}/prism_ppm.txt")
    assert (prism.depth_unit, prism.unit_origin, len(prism)) == ("ppm", "file", 142)
    soss = read_spectrum(f"{DATA}/soss_percent.ecsv")
    assert (soss.depth_unit, soss.unit_origin) == ("percent", "file")
    miri = read_spectrum(f"{DATA}/miri_edges.csv")
    assert (miri.depth_unit, miri.unit_origin) == ("fraction", "detected")
    for spectrum in (prism, soss, miri):
        assert 0.005 < np.median(spectrum.depth) < 0.01  # the same sub-Neptune, as fractions
        assert np.all(spectrum.sigma > 0) and np.all(spectrum.sigma < 1e-3)
    assert miri.lower_um[0] == 5.0 and miri.wavelength_um[0] == pytest.approx(5.061545)
    depth, _, known = resample(soss, spectral_grid("nirspec_prism"))
    assert known[spectral_grid("nirspec_prism").wavelength_um < 2.7].all() and not known.all()


@pytest.mark.parametrize("text, message", [
    ("wavelength depth\n1.0 100\n", r"f\.txt: no error column \(looked for error, err, "),
    ("wave depth error\n1.0 100 10\n0.9 110 10\n", r"f\.txt line 3: wavelength 0\.9 um does not"
                                                    r" increase \(line 2: 1 um\)"),
    ("# c\nwave depth err\n1.0 100 10\n1.1 110 -3\n", r"f\.txt line 4: error -3 in column 'err'"
                                                      " is not positive"),
    ("wave depth(mmag) err\n1.0 100 10\n", r"f\.txt: unknown unit 'mmag' of column "
                                           r"'depth\(mmag\)' \(depth units: ppm"),
    ("wave depth err\n1.0 1e2 x\n", r"f\.txt line 2: column 'err' has 'x', not a number"),
    ("wave depth err\n1.0 0.2 0.1\n1.1 3 0.1\n", r"f\.txt: cannot tell the unit of column "
                                                 "'depth'"),
    ("wave depth err\n600 100 10\n", r"f\.txt: column 'wave' runs 600\.\.600: nm or Angstrom"),
    ("wave depth err\n1.0 100\n", r"f\.txt line 2: 2 fields, the header names 3 columns"),
    ("1.0 100 10\n", r"f\.txt: no header line naming the columns before the data \(line 1\)"),
    ("wave depth err\n1.0 nan 10\n", r"f\.txt line 2: column 'depth' is nan"),
])
def test_each_file_error_names_the_file_and_place(tmp_path, text, message):
    with pytest.raises(SpectrumFileError, match=message):
        read_spectrum(write(tmp_path / "f.txt", text))


def test_units_from_the_caller_and_ecsv_errors(tmp_path):
    path = write(tmp_path / "f.txt", "wave depth err\n600 0.5 0.01\n700 0.6 0.01\n")
    spectrum = read_spectrum(path, depth_unit="percent", wavelength_unit="nm")
    np.testing.assert_allclose(spectrum.wavelength_um, [0.6, 0.7])
    np.testing.assert_allclose(spectrum.depth, [0.005, 0.006])
    assert (spectrum.depth_unit, spectrum.unit_origin) == ("percent", "argument")
    ecsv = write(tmp_path / "f.ecsv", "# %ECSV 1.0\n# ---\n# datatype:\n"
                 "# - {name: wavelength, unit: um, datatype: float64}\n"
                 "# - {name: depth, unit: furlong, datatype: float64}\n"
                 "# - {name: error, datatype: float64}\n"
                 "# schema: astropy-2.0\nwavelength depth error\n1.0 100 10\n")
    with pytest.raises(SpectrumFileError, match=r"f\.ecsv: unknown unit 'furlong' of column "
                                                "'depth'"):
        read_spectrum(ecsv)
    with pytest.raises(SpectrumFileError, match=r"nowhere\.txt: no such file"):
        read_spectrum(tmp_path / "nowhere.txt")
