"""Early stopping on an eval metric, and the best step by it (``train.best_metric``).

The state is a few numbers that the run saves with every checkpoint, so a resumed run stops
at the step an unbroken one would. Orbax keeps the best checkpoints by :meth:`rank` (its
``best_fn``); this module decides when to stop and which step was best.

Two notions of "best", as in Keras and PyTorch Lightning: ``best_value``/``best_step`` is the
best value seen (what the test split scores and Orbax ranks), and patience counts the evals
since the last improvement on ``reference`` by more than ``min_delta`` (with ``min_delta`` 0
the two agree).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

from astrojax.config import ConfigError, TrainConfig
from astrojax.config.run_checks import best_mode_of

log = logging.getLogger(__name__)


@dataclasses.dataclass
class EarlyStopping:
    """What a run tracks of ``metric``: the best value and step, and the evals since the last
    improvement. ``patience`` 0: never asks to stop."""

    metric: str
    mode: str  # "min" or "max"
    patience: int = 0
    min_delta: float = 0.0
    best_value: float | None = None
    best_step: int | None = None
    reference: float | None = None  # the value at the last improvement by more than min_delta
    evals_since_improvement: int = 0

    @classmethod
    def from_config(cls, t: TrainConfig) -> EarlyStopping | None:
        """The tracker ``t`` asks for, or None when ``train.best_metric`` is unset."""
        if not t.best_metric:
            return None
        return cls(t.best_metric, best_mode_of(t), t.early_stopping_patience,
                   t.early_stopping_min_delta)

    def _better(self, value: float, than: float | None, margin: float = 0.0) -> bool:
        if not math.isfinite(value):
            return False
        if than is None:
            return True
        return value < than - margin if self.mode == "min" else value > than + margin

    def update(self, step: int, record: dict[str, Any]) -> None:
        """Takes the eval ``record`` (``{"eval/loss": ...}``) of ``step``."""
        value = float(record[self.metric])
        if self._better(value, self.best_value):
            self.best_value, self.best_step = value, step
        if self._better(value, self.reference, self.min_delta):
            self.reference, self.evals_since_improvement = value, 0
        else:
            self.evals_since_improvement += 1

    @property
    def should_stop(self) -> bool:
        return bool(self.patience) and self.evals_since_improvement >= self.patience

    def reason(self) -> str:
        """Why the run stops, in one line for the log."""
        return (f"{self.metric} has not improved by more than {self.min_delta:g} for "
                f"{self.evals_since_improvement} evals (train.early_stopping_patience="
                f"{self.patience}); the best, {self.best_value:.6g}, was at step "
                f"{self.best_step}")

    def rank(self, metrics: dict[str, Any]) -> float:
        """Orbax's ``best_fn``: the metric saved with a checkpoint; a checkpoint saved between
        evals (no metric) or with a non-finite one ranks last, so only the newest keep it."""
        value = float(metrics.get(self.metric, math.nan))
        if math.isfinite(value):
            return value
        return math.inf if self.mode == "min" else -math.inf

    def check_logged(self, eval_record: dict[str, Any], task: str) -> None:
        """ConfigError naming ``train.best_metric`` and the task's eval metrics unless the
        eval ``record`` holds the metric."""
        if self.metric not in eval_record:
            names = sorted(k for k in eval_record
                           if k.startswith("eval/") and not k.startswith("eval/baseline/"))
            raise ConfigError("train.best_metric", f"task {task!r} logs no {self.metric}; its "
                                                   f"eval metrics: {', '.join(names)}")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def load(self, saved: dict[str, Any] | None, step: int) -> None:
        """Takes the state saved with checkpoint ``step``, unless it tracked another metric or
        mode (then this run starts counting afresh, with a warning)."""
        if not saved:
            log.warning("checkpoint %d holds no early-stopping state: counting %s from here",
                        step, self.metric)
            return
        if (saved.get("metric"), saved.get("mode")) != (self.metric, self.mode):
            log.warning("checkpoint %d tracked %s (%s); this run tracks %s (%s) from here",
                        step, saved.get("metric"), saved.get("mode"), self.metric, self.mode)
            return
        for name in ("best_value", "best_step", "reference", "evals_since_improvement"):
            setattr(self, name, saved[name])
