"""A deep ensemble of fusion models (Lakshminarayanan et al. 2017): k runs of one config that
differ only in their seeds, calibrated together on val.

``train_ensemble(cfg, folder, k)`` trains member ``i`` in ``folder/member_i`` with
``train.seed`` and ``data.shuffle_seed`` raised by ``i`` (another initialization, modality
dropout and batch order; the same data, split and everything else), so every member is an
ordinary fusion workdir that ``load_trained`` and ``python -m astrojax.predict`` read.
:meth:`Ensemble.calibrate` fits one temperature per binary label on the val planets
(:func:`~astrojax.metacognition.calibration.fit_temperature`) and the confidence threshold
that keeps ``coverage`` of them, and writes both to ``folder/calibration.json``; ``load_ensemble``
reads them back. A single workdir loads as an ensemble of one (temperature 1 until calibrated).

The members run as one function: their parameters are stacked along a leading axis and the
model is ``jax.vmap``-ed over it, so k members cost one compilation and one call per batch.
Batches are padded to a fixed size (one compilation for every number of planets).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
from collections.abc import Mapping
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from astrojax.metacognition.calibration import ensemble_probability, fit_temperature
from astrojax.metacognition.selective import max_probability, threshold_for_coverage
from astrojax.train.restore import TrainedModel, load_trained
from astrojax.train.workdir import WorkdirError

CALIBRATION_FILE = "calibration.json"
BINARY_LABELS = ("habitable", "biosignature")
_CHUNK = 256  # planets per model call


def member_config(cfg, index: int):
    """Member ``index``'s config: ``cfg`` with ``train.seed`` and ``data.shuffle_seed`` raised
    by ``index``."""
    out = copy.deepcopy(cfg)
    out.train.seed = cfg.train.seed + index
    out.data.shuffle_seed = cfg.data.shuffle_seed + index
    return out


def train_ensemble(cfg, folder: str | Path, size: int, devices=None) -> Ensemble:
    """Trains (or resumes) ``size`` members of ``cfg`` (a fusion config) in
    ``folder/member_i`` and loads them as an :class:`Ensemble` (not yet calibrated)."""
    from astrojax.train.loop import train_and_evaluate

    if cfg.task != "fusion":
        raise ValueError(f"an ensemble is of fusion models, got task {cfg.task!r}")
    if size < 1:
        raise ValueError(f"ensemble size must be at least 1, got {size}")
    folder = Path(folder)
    for i in range(size):
        workdir = folder / f"member_{i}"
        if _finished_step(workdir) < cfg.train.steps:  # a finished member is not run again
            train_and_evaluate(member_config(cfg, i), workdir, devices=devices)
    return load_ensemble(folder)


def _finished_step(workdir: Path) -> int:
    """The newest complete checkpoint's step in ``workdir`` (Orbax names a finished one by
    its step; one being written has a temporary name), -1 if none."""
    folder = workdir / "checkpoints"
    steps = [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() \
        else []
    return max(steps, default=-1)


def load_ensemble(path: str | Path | TrainedModel) -> Ensemble:
    """The ensemble in ``path``: its ``member_*`` workdirs, or ``path`` itself when it is one
    fusion workdir (an ensemble of one); the calibration in ``path/calibration.json`` if any."""
    if isinstance(path, TrainedModel):
        return Ensemble.of([path])
    path = Path(path)
    folders = sorted((p for p in path.glob("member_*") if p.is_dir()),
                     key=lambda p: int(p.name.split("_")[1]) if p.name.split("_")[1].isdigit()
                     else -1)
    members = [load_trained(f, task="fusion") for f in folders] if folders else \
        [load_trained(path, task="fusion")]
    ensemble = Ensemble.of(members, folder=path)
    file = path / CALIBRATION_FILE
    if file.exists():
        try:
            saved = json.loads(file.read_text())
            ensemble.temperature = {k: float(v) for k, v in saved["temperature"].items()}
            ensemble.threshold = {k: float(v) for k, v in saved.get("threshold", {}).items()}
            ensemble.coverage = float(saved.get("coverage", ensemble.coverage))
        except (ValueError, KeyError, TypeError) as err:
            raise WorkdirError(f"{file}: not a calibration file ({err})") from None
    return ensemble


@dataclasses.dataclass
class Ensemble:
    """k fusion models of one config (:func:`train_ensemble`), their temperatures and
    confidence thresholds per binary label."""

    members: list[TrainedModel]
    params: nnx.State                    # the members' parameters, stacked on axis 0
    folder: Path | None = None
    temperature: dict[str, float] = dataclasses.field(default_factory=dict)
    threshold: dict[str, float] = dataclasses.field(default_factory=dict)
    coverage: float = 0.8

    @classmethod
    def of(cls, members: list[TrainedModel], folder: Path | None = None) -> Ensemble:
        if not members:
            raise WorkdirError(f"{folder}: no ensemble members (member_0, ...)")
        first = members[0]
        for other in members[1:]:
            if member_config(other.config, 0).model != first.config.model or \
                    dataclasses.replace(other.config.data, shuffle_seed=0) != \
                    dataclasses.replace(first.config.data, shuffle_seed=0):
                raise WorkdirError(f"{other.workdir} is not a member of {first.workdir}'s "
                                   "ensemble: its model or data config differs")
        stacked = jax.tree.map(lambda *x: jnp.stack(x), *[m.params for m in members])
        return cls(list(members), stacked, folder)

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def task(self):
        return self.members[0].task

    @property
    def labels(self) -> tuple[str, ...]:
        classes = dict(self.task.model_config.classes)
        return tuple(name for name in BINARY_LABELS if classes.get(name) == 2)

    @functools.cached_property
    def _run(self):
        graphdef, labels = self.members[0].graphdef, self.labels

        @jax.jit
        def run(params, batch, keep):
            def one(p):
                out = nnx.merge(graphdef, p)(batch, keep)
                return {name: out[f"logits/{name}"] for name in labels}

            return jax.vmap(one)(params)

        return run

    # ---- logits
    def logits(self, inputs: Mapping[str, np.ndarray], keep: Mapping[str, np.ndarray] | None = None
               ) -> dict[str, np.ndarray]:
        """Per binary label the members' logits ``[members, n]`` for per-planet ``inputs``
        (``[n, ...]`` each: the row, the spectrum, embedding inputs; labels, as in
        ``task.arrays``, are left out); the modalities the model packs (cubes, networks,
        notes), and embedding inputs not given, are absent. ``keep``: per modality ``[n]``
        bool, hides it."""
        m = self.task.model_config
        labels = [name for name, _ in m.classes] + list(m.retrieval_targets)
        skip = {"planet", *labels, *(f"{name}_known" for name in labels)}
        inputs = {k: np.asarray(v) for k, v in inputs.items() if k not in skip}
        n = len(inputs["row_values"])
        for name, width in m.embedding_inputs:  # not given: absent, as modality dropout trained
            if name not in inputs:
                inputs[name] = np.zeros((n, width), np.float32)
                inputs[f"has_{name}"] = np.zeros(n, bool)
        absent = self.members[0].model.absent_inputs(_CHUNK)
        return self._chunked(n, lambda idx: {**{k: v[idx] for k, v in inputs.items()}, **absent},
                             keep)

    def planet_logits(self, rows: np.ndarray, split: str = "val",
                      keep: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Per binary label the members' logits ``[members, len(rows)]`` for table rows ``rows``
        with every modality they have (``task.batch``: packed ones included)."""
        rows = np.asarray(rows)
        return self._chunked(len(rows), lambda idx: self.task.batch(rows[idx], split), keep)

    def _chunked(self, n: int, make_batch, keep) -> dict[str, np.ndarray]:
        g = self.task.cfg.data.group_size
        chunk = -(-_CHUNK // g) * g  # one shape for every call: one compilation
        out: dict[str, list] = {name: [] for name in self.labels}
        for start in range(0, n, chunk):
            idx = np.minimum(np.arange(start, start + chunk), n - 1)  # pad with the last planet
            valid = min(chunk, n - start)
            kept = None if keep is None else {k: jnp.asarray(np.asarray(v)[idx])
                                               for k, v in keep.items()}
            batch = {k: jnp.asarray(v) for k, v in make_batch(idx).items()}
            got = jax.device_get(self._run(self.params, batch, kept))
            for name in self.labels:
                out[name].append(np.asarray(got[name], np.float64)[:, :valid])
        return {name: np.concatenate(v, axis=1) if v else np.zeros((self.size, 0))
                for name, v in out.items()}

    # ---- probabilities
    def probability(self, logits: np.ndarray, label: str, calibrated: bool = True) -> np.ndarray:
        """The ensemble's predictive probability of ``label`` from its members' logits, with
        the label's fitted temperature (1 before :meth:`calibrate` or with ``calibrated``
        False)."""
        t = self.temperature.get(label, 1.0) if calibrated else 1.0
        return ensemble_probability(logits, t)

    def calibrate(self, coverage: float = 0.8, split: str = "val", write: bool = True) -> dict:
        """Fits each binary label's temperature on ``split``'s planets (those whose label is
        known) and the confidence threshold that keeps ``coverage`` of them; writes
        ``calibration.json`` into the ensemble's folder. Returns what it wrote."""
        task = self.task
        rows = task.split[split]
        logits = self.planet_logits(rows, split)
        arrays = task.arrays
        for name in self.labels:
            known = arrays[f"{name}_known"][rows] > 0
            self.temperature[name] = fit_temperature(logits[name][:, known],
                                                     arrays[name][rows][known])
            p = self.probability(logits[name][:, known], name)
            self.threshold[name] = threshold_for_coverage(max_probability(p), coverage)
        self.coverage = coverage
        saved = {"temperature": self.temperature, "threshold": self.threshold,
                 "coverage": coverage, "fitted_on": f"{split} split, {len(rows)} planets",
                 "members": [str(m.workdir) for m in self.members]}
        if write and self.folder is not None:
            (self.folder / CALIBRATION_FILE).write_text(json.dumps(saved, indent=1) + "\n")
        return saved
