"""Tasks the train loop can run, by name (``config.task``)."""

from __future__ import annotations

from astrojax.config import Config, ConfigError
from astrojax.tasks.base import Task
from astrojax.tasks.datacube import DatacubeTask
from astrojax.tasks.describe import DescribeTask
from astrojax.tasks.fusion import FusionTask
from astrojax.tasks.graph_vae import GraphVAETask, LinkPredictionTask
from astrojax.tasks.lm import LanguageModelTask

TASKS: dict[str, type[Task]] = {
    "lm": LanguageModelTask,
    "graph_vae": GraphVAETask,
    "graph_linkpred": LinkPredictionTask,
    "datacube": DatacubeTask,
    "fusion": FusionTask,
    "describe": DescribeTask,
}


def get_task(cfg: Config) -> Task:
    """The task named by ``cfg.task``; ConfigError if unknown."""
    if cfg.task not in TASKS:
        raise ConfigError("task", f"{cfg.task!r} is not one of {', '.join(TASKS)}")
    return TASKS[cfg.task](cfg)


__all__ = ["TASKS", "Task", "DatacubeTask", "DescribeTask", "FusionTask", "GraphVAETask",
           "LanguageModelTask", "LinkPredictionTask", "get_task"]
