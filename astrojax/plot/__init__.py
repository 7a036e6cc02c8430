"""Training curves of one or several runs, from their workdirs' metrics.jsonl, in one PNG.

Panels: the train loss with the eval loss, each other eval metric, the learning rate and the
throughput (``*_per_second``); one colour per run, named by its workdir. An eval metric's
baselines (``eval/baseline/RULE/METRIC``, logged with every eval) are dashed lines in the run's
colour, and the test split's score (``test/METRIC``, once after the last step) a cross. Reads
only metrics.jsonl: no JAX, no checkpoint.

A missing, empty or corrupt metrics.jsonl is a :class:`PlotError` naming the file (a last line
still being written by a live run is skipped).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_BASELINE = "eval/baseline/"
_DASHES = ("--", ":", "-.", (0, (5, 1, 1, 1)), (0, (1, 3)))
_NOT_CURVES = ("from_step",)  # bookkeeping in eval/ and test/ records, not a metric


class PlotError(ValueError):
    """A workdir's metrics cannot be plotted; the message is one line naming the file."""


@dataclasses.dataclass(frozen=True)
class Run:
    """One workdir's metrics: ``name`` for the legend, ``records`` as logged."""

    name: str
    records: list[dict[str, Any]]

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """Steps and values of ``key`` where the run logged it."""
        rows = [(r["step"], r[key]) for r in self.records if isinstance(r.get(key), int | float)]
        return [s for s, _ in rows], [float(v) for _, v in rows]

    def keys(self) -> set[str]:
        return {k for r in self.records for k in r if k != "step"}


def read_run(workdir: str | Path, name: str | None = None) -> Run:
    """The metrics.jsonl of ``workdir``, or a PlotError naming the file."""
    path = Path(workdir) / "metrics.jsonl"
    if Path(workdir).is_file():
        raise PlotError(f"{workdir} is a file, not a workdir (a folder holding metrics.jsonl)")
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise PlotError(f"{path}: no such file (is {workdir} the workdir of a training "
                        "run?)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise PlotError(f"{path}: cannot read it ({err})") from err
    lines = text.splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                raise ValueError("not a record with an integer step")
        except ValueError as err:
            if number == len(lines) and not text.endswith("\n"):
                break  # a live run is writing this line
            raise PlotError(f"{path}: line {number} is not a metrics record "
                            f"({' '.join(str(err).split())[:120]})") from None
        records.append(record)
    if not records:
        raise PlotError(f"{path}: empty (the run has logged nothing yet)")
    return Run(name or Path(workdir).name or str(workdir), records)


def _names(workdirs: Sequence[str | Path]) -> list[str]:
    """Legend names: the folder names, or the paths as given where two names are the same."""
    short = [Path(w).resolve().name for w in workdirs]
    return [s if short.count(s) == 1 else str(w) for s, w in zip(short, workdirs, strict=True)]


def _panels(runs: Sequence[Run]) -> list[tuple[str, list[str]]]:
    """``(title, keys)`` of each panel, in order: loss, the other eval metrics, learning rate,
    throughput. Panels no run logged anything for are left out."""
    keys = set().union(*(run.keys() for run in runs))
    evals = sorted(k for k in keys if k.startswith("eval/") and not k.startswith(_BASELINE)
                   and k != "eval/loss" and k.rsplit("/", 1)[-1] not in _NOT_CURVES)
    panels = [("loss", [k for k in ("loss", "eval/loss") if k in keys])]
    panels += [(k, [k]) for k in evals]
    panels.append(("learning_rate", [k for k in ("learning_rate",) if k in keys]))
    panels.append(("throughput", sorted(k for k in keys if k.endswith("_per_second"))))
    return [(title, shown) for title, shown in panels if shown]


def _baselines(run: Run, key: str) -> list[str]:
    """The ``eval/baseline/RULE/METRIC`` keys of eval metric ``key``, by rule."""
    if not key.startswith("eval/"):
        return []
    metric = key.removeprefix("eval/")
    return sorted(k for k in run.keys()
                  if k.startswith(_BASELINE) and k.removeprefix(_BASELINE).split("/", 1)[-1]
                  == metric)


def _plot_baselines(ax, runs: Sequence[Run], keys: Sequence[str], colors) -> None:
    """The eval metrics' baselines, dashed, one dash pattern per rule: grey and once when the
    runs share them (the same held-out data), in a run's colour where its own differ."""
    rules = sorted({b.removeprefix(_BASELINE).rsplit("/", 1)[0]
                    for run in runs for key in keys for b in _baselines(run, key)})
    shown: dict[str, list[float]] = {}
    for i, run in enumerate(runs):
        for key in keys:
            for baseline in _baselines(run, key):
                rule = baseline.removeprefix(_BASELINE).rsplit("/", 1)[0]
                steps, values = run.series(baseline)
                if shown.get(rule) == values[-1:]:
                    continue  # the same value another run showed
                own = rule in shown
                shown.setdefault(rule, values[-1:])
                ax.plot(steps, values, color=colors[i % len(colors)] if own else "0.45",
                        linestyle=_DASHES[rules.index(rule) % len(_DASHES)], linewidth=1,
                        label=f"{run.name} baseline {rule}" if own else f"baseline {rule}")


def _plot_test(ax, run: Run, key: str, color, several: bool) -> None:
    """The test split's score of eval metric ``key`` as a cross at the step whose parameters
    it scored (``test/from_step``: the best step of a run with train.best_metric)."""
    test_key = "test/" + key.removeprefix("eval/")
    for record in run.records:
        if isinstance(record.get(test_key), int | float):
            step = record.get("test/from_step", record["step"])
            label = "test" if step == record["step"] else f"test (step {step}'s parameters)"
            ax.plot([step], [record[test_key]], color=color, marker="X", markersize=8,
                    linestyle="none", label=f"{run.name} {label}" if several else label)


def figure(runs: Sequence[Run]):
    """The matplotlib Figure of ``runs``' curves (Agg backend); one axes per panel, titled by
    the panel, each line labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _panels(runs)
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.6 * rows), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    several = len(runs) > 1
    for ax, (title, keys) in zip(axes.flat, panels, strict=False):
        for i, run in enumerate(runs):
            color = colors[i % len(colors)]
            for key in keys:
                steps, values = run.series(key)
                if not steps:
                    continue
                evaluated = key.startswith("eval/")
                what = {"loss": "train", "eval/loss": "eval"}.get(key, key)
                if several:
                    label = run.name if len(keys) == 1 else f"{run.name} {what}"
                else:
                    label = what
                ax.plot(steps, values, color=color, label=label,
                        marker="o" if evaluated else None, markersize=3,
                        alpha=0.7 if key == "loss" and "eval/loss" in keys else 1.0)
                if evaluated:
                    _plot_test(ax, run, key, color, several)
        _plot_baselines(ax, runs, keys, colors)
        if title == "loss" and all(min(line.get_ydata(), default=1.0) > 0
                                   for line in ax.get_lines()):
            ax.set_yscale("log")  # losses fall by orders of magnitude; the late steps matter
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        if title == "throughput":
            ax.set_ylabel(" / ".join(k.removesuffix("_per_second") for k in keys) + " per s")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.remove()
    fig.suptitle(", ".join(run.name for run in runs), fontsize=11)
    fig.tight_layout()
    return fig


def plot(workdirs: Sequence[str | Path], out: str | Path | None = None) -> Path:
    """Draws the runs in ``workdirs`` into the PNG ``out`` (default: ``plots.png`` in the
    first workdir) and returns its path."""
    if not workdirs:
        raise PlotError("no workdir given")
    runs = [read_run(w, name) for w, name in zip(workdirs, _names(workdirs), strict=True)]
    out = Path(out) if out is not None else Path(workdirs[0]) / "plots.png"
    fig = figure(runs)
    import matplotlib.pyplot as plt

    try:
        fig.savefig(out, dpi=110)
    except OSError as err:
        raise PlotError(f"cannot write {out}: {err.strerror or err}") from err
    finally:
        plt.close(fig)
    return out
