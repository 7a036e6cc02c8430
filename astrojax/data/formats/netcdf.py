"""Ingest CF-convention netCDF climate-model output into a cube store, through xarray.

Each variable's dimensions are matched to the store's (time, level, lat, lon) by their CF
``standard_name``, then ``axis`` (and degree ``units``), then common names; a variable without
a level dimension gets L = 1. Every file is cut along time into samples of ``time_steps``
steps. What the store keeps:

- coordinates: ``level``, ``lat``, ``lon`` values and units; ``time`` as offsets from each
  sample's first step, in the time unit of the file (``hours`` of ``hours since ...``);
- labels per sample: ``file_index`` (into ``attrs["files"]``) and ``time_start``, in the
  file's time units (``attrs["time_units"]``, ``attrs["calendar"]``), so that a sample's
  absolute times are ``time_start + coords["time"]``;
- attributes: each file's path and global attributes (history, source, institution,
  Conventions, ...), each variable's attributes (standard_name, cell_methods, ...), the
  attributes of the dimension coordinates and any scalar coordinates (e.g. height = 1.5 m).

Masked or missing values (``_FillValue``/``missing_value``) become NaN in the store, as
xarray decodes them; :func:`astrojax.data.formats.store.compute_stats` then refuses the store and
lists the (sample, variable) pairs holding NaN, so they are never silently averaged: fill them
or drop those samples first. Ingestion goes through :func:`build_store`, so an interrupted
ingest resumes when rerun with the same arguments.
"""

import contextlib
import os
from collections.abc import Sequence

import numpy as np
import xarray as xr

from astrojax.data.formats.store import AXES, CubeSchema, CubeStore, StoreError, build_store

_STANDARD_NAMES = {
    "time": ("time",),
    "level": ("air_pressure", "height", "altitude", "depth", "model_level_number",
              "atmosphere_hybrid_height_coordinate", "atmosphere_hybrid_sigma_pressure_coordinate",
              "atmosphere_sigma_coordinate", "atmosphere_ln_pressure_coordinate",
              "ocean_sigma_coordinate", "ocean_s_coordinate", "ocean_double_sigma_coordinate"),
    "lat": ("latitude", "grid_latitude"),
    "lon": ("longitude", "grid_longitude"),
}
_NAMES = {
    "time": ("time", "t"),
    "level": ("level", "lev", "plev", "height", "depth", "model_level_number", "z", "pressure"),
    "lat": ("lat", "latitude", "grid_latitude", "rlat"),
    "lon": ("lon", "longitude", "grid_longitude", "rlon"),
}
_CF_AXIS = {"T": "time", "Z": "level", "Y": "lat", "X": "lon"}
_DEGREE_UNITS = {"lat": ("degrees_north", "degree_north", "degree_n", "degrees_n"),
                 "lon": ("degrees_east", "degree_east", "degree_e", "degrees_e")}


class NetCDFError(StoreError):
    """A netCDF file cannot be ingested; the message names the file (and variable)."""


def open_netcdf(path: str) -> xr.Dataset:
    """The file as an undecoded-time, masked xarray Dataset: h5netcdf first, then xarray's
    default engine selection (e.g. scipy for netCDF3 classic files)."""
    if not os.path.isfile(path):
        raise NetCDFError(f"{path}: no such file")
    options = dict(decode_times=False, decode_timedelta=False, mask_and_scale=True)
    try:
        return xr.open_dataset(path, engine="h5netcdf", **options)
    except Exception as h5_err:  # any failure here means: let xarray pick another engine
        try:
            return xr.open_dataset(path, **options)
        except Exception as err:
            raise NetCDFError(f"{path}: cannot read it as netCDF (h5netcdf: "
                              f"{_first_line(h5_err)}; other engines: {_first_line(err)})"
                              ) from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def classify_dimension(ds: xr.Dataset, dim: str) -> str | None:
    """Which store axis (time, level, lat, lon) a dimension is, or None."""
    attrs = ds[dim].attrs if dim in ds.variables else {}
    standard_name = str(attrs.get("standard_name", "")).lower()
    for axis, names in _STANDARD_NAMES.items():
        if standard_name in names:
            return axis
    if standard_name.startswith("projection_"):
        return None  # x/y in metres of a projected (curvilinear) grid
    axis = _CF_AXIS.get(str(attrs.get("axis", "")).upper())
    units = str(attrs.get("units", "")).lower()
    if axis in ("time", "level"):
        return axis
    for degree_axis, degree_units in _DEGREE_UNITS.items():
        if units in degree_units:
            return degree_axis
    if axis is None and not standard_name:
        for candidate, names in _NAMES.items():
            if dim.lower() in names:
                return candidate
    return None


def _axes_of(ds: xr.Dataset, path: str, name: str) -> dict[str, str]:
    """Store axis -> dimension name for variable ``name``; NetCDFError if it does not map."""
    dims = ds[name].dims
    mapped = {dim: classify_dimension(ds, dim) for dim in dims}
    axes = {axis: dim for dim, axis in mapped.items() if axis is not None}
    if None in mapped.values() or len(axes) != len(dims) or not {"time", "lat", "lon"} <= set(
            axes):
        curvilinear = [c for c in ds[name].coords
                       if classify_dimension(ds, c) in ("lat", "lon") and ds[c].ndim > 1]
        hint = (f"; its {', '.join(curvilinear)} coordinates are 2-D (a curvilinear grid): "
                "regrid to 1-D latitude/longitude first") if curvilinear else ""
        raise NetCDFError(f"{path}: variable {name!r} has dimensions {dims}, which do not map "
                          f"to (time, [level,] lat, lon){hint}")
    return axes


def _select(ds: xr.Dataset, path: str, variables: Sequence[str] | None) -> dict[str, dict]:
    """Variable -> its axis mapping, for the requested (or every gridded) data variable."""
    if variables is not None:
        unknown = [v for v in variables if v not in ds.data_vars]
        if unknown:
            raise NetCDFError(f"{path}: no variable {', '.join(map(repr, unknown))}; it has "
                              f"{', '.join(map(str, ds.data_vars)) or 'no data variables'}")
        chosen = {v: _axes_of(ds, path, v) for v in variables}
    else:
        chosen = {}
        for name in ds.data_vars:
            with contextlib.suppress(NetCDFError):
                chosen[str(name)] = _axes_of(ds, path, str(name))
        if not chosen:
            raise NetCDFError(f"{path}: no data variable on a (time, [level,] lat, lon) grid "
                              f"(data variables: {', '.join(map(str, ds.data_vars)) or 'none'})")
    grids = {name: tuple(axes.get(a) for a in AXES) for name, axes in chosen.items()}
    if len(set(grids.values())) > 1:
        described = "; ".join(f"{n}: {g}" for n, g in grids.items())
        raise NetCDFError(f"{path}: the variables are not on one (time, level, lat, lon) grid "
                          f"({described}); choose some with variables=")
    return chosen


def _coordinate(ds: xr.Dataset, dim: str | None) -> tuple[np.ndarray, dict]:
    if dim is None:
        return np.zeros(1), {}
    if dim in ds.variables:
        return np.asarray(ds[dim].values, np.float64), dict(ds[dim].attrs)
    return np.arange(ds.sizes[dim], dtype=np.float64), {}


def _grid(ds: xr.Dataset, axes: dict[str, str]) -> dict[str, tuple[np.ndarray, dict]]:
    return {axis: _coordinate(ds, axes.get(axis)) for axis in AXES}


def _scalar_coords(ds: xr.Dataset) -> dict:
    out = {}
    for name, coord in ds.coords.items():
        if coord.ndim == 0:
            value = coord.values.item()
            out[str(name)] = {"value": value if isinstance(value, int | float) else str(value),
                              **coord.attrs}
    return out


def ingest_netcdf(files: Sequence[str], store_url: str, *,
                  variables: Sequence[str] | None = None, time_steps: int | None = None,
                  progress: bool = True) -> CubeStore:
    """Writes the files' variables into a cube store at ``store_url`` (resuming if present)."""
    files = [os.fspath(f) for f in files]
    if not files:
        raise NetCDFError("no netCDF files given")
    if variables is not None:
        variables = [variables] if isinstance(variables, str) else list(variables)
    with contextlib.ExitStack() as stack:
        datasets = []
        for path in files:
            datasets.append(open_netcdf(path))
            stack.callback(datasets[-1].close)
        chosen = _select(datasets[0], files[0], variables)
        names = list(chosen)
        file_axes = [chosen[names[0]]] + [_select(ds, path, names)[names[0]]
                                          for path, ds in zip(files[1:], datasets[1:],
                                                              strict=True)]
        grid = _grid(datasets[0], file_axes[0])
        for path, ds, axes in zip(files[1:], datasets[1:], file_axes[1:], strict=True):
            _check_same_grid(ds, path, names, axes, datasets[0], files[0], grid)
        lengths = [ds.sizes[axes["time"]] for ds, axes in zip(datasets, file_axes, strict=True)]
        steps = lengths[0] if time_steps is None else int(time_steps)
        starts = []  # (file index, first time step) of each sample
        for f, (path, length) in enumerate(zip(files, lengths, strict=True)):
            if steps < 1 or length % steps:
                reason = ("every file must have the same number of steps when time_steps is "
                          "not given" if time_steps is None else "choose a divisor")
                raise NetCDFError(f"{path}: {length} time steps do not split into samples of "
                                  f"{steps} ({reason})")
            starts += [(f, s) for s in range(0, length, steps)]
        schema = _schema(datasets, files, names, file_axes[0], grid, steps)
        times = [_coordinate(ds, axes["time"])[0] for ds, axes in zip(datasets, file_axes,
                                                                       strict=True)]

        def make_sample(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            cubes, labels = [], []
            for i in indices:
                f, start = starts[int(i)]
                cubes.append(np.stack([_read(datasets[f], v, file_axes[f], start, steps)
                                       for v in names]))
                labels.append((f, times[f][start]))
            return np.stack(cubes), np.asarray(labels, np.float64)

        return build_store(store_url, schema, len(starts), make_sample, chunk=8,
                           progress=progress)


def _read(ds: xr.Dataset, name: str, axes: dict[str, str], start: int, steps: int) -> np.ndarray:
    array = ds[name].isel({axes["time"]: slice(start, start + steps)})
    order = [axes[a] for a in AXES if a in axes]
    values = np.asarray(array.transpose(*order).values, np.float32)
    return values if "level" in axes else values[:, None]


def _check_same_grid(ds, path, names, axes, first, first_path, grid) -> None:
    """NetCDFError naming ``path`` if its grid or units differ from the first file's."""
    for axis in ("level", "lat", "lon"):
        values, _ = _coordinate(ds, axes.get(axis))
        reference = grid[axis][0]
        if values.shape != reference.shape or not np.allclose(values, reference, rtol=1e-6,
                                                              atol=1e-9):
            raise NetCDFError(f"{path}: its {axis} coordinate ({len(values)} values from "
                              f"{values[0]:g}) differs from that of {first_path} "
                              f"({len(reference)} from {reference[0]:g}); all files must "
                              "share one grid")
    for name in names:
        units, expected = ds[name].attrs.get("units", ""), first[name].attrs.get("units", "")
        if units != expected:
            raise NetCDFError(f"{path}: variable {name!r} is in {units!r}, but in {expected!r} "
                              f"in {first_path}")


def _schema(datasets, files, names, axes, grid, steps) -> CubeSchema:
    first = datasets[0]
    time_values, time_attrs = grid["time"]
    time_units = str(time_attrs.get("units", ""))
    coords = {axis: grid[axis][0] for axis in ("level", "lat", "lon")}
    coords["time"] = time_values[:steps] - time_values[0]
    coord_units = {axis: str(grid[axis][1].get("units", "")) for axis in ("level", "lat", "lon")}
    coord_units["time"] = time_units.split(" since ")[0].strip()
    attrs = {
        "source": "netCDF ingest (astrojax.data.formats.netcdf)",
        "files": [{"path": os.path.abspath(p), "global": dict(ds.attrs)}
                  for p, ds in zip(files, datasets, strict=True)],
        "variables": {v: dict(first[v].attrs) for v in names},
        "dimensions": {axis: {"name": axes.get(axis), **grid[axis][1]} for axis in AXES},
        "scalar_coords": _scalar_coords(first[names[0]].to_dataset()),
        "time_units": time_units,
        "calendar": str(time_attrs.get("calendar", "standard")),
    }
    units = {v: str(first[v].attrs.get("units", "")) for v in names}
    return CubeSchema(variables=tuple(names),
                      shape=(steps, len(coords["level"]), len(coords["lat"]), len(coords["lon"])),
                      units=units, coords=coords, coord_units=coord_units, attrs=attrs,
                      label_names=("file_index", "time_start"))
