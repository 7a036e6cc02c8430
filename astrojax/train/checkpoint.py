"""Orbax checkpoints of the train state, the Grain iterator state, the resolved config and the
task's data artifacts (normalization statistics and the like)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import grain
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


class Checkpointer:
    """Saves and restores ``{state, data, config, artifacts}`` under ``WORKDIR/checkpoints/STEP``.

    Saves are asynchronous: the train loop goes on while arrays are written. Each step folder is
    finalised atomically by Orbax, so an interrupted save never shadows an older good one.
    """

    def __init__(self, directory: str | Path, *, max_to_keep: int, async_save: bool = True):
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, enable_async_checkpointing=async_save, create=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: Any, data_iterator: grain.DatasetIterator,
             config: dict[str, Any], artifacts: dict[str, Any] | None = None, *,
             force: bool = False) -> bool:
        """Starts saving ``step``; returns whether a save was started. ``artifacts`` is any
        JSON-ready dict the data depends on (normalization statistics), kept with the weights
        that were trained on it."""
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=grain.checkpoint.CheckpointSave(data_iterator),
            config=ocp.args.JsonSave(config),
            artifacts=ocp.args.JsonSave(artifacts or {}),
        )
        saved = self.manager.save(step, args=args, force=force)
        if saved:
            log.info("saving checkpoint %d to %s", step, self.directory)
        return saved

    def restore(self, step: int, abstract_state: Any,
                data_iterator: grain.DatasetIterator
                ) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        """The state restored onto ``abstract_state``'s shardings; ``data_iterator`` is moved to
        the saved position in place. Returns ``(state, saved_config, saved_artifacts)``."""
        args = ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            data=grain.checkpoint.CheckpointRestore(data_iterator),
            config=ocp.args.JsonRestore(),
            artifacts=ocp.args.JsonRestore(),
        )
        try:
            restored = self.manager.restore(step, args=args)
        except Exception as err:  # Orbax raises many types; name the folder for the user.
            raise RuntimeError(f"cannot restore checkpoint {self.directory / str(step)}: "
                               f"{type(err).__name__}: {err}") from err
        return restored["state"], restored["config"], restored["artifacts"]

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
