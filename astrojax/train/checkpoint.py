"""Orbax checkpoints of the train state, the Grain iterator state, the resolved config and the
task's data artifacts (normalization statistics and the like).

Failures are one line for the user (:class:`CheckpointError`): a save that fails, in the
foreground or in Orbax's background thread, names the step, the folder and the cause; a step
that cannot be read names itself and the step before it, and can be moved aside so a run
resumes from the one before (``train.on_bad_checkpoint=fallback``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp

from astrojax.train.workdir import WorkdirError

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or read; the message is one line. ``step`` is the
    step concerned."""

    def __init__(self, message: str, step: int | None = None):
        self.step = step
        super().__init__(message)


def error_cause(err: BaseException) -> str:
    """The root cause of an error from Orbax or TensorStore, in a few words: the OS error
    (``No space left on device``) where there is one, else the last line of the message."""
    seen: list[BaseException] = []
    while err is not None and err not in seen:
        seen.append(err)
        err = err.__cause__ or err.__context__
    for e in reversed(seen):
        if isinstance(e, OSError) and e.strerror:
            return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
        code = re.search(r"os_error_code='?(\d+)", str(e))
        if code:
            return os.strerror(int(code.group(1)))
    lines = [line.strip() for line in str(seen[-1]).splitlines() if line.strip()]
    return f"{type(seen[-1]).__name__}: {lines[-1] if lines else ''}"[:300]


def path_key(path) -> tuple[str, ...]:
    """A pytree path as plain names, the same for a live state and a checkpoint's metadata."""
    return tuple(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def _reader(directory: Path) -> ocp.CheckpointManager:
    """A manager of ``directory`` that knows every item's handler, so reading one item alone
    neither writes nor warns about the others."""
    handlers = {"state": ocp.StandardCheckpointHandler(),
                "data": grain.checkpoint.CheckpointHandler(),
                "config": ocp.JsonCheckpointHandler(),
                "artifacts": ocp.JsonCheckpointHandler(),
                "early_stopping": ocp.JsonCheckpointHandler()}
    return ocp.CheckpointManager(directory, item_handlers=handlers,
                                 options=ocp.CheckpointManagerOptions(create=False))


def read_params(workdir: str | Path) -> tuple[dict[tuple[str, ...], Any], dict[str, Any], int]:
    """The parameters of a run's newest checkpoint as host numpy arrays by path, with the
    config saved beside them and the step: ``(params, config, step)``. For starting a model,
    or a part of one, from another run (any mesh: the arrays are read onto the host's CPU, the
    optimizer state and data iterator are not read)."""
    directory = Path(workdir).absolute() / "checkpoints"
    if not directory.is_dir():
        raise CheckpointError(f"{workdir}: no checkpoints folder there (is it the workdir of a "
                              "training run?)")
    checkpointer = Checkpointer(directory, max_to_keep=1, async_save=False)
    try:
        step = checkpointer.latest_step()
        if step is None:
            raise CheckpointError(f"{directory}: no checkpoint there yet")
        config = checkpointer.saved_config(step)
        metadata = checkpointer.params_metadata(step)
        cpu = jax.sharding.SingleDeviceSharding(jax.local_devices(backend="cpu")[0])
        target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=cpu),
                              metadata)
        params, _ = checkpointer.restore_params(step, target)
    finally:
        checkpointer.manager.close()
    return ({path_key(p): jax.device_get(leaf)
             for p, leaf in jax.tree_util.tree_leaves_with_path(params)}, config, step)


class Checkpointer:
    """Saves and restores ``{state, data, config, artifacts}`` under ``WORKDIR/checkpoints/STEP``
    (and ``early_stopping``, the tracker's state, when the run watches a metric).

    Saves are asynchronous: the train loop goes on while arrays are written. Each step folder is
    finalised atomically by Orbax, so an interrupted save never shadows an older good one.

    Kept: the ``max_to_keep`` newest steps and, with ``best_fn`` (Orbax's ranking of the
    ``metrics`` saved with a step), also the ``keep_best`` best by it. Orbax's own
    ``CheckpointManagerOptions(best_fn=..., max_to_keep=...)`` would keep only the best (its
    ``BestN`` replaces ``LatestN``) and so could delete the newest step a resume needs; the
    preservation policy here is both, through Orbax's ``AnyPreservationPolicy``.
    """

    def __init__(self, directory: str | Path, *, max_to_keep: int, async_save: bool = True,
                 best_fn: Callable[[dict[str, Any]], float] | None = None,
                 best_mode: str = "min", keep_best: int = 0):
        self.directory = Path(directory).absolute()
        if best_fn is None:
            options = ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, enable_async_checkpointing=async_save, create=True)
        else:
            policies = ocp.checkpoint_managers
            keep = policies.AnyPreservationPolicy([
                policies.LatestN(n=max_to_keep),
                policies.BestN(get_metric_fn=best_fn, reverse=best_mode == "min", n=keep_best,
                               keep_checkpoints_without_metrics=False)])
            # best_fn and best_mode also make Orbax write each step's metrics and rank them
            # in best_step().
            options = ocp.CheckpointManagerOptions(
                best_fn=best_fn, best_mode=best_mode, preservation_policy=keep,
                enable_async_checkpointing=async_save, create=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options)
        self._failed = False

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def best_step(self) -> int | None:
        """The kept step that ranks best by ``best_fn`` (the newest without one)."""
        return self.manager.best_step()

    def save(self, step: int, state: Any, data_iterator: grain.DatasetIterator,
             config: dict[str, Any], artifacts: dict[str, Any] | None = None, *,
             force: bool = False, metrics: dict[str, float] | None = None,
             early_stopping: dict[str, Any] | None = None) -> bool:
        """Starts saving ``step``; returns whether a save was started. ``artifacts`` is any
        JSON-ready dict the data depends on (normalization statistics), kept with the weights
        that were trained on it. ``metrics`` are what ``best_fn`` ranks (with ``best_fn`` set,
        pass a dict at every save, empty between evals); ``early_stopping`` the tracker's state.
        Raises :class:`CheckpointError` if this save, or an earlier one still finishing in the
        background, failed."""
        self.check_for_errors()
        self._check_writable(step)
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=grain.checkpoint.CheckpointSave(data_iterator),
            config=ocp.args.JsonSave(config),
            artifacts=ocp.args.JsonSave(artifacts or {}),
            **({} if early_stopping is None else
               {"early_stopping": ocp.args.JsonSave(early_stopping)}),
        )
        try:
            saved = self.manager.save(step, args=args, force=force, metrics=metrics)
        except Exception as err:  # Orbax and TensorStore raise many types
            self._failed = True
            raise CheckpointError(f"cannot write checkpoint {step} to {self.directory}: "
                                  f"{error_cause(err)}", step) from err
        if saved:
            log.info("saving checkpoint %d to %s", step, self.directory)
        return saved

    def _check_writable(self, step: int) -> None:
        """Fails now if the folder cannot take a file: Orbax creates the step folder in a
        background thread, and when that fails its other threads wait 300 s for it first."""
        try:
            with tempfile.NamedTemporaryFile(dir=self.directory, prefix=".write-test-"):
                pass
        except OSError as err:
            self._failed = True
            raise CheckpointError(f"cannot write checkpoint {step} to {self.directory}: "
                                  f"{error_cause(err)}", step) from err

    def check_for_errors(self) -> None:
        """Raises :class:`CheckpointError` if a background save has failed (cheap: it does not
        wait for saves in progress)."""
        try:
            self.manager.check_for_errors()
        except Exception as err:
            self._failed = True
            raise CheckpointError(f"cannot write a checkpoint to {self.directory}: "
                                  f"{error_cause(err)}") from err

    def _reader(self) -> ocp.CheckpointManager:
        return _reader(self.directory)

    def saved_config(self, step: int) -> dict[str, Any]:
        """The resolved config saved with ``step`` (read alone, before anything is built)."""
        return self._read_json(step, "config", "config")

    def saved_early_stopping(self, step: int) -> dict[str, Any] | None:
        """The early-stopping state saved with ``step``; None if it has none (a run that
        watched no metric, or one from before it was saved)."""
        if not (self.directory / str(step) / "early_stopping").is_dir():
            return None
        return self._read_json(step, "early_stopping", "early-stopping state")

    def _read_json(self, step: int, item: str, what: str) -> dict[str, Any]:
        """The JSON item ``item`` of ``step``, read alone; a CheckpointError naming ``what``."""
        reader = self._reader()
        try:
            return reader.restore(step, args=ocp.args.Composite(
                **{item: ocp.args.JsonRestore()}))[item]
        except Exception as err:
            raise CheckpointError(f"checkpoint {step} in {self.directory} is damaged: its "
                                  f"{what} cannot be read ({error_cause(err)})", step) from err
        finally:
            reader.close()

    def saved_shapes(self, step: int) -> dict[tuple[str, ...], tuple[int, ...]]:
        """Shapes of the parameters saved at ``step``, by path, from the checkpoint's
        metadata (no array is read)."""
        return {path_key(p): tuple(leaf.shape) for p, leaf in
                jax.tree_util.tree_leaves_with_path(self.params_metadata(step))}

    def params_metadata(self, step: int) -> Any:
        """The saved parameters' metadata tree (shapes and dtypes; no array is read)."""
        reader = self._reader()
        try:
            return reader.item_metadata(step)["state"]["params"]
        except Exception as err:
            raise CheckpointError(f"checkpoint {step} in {self.directory} is damaged: its "
                                  f"metadata cannot be read ({error_cause(err)})", step) from err
        finally:
            reader.close()

    def restore(self, step: int, abstract_state: Any,
                data_iterator: grain.DatasetIterator
                ) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        """The state restored onto ``abstract_state``'s shardings; ``data_iterator`` is moved to
        the saved position in place. Returns ``(state, saved_config, saved_artifacts)``."""
        data_state = self._data_state_of_another_layout(step)
        items = dict(state=ocp.args.StandardRestore(abstract_state),
                     config=ocp.args.JsonRestore(), artifacts=ocp.args.JsonRestore())
        if data_state is None:
            items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
        try:
            restored = self.manager.restore(step, args=ocp.args.Composite(**items))
            if data_state is not None:  # as Grain's own handler does
                data_iterator.set_state(data_state)
                data_iterator.start_prefetch()
        except Exception as err:  # Orbax raises many types; name the folder for the user.
            raise CheckpointError(f"checkpoint {step} in {self.directory} is damaged "
                                  f"({error_cause(err)})", step) from err
        return restored["state"], restored["config"], restored["artifacts"]

    def _data_state_of_another_layout(self, step: int) -> dict[str, Any] | None:
        """The data iterator's position when ``step`` was written by another number of
        processes (Grain keeps one file per process, named by the count), else None. It carries
        over only when every process saved the same position; otherwise a WorkdirError says to
        resume on the saved count. Task lm's batches do not depend on the process count, so its
        run continues exactly; tasks whose processes read interleaved rows continue at the same
        batch index of a stream that differs with the count."""
        folder = self.directory / str(step) / "data"
        mine = f"process_{jax.process_index()}-of-{jax.process_count()}.json"
        saved = sorted(folder.glob("process_*-of-*.json")) if folder.is_dir() else []
        if not saved or any(path.name == mine for path in saved):
            return None
        states = {path.read_text() for path in saved}
        count = saved[0].name.rpartition("-of-")[2].removesuffix(".json")
        if len(states) > 1:
            raise WorkdirError(
                f"checkpoint {step} in {self.directory} was written by {count} processes whose "
                f"data positions differ (this task's batches depend on the process count): "
                f"resume it on {count} processes (train.num_processes), not "
                f"{jax.process_count()}")
        log.info("checkpoint %d was written by %s process(es); resuming their common data "
                 "position on %d", step, count, jax.process_count())
        return json.loads(states.pop())

    def restore_params(self, step: int, abstract_params: Any) -> tuple[Any, dict[str, Any]]:
        """The parameters alone, restored onto ``abstract_params``' shardings (for inference:
        no optimizer state, no data iterator), and the saved artifacts."""
        reader = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(create=False),
            item_handlers={"state": ocp.PyTreeCheckpointHandler(),
                           "artifacts": ocp.JsonCheckpointHandler()})
        target = {"params": abstract_params}
        try:
            restored = reader.restore(step, args=ocp.args.Composite(
                state=ocp.args.PyTreeRestore(
                    item=target, partial_restore=True,
                    restore_args=ocp.checkpoint_utils.construct_restore_args(target)),
                artifacts=ocp.args.JsonRestore()))
        except Exception as err:  # Orbax raises many types; name the folder for the user.
            raise CheckpointError(f"checkpoint {step} in {self.directory} cannot be read "
                                  f"({error_cause(err)})", step) from err
        finally:
            reader.close()
        return restored["state"]["params"], restored["artifacts"]

    def set_aside(self, step: int) -> Path:
        """Renames step ``step``'s folder to ``STEP.bad-TIME`` (kept for inspection, no longer
        a step) and returns the new path."""
        source = self.directory / str(step)
        target = self.directory / f"{step}.bad-{time.strftime('%Y%m%dT%H%M%S')}"
        source.rename(target)
        self.manager.reload()
        return target

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        """Waits for saves in progress, then releases Orbax's threads. After a failed save the
        error has been raised already; closing then only logs it."""
        try:
            self.manager.wait_until_finished()
        except Exception as err:
            if not self._failed:
                raise CheckpointError(f"cannot write a checkpoint to {self.directory}: "
                                      f"{error_cause(err)}") from err
            log.debug("after the failed save: %s", error_cause(err))
        finally:
            self.manager.close()
