"""Tests for the built-in synthetic planet population: physics, determinism, labels, text."""

import numpy as np
import pytest

from astrojax.data import generator as syn

NUM = 4096


@pytest.fixture(scope="module")
def pop() -> syn.PlanetPopulation:
    return syn.generate_population(NUM, seed=0)


@pytest.fixture(scope="module")
def texts(pop) -> list[str]:
    return pop.descriptions()


# ------------------------------------------------------------------ physics against the planets
def test_sun_and_earth_orbit():
    assert syn.stellar_luminosity(1.0, 5772.0) == pytest.approx(1.0)
    assert syn.insolation(1.0, 1.0) == pytest.approx(1.0)
    assert syn.insolation(1.0, 2.0) == pytest.approx(0.25)
    assert syn.orbital_period_days(1.0, 1.0) == pytest.approx(365.25)
    assert syn.planet_mass_from_radius(1.0) == pytest.approx(1.0)
    assert syn.surface_gravity(1.0, 1.0) == pytest.approx(9.81)


def test_earth_temperatures():
    t_eq = syn.equilibrium_temperature(1.0, 0.3)
    assert t_eq == pytest.approx(255.0, abs=3.0)
    tau = syn.greenhouse_optical_depth(1.0, x_co2=4.2e-4, x_ch4=1.8e-6, x_h2o=0.01)
    assert syn.surface_temperature(t_eq, tau) == pytest.approx(288.0, abs=5.0)
    assert syn.climate_regime(syn.surface_temperature(t_eq, tau)) == 2  # temperate


def test_venus_and_mars():
    # Venus: 0.723 AU, Bond albedo 0.76, 92 bar of 96.5% CO2, 30 ppm H2O; observed 737 K.
    t_eq = syn.equilibrium_temperature(syn.insolation(1.0, 0.723), 0.76)
    tau = syn.greenhouse_optical_depth(92.0, x_co2=0.965, x_ch4=0.0, x_h2o=3e-5)
    assert syn.surface_temperature(t_eq, tau) == pytest.approx(737.0, abs=60.0)
    # Mars: 1.524 AU, albedo 0.25, 6 mbar of 95% CO2; observed ~210 K, barely any greenhouse.
    t_eq = syn.equilibrium_temperature(syn.insolation(1.0, 1.524), 0.25)
    tau = syn.greenhouse_optical_depth(0.006, x_co2=0.95, x_ch4=0.0, x_h2o=2e-4)
    assert syn.surface_temperature(t_eq, tau) == pytest.approx(210.0, abs=10.0)
    assert syn.surface_temperature(t_eq, tau) - t_eq < 2.0


def test_water_phase_boundaries():
    assert syn.boiling_point_k(1.01325) == pytest.approx(373.15, abs=0.5)
    assert syn.boiling_point_k(10.0) > syn.boiling_point_k(1.0) > syn.boiling_point_k(0.1)
    assert syn.boiling_point_k(1e4) == pytest.approx(647.0)
    assert syn.saturation_vapour_pressure_bar(373.15) == pytest.approx(1.01325, rel=1e-3)
    pressures = np.array([0.05, 1.0, 20.0])
    np.testing.assert_allclose(syn.saturation_vapour_pressure_bar(syn.boiling_point_k(pressures)),
                               pressures)
    ok = syn.liquid_water_possible([288.0, 260.0, 288.0, 288.0, 400.0],
                                   [1.0, 1.0, 0.001, 1.0, 1.0], [0.7, 0.7, 0.7, 0.0, 0.7])
    np.testing.assert_array_equal(ok, [True, False, False, False, False])


def test_climate_regime_thresholds():
    regimes = syn.climate_regime([100.0, 229.9, 250.0, 290.0, 400.0, 501.0])
    np.testing.assert_array_equal(regimes, [0, 0, 1, 2, 3, 4])


def test_columns_obey_the_physics(pop):
    np.testing.assert_allclose(pop.star_luminosity_lsun,
                               syn.stellar_luminosity(pop.star_radius_rsun, pop.star_teff_k))
    np.testing.assert_allclose(pop.insolation_searth,
                               syn.insolation(pop.star_luminosity_lsun, pop.semi_major_axis_au))
    np.testing.assert_allclose(pop.orbital_period_days, syn.orbital_period_days(
        pop.semi_major_axis_au, pop.star_mass_msun))
    np.testing.assert_allclose(pop.equilibrium_temperature_k,
                               syn.equilibrium_temperature(pop.insolation_searth, pop.bond_albedo))
    tau = syn.greenhouse_optical_depth(pop.surface_pressure_bar, pop.x_co2, pop.x_ch4, pop.x_h2o)
    np.testing.assert_allclose(pop.greenhouse_tau, tau)
    np.testing.assert_allclose(pop.surface_temperature_k,
                               syn.surface_temperature(pop.equilibrium_temperature_k, tau))
    assert np.all(pop.surface_temperature_k >= pop.equilibrium_temperature_k)


# ------------------------------------------------------------------ determinism
def _assert_same(a: syn.PlanetPopulation, b: syn.PlanetPopulation) -> None:
    assert len(a) == len(b)
    for name, col in a.columns().items():
        np.testing.assert_array_equal(col, b.columns()[name], err_msg=name)


def test_same_seed_same_population(pop, texts):
    again = syn.generate_population(NUM, seed=0)
    _assert_same(pop, again)
    assert again.descriptions() == texts


def test_different_seed_different_population(pop):
    other = syn.generate_population(NUM, seed=1)
    assert not np.array_equal(pop.star_teff_k, other.star_teff_k)
    assert not np.array_equal(pop.surface_temperature_k, other.surface_temperature_k)
    assert set(pop.name).isdisjoint(other.name)


@pytest.mark.parametrize("small,large", [(100, 5000), (1500, 3000), (1, 1024)])
def test_small_population_is_prefix_of_large(small, large):
    a, b = syn.generate_population(small, seed=3), syn.generate_population(large, seed=3)
    _assert_same(a, syn.PlanetPopulation(**{k: v[:small] for k, v in b.columns().items()}))
    assert a.descriptions() == b.descriptions()[:small]


# ------------------------------------------------------------------ population invariants
def test_mixing_ratios_are_fractions_summing_to_one(pop):
    x = np.stack([pop.columns()[f"x_{g}"] for g in syn.GASES])
    assert np.all((x >= 0) & (x <= 1))
    np.testing.assert_allclose(x.sum(axis=0), 1.0, atol=1e-12)


def test_no_nan_or_inf(pop):
    for name, col in pop.columns().items():
        if col.dtype.kind in "fi":
            assert np.all(np.isfinite(col)), name


def test_labels_are_consistent(pop):
    t, p = pop.surface_temperature_k, pop.surface_pressure_bar
    life = pop.biosphere > 0
    assert np.all(pop.liquid_water[life]) and np.all(pop.habitable[life])
    assert np.all(pop.liquid_water[pop.habitable])
    liquid = pop.liquid_water
    assert np.all((t[liquid] > 273.15) & (t[liquid] < syn.boiling_point_k(p[liquid])))
    assert np.all((p[liquid] >= 0.01) & (pop.water_fraction[liquid] > 0))
    assert np.all(pop.planet_radius_rearth[pop.habitable] <= syn.GASEOUS_RADIUS_REARTH)
    np.testing.assert_array_equal(pop.climate_regime, syn.climate_regime(t))
    assert np.all(t[pop.climate_regime == 0] < 230.0) and np.all(t[pop.climate_regime == 4] >= 500)
    np.testing.assert_array_equal(pop.biosignature, syn.biosignature_present(pop.x_o2, pop.x_ch4))


def test_biosphere_shapes_the_atmosphere(pop):
    abiotic = pop.habitable & (pop.biosphere == 0)
    oxygenic, methanogenic = pop.biosphere == 3, pop.biosphere == 1
    assert np.median(pop.x_o2[oxygenic]) > 1e3 * np.median(pop.x_o2[abiotic])
    assert np.median(pop.ozone_column_du[oxygenic]) > 10 * np.median(pop.ozone_column_du[abiotic])
    assert np.median(pop.x_ch4[methanogenic]) > 100 * np.median(pop.x_ch4[abiotic])
    assert np.all(pop.x_ch4[methanogenic] > 1e-4) and np.all(pop.biosignature[methanogenic])
    assert not np.any(pop.biosignature[pop.biosphere == 0])


def test_every_class_is_well_represented(pop):
    labels = {"biosphere": (pop.biosphere, syn.BIOSPHERE_CLASSES),
              "climate_regime": (pop.climate_regime, syn.CLIMATE_REGIMES),
              "star_type": (pop.star_type, syn.STAR_TYPES),
              "habitable": (pop.habitable.astype(int), (False, True)),
              "biosignature": (pop.biosignature.astype(int), (False, True))}
    for label, (values, classes) in labels.items():
        share = np.bincount(values, minlength=len(classes)) / len(values)
        print(label, {str(c): round(float(f), 3) for c, f in zip(classes, share, strict=True)})
        assert share.min() >= 0.03, label


# ------------------------------------------------------------------ records and text
def test_records_are_python_scalars(pop):
    rec = pop[7]
    assert set(rec) == set(syn.PlanetPopulation.column_names())
    assert rec["planet_index"] == 7 and rec["name"] == "ASTRO-0-000007 b"
    assert all(type(v) in (int, float, bool, str) for v in rec.values())
    assert pop[-1]["planet_index"] == NUM - 1
    with pytest.raises(IndexError):
        pop[NUM]
    assert next(iter(pop.records())) == pop[0]


def test_descriptions_state_the_planets_own_numbers(pop, texts):
    assert len(texts) == NUM
    for rec, text in zip(pop.records(), texts, strict=True):
        assert text.isascii() and 250 <= len(text) <= 600, text
        assert rec["name"] in text
        assert f"{rec['star_teff_k']:.0f} K" in text
        assert f"{rec['surface_temperature_k']:.0f} K" in text
        assert f"{rec['equilibrium_temperature_k']:.0f} K" in text
        assert syn.CLIMATE_REGIMES[rec["climate_regime"]] in text
        assert ("uninhabitable" in text or "not habitable" in text) != rec["habitable"]


def test_templates_vary_but_agree(pop):
    rec = pop[0]
    variants = [syn.describe_planet(rec, v) for v in range(16)]
    assert len(set(variants)) >= 8
    assert all(f"{rec['insolation_searth']:.3f}"[:4] in v for v in variants)
    assert syn.describe_planet(rec, 5) == syn.describe_planet(rec, 5)


# ------------------------------------------------------------------ bad arguments
@pytest.mark.parametrize("kwargs,name", [
    ({"num_planets": 0}, "num_planets"), ({"num_planets": -5}, "num_planets"),
    ({"num_planets": 2.5}, "num_planets"), ({"num_planets": True}, "num_planets"),
    ({"num_planets": 10, "seed": -1}, "seed"), ({"num_planets": 10, "seed": "a"}, "seed"),
])
def test_bad_arguments_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        syn.generate_population(**kwargs)
