"""python -m astrojax.predict's metacognition columns: uncertainty (the ensemble's spread and
the entropy), abstention with a calibrated ensemble, input trust and the recommended next
observation. Reuses test_predict's tiny trained model and recorded catalogue."""

import shutil

import numpy as np
import pytest
from test_predict import catalog, run_cli, spectra, trained, workdir  # noqa: F401 (fixtures)

from astrojax.metacognition import load_ensemble
from astrojax.metacognition.selective import binary_entropy
from astrojax.predict import predict

pytestmark = pytest.mark.slow  # trains test_predict's tiny model (~30 s) and runs it

NEXT = {"", "host_star", "rv_mass", "spectrum_1", "spectrum_3", "spectrum_10", "spectrum_30"}


@pytest.fixture(scope="module")
def single(trained, catalog):  # noqa: F811
    return predict(trained, catalog, samples=4, seed=0)


@pytest.fixture(scope="module")
def twins(workdir, tmp_path_factory):  # noqa: F811
    """An ensemble of two copies of one model, calibrated on its val planets."""
    folder = tmp_path_factory.mktemp("twins")
    for i in range(2):
        shutil.copytree(workdir, folder / f"member_{i}")
    load_ensemble(folder).calibrate(coverage=0.8)
    return folder


def test_one_model_reports_entropy_trust_and_the_next_observation(single):
    t = single.predicted
    for column in ("p_habitable_model_std", "entropy_habitable", "entropy_biosignature",
                   "trust", "next_observation", "next_observation_eig",
                   "next_observation_cost"):
        assert column in t.colnames, column
    assert "abstain" not in t.colnames  # no calibration, no threshold
    np.testing.assert_allclose(t["p_habitable_model_std"], 0.0)  # one model: no spread
    np.testing.assert_allclose(t["entropy_habitable"], binary_entropy(np.asarray(
        t["p_habitable"])), atol=1e-9)
    assert set(t["next_observation"]) <= NEXT
    assert all(s.startswith("row:") or s.startswith("spectrum") for r in t["trust"]
               for s in r.split())
    by_name = {r["name"]: r for r in t}
    # 51 Peg b is a radial-velocity planet with its mass, eccentricity and host published:
    # nothing left to observe. A transiting planet can always take a spectrum.
    assert by_name["51 Peg b"]["next_observation"] == ""
    assert np.ma.is_masked(by_name["51 Peg b"]["next_observation_cost"])
    row = by_name["TRAPPIST-1 e"]
    assert row["next_observation"] != "" and row["next_observation_eig"] >= 0
    if row["next_observation"].startswith("spectrum_"):
        assert row["next_observation_cost"] == 8.0 * int(row["next_observation"].split("_")[1])
    assert "next observation" in single.summary()


def test_an_ensemble_of_twins_predicts_as_its_model_and_abstains_by_its_threshold(
        single, twins, catalog):  # noqa: F811
    got = predict(twins, catalog, samples=4, seed=0)
    t = got.predicted
    meta = got.table.meta["metacognition"]
    assert meta["ensemble_size"] == 2 and set(meta["temperature"]) == {"habitable",
                                                                       "biosignature"}
    np.testing.assert_allclose(t["p_habitable_model_std"], 0.0, atol=1e-7)  # identical members
    temperature = meta["temperature"]["habitable"]
    assert temperature != 1.0
    # the same model with a temperature: the same ranking, other probabilities
    assert list(t["name"]) == list(single.predicted["name"])
    p = np.asarray(t["p_habitable_published"])
    raw = np.asarray(single.predicted["p_habitable_published"])
    logit = np.log(raw) - np.log1p(-raw)
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-logit / temperature)), atol=1e-5)
    threshold = meta["abstain_threshold"]["habitable"]
    confidence = np.maximum(t["p_habitable"], 1 - t["p_habitable"])
    assert list(t["abstain"]) == list(confidence < threshold)


def test_the_command_line_writes_the_new_columns(twins, catalog, tmp_path):  # noqa: F811
    from astropy.table import Table

    out = tmp_path / "p.ecsv"
    done = run_cli("--checkpoint", str(twins), "--catalog", str(catalog), "--out", str(out),
                   "--samples", "2")
    assert done.returncode == 0, done.stderr
    table = Table.read(out)
    assert {"abstain", "trust", "next_observation", "entropy_habitable"} <= set(table.colnames)
    assert "next observation" in done.stdout
