"""The observation model (generator/observe.py) and the catalogue rules that check it for leaks
(evaluators/catalogue_baselines.py)."""

import dataclasses

import numpy as np
import pytest

from astrojax.data.generator import generate_population
from astrojax.data.generator.climate import planet_cubes
from astrojax.data.generator.observe import (
    CATALOGUE_COLUMNS,
    HYPOTHESIS_CLASS_PROBABILITIES,
    LOG10_MIXING_RATIO_FLOOR,
    MEASURED,
    MODALITIES,
    RETRIEVAL_TARGETS,
    AssumedAtmosphere,
    CatalogueModel,
    assumed_population,
    hypothesised_biospheres,
    hypothesised_networks,
    modality_masks,
    modellable,
    observe_catalogue,
    planet_labels,
)
from astrojax.data.generator.physics import (
    ASSUMED_BOND_ALBEDO,
    GASES,
    climate_state,
    equilibrium_temperature,
)
from astrojax.data.planets import CatalogueSource, PlanetTable, TextSource, split_planets
from astrojax.evaluators.catalogue_baselines import (
    conservative_habitable_zone,
    habitable_zone_flux,
    habitable_zone_margin,
    single_input_aucs,
)

N = 4096
# Log-normal columns and the true value an archive would publish from perfect measurements.
LOGNORMAL = ("star_teff_k", "star_radius_rsun", "star_mass_msun", "star_luminosity_lsun",
             "semi_major_axis_au", "orbital_period_days", "planet_radius_rearth",
             "planet_mass_mearth", "surface_gravity_ms2", "insolation_searth",
             "equilibrium_temperature_k")
HIDDEN = ("water_fraction", "relative_humidity", "bond_albedo", "surface_pressure_bar",
          "greenhouse_tau", "surface_temperature_k", *(f"x_{g}" for g in GASES),
          "ozone_column_du", "liquid_water", "habitable", "biosphere", "biosignature",
          "climate_regime")


@pytest.fixture(scope="module")
def population():
    return generate_population(N, seed=3)


@pytest.fixture(scope="module")
def catalogue(population):
    return observe_catalogue(population, seed=3)


def _reference(population, column):
    if column == "equilibrium_temperature_k":  # archives assume the albedo; so does the truth here
        return equilibrium_temperature(population.insolation_searth, ASSUMED_BOND_ALBEDO)
    return np.asarray(getattr(population, column), np.float64)


def _equal_catalogues(a, b):
    np.testing.assert_array_equal(a.transiting, b.transiting)
    np.testing.assert_array_equal(a.star_type, b.star_type)
    for column in CATALOGUE_COLUMNS:
        np.testing.assert_array_equal(a.values[column], b.values[column], err_msg=column)
        np.testing.assert_array_equal(a.errors[column], b.errors[column], err_msg=column)


def test_planet_i_depends_only_on_seed_and_i(population, catalogue):
    _equal_catalogues(catalogue, observe_catalogue(population, seed=3))
    small = generate_population(1100, seed=3)
    prefix = observe_catalogue(small, seed=3)
    cut = {c: catalogue.values[c][:1100] for c in CATALOGUE_COLUMNS}
    for column in CATALOGUE_COLUMNS:
        np.testing.assert_array_equal(prefix.values[column], cut[column], err_msg=column)
    assert modality_masks(prefix)["spectrum"].tolist() == \
        modality_masks(catalogue)["spectrum"][:1100].tolist()
    # another seed observes the same planets differently
    other = observe_catalogue(population, seed=4)
    assert not np.array_equal(other.values["star_teff_k"], catalogue.values["star_teff_k"])


def test_the_catalogue_holds_no_hidden_truth(population, catalogue):
    assert tuple(catalogue.values) == CATALOGUE_COLUMNS
    observed, known = catalogue.as_population()
    for column in HIDDEN:
        assert not known[column].any(), column
    assert np.isnan(observed.surface_temperature_k).all() and (observed.biosphere == -1).all()
    assert not observed.habitable.any()
    # The equilibrium temperature is the archives' (albedo 0.3), never the planet's own.
    has = catalogue.known("equilibrium_temperature_k")
    np.testing.assert_allclose(catalogue.values["equilibrium_temperature_k"][has],
                               equilibrium_temperature(catalogue.values["insolation_searth"][has],
                                                       ASSUMED_BOND_ALBEDO))
    # Changing everything an observer cannot see changes nothing in what they see.
    rng = np.random.default_rng(0)
    hidden = {name: rng.permutation(np.asarray(getattr(population, name))) for name in HIDDEN}
    _equal_catalogues(catalogue, observe_catalogue(dataclasses.replace(population, **hidden), 3))


def test_missing_rates_follow_the_model(catalogue):
    m = CatalogueModel()
    tol = 0.025
    share = {c: catalogue.known(c).mean() for c in CATALOGUE_COLUMNS}
    assert abs(catalogue.transiting.mean() - m.transit_fraction) < tol
    assert abs(share["star_teff_k"] - m.teff_known) < tol
    assert abs(share["star_mass_msun"] - m.star_mass_known) < tol
    assert share["orbital_period_days"] == 1.0
    transiting = catalogue.transiting
    radius = catalogue.known("planet_radius_rearth")
    assert not radius[~transiting].any()  # radial-velocity planets have no radius
    assert abs(radius[transiting].mean() - m.star_radius_known) < tol
    mass = catalogue.known("planet_mass_mearth")
    assert mass[~transiting].all()
    assert abs(mass[transiting].mean() - m.mass_known_if_transiting) < tol
    ecc = catalogue.known("eccentricity")
    assert abs(ecc[mass].mean() - m.eccentricity_known_with_mass) < 0.04
    assert abs(ecc[~mass].mean() - m.eccentricity_known_without_mass) < tol
    # derived columns exist exactly where their inputs do
    assert np.array_equal(catalogue.known("insolation_searth"),
                          catalogue.known("star_teff_k") & catalogue.known("star_radius_rsun")
                          & catalogue.known("star_mass_msun"))
    assert np.array_equal(catalogue.known("surface_gravity_ms2"), radius & mass)
    for column in CATALOGUE_COLUMNS:
        assert np.array_equal(np.isfinite(catalogue.errors[column]), catalogue.known(column))


def _log_z(population, catalogue, column):
    keep = catalogue.known(column) & catalogue.transiting  # RV masses are M sin i
    obs = catalogue.values[column][keep]
    return (np.log(obs) - np.log(_reference(population, column)[keep])) / (
        catalogue.errors[column][keep] / obs)


def test_errors_are_the_published_sigmas(population, catalogue):
    for column in LOGNORMAL:
        z = _log_z(population, catalogue, column)
        assert abs(z.mean()) < 0.1 and abs(z.std() - 1.0) < 0.06, (column, z.mean(), z.std())
    # the median relative error of a measured column is the configured one
    m = CatalogueModel()
    for column, configured in (("star_teff_k", m.teff_error), ("star_mass_msun", m.star_mass_error),
                               ("planet_mass_mearth", m.planet_mass_error)):
        known = catalogue.known(column)
        rel = np.median(catalogue.errors[column][known] / catalogue.values[column][known])
        assert abs(rel / configured - 1.0) < 0.05, (column, rel)
    # eccentricity: absolute errors, folded at 0; away from 0 the error is the sigma
    e = catalogue.known("eccentricity") & (population.eccentricity > 0.1)
    z = (catalogue.values["eccentricity"] - population.eccentricity)[e] / catalogue.errors[
        "eccentricity"][e]
    assert e.sum() > 100 and abs(np.median(np.abs(z)) - 0.674) < 0.12


def test_errors_scale_with_the_configured_errors(population, catalogue):
    doubled = CatalogueModel(**{f.name: 2 * getattr(CatalogueModel(), f.name)
                                for f in dataclasses.fields(CatalogueModel)
                                if f.name.endswith("_error")})
    loud = observe_catalogue(population, seed=3, model=doubled)
    for column in ("star_teff_k", "insolation_searth", "planet_radius_rearth"):
        known = catalogue.known(column)
        quiet_err = np.log(catalogue.values[column][known] / _reference(population, column)[known])
        loud_err = np.log(loud.values[column][known] / _reference(population, column)[known])
        np.testing.assert_allclose(loud_err, 2 * quiet_err, rtol=1e-9, atol=1e-12)
        assert abs(_log_z(population, loud, column).std() - 1.0) < 0.06
    # the planet masses of radial-velocity planets are M sin i: biased low, never high
    rv = ~catalogue.transiting
    ratio = catalogue.values["planet_mass_mearth"][rv] / population.planet_mass_mearth[rv]
    assert 0.65 < np.median(ratio) < 0.95


def test_bad_models_are_refused():
    with pytest.raises(ValueError, match="CatalogueModel.teff_error"):
        CatalogueModel(teff_error=0.0)
    with pytest.raises(ValueError, match="CatalogueModel.transit_fraction"):
        CatalogueModel(transit_fraction=1.5)
    with pytest.raises(ValueError, match="modality_masks.spectrum"):
        modality_masks(observe_catalogue(generate_population(10)), spectrum=-0.1)
    with pytest.raises(ValueError, match="AssumedAtmosphere.dry_pressure_bar"):
        AssumedAtmosphere(dry_pressure_bar=0.0)
    with pytest.raises(ValueError, match="seed"):
        observe_catalogue(generate_population(10), seed=-1)


def test_modality_masks_follow_their_rates(catalogue):
    masks = modality_masks(catalogue)
    assert tuple(masks) == MODALITIES and masks["catalogue"].all()
    can_climate = catalogue.known("planet_radius_rearth") & catalogue.known("insolation_searth")
    assert not (masks["spectrum"] & ~catalogue.transiting).any()
    assert not (masks["climate"] & ~can_climate).any()
    assert not (masks["network"] & ~can_climate).any()  # hypothesised from the modeller's world
    assert np.array_equal(modellable(catalogue), can_climate)
    tol = 0.03
    assert abs(masks["spectrum"][catalogue.transiting].mean() - 0.3) < tol
    assert abs(masks["climate"][can_climate].mean() - 0.15) < tol
    assert abs(masks["network"][can_climate].mean() - 0.1) < tol
    assert abs(masks["text"].mean() - 0.2) < tol
    other = modality_masks(catalogue, spectrum=1.0, climate=0.0, network=0.5)
    assert np.array_equal(other["spectrum"], catalogue.transiting) and not other["climate"].any()
    assert np.array_equal(other["text"], masks["text"])  # independent draws per modality
    assert (masks["network"] <= other["network"]).all()
    assert abs(other["network"][can_climate].mean() - 0.5) < tol


def test_labels_match_the_population(population):
    labels = planet_labels(population)
    assert np.array_equal(labels["habitable"], population.habitable)
    assert np.array_equal(labels["biosignature"], population.biosignature)
    assert np.array_equal(labels["biosphere"], population.biosphere)
    assert np.array_equal(labels["climate_regime"], population.climate_regime)
    assert set(RETRIEVAL_TARGETS) <= set(labels)
    np.testing.assert_allclose(labels["log10_surface_pressure_bar"],
                               np.log10(population.surface_pressure_bar))
    co2 = population.x_co2 > 1e-12
    np.testing.assert_allclose(labels["log10_x_co2"][co2], np.log10(population.x_co2[co2]))
    assert labels["log10_x_co2"].min() >= LOG10_MIXING_RATIO_FLOOR


def test_the_modeller_assumes_the_atmosphere_and_solves_its_climate(population, catalogue):
    assumed = assumed_population(catalogue)
    modelled = catalogue.known("planet_radius_rearth") & catalogue.known("insolation_searth")
    assert np.isnan(assumed.surface_temperature_k[~modelled]).all()
    dry = 1.0 - assumed.x_h2o[modelled]
    np.testing.assert_allclose(assumed.surface_pressure_bar[modelled] * dry, 1.0, rtol=1e-9)
    np.testing.assert_allclose(assumed.x_co2[modelled] / dry, 4e-4, rtol=1e-9)
    assert (assumed.x_o2[modelled] == 0).all() and (assumed.biosphere[modelled] == 0).all()
    # its climate is the solver's fixed point for the observed insolation
    idx = np.flatnonzero(modelled)[:200]
    ones = np.ones(len(idx))
    again = climate_state(assumed.surface_temperature_k[idx], catalogue.values[
        "insolation_searth"][idx], 0.3 * ones, 0.7 * ones, 0.77 * ones, ones, 1e-6 * ones,
        {"n2": (1 - 4e-4) * ones, "o2": 0 * ones, "co2": 4e-4 * ones, "ch4": 0 * ones,
         "h2": 0 * ones})
    np.testing.assert_allclose(again["surface_temperature_k"], assumed.surface_temperature_k[idx],
                               atol=1e-6)
    # an Earth twin is Earth's temperature under the assumption, whatever its true atmosphere
    earth = np.flatnonzero(modelled & (np.abs(catalogue.values["insolation_searth"] - 1) < 0.02))
    assert len(earth) and np.all(np.abs(assumed.surface_temperature_k[earth] - 289) < 6)
    assert np.ptp(population.surface_temperature_k[earth]) > 50
    # the true atmosphere is not used; a warmer assumption warms every planet
    rng = np.random.default_rng(1)
    hidden = {name: rng.permutation(np.asarray(getattr(population, name))) for name in HIDDEN}
    again = assumed_population(observe_catalogue(dataclasses.replace(population, **hidden), 3))
    np.testing.assert_array_equal(again.surface_temperature_k, assumed.surface_temperature_k)
    warm = assumed_population(catalogue, AssumedAtmosphere(dry_pressure_bar=2.0, x_co2=0.01))
    assert (warm.surface_temperature_k[modelled] > assumed.surface_temperature_k[modelled]).all()
    # the cubes of the modeller's world: their mean surface level is its temperature
    rows = np.flatnonzero(modelled)[:6]
    cubes = planet_cubes(assumed, seed=3, indices=rows)
    lat = np.radians(-90.0 + (np.arange(cubes.shape[-2]) + 0.5) * 180.0 / cubes.shape[-2])
    weights = np.cos(lat) / np.cos(lat).sum()
    mean_surface = np.einsum("ntyx,y->n", cubes[:, 0, :, 0].astype(np.float64), weights) / (
        cubes.shape[2] * cubes.shape[-1])
    np.testing.assert_allclose(mean_surface, assumed.surface_temperature_k[rows], rtol=1e-4)


def test_the_habitable_zone_on_known_cases():
    assert habitable_zone_flux(5780.0, "runaway_greenhouse") == pytest.approx(1.107)
    assert habitable_zone_flux(5780.0, "maximum_greenhouse") == pytest.approx(0.356)
    teff = [5772.0, 5772.0, 5772.0, 5772.0, 3000.0, 3000.0, np.nan]
    s = [1.0, 1.91, 0.43, 0.3, 0.95, 0.5, 1.0]  # Earth, Venus, Mars, beyond, M-dwarf planets
    assert conservative_habitable_zone(teff, s).tolist() == [True, False, True, False, False,
                                                             True, False]
    margin = habitable_zone_margin(teff, s)
    assert margin[0] == pytest.approx(np.log(habitable_zone_flux(5772.0, "runaway_greenhouse")))
    assert np.isnan(margin[-1])
    with pytest.raises(KeyError, match="no habitable-zone limit 'inner'"):
        habitable_zone_flux(5772.0, "inner")


def test_single_input_rules_find_a_leak_and_only_a_leak():
    rng = np.random.default_rng(0)
    x = rng.normal(size=3000)
    band = np.abs(x) < 0.5
    scores = single_input_aucs(x, band)
    assert scores["interval"] > 0.95 and scores["binned"] > 0.95 and scores["threshold"] < 0.6
    assert single_input_aucs(-x, x > 0.3)["threshold"] == pytest.approx(1.0)
    noise = single_input_aucs(rng.normal(size=3000), band)
    assert noise["best"] < 0.56
    # unknown values carry what their pattern carries: here, the label itself
    hidden = np.where(band, np.nan, rng.normal(size=3000))
    assert single_input_aucs(hidden, band)["best"] > 0.99


def test_the_observed_table_reads_like_a_catalogue(catalogue, tmp_path):
    table = PlanetTable.observed(300, seed=3)
    assert np.array_equal(table.ids, PlanetTable.synthetic(300, seed=3).ids)
    assert np.array_equal(split_planets(table.ids, 0.1, 0.1).val,
                          split_planets(catalogue.name[:300].astype(str), 0.1, 0.1).val)
    rows = np.arange(300)
    source = CatalogueSource(table, rows, CATALOGUE_COLUMNS)
    for row in (0, 17, 299):
        element = source[row]
        expected = np.array([catalogue.values[c][row] for c in CATALOGUE_COLUMNS])
        assert element["known"].tolist() == np.isfinite(expected).tolist()
        np.testing.assert_allclose(element["values"], np.nan_to_num(expected), rtol=1e-6)
    with pytest.raises(ValueError, match="built-in population only"):
        TextSource(table, rows)
    # written as a catalogue file and read back by from_catalog: the same rows
    from astropy.table import Table

    file = Table({name: values for name, values in table.population.columns().items()})
    for name in ("liquid_water", "habitable", "biosignature"):
        file[f"{name}_known"] = table.known[name]
    file.write(tmp_path / "catalog.ecsv", format="ascii.ecsv")
    real = PlanetTable.from_catalog(tmp_path)
    again = CatalogueSource(real, rows, CATALOGUE_COLUMNS)
    np.testing.assert_array_equal(again.known, source.known)
    np.testing.assert_array_equal(again[5]["values"], source[5]["values"])
    assert {c for c, k in real.known.items() if k.any()} == {c for c, k in table.known.items()
                                                            if k.any()}


def test_measured_and_derived_columns_are_the_catalogue_schema():
    from astrojax.data.archives.catalog import DERIVABLE
    from astrojax.data.archives.catalog import MEASURED as ARCHIVE_MEASURED

    assert set(CATALOGUE_COLUMNS) == set(ARCHIVE_MEASURED) | set(DERIVABLE)
    assert set(MEASURED) <= set(ARCHIVE_MEASURED)


def _reactions(networks):
    return [net.reaction_ids for net in networks]


def test_hypothesised_biospheres_follow_the_modellers_world_only(population, catalogue):
    assumed = assumed_population(catalogue)
    hypothesis = hypothesised_biospheres(catalogue, seed=3)
    assert np.array_equal(hypothesis < 0, ~modellable(catalogue))
    assert (hypothesis[modellable(catalogue) & ~assumed.habitable] == 0).all()
    drawn = hypothesis[assumed.habitable]
    assert len(drawn) > 300 and (drawn > 0).all()
    shares = np.bincount(drawn, minlength=4)[1:] / len(drawn)
    np.testing.assert_allclose(shares, HYPOTHESIS_CLASS_PROBABILITIES, atol=0.08)
    # independent of the truth: as often on truly lifeless planets as on inhabited ones
    alive = population.biosphere[assumed.habitable] > 0
    assert abs((drawn[alive] == 3).mean() - (drawn[~alive] == 3).mean()) < 0.15
    only = hypothesised_biospheres(catalogue, 3, class_probabilities=(0.0, 0.0, 1.0))
    assert (only[assumed.habitable] == 3).all()
    assert not np.array_equal(hypothesised_biospheres(catalogue, 4)[assumed.habitable], drawn)


def test_hypothesised_networks_depend_only_on_the_catalogue_row(population, catalogue):
    from astrojax.data.generator.biochem import generate_networks

    rows = np.flatnonzero(modellable(catalogue))
    rows = np.concatenate([rows[:60], rows[(rows >= 1024) & (rows < 1100)][:20]])
    networks = hypothesised_networks(catalogue, 3, indices=rows)
    assert _reactions(hypothesised_networks(catalogue, 3, indices=rows)) == _reactions(networks)
    # a small population's networks are the prefix of a larger one's (across a block edge)
    small = observe_catalogue(generate_population(1100, seed=3), seed=3)
    assert _reactions(hypothesised_networks(small, 3, indices=rows)) == _reactions(networks)
    # planets whose catalogue rows match but whose hidden truth differs get the same network
    rng = np.random.default_rng(2)
    hidden = {name: rng.permutation(np.asarray(getattr(population, name))) for name in HIDDEN}
    twin = observe_catalogue(dataclasses.replace(population, **hidden), seed=3)
    assert _reactions(hypothesised_networks(twin, 3, indices=rows)) == _reactions(networks)
    # ... unlike the true networks, which follow the true biosphere and atmosphere
    true = generate_networks(population, 3, indices=rows)
    true_twin = generate_networks(dataclasses.replace(population, **hidden), 3, indices=rows)
    assert _reactions(true) != _reactions(true_twin)
    assert _reactions(hypothesised_networks(catalogue, 4, indices=rows)) != _reactions(networks)


def test_hypothesised_networks_run_the_assumed_chemistry(catalogue):
    hypothesis = hypothesised_biospheres(catalogue, 3)
    alive = np.flatnonzero(hypothesis > 0)[:40]
    rows = np.concatenate([alive, np.flatnonzero(hypothesis == 0)[:40]])
    for row, net in zip(rows, hypothesised_networks(catalogue, 3, indices=rows), strict=True):
        reactions = set(net.reaction_ids)
        # the assumed air: N2 and CO2 (and vapour); no O2 or CH4 whatever the planet has
        assert {"EX_n2_e", "EX_co2_e"} <= reactions, net.name
        assert not {"EX_o2_e", "EX_ch4_e", "O3F"} & reactions, net.name
        cellular = any(m.endswith("_c") for m in net.metabolite_ids)
        assert cellular == (hypothesis[row] > 0), net.name
        assert net.name == catalogue.name[row]


def test_unmodellable_planets_have_no_hypothesised_network(catalogue):
    blind = np.flatnonzero(~modellable(catalogue))
    with pytest.raises(ValueError, match=f"planet {catalogue.name[blind[0]]} .*cannot be "
                                         "modelled"):
        hypothesised_networks(catalogue, 3, indices=[int(np.flatnonzero(modellable(catalogue))[0]),
                                                     int(blind[0])])
    assert not modality_masks(catalogue, network=1.0)["network"][blind].any()
    for seed in (-1, 2.5, True):
        with pytest.raises(ValueError, match="seed must be a non-negative integer"):
            hypothesised_networks(catalogue, seed, indices=[0])
    with pytest.raises(ValueError, match="class_probabilities"):
        hypothesised_biospheres(catalogue, 3, class_probabilities=(0.5, 0.5))
    with pytest.raises(IndexError, match="out of range"):
        hypothesised_networks(catalogue, 3, indices=[N])
