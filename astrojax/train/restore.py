"""A trained model from a run's workdir, for inference: the newest checkpoint's saved config
rebuilds the task and its model, and only the parameters are read, onto one device (no
optimizer state, no data iterator, no mesh), with the data's artifacts saved beside them. A
LoRA run's checkpoint holds its adapters; the frozen weights come from the base step it
records.

Problems are one line naming the folder: a :class:`WorkdirError` for a folder that is not a
workdir of the wanted task, a :class:`CheckpointError` for one that cannot be read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
from flax import nnx

from astrojax.config import Config, from_dict
from astrojax.sharding import state_shardings
from astrojax.tasks import Task, get_task
from astrojax.train.checkpoint import Checkpointer
from astrojax.train.early_stopping import EarlyStopping
from astrojax.train.step import (
    abstract_model,
    abstract_with_shardings,
    load_frozen,
    trainable_filter,
)
from astrojax.train.workdir import WorkdirError


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    """What a workdir's newest checkpoint holds, ready to run."""

    workdir: Path
    step: int
    config: Config
    task: Task
    graphdef: nnx.GraphDef
    params: nnx.State
    artifacts: dict[str, Any]

    @property
    def model(self) -> nnx.Module:
        return nnx.merge(self.graphdef, self.params)


def load_trained(workdir: str | Path, task: str | None = None,
                 device: jax.Device | None = None,
                 mesh: jax.sharding.Mesh | Callable[[Config], jax.sharding.Mesh] | None = None,
                 best: bool = False) -> TrainedModel:
    """The model of ``workdir``'s newest checkpoint on ``device`` (default: the first), or
    sharded over ``mesh`` by the run's logical axis rules, as in training (a callable gets the
    run's config and returns the mesh, e.g. ``lambda cfg: make_mesh(cfg.mesh)``). ``task``: the
    task it must have been trained for (a WorkdirError names the one it was). ``best``: the
    kept checkpoint that is best by the run's ``train.best_metric`` instead of the newest."""
    workdir = Path(workdir)
    if not workdir.exists():
        raise WorkdirError(f"no workdir at {workdir}")
    if not workdir.is_dir():
        raise WorkdirError(f"workdir {workdir} is a file, not a folder")
    folder = workdir / "checkpoints"
    steps = sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) \
        if folder.is_dir() else []
    if not steps:
        raise WorkdirError(f"{workdir} holds no checkpoint (no {folder.name}/STEP folder): not a "
                           "training workdir, or its run has not saved one yet")
    checkpointer = Checkpointer(folder, max_to_keep=len(steps), async_save=False)
    try:
        step = checkpointer.latest_step()
        if step is None:
            raise WorkdirError(f"{folder} holds no complete checkpoint")
        cfg = from_dict(Config, checkpointer.saved_config(step))
        if best:
            step = _best_step(workdir, folder, cfg, len(steps))
            cfg = from_dict(Config, checkpointer.saved_config(step))
        if task is not None and cfg.task != task:
            raise WorkdirError(f"{workdir} was trained for task {cfg.task!r}, not {task!r}")
        built = get_task(cfg)
        graphdef, abstract = abstract_model(built, cfg.train.seed)
        abstract = nnx.filter_state(abstract, trainable_filter(cfg))
        device = device or jax.devices()[0]
        if mesh is None:
            where = jax.sharding.SingleDeviceSharding(device)
            shardings = jax.tree.map(lambda a: where, abstract)
        else:
            if callable(mesh):
                mesh = mesh(cfg)
            shardings = state_shardings(abstract, mesh, cfg.mesh.logical_axis_rules)
        target = abstract_with_shardings(abstract, shardings)
        params, artifacts = checkpointer.restore_params(step, target)
    finally:
        checkpointer.manager.close()
    if cfg.lora.rank:  # the checkpoint holds the adapters; the base the step it records
        base_step = artifacts.get("lora_base", {}).get("step")
        frozen, _ = load_frozen(cfg, built, mesh, device=device, step=base_step)
        params = nnx.merge_state(params, frozen)
    return TrainedModel(workdir, step, cfg, built, graphdef, params, artifacts)


def _best_step(workdir: Path, folder: Path, cfg: Config, num_steps: int) -> int:
    """The kept step that ranks best by the run's ``train.best_metric``, as Orbax ranks them
    (``CheckpointManager.best_step`` on the metrics saved with each step)."""
    tracker = EarlyStopping.from_config(cfg.train)
    if tracker is None:
        raise WorkdirError(f"{workdir}: its run watched no metric (train.best_metric is unset), "
                           "so no checkpoint is the best; load the newest")
    ranking = Checkpointer(folder, max_to_keep=num_steps, async_save=False,
                           best_fn=tracker.rank, best_mode=tracker.mode, keep_best=num_steps)
    try:
        step = ranking.best_step()
        metrics = ranking.manager.metrics(step) if step is not None else None
    finally:
        ranking.manager.close()
    if step is None or tracker.metric not in (metrics or {}):
        raise WorkdirError(f"{folder}: no checkpoint holds {tracker.metric} (saved at evals "
                           "since the run set train.best_metric)")
    return step
