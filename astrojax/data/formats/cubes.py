"""The built-in planets' climate cubes in a cube store: where they are cached by default and
how they are built. ``climate`` makes the cubes, ``store`` keeps any cubes; this module joins
the two for the synthetic population (so the store knows nothing of the generator)."""

from __future__ import annotations

import os

import numpy as np

from astrojax.data import generator
from astrojax.data.formats.store import AXES, CubeSchema, CubeStore, build_store, compute_stats
from astrojax.data.generator import climate


def default_cube_store(num_planets: int, seed: int, grid: climate.CubeGrid) -> str:
    """Where the built-in population's cubes on ``grid`` are cached."""
    base = os.environ.get("ASTROJAX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                             "astrojax")
    t, levels, lat, lon = grid.shape
    return os.path.join(base, "cubes", f"{num_planets}-{seed}-{t}x{levels}x{lat}x{lon}")


def build_synthetic_store(num_planets: int, seed: int, grid: climate.CubeGrid,
                          url: str | None = None, progress: bool = True) -> CubeStore:
    """Builds (or resumes, or just opens) the store of the cubes of the built-in population's
    first ``num_planets`` planets (generator ``seed``) on ``grid``, with statistics; at ``url``
    or the cache (:func:`default_cube_store`). Sample ``i`` is planet ``i``."""
    url = url or default_cube_store(num_planets, seed, grid)
    population = generator.generate_population(num_planets, seed)
    coords = climate.grid_coordinates(grid)
    label_names, _ = climate.cube_labels(population, np.arange(1))
    label_names = tuple(label_names)
    add_regime = "climate_regime" not in label_names
    if add_regime:
        label_names += ("climate_regime",)
    schema = CubeSchema(
        variables=tuple(climate.CUBE_VARIABLES), shape=grid.shape,
        units={v: climate.VARIABLE_UNITS[v] for v in climate.CUBE_VARIABLES},
        coords={axis: coords[axis] for axis in AXES},
        coord_units={axis: climate.COORDINATE_UNITS[axis] for axis in AXES},
        attrs={"source": "energy-balance climate cubes of the built-in synthetic planet "
                         "population",
               "num_planets": num_planets, "population_seed": seed},
        label_names=label_names)

    def make_sample(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cubes = climate.planet_cubes(population, grid, seed=seed, indices=indices)
        _, labels = climate.cube_labels(population, indices)
        labels = np.asarray(labels, np.float64)
        if add_regime:
            regime = population.climate_regime[indices].astype(np.float64)[:, None]
            labels = np.concatenate([labels, regime], axis=1)
        return cubes, labels

    store = build_store(url, schema, num_planets, make_sample, progress=progress)
    if store.stats is None:
        store.set_stats(compute_stats(store, progress=progress))
    return store

