"""The fusion task: observed inputs only, one split, metrics beside baselines, a run end to end."""

import dataclasses

import jax
import numpy as np
import pytest

from astrojax.config import (
    Config,
    ConfigError,
    FusionConfig,
    PlanetsConfig,
    TrainConfig,
    validate,
)
from astrojax.data.generator.observe import CATALOGUE_COLUMNS
from astrojax.tasks import get_task
from astrojax.train.loop import train_and_evaluate

MODEL = FusionConfig(d_model=16, num_layers=1, num_heads=2, mlp_dim=32, spectrum_patch=8,
                     spectrum_layers=1,
                     classes=(("habitable", 2), ("biosignature", 2), ("biosphere", 4)),
                     retrieval_targets=("log10_surface_pressure_bar",),
                     loss_weighting="uncertainty", attention_impl="xla")


def tiny(**train) -> Config:
    defaults = dict(steps=30, global_batch_size=8, log_every=10, eval_every=30, eval_batches=2,
                    checkpoint_every=100)
    defaults.update(train)
    cfg = Config(task="fusion", model=dataclasses.replace(MODEL),
                 planets=PlanetsConfig(num_planets=256), train=TrainConfig(**defaults))
    cfg.data.spectrum_rate = 0.5
    return cfg


@pytest.fixture(scope="module")
def task():
    return get_task(tiny())


def test_inputs_are_what_an_observer_has(task):
    a = task.arrays
    assert task.model_config.row_columns == CATALOGUE_COLUMNS
    assert a["row_values"].shape == (256, len(CATALOGUE_COLUMNS))
    assert not np.any(a["row_values"][~a["row_known"]])  # unknown values are 0, never read
    # a spectrum only where the planet has one; the grid padded to whole patches
    bins = task.model_config.spectrum_bins
    assert bins % 8 == 0 and a["spectrum_depth"].shape == (256, bins)
    np.testing.assert_array_equal(a["spectrum_known"].any(1), a["has_spectrum"])
    assert 0.2 < a["has_spectrum"].mean() < 0.5  # half of the ~80% transiting
    # no column of the hidden truth among the inputs
    inputs = {k for k in a if k.startswith(("row_", "spectrum_", "has_"))}
    assert not any("pressure" in k or "x_" in k or "habitable" in k for k in inputs)


def test_statistics_come_from_the_train_split(task):
    values, known = task._row
    j = CATALOGUE_COLUMNS.index("star_teff_k")
    train = task.split.train
    expected = values[train, j][known[train, j]].mean()
    assert task.statistics["row_mean"][j] == pytest.approx(expected)
    assert task.statistics["row_mean"][j] != pytest.approx(values[known[:, j], j].mean(),
                                                           rel=1e-9)


def test_unknown_labels_and_mismatched_grids_are_named():
    cfg = tiny()
    cfg.model.classes = (("habitability", 2),)
    with pytest.raises(ConfigError, match="config.model.classes: 'habitability' is not a label"):
        get_task(cfg).model_config  # noqa: B018
    cfg = tiny()
    cfg.model.spectrum_bins = 100
    with pytest.raises(ConfigError, match="config.model.spectrum_bins: 100 does not fit"):
        get_task(cfg).model_config  # noqa: B018


def test_modalities_choose_the_encoders_the_model_has():
    from astrojax.train.step import build_model

    cfg = tiny()
    cfg.data.modalities = ("spectrum",)
    task = get_task(cfg)
    assert task.model_config.row_columns == () and task.model_config.spectrum_bins > 0
    model = build_model(task, 0)
    assert model.modalities() == ("spectrum",) and not hasattr(model, "row")
    batch = {k: v[:4] for k, v in task.arrays.items()}
    assert model(batch)["logits/habitable"].shape == (4,)
    assert task.baselines()  # the row baselines do not need the row as an input
    cfg.data.modalities = ("catalogue",)
    task = get_task(cfg)
    assert task.model_config.spectrum_bins == 0 and "spectrum_depth" not in task.arrays
    assert build_model(task, 0).modalities() == ("row",)


def test_bad_modalities_are_named():
    for modalities, message in [(("catalog",), "'catalog' is not one of catalogue, spectrum"),
                                ((), "expected distinct names"),
                                (("spectrum", "spectrum"), "expected distinct names")]:
        cfg = tiny()
        cfg.data.modalities = modalities
        with pytest.raises(ConfigError, match=f"config.data.modalities: {message}"):
            validate(cfg)
    cfg = tiny()
    cfg.data.spectrum_rate = 0.0
    with pytest.raises(ConfigError, match="config.data.spectrum_rate: is 0, so no planet"):
        validate(cfg)


    cfg = tiny()
    cfg.data.group_size = 3
    with pytest.raises(ConfigError, match="config.data.group_size: 3 must divide"):
        validate(cfg)


def with_climate() -> Config:
    cfg = tiny()
    cfg.data.modalities = ("catalogue", "spectrum", "climate")
    cfg.data.climate_rate, cfg.data.group_size = 0.5, 4
    cfg.data.climate_grid = (2, 1, 4, 8)
    cfg.model.climate_patch = (2, 2, 4)
    return cfg


def with_everything() -> Config:
    cfg = with_climate()
    cfg.data.modalities = ("catalogue", "spectrum", "climate", "network", "text")
    cfg.data.network_rate = cfg.data.text_rate = 0.5
    cfg.data.text_length = 64  # the notes are cut: enough for a test
    return cfg


def test_networks_and_notes_are_the_observers_packed_by_group():
    from astrojax.data.generator.notes import observing_notes
    from astrojax.data.generator.observe import hypothesised_networks, modellable
    from astrojax.data.tokenizer import ByteTokenizer

    task = get_task(with_everything())
    masks = task.masks
    assert masks["network"].any() and masks["text"].any()
    assert modellable(task.catalogue)[masks["network"]].all()
    rows = task.split.val[:8]
    batch = task.batch(rows, "val")
    assert batch["text"].shape == (2, 4, 64) and batch["network_nodes"].shape[:1] == (2,)
    for p, planet in enumerate(rows):
        slot = batch["text_slot"][p]
        assert (slot >= 0) == masks["text"][planet]
        if slot >= 0:
            note = observing_notes(task.catalogue, 0, [planet])[0]
            text = ByteTokenizer().decode(batch["text"][p // 4, slot])
            assert note.startswith(text) and len(text) >= 60
        slot = batch["network_slot"][p]
        assert (slot >= 0) == masks["network"][planet]
        if slot >= 0:  # its nodes are the slot-th graph of its group's padded batch
            net = hypothesised_networks(task.catalogue, 0, [planet])[0]
            group = p // 4
            nodes = batch["network_node_graph"][group] == slot
            assert nodes.sum() == net.num_metabolites + net.num_reactions
            assert batch["network_node_mask"][group][nodes].all()
    # one padded shape for every group of a split: one compilation
    other = task.batch(task.split.val[8:16], "val")
    assert other["network_nodes"].shape == batch["network_nodes"].shape


def test_climate_cubes_are_the_modellers_packed_by_group():
    from astrojax.data.generator.climate import CubeGrid, planet_cubes
    from astrojax.data.generator.observe import assumed_population

    task = get_task(with_climate())
    packed, has = task.packed["climate"], task.masks["climate"]
    np.testing.assert_array_equal(packed["index"] >= 0, has)
    # only planets a modeller can model (radius and insolation published) have a cube
    assert has.any() and task.catalogue.known("planet_radius_rearth")[has].all()
    i = int(np.flatnonzero(has)[0])
    raw = planet_cubes(assumed_population(task.catalogue), CubeGrid(2, 1, 4, 8), seed=0,
                       indices=[i])[0]
    np.testing.assert_allclose(packed["values"][packed["index"][i]],
                               (raw - packed["mean"]) / packed["std"], rtol=1e-5, atol=1e-5)
    rows = task.split.val[:8]
    batch = task.batch(rows, "val")
    assert batch["climate"].shape == (2, 4, 5, 2, 1, 4, 8)  # eval: a slot per planet
    for p, slot in enumerate(batch["climate_slot"]):
        assert (slot >= 0) == has[rows[p]]
        if slot >= 0:
            np.testing.assert_array_equal(batch["climate"][p // 4, slot],
                                          packed["values"][packed["index"][rows[p]]])
    assert 1 <= task.capacity("climate", "train") <= 4
    assert "climate_mean" in task.artifacts()


@pytest.mark.slow
def test_a_fusion_run_reports_every_label_beside_its_baselines(tmp_path):
    result = train_and_evaluate(with_everything(), tmp_path, devices=jax.devices()[:2])
    ev, test = result.eval, result.test
    for name in ("habitable", "biosignature"):
        for metric in ("auc", "ap", "ece", "accuracy"):
            assert 0.0 <= ev[f"eval/{metric}/{name}"] <= 1.0, (metric, name)
        assert 0.0 <= ev[f"eval/baseline/row_logistic/auc/{name}"] <= 1.0
        assert 0.0 <= ev[f"eval/baseline/habitable_zone/auc/{name}"] <= 1.0
        assert f"test/auc/{name}" in test
    assert "eval/balanced_accuracy/biosphere" in ev
    assert np.isfinite(ev["eval/r2/log10_surface_pressure_bar"])


@pytest.mark.slow
def test_the_climate_encoder_starts_from_a_datacube_run(tmp_path):
    from astrojax import sharding
    from astrojax.config import CubeDataConfig
    from astrojax.data.formats.cubes import build_synthetic_store
    from astrojax.data.generator.climate import CubeGrid
    from astrojax.models.datacube_vit import tiny_datacube_config
    from astrojax.train import step as step_lib
    from astrojax.train.checkpoint import CheckpointError, path_key, read_params

    url = str(tmp_path / "store")
    build_synthetic_store(48, 0, CubeGrid(2, 2, 8, 8), url=url, progress=False)
    cube_run = Config(task="datacube",
                      planets=PlanetsConfig(num_planets=48, val_fraction=0.25, test_fraction=0.25),
                      data=CubeDataConfig(cube_time_steps=2, cube_levels=2, cube_lat=8,
                                          cube_lon=8, cube_store=url),
                      model=tiny_datacube_config(patch_size=(2, 4, 4), d_model=16),
                      train=TrainConfig(steps=2, global_batch_size=8, eval_every=2,
                                        eval_batches=1, checkpoint_every=2))
    train_and_evaluate(cube_run, tmp_path / "cube", devices=jax.devices()[:1])

    cfg = with_climate()
    cfg.data.climate_grid = (2, 1, 8, 8)
    cfg.model.climate_init = str(tmp_path / "cube")
    with pytest.raises(ConfigError, match=r"config.data.climate_grid: \(2, 1, 8, 8\) is not the "
                                          r"cube grid .* set it to that"):
        get_task(cfg).encoders  # noqa: B018
    cfg.data.climate_grid = (2, 2, 8, 8)
    task = get_task(cfg)
    assert task.encoders.climate[0].d_model == 16  # the datacube run's sizes, not the fusion's
    mesh = sharding.make_mesh(cfg.mesh, jax.devices()[:1])
    program = step_lib.build_program(cfg, task, mesh)
    with jax.set_mesh(mesh):
        state = step_lib.warm_start(program.init(), task.warm_start())
    saved, _, _ = read_params(tmp_path / "cube")
    ours = {path_key(p): np.asarray(v) for p, v in
            jax.tree_util.tree_leaves_with_path(state.params)}
    climate = [p for p in ours if p[0] == "climate"]
    assert climate and all(np.array_equal(ours[p], saved[p[1:]]) for p in climate)
    assert not any(p[0] == "climate" and "regression" in "/".join(p) for p in ours)
    # a run of another task is named
    cfg.model.climate_init = str(tmp_path / "fusion")
    train_and_evaluate(tiny(steps=2, eval_every=2), tmp_path / "fusion",
                       devices=jax.devices()[:1])
    with pytest.raises(ConfigError, match="is a 'fusion' run; the climate encoder starts from "
                                          "a 'datacube' run"):
        get_task(cfg).encoders  # noqa: B018
    with pytest.raises(CheckpointError, match="no checkpoints folder"):
        read_params(tmp_path)


def test_label_fraction_hides_train_labels_only():
    cfg = tiny()
    cfg.data.label_fraction = 0.1
    task = get_task(cfg)
    train, labelled = task.split.train, task.labelled
    assert 0.05 < labelled[train].mean() < 0.16
    assert labelled[task.split.val].all() and labelled[task.split.test].all()
    np.testing.assert_array_equal(task.arrays["habitable_known"], labelled)
    cfg.data.label_fraction = 0.5
    larger = get_task(cfg).labelled
    assert (larger[labelled]).all() and larger[train].sum() > labelled[train].sum()
    cfg.data.label_fraction = 0.0
    with pytest.raises(ConfigError, match="config.data.label_fraction: is 0 and "
                                          "config.model.contrastive_weight is 0"):
        validate(cfg)


@pytest.mark.slow
def test_a_pretrained_fusion_model_is_fine_tuned_from_all_but_its_heads(tmp_path):
    from astrojax import sharding
    from astrojax.train import step as step_lib
    from astrojax.train.checkpoint import path_key, read_params

    pretrain = with_everything()  # empty slots included: their zero tokens must not give NaN
    pretrain.train.steps = pretrain.train.eval_every = 2
    pretrain.model.contrastive_weight, pretrain.data.label_fraction = 1.0, 0.0
    result = train_and_evaluate(pretrain, tmp_path / "pre", devices=jax.devices()[:1])
    assert np.isfinite(result.eval["eval/auc/habitable"])
    assert result.train["nonfinite_steps"] == 0 and np.isfinite(result.train["loss"])
    cfg = with_everything()
    cfg.model.init, cfg.data.label_fraction = str(tmp_path / "pre"), 0.1
    task = get_task(cfg)
    assert task.warm_start().parts == {"": (str(tmp_path / "pre"), "")}
    mesh = sharding.make_mesh(cfg.mesh, jax.devices()[:1])
    program = step_lib.build_program(cfg, task, mesh)
    with jax.set_mesh(mesh):
        fresh = program.init()
        state = step_lib.warm_start(fresh, task.warm_start())
    saved, _, _ = read_params(tmp_path / "pre")
    for path, leaf in jax.tree_util.tree_leaves_with_path(state.params):
        key = path_key(path)
        if key[0] in ("class_heads", "retrieval_heads", "loss_weights"):
            continue
        np.testing.assert_array_equal(np.asarray(leaf), saved[key], err_msg="/".join(key))
