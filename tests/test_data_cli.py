"""The data CLI in subprocesses: build-cubes, ingest-netcdf, and its one-line errors."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from astrojax.data.formats.store import CubeStore

ROOT = Path(__file__).resolve().parents[1]
E1 = Path(importlib.util.find_spec("iris_sample_data").submodule_search_locations[0],
          "sample_data", "E1_north_america.nc")
TINY = ("--config", "configs/datacube_vit.py", "--config.planets.num_planets=16",
        "--config.data.cube_time_steps=4", "--config.data.cube_levels=2",
        "--config.data.cube_lat=8", "--config.data.cube_lon=16")


def run_cli(*args: str, cache: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    if cache is not None:
        env["ASTROJAX_CACHE"] = str(cache)
    return subprocess.run([sys.executable, "-m", "astrojax.data", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def summary(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    return lines[0]


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_build_cubes_into_the_default_cache_then_resume(tmp_path):
    line = summary(run_cli("build-cubes", *TINY, cache=tmp_path))
    url = tmp_path / "cubes" / "16-0-4x2x8x16"
    assert line.startswith(f"{url}: 16 planets x 5 variables x 4x2x8x16")
    store = CubeStore.open(str(url))
    assert store.complete().all() and store.stats is not None
    assert store.schema.label_names[-1] == "climate_regime"
    from astrojax.data.generator import generate_population

    np.testing.assert_array_equal(store.read_labels()[:, -1],
                                  generate_population(16, 0).climate_regime)
    (url / "complete" / "3").unlink()  # as if interrupted before sample 3 was done
    summary(run_cli("build-cubes", *TINY, cache=tmp_path))
    assert CubeStore.open(str(url)).complete().all()


def test_build_cubes_store_flag_overrides_the_config(tmp_path):
    target = tmp_path / "here"
    proc = run_cli("build-cubes", *TINY, f"--config.data.cube_store={tmp_path / 'not_here'}",
                   "--store", str(target), cache=tmp_path / "cache")
    assert summary(proc).startswith(f"{target}:")
    assert CubeStore.open(str(target)).num_samples == 16
    assert not (tmp_path / "not_here").exists() and not (tmp_path / "cache").exists()


def test_ingest_netcdf3_file(tmp_path):
    ds = xr.Dataset({"tas": (("time", "lat", "lon"), np.full((6, 3, 4), 280.0), {"units": "K"})},
                    coords={"time": ("time", np.arange(6.0), {"units": "days since 2000-01-01"}),
                            "lat": ("lat", [-30.0, 0.0, 30.0], {"units": "degrees_north"}),
                            "lon": ("lon", [0.0, 90.0, 180.0, 270.0], {"units": "degrees_east"})})
    path = tmp_path / "tas.nc"
    ds.to_netcdf(path, engine="scipy")
    line = summary(run_cli("ingest-netcdf", str(path), "--store", str(tmp_path / "s"),
                           "--variables", "tas", "--time-steps", "3"))
    assert "2 samples from 1 file(s) x tas x 3x1x3x4" in line and "statistics saved" in line
    assert CubeStore.open(str(tmp_path / "s")).stats.mean[0, 0] == 280.0


@pytest.mark.skipif(importlib.util.find_spec("h5py") is None,
                    reason="E1_north_america.nc is netCDF4 (HDF5); h5netcdf needs h5py")
def test_ingest_real_hadcm3_file(tmp_path):
    line = summary(run_cli("ingest-netcdf", str(E1), "--store", str(tmp_path / "e1"),
                           "--time-steps=12"))
    assert "20 samples from 1 file(s) x air_temperature x 12x1x" in line
    store = CubeStore.open(str(tmp_path / "e1"))
    assert store.schema.units == {"air_temperature": "K"}


@pytest.mark.parametrize("args, needles", [
    (("frobnicate",), ("unknown command 'frobnicate'", "build-cubes, ingest-netcdf")),
    (("build-cubes", *TINY, "--config.planets.num_plants=3"),
     ("config.planets.num_plants", "unknown key", "num_planets")),
    (("build-cubes", "--config", "configs/quickstart.py"),
     ("config.data", "build-cubes takes its grid from a datacube config", "task 'lm'")),
    (("build-cubes", *TINY, "--config.data.cube_lat=many"), ("config.data.cube_lat", "'many'")),
    (("build-cubes", "--config", "configs/nope.py"), ("configs/nope.py",)),
    (("ingest-netcdf", "/no/such/file.nc", "--store", "/tmp/never-written"),
     ("/no/such/file.nc", "no such file")),
    (("ingest-netcdf", __file__, "--store", "/tmp/never-written"),
     ("test_data_cli.py", "cannot read it as netCDF")),
])
def test_bad_input_is_one_line_with_exit_code_2(args, needles):
    assert_one_line_error(run_cli(*args), *needles)


def test_help_exits_0_and_each_command_shows_its_own_flags():
    top = run_cli("--help")
    assert top.returncode == 0, top.stderr
    for command in ("build-cubes", "ingest-netcdf", "fetch", "build-catalog"):
        assert command in top.stdout
    fetch = run_cli("fetch", "--help")
    assert fetch.returncode == 0, fetch.stderr
    assert "--base-url" in fetch.stdout and "--offline" in fetch.stdout and "nasa" in fetch.stdout
    assert "--store" not in fetch.stdout and "--variables" not in fetch.stdout
    ingest = run_cli("ingest-netcdf", "-h")
    assert ingest.returncode == 0, ingest.stderr
    assert "--time-steps" in ingest.stdout and "--store" in ingest.stdout
    assert "--config" not in ingest.stdout and "--base-url" not in ingest.stdout
    catalog = run_cli("build-catalog", "--helpfull")
    assert catalog.returncode == 0 and "--from" in catalog.stdout
    assert "--option" not in catalog.stdout
