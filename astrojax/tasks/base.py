"""The task interface: what a training run needs from a model family, chosen by ``config.task``.

The train loop knows nothing about transformers, graphs or datacubes. A task builds the model,
the train and eval data, and gives a pure loss and pure eval metrics; the loop jits, shards,
logs and checkpoints around them. New model families register a task and reuse the loop.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import json
import logging
from collections.abc import Iterable
from pathlib import Path

import grain
import jax
import numpy as np
from flax import nnx

from astrojax.config import Config, ConfigError, from_dict
from astrojax.data.planets import PlanetSplit, PlanetTable, planet_split
from astrojax.sharding import check_divisible

log = logging.getLogger(__name__)
Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class WarmStart:
    """Where a fresh model's parameters come from: ``parts`` maps a prefix of the model's
    parameter paths ("/"-joined; "" is the whole model) to ``(workdir, source prefix)``: every
    parameter under the prefix takes the value at the same path under the source prefix in
    that run's newest checkpoint. Parameters under a prefix of ``fresh`` keep their
    initialization (a fine-tuned model's new heads)."""

    parts: dict[str, tuple[str, str]]
    fresh: tuple[str, ...] = ()


def run_config(key: str, workdir: str, task: str, use: str = "it must be") -> Config:
    """The config of the run in ``workdir`` (its ``config.json``), which must be a run of
    ``task``; a ConfigError naming ``key`` (the field that named the workdir) otherwise,
    saying "... is a 'lm' run; USE a 'fusion' run"."""
    path = Path(workdir) / "config.json"
    try:
        source = from_dict(Config, json.loads(path.read_text()))
    except (OSError, ValueError, ConfigError) as err:
        raise ConfigError(key, f"cannot read the run's config {path}: {err}") from err
    if source.task != task:
        raise ConfigError(key, f"{workdir} is a {source.task!r} run; {use} a {task!r} run")
    return source


class Task(abc.ABC):
    """One kind of training: model, data, loss and evaluation for a :class:`Config`."""

    #: Name of the batch entry whose size counts as "tokens" (or items) for throughput.
    throughput_key: str = "tokens"

    #: The entry of :meth:`loss`'s metrics that counts what the loss is a mean over (target
    #: tokens, say). With gradient accumulation (``optim.accumulation_steps``) each
    #: microbatch's loss, gradient and metrics are weighted by it, so the accumulated step
    #: equals the whole batch's; that entry itself is summed. None: equal weights (a loss that
    #: is a mean over a microbatch's units).
    loss_weight_key: str | None = None

    def __init__(self, cfg: Config):
        self.cfg = cfg

    @abc.abstractmethod
    def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
        """A freshly initialised model. Must hold only ``nnx.Param`` state."""

    @abc.abstractmethod
    def train_data(self, process_index: int, process_count: int) -> grain.IterDataset:
        """An endless dataset of this process's slices of the global train batches (numpy).
        The arguments name a block of rows, not always a process: the loop passes
        ``Program.data_block()``, the block this process's devices hold and how many blocks
        there are (processes whose devices hold the same rows get the same block)."""

    @abc.abstractmethod
    def eval_data(self, process_index: int, process_count: int,
                  split: str = "val") -> Iterable[dict[str, np.ndarray]]:
        """A finite, deterministic iterable of this process's slices of the eval batches of
        ``split`` ("val": the periodic evals; "test": scored once, after the last step)."""

    @abc.abstractmethod
    def loss(self, model: nnx.Module, batch: Batch, rng: jax.Array,
             step: jax.Array) -> tuple[jax.Array, Metrics]:
        """Pure: the scalar training loss and a dict of scalar metrics to log. ``step`` is the
        number of updates made so far (for loss schedules such as a KL warm-up)."""

    @abc.abstractmethod
    def eval_sums(self, model: nnx.Module, batch: Batch) -> Metrics:
        """Pure: additive statistics of one eval batch (sums and counts; scalars or vectors,
        which the loop adds elementwise)."""

    @abc.abstractmethod
    def finalize_eval(self, sums: dict[str, float]) -> dict[str, float]:
        """Eval metrics from statistics summed over all eval batches."""

    def artifacts(self) -> dict:
        """JSON-ready facts about the data the model depends on (normalization statistics),
        saved with every checkpoint. Default: none."""
        return {}

    def warm_start(self) -> WarmStart | None:
        """Parts of the model a fresh run takes from other runs instead of their random
        initialization (an encoder from a single-modality run, a pretrained model). Not used
        when the run resumes from its own checkpoint. Default: none."""
        return None

    def trainable(self, path: tuple[str, ...]) -> bool:
        """Whether the optimizer updates the parameter at ``path`` (its names, "/"-joined in
        ``WarmStart``). A frozen parameter keeps its value: no update, no weight decay, no
        optimizer moments. Default: every parameter is trained."""
        del path
        return True

    def baselines(self, split: str = "val") -> dict[str, float]:
        """The best closed-form rules and simplest fair models on the same held-out set that
        :meth:`finalize_eval` scores, keyed ``"RULE/METRIC"`` with the same metric names (for
        example ``"majority/accuracy"``). A learned metric is a result only beside these: the
        loop logs them with every eval as ``eval/baseline/RULE/METRIC`` (``test/baseline/...``
        for split "test"). Computed once per split; no learning from held-out data. Default:
        none."""
        return {}

    def final_eval(self, embed_fn, params, shard) -> dict[str, float]:
        """Evaluations that need the whole trained model at once (linear probes, for example),
        run after the last step. ``embed_fn(params, batch)`` is the jitted :meth:`embed`;
        ``shard`` places a local numpy batch on the mesh. Default: none."""
        del embed_fn, params, shard
        return {}

    def showcase(self, model: nnx.Module, mesh: jax.sharding.Mesh, rules) -> str:
        """Text that shows a person what the trained ``model`` learned (printed by ``python -m
        astrojax.train`` after the last step and written to the workdir's showcase.txt).
        ``model`` is sharded over ``mesh`` by ``rules``. Default: nothing."""
        del model, mesh, rules
        return ""

    def embed(self, model: nnx.Module, batch: Batch) -> dict[str, jax.Array]:
        """Pure: the model's embeddings of a batch (what downstream models consume)."""
        raise NotImplementedError(f"{type(self).__name__} defines no embedding")

    def fills_eval_batch(self, split: str, size: int) -> bool:
        """Whether ``split``'s ``size`` items fill one global eval batch. A val split that does
        not is a ConfigError (the periodic evals need it); a test split that does not is
        skipped with a warning (``test/...`` is then missing from metrics.jsonl)."""
        batch = self.cfg.train.global_batch_size
        if size >= batch or not self.cfg.train.eval_batches:
            return True
        message = (f"the {size} planets of the {split} split fill less than one eval batch of "
                   f"{batch} (planets.num_planets={self.cfg.planets.num_planets}, "
                   f"planets.{split}_fraction={getattr(self.cfg.planets, f'{split}_fraction')})")
        if split == "val":
            raise ConfigError(f"planets.{split}_fraction", f"{message}; hold out more planets "
                                                          "or set train.eval_batches=0")
        log.warning("%s: not scored", message)
        return False

    def check_mesh(self, mesh_sizes: dict[str, int]) -> None:
        """Raises ConfigError if the mesh cannot shard the model's parameters: asks the model
        itself, from its abstract parameters' logical axes (no memory is allocated), and names
        the config field whose value is the offending size."""
        with nnx.use_eager_sharding(False):
            abstract = nnx.eval_shape(lambda: self.build_model(nnx.Rngs(0)))
        check_divisible(abstract, self.cfg.mesh.logical_axis_rules, mesh_sizes, self.cfg.model)
        self._check_accumulation(mesh_sizes)

    def microbatch_units(self) -> int:
        """How many independent units a global train batch holds, in order along the leading
        axis of every batch array (rows; padded graph sub-batches; packing groups): gradient
        accumulation splits a batch into microbatches of whole units. Default: its rows."""
        return self.cfg.train.global_batch_size

    def _check_accumulation(self, mesh_sizes: dict[str, int]) -> None:
        k = self.cfg.optim.accumulation_steps
        if k == 1:
            return
        axes = dict(self.cfg.mesh.logical_axis_rules).get("batch") or ()
        shards = int(np.prod([mesh_sizes[a] for a in ((axes,) if isinstance(axes, str)
                                                      else axes)]))
        units = self.microbatch_units()
        if units % (k * shards):
            raise ConfigError("optim.accumulation_steps",
                              f"task {self.cfg.task!r}: a batch of {units} units (see "
                              f"{type(self).__name__}.microbatch_units) does not split into "
                              f"{k} microbatches over {shards} batch shards")

    def count_items(self, batch: dict[str, np.ndarray]) -> int:
        """How many tokens (or items) a global batch holds, for throughput."""
        return int(np.size(batch[self.throughput_key]))


class PlanetTask(Task):
    """A task over the built-in planet population, read through the one table and split
    (``config.planets``; :mod:`astrojax.data.planets`)."""

    @functools.cached_property
    def table(self) -> PlanetTable:
        p = self.cfg.planets
        return PlanetTable.synthetic(p.num_planets, p.seed)

    @functools.cached_property
    def split(self) -> PlanetSplit:
        return planet_split(self.table.ids, self.cfg.planets)
