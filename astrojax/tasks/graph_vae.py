"""Graph VAE tasks: learn the built-in planets' metabolic networks, or predict links in a real one.

``graph_vae`` trains on one synthetic network per planet (``data.generator.biochem``)
and, after the last step, fits a linear probe of the biosphere class on the graph latents. Each
held-out planet's network loses ``data.link_test_fraction`` of its links to a held-out set,
absent from the graph the encoder reads, so its held-out AUC/AP/accuracy measure prediction,
not reconstruction, beside the same rules as for one network, per planet.
``graph_linkpred`` runs the VGAE link-prediction protocol on one SBML model: 10% of its
metabolite-reaction links held out for test, 5% for validation, as many non-links for each,
with non-learned baselines (L3 paths, preferential attachment) reported beside the model.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable

import grain
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from astrojax.config import ConfigError
from astrojax.data import graphs
from astrojax.data.formats.sbml import read_sbml, resolve_sbml_path
from astrojax.data.generator import BIOSPHERE_CLASSES
from astrojax.data.linkpred import (
    PAIR_FEATURES,
    LinkSplit,
    biadjacency,
    keep_pairs,
    pair_features,
    split_links,
    target_folds,
    train_network,
    unique_pairs,
)
from astrojax.data.metabolic import NUM_EDGE_FEATURES, NUM_NODE_FEATURES
from astrojax.data.planets import SPLITS, GraphSource
from astrojax.evaluators.graph_baselines import (
    graph_count_features,
    heldout_baselines,
    link_baseline_report,
)
from astrojax.evaluators.metrics import (
    accuracy_from_sums,
    accuracy_sums,
    ranking_from_sums,
    ranking_sums,
)
from astrojax.evaluators.probes import linear_probe
from astrojax.models.graph_vae import GraphVAE, elbo_loss, loss_sums
from astrojax.tasks.base import Batch, Metrics, PlanetTask, Task

# Graph-level label arrays ride along in batches (-1 for jraph's padding graph).
_LABELS = ("biosphere", "climate_regime", "habitable")
# Keys of a batch that the model and loss read; the rest are labels or evaluation pairs.
_GRAPH_KEYS = ("nodes", "pe", "edges", "senders", "receivers", "node_graph", "node_mask",
               "edge_mask", "graph_mask", "n_node", "n_edge", "links", "link_mask",
               "negative_start", "negative_count", "negatives", "link_features",
               "negative_features")
_HELDOUT_KEYS = ("heldout_pairs", "heldout_negatives", "heldout_graph", "heldout_mask")
PROBE_TRAIN_GRAPHS = 2048


def _graph_part(batch: Batch) -> Batch:
    return {k: batch[k] for k in _GRAPH_KEYS if k in batch}


def summed_loss_stats(model: GraphVAE, batch: Batch, key, sample: bool) -> dict[str, jax.Array]:
    """Loss statistics summed over the sub-batches on the leading axis (vmapped, so each
    sub-batch stays on the device that holds it)."""
    keys = jax.random.split(key, batch["nodes"].shape[0])
    sums = jax.vmap(lambda b, k: loss_sums(model, b, k, sample=sample))(_graph_part(batch), keys)
    return {name: jnp.sum(value) for name, value in sums.items()}


class _GraphTask(Task):
    throughput_key = "graphs"

    def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
        return GraphVAE(self.cfg.model, NUM_NODE_FEATURES, NUM_EDGE_FEATURES, rngs=rngs)

    def loss(self, model: nnx.Module, batch: Batch, rng: jax.Array,
             step: jax.Array) -> tuple[jax.Array, Metrics]:
        sums = summed_loss_stats(model, batch, rng, sample=True)
        return elbo_loss(self.cfg.model, sums, step)

    def count_items(self, batch: dict[str, np.ndarray]) -> int:
        return int(np.sum(batch["graph_mask"]))


class GraphVAETask(_GraphTask, PlanetTask):
    """The graph VAE on one synthetic metabolic network per planet.

    Trains on the networks of the train split's planets (``planets``); evaluates on the val
    split's, and once on test after the last step.
    """

    @property
    def num_sub_batches(self) -> int:
        return self.cfg.train.global_batch_size // self.cfg.data.graphs_per_sub_batch

    def microbatch_units(self) -> int:
        """Padded sub-batches: a microbatch is whole sub-batches, each one padded graph batch."""
        return self.num_sub_batches

    @functools.cached_property
    def networks(self) -> dict[str, list]:
        """Each split's planets' metabolic networks, in table order."""
        return {name: GraphSource(self.table, self.split[name]).networks() for name in SPLITS}

    @functools.cached_property
    def heldout_links(self) -> dict[str, list[LinkSplit | None]]:
        """Per planet of a held-out split, its links split into those the encoder sees and a
        held-out set (with as many non-links); None for a network too small to hold a link
        out. Seeded by planet, so a planet's held-out links do not depend on the split."""
        d = self.cfg.data
        return {name: [_heldout_split(net, d.link_test_fraction, d.link_split_seed + int(row))
                       for net, row in zip(self.networks[name], self.split[name], strict=True)]
                for name in ("val", "test")}

    @functools.cached_property
    def examples(self) -> dict[str, list[graphs.Example]]:
        """Training planets whole; held-out planets without their held-out links, which ride
        along as ``heldout_pairs``/``heldout_negatives`` (node indices)."""
        steps = self.cfg.model.random_walk_steps
        out = {"train": [graphs.graph_example(net, steps) for net in self.networks["train"]]}
        for name in ("val", "test"):
            out[name] = self._heldout_examples(name, steps)
        return out

    def _heldout_examples(self, split: str, steps: int) -> list[graphs.Example]:
        examples = []
        for net, held in zip(self.networks[split], self.heldout_links[split], strict=True):
            if held is None:
                example = graphs.graph_example(net, steps)
                example["heldout_pairs"] = example["heldout_negatives"] = np.zeros((0, 2),
                                                                                   np.int32)
            else:
                example = graphs.graph_example(train_network(net, held), steps)
                offset = np.array([0, net.num_metabolites], np.int32)
                example["heldout_pairs"] = held.test_pairs + offset
                example["heldout_negatives"] = held.test_negatives + offset
            examples.append(example)
        return examples

    @functools.cached_property
    def buckets(self) -> tuple[graphs.Bucket, ...]:
        """The configured buckets, or ones derived from the sizes of all the networks."""
        if self.cfg.data.graph_buckets:
            return tuple(sorted(graphs.Bucket(*b) for b in self.cfg.data.graph_buckets))
        sizes = np.concatenate([graphs.example_sizes(self.examples[name]) for name in SPLITS
                                if len(self.split[name])])
        return graphs.default_buckets(sizes, self.cfg.data.graphs_per_sub_batch,
                                      self.num_sub_batches)

    def _labels(self, rows: np.ndarray):
        pop = self.table.population
        return lambda i: {name: np.int32(getattr(pop, name)[rows[i]]) for name in _LABELS}

    def _dataset(self, split: str, process_index: int, process_count: int, *,
                 limit: int | None = None, **kwargs) -> grain.IterDataset:
        examples, rows = self.examples[split], self.split[split]
        if limit is not None:
            examples, rows = examples[:limit], rows[:limit]
        return graphs.graph_dataset(
            examples, graphs_per_batch=self.cfg.train.global_batch_size,
            num_shards=self.num_sub_batches, buckets=self.buckets,
            process_index=process_index, process_count=process_count,
            extra=self._labels(rows), seed=self.cfg.data.shuffle_seed, **kwargs)

    def train_data(self, process_index: int, process_count: int) -> grain.IterDataset:
        return self._dataset("train", process_index, process_count, shuffle=True,
                             num_epochs=None)

    def eval_data(self, process_index: int, process_count: int,
                  split: str = "val") -> Iterable[dict[str, np.ndarray]]:
        if not self.fills_eval_batch(split, len(self.split[split])):
            return []
        ds = self._dataset(split, process_index, process_count, shuffle=False, num_epochs=1)
        return list(itertools.islice(iter(ds), self.cfg.train.eval_batches))

    def eval_sums(self, model: nnx.Module, batch: Batch) -> Metrics:
        sums = summed_loss_stats(model, batch, jax.random.key(0), sample=False)
        heldout = jax.vmap(lambda b: heldout_sums(model, b))(
            {k: batch[k] for k in (*_GRAPH_KEYS, *_HELDOUT_KEYS) if k in batch})
        return {**sums, **{name: jnp.sum(value) for name, value in heldout.items()}}

    def finalize_eval(self, sums: dict[str, float]) -> dict[str, float]:
        """The loss terms on the held-out planets' visible links (``link_accuracy`` is their
        reconstruction) and, on their held-out links, ``heldout_link_accuracy`` (logit sign,
        one non-link per link) and the per-planet mean ``heldout_auc`` and ``heldout_ap``."""
        loss, parts = elbo_loss(self.cfg.model, sums, self.cfg.model.kl_warmup_steps)
        return {"loss": float(loss), **{k: float(v) for k, v in parts.items() if k != "kl_beta"},
                **accuracy_from_sums(sums, prefix="heldout_link_"),
                **ranking_from_sums(sums, prefix="heldout_")}

    def baselines(self, split: str = "val") -> dict[str, float]:
        """Per-planet mean AUC and AP of L3, resource allocation and preferential attachment on
        the held-out links of the planets the eval batches hold, each on its planet's visible
        links (``l3/heldout_auc``, ...)."""
        t = self.cfg.train
        num_batches = min(t.eval_batches, len(self.split[split]) // t.global_batch_size)
        return heldout_baselines([sp for sp in
                                  self.heldout_links[split][:num_batches * t.global_batch_size]
                                  if sp is not None])

    def embed(self, model: nnx.Module, batch: Batch) -> dict[str, jax.Array]:
        """Posterior mean of each graph latent, ``[sub-batches, graphs + 1, graph_latent_dim]``."""
        encodings = jax.vmap(model.encode)(_graph_part(batch))
        return {"graph_mean": encodings.graph_mean}

    def final_eval(self, embed_fn, params, shard) -> dict[str, float]:
        """Linear probes of the biosphere class: on the graph latents, and, as the baseline a
        learned embedding must beat, on simple counts (metabolites, reactions, edges, mean node
        features) of the same graphs."""
        train = self._probe_set(embed_fn, params, shard, "train", PROBE_TRAIN_GRAPHS)
        test = self._probe_set(embed_fn, params, shard, "val")
        classes = len(BIOSPHERE_CLASSES)
        latent = linear_probe(train[0], train[2], test[0], test[2], classes)
        counts = linear_probe(train[1], train[2], test[1], test[2], classes)
        return {"probe/biosphere_accuracy": latent["accuracy"],
                "probe/biosphere_balanced_accuracy": latent["balanced_accuracy"],
                "probe/counts_baseline_accuracy": counts["accuracy"],
                "probe/counts_baseline_balanced_accuracy": counts["balanced_accuracy"],
                "probe/majority_accuracy": latent["majority_accuracy"]}

    def _probe_set(self, embed_fn, params, shard, split: str, limit: int | None = None):
        """Graph latents, count features and biosphere labels of the first ``limit`` graphs of
        ``split`` (those that fill whole batches; on several processes, this process's
        share)."""
        latents, counts, labels = [], [], []
        ds = self._dataset(split, jax.process_index(), jax.process_count(), limit=limit,
                           shuffle=False, num_epochs=1)
        for local in ds:
            out = np.asarray(jax.device_get(embed_fn(params, shard(local)))["graph_mean"])
            for s in range(len(local["nodes"])):
                mask = local["graph_mask"][s]
                latents.append(out[s][mask])
                counts.append(graph_count_features({k: v[s] for k, v in local.items()})[mask])
                labels.append(local["biosphere"][s][mask])
        return np.concatenate(latents), np.concatenate(counts), np.concatenate(labels)


def heldout_sums(model: GraphVAE, batch: Batch) -> dict[str, jax.Array]:
    """Additive statistics of one sub-batch's held-out links against its held-out non-links:
    sign accuracy, and the AUC and AP of each graph's own pairs, summed over graphs."""
    z_nz = model.encode(batch).node_mean
    pos = model.link_logits(z_nz, batch["heldout_pairs"])
    neg = model.link_logits(z_nz, batch["heldout_negatives"])
    mask, graph = batch["heldout_mask"], batch["heldout_graph"]
    labels = jnp.concatenate([jnp.ones_like(mask), jnp.zeros_like(mask)])
    return {**accuracy_sums(labels, jnp.concatenate([pos, neg]) > 0,
                            jnp.concatenate([mask, mask]), prefix="heldout_link_"),
            **ranking_sums(pos, neg, graph, graph, mask, mask,
                           num_groups=batch["graph_mask"].shape[0], prefix="heldout_")}


def _heldout_split(net, fraction: float, seed: int) -> LinkSplit | None:
    """``fraction`` of the network's links (at least one) held out with as many non-links;
    None if it has fewer than two links or too few non-links."""
    num_links = len(unique_pairs(net))
    num_heldout = max(1, int(round(fraction * num_links, 9)))
    if num_links < 2 or net.num_metabolites * net.num_reactions - num_links < num_heldout:
        return None
    return split_links(net, val_fraction=0.0, test_fraction=num_heldout / num_links, seed=seed)


class LinkPredictionTask(_GraphTask):
    """VGAE link prediction on one real metabolic network (``data.sbml_path``).

    The model passes messages along the training links only. With ``data.link_target_folds``
    = 0 it learns to reconstruct those links against sampled non-links (metabolite paired with
    a random reaction), as VGAE does; with k >= 2 folds each step hides one fold of the
    training links from the graph and learns to predict it against uniform non-links, so that
    training sees the links it scores missing from the graph, as they are at test time.
    Validation and test AUC/AP score the held-out links against as many held-out non-links,
    on the whole training graph, beside the non-learned baselines (:meth:`baselines`).
    """

    def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
        pair = len(PAIR_FEATURES) if self._structural else 0
        return GraphVAE(self.cfg.model, NUM_NODE_FEATURES, NUM_EDGE_FEATURES, pair,
                        rngs=rngs)

    @property
    def _structural(self) -> bool:
        return self.cfg.model.edge_decoder == "structural"

    @functools.cached_property
    def network(self):
        if not self.cfg.data.sbml_path:
            raise ConfigError("data.sbml_path", "graph_linkpred needs an SBML file (or "
                                                "'cobra:textbook' for E. coli core)")
        return read_sbml(resolve_sbml_path(self.cfg.data.sbml_path))

    @functools.cached_property
    def links(self) -> LinkSplit:
        """The network's links split into train, val and test (with as many non-links)."""
        d = self.cfg.data
        return split_links(self.network, val_fraction=d.link_val_fraction,
                           test_fraction=d.link_test_fraction, seed=d.link_split_seed)

    def baselines(self, split: str = "val") -> dict[str, float]:
        """L3, resource allocation and preferential attachment on the training graph, scored
        on the same validation and test pairs (keys such as ``l3/test_auc``)."""
        return link_baseline_report(self.links) if split == "val" else {}

    @functools.cached_property
    def batch(self) -> dict[str, np.ndarray]:
        """The training graph, padded, with the evaluation pairs as node-index pairs (and, for
        the structural decoder, their scores on the training graph)."""
        batch = self._graph_batch(self.links.train_pairs, self.links.train_pairs)
        adjacency = biadjacency(self.links.train_pairs, *self._sizes)
        for name in ("val_pairs", "val_negatives", "test_pairs", "test_negatives"):
            pairs = np.asarray(getattr(self.links, name), np.int32)
            batch[name] = pairs + self._offset
            if self._structural:
                batch[f"{name}_features"] = pair_features(adjacency, pairs,
                                                          self.network.compartment)
        return {k: v[None] for k, v in batch.items()}

    @functools.cached_property
    def train_batches(self) -> list[dict[str, np.ndarray]]:
        """The batches training cycles through: the training graph itself (0 folds), or one
        per fold, its links hidden from the graph, each with its own sampled non-links."""
        d = self.cfg.data
        if d.link_target_folds == 0:
            return [self.batch]
        folds = target_folds(self.links, d.link_target_folds, negatives_per_link=1,
                             seed=d.link_split_seed)
        return [{k: v[None] for k, v in self._graph_batch(graph, targets, negatives).items()}
                for graph, targets, negatives in folds]

    @property
    def _sizes(self) -> tuple[int, int]:
        return self.network.num_metabolites, self.network.num_reactions

    @property
    def _offset(self) -> np.ndarray:
        """Adds to a (metabolite, reaction) pair to make it a pair of node indices."""
        return np.array([0, self.network.num_metabolites], np.int32)

    @functools.cached_property
    def _bucket(self) -> graphs.Bucket:
        """One bucket for every batch (the training graph is the largest): one compilation."""
        return graphs.exact_bucket(graphs.graph_example(
            train_network(self.network, self.links), self.cfg.model.random_walk_steps))

    def _graph_batch(self, graph_pairs: np.ndarray, targets: np.ndarray,
                     negatives: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The network restricted to ``graph_pairs``, padded, learning ``targets`` (against
        ``negatives``, one per target, when given)."""
        net = keep_pairs(self.network, graph_pairs, f"{self.network.name} (graph)")
        example = graphs.graph_example(net, self.cfg.model.random_walk_steps)
        example["links"] = (targets + self._offset).astype(np.int32)
        batch = graphs.pad_examples([example], self._bucket, num_graphs=1)
        if negatives is None:
            return batch
        slots, pad_node = len(batch["links"]), int(batch["n_node"][0])  # padding's first node
        batch["negatives"] = np.full((slots, 2), pad_node, np.int32)
        batch["negatives"][:len(negatives)] = negatives + self._offset
        if self._structural:
            adjacency = biadjacency(graph_pairs, *self._sizes)
            for key, pairs in (("link_features", targets), ("negative_features", negatives)):
                batch[key] = np.zeros((slots, len(PAIR_FEATURES)), np.float32)
                batch[key][:len(pairs)] = pair_features(adjacency, pairs,
                                                        self.network.compartment)
        return batch

    def train_data(self, process_index: int, process_count: int) -> grain.IterDataset:
        if process_count > 1:
            raise ValueError("graph_linkpred trains on one graph: run it on one process")
        return grain.MapDataset.source(self.train_batches).repeat(None).to_iter_dataset()

    def eval_data(self, process_index: int, process_count: int,
                  split: str = "val") -> Iterable[dict[str, np.ndarray]]:
        """The network's own link split gives every eval both its val and its test links
        (``val_auc``, ``test_auc``, ...), so split "test" adds nothing."""
        return [self.batch] if split == "val" else []

    def eval_sums(self, model: nnx.Module, batch: Batch) -> Metrics:
        z_nz = model.encode(_graph_part({k: v[0] for k, v in batch.items()})).node_mean
        out = {}
        for split in ("val", "test"):
            pos, neg = (model.link_logits(z_nz, batch[name][0],
                                          batch[f"{name}_features"][0] if self._structural
                                          else None)
                        for name in (f"{split}_pairs", f"{split}_negatives"))
            out.update(ranking_sums(pos, neg, prefix=f"{split}_"))
        return out

    def finalize_eval(self, sums: dict[str, float]) -> dict[str, float]:
        return {**ranking_from_sums(sums, prefix="val_"), **ranking_from_sums(sums, prefix="test_")}
