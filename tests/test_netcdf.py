"""netCDF ingest: CF dimension mapping, masked values, grids across files, the real HadCM3 file."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from astrojax.data.formats.netcdf import NetCDFError, ingest_netcdf
from astrojax.data.formats.store import CubeStore, StoreError, compute_stats

SAMPLE_DATA = Path(importlib.util.find_spec("iris_sample_data").submodule_search_locations[0],
                   "sample_data")
E1 = SAMPLE_DATA / "E1_north_america.nc"
needs_h5py = pytest.mark.skipif(
    importlib.util.find_spec("h5py") is None,
    reason="the sample files are netCDF4 (HDF5): h5netcdf reads them through h5py, which "
           "h5netcdf 1.8 declares only as its [h5py] extra")


def cf_dataset(steps: int = 24, lat0: float = 15.0, seed: int = 0) -> xr.Dataset:
    """A small CF dataset like HadCM3 output: a 2-D surface field and a pressure-level field."""
    rng = np.random.default_rng(seed)
    y, x = 5, 7
    return xr.Dataset(
        {"tas": (("time", "latitude", "longitude"), rng.normal(280, 5, (steps, y, x)),
                 {"units": "K", "standard_name": "air_temperature",
                  "cell_methods": "time: mean"}),
         "ta": (("time", "p", "latitude", "longitude"), rng.normal(250, 5, (steps, 3, y, x)),
                {"units": "K"}),
         "time_bnds": (("time", "bnds"), np.zeros((steps, 2))),
         "latitude_longitude": ((), 0, {"grid_mapping_name": "latitude_longitude"})},
        coords={
            "time": ("time", np.arange(steps) * 720.0 + 1e6,
                     {"units": "hours since 1970-01-01 00:00:00", "calendar": "360_day",
                      "standard_name": "time"}),
            "p": ("p", [1000.0, 850.0, 500.0], {"units": "hPa", "axis": "Z"}),
            "latitude": ("latitude", np.linspace(lat0, 75, y), {"units": "degrees_north"}),
            "longitude": ("longitude", np.linspace(225, 315, x), {"units": "degrees_east"}),
            "height": ((), 1.5, {"units": "m", "standard_name": "height"})},
        attrs={"Conventions": "CF-1.5", "history": "written by a test", "source": "test"})


def write_netcdf3(ds: xr.Dataset, path: Path) -> str:
    ds.to_netcdf(path, engine="scipy")  # netCDF3 classic: readable without h5py
    return str(path)


def test_surface_field_round_trip_with_metadata(tmp_path):
    ds = cf_dataset()
    path = write_netcdf3(ds, tmp_path / "a.nc")
    store = ingest_netcdf([path], str(tmp_path / "store"), variables=["tas"], time_steps=6,
                          progress=False)
    assert store.num_samples == 4 and store.schema.shape == (6, 1, 5, 7)
    np.testing.assert_array_equal(store.read_sample(2)[0, :, 0],
                                  ds.tas.values[12:18].astype(np.float32))
    schema = store.schema
    assert schema.units == {"tas": "K"}
    np.testing.assert_array_equal(schema.coords["lat"], ds.latitude.values)
    assert schema.coords["time"] == [0.0, 720.0, 1440.0, 2160.0, 2880.0, 3600.0]
    assert schema.coord_units == {"time": "hours", "level": "", "lat": "degrees_north",
                                  "lon": "degrees_east"}
    assert schema.attrs["files"][0]["global"]["history"] == "written by a test"
    assert schema.attrs["variables"]["tas"]["cell_methods"] == "time: mean"
    assert schema.attrs["calendar"] == "360_day"
    assert schema.attrs["scalar_coords"]["height"]["value"] == 1.5
    labels = store.read_labels()  # file_index, time_start
    np.testing.assert_array_equal(labels[:, 1], ds.time.values[::6])


def test_levels_are_mapped_and_kept(tmp_path):
    ds = cf_dataset().transpose("time", "longitude", "p", "latitude", "bnds")
    path = write_netcdf3(ds, tmp_path / "a.nc")
    store = ingest_netcdf([path], str(tmp_path / "store"), variables=["ta"], time_steps=12,
                          progress=False)
    assert store.schema.shape == (12, 3, 5, 7)
    assert store.schema.coords["level"] == [1000.0, 850.0, 500.0]
    assert store.schema.coord_units["level"] == "hPa"
    expected = ds.ta.transpose("time", "p", "latitude", "longitude").values[12:24]
    np.testing.assert_array_equal(store.read_sample(1)[0], expected.astype(np.float32))


def test_default_selection_needs_one_grid(tmp_path):
    path = write_netcdf3(cf_dataset(), tmp_path / "a.nc")
    with pytest.raises(NetCDFError, match=r"a.nc: the variables are not on one .*tas.*ta"):
        ingest_netcdf([path], str(tmp_path / "s"), progress=False)
    path = write_netcdf3(cf_dataset().drop_vars("ta"), tmp_path / "b.nc")
    store = ingest_netcdf([path], str(tmp_path / "t"), progress=False)  # skips bounds, mapping
    assert store.schema.variables == ("tas",) and store.num_samples == 1


def test_masked_values_become_nan_and_stats_report_them(tmp_path):
    ds = cf_dataset()
    ds["tas"][7, 2, 3] = np.nan
    ds["tas"].encoding["_FillValue"] = -999.0
    path = write_netcdf3(ds, tmp_path / "a.nc")
    with xr.open_dataset(path, engine="scipy", mask_and_scale=False, decode_times=False) as raw:
        assert raw.tas.values[7, 2, 3] == -999.0  # on disk it is the fill value
    store = ingest_netcdf([path], str(tmp_path / "s"), variables=["tas"], time_steps=6,
                          progress=False)
    assert np.isnan(store.read_sample(1)[0, 1, 0, 2, 3])
    with pytest.raises(StoreError, match=r"\(sample 1, 'tas'\)"):
        compute_stats(store)


def test_several_files_share_a_grid(tmp_path):
    a = write_netcdf3(cf_dataset(seed=1), tmp_path / "a.nc")
    b = write_netcdf3(cf_dataset(seed=2), tmp_path / "b.nc")
    store = ingest_netcdf([a, b], str(tmp_path / "s"), variables=["ta"], progress=False)
    assert store.num_samples == 2  # default: one sample per file
    np.testing.assert_array_equal(store.read_labels()[:, 0], [0, 1])
    np.testing.assert_array_equal(store.read_sample(1)[0],
                                  cf_dataset(seed=2).ta.values.astype(np.float32))
    c = write_netcdf3(cf_dataset(lat0=20.0), tmp_path / "c.nc")
    with pytest.raises(NetCDFError, match=r"c.nc: its lat coordinate .* differs from that of "
                                          r".*a.nc"):
        ingest_netcdf([a, c], str(tmp_path / "t"), variables=["ta"], progress=False)
    d = write_netcdf3(cf_dataset(steps=12), tmp_path / "d.nc")
    with pytest.raises(NetCDFError, match=r"d.nc: 12 time steps do not split into samples of "
                                          "24"):
        ingest_netcdf([a, d], str(tmp_path / "u"), variables=["ta"], progress=False)


def test_curvilinear_grid_is_refused_by_name(tmp_path):
    y, x = np.meshgrid(np.arange(4.0), np.arange(6.0), indexing="ij")
    ds = xr.Dataset({"sst": (("time", "y", "x"), np.ones((2, 4, 6)), {"units": "K"})},
                    coords={"time": ("time", [0.0, 1.0], {"units": "days since 2000-01-01"}),
                            "lat": (("y", "x"), 40 + y, {"standard_name": "latitude"}),
                            "lon": (("y", "x"), 10 + x + y, {"standard_name": "longitude"})})
    path = write_netcdf3(ds, tmp_path / "curvi.nc")
    with pytest.raises(NetCDFError, match=r"curvi.nc: variable 'sst' has dimensions \('time', "
                                          r"'y', 'x'\).*lat, lon coordinates are 2-D"):
        ingest_netcdf([path], str(tmp_path / "s"), variables=["sst"], progress=False)


def test_bad_files_and_variables_are_named(tmp_path):
    path = write_netcdf3(cf_dataset(), tmp_path / "a.nc")
    with pytest.raises(NetCDFError, match=r"a.nc: no variable 'pr'; it has tas, ta"):
        ingest_netcdf([path], str(tmp_path / "s"), variables=["tas", "pr"], progress=False)
    text = tmp_path / "notes.nc"
    text.write_text("this is not netCDF\n")
    with pytest.raises(NetCDFError, match=r"notes.nc: cannot read it as netCDF"):
        ingest_netcdf([str(text)], str(tmp_path / "s"), progress=False)
    with pytest.raises(NetCDFError, match=r"nowhere.nc: no such file"):
        ingest_netcdf([str(tmp_path / "nowhere.nc")], str(tmp_path / "s"), progress=False)


def test_interrupted_ingest_resumes(tmp_path):
    path = write_netcdf3(cf_dataset(), tmp_path / "a.nc")
    url = str(tmp_path / "s")
    store = ingest_netcdf([path], url, variables=["tas"], time_steps=2, progress=False)
    expected = store.read_samples(range(store.num_samples))
    store._kvstore().write("complete/5", None).result()  # as if killed before this marker
    resumed = ingest_netcdf([path], url, variables=["tas"], time_steps=2, progress=False)
    assert resumed.complete().all()
    np.testing.assert_array_equal(resumed.read_samples(range(12)), expected)


@needs_h5py
def test_real_hadcm3_air_temperature(tmp_path):
    store = ingest_netcdf([str(E1)], str(tmp_path / "e1"), time_steps=12, progress=False)
    with xr.open_dataset(E1, engine="h5netcdf", decode_times=False) as ds:
        temperature = ds["air_temperature"]
        assert temperature.dims == ("time", "latitude", "longitude")
        values = temperature.values.astype(np.float32)
        latitude, longitude = ds.latitude.values, ds.longitude.values
        global_attrs = dict(ds.attrs)
        time_units = ds.time.attrs["units"]
    assert values.shape[0] == 240
    assert store.schema.variables == ("air_temperature",)
    assert store.num_samples == 20 and store.schema.shape == (12, 1, *values.shape[1:])
    assert store.schema.units == {"air_temperature": "K"}
    for i in (0, 7, 19):
        np.testing.assert_array_equal(store.read_sample(i)[0, :, 0], values[12 * i:12 * i + 12])
    np.testing.assert_allclose(store.schema.coords["lat"], latitude)
    np.testing.assert_allclose(store.schema.coords["lon"], longitude)
    assert store.schema.attrs["time_units"] == time_units
    stored = store.schema.attrs["files"][0]["global"]
    assert set(stored) == set(global_attrs) and "Conventions" in stored
    assert all(stored[k] == v for k, v in global_attrs.items() if isinstance(v, str))
    stats = compute_stats(CubeStore.open(str(tmp_path / "e1")))
    np.testing.assert_allclose(stats.mean[0, 0], values.astype(np.float64).mean(), rtol=1e-10)
