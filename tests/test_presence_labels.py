"""Per-molecule presence labels (observe.presence_labels) and the fusion task's presence heads."""


import jax
import numpy as np
import pytest

from astrojax.config import Config, ConfigError, FusionConfig, PlanetsConfig, TrainConfig
from astrojax.data.generator import generate_population
from astrojax.data.generator.observe import (
    CLASS_LABELS,
    PRESENCE_LABELS,
    observe_catalogue,
    presence_labels,
)
from astrojax.data.generator.spectra import MOLECULES, spectrum_labels
from astrojax.tasks import get_task
from astrojax.train.loop import train_and_evaluate

N = 256


@pytest.fixture(scope="module")
def population():
    return generate_population(N, 0)


def test_presence_is_spectrum_labels_present_on_transiting_planets(population):
    catalogue = observe_catalogue(population, 0)
    labels = presence_labels(population, catalogue, "nirspec_prism")
    expected = spectrum_labels(population, "nirspec_prism", 0).present
    transiting = catalogue.transiting
    assert 0 < transiting.sum() < N
    assert PRESENCE_LABELS == tuple(f"present_{m}" for m in MOLECULES)
    for j, name in enumerate(PRESENCE_LABELS):
        assert CLASS_LABELS[name] == 2
        np.testing.assert_array_equal(labels[f"{name}_known"], transiting)
        np.testing.assert_array_equal(labels[name][transiting], expected[transiting, j])
        assert not labels[name][~transiting].any()  # unknown, never a made-up yes
    assert labels["present_co2"].any() and labels["present_h2o"].any()
    # the label is the instrument's: MIRI LRS sees O3 at 9.6 um, NIRSpec PRISM does not
    miri = presence_labels(population, catalogue, "miri_lrs")
    assert not np.array_equal(miri["present_co2"], labels["present_co2"])
    with pytest.raises(ValueError, match="not of this population"):
        presence_labels(population, observe_catalogue(generate_population(N // 2, 0), 0))


def tiny(classes, **train) -> Config:
    defaults = dict(steps=1, global_batch_size=8, log_every=1, eval_every=1, eval_batches=3,
                    checkpoint_every=100)
    defaults.update(train)
    model = FusionConfig(d_model=16, num_layers=1, num_heads=2, mlp_dim=32, spectrum_patch=8,
                         spectrum_layers=1, classes=classes, attention_impl="xla")
    cfg = Config(task="fusion", model=model, planets=PlanetsConfig(num_planets=N),
                 train=TrainConfig(**defaults))
    cfg.data.spectrum_rate = 1.0
    return cfg


CLASSES = (("habitable", 2), ("present_co2", 2))


def test_presence_metrics_count_only_planets_whose_label_is_known():
    task = get_task(tiny(CLASSES))
    a = task.arrays
    np.testing.assert_array_equal(a["present_co2_known"] > 0, task.catalogue.transiting)
    assert a["habitable_known"].all()  # the other labels stay known for every planet
    rows = task.split.train
    batch = {k: v[rows] for k, v in a.items()}
    y, known = batch["present_co2"], batch["present_co2_known"] > 0
    assert y[known].any() and (~known).any()
    # A scorer that is perfect where the label is known and wrong where it is not: counted
    # over the known planets only, its AUC is 1 and its accuracy 1.
    logits = np.where(known, 10.0 * (2 * y - 1), 10.0 * (1 - 2 * y)).astype(np.float32)

    def scorer(b):
        return {"logits/habitable": np.zeros(len(y), np.float32), "logits/present_co2": logits}

    sums = jax.tree.map(np.asarray, task.eval_sums(scorer, batch))
    assert sums["present_co2/count"] == known.sum()
    metrics = task.finalize_eval(sums)
    assert metrics["auc/present_co2"] == pytest.approx(1.0)
    assert metrics["accuracy/present_co2"] == pytest.approx(1.0)
    assert metrics["ece/present_co2"] < 0.01


def test_a_bad_presence_name_is_named():
    with pytest.raises(ConfigError, match=r"config.model.classes: 'present_h2' is not a label; "
                                          r"the class labels are .*present_h2o"):
        get_task(tiny((("present_h2", 2),))).model_config  # noqa: B018


@pytest.mark.slow
def test_a_run_with_presence_heads_reports_them_beside_baselines(tmp_path):
    cfg = tiny(CLASSES)
    cfg.data.modalities = ("spectrum",)
    result = train_and_evaluate(cfg, tmp_path, devices=jax.devices()[:2])
    ev = result.eval
    assert result.step == 1
    for metric in ("auc", "ap", "ece", "accuracy"):
        assert 0.0 <= ev[f"eval/{metric}/present_co2"] <= 1.0, metric
    assert 0.0 <= ev["eval/baseline/row_logistic/auc/present_co2"] <= 1.0
    assert "test/auc/present_co2" in result.test
