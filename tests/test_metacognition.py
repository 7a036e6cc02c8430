"""astrojax.metacognition without a model: temperature scaling, ECE, selective prediction,
information gain, the cost table, and the catalogue derivations acquisition relies on."""

import numpy as np
import pytest

from astrojax.config import ConfigError
from astrojax.config.sections import MetacognitionConfig
from astrojax.data.generator import generate_population
from astrojax.data.generator.observe import CatalogueModel, observe_catalogue
from astrojax.evaluators.metrics import roc_auc
from astrojax.metacognition import (
    accuracy_at_coverage,
    aurc,
    budget_curve,
    calibration_report,
    disagreement,
    ensemble_probability,
    fit_temperature,
    information_gain,
    max_probability,
    reliability_curve,
    risk_coverage,
    selective_report,
    threshold_for_coverage,
)
from astrojax.metacognition.acquisition import check_config, derive
from astrojax.metacognition.calibration import sigmoid


def overconfident(n=20000, temperature=2.5, seed=0):
    """Logits whose true probabilities are sigmoid(z / temperature): a model that is
    ``temperature`` times too sure."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 3.0, n)
    y = rng.random(n) < sigmoid(z / temperature)
    return z, y


def test_temperature_scaling_recovers_the_temperature_and_fixes_the_ece():
    z, y = overconfident()
    t = fit_temperature(z, y)
    assert t == pytest.approx(2.5, rel=0.05)
    before, after = calibration_report(y, sigmoid(z)), calibration_report(y, sigmoid(z / t))
    assert before["ece"] > 0.1 and after["ece"] < 0.02
    assert after["nll"] < before["nll"]
    assert after["auc"] == pytest.approx(before["auc"])  # one monotone map: the ranking stays
    assert 0 < after["ece_bootstrap_se"] < 0.02


def test_an_ensemble_is_scaled_member_by_member_then_averaged():
    z = np.array([[0.0, 2.0, -4.0], [2.0, 0.0, 4.0]])
    p = ensemble_probability(z, 2.0)
    assert np.allclose(p, 0.5 * (sigmoid(z[0] / 2) + sigmoid(z[1] / 2)))
    assert np.allclose(ensemble_probability(z[0], 2.0), sigmoid(z[0] / 2))
    with pytest.raises(ValueError, match="both classes"):
        fit_temperature(z[0], np.zeros(3))


def test_reliability_curve_bins_the_probability():
    p = np.array([0.05, 0.05, 0.95, 0.95, 0.55])
    y = np.array([0, 1, 1, 1, 0])
    curve = reliability_curve(y, p, bins=10)
    assert curve["count"] == [2, 1, 2]
    assert curve["observed_rate"] == [0.5, 0.0, 1.0]
    assert curve["mean_probability"] == pytest.approx([0.05, 0.55, 0.95])


def test_risk_coverage_keeps_the_most_confident_first():
    y = np.array([1, 0, 1, 0])
    p = np.array([0.9, 0.45, 0.4, 0.2])  # right, right, wrong, right
    conf = max_probability(p)
    coverage, risk = risk_coverage(y, p, conf)
    assert np.allclose(coverage, [0.25, 0.5, 0.75, 1.0])
    # confidence order 0.9 (right), 0.8 (right), 0.6 (wrong), 0.55 (right)
    assert np.allclose(risk, [0.0, 0.0, 1 / 3, 0.25])
    assert accuracy_at_coverage(y, p, conf, 0.5) == 1.0
    assert accuracy_at_coverage(y, p, conf, 0.75) == pytest.approx(2 / 3)
    assert accuracy_at_coverage(y, p, conf, 1.0) == 0.75
    assert aurc(y, p, conf) == pytest.approx((1 / 3 + 0.25) / 4)
    assert threshold_for_coverage(conf, 0.5) == pytest.approx(np.quantile(conf, 0.5))
    with pytest.raises(ValueError, match="coverage"):
        threshold_for_coverage(conf, 0.0)


def test_abstaining_on_the_least_confident_raises_accuracy_on_calibrated_probabilities():
    z, y = overconfident(temperature=1.0)
    p = sigmoid(z)
    report = selective_report(y, p, {"max_probability": max_probability(p)}, 0.8,
                              {"max_probability": threshold_for_coverage(max_probability(p), 0.8)})
    row = report["max_probability"]
    assert row["accuracy_at_0.8"] > row["accuracy_full"] + 0.02
    assert row["coverage_at_val_threshold"] == pytest.approx(0.8, abs=0.01)


def test_disagreement_and_information_gain():
    same = np.array([[0.3, 0.9], [0.3, 0.9]])
    assert np.allclose(disagreement(same), 0.0)
    assert np.all(disagreement(np.array([[0.1, 0.5], [0.9, 0.5]])) >= [0.5, 0.0])
    # outcomes that settle the label carry one bit; outcomes that change nothing carry none
    assert information_gain(np.array([0.0, 1.0, 0.0, 1.0])) == pytest.approx(1.0, abs=1e-6)
    assert information_gain(np.array([0.3, 0.3, 0.3])) == pytest.approx(0.0, abs=1e-9)
    assert information_gain(np.random.default_rng(0).random((50, 8))).min() >= -1e-12


def test_the_cost_table_is_checked_with_the_key_named():
    assert check_config(MetacognitionConfig()) == {"host_star": 2.0, "rv_mass": 40.0,
                                                   "spectrum": 8.0}
    bad = [MetacognitionConfig(costs=(("telescope", 1.0),)),
           MetacognitionConfig(costs=(("host_star", 0.0), ("rv_mass", 1.0), ("spectrum", 1.0))),
           MetacognitionConfig(costs=(("host_star", 1.0),)),
           MetacognitionConfig(draws=1), MetacognitionConfig(spectrum_transits=(3, 1))]
    for mc in bad:
        with pytest.raises(ConfigError, match=r"config\.metacognition\."):
            check_config(mc)
    with pytest.raises(ConfigError, match="metacognition.label"):
        check_config(MetacognitionConfig(label="biosphere"), ("habitable", "biosignature"))


def test_derivations_rebuild_the_published_catalogue_from_its_measurements():
    """An observation fills measured columns; derive() must then give what the archives (and
    observe_catalogue) would publish: here, the observed catalogue from its measured columns
    alone, and the complete one (every measurement made, same noise) from its own."""
    population = generate_population(256, seed=0)
    observed = observe_catalogue(population, 0)
    complete = observe_catalogue(population, 0, CatalogueModel(
        teff_known=1.0, star_radius_known=1.0, star_mass_known=1.0,
        mass_known_if_transiting=1.0, eccentricity_known_with_mass=1.0,
        eccentricity_known_without_mass=1.0))
    measured = ("star_teff_k", "star_radius_rsun", "star_mass_msun", "orbital_period_days",
                "eccentricity", "planet_mass_mearth")
    ratio = np.where(complete.transiting, complete.values["planet_radius_rearth"]
                     / complete.values["star_radius_rsun"], np.nan)
    for catalogue in (observed, complete):
        only = {c: (v if c in measured else np.full_like(v, np.nan))
                for c, v in catalogue.values.items()}
        rebuilt = derive(only, ratio)
        for column, values in catalogue.values.items():
            np.testing.assert_allclose(rebuilt[column], values, rtol=1e-9, equal_nan=True,
                                       err_msg=column)
    published = observed.values["star_teff_k"]
    assert np.isfinite(complete.values["star_teff_k"]).all()
    known = np.isfinite(published)
    assert (~known).any() and np.array_equal(published[known],
                                             complete.values["star_teff_k"][known])


def test_budget_curve_scores_what_each_planet_could_pay_for():
    trajectory = {"cost": np.array([[0.0, 5.0, 50.0], [0.0, 20.0, 20.0]]),
                  "p": np.array([[0.5, 0.9, 0.8], [0.5, 0.1, 0.1]])}
    y = np.array([1, 0])
    curve = budget_curve(trajectory, y, np.array([0.0, 10.0, 100.0]))
    assert curve["auc"] == [0.5, roc_auc(np.array([0.9]), np.array([0.5])), 1.0]
    assert curve["nll"][0] == pytest.approx(np.log(2))
    assert curve["nll"][2] == pytest.approx(-0.5 * (np.log(0.8) + np.log(0.9)))
