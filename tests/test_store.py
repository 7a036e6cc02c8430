"""The TensorStore cube store: round trips, resume after interruption, corruption, statistics."""

import dataclasses
import os
import pickle
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from astrojax.data.formats.cubes import default_cube_store
from astrojax.data.formats.store import (
    CubeSchema,
    CubeStats,
    CubeStore,
    StoreError,
    build_store,
    compute_stats,
    store_spec,
)
from astrojax.data.generator.climate import CubeGrid

VARIABLES = ("temperature", "humidity", "wind")
SHAPE = (4, 2, 4, 8)  # T, L, Y, X
N = 10


def make_schema(**changes) -> CubeSchema:
    schema = CubeSchema(
        variables=VARIABLES, shape=SHAPE,
        units={"temperature": "K", "humidity": "1", "wind": "m s-1"},
        coords={"time": [0.0, 1.0, 2.0, 3.0], "level": [1000.0, 500.0],
                "lat": np.linspace(-60, 60, 4), "lon": np.arange(8) * 45.0},
        coord_units={"time": "days", "level": "hPa", "lat": "degrees_north",
                     "lon": "degrees_east"},
        attrs={"source": "test", "Conventions": "CF-1.7", "history": "made by a test"},
        label_names=("habitable", "regime"))
    return dataclasses.replace(schema, **changes)


def make_data(n: int = N, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    cubes = rng.normal(280.0, 20.0, size=(n, len(VARIABLES), *SHAPE)).astype(np.float32)
    cubes *= np.arange(1, len(VARIABLES) + 1, dtype=np.float32)[:, None, None, None, None]
    labels = np.stack([rng.integers(0, 2, n), rng.integers(0, 5, n)], axis=1).astype(float)
    return cubes, labels


def memory_url() -> str:
    return f"memory://{uuid.uuid4().hex}"


def write_all(url: str, cubes: np.ndarray, labels: np.ndarray) -> CubeStore:
    store = CubeStore.create(url, make_schema(), len(cubes))
    for i in range(len(cubes)):
        store.write_sample(i, cubes[i], labels[i])
    return store


@pytest.fixture(params=["local", "memory"])
def url(request, tmp_path) -> str:
    return str(tmp_path / "cubes.ts") if request.param == "local" else memory_url()


def test_round_trip_values_dtype_metadata(url):
    cubes, labels = make_data()
    write_all(url, cubes, labels)
    store = CubeStore.open(url)
    assert store.num_samples == N and store.read_only
    assert store.schema == make_schema()
    assert store.schema.units["wind"] == "m s-1"
    assert store.schema.attrs["history"] == "made by a test"
    assert store.stats is None
    sample = store.read_sample(3)
    assert sample.dtype == np.float32 and sample.shape == (3, *SHAPE)
    np.testing.assert_array_equal(sample, cubes[3])
    np.testing.assert_array_equal(store.read_sample(7, ["wind", "temperature"]),
                                  cubes[7][[2, 0]])
    np.testing.assert_array_equal(store.read_samples([9, 0]), cubes[[9, 0]])
    np.testing.assert_array_equal(store.read_labels(), labels)
    assert store.complete().all() and store.missing().size == 0


def test_store_spec_accepts_paths_and_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert store_spec("rel/store") == {"driver": "file", "path": f"{tmp_path}/rel/store/"}
    assert store_spec("file:///data/x") == {"driver": "file", "path": "/data/x/"}
    assert store_spec("memory://abc") == {"driver": "memory", "path": "abc/"}
    assert store_spec("gs://bucket/cubes") == {"driver": "gcs", "bucket": "bucket",
                                               "path": "cubes/"}
    assert store_spec("s3://bucket/cubes")["driver"] == "s3"
    with pytest.raises(StoreError, match="nosuch://x"):
        store_spec("nosuch://x")


def test_relative_path_store_is_found_from_elsewhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cubes, labels = make_data(2)
    write_all("rel", cubes, labels)
    monkeypatch.chdir("/")
    store = pickle.loads(pickle.dumps(CubeStore.open(str(tmp_path / "rel"))))
    np.testing.assert_array_equal(store.read_sample(1), cubes[1])


def test_on_disk_layout(tmp_path):
    cubes, labels = make_data(2)
    write_all(str(tmp_path), cubes, labels)
    assert {p.name for p in tmp_path.iterdir()} == {"astrojax.json", "cubes", "labels",
                                                    "complete"}
    assert (tmp_path / "cubes/c/1/2/0/0/0/0").is_file()  # sample 1, variable 2
    assert sorted(p.name for p in (tmp_path / "complete").iterdir()) == ["0", "1"]


def test_interrupted_build_resumes_to_the_uninterrupted_result(tmp_path):
    cubes, labels = make_data()
    calls: list[list[int]] = []

    def make_sample(indices):
        calls.append(indices.tolist())
        if len(calls) == 3:
            raise KeyboardInterrupt  # the build is killed during its third chunk
        return cubes[indices], labels[indices]

    url = str(tmp_path / "resumed")
    with pytest.raises(KeyboardInterrupt):
        build_store(url, make_schema(), N, make_sample, chunk=3, progress=False)
    partial = CubeStore.open(url)
    assert partial.missing().tolist() == [6, 7, 8, 9]
    with pytest.raises(StoreError, match="sample 6 of .* was never completely written "
                                         r"\(interrupted build\? rerun it to resume\)"):
        partial.read_sample(6)

    calls.clear()
    resumed = build_store(url, make_schema(), N, make_sample, chunk=3, progress=False)
    assert calls == [[6, 7, 8], [9]]  # only what was missing
    reference = build_store(str(tmp_path / "reference"), make_schema(), N,
                            lambda idx: (cubes[idx], labels[idx]), progress=False)
    np.testing.assert_array_equal(resumed.read_samples(range(N)),
                                  reference.read_samples(range(N)))
    np.testing.assert_array_equal(resumed.read_labels(), reference.read_labels())
    assert resumed.schema == reference.schema


def test_data_without_marker_counts_as_incomplete(url):
    cubes, labels = make_data(3)
    store = write_all(url, cubes, labels)
    store._kvstore().write("complete/1", None).result()  # killed between data and marker
    reader = CubeStore.open(url)
    assert reader.missing().tolist() == [1]
    with pytest.raises(StoreError, match="sample 1 of .* never completely written"):
        reader.read_sample(1)
    store.write_sample(1, cubes[1], labels[1])
    np.testing.assert_array_equal(CubeStore.open(url).read_sample(1), cubes[1])


def test_concurrent_writers_of_disjoint_samples(tmp_path):
    cubes, labels = make_data()
    url = str(tmp_path / "shared")
    CubeStore.create(url, make_schema(), N)
    writers = [CubeStore.open(url, read_only=False) for _ in range(2)]  # as two processes

    def write(k: int) -> None:
        for i in range(k, N, 2):  # interleaved: neighbouring samples, different writers
            writers[k].write_sample(i, cubes[i], labels[i])

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(write, [0, 1]))
    store = CubeStore.open(url)
    assert store.complete().all()
    np.testing.assert_array_equal(store.read_samples(range(N)), cubes)
    np.testing.assert_array_equal(store.read_labels(), labels)


def test_build_refuses_a_store_with_another_schema(tmp_path):
    cubes, labels = make_data(2)
    url = str(tmp_path / "s")
    build_store(url, make_schema(), 2, lambda i: (cubes[i], labels[i]), progress=False)
    other = make_schema(units={"temperature": "degC", "humidity": "1", "wind": "m s-1"})
    with pytest.raises(StoreError, match=r"does not match: units differs.*degC"):
        build_store(url, other, 2, lambda i: (cubes[i], labels[i]), progress=False)
    with pytest.raises(StoreError, match="num_samples differs: stored 2, requested 3"):
        build_store(url, make_schema(), 3, lambda i: (cubes[i], labels[i]), progress=False)


@pytest.mark.parametrize("garbage", ["replace", "flip_one_byte"])
def test_corrupt_chunk_names_sample_and_variable(tmp_path, garbage):
    cubes, labels = make_data(4)
    write_all(str(tmp_path), cubes, labels)
    chunk = tmp_path / "cubes/c/2/1/0/0/0/0"  # sample 2, variable 1 ("humidity")
    data = bytearray(chunk.read_bytes())
    if garbage == "replace":
        data = bytearray(b"not zstd" * 8)
    else:
        data[len(data) // 2] ^= 0x01  # caught by zstd's content checksum
    chunk.write_bytes(bytes(data))
    store = CubeStore.open(str(tmp_path))
    with pytest.raises(StoreError, match=r"sample 2 of .*variable 'humidity'") as info:
        store.read_sample(2)
    assert "temperature" not in str(info.value) and "'wind'" not in str(info.value)
    np.testing.assert_array_equal(store.read_sample(2, ["wind"])[0], cubes[2, 2])
    np.testing.assert_array_equal(store.read_sample(1), cubes[1])


def test_missing_chunk_names_sample_and_variable(tmp_path):
    cubes, labels = make_data(4)
    write_all(str(tmp_path), cubes, labels)
    (tmp_path / "cubes/c/3/0/0/0/0/0").unlink()  # sample 3, variable 0 ("temperature")
    store = CubeStore.open(str(tmp_path))
    with pytest.raises(StoreError, match=r"sample 3 of .*variable 'temperature' has no data.*"
                                         r"cubes/c/3/0/0/0/0/0 is missing"):
        store.read_samples([1, 3])
    np.testing.assert_array_equal(store.read_sample(3, ["wind"])[0], cubes[3, 2])


def test_unknown_variable_lists_the_stores_variables(url):
    cubes, labels = make_data(1)
    store = write_all(url, cubes, labels)
    with pytest.raises(StoreError, match="unknown variable 'pressure' .*temperature, "
                                         "humidity, wind"):
        store.read_sample(0, ["temperature", "pressure"])


def test_write_validation_names_the_sample(url):
    cubes, labels = make_data(2)
    store = CubeStore.create(url, make_schema(), 2)
    with pytest.raises(StoreError, match=r"sample 1: cube shape \(3, 4, 2, 4, 7\)"):
        store.write_sample(1, cubes[1][..., :7], labels[1])
    with pytest.raises(StoreError, match="sample 1: cube dtype int64"):
        store.write_sample(1, cubes[1].astype(np.int64), labels[1])
    with pytest.raises(StoreError, match="sample 0: missing labels"):
        store.write_sample(0, cubes[0])
    with pytest.raises(IndexError, match="sample index 2 out of range"):
        store.write_sample(2, cubes[0], labels[0])
    assert store.missing().tolist() == [0, 1]


def test_missing_or_unreadable_store_names_the_url(tmp_path):
    with pytest.raises(StoreError, match=f"no cube store at {tmp_path}/nothing"):
        CubeStore.open(str(tmp_path / "nothing"))
    write_all(str(tmp_path / "bad"), *make_data(1))
    (tmp_path / "bad" / "astrojax.json").write_text("{not json")
    with pytest.raises(StoreError, match=f"unreadable metadata astrojax.json in {tmp_path}/bad"):
        CubeStore.open(str(tmp_path / "bad"))


def test_create_refuses_an_existing_store_unless_overwrite(url):
    write_all(url, *make_data(2))
    with pytest.raises(StoreError, match="already exists"):
        CubeStore.create(url, make_schema(), 2)
    fresh = CubeStore.create(url, make_schema(), 2, overwrite=True)
    assert fresh.missing().tolist() == [0, 1]


def test_stats_match_numpy_and_persist(url):
    cubes, labels = make_data()
    store = write_all(url, cubes, labels)
    stats = compute_stats(store, batch=3)
    x = cubes.astype(np.float64)
    np.testing.assert_allclose(stats.mean, x.mean(axis=(0, 2, 4, 5)), rtol=1e-12)
    np.testing.assert_allclose(stats.std, x.std(axis=(0, 2, 4, 5)), rtol=1e-10)
    assert stats.mean.shape == (3, 2) and stats.count == N * 4 * 4 * 8
    assert stats.std[2].mean() > 2.5 * stats.std[0].mean()  # variable 2 was scaled by 3
    store.set_stats(stats)
    saved = CubeStore.open(url).stats
    np.testing.assert_array_equal(saved.mean, stats.mean)
    assert saved.variables == VARIABLES
    assert CubeStats.from_dict(stats.to_dict()).count == stats.count
    some = np.array([4, 0, 2])  # a subset, in any order: a train split
    subset = compute_stats(store, some, batch=2)
    np.testing.assert_allclose(subset.mean, x[some].mean(axis=(0, 2, 4, 5)), rtol=1e-12)
    np.testing.assert_allclose(subset.std, x[some].std(axis=(0, 2, 4, 5)), rtol=1e-10)
    assert subset.count == 3 * 4 * 4 * 8
    with pytest.raises(StoreError, match="at least one sample"):
        compute_stats(store, [])


def test_stats_report_nan_and_inf_by_sample_and_variable(url):
    cubes, labels = make_data()
    cubes[1, 0, 2, 1, 3, 4] = np.nan
    cubes[7, 2, 0, 0, 0, 0] = np.inf
    store = write_all(url, cubes, labels)
    with pytest.raises(StoreError, match=r"2 \(sample, variable\) pair\(s\): \(sample 1, "
                                         r"'temperature'\), \(sample 7, 'wind'\)"):
        compute_stats(store, batch=4)
    cubes[:, 1] = np.nan
    store = write_all(memory_url(), cubes, labels)
    with pytest.raises(StoreError, match=r"12 \(sample, variable\).* and 2 more"):
        compute_stats(store)


def test_read_only_refuses_writes(url):
    cubes, labels = make_data(2)
    write_all(url, cubes, labels)
    store = CubeStore.open(url)
    with pytest.raises(StoreError, match="read-only"):
        store.write_sample(0, cubes[0], labels[0])
    with pytest.raises(StoreError, match="cannot write statistics: .* read-only"):
        store.set_stats(CubeStats(VARIABLES, np.zeros((3, 2)), np.ones((3, 2)), 1))
    cube_array, label_array = store._arrays()
    assert not cube_array.writable and not label_array.writable  # read-only intent


def test_pickle_reopens_lazily(url):
    cubes, labels = make_data(3)
    write_all(url, cubes, labels)
    store = CubeStore.open(url)
    store.read_sample(0)
    payload = pickle.dumps(store)
    assert len(payload) < 300  # the URL, not handles or data
    clone = pickle.loads(payload)
    assert clone.url == store.url and clone.read_only
    np.testing.assert_array_equal(clone.read_sample(2), cubes[2])


def test_store_without_labels(url):
    cubes, _ = make_data(2)
    store = CubeStore.create(url, make_schema(label_names=()), 2)
    store.write_sample(0, cubes[0])
    store.write_sample(1, cubes[1].astype(np.float64))
    assert store.read_labels().shape == (2, 0)
    np.testing.assert_array_equal(store.read_sample(1), cubes[1])


def test_default_cube_store_path(monkeypatch, tmp_path):
    monkeypatch.setenv("ASTROJAX_CACHE", str(tmp_path))
    grid = CubeGrid(5, 8, 4, 16)
    assert default_cube_store(16, 3, grid) == os.path.join(tmp_path, "cubes", "16-3-5x8x4x16")
    monkeypatch.delenv("ASTROJAX_CACHE")
    assert Path(default_cube_store(16, 3, grid)).parent == Path.home() / ".cache/astrojax/cubes"
