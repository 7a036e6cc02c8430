"""python -m astrojax.predict end to end: a tiny fusion model trained for a few steps, a
catalogue built from the recorded NASA Exoplanet Archive and exoplanets.org replies served on
127.0.0.1 (plus one row the quality checks reject), and real-format spectrum files."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from astropy.table import Table
from flax import nnx
from pytest_httpserver import HTTPServer
from test_fusion_task import MODEL

from astrojax.config import Config, PlanetsConfig, TrainConfig, to_dict
from astrojax.data.archives import SourceConfig
from astrojax.data.archives import exoplanets_org as eod
from astrojax.data.archives import nasa_exoplanet_archive as nea
from astrojax.data.archives.catalog import CatalogError, build_catalog, load_catalog
from astrojax.data.formats.spectra import SpectrumFileError
from astrojax.data.generator.observe import CATALOGUE_COLUMNS, DERIVED
from astrojax.data.generator.population import PlanetPopulation
from astrojax.predict import CAVEAT, PredictError, predict, write
from astrojax.tasks import get_task
from astrojax.tasks.fusion import catalogue_row, standardized_row
from astrojax.train.loop import train_and_evaluate
from astrojax.train.restore import TrainedModel, load_trained
from astrojax.train.workdir import WorkdirError

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "tests" / "data" / "sources" / "exoplanets"
PRISM = ROOT / "tests" / "data" / "spectra" / "prism_ppm.txt"  # NIRSpec PRISM, in ppm

pytestmark = pytest.mark.slow  # every test here runs the trained model (fixture: ~30 s)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    """build-catalog of the recorded replies, with one more exoplanets.org row whose
    eccentricity (1.5) the quality checks reject."""
    tmp = tmp_path_factory.mktemp("catalog")
    lines = (RECORDED / "exoplanets_org.csv").read_text().splitlines()
    bad = lines[3].replace("GJ 436 b", "Bad-1 b").replace("GJ 436", "Bad-1") \
        .replace(",0.1616,", ",1.5,")
    nameless = lines[1].replace(",51 Peg b,", ",,")
    assert bad != lines[3] and ",1.5," in bad and nameless != lines[1]
    server = HTTPServer()
    server.start()
    try:
        server.expect_request("/sync").respond_with_data(
            (RECORDED / "nasa_pscomppars.vot").read_bytes(), content_type="text/xml")
        server.expect_request("/csv-files/exoplanets.csv").respond_with_data(
            "\n".join([*lines, bad, nameless]) + "\n", content_type="text/csv")
        config = SourceConfig(base_urls={nea.NAME: server.url_for("/"),
                                         eod.NAME: server.url_for("/")},
                              cache_dir=str(tmp / "cache"), max_attempts=1)
        nea.fetch(config, tmp / "nasa")
        eod.fetch(config, tmp / "org")
    finally:
        server.clear()
        server.stop()
    build = build_catalog([tmp / "nasa", tmp / "org"], tmp / "catalog")
    assert len(build.catalog) == 7 and len(build.quarantine) == 2
    return tmp / "catalog"


def tiny_config() -> Config:
    cfg = Config(task="fusion", model=dataclasses.replace(MODEL),
                 planets=PlanetsConfig(num_planets=256),
                 train=TrainConfig(steps=4, global_batch_size=8, log_every=4, eval_every=4,
                                   eval_batches=0, checkpoint_every=100))
    cfg.data.spectrum_rate = 0.5
    return cfg


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fusion")
    train_and_evaluate(tiny_config(), path, devices=jax.devices()[:2])  # restored onto one
    return path


@pytest.fixture(scope="module")
def spectra(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("spectra")
    shutil.copy(PRISM, folder / "TRAPPIST-1_e.txt")  # the catalogue's "TRAPPIST-1 e"
    shutil.copy(PRISM, folder / "Nowhere-1 b.txt")
    (folder / "notes.md").write_text("not a spectrum: ignored")
    return folder


@pytest.fixture(scope="module")
def trained(workdir):
    return load_trained(workdir, task="fusion")


@pytest.fixture(scope="module")
def with_spectra(trained, catalog, spectra):
    return predict(trained, catalog, spectra, samples=16, seed=0)


def test_planets_are_ranked_with_probabilities_and_uncertainties(with_spectra):
    table = with_spectra.predicted
    assert len(table) == 7
    assert list(table["rank"]) == list(range(1, 8))
    p = np.asarray(table["p_habitable"])
    assert np.all(np.diff(p) <= 0)  # ranked by the Monte Carlo mean, highest first
    for label in ("habitable", "biosignature"):
        for key in (f"p_{label}", f"p_{label}_published"):
            assert np.all((table[key] >= 0) & (table[key] <= 1)), key
        assert np.all(table[f"p_{label}_std"] >= 0)
    # every planet here has published errors: the draws move its probability
    assert all(table["perturbed"])
    assert np.all(np.asarray(table["p_habitable_std"]) > 0)
    assert with_spectra.table.meta["caveat"] == CAVEAT
    assert with_spectra.table.meta["ranked_by"].startswith("p_habitable")


def test_quarantined_rows_are_listed_and_not_predicted(with_spectra):
    table = with_spectra.table
    assert "Bad-1 b" not in list(with_spectra.predicted["name"])
    rows = table[table["status"] == "quarantined"]
    assert list(rows["name"]) == ["Bad-1 b", ""] and list(rows["rank"]) == [0, 0]
    assert rows["reason"][0].startswith("range: eccentricity=1.5")
    assert rows["reason"][0].endswith("[exoplanets_org/exoplanets]")
    assert rows["reason"][1].startswith("missing name")
    for row in rows:
        assert np.ma.is_masked(row["p_habitable"]) and np.ma.is_masked(row["p_biosignature"])


def test_a_catalogue_of_quarantined_rows_only(trained, catalog, tmp_path):
    folder = tmp_path / "nothing_kept"
    folder.mkdir()
    shutil.copy(catalog / "quarantine.ecsv", folder)
    Table.read(catalog / "catalog.ecsv")[:0].write(folder / "catalog.ecsv")
    got = predict(trained, folder, samples=2)
    assert len(got.predicted) == 0 and list(got.table["status"]) == ["quarantined"] * 2
    assert got.summary().startswith("0 planets predicted (0 with a spectrum), 2 quarantined")
    _, png = write(got, tmp_path / "out.ecsv")
    assert png.is_file()


def test_a_spectrum_file_is_used_and_changes_the_prediction(with_spectra, trained, catalog):
    table = with_spectra.predicted
    by_name = {r["name"]: r for r in table}
    trappist = by_name["TRAPPIST-1 e"]
    assert trappist["modalities"] == "row+spectrum"
    assert trappist["spectrum_file"] == "TRAPPIST-1_e.txt"
    assert {r["modalities"] for r in table if r["name"] != "TRAPPIST-1 e"} == {"row"}
    assert with_spectra.warnings and "Nowhere-1 b.txt" in with_spectra.warnings[0]
    assert "notes.md" not in with_spectra.warnings[0]
    without = {r["name"]: r for r in predict(trained, catalog, samples=2).predicted}
    assert without["TRAPPIST-1 e"]["modalities"] == "row"
    assert abs(trappist["p_habitable_published"]
               - without["TRAPPIST-1 e"]["p_habitable_published"]) > 1e-6
    # the other planets' published-value predictions do not depend on it
    assert by_name["Kepler-442 b"]["p_habitable_published"] == pytest.approx(
        without["Kepler-442 b"]["p_habitable_published"], abs=1e-6)
    # the draws depend on the seed and the planet only
    again = {r["name"]: r for r in predict(trained, catalog, samples=16, seed=0).predicted}
    assert again["Kepler-442 b"]["p_habitable"] == pytest.approx(
        by_name["Kepler-442 b"]["p_habitable"], abs=1e-6)


def test_inputs_are_the_training_transform_of_the_same_row(trained, tmp_path):
    """Catalogue rows of the task's own observed planets, written as a build-catalog file:
    predict's probability at the published values is the model's on the task's inputs."""
    task = trained.task
    rows = task.split.val[:12]
    observed = task.catalogue
    n = len(rows)
    table = Table()
    for name in PlanetPopulation.column_names():
        if name in CATALOGUE_COLUMNS:
            table[name] = observed.values[name][rows]
        elif name == "name":
            table[name] = observed.name[rows].astype(str)
        elif name in ("liquid_water", "habitable", "biosignature"):
            table[name] = np.zeros(n, bool)
        elif name in ("star_type", "biosphere", "climate_regime"):
            table[name] = np.full(n, -1)
        elif name in ("planet_index", "text_variant"):
            table[name] = np.arange(n)
        else:
            table[name] = np.full(n, np.nan)
    for name in ("liquid_water", "habitable", "biosignature"):
        table[f"{name}_known"] = np.zeros(n, bool)
    table["derived"] = [",".join(c for c in DERIVED if np.isfinite(observed.values[c][r]))
                        for r in rows]
    for c in CATALOGUE_COLUMNS:
        table[f"{c}_err"] = observed.errors[c][rows]
    folder = tmp_path / "observed"
    folder.mkdir()
    table.write(folder / "catalog.ecsv", format="ascii.ecsv")

    got = {r["name"]: r["p_habitable_published"]
           for r in predict(trained, folder, samples=1).predicted}
    batch = {k: v[rows] for k, v in task.arrays.items()}
    batch["has_spectrum"] = np.zeros(n, bool)  # predict was given no spectra
    logits = trained.model(batch)["logits/habitable"]
    expected = np.asarray(jax.nn.sigmoid(logits))
    np.testing.assert_allclose([got[str(name)] for name in observed.name[rows]], expected,
                               atol=2e-5)


def test_the_table_and_png_are_written(with_spectra, tmp_path):
    ecsv, png = write(with_spectra, tmp_path / "out" / "ranking.ecsv", top=5)
    assert png == tmp_path / "out" / "ranking.png" and png.stat().st_size > 10_000
    back = Table.read(ecsv, format="ascii.ecsv")
    assert list(back["name"].filled("")) == list(with_spectra.table["name"])  # "": no name
    np.testing.assert_array_equal(back["p_habitable"], with_spectra.table["p_habitable"])
    assert back.meta["caveat"] == CAVEAT
    assert back.meta["modalities"]["used"] == ["row", "spectrum"]
    assert back.meta["spectra"]["files"] == {"TRAPPIST-1 e": "TRAPPIST-1_e.txt"}


def test_bad_input_is_named(workdir, catalog, spectra, trained, tmp_path):
    with pytest.raises(WorkdirError, match="no workdir at .*nowhere"):
        predict(tmp_path / "nowhere", catalog)
    with pytest.raises(WorkdirError, match="holds no checkpoint"):
        predict(tmp_path, catalog)
    other = tmp_path / "lm"  # the same checkpoint, its saved config another task's
    shutil.copytree(workdir, other)
    [step] = [p for p in (other / "checkpoints").iterdir() if p.name.isdigit()]
    (step / "config" / "metadata").write_text(json.dumps(to_dict(Config(task="lm"))))
    with pytest.raises(WorkdirError, match="was trained for task 'lm', not 'fusion'"):
        predict(other, catalog)
    with pytest.raises(CatalogError, match="no catalogue there"):
        predict(trained, tmp_path / "no_catalog")
    with pytest.raises(PredictError, match="--spectra .*: no such folder"):
        predict(trained, catalog, tmp_path / "no_spectra")
    broken = tmp_path / "broken"
    shutil.copytree(spectra, broken)
    (broken / "Kepler-442 b.txt").write_text("wavelength depth error\n1.0 abc 3\n")
    with pytest.raises(SpectrumFileError, match="Kepler-442 b.txt line 2: column 'depth'"):
        predict(trained, catalog, broken)
    (broken / "Kepler-442 b.txt").unlink()
    shutil.copy(PRISM, broken / "trappist-1e.ecsv.txt")  # a name no planet has: a warning
    shutil.copy(PRISM, broken / "TRAPPIST1e.csv")  # a second file for TRAPPIST-1 e
    with pytest.raises(PredictError, match="both name planet 'TRAPPIST-1 e'"):
        predict(trained, catalog, broken)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "astrojax.predict", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_command_line(workdir, catalog, spectra, tmp_path):
    out = tmp_path / "ranking.ecsv"
    proc = run_cli("--checkpoint", str(workdir), "--catalog", str(catalog), "--out", str(out),
                   "--spectra", str(spectra), "--samples", "4")
    assert proc.returncode == 0, proc.stderr
    [line] = proc.stdout.strip().splitlines()
    assert line.startswith("7 planets predicted (1 with a spectrum), 2 quarantined rows listed, "
                           "not predicted; highest p_habitable: ")
    assert f"wrote {out} and {out.with_suffix('.png')}" in line
    assert out.is_file() and out.with_suffix(".png").is_file()
    [warning] = [w for w in proc.stderr.splitlines() if w.strip()]
    assert warning.startswith("warning: 1 spectrum file(s)") and "Nowhere-1 b.txt" in warning
    # one line and exit code 2 for bad input
    proc = run_cli("--checkpoint", str(tmp_path / "nowhere"), "--catalog", str(catalog),
                   "--out", str(out))
    lines = [w for w in proc.stderr.splitlines() if w.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: no workdir at ")
    proc = run_cli("--catalog", str(catalog), "--out", str(out))
    assert proc.returncode == 2 and proc.stderr.strip() == \
        "error: --checkpoint is required (python -m astrojax.predict --help)"


def test_a_modality_predict_cannot_supply_is_absent_for_every_planet(trained, catalog):
    """A model with an embedding input (a graph's, say): every planet runs without it
    (has_graph = 0), which the metadata says; its presence would change the answer."""
    cfg = tiny_config()
    cfg.model.embedding_inputs = (("graph", 8),)
    task = get_task(cfg)
    with nnx.use_eager_sharding(False):
        graphdef, params = nnx.split(task.build_model(nnx.Rngs(1)), nnx.Param)
    model = TrainedModel(trained.workdir, 0, cfg, task, graphdef, params, trained.artifacts)
    got = predict(model, catalog, samples=1)
    assert got.table.meta["modalities"]["absent_for_every_planet"] == ["graph"]
    p = np.asarray(got.predicted["p_habitable_published"])
    assert np.all((p >= 0) & (p <= 1))
    names, rows = _published_batch(task, trained.artifacts, catalog)
    n = len(names)
    absent = nnx.merge(graphdef, params)({**rows, "graph": np.ones((n, 8), np.float32),
                                          "has_graph": np.zeros(n, bool)})
    present = nnx.merge(graphdef, params)({**rows, "graph": np.ones((n, 8), np.float32),
                                           "has_graph": np.ones(n, bool)})
    by_name = dict(zip(got.predicted["name"], p, strict=True))
    np.testing.assert_allclose([by_name[name] for name in names],
                               jax.nn.sigmoid(absent["logits/habitable"]), atol=1e-6)
    assert not np.allclose(absent["logits/habitable"], present["logits/habitable"])


def _published_batch(task, artifacts, catalog) -> tuple[list[str], dict]:
    """The catalogue's names and its published rows as the model's inputs (the task's
    transform), without spectra."""
    loaded = load_catalog(catalog)
    columns = loaded.columns()
    published = {c: np.where(loaded.known[c], columns[c], np.nan) for c in CATALOGUE_COLUMNS}
    values, known = catalogue_row(published, task.model_config.row_columns)
    n, bins = len(values), task.model_config.spectrum_bins
    batch = {"row_values": standardized_row(values, known, artifacts["row_mean"],
                                            artifacts["row_std"]),
             "row_known": known, "spectrum_depth": np.zeros((n, bins), np.float32),
             "spectrum_sigma": np.ones((n, bins), np.float32),
             "spectrum_known": np.zeros((n, bins), bool), "has_spectrum": np.zeros(n, bool)}
    return [str(x) for x in columns["name"]], batch


def test_a_model_with_cube_network_and_text_encoders_runs_on_rows_alone(trained, catalog):
    """Predict cannot make a real planet's cube, network or notes: the model runs with those
    absent (its absent_inputs), as modality dropout trained it to."""
    cfg = tiny_config()
    cfg.data.modalities = ("catalogue", "spectrum", "climate", "network", "text")
    cfg.data.climate_grid, cfg.model.climate_patch = (2, 1, 4, 8), (2, 2, 4)
    task = get_task(cfg)
    with nnx.use_eager_sharding(False):
        module = task.build_model(nnx.Rngs(1))
    graphdef, params = nnx.split(module, nnx.Param)
    model = TrainedModel(trained.workdir, 0, cfg, task, graphdef, params, trained.artifacts)
    got = predict(model, catalog, samples=1)
    assert got.table.meta["modalities"]["absent_for_every_planet"] == ["climate", "network",
                                                                        "text"]
    names, rows = _published_batch(task, trained.artifacts, catalog)
    direct = module({**rows, **module.absent_inputs(len(names))})
    by_name = dict(zip(got.predicted["name"], got.predicted["p_habitable_published"],
                       strict=True))
    np.testing.assert_allclose([by_name[name] for name in names],
                               jax.nn.sigmoid(direct["logits/habitable"]), atol=1e-6)
