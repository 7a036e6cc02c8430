"""The train loop: build state on the mesh, step, evaluate, log, checkpoint, resume."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

from astrojax import config as config_lib
from astrojax import sharding
from astrojax.tasks import get_task
from astrojax.train import checkpoint as ckpt_lib
from astrojax.train import step as step_lib
from astrojax.train import workdir as workdir_lib
from astrojax.train.checkpoint import Checkpointer, CheckpointError
from astrojax.train.early_stopping import EarlyStopping
from astrojax.train.frozen import check_base
from astrojax.train.metrics import MetricsWriter, ProfileWindow, Progress, device_memory

log = logging.getLogger(__name__)


class StopRequest:
    """Turns SIGTERM and the first Ctrl-C into a flag the loop checks after each step, so the run
    saves a checkpoint before it exits. A second Ctrl-C interrupts at once.

    With several processes, a signal reaches each at another step (or only one): the loop asks
    :meth:`agreed` after every step, and all processes stop after the same step once any of
    them got one, so their last save and their exit (collectives) match."""

    def __init__(self):
        self.signalled: str | None = None  # what this process received
        self._agreed: str | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> str | None:
        """Why the run stops (SIGTERM, SIGINT), the same on every process; None: it does not."""
        return self._agreed if jax.process_count() > 1 else self.signalled

    def agreed(self) -> str | None:
        """:attr:`requested`, after gathering every process's signal (one small collective
        per call with several processes; none with one)."""
        if jax.process_count() > 1:
            mine = signal.Signals[self.signalled] if self.signalled else 0
            codes = multihost_utils.process_allgather(np.int32(mine))
            self._agreed = signal.Signals(int(np.max(codes))).name if np.any(codes) else None
        return self.requested

    def _handle(self, signum, frame):
        if self.signalled and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signalled = signal.Signals(signum).name
        log.warning("%s received: saving a checkpoint after this step, then stopping",
                    self.signalled)

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class TrainingError(RuntimeError):
    """The run cannot go on (diverged, cannot save, ...); the message is one line for the
    user, naming what to do."""


@dataclasses.dataclass
class RunResult:
    """What a finished (or stopped) run reached."""

    step: int
    train: dict[str, Any]
    eval: dict[str, Any]
    test: dict[str, Any]  # the test split's metrics after the last step (empty until then)
    stopped_by: str | None
    wall_seconds: float
    compile_seconds: float
    state: step_lib.TrainState
    # With train.best_metric: whether the run stopped early (train.early_stopping_patience),
    # and the best step by the metric and its value (the step the test split scored).
    stopped_early: bool = False
    best_step: int | None = None
    best_value: float | None = None
    # The parameters the final evals and the test split scored: the best step's with
    # train.best_metric, else the last state's (None when the run did not finish).
    params: Any = None


def evaluate(program: step_lib.Program, params, batches) -> dict[str, float]:
    """Eval metrics of ``params`` over ``batches`` (this process's slices). The task's
    ``eval_sums`` are added up over the batches: scalars as floats, vectors (histograms, per-class
    counts) elementwise as float64 arrays."""
    totals: dict[str, Any] = {}
    for local_batch in batches:
        sums = jax.device_get(program.eval_step(params, program.shard(local_batch)))
        for name, value in sums.items():
            value = np.asarray(value, np.float64)
            totals[name] = totals.get(name, 0.0) + (float(value) if value.ndim == 0 else value)
    return program.task.finalize_eval(totals) if totals else {}


def _saveable(program: step_lib.Program, state: step_lib.TrainState, step: int) -> bool:
    """Whether ``state`` may be checkpointed: finite parameters after a finite update. A
    checkpoint of NaN, or of a run that has started to skip updates, would rotate good ones
    away."""
    if bool(jax.device_get(program.healthy(state))):
        return True
    log.warning("step %d: not saving a checkpoint: the last update was non-finite or the "
                "parameters hold NaN or Inf", step)
    return False


def _check_diverged(record: dict[str, Any], limit: int, checkpointer: Checkpointer) -> None:
    in_a_row = int(record.get("nonfinite_in_a_row", 0))
    if in_a_row < limit:
        if in_a_row:
            log.warning("step %d: %d step(s) in a row had a NaN or Inf loss or gradient and "
                        "were skipped", record["step"], in_a_row)
        return
    last = checkpointer.latest_step()
    where = (f"the last finite checkpoint is step {last} in {checkpointer.directory}"
             if last is not None else "no checkpoint was written")
    raise TrainingError(f"step {record['step']}: {in_a_row} steps in a row had a NaN or Inf "
                        f"loss or gradient (train.max_nonfinite_steps={limit}); stopping. "
                        f"{where}. Lower optim.learning_rate or check the data.")


def _restore(cfg: config_lib.Config, program: step_lib.Program, checkpointer: Checkpointer,
             train_iter, config_dict: dict[str, Any], artifacts: dict[str, Any]):
    """The state of the newest readable checkpoint whose config fits, or None when there is
    none. A damaged newest checkpoint is an error naming it and the one before, or, with
    ``train.on_bad_checkpoint=fallback``, is moved aside and the one before is tried."""
    steps = checkpointer.all_steps()
    shapes = {ckpt_lib.path_key(p): tuple(leaf.shape) for p, leaf in
              jax.tree_util.tree_leaves_with_path(program.abstract_state.params)}
    while steps:
        step = steps.pop()
        try:
            saved_config = checkpointer.saved_config(step)
            workdir_lib.check_resume(step, saved_config, config_dict,
                                     checkpointer.saved_shapes(step), shapes,
                                     checkpointer.directory)
            state, _, saved_artifacts = checkpointer.restore(step, program.restore_target(),
                                                             train_iter)
        except CheckpointError as err:
            before = f"step {steps[-1]}" if steps else "none"
            if cfg.train.on_bad_checkpoint != "fallback":
                raise TrainingError(
                    f"{err}; the checkpoint before it: {before}. Move "
                    f"{checkpointer.directory / str(step)} aside, or rerun with "
                    "--config.train.on_bad_checkpoint=fallback to do that and resume from the "
                    "one before") from err
            moved = checkpointer.set_aside(step)
            log.warning("%s; moved it to %s, trying the checkpoint before it (%s)", err,
                        moved.name, before)
            continue
        if saved_artifacts.get("lora_base") != artifacts.get("lora_base"):
            raise TrainingError(f"checkpoint {step} in {checkpointer.directory} trained adapters "
                                f"on the base {saved_artifacts.get('lora_base')}, but this run "
                                f"reads {artifacts.get('lora_base')}: resume with that base, or "
                                "use a new --workdir")
        if saved_artifacts != artifacts:
            log.warning("the data's artifacts (normalization statistics, ...) differ from "
                        "those checkpoint %d was trained with", step)
        log.info("resumed from checkpoint %d in %s", step, checkpointer.directory)
        return state
    return None


def train_and_evaluate(cfg: config_lib.Config, workdir: str | Path,
                       devices: list[jax.Device] | None = None) -> RunResult:
    """Trains ``cfg.task`` for ``cfg.train.steps`` steps in ``workdir`` on ``devices`` (default:
    all), resuming from its latest checkpoint when there is one.

    Raises ConfigError before any work if ``cfg`` is invalid, WorkdirError if the workdir cannot
    host the run (not writable, held by another run, or holding checkpoints of another model or
    data), and TrainingError (with CheckpointError causes) when the run cannot go on.
    """
    start_time = time.perf_counter()
    workdir = Path(workdir)
    devices = jax.devices() if devices is None else devices
    config_lib.validate(cfg, num_devices=len(devices))
    task = get_task(cfg)
    task.check_mesh(config_lib.resolve_mesh_shape(cfg.mesh, len(devices)))
    if cfg.lora.rank:
        check_base(cfg)
    is_main = jax.process_index() == 0
    with contextlib.ExitStack() as run:
        if is_main:
            workdir_lib.prepare(workdir)
            run.enter_context(workdir_lib.Lock(workdir))
        return _run(cfg, task, workdir, devices, is_main, start_time)


def _run(cfg, task, workdir: Path, devices, is_main: bool, start_time: float) -> RunResult:
    mesh = sharding.make_mesh(cfg.mesh, devices)
    t = cfg.train
    config_dict = config_lib.to_dict(cfg)
    log.info("mesh %s on %d %s device(s)", dict(mesh.shape), mesh.size, jax.default_backend())

    program = step_lib.build_program(cfg, task, mesh)
    artifacts = {**task.artifacts(), **program.artifacts}

    # This process's block of every batch's rows (processes holding the same rows share one)
    block, blocks = program.data_block()
    train_iter = iter(task.train_data(block, blocks))
    eval_batches = task.eval_data(block, blocks)
    early = EarlyStopping.from_config(t)  # None unless train.best_metric is set
    checkpointer = Checkpointer(workdir / "checkpoints", max_to_keep=t.max_checkpoints_to_keep,
                                async_save=t.async_checkpointing,
                                **({} if early is None else dict(
                                    best_fn=early.rank, best_mode=early.mode,
                                    keep_best=t.keep_best)))
    with jax.set_mesh(mesh), contextlib.ExitStack() as cleanup:
        cleanup.callback(checkpointer.close)
        state = _restore(cfg, program, checkpointer, train_iter, config_dict, artifacts)
        resumed = state is not None
        if state is None:
            state = program.init()
            spec = task.warm_start()
            if spec is not None:
                state = step_lib.warm_start(state, spec)
                log.info("warm start: %s", ", ".join(
                    f"{prefix or 'the model'} from {workdir}"
                    for prefix, (workdir, _) in spec.parts.items()))
        start_step = int(jax.device_get(state.step))
        if early is not None:
            _start_tracking(early, cfg.task, program, state, eval_batches, checkpointer,
                            start_step if resumed else None)
        if is_main:  # only once the run has started: a refused resume leaves it as it was
            (workdir / "config.json").write_text(json.dumps(config_dict, indent=2) + "\n")

        writer = MetricsWriter(workdir, enabled=is_main, resume_step=start_step)
        progress = Progress(total=t.steps, initial=start_step, enabled=is_main)
        cleanup.callback(writer.close)
        cleanup.callback(progress.close)
        profile = ProfileWindow(workdir / "tensorboard", t.profile_start_step, t.profile_steps)
        cleanup.callback(profile.close)
        train_record: dict[str, Any] = {}
        eval_record: dict[str, Any] = {}
        test_record: dict[str, Any] = {}
        compile_seconds = 0.0
        baselines: dict[str, float] | None = None  # computed at the first eval
        step = saved_step = start_step
        items = 0
        interval_start = time.perf_counter()
        previous = None  # the last step's metrics: the host waits for it before going on
        with StopRequest() as stop:
            while step < t.steps and not stop.agreed() and not (early and early.should_stop):
                local_batch = next(train_iter)
                items += task.count_items(local_batch) * blocks
                with profile.annotation(step):
                    state, metrics = program.train_step(state, program.shard(local_batch))
                step += 1
                profile.after(step, metrics)
                # Stay at most one step ahead of the device, so a signal is seen within a
                # step (a Python handler runs only between the waits).
                if previous is not None:
                    jax.block_until_ready(previous["loss"])
                previous = metrics
                if step == start_step + 1:  # the first step pays for compilation
                    jax.block_until_ready(metrics)
                    compile_seconds = time.perf_counter() - interval_start
                    interval_start, items = time.perf_counter(), 0
                if step % t.log_every == 0 or step == t.steps:
                    metrics = jax.device_get(metrics)
                    elapsed = time.perf_counter() - interval_start
                    if items:
                        metrics[f"{task.throughput_key}_per_second"] = items / elapsed
                    metrics.update(device_memory())
                    train_record = writer.write(step, metrics)
                    progress.update(step, train_record)
                    interval_start, items = time.perf_counter(), 0
                    _check_diverged(train_record, t.max_nonfinite_steps, checkpointer)
                    _check_saves(checkpointer)
                else:
                    progress.update(step)
                if t.eval_batches and (step % t.eval_every == 0 or step == t.steps):
                    eval_sums = evaluate(program, state.params, eval_batches)
                    if baselines is None:
                        baselines = {f"baseline/{k}": v for k, v in task.baselines().items()}
                    eval_record = writer.write(step, {**eval_sums, **baselines}, prefix="eval/")
                    progress.update(step, eval_record)
                    interval_start, items = time.perf_counter(), 0
                    if early is not None:
                        early.update(step, eval_record)
                evaluated = early is not None and eval_record.get("step") == step
                if ((step % t.checkpoint_every == 0 or evaluated)
                        and _saveable(program, state, step)):
                    _save(checkpointer, step, state, train_iter, config_dict, artifacts,
                          **_tracked(early, eval_record if evaluated else None))
                    saved_step = step
            if step != saved_step and _saveable(program, state, step):
                _save(checkpointer, step, state, train_iter, config_dict, artifacts, force=True,
                      **_tracked(early, None))
            stopped_early = bool(early and early.should_stop and not stop.requested)
            if stopped_early:
                log.info("stopping early at step %d: %s", step, early.reason())
            params = None
            if (step == t.steps or stopped_early) and not stop.requested:
                params, from_step = _selected_params(program, checkpointer, early, state, step)
                final = task.final_eval(program.embed, params, program.shard)
                if final:
                    eval_record = {**eval_record,
                                   **writer.write(step, final, prefix="eval/")}
                    progress.update(step, eval_record)
                test_record = _test(program, task, params, writer, step,
                                    None if early is None else from_step)
        if stop.requested:
            log.warning("stopped by %s at step %d; checkpoint saved", stop.requested, step)
    wall = time.perf_counter() - start_time
    log.info("done: step %d in %.1f s (first step incl. compilation %.1f s)", step, wall,
             compile_seconds)
    return RunResult(step=step, train=train_record, eval=eval_record, test=test_record,
                     stopped_by=stop.requested, wall_seconds=wall,
                     compile_seconds=compile_seconds, state=state, stopped_early=stopped_early,
                     best_step=early and early.best_step, best_value=early and early.best_value,
                     params=params)


def _start_tracking(early: EarlyStopping, task_name: str, program: step_lib.Program, state,
                    eval_batches, checkpointer: Checkpointer, resumed_step: int | None) -> None:
    """Checks at start, on one eval batch, that the task logs ``train.best_metric`` (a
    ConfigError listing its eval metrics otherwise), and takes the early-stopping state saved
    with the checkpoint the run resumed from."""
    first = evaluate(program, state.params, list(itertools.islice(eval_batches, 1)))
    early.check_logged({f"eval/{k}": v for k, v in first.items()}, task_name)
    if resumed_step is not None:
        try:
            early.load(checkpointer.saved_early_stopping(resumed_step), resumed_step)
        except CheckpointError as err:
            raise TrainingError(str(err)) from err
        if early.best_step is not None:
            log.info("%s: best so far %.6g at step %d, %d eval(s) since an improvement",
                     early.metric, early.best_value, early.best_step,
                     early.evals_since_improvement)


def _tracked(early: EarlyStopping | None, eval_record: dict[str, Any] | None) -> dict[str, Any]:
    """What a checkpoint saves of the tracked metric: the value Orbax ranks it by (none
    between evals) and the early-stopping state."""
    if early is None:
        return {}
    metrics = {} if eval_record is None else {early.metric: eval_record[early.metric]}
    return {"metrics": metrics, "early_stopping": early.to_json()}


def _selected_params(program: step_lib.Program, checkpointer: Checkpointer,
                     early: EarlyStopping | None, state, step: int):
    """The parameters the run delivers to its final evals and the step they are from: with
    ``train.best_metric``, the best step's (read back from its checkpoint); else the last."""
    if early is None or early.best_step is None or early.best_step == step:
        return state.params, step
    checkpointer.wait()
    if early.best_step not in checkpointer.all_steps():
        log.warning("the best step by %s, %d, has no checkpoint (not saved: its update was not "
                    "finite); the test split scores step %d", early.metric, early.best_step,
                    step)
        return state.params, step
    try:
        params, _ = checkpointer.restore_params(early.best_step,
                                                program.restore_target().params)
    except CheckpointError as err:
        raise TrainingError(str(err)) from err
    log.info("the final evals score the best step by %s, %d (%.6g)", early.metric,
             early.best_step, early.best_value)
    return params, early.best_step


def _test(program: step_lib.Program, task, params, writer: MetricsWriter,
          step: int, from_step: int | None = None) -> dict[str, Any]:
    """The test split scored once, after the last step, beside its baselines (``test/...``);
    nothing when the task has no test batches (train.eval_batches=0, an empty test split).
    ``from_step``: the step whose parameters are scored (``test/from_step``), when not the
    last."""
    if not task.cfg.train.eval_batches:
        return {}
    batches = task.eval_data(*program.data_block(), split="test")
    if not batches:
        return {}
    metrics = evaluate(program, params, batches)
    baselines = {f"baseline/{k}": v for k, v in task.baselines("test").items()}
    origin = {} if from_step is None else {"from_step": from_step}
    return writer.write(step, {**metrics, **baselines, **origin}, prefix="test/")


def _save(checkpointer: Checkpointer, *args, **kwargs) -> None:
    try:
        checkpointer.save(*args, **kwargs)
    except CheckpointError as err:
        raise TrainingError(str(err)) from err


def _check_saves(checkpointer: Checkpointer) -> None:
    try:
        checkpointer.check_for_errors()
    except CheckpointError as err:
        raise TrainingError(str(err)) from err
