"""Climate datacubes: shapes, determinism, agreement with the planet, physical structure."""

import numpy as np
import pytest

from astrojax.data import generator as syn
from astrojax.data.generator import climate

NUM = 256
GRID = climate.CubeGrid()
T, RH, CLOUD, U, V = range(len(climate.CUBE_VARIABLES))
ODD_GRIDS = [climate.CubeGrid(1, 1, 7, 12), climate.CubeGrid(3, 2, 5, 9),
             climate.CubeGrid(1, 1, 1, 1), climate.CubeGrid(2, 5, 2, 3)]


@pytest.fixture(scope="module")
def pop() -> syn.PlanetPopulation:
    return syn.generate_population(NUM, seed=0)


@pytest.fixture(scope="module")
def cubes(pop) -> np.ndarray:
    return climate.planet_cubes(pop, GRID, seed=0).astype(np.float64)


@pytest.fixture(scope="module")
def kinds(pop) -> dict[str, np.ndarray]:
    p = pop.surface_pressure_bar
    return {"locked": climate.tidally_locked(pop), "air": p >= syn.AIRLESS_PRESSURE_BAR,
            "thin": p < 1.0, "thick": p > 10.0, "dry": pop.water_fraction == 0}


def _lat() -> np.ndarray:
    return climate.grid_coordinates(GRID)["lat"]


def _global_mean_surface(cubes: np.ndarray, grid: climate.CubeGrid) -> np.ndarray:
    weights = np.cos(np.radians(climate.grid_coordinates(grid)["lat"]))
    zonal_time_mean = cubes[:, T, :, 0].astype(np.float64).mean(axis=(1, 3))
    return zonal_time_mean @ weights / weights.sum()


def _equator_pole_contrast(cubes: np.ndarray) -> np.ndarray:
    zonal_time_mean = cubes[:, T, :, 0].mean(axis=(1, 3))
    lat = np.abs(_lat())
    return zonal_time_mean[:, lat < 15].mean(1) - zonal_time_mean[:, lat > 70].mean(1)


# ------------------------------------------------------------------ API, shapes, determinism
def test_grid_validation_names_the_field():
    for field, bad in [("time_steps", 0), ("levels", 2.5), ("lat", -3), ("lon", True)]:
        with pytest.raises(ValueError, match=f"CubeGrid.{field}"):
            climate.CubeGrid(**{field: bad})


def test_grid_coordinates():
    coords = climate.grid_coordinates(climate.CubeGrid(time_steps=4, levels=4, lat=6, lon=8))
    assert set(coords) == set(climate.COORDINATE_UNITS)
    assert set(climate.VARIABLE_UNITS) == set(climate.CUBE_VARIABLES)
    np.testing.assert_allclose(coords["time"], [0.125, 0.375, 0.625, 0.875])
    np.testing.assert_allclose(coords["level"], [1.0, 0.75, 0.5, 0.25])  # level 0: surface
    np.testing.assert_allclose(coords["lat"], [-75, -45, -15, 15, 45, 75])
    np.testing.assert_allclose(coords["lon"], np.arange(22.5, 360, 45))


@pytest.mark.parametrize("grid", [GRID, *ODD_GRIDS], ids=str)
def test_shapes_dtype_and_calibration_on_grids(pop, grid):
    cubes = climate.planet_cubes(pop, grid, seed=1, indices=np.arange(64))
    assert cubes.shape == (64, len(climate.CUBE_VARIABLES), *grid.shape)
    assert cubes.dtype == np.float32
    assert np.isfinite(cubes).all()
    np.testing.assert_allclose(_global_mean_surface(cubes, grid),
                               pop.surface_temperature_k[:64], atol=0.5)


def test_deterministic_and_prefix_stable(pop, cubes):
    small = syn.generate_population(64, seed=0)
    np.testing.assert_array_equal(climate.planet_cubes(small, GRID, seed=0), cubes[:64])
    again = climate.planet_cubes(pop, GRID, seed=0, indices=np.arange(64))
    np.testing.assert_array_equal(again, cubes[:64])
    other_seed = climate.planet_cubes(small, GRID, seed=1)
    assert not np.array_equal(other_seed, cubes[:64])


def test_indices_pick_rows_in_order(pop, cubes):
    indices = [200, 3, 3, -1, 0, 130]
    np.testing.assert_array_equal(climate.planet_cubes(pop, GRID, seed=0, indices=indices),
                                  cubes[indices])
    assert climate.planet_cubes(pop, GRID, indices=[]).shape == (0, 5, *GRID.shape)
    with pytest.raises(IndexError, match="256"):
        climate.planet_cubes(pop, GRID, indices=[NUM])
    with pytest.raises(ValueError, match="seed"):
        climate.planet_cubes(pop, GRID, seed=-1)
    with pytest.raises(TypeError, match="CubeGrid"):
        climate.planet_cubes(pop, (8, 4, 16, 32))


def test_labels(pop, kinds):
    names, labels = climate.cube_labels(pop)
    assert names == climate.LABELS and labels.shape == (NUM, len(names))
    assert labels.dtype == np.float32
    column = dict(zip(names, labels.T, strict=True))
    np.testing.assert_allclose(column["surface_temperature_k"], pop.surface_temperature_k,
                               rtol=1e-6)
    np.testing.assert_allclose(column["log10_surface_pressure_bar"],
                               np.log10(pop.surface_pressure_bar), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(column["tidally_locked"], kinds["locked"])
    _, some = climate.cube_labels(pop, indices=[5, 1])
    np.testing.assert_array_equal(some, labels[[5, 1]])


# ------------------------------------------------------------------ physics
def test_mean_surface_temperature_is_the_planets(pop, cubes):
    np.testing.assert_allclose(_global_mean_surface(cubes, GRID), pop.surface_temperature_k,
                               atol=0.5)


def test_poles_colder_than_equator_and_thick_atmospheres_even(cubes, kinds):
    contrast = _equator_pole_contrast(cubes)
    thin_rotator = ~kinds["locked"] & kinds["thin"]
    assert thin_rotator.sum() > 20
    assert (contrast[thin_rotator] > 2.0).all()
    thick = ~kinds["locked"] & kinds["thick"]
    assert np.median(contrast[thick]) < 0.1 * np.median(contrast[thin_rotator])
    # A fast rotator's fields are zonal means; a locked planet's are not.
    rotators = cubes[~kinds["locked"]]
    assert (rotators == rotators[..., :1]).all()


def test_locked_planets_have_a_day_and_a_night(cubes, kinds):
    lon = climate.grid_coordinates(GRID)["lon"]
    surface = cubes[:, T, :, 0].mean(axis=(1, 2))  # time and latitude mean, by longitude
    contrast = (surface[:, np.abs(lon - 180) < 60].mean(1)
                - surface[:, np.abs(lon - 180) > 120].mean(1))
    thin_locked = kinds["locked"] & kinds["thin"]
    assert thin_locked.sum() > 10
    assert (contrast[thin_locked] > 20.0).all()
    assert (contrast[kinds["locked"]] > 0).all()
    # The surface flow converges on the substellar point; humidity rises there.
    wet_locked = kinds["locked"] & kinds["air"] & ~kinds["dry"]
    u_surface = cubes[wet_locked, U, :, 0].mean(axis=(1, 2))
    assert (u_surface[:, (lon > 100) & (lon < 170)].mean(1)
            > u_surface[:, (lon > 190) & (lon < 260)].mean(1)).all()
    rh = cubes[wet_locked, RH, :, 0].mean(axis=(1, 2))
    assert (rh[:, np.abs(lon - 180) < 60].mean(1) > rh[:, np.abs(lon - 180) > 120].mean(1)).all()


def test_temperature_falls_with_height_to_the_skin(pop, cubes, kinds):
    temperature = cubes[:, T]
    assert (np.diff(temperature, axis=2) <= 1e-3).all()
    air = kinds["air"] & (pop.surface_pressure_bar > 0.1)
    lapse = (temperature[:, :, 0] - temperature[:, :, 1]).mean(axis=(1, 2, 3))
    assert (lapse[air] > 1.0).all()
    t_skin = pop.equilibrium_temperature_k * 2**-0.25
    floor = np.minimum(t_skin[:, None, None, None], temperature[:, :, 0])
    assert (temperature[:, :, -1] >= floor * (1 - 1e-6)).all()
    airless = cubes[~kinds["air"], T]
    np.testing.assert_array_equal(airless, np.broadcast_to(airless[:, :, :1], airless.shape))
    assert (temperature > 0.29 * pop.surface_temperature_k[:, None, None, None, None]).all()


def test_dry_and_airless_planets_have_no_humidity_cloud_or_wind(cubes, kinds):
    assert kinds["dry"].sum() > 20 and (~kinds["air"]).sum() > 10
    assert (cubes[kinds["dry"], RH] == 0).all() and (cubes[kinds["dry"], CLOUD] == 0).all()
    assert (cubes[~kinds["air"], U:] == 0).all()
    assert (cubes[:, RH:CLOUD + 1] >= 0).all() and (cubes[:, RH:CLOUD + 1] <= 1).all()


def test_humidity_and_cloud_follow_the_planet(pop, cubes, kinds):
    wet = ~kinds["dry"]
    surface_rh = cubes[wet, RH, :, 0].mean(axis=(1, 2, 3))
    assert np.corrcoef(surface_rh, pop.relative_humidity[wet])[0, 1] > 0.9
    assert (cubes[wet, RH, :, 0].mean(axis=(1, 2, 3))
            > cubes[wet, RH, :, -1].mean(axis=(1, 2, 3))).all()  # drier aloft
    cloud = cubes[:, CLOUD].mean(axis=(1, 2, 3, 4))
    humid, dryish = wet & (pop.relative_humidity > 0.75), wet & (pop.relative_humidity < 0.45)
    assert cloud[humid].mean() > 0.05 > cloud[dryish].mean()


def test_winds_thermal_and_hadley(cubes, kinds):
    rotators = ~kinds["locked"] & kinds["air"] & (_equator_pole_contrast(cubes) > 5.0)
    assert rotators.sum() > 20
    # Thermal wind: no zonal wind at a rotator's surface, growing with height.
    speed = np.abs(cubes[rotators, U]).mean(axis=(1, 3, 4))
    assert (speed[:, 0] == 0).all() and (np.diff(speed, axis=1) > 0).all()
    # Hadley cells: the surface flow converges on the warmest latitude, where it is distinct.
    converging = 0
    for cube in cubes[rotators]:
        for temperature, v in zip(cube[T, :, 0, :, 0], cube[V, :, 0, :, 0], strict=True):
            j = int(np.argmax(temperature))
            if 0 < j < GRID.lat - 1 and temperature[j] - temperature[[j - 1, j + 1]].max() > 0.5:
                assert v[j - 1] > 0 > v[j + 1]
                converging += 1
    assert converging > 50


def test_finite_over_many_planets():
    pop = syn.generate_population(2048, seed=3)
    cubes = climate.planet_cubes(pop, climate.CubeGrid(time_steps=4, levels=3, lat=8, lon=12),
                                 seed=3)
    assert np.isfinite(cubes).all()


@pytest.mark.slow
def test_finite_over_many_planets_default_grid():
    pop = syn.generate_population(2048, seed=4)
    for start in range(0, len(pop), 512):
        cubes = climate.planet_cubes(pop, seed=4, indices=np.arange(start, start + 512))
        assert np.isfinite(cubes).all()
        np.testing.assert_allclose(_global_mean_surface(cubes, GRID),
                                   pop.surface_temperature_k[start:start + 512], atol=0.5)
