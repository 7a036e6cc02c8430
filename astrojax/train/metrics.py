"""Run logging a person can read and plot: metrics.jsonl, TensorBoard events, progress."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import jax
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


def device_memory(devices=None) -> dict[str, int]:
    """Memory in use now and at its peak, in bytes, on the local device using the most, where
    the backend reports it (GPU, TPU; ``memory_stats()`` is None on CPU: then nothing)."""
    stats = [d.memory_stats() for d in (devices or jax.local_devices())]
    stats = [s for s in stats if s]
    out = {}
    for key, name in (("bytes_in_use", "memory/bytes_in_use"),
                      ("peak_bytes_in_use", "memory/peak_bytes_in_use"),
                      ("bytes_limit", "memory/bytes_limit")):
        values = [s[key] for s in stats if key in s]
        if values:
            out[name] = int(max(values))
    return out


class ProfileWindow:
    """Writes a ``jax.profiler`` trace of steps ``start + 1 .. start + steps`` (as the loop
    counts them after each update) under ``directory`` (TensorBoard's profile plugin reads
    ``tensorboard/plugins/profile``; a Perfetto trace is written beside it). Each step is
    annotated (``StepTraceAnnotation``), so the viewers split the trace by step."""

    def __init__(self, directory: str | Path, start: int, steps: int):
        self.directory, self.start, self.end = Path(directory), start, start + steps
        self.active = False

    def annotation(self, step: int):
        """A context for the step that will be ``step + 1``: starts the trace at the window's
        first step, annotates the steps inside it."""
        if self.start <= step < self.end:
            if not self.active:
                jax.profiler.start_trace(str(self.directory), create_perfetto_trace=True)
                self.active = True
                log.info("profiling steps %d-%d into %s", step + 1, self.end, self.directory)
            return jax.profiler.StepTraceAnnotation("train", step_num=step + 1)
        return contextlib.nullcontext()

    def after(self, step: int, outputs) -> None:
        """Stops the trace once step ``step`` (the window's last) has finished on the device."""
        if self.active and step >= self.end:
            jax.block_until_ready(outputs)
            self.close()

    def close(self) -> None:
        if self.active:
            jax.profiler.stop_trace()
            self.active = False
            log.info("profile written to %s", self.directory)
