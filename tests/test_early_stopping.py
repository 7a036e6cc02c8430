"""Early stopping and the best-k checkpoints (train.best_metric): the tracker, Orbax's kept
set, a run that stops early and scores its best step, and a resumed run that stops where the
unbroken one did."""

import math

import grain
import jax
import numpy as np
import pytest
from test_train import params_of, read_metrics, tiny_config

from astrojax.config import ConfigError, TrainConfig, validate
from astrojax.train.checkpoint import Checkpointer
from astrojax.train.early_stopping import EarlyStopping
from astrojax.train.loop import train_and_evaluate
from astrojax.train.restore import load_trained
from astrojax.train.workdir import WorkdirError


def feed(tracker: EarlyStopping, values) -> list[bool]:
    """``should_stop`` after each eval of ``values`` (steps 10, 20, ...)."""
    stops = []
    for i, value in enumerate(values):
        tracker.update(10 * (i + 1), {tracker.metric: value})
        stops.append(tracker.should_stop)
    return stops


def test_patience_counts_evals_without_an_improvement():
    tracker = EarlyStopping("eval/loss", "min", patience=2)
    assert feed(tracker, [5.0, 4.0, 4.5, 3.0, 3.0, 3.5]) == [False] * 5 + [True]
    assert (tracker.best_value, tracker.best_step) == (3.0, 40)  # a tie is no improvement
    up = EarlyStopping("eval/heldout_auc", "max", patience=1)
    assert feed(up, [0.5, 0.6, 0.55]) == [False, False, True]
    assert up.best_step == 20


def test_min_delta_and_non_finite_values():
    tracker = EarlyStopping("eval/loss", "min", patience=2, min_delta=0.1)
    # 4.95 and 4.92 beat the best (they are what the test split scores) but not by 0.1
    assert feed(tracker, [5.0, 4.95, 4.92]) == [False, False, True]
    assert (tracker.best_value, tracker.best_step, tracker.reference) == (4.92, 30, 5.0)
    nan = EarlyStopping("eval/loss", "min", patience=1)
    assert feed(nan, [math.nan, 2.0, math.nan]) == [True, False, True]
    assert nan.best_step == 20
    assert nan.rank({"eval/loss": math.nan}) == math.inf  # ranks last for Orbax
    assert nan.rank({}) == math.inf  # a checkpoint between evals
    assert EarlyStopping("eval/auc", "max").rank({}) == -math.inf


def test_no_patience_never_stops():
    assert not any(feed(EarlyStopping("eval/loss", "min"), [1.0, 2.0, 3.0, 4.0]))


def test_the_state_survives_json_and_another_metric_starts_afresh():
    tracker = EarlyStopping("eval/loss", "min", patience=3)
    feed(tracker, [2.0, 1.0, 1.5])
    again = EarlyStopping("eval/loss", "min", patience=3)
    again.load(tracker.to_json(), 30)
    assert again == tracker
    other = EarlyStopping("eval/accuracy", "max", patience=3)
    other.load(tracker.to_json(), 30)
    assert other.best_step is None and other.evals_since_improvement == 0


@pytest.mark.parametrize("train, key, needle", [
    (dict(early_stopping_patience=3), "train.early_stopping_patience", "best_metric is unset"),
    (dict(best_metric="loss"), "train.best_metric", "eval/loss"),
    (dict(best_metric="eval/baseline/uniform/loss"), "train.best_metric", "eval metric"),
    (dict(best_metric="eval/loss", eval_batches=0), "train.best_metric", "eval_batches is 0"),
    (dict(best_metric="eval/loss", best_mode="lowest"), "train.best_mode", "min, max"),
    (dict(best_metric="eval/spread"), "train.best_mode", "min or max"),
    (dict(best_metric="eval/loss", keep_best=0), "train.keep_best", "at least 1"),
    (dict(best_metric="eval/loss", early_stopping_min_delta=-1.0),
     "train.early_stopping_min_delta", ">= 0"),
])
def test_bad_early_stopping_configs_name_the_key(train, key, needle):
    with pytest.raises(ConfigError) as err:
        validate(tiny_config(**train))
    assert err.value.key == key and needle in str(err.value)


@pytest.mark.parametrize("metric, mode", [
    ("eval/loss", "min"), ("eval/bits_per_byte", "min"), ("eval/ece/habitable", "min"),
    ("eval/kl_per_node", "min"), ("eval/heldout_auc", "max"), ("eval/r2/temperature", "max"),
    ("eval/accuracy/biosphere", "max"), ("eval/r2_mean", "max"),
])
def test_the_mode_is_inferred_from_the_metric_name(metric, mode):
    assert EarlyStopping.from_config(TrainConfig(best_metric=metric)).mode == mode
    assert EarlyStopping.from_config(TrainConfig(best_metric=metric, best_mode="max")
                                     ).mode == "max"


def save_sequence(directory, losses, *, max_to_keep, keep_best, first_step=1):
    """Saves a tiny state at steps first_step, first_step+1, ... with eval/loss ``losses``
    (None: a save between evals, without the metric); returns the steps kept."""
    tracker = EarlyStopping("eval/loss", "min")
    checkpointer = Checkpointer(directory, max_to_keep=max_to_keep, async_save=False,
                                best_fn=tracker.rank, best_mode="min", keep_best=keep_best)
    data = iter(grain.MapDataset.range(4).to_iter_dataset())
    try:
        for step, loss in enumerate(losses, start=first_step):
            metrics = {} if loss is None else {"eval/loss": loss}
            checkpointer.save(step, {"w": np.full(3, float(step), np.float32)}, data, {}, {},
                              metrics=metrics, early_stopping=tracker.to_json())
        return checkpointer.all_steps(), checkpointer.best_step()
    finally:
        checkpointer.close()


def test_the_newest_and_the_best_k_are_kept(tmp_path):
    # steps 1..8; the best two by eval/loss are 4 (1.0) and 6 (2.0); the newest two 7 and 8,
    # though 8 was saved between evals (no metric) and 7 is the worst
    kept, best = save_sequence(tmp_path / "c", [5.0, 3.0, 4.0, 1.0, 6.0, 2.0, 7.0, None],
                               max_to_keep=2, keep_best=2)
    assert kept == [4, 6, 7, 8] and best == 4
    # a reopened manager (a resumed run) reads the saved metrics back and goes on ranking
    kept, best = save_sequence(tmp_path / "c", [0.5], max_to_keep=1, keep_best=2,
                               first_step=9)
    assert kept == [4, 9] and best == 9


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """A run that watches eval/loss in "max" mode: the loss falls at every eval (2, 4, 6), so
    step 2 stays the best and patience 2 stops the run at step 6 of 20."""
    workdir = tmp_path_factory.mktemp("stopped")
    return train_and_evaluate(stopping_config(steps=20), workdir), workdir


def stopping_config(steps: int):
    cfg = tiny_config(steps=steps, eval_every=2, best_metric="eval/loss", best_mode="max",
                      early_stopping_patience=2, max_checkpoints_to_keep=1, keep_best=1)
    cfg.optim.decay_steps = 20  # the same schedule whatever train.steps
    return cfg


@pytest.mark.slow
def test_a_run_stops_early_and_the_test_split_scores_its_best_step(stopped):
    result, workdir = stopped
    assert (result.step, result.stopped_early, result.best_step) == (6, True, 2)
    assert result.stopped_by is None
    rows = read_metrics(workdir)
    evals = [r["eval/loss"] for r in rows if "eval/loss" in r]
    assert len(evals) == 3 and evals == sorted(evals, reverse=True)
    assert result.best_value == evals[0]
    assert result.test["test/from_step"] == 2 and result.test["step"] == 6
    assert Checkpointer(workdir / "checkpoints", max_to_keep=9).all_steps() == [2, 6]
    assert load_trained(workdir).step == 6
    best = load_trained(workdir, best=True)
    assert best.step == 2
    # RunResult.params (what the CLI's showcase writes with) are the best step's too
    for got, want in zip(jax.tree.leaves(result.params), jax.tree.leaves(best.params),
                         strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


@pytest.mark.slow
def test_a_resumed_run_stops_at_the_same_step_with_the_same_numbers(stopped, tmp_path):
    straight, straight_dir = stopped
    first = train_and_evaluate(stopping_config(steps=4), tmp_path)  # one eval into patience
    assert first.step == 4 and not first.stopped_early and first.test["test/from_step"] == 2
    # the test split scores step 2's parameters in both runs
    np.testing.assert_allclose(first.test["test/loss"], straight.test["test/loss"], rtol=1e-6)
    resumed = train_and_evaluate(stopping_config(steps=20), tmp_path)
    # without the saved state the resumed run would count afresh and stop at step 10
    assert (resumed.step, resumed.stopped_early, resumed.best_step) == (6, True, 2)
    p_straight, p_resumed = params_of(straight.state), params_of(resumed.state)
    for name in p_straight:
        np.testing.assert_array_equal(p_resumed[name], p_straight[name], err_msg=name)
    assert resumed.test == straight.test

    def evals(workdir):
        return [(r["step"], r["eval/loss"]) for r in read_metrics(workdir) if "eval/loss" in r]

    assert evals(tmp_path) == evals(straight_dir)


@pytest.mark.slow
def test_load_trained_best_needs_a_watched_metric(tmp_path):
    cfg = tiny_config(steps=1, eval_batches=0)
    train_and_evaluate(cfg, tmp_path)
    with pytest.raises(WorkdirError, match="train.best_metric is unset"):
        load_trained(tmp_path, best=True)


@pytest.mark.slow
def test_a_metric_the_task_does_not_log_is_named_at_start(tmp_path):
    cfg = tiny_config(best_metric="eval/heldout_auc")
    with pytest.raises(ConfigError) as err:
        train_and_evaluate(cfg, tmp_path)
    assert err.value.key == "train.best_metric"
    assert "task 'lm' logs no eval/heldout_auc" in str(err.value)
    assert "eval/loss" in str(err.value) and "baseline" not in str(err.value)
    assert not list(tmp_path.glob("checkpoints/*"))  # refused before the first step
