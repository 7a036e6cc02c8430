"""astrojax.metacognition with tiny fusion models: the vmapped ensemble against its members one
by one, calibration on val, modality trust through the keep masks, and acquisition (inputs,
outcomes, policies). The shared ensemble is two freshly initialised tiny models (no training:
what is tested holds for any weights); one slow test trains a real two-member ensemble."""

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from test_fusion_task import tiny

from astrojax.config.sections import MetacognitionConfig
from astrojax.metacognition import (
    POLICIES,
    Ensemble,
    State,
    World,
    acquire,
    expected_gains,
    load_ensemble,
    train_ensemble,
    trust,
)
from astrojax.metacognition.acquisition import (
    Candidate,
    apply,
    candidates,
    neighbours,
    outcome_inputs,
    realised_gains,
)
from astrojax.metacognition.ensemble import member_config
from astrojax.tasks import get_task
from astrojax.train.restore import TrainedModel
from astrojax.train.step import build_model

MC = MetacognitionConfig(draws=4, spectrum_transits=(3, 10))
pytestmark = pytest.mark.slow  # the shared ensemble compiles once (~10 s), the rest is fast


def untrained_member(cfg, index: int) -> TrainedModel:
    cfg = member_config(cfg, index)
    task = get_task(cfg)
    graphdef, params = nnx.split(build_model(task, cfg.train.seed))
    return TrainedModel(Path(f"member_{index}"), 0, cfg, task, graphdef, params,
                        task.artifacts())


@pytest.fixture(scope="module")
def ensemble() -> Ensemble:
    cfg = tiny()
    return Ensemble.of([untrained_member(cfg, 0), untrained_member(cfg, 1)])


@pytest.fixture(scope="module")
def world(ensemble) -> World:
    return World(ensemble.task, MC)


def planet_inputs(task, rows):
    return {k: v[rows] for k, v in task.arrays.items()}


def test_the_ensemble_runs_its_members_as_each_would_alone(ensemble):
    task = ensemble.task
    rows = task.split["val"]
    logits = ensemble.planet_logits(rows, "val")
    assert logits["habitable"].shape == (2, len(rows))
    for i, member in enumerate(ensemble.members):
        out = member.model({k: jnp.asarray(v) for k, v in task.batch(rows, "val").items()})
        np.testing.assert_allclose(logits["habitable"][i], out["logits/habitable"], atol=1e-5)
    assert not np.allclose(logits["habitable"][0], logits["habitable"][1])  # other seeds
    again = ensemble.logits(planet_inputs(task, rows))
    np.testing.assert_allclose(again["biosignature"], logits["biosignature"], atol=1e-6)


def test_calibration_fits_on_val_and_sets_the_coverage_threshold(ensemble, tmp_path):
    task = ensemble.task
    ensemble.folder = tmp_path
    saved = ensemble.calibrate(coverage=0.75)
    assert set(saved["temperature"]) == {"habitable", "biosignature"}
    assert json.loads((tmp_path / "calibration.json").read_text())["coverage"] == 0.75
    rows = task.split["val"]
    p = ensemble.probability(ensemble.planet_logits(rows)["habitable"], "habitable")
    kept = np.maximum(p, 1 - p) >= ensemble.threshold["habitable"]
    assert kept.mean() == pytest.approx(0.75, abs=0.06)
    raw = ensemble.probability(ensemble.planet_logits(rows)["habitable"], "habitable",
                               calibrated=False)
    assert not np.allclose(raw, p)
    ensemble.temperature, ensemble.threshold, ensemble.folder = {}, {}, None


def test_trust_is_the_change_when_an_input_is_hidden(ensemble):
    task = ensemble.task
    rows = task.split["test"]
    inputs = planet_inputs(task, rows)
    has = inputs["has_spectrum"].astype(bool)
    assert has.any() and (~has).any()
    got = trust(ensemble, inputs, "habitable")
    assert set(got) == {"row:star", "row:orbit", "row:planet", "spectrum"}
    assert np.isnan(got["spectrum"][~has]).all() and np.isfinite(got["spectrum"][has]).all()

    def p(x, keep=None):
        return ensemble.probability(ensemble.logits(x, keep)["habitable"], "habitable")

    hidden = p(inputs, {"spectrum": np.zeros(len(rows), bool)})
    np.testing.assert_allclose(got["spectrum"][has], (p(inputs) - hidden)[has], atol=1e-6)
    no_planet = inputs["row_known"].copy()
    no_planet[:, [list(task.row_columns).index(c) for c in
                  ("planet_radius_rearth", "planet_mass_mearth", "surface_gravity_ms2")]] = False
    planet = got["row:planet"]
    some = np.isfinite(planet)
    np.testing.assert_allclose(planet[some], (p(inputs) - p({**inputs, "row_known": no_planet}))
                               [some], atol=1e-6)


def test_a_state_as_observed_gives_the_task_inputs(world):
    task = world.task
    rows = task.split["test"]
    state = State.observed(world, rows)
    got = outcome_inputs(world, state, np.arange(len(rows)), [None] * len(rows), state.planets)
    for key, value in got.items():
        np.testing.assert_allclose(np.asarray(value, float), np.asarray(task.arrays[key][rows],
                                                                       float), atol=1e-6,
                                   err_msg=key)


def test_observations_come_out_as_the_complete_catalogue_says(world):
    task = world.task
    rows = task.split["train"]
    state = State.observed(world, rows)
    i = next(i for i in range(len(rows)) if Candidate("rv_mass") in candidates(world, state, i)
             and state.transiting[i])
    assert Candidate("spectrum", 10) in candidates(world, state, i)
    apply(world, state, i, Candidate("rv_mass"))
    p = rows[i]
    for column in ("planet_mass_mearth", "eccentricity", "surface_gravity_ms2"):
        assert state.values[column][i] == pytest.approx(world.complete.values[column][p])
    assert Candidate("rv_mass") not in candidates(world, state, i)
    apply(world, state, i, Candidate("spectrum", 3))
    assert [c.transits for c in candidates(world, state, i) if c.kind == "spectrum"] == [10]


def test_neighbours_share_the_transit_status_and_are_train_planets(world):
    task = world.task
    state = State.observed(world, task.split["test"])
    near = neighbours(world, state, 4)
    assert np.isin(near, task.split.train).all()
    assert (world.transiting[near] == state.transiting[:, None]).all()


def test_every_policy_ends_with_everything_observed(ensemble, world):
    """Acquiring every candidate, in whatever order, reaches the same planets: the same total
    cost and the same final predictions."""
    rows = world.task.split["test"][:12]
    runs = {policy: acquire(ensemble, world, rows, policy, "habitable", seed=1)
            for policy in POLICIES}
    final = runs["fixed"]
    assert (final["cost"][:, -1] > 0).any()
    for run in runs.values():
        np.testing.assert_allclose(run["cost"][:, -1], final["cost"][:, -1])
        np.testing.assert_allclose(run["p"][:, -1], final["p"][:, -1], atol=1e-6)
        np.testing.assert_allclose(run["p"][:, 0], final["p"][:, 0], atol=1e-6)
        assert (np.diff(run["cost"], axis=1) >= 0).all()
    gains = runs["eig_per_cost"]["first_gains"]
    assert all(g >= -1e-9 for row in gains for g in row.values())
    assert {name for row in gains for name in row} <= {"host_star", "rv_mass", "spectrum_3",
                                                        "spectrum_10"}


def test_gains_are_zero_for_a_model_that_ignores_the_observation(ensemble, world):
    """A spectrum the model cannot see (hidden by zeroing its spectrum weights) carries no
    information: its expected gain is 0, while the row's observations keep theirs."""
    task = world.task
    state = State.observed(world, task.split["test"])
    blind = dataclasses.replace(ensemble, params=jax.tree.map(jnp.copy, ensemble.params))
    modality = blind.members[0].model.modalities().index("spectrum")
    blind.params["spectrum"] = jax.tree.map(jnp.zeros_like, blind.params["spectrum"])
    blind.params["modality_md"] = blind.params["modality_md"].replace(
        blind.params["modality_md"][...].at[:, modality].set(0.0))
    gains = expected_gains(blind, world, state, "habitable")
    spectra = [g for row in gains for c, g in row.items() if c.kind == "spectrum"]
    others = [g for row in gains for c, g in row.items() if c.kind != "spectrum"]
    assert spectra and max(spectra) < 1e-6
    assert max(others) > 1e-4
    # planets with a spectrum already: a longer one changes nothing this model sees
    with_one = State.observed(world, state.planets[state.transits == 3])
    worth = realised_gains(blind, world, with_one, "habitable",
                           task.labels["habitable"][with_one.planets])
    assert set(worth) >= {"rv_mass", "spectrum_10"} and "spectrum_3" not in worth
    assert worth["spectrum_10"]["mean_realised_log_loss_reduction_bits"] == pytest.approx(
        0.0, abs=1e-6)
    assert worth["rv_mass"]["mean_realised_log_loss_reduction_bits"] != 0.0
    assert worth["rv_mass"]["mean_expected_gain_bits"] > 0


def test_train_ensemble_trains_members_with_their_own_seeds(tmp_path):
    cfg = tiny(steps=2, eval_every=2, eval_batches=1)
    ensemble = train_ensemble(cfg, tmp_path, 2, devices=jax.devices()[:1])
    assert [m.config.train.seed for m in ensemble.members] == [0, 1]
    assert [m.config.data.shuffle_seed for m in ensemble.members] == [0, 1]
    ensemble.calibrate()
    loaded = load_ensemble(tmp_path)
    assert loaded.size == 2 and loaded.temperature == ensemble.temperature
    single = load_ensemble(tmp_path / "member_1")
    assert single.size == 1 and single.temperature == {}
