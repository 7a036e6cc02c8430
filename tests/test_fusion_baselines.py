"""The fusion model's baselines' building blocks (evaluators): the catalogue row as features,
the binned single-input rule fitted on train planets, and the binary report (against
scikit-learn). The benchmark that uses them is benchmarks/fusion_baselines.py."""

import numpy as np
import pytest

from astrojax.data.generator.observe import CATALOGUE_COLUMNS
from astrojax.data.planets import CatalogueSource, PlanetTable
from astrojax.evaluators import (
    BinnedRule,
    best_single_input_rule,
    binary_report,
    catalogue_row_features,
)


def test_catalogue_row_features_are_what_the_catalogue_source_gives():
    table = PlanetTable.observed(200, seed=3)
    rows = np.array([5, 0, 199, 17])
    x, names = catalogue_row_features(table, rows)
    assert x.shape == (4, 2 * len(CATALOGUE_COLUMNS))
    assert names[:len(CATALOGUE_COLUMNS)] == CATALOGUE_COLUMNS
    assert names[len(CATALOGUE_COLUMNS)] == f"{CATALOGUE_COLUMNS[0]}_known"
    source = CatalogueSource(table, np.arange(200), CATALOGUE_COLUMNS)
    values, known = x[:, :len(CATALOGUE_COLUMNS)], x[:, len(CATALOGUE_COLUMNS):]
    for i, row in enumerate(rows):
        element = source[row]
        np.testing.assert_array_equal(known[i], element["known"].astype(np.float64))
        np.testing.assert_array_equal(np.isnan(values[i]), ~element["known"])
        np.testing.assert_allclose(np.nan_to_num(values[i]), element["values"], rtol=1e-6)
    # the observed table has gaps, and they are NaN here
    assert np.isnan(catalogue_row_features(table)[0]).any()
    # a mask marking a finite value unknown hides it
    hidden = dict(table.known, star_teff_k=np.zeros(200, bool))
    masked = PlanetTable(table.ids, table.population, hidden, "test table")
    x, _ = catalogue_row_features(masked, columns=("star_teff_k",))
    assert np.isnan(x[:, 0]).all() and (x[:, 1] == 0).all()
    with pytest.raises(ValueError, match="'star_type' is not a float column"):
        catalogue_row_features(table, columns=("star_type",))
    with pytest.raises(KeyError, match="no column 'teff'"):
        catalogue_row_features(table, columns=("teff",))


def test_the_binned_rule_learns_rates_and_a_bin_for_unknowns():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 20000)
    rate = np.where(x < 0.5, 0.1, 0.8)
    x[:4000] = np.nan
    rate[:4000] = 0.5
    y = rng.random(20000) < rate
    rule = BinnedRule.fit(x, y, bins=8)
    probe = np.array([0.1, 0.3, 0.7, 0.95, np.nan])
    np.testing.assert_allclose(rule(probe), [0.1, 0.1, 0.8, 0.8, 0.5], atol=0.04)
    assert rule(np.array([-5.0, 7.0])).tolist() == [rule.rates[0], rule.rates[-2]]
    with pytest.raises(ValueError, match="not infinite"):
        rule(np.array([np.inf]))
    with pytest.raises(ValueError, match="both classes"):
        BinnedRule.fit(x, np.zeros(20000, bool))


def test_the_best_single_input_is_chosen_out_of_fold():
    rng = np.random.default_rng(1)
    signal = rng.normal(size=3000)
    y = np.abs(signal) < 0.6  # a band: no threshold finds it, the binned rule does
    inputs = {f"noise_{i}": rng.normal(size=3000) for i in range(5)}
    inputs["band"] = signal
    name, rule, auc = best_single_input_rule(inputs, y, bins=16)
    assert name == "band" and auc > 0.9
    assert rule(np.array([0.0]))[0] > 0.8 and rule(np.array([2.0]))[0] < 0.2
    with pytest.raises(ValueError, match="input 'short' has 10 values for 3000 labels"):
        best_single_input_rule({"short": np.zeros(10)}, y)


def test_binary_report_matches_scikit_learn():
    from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score

    rng = np.random.default_rng(2)
    y = rng.random(500) < 0.2
    p = np.clip(0.2 + 0.3 * y + 0.2 * rng.normal(size=500), 0, 1).round(2)  # ties
    report = binary_report(y, p)
    assert report["auc"] == pytest.approx(roc_auc_score(y, p))
    assert report["ap"] == pytest.approx(average_precision_score(y, p))
    assert report["accuracy"] == pytest.approx(accuracy_score(y, p >= 0.5))
    assert report["count"] == 500
    # ECE by hand: four planets, each alone in its confidence bin
    small = binary_report([0, 1, 1, 0], [0.2, 0.7, 0.4, 0.1])
    assert small["ece"] == pytest.approx((0.2 + 0.3 + 0.6 + 0.1) / 4)
    assert np.isnan(binary_report([0, 0], [0.1, 0.2])["auc"])
    with pytest.raises(ValueError, match="probabilities in"):
        binary_report([0, 1], [0.5, np.nan])
