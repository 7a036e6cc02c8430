"""The train loop: build state on the mesh, step, evaluate, log, checkpoint, resume."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

import jax

from astrojax import config as config_lib
from astrojax import sharding
from astrojax.tasks import get_task
from astrojax.train import step as step_lib
from astrojax.train.checkpoint import Checkpointer
from astrojax.train.metrics import MetricsWriter, Progress

log = logging.getLogger(__name__)


class StopRequest:
    """Turns SIGTERM and the first Ctrl-C into a flag the loop checks after each step, so the run
    saves a checkpoint before it exits. A second Ctrl-C interrupts at once."""

    def __init__(self):
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name
        log.warning("%s received: saving a checkpoint after this step, then stopping",
                    self.requested)

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
    stopped_by: str | None
    wall_seconds: float
    compile_seconds: float
    state: step_lib.TrainState


def evaluate(program: step_lib.Program, params, batches) -> dict[str, float]:
    """Eval metrics of ``params`` over ``batches`` (this process's slices)."""
    totals: dict[str, float] = {}
    for local_batch in batches:
        sums = jax.device_get(program.eval_step(params, program.shard(local_batch)))
        for name, value in sums.items():
            totals[name] = totals.get(name, 0.0) + float(value)
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


def _warn_config_changes(saved: dict[str, Any], current: dict[str, Any], prefix="") -> None:
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            _warn_config_changes(a, b, f"{prefix}{key}.")
        elif a != b:
            log.warning("resuming with config.%s%s=%r (checkpoint had %r)", prefix, key, b, a)


def train_and_evaluate(cfg: config_lib.Config, workdir: str | Path,
                       devices: list[jax.Device] | None = None) -> RunResult:
    """Trains ``cfg.task`` for ``cfg.train.steps`` steps in ``workdir`` on ``devices`` (default:
    all), resuming from its latest checkpoint when there is one. Raises ConfigError before any
    work if ``cfg`` is invalid."""
    start_time = time.perf_counter()
    workdir = Path(workdir)
    devices = jax.devices() if devices is None else devices
    config_lib.validate(cfg, num_devices=len(devices))
    task = get_task(cfg)
    mesh = sharding.make_mesh(cfg.mesh, devices)
    t = cfg.train
    is_main = jax.process_index() == 0
    config_dict = config_lib.to_dict(cfg)
    if is_main:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "config.json").write_text(json.dumps(config_dict, indent=2) + "\n")
    log.info("mesh %s on %d %s device(s)", dict(mesh.shape), mesh.size, jax.default_backend())

    program = step_lib.build_program(cfg, task, mesh)
    artifacts = task.artifacts()

    train_iter = iter(task.train_data(jax.process_index(), jax.process_count()))
    eval_batches = task.eval_data(jax.process_index(), jax.process_count())
    checkpointer = Checkpointer(workdir / "checkpoints", max_to_keep=t.max_checkpoints_to_keep,
                                async_save=t.async_checkpointing)
    with jax.set_mesh(mesh):
        latest = checkpointer.latest_step()
        if latest is not None:
            state, saved_config, saved_artifacts = checkpointer.restore(
                latest, program.restore_target(), train_iter)
            _warn_config_changes(saved_config, config_dict)
            if saved_artifacts != artifacts:
                log.warning("the data's artifacts (normalization statistics, ...) differ from "
                            "those checkpoint %d was trained with", latest)
            log.info("resumed from checkpoint %d in %s", latest, checkpointer.directory)
        else:
            state = program.init()
        start_step = int(jax.device_get(state.step))

        writer = MetricsWriter(workdir, enabled=is_main, resume_step=start_step)
        progress = Progress(total=t.steps, initial=start_step, enabled=is_main)
        train_record: dict[str, Any] = {}
        eval_record: dict[str, Any] = {}
        compile_seconds = 0.0
        baselines: dict[str, float] | None = None  # computed at the first eval
        step = saved_step = start_step
        items = 0
        interval_start = time.perf_counter()
        with StopRequest() as stop, contextlib.ExitStack() as cleanup:
            cleanup.callback(checkpointer.close)
            cleanup.callback(writer.close)
            cleanup.callback(progress.close)
            while step < t.steps and not stop.requested:
                local_batch = next(train_iter)
                items += task.count_items(local_batch) * jax.process_count()
                state, metrics = program.train_step(state, program.shard(local_batch))
                step += 1
                if step == start_step + 1:  # the first step pays for compilation
                    jax.block_until_ready(metrics)
                    compile_seconds = time.perf_counter() - interval_start
                    interval_start, items = time.perf_counter(), 0
                if step % t.log_every == 0 or step == t.steps:
                    metrics = jax.device_get(metrics)
                    elapsed = time.perf_counter() - interval_start
                    if items:
                        metrics[f"{task.throughput_key}_per_second"] = items / elapsed
                    train_record = writer.write(step, metrics)
                    progress.update(step, train_record)
                    interval_start, items = time.perf_counter(), 0
                    _check_diverged(train_record, t.max_nonfinite_steps, checkpointer)
                else:
                    progress.update(step)
                if t.eval_batches and (step % t.eval_every == 0 or step == t.steps):
                    eval_sums = evaluate(program, state.params, eval_batches)
                    if baselines is None:
                        baselines = {f"baseline/{k}": v for k, v in task.baselines().items()}
                    eval_record = writer.write(step, {**eval_sums, **baselines}, prefix="eval/")
                    progress.update(step, eval_record)
                    interval_start, items = time.perf_counter(), 0
                if step % t.checkpoint_every == 0 and _saveable(program, state, step):
                    checkpointer.save(step, state, train_iter, config_dict, artifacts)
                    saved_step = step
            if step != saved_step and _saveable(program, state, step):
                checkpointer.save(step, state, train_iter, config_dict, artifacts, force=True)
            if step == t.steps and not stop.requested:
                final = task.final_eval(program.embed, state.params, program.shard)
                if final:
                    eval_record = {**eval_record,
                                   **writer.write(step, final, prefix="eval/")}
                    progress.update(step, eval_record)
        if stop.requested:
            log.warning("stopped by %s at step %d; checkpoint saved", stop.requested, step)
    wall = time.perf_counter() - start_time
    log.info("done: step %d in %.1f s (first step incl. compilation %.1f s)", step, wall,
             compile_seconds)
    return RunResult(step=step, train=train_record, eval=eval_record,
                     stopped_by=stop.requested, wall_seconds=wall,
                     compile_seconds=compile_seconds, state=state)

