"""The datacube path end to end: Grain pipeline over the store, crops, exact resume with the model,
sharded equals single device, train-split statistics saved with checkpoints, the held-out set
shared by eval, probes and baselines, pretraining that learns, clear errors."""

import json

import jax
import numpy as np
import pytest
from absl import flags

from astrojax.config import (
    Config,
    ConfigError,
    CubeDataConfig,
    MeshConfig,
    PlanetsConfig,
    TrainConfig,
    validate,
)
from astrojax.data.formats.cubes import build_synthetic_store
from astrojax.data.formats.store import CubeSchema, CubeStore, compute_stats
from astrojax.data.generator.climate import CubeGrid
from astrojax.data.pipeline import CubeSource, crop_cube, cube_dataset
from astrojax.models.datacube_vit import tiny_datacube_config
from astrojax.sharding import make_mesh
from astrojax.tasks import get_task
from astrojax.train.loop import train_and_evaluate
from astrojax.train.step import build_program

PLANETS = PlanetsConfig(num_planets=48, val_fraction=0.25, test_fraction=0.25)  # 25/10/13
GRID = CubeGrid(2, 2, 8, 8)


def tiny_data(url: str = "") -> CubeDataConfig:
    return CubeDataConfig(cube_time_steps=2, cube_levels=2, cube_lat=8, cube_lon=8,
                          cube_store=url)


def build_tiny_store(url: str):
    return build_synthetic_store(PLANETS.num_planets, PLANETS.seed, GRID, url=url,
                                 progress=False)


@pytest.fixture(scope="module")
def store_url(tmp_path_factory):
    url = str(tmp_path_factory.mktemp("cubes") / "store")
    build_tiny_store(url)
    return url


def tiny_cube_config(url: str, **train) -> Config:
    defaults = dict(steps=6, global_batch_size=8, log_every=1, eval_every=3, eval_batches=1,
                    checkpoint_every=100)
    defaults.update(train)
    return Config(task="datacube", data=tiny_data(url), planets=PLANETS,
                  model=tiny_datacube_config(patch_size=(2, 4, 4)),
                  train=TrainConfig(**defaults))


def source(url, indices):
    store = CubeStore.open(url)
    k = len(store.schema.label_names)
    return CubeSource(url, indices, target_columns=list(range(k)), target_mean=np.zeros(k),
                      target_std=np.ones(k))


def dataset(url, **kwargs):
    store = CubeStore.open(url)
    args = dict(batch_size=4, mean=store.stats.mean, std=store.stats.std, seed=1,
                process_index=0, process_count=1)
    args.update(kwargs)
    return cube_dataset(source(url, np.arange(40)), **args)


def assert_batches_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_pipeline_normalizes_and_is_deterministic(store_url):
    store = CubeStore.open(store_url)
    first = next(iter(dataset(store_url, shuffle=False)))
    assert first["cube"].shape == (4, 5, 2, 2, 8, 8) and first["cube"].dtype == np.float32
    raw = store.read_sample(0)
    expected = (raw - store.stats.mean[:, None, :, None, None]) / np.maximum(
        store.stats.std, 1e-6)[:, None, :, None, None]
    np.testing.assert_allclose(first["cube"][0], expected, rtol=1e-5, atol=1e-5)
    a = [next(it) for it in [iter(dataset(store_url))] for _ in range(3)]
    b = [next(it) for it in [iter(dataset(store_url))] for _ in range(3)]
    for x, y in zip(a, b, strict=True):
        assert_batches_equal(x, y)
    shuffled = next(iter(dataset(store_url, seed=2)))
    assert not np.array_equal(shuffled["cube"], a[0]["cube"])


def test_pipeline_resumes_exactly(store_url):
    it = iter(dataset(store_url, crop=(0, 4, 4)))
    for _ in range(12):  # past the first epoch of 10 batches, crops included
        next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(3)]
    again = iter(dataset(store_url, crop=(0, 4, 4)))
    again.set_state(state)
    for x, y in zip(expected, [next(again) for _ in range(3)], strict=True):
        assert_batches_equal(x, y)


@pytest.mark.slow
def test_pipeline_with_a_worker_process_matches_and_resumes(store_url):
    flags.FLAGS.mark_as_parsed()
    plain = [next(it) for it in [iter(dataset(store_url))] for _ in range(4)]
    it = iter(dataset(store_url, worker_count=1))
    workers = [next(it) for _ in range(2)]
    state = it.get_state()
    for x, y in zip(plain[:2], workers, strict=True):
        assert_batches_equal(x, y)
    again = iter(dataset(store_url, worker_count=1))
    again.set_state(state)
    assert_batches_equal(next(again), plain[2])


def test_processes_read_disjoint_samples(store_url):
    seen = []
    for p in range(2):
        ds = dataset(store_url, shuffle=False, num_epochs=1, process_index=p, process_count=2,
                     batch_size=2)
        seen.append(np.concatenate([b["cube"][:, 0, 0, 0, 0, 0] for b in ds]))
    assert len(seen[0]) == len(seen[1]) == 20
    assert not set(seen[0].tolist()) & set(seen[1].tolist())


def test_crop_wraps_longitude_and_centres_without_rng():
    cube = np.arange(2 * 4 * 1 * 6 * 8, dtype=np.float32).reshape(2, 4, 1, 6, 8)
    centred = crop_cube(cube, (2, 4, 4))
    assert centred.shape == (2, 2, 1, 4, 4)
    np.testing.assert_array_equal(centred, cube[:, 1:3, :, 1:5, 2:6])
    rng = np.random.default_rng(0)
    lons = set()
    for _ in range(50):
        out = crop_cube(cube, (0, 0, 4), rng)
        start = int(out[0, 0, 0, 0, 0]) % 8
        np.testing.assert_array_equal(out, cube[..., (np.arange(4) + start) % 8])
        lons.add(start)
    assert max(lons) > 4  # windows that cross the date line occur


@pytest.mark.slow
def test_sharded_datacube_step_equals_single_device(store_url):
    cfg = tiny_cube_config(store_url)
    task = get_task(cfg)
    single = build_program(cfg, task, make_mesh(MeshConfig(), jax.devices()[:1]))
    sharded = build_program(cfg, task, make_mesh(MeshConfig(data=4, fsdp=2)))
    it = iter(task.train_data(0, 1))
    s1, s8 = single.init(), sharded.init()
    for batch in [next(it) for _ in range(2)]:
        s1, m1 = single.train_step(s1, single.shard(batch))
        s8, m8 = sharded.train_step(s8, sharded.shard(batch))
        for name in ("loss", "mse", "reconstruction_mse", "grad_norm"):
            np.testing.assert_allclose(m8[name], m1[name], rtol=1e-4, err_msg=name)


@pytest.mark.slow
def test_datacube_run_resumes_exactly_and_saves_statistics(store_url, tmp_path):
    straight = train_and_evaluate(tiny_cube_config(store_url), tmp_path / "straight")
    half = tiny_cube_config(store_url, steps=3)
    half.optim.decay_steps = 6
    train_and_evaluate(half, tmp_path / "resumed")
    full = tiny_cube_config(store_url)
    full.optim.decay_steps = 6
    resumed = train_and_evaluate(full, tmp_path / "resumed")
    leaves = jax.tree.leaves(straight.state.params), jax.tree.leaves(resumed.state.params)
    for a, b in zip(*leaves, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for key in ("eval/loss", "eval/reconstruction_mse", "eval/r2/equilibrium_temperature_k",
                "eval/probe/r2/equilibrium_temperature_k", "eval/probe/accuracy/tidally_locked"):
        assert resumed.eval[key] == straight.eval[key], key
    # Baselines ride along with every eval, under the metric names the model reports.
    assert straight.eval["eval/baseline/area_mean_surface_t/r2/surface_temperature_k"] > 0.999
    assert "eval/baseline/summary_ridge/r2/equilibrium_temperature_k" in straight.eval
    saved = json.loads((tmp_path / "resumed" / "checkpoints" / "6" / "artifacts" /
                        "metadata").read_text())
    store = CubeStore.open(store_url)
    np.testing.assert_allclose(saved["cube_mean"],
                               compute_stats(store, get_task(full).split.train).mean)
    assert saved["targets"] == ["equilibrium_temperature_k", "log10_surface_pressure_bar"]


def test_missing_target_labels_are_a_clear_error(store_url, tmp_path):
    url = str(tmp_path / "nolabels")
    schema = CubeSchema(variables=("tas",), shape=(2, 1, 4, 4), units={"tas": "K"},
                        coords={"time": [0, 1], "level": [1.0], "lat": [0, 1, 2, 3],
                                "lon": [0, 1, 2, 3]},
                        coord_units={"time": "1", "level": "1", "lat": "degrees_north",
                                     "lon": "degrees_east"}, attrs={})
    CubeStore.create(url, schema, 4)
    with pytest.raises(ConfigError, match="config.model.targets: 'equilibrium_temperature_k'"
                                          ".*it has no labels"):
        get_task(tiny_cube_config(url)).build_model(None)
    cfg = tiny_cube_config(store_url)
    cfg.model.targets = ("equilibrium_temperature_k", "albedo")
    with pytest.raises(ConfigError, match="'albedo' not among the labels"):
        get_task(cfg).build_model(None)


def test_crop_larger_than_the_grid_names_the_key(store_url):
    cfg = tiny_cube_config(store_url)
    cfg.data.cube_crop = (0, 16, 0)
    with pytest.raises(ConfigError, match=r"config.data.cube_crop: \(0, 16, 0\)"):
        get_task(cfg).input_grid  # noqa: B018


def test_normalization_statistics_ignore_held_out_samples(tmp_path):
    """Item 7 of issue 10: the statistics the model is normalized with come from the train
    split only. Rewriting every held-out sample leaves them unchanged; rewriting one train
    sample changes them (so the test can fail)."""
    url = str(tmp_path / "store")
    build_tiny_store(url)
    cfg = tiny_cube_config(url)
    task = get_task(cfg)
    before = task.artifacts()
    store = CubeStore.open(url, read_only=False)
    held_out = np.concatenate([task.split.val, task.split.test])
    labels = store.read_labels()
    rng = np.random.default_rng(0)
    garbage = rng.normal(1e3, 1e2, (len(held_out), *store.schema.cube_shape()))
    store.write_samples(held_out, garbage, labels[held_out] * 3.0)
    after = get_task(cfg).artifacts()
    for key in ("cube_mean", "cube_std", "target_mean", "target_std"):
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)
    store.write_samples(task.split.train[:1], garbage[:1], labels[:1])
    changed = get_task(cfg).artifacts()
    assert not np.allclose(changed["cube_mean"], before["cube_mean"])


def test_eval_probes_and_baselines_share_the_held_out_samples(store_url):
    task = get_task(tiny_cube_config(store_url, eval_batches=1))
    served = np.concatenate([b["planet"] for b in task.eval_data(0, 1)])
    np.testing.assert_array_equal(served, task.eval_indices())
    np.testing.assert_array_equal(task.eval_indices(), task.split.val[:8])  # 1 batch of 8
    halves = [np.concatenate([b["planet"] for b in task.eval_data(p, 2)]) for p in range(2)]
    np.testing.assert_array_equal(np.sort(np.concatenate(halves)), task.eval_indices())
    test = np.concatenate([b["planet"] for b in task.eval_data(0, 1, split="test")])
    np.testing.assert_array_equal(test, task.split.test[:8])
    assert not set(task.probe_train_indices) & (set(task.split.val) | set(task.split.test))
    assert len(task.probe_train_indices) == 24  # the 25 train samples, in whole batches
    # The store's planets are the built-in population's, split like every task's planets.
    np.testing.assert_array_equal(task.planet_ids[:2], ["ASTRO-0-000000 b", "ASTRO-0-000001 b"])


@pytest.mark.slow
def test_masked_pretraining_loss_falls(store_url, tmp_path):
    cfg = tiny_cube_config(store_url, steps=40, log_every=1, eval_every=40, eval_batches=1)
    cfg.model.objective = "masked"
    cfg.optim.learning_rate = 3e-3
    cfg.optim.warmup_steps = 5
    train_and_evaluate(cfg, tmp_path / "run")
    rows = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    losses = [r["reconstruction_mse"] for r in rows if "reconstruction_mse" in r]
    assert len(losses) == 40
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < 0.7 * first, (first, last)


@pytest.mark.parametrize("field,value,match", [
    ("objective", "contrastive", "config.model.objective: 'contrastive' is not one of"),
    ("mask_ratio", 1.0, r"config.model.mask_ratio: must be in \(0, 1\)"),
    ("decoder_heads", 3, "config.model.decoder_dim: 16 must be even and divisible"),
    ("targets", (), "config.model.targets: objective 'masked.supervised' needs"),
    ("targets", ("a", "a"), "config.model.targets: expected distinct label names"),
])
def test_objective_fields_are_validated_by_name(field, value, match):
    cfg = tiny_cube_config("")
    setattr(cfg.model, field, value)
    with pytest.raises(ConfigError, match=match):
        validate(cfg)
    cfg.model.objective = "supervised"
    if field in ("mask_ratio", "decoder_heads"):  # only the masked objectives use them
        validate(cfg)
