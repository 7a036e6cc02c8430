"""Task describe: the language model writes a planet's description from the planet's data.

The model (:class:`~astrojax.models.describe.PlanetDescriber`): the fusion model's planet
embedding -> a learned projector -> ``model.prefix_tokens`` soft-prompt vectors -> the
language model, trained to write the planet's description after them (``prefix_tokens=0``:
the same language model with no prefix, the control). The fusion model is built as the fusion
task builds it and, with ``model.fusion_init``, is that fusion run's, warm-started from it and
frozen unless ``model.train_fusion``; the language model is ``model.lm_init``'s (an ``lm`` run,
such as the quickstart's) or ``model.lm``, from scratch.

Inputs: what the fusion task feeds for a planet (its batches, made by a
:class:`~astrojax.tasks.fusion.FusionTask` of the same planets and data), plus the planet's
description (the built-in templated text, :func:`astrojax.data.generator.describe_planet`) as
byte tokens, one per row: BOS, the bytes, EOS, padded to ``data.description_length``. The loss
is the next-token cross-entropy on the description's tokens after the prefix (BOS is the
prompt, padding is never a target). One split for everything (``planets``); the warm-start runs
must have read the same planets and split, so held-out planets are held out of them too.

Evaluation (val every ``train.eval_every``, test once at the end): the loss in nats per byte,
next-byte accuracy, perplexity and bits per byte on the held-out planets' descriptions, beside
the uniform, unigram and 8-gram models of the training descriptions on the same bytes. What a
generated description gets right (its climate regime, biosphere, habitability, biosignature)
is measured by ``benchmarks/describe.py`` with :func:`astrojax.data.generator.text.
read_description`.
"""

from __future__ import annotations

import dataclasses
import functools
import textwrap
from collections.abc import Iterable

import grain
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from astrojax.config import (
    DEFAULT_LOGICAL_AXIS_RULES,
    Config,
    ConfigError,
    FusionDataConfig,
    LoaderConfig,
)
from astrojax.data.generator.text import read_description
from astrojax.data.planets import PlanetSplit, PlanetTable
from astrojax.data.tokenizer import ByteTokenizer
from astrojax.evaluators import NGramModel, language_model_from_sums
from astrojax.models.decode import generate
from astrojax.models.describe import PlanetDescriber, prefixed_next_token_stats
from astrojax.models.transformer import Transformer
from astrojax.tasks.base import Batch, Metrics, PlanetTask, WarmStart, run_config
from astrojax.tasks.fusion import FusionTask

_LOADER_FIELDS = tuple(f.name for f in dataclasses.fields(LoaderConfig))
# the fusion inputs' fields of the data section (those a fusion run's data must share)
_FUSION_INPUT_FIELDS = tuple(f.name for f in dataclasses.fields(FusionDataConfig)
                             if f.name not in _LOADER_FIELDS)


class DescribeTask(PlanetTask):
    """The planet-conditioned language model (see the module docstring)."""

    throughput_key = "description"
    loss_weight_key = "target_tokens"  # the loss is a mean over description tokens
    tokenizer = ByteTokenizer()
    ngram_order = 8  # the language model task's baseline order

    # ---- the runs it starts from
    @functools.cached_property
    def fusion_run(self) -> Config | None:
        """The config of ``model.fusion_init``'s run (None when empty), checked: the same
        planets and split, and the same fusion inputs in ``data``."""
        workdir = self.cfg.model.fusion_init
        if not workdir:
            return None
        run = run_config("model.fusion_init", workdir, "fusion", "the fusion model starts from")
        self._check_planets("model.fusion_init", run)
        for name in _FUSION_INPUT_FIELDS:
            ours, theirs = getattr(self.cfg.data, name), getattr(run.data, name)
            if ours != theirs:
                raise ConfigError(f"data.{name}", f"{ours!r} is not that of the fusion run "
                                                  f"model.fusion_init={workdir!r} ({theirs!r}), "
                                                  "whose inputs the fusion model reads; set it "
                                                  "to that")
        return run

    @functools.cached_property
    def lm_run(self) -> Config | None:
        """The config of ``model.lm_init``'s run (None when empty), checked: the same planets
        and split (its training texts are the train planets' descriptions)."""
        workdir = self.cfg.model.lm_init
        if not workdir:
            return None
        run = run_config("model.lm_init", workdir, "lm", "the language model starts from")
        self._check_planets("model.lm_init", run)
        return run

    def _check_planets(self, key: str, run: Config) -> None:
        if run.planets != self.cfg.planets:
            raise ConfigError(key, f"{getattr(self.cfg.model, key.split('.')[1])} read other "
                                   f"planets or another split ({run.planets}) than this run "
                                   f"({self.cfg.planets}): its training planets could be this "
                                   "run's held-out ones; use a run of the same planets")

    @functools.cached_property
    def lm_config(self):
        return self.lm_run.model if self.lm_run else self.cfg.model.lm

    @functools.cached_property
    def fusion(self) -> FusionTask:
        """The fusion task that makes the batches' fusion inputs and builds the fusion model:
        ``model.fusion_init``'s model, or ``model.fusion``, on this run's planets, data and
        batches."""
        d = self.cfg.data
        model = self.fusion_run.model if self.fusion_run else self.cfg.model.fusion
        data = FusionDataConfig(**{f.name: getattr(d, f.name)
                                   for f in dataclasses.fields(FusionDataConfig)})
        return FusionTask(Config(task="fusion", model=model, data=data, planets=self.cfg.planets,
                                 optim=self.cfg.optim, train=self.cfg.train, mesh=self.cfg.mesh))

    @property
    def table(self) -> PlanetTable:  # one population for the fusion inputs and the texts
        return self.fusion.table

    @property
    def split(self) -> PlanetSplit:
        return self.fusion.split

    # ---- model
    def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
        m = self.cfg.model
        fusion = self.fusion.build_model(rngs) if m.prefix_tokens else None
        return PlanetDescriber(Transformer(self.lm_config, rngs=rngs), fusion,
                               prefix_tokens=m.prefix_tokens,
                               fusion_dim=self.fusion.model_config.d_model,
                               projector_dim=m.projector_dim, train_fusion=m.train_fusion,
                               rngs=rngs)

    def warm_start(self) -> WarmStart | None:
        """The fusion model from ``model.fusion_init`` (all of it, heads included: they are
        what its embedding was trained for), the language model from ``model.lm_init``."""
        parts = {}
        if self.fusion_run is not None and self.cfg.model.prefix_tokens:
            parts["fusion"] = (self.cfg.model.fusion_init, "")
        if self.lm_run is not None:
            parts["lm"] = (self.cfg.model.lm_init, "")
        return WarmStart(parts) if parts else None

    def trainable(self, path: tuple[str, ...]) -> bool:
        return self.cfg.model.train_fusion or path[:1] != ("fusion",)

    # ---- data
    @functools.cached_property
    def descriptions(self) -> dict[str, np.ndarray]:
        """Every planet's description as ``{"description": [planets, length] int32 (BOS, bytes,
        EOS, padding), "description_mask": [planets, length] bool}`` and the texts."""
        length = self.cfg.data.description_length
        texts = self.table.population.descriptions()
        tokens = np.full((len(texts), length), self.tokenizer.pad_id, np.int32)
        for i, text in enumerate(texts):
            ids = self.tokenizer.encode(text)
            if len(ids) > length:
                raise ConfigError("data.description_length",
                                  f"{length} tokens do not hold the description of planet "
                                  f"{self.table.ids[i]} ({len(ids)} with BOS and EOS); raise it")
            tokens[i, :len(ids)] = ids
        return {"description": tokens, "description_mask": tokens != self.tokenizer.pad_id,
                "texts": np.array(texts, dtype=object)}

    def _with_descriptions(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = batch["planet"]
        return {**batch, "description": self.descriptions["description"][rows],
                "description_mask": self.descriptions["description_mask"][rows]}

    def train_data(self, process_index: int, process_count: int) -> grain.IterDataset:
        return self.fusion.train_data(process_index, process_count).map(self._with_descriptions)

    def eval_data(self, process_index: int, process_count: int,
                  split: str = "val") -> Iterable[dict[str, np.ndarray]]:
        return [self._with_descriptions(b)
                for b in self.fusion.eval_data(process_index, process_count, split)]

    def artifacts(self) -> dict:
        return {**self.fusion.artifacts(),
                "description_length": self.cfg.data.description_length}

    def microbatch_units(self) -> int:
        return self.fusion.microbatch_units()  # the fusion inputs' packing groups

    def count_items(self, batch: dict[str, np.ndarray]) -> int:
        """Description tokens (bytes) of the batch."""
        return int(batch["description_mask"].sum())

    # ---- objective
    def _stats(self, model: nnx.Module, batch: Batch) -> Metrics:
        logits = model(batch, batch["description"])
        return prefixed_next_token_stats(logits, batch["description"],
                                         batch["description_mask"])

    def loss(self, model: nnx.Module, batch: Batch, rng: jax.Array,
             step: jax.Array) -> tuple[jax.Array, Metrics]:
        del rng, step  # no dropout: the frozen fusion model reads every modality a planet has
        stats = self._stats(model, batch)
        count = jnp.maximum(stats["count"], 1.0)
        return stats["nll_sum"] / count, {"accuracy": stats["correct"] / count,
                                          "target_tokens": stats["count"]}

    def eval_sums(self, model: nnx.Module, batch: Batch) -> Metrics:
        return self._stats(model, batch)

    def finalize_eval(self, sums: dict[str, float]) -> dict[str, float]:
        return language_model_from_sums(sums)

    def baselines(self, split: str = "val") -> dict[str, float]:
        """The uniform distribution over the tokenizer's ids, and unigram and 8-gram
        (Witten-Bell) models counted on the train planets' descriptions, on the same held-out
        bytes the evals score."""
        batches = self.eval_data(0, 1, split)
        if not batches:
            return {}
        rows = np.concatenate([b["description"] for b in batches])
        segments = np.concatenate([b["description_mask"] for b in batches]).astype(np.int32)
        d = self.descriptions
        docs = [t[m] for t, m in zip(d["description"][self.split.train],
                                     d["description_mask"][self.split.train], strict=True)]
        out = {"uniform/loss": float(np.log(self.tokenizer.vocab_size))}
        for name, order in (("unigram", 1), (f"ngram{self.ngram_order}", self.ngram_order)):
            ngram = NGramModel(order, self.tokenizer.vocab_size).fit(docs)
            metrics = self.finalize_eval(ngram.score(*ngram.contexts_of(rows, segments)))
            out.update({f"{name}/{k}": v for k, v in metrics.items()})
        return out

    # ---- what the trained model writes
    def write_tokens(self, model: nnx.Module, batch: dict[str, np.ndarray], *,
                     temperature: float = 0.0, rng: jax.Array | None = None,
                     mesh: jax.sharding.Mesh | None = None,
                     rules=DEFAULT_LOGICAL_AXIS_RULES) -> list[np.ndarray]:
        """The token ids ``model`` writes after BOS for each planet of ``batch`` (a batch of
        this task's data; EOS left out): its prefix of the planet, then BOS, continued by
        :func:`astrojax.models.generate` (greedy by default) until EOS or
        ``data.description_length`` tokens."""
        prefix = _prefix(model, {k: v for k, v in batch.items()
                                 if not k.startswith("description")})
        return generate(model.lm, [[self.tokenizer.bos_id]] * len(batch["planet"]),
                        max_new_tokens=self.cfg.data.description_length - 1,
                        stop_tokens=(self.tokenizer.eos_id,), temperature=temperature, rng=rng,
                        vocab_limit=self.tokenizer.vocab_size, prefix_bpd=prefix,
                        pad_id=self.tokenizer.pad_id, mesh=mesh, rules=rules).tokens

    def write_descriptions(self, model: nnx.Module, batch: dict[str, np.ndarray],
                           **kwargs) -> list[str]:
        """:meth:`write_tokens` as text."""
        return [self.tokenizer.decode(ids) for ids in self.write_tokens(model, batch, **kwargs)]

    def showcase(self, model: nnx.Module, mesh: jax.sharding.Mesh, rules) -> str:
        """The description the model writes (greedy) for the first held-out planet, from its
        data alone, beside the true one, and the facts each states."""
        split = "test" if self.fills_eval_batch("test", len(self.split.test)) else "val"
        batches = self.eval_data(0, 1, split)
        if not batches:
            return ""
        batch = batches[0]
        written = self.write_descriptions(model, batch, mesh=mesh, rules=rules)[0]
        truth = str(self.descriptions["texts"][batch["planet"][0]])

        def block(label: str, text: str) -> str:
            facts = ", ".join(f"{k}={v}" for k, v in read_description(text).items())
            return "\n".join([textwrap.fill(text, 100, initial_indent=f"{label:>8}  ",
                                             subsequent_indent=" " * 10),
                               " " * 10 + f"(reads as {facts})"])

        how = (f"from its data ({self.cfg.model.prefix_tokens} prefix vectors)"
               if self.cfg.model.prefix_tokens else "with no prefix (the control)")
        return "\n".join([f"A held-out planet ({split} split); the model describes it {how}, "
                          "greedy:", block("model", written), block("truth", truth)])


@nnx.jit
def _prefix(model: PlanetDescriber, batch: dict) -> jax.Array | None:
    return model.prefix(batch)
