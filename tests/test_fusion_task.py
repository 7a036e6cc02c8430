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
    for modalities, message in [(("catalog",), "'catalog' is not one of catalogue, spectrum,"),
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
    result = train_and_evaluate(with_climate(), tmp_path, devices=jax.devices()[:2])
    ev, test = result.eval, result.test
    for name in ("habitable", "biosignature"):
        for metric in ("auc", "ap", "ece", "accuracy"):
            assert 0.0 <= ev[f"eval/{metric}/{name}"] <= 1.0, (metric, name)
        assert 0.0 <= ev[f"eval/baseline/row_logistic/auc/{name}"] <= 1.0
        assert 0.0 <= ev[f"eval/baseline/habitable_zone/auc/{name}"] <= 1.0
        assert f"test/auc/{name}" in test
    assert "eval/balanced_accuracy/biosphere" in ev
    assert np.isfinite(ev["eval/r2/log10_surface_pressure_bar"])
