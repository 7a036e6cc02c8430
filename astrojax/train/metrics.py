"""Run logging a person can read and plot: metrics.jsonl, TensorBoard events, progress."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tensorboardX import SummaryWriter
from tqdm import tqdm

log = logging.getLogger(__name__)


def _scalar(value: Any) -> float | int:
    value = np.asarray(value)
    return value.item() if value.ndim == 0 else float(value.mean())


class MetricsWriter:
    """Appends one JSON object per logged step to ``metrics.jsonl`` and mirrors it to TensorBoard.

    Only the main process writes. A resumed run appends to the same file after dropping records
    from steps past the checkpoint it resumed from, so the file reads as one clean run.
    """

    def __init__(self, workdir: str | Path, *, enabled: bool = True, resume_step: int = 0):
        self.enabled = enabled
        self.path = Path(workdir) / "metrics.jsonl"
        self._tb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= resume_step]
            self.path.write_text("".join(line + "\n" for line in kept))
        self._file = self.path.open("a")
        self._tb = SummaryWriter(str(Path(workdir) / "tensorboard"))

    def write(self, step: int, metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        record = {"step": int(step)}
        record.update({f"{prefix}{k}": _scalar(v) for k, v in metrics.items()})
        if self.enabled:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
            for name, value in record.items():
                if name != "step" and math.isfinite(value):
                    self._tb.add_scalar(name, value, step)
        return record

    def close(self) -> None:
        if self.enabled:
            self._file.close()
            self._tb.close()


class Progress:
    """A tqdm bar on a terminal; plain log lines every ``log_every`` steps otherwise."""

    def __init__(self, total: int, initial: int, enabled: bool = True):
        self.enabled = enabled  # only the main process reports progress
        self.interactive = enabled and sys.stderr.isatty()
        self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
                        disable=not self.interactive)
        self.start = time.perf_counter()

    def update(self, step: int, record: dict[str, Any] | None = None) -> None:
        self.bar.update(step - self.bar.n)
        if record is None or not self.enabled:
            return
        shown = {k: v for k, v in record.items() if k != "step"}
        if self.interactive:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()
                                  if k in ("loss", "learning_rate", "tokens_per_second")})
        else:
            text = "  ".join(f"{k}={v:.4g}" for k, v in shown.items())
            log.info("step %d  %s", step, text)

    def close(self) -> None:
        self.bar.close()
