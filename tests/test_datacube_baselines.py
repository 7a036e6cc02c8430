"""The closed-form rules and summary-statistic models the datacube model is measured against:
exact where the physics says they are, and fitted on train data only."""

import numpy as np
import pytest

from astrojax.data import generator
from astrojax.data.generator import climate
from astrojax.evaluators.cube_baselines import (
    _skin_plateau,
    cube_baseline_report,
    rule_predictions,
    summarize,
    summary_features,
)
from astrojax.evaluators.metrics import r2_score

GRID = climate.CubeGrid(time_steps=2, levels=4, lat=8, lon=8)


@pytest.fixture(scope="module")
def planets():
    pop = generator.generate_population(300, seed=0)
    cubes = climate.planet_cubes(pop, GRID, seed=0)
    names, labels = climate.cube_labels(pop)
    names = (*names, "climate_regime")
    labels = np.concatenate([labels, pop.climate_regime[:, None]], axis=1).astype(np.float64)
    lat = climate.grid_coordinates(GRID)["lat"]
    return summarize(cubes, climate.CUBE_VARIABLES, lat), labels, names


def test_rules_read_the_labels_off_the_cube(planets):
    summaries, labels, names = planets
    rules = rule_predictions(summaries, climate.CUBE_VARIABLES, names)
    column = {name: labels[:, names.index(name)] for name in names}
    assert rules["surface_temperature_k"][0] == "area_mean_surface_t"
    assert r2_score(column["surface_temperature_k"], rules["surface_temperature_k"][1]) > 0.9999
    np.testing.assert_array_equal(rules["climate_regime"][1], column["climate_regime"])
    np.testing.assert_array_equal(rules["tidally_locked"][1], column["tidally_locked"])
    assert r2_score(column["relative_humidity"], rules["relative_humidity"][1]) > 0.95
    teq = rules["equilibrium_temperature_k"][1]
    covered = np.isfinite(teq)
    assert 0.2 < covered.mean() < 0.9  # some planets never cool to the skin temperature
    np.testing.assert_allclose(teq[covered], column["equilibrium_temperature_k"][covered],
                               atol=0.01)
    assert summaries["no_atmosphere"].any() and covered[summaries["no_atmosphere"]].all()


def test_skin_plateau_needs_columns_over_different_surfaces():
    surface = np.array([300.0, 280.0, 260.0, 240.0])
    assert _skin_plateau(np.array([210.0, 200.0, 200.0, 200.0]), surface) == 200.0
    # Only one column reaches its floor: no evidence of a plateau.
    assert np.isnan(_skin_plateau(np.array([210.0, 200.0, 205.0, 203.0]), surface))
    # Mirror images of a symmetric planet share their top and their surface: not a plateau.
    mirrored = np.array([300.0, 300.0, 260.0, 260.0])
    assert np.isnan(_skin_plateau(np.array([210.0, 210.0, 190.0, 190.0]), mirrored))
    # Columns that do not cool with height (no atmosphere, or colder than the skin) are skipped.
    assert np.isnan(_skin_plateau(surface, surface))


@pytest.mark.slow  # two L-BFGS logistic fits to compile (~20 s on a busy 2-core CPU)
def test_report_fits_on_train_only_and_names_metrics(planets):
    summaries, labels, names = planets
    train = {k: v[:200] for k, v in summaries.items()}
    test = {k: v[200:] for k, v in summaries.items()}
    report = cube_baseline_report(train, test, labels[:200], labels[200:], names,
                             climate.CUBE_VARIABLES)
    assert report["area_mean_surface_t/r2/surface_temperature_k"] > 0.9999
    assert report["longitude_variance/accuracy/tidally_locked"] == 1.0
    assert report["regime_bounds_of_area_mean_t/accuracy/climate_regime"] == 1.0
    assert 0.0 < report["skin_plateau/coverage/equilibrium_temperature_k"] < 1.0
    for name in ("surface_temperature_k", "equilibrium_temperature_k",
                 "log10_surface_pressure_bar", "relative_humidity"):
        assert np.isfinite(report[f"summary_ridge/r2/{name}"]), name
    for name in ("tidally_locked", "climate_regime"):
        assert 0.0 < report[f"majority/accuracy/{name}"] <= report[
            f"summary_logistic/accuracy/{name}"], name
    # The held-out labels are only scored, never fitted: scrambling them moves no prediction.
    shuffled = labels[200:][np.random.default_rng(0).permutation(100)]
    again = cube_baseline_report(train, test, labels[:200], shuffled, names, climate.CUBE_VARIABLES)
    assert again["summary_ridge/r2/equilibrium_temperature_k"] < 0.2
    assert summary_features(test).shape == (100, 4 * 5 * 4 + 1)
