"""Language modelling on the planet descriptions: a byte-level transformer, next-token loss."""

from __future__ import annotations

import functools
import itertools
import textwrap
from collections.abc import Iterable

import grain
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from astrojax.config import ConfigError
from astrojax.data.generator.notes import observing_notes
from astrojax.data.generator.observe import observe_catalogue
from astrojax.data.pipeline import text_dataset
from astrojax.data.planets import SPLITS, TextSource
from astrojax.data.tokenizer import ByteTokenizer
from astrojax.evaluators import NGramModel, language_model_from_sums
from astrojax.models.decode import generate_text
from astrojax.models.transformer import Transformer, next_token_stats
from astrojax.tasks.base import Batch, Metrics, PlanetTask


class LanguageModelTask(PlanetTask):
    """Trains the transformer to write the built-in planets' descriptions (or, with
    ``data.corpus="notes"``, their observing notes).

    Trains on the descriptions of the train split's planets (``planets``); evaluates on the val
    split's, and once on test after the last step. Baselines on the same held-out targets: the
    uniform distribution over the tokenizer's ids, a unigram model and an 8-gram (Witten-Bell)
    model counted on the training texts. Order 8 had the lowest held-out loss of orders 1-16 on
    the quickstart data, which favours the baseline, not the transformer.
    """

    ngram_order = 8

    throughput_key = "tokens"
    loss_weight_key = "target_tokens"  # the loss is a mean over target tokens
    tokenizer = ByteTokenizer()

    def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
        return Transformer(self.cfg.model, rngs=rngs)

    @functools.cached_property
    def _texts(self) -> dict[str, list[str]]:
        if self.cfg.data.corpus == "notes":
            seed = self.cfg.planets.seed
            catalogue = observe_catalogue(self.table.population, seed)
            return {name: observing_notes(catalogue, seed, self.split[name]) for name in SPLITS}
        return {name: TextSource(self.table, self.split[name]).texts() for name in SPLITS}

    def texts(self, split: str) -> list[str]:
        """The texts of the planets in ``split``, in table order."""
        return self._texts[split]

    def _dataset(self, texts, process_index, process_count, **kwargs) -> grain.IterDataset:
        d, t = self.cfg.data, self.cfg.train
        return text_dataset(
            texts, seq_len=d.seq_len, batch_size=t.global_batch_size // process_count,
            packing=d.packing, process_index=process_index, process_count=process_count,
            tokenizer=self.tokenizer, **kwargs)

    def train_data(self, process_index: int, process_count: int) -> grain.IterDataset:
        return self._dataset(self.texts("train"), process_index, process_count,
                             seed=self.cfg.data.shuffle_seed, shuffle=True, num_epochs=None)

    def eval_data(self, process_index: int, process_count: int,
                  split: str = "val") -> Iterable[dict[str, np.ndarray]]:
        texts = self.texts(split)
        batches = []
        if texts:
            ds = self._dataset(texts, process_index, process_count, shuffle=False, num_epochs=1)
            batches = list(itertools.islice(iter(ds), self.cfg.train.eval_batches))
        if self.cfg.train.eval_batches and not batches and (split == "val" or texts):
            p = self.cfg.planets
            raise ConfigError(f"planets.{split}_fraction",
                              f"the {len(texts)} {split} texts ({getattr(p, f'{split}_fraction')}"
                              f" of planets.num_planets={p.num_planets}) fill less than one eval "
                              f"batch of {self.cfg.train.global_batch_size} x "
                              f"{self.cfg.data.seq_len} tokens; hold out more planets or set "
                              "train.eval_batches=0")
        return batches

    def _forward(self, model: nnx.Module, batch: Batch) -> jax.Array:
        return model(batch["tokens"], positions_bt=batch["positions"],
                     segment_ids_bt=batch["segment_ids"])

    def loss(self, model: nnx.Module, batch: Batch, rng: jax.Array,
             step: jax.Array) -> tuple[jax.Array, Metrics]:
        del rng, step  # deterministic model (no dropout), constant loss
        stats = next_token_stats(self._forward(model, batch), batch)
        count = jnp.maximum(stats["count"], 1.0)
        loss = stats["nll_sum"] / count
        return loss, {"accuracy": stats["correct"] / count, "target_tokens": stats["count"]}

    def eval_sums(self, model: nnx.Module, batch: Batch) -> Metrics:
        return next_token_stats(self._forward(model, batch), batch)

    def baselines(self, split: str = "val") -> dict[str, float]:
        batches = self.eval_data(0, 1, split)  # the whole held-out set, as the evals see it
        if not batches:
            return {}
        rows = np.concatenate([b["tokens"] for b in batches])
        segments = np.concatenate([b["segment_ids"] for b in batches])
        docs = [self.tokenizer.encode(text) for text in self.texts("train")]
        out = {"uniform/loss": float(np.log(self.tokenizer.vocab_size))}
        for name, order in (("unigram", 1), (f"ngram{self.ngram_order}", self.ngram_order)):
            model = NGramModel(order, self.tokenizer.vocab_size).fit(docs)
            metrics = self.finalize_eval(model.score(*model.contexts_of(rows, segments)))
            out.update({f"{name}/{k}": v for k, v in metrics.items()})
        return out

    def finalize_eval(self, sums: dict[str, float]) -> dict[str, float]:
        return language_model_from_sums(sums)

    def showcase(self, model: nnx.Module, mesh: jax.sharding.Mesh, rules) -> str:
        """The description the model writes (greedy) for the first held-out planet, prompted
        with the first sentence of its true one, beside the truth. It writes at most as far as
        the training rows reach (``data.seq_len``): beyond, positions were never trained."""
        texts = self.texts("test") or self.texts("val")
        if not texts:
            return ""
        truth = texts[0]
        end = truth.find(". ")
        prompt = truth[:end + 1] if end >= 0 else truth[:len(truth) // 4]
        budget = self.cfg.data.seq_len - len(self.tokenizer.encode(prompt, add_eos=False))
        if budget < 1:
            return ""
        written = generate_text(model, self.tokenizer, [prompt], max_new_tokens=budget,
                                mesh=mesh, rules=rules)[0]
        split = "test" if self.texts("test") else "val"

        def block(label: str, text: str) -> str:
            return textwrap.fill(text, 100, initial_indent=f"{label:>8}  ",
                                 subsequent_indent=" " * 10)

        return "\n".join([
            f"A held-out planet ({split} split); the model continues the first sentence of its "
            "description (greedy):",
            block("prompt", prompt), block("model", written), block("truth", truth[len(prompt):]),
        ])
