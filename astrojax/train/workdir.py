"""A run's folder: checked before any work, held by one run at a time, and the check that a
checkpoint in it fits the config a run resumes with.

Every problem here is a :class:`WorkdirError`, one line naming the folder and what to do,
raised before JAX compiles anything.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import filelock

log = logging.getLogger(__name__)

# Keys that may change when a run resumes (logged as a warning). Any other change of data.* or
# planets.*,
# a change of task, or a change of any parameter's shape is refused. A moved cube store is
# allowed: if its contents differ, the saved normalization statistics say so (a warning).
DATA_KEYS_THAT_MAY_CHANGE = ("data.worker_count", "data.prefetch_buffer_size",
                             "data.cube_store")
# How the processes were launched: differs between the processes of one run and between
# launches (resuming on another number of processes is allowed), so not even a warning.
LAUNCH_KEYS = ("train.distributed", "train.coordinator_address", "train.num_processes",
               "train.process_id")


class WorkdirError(RuntimeError):
    """The workdir cannot host this run; one line for the user (exit code 2 in the CLI)."""


def prepare(workdir: Path) -> None:
    """Creates ``workdir`` and checks that files can be written in it and its checkpoints
    folder, so a run fails before its first step rather than at its first save."""
    if workdir.exists() and not workdir.is_dir():
        raise WorkdirError(f"workdir {workdir} is a file, not a folder")
    for folder in (workdir, workdir / "checkpoints"):
        if folder.exists() and not folder.is_dir():
            raise WorkdirError(f"{folder} is a file, not a folder")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
                pass
        except OSError as err:
            raise WorkdirError(f"cannot write in {folder}: {err.strerror or err}") from err


class Lock:
    """Holds ``WORKDIR/.lock`` for the run's lifetime, so a second run on the same workdir is
    refused. The OS releases the lock when its process dies, so a crashed run never leaves a
    stale one; ``.lock.owner`` says who holds it (host, pid, start time)."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self._lock = filelock.FileLock(workdir / ".lock", timeout=0)
        self._owner = workdir / ".lock.owner"

    def __enter__(self) -> Lock:
        try:
            self._lock.acquire()
        except filelock.Timeout:
            raise WorkdirError(f"workdir {self.workdir} is in use by another run "
                               f"({self._describe_owner()}); wait for it, stop it, or use "
                               "another --workdir") from None
        self._owner.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                           "started": time.strftime("%Y-%m-%d %H:%M:%S")}))
        return self

    def _describe_owner(self) -> str:
        try:
            owner = json.loads(self._owner.read_text())
            return f"pid {owner['pid']} on {owner['host']}, started {owner['started']}"
        except (OSError, ValueError, KeyError):
            return "owner unknown"

    def __exit__(self, *exc) -> None:
        self._owner.unlink(missing_ok=True)
        self._lock.release()


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_resume(step: int, saved: dict[str, Any], current: dict[str, Any],
                 saved_shapes: dict[tuple[str, ...], tuple[int, ...]],
                 shapes: dict[tuple[str, ...], tuple[int, ...]], directory: Path) -> None:
    """Refuses (one line, listing the keys) to resume checkpoint ``step`` with a config of
    another task, other parameter shapes or other data; warns for every other changed key."""
    old, new = flatten(saved), flatten(current)
    changed = {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new))
               if old.get(k) != new.get(k) and k not in LAUNCH_KEYS}
    if not changed:
        return
    where = f"checkpoint {step} in {directory}"
    hint = "use a new --workdir, or the config the checkpoint was trained with"
    if "task" in changed:
        raise WorkdirError(f"{where} was trained for task {old.get('task')!r}, not "
                           f"{new.get('task')!r}: {hint}")

    def listing(keys) -> str:
        return ", ".join(f"config.{k} ({changed[k][0]!r} -> {changed[k][1]!r})" for k in keys)

    if saved_shapes != shapes:
        model_keys = [k for k in changed if k.split(".")[0] not in ("train", "optim", "mesh")]
        raise WorkdirError(f"{where} has other parameter shapes than this config "
                           f"({listing(model_keys) or 'the model differs'}): {hint}")
    if "lora.alpha" in changed and "lora.alpha" in old:  # same shapes, another function
        raise WorkdirError(f"{where} trained adapters with another scale "
                           f"({listing(['lora.alpha'])}): {hint}")
    layout = _optimizer_layout(old), _optimizer_layout(new)
    if layout[0] != layout[1]:
        raise WorkdirError(f"{where} holds an optimizer state of another layout "
                           f"({layout[0]} -> {layout[1]}): {hint}")
    data_keys = [k for k in changed if k.startswith(("data.", "planets.")) and
                 k not in DATA_KEYS_THAT_MAY_CHANGE]
    if data_keys:
        raise WorkdirError(f"{where} was trained on other data ({listing(data_keys)}); its "
                           f"saved data position would not fit: {hint}")
    for key in changed:
        log.warning("resuming %s with config.%s=%r (it had %r)", where, key, changed[key][1],
                    changed[key][0])


def _optimizer_layout(flat: dict[str, Any]) -> str:
    """What decides the optimizer state's arrays (a checkpoint from before optim.optimizer
    existed is float32 AdamW)."""
    if flat.get("optim.optimizer", "adamw") != "adamw8bit":
        return "optim.optimizer='adamw'"
    return ", ".join(f"optim.{k}={flat.get(f'optim.{k}')!r}" for k in (
        "optimizer", "block_size", "min_8bit_size", "stable_embedding"))
