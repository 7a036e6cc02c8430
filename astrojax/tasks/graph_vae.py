"""Graph VAE tasks: learn the built-in planets' metabolic networks, or predict links in a real one.

``graph_vae`` trains on one synthetic network per planet (``data.synthetic`` + ``data.biochem``)
and, after the last step, fits a linear probe of the biosphere class on the graph latents.
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
from astrojax.data.linkpred import baseline_report, split_links, train_network
from astrojax.data.metabolic import NODE_FEATURES, NUM_EDGE_FEATURES, NUM_NODE_FEATURES
from astrojax.data.sbml import read_sbml, resolve_sbml_path
from astrojax.data.synthetic import BIOSPHERE_CLASSES, generate_population
from astrojax.models.graph_vae import GraphVAE, elbo_loss, loss_sums
from astrojax.tasks.base import Batch, Metrics, Task
from astrojax.train.probe import linear_probe

# Graph-level label arrays ride along in batches (-1 for jraph's padding graph).
_LABELS = ("biosphere", "climate_regime", "habitable")
# Keys of a batch that the model and loss read; the rest are labels or evaluation pairs.
_GRAPH_KEYS = ("nodes", "pe", "edges", "senders", "receivers", "node_graph", "node_mask",
               "edge_mask", "graph_mask", "n_node", "n_edge", "links", "link_mask",
               "negative_start", "negative_count")
PROBE_TRAIN_GRAPHS = 2048


def _graph_part(batch: Batch) -> Batch:
    return {k: batch[k] for k in _GRAPH_KEYS}


def summed_loss_stats(model: GraphVAE, batch: Batch, key, sample: bool) -> dict[str, jax.Array]:
    """Loss statistics summed over the sub-batches on the leading axis (vmapped, so each
    sub-batch stays on the device that holds it)."""
    keys = jax.random.split(key, batch["nodes"].shape[0])
    sums = jax.vmap(lambda b, k: loss_sums(model, b, k, sample=sample))(_graph_part(batch), keys)
    return {name: jnp.sum(value) for name, value in sums.items()}


class _GraphTask(Task):
    throughput_key = "graphs"

    def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
        return GraphVAE(self.cfg.graph_vae, NUM_NODE_FEATURES, NUM_EDGE_FEATURES, rngs=rngs)

    @property
    def num_sub_batches(self) -> int:
        return self.cfg.train.global_batch_size // self.cfg.data.graphs_per_sub_batch

    def loss(self, model: nnx.Module, batch: Batch, rng: jax.Array,
             step: jax.Array) -> tuple[jax.Array, Metrics]:
        sums = summed_loss_stats(model, batch, rng, sample=True)
        return elbo_loss(self.cfg.graph_vae, sums, step)

    def count_items(self, batch: dict[str, np.ndarray]) -> int:
        return int(np.sum(batch["graph_mask"]))


class GraphVAETask(_GraphTask):
    """The graph VAE on one synthetic metabolic network per planet.

    The last ``data.eval_fraction`` of the population (by planet index) is held out for eval.
    """

    @functools.cached_property
    def _population(self):
        d = self.cfg.data
        return generate_population(d.num_planets, seed=d.population_seed)

    @functools.cached_property
    def _examples(self) -> list[graphs.Example]:
        nets = self._population.networks(self.cfg.data.population_seed)
        return [graphs.graph_example(net, self.cfg.graph_vae.random_walk_steps) for net in nets]

    @functools.cached_property
    def _num_eval(self) -> int:
        return max(1, int(round(len(self._examples) * self.cfg.data.eval_fraction)))

    @functools.cached_property
    def buckets(self) -> tuple[graphs.Bucket, ...]:
        """The configured buckets, or ones derived from the sizes of all the networks."""
        if self.cfg.data.graph_buckets:
            return tuple(sorted(graphs.Bucket(*b) for b in self.cfg.data.graph_buckets))
        return graphs.default_buckets(graphs.example_sizes(self._examples),
                                      self.cfg.data.graphs_per_sub_batch, self.num_sub_batches)

    def _labels(self, offset: int):
        pop = self._population
        return lambda i: {name: np.int32(getattr(pop, name)[offset + i]) for name in _LABELS}

    def _dataset(self, start: int, stop: int, process_index: int, process_count: int,
                 **kwargs) -> grain.IterDataset:
        d = self.cfg.data
        return graphs.graph_dataset(
            self._examples[start:stop], graphs_per_batch=self.cfg.train.global_batch_size,
            num_shards=self.num_sub_batches, buckets=self.buckets,
            process_index=process_index, process_count=process_count,
            extra=self._labels(start), seed=d.shuffle_seed, **kwargs)

    def train_data(self, process_index: int, process_count: int) -> grain.IterDataset:
        return self._dataset(0, len(self._examples) - self._num_eval, process_index,
                             process_count, shuffle=True, num_epochs=None)

    def eval_data(self, process_index: int, process_count: int) -> Iterable[dict[str, np.ndarray]]:
        ds = self._dataset(len(self._examples) - self._num_eval, len(self._examples),
                           process_index, process_count, shuffle=False, num_epochs=1)
        return list(itertools.islice(iter(ds), self.cfg.train.eval_batches))

    def eval_sums(self, model: nnx.Module, batch: Batch) -> Metrics:
        return summed_loss_stats(model, batch, jax.random.key(0), sample=False)

    def finalize_eval(self, sums: dict[str, float]) -> dict[str, float]:
        loss, parts = elbo_loss(self.cfg.graph_vae, sums, self.cfg.graph_vae.kl_warmup_steps)
        return {"loss": float(loss), **{k: float(v) for k, v in parts.items() if k != "kl_beta"}}

    def embed(self, model: nnx.Module, batch: Batch) -> dict[str, jax.Array]:
        """Posterior mean of each graph latent, ``[sub-batches, graphs + 1, graph_latent_dim]``."""
        encodings = jax.vmap(model.encode)(_graph_part(batch))
        return {"graph_mean": encodings.graph_mean}

    def final_eval(self, embed_fn, params, shard) -> dict[str, float]:
        """Linear probes of the biosphere class: on the graph latents, and, as the baseline a
        learned embedding must beat, on simple counts (metabolites, reactions, edges, mean node
        features) of the same graphs."""
        num_train = len(self._examples) - self._num_eval
        train = self._probe_set(embed_fn, params, shard, 0, min(num_train, PROBE_TRAIN_GRAPHS))
        test = self._probe_set(embed_fn, params, shard, num_train, len(self._examples))
        classes = len(BIOSPHERE_CLASSES)
        latent = linear_probe(train[0], train[2], test[0], test[2], classes)
        counts = linear_probe(train[1], train[2], test[1], test[2], classes)
        return {"probe/biosphere_accuracy": latent["accuracy"],
                "probe/biosphere_balanced_accuracy": latent["balanced_accuracy"],
                "probe/counts_baseline_accuracy": counts["accuracy"],
                "probe/counts_baseline_balanced_accuracy": counts["balanced_accuracy"],
                "probe/majority_accuracy": latent["majority_accuracy"]}

    def _probe_set(self, embed_fn, params, shard, start: int, stop: int):
        """Graph latents, count features and biosphere labels of graphs ``[start, stop)`` (those
        that fill whole batches; on several processes, this process's share)."""
        latents, counts, labels = [], [], []
        ds = self._dataset(start, stop, jax.process_index(), jax.process_count(),
                           shuffle=False, num_epochs=1)
        for local in ds:
            out = np.asarray(jax.device_get(embed_fn(params, shard(local)))["graph_mean"])
            for s in range(len(local["nodes"])):
                mask = local["graph_mask"][s]
                latents.append(out[s][mask])
                counts.append(_count_features({k: v[s] for k, v in local.items()})[mask])
                labels.append(local["biosphere"][s][mask])
        return np.concatenate(latents), np.concatenate(counts), np.concatenate(labels)


def _count_features(sub_batch: dict[str, np.ndarray]) -> np.ndarray:
    """Per graph of a padded sub-batch: metabolite, reaction and edge counts and the mean of
    each node feature, ``[graphs + 1, 3 + NUM_NODE_FEATURES]``."""
    num_graphs = len(sub_batch["n_node"])
    graph = sub_batch["node_graph"]
    n_node = np.maximum(sub_batch["n_node"], 1)[:, None]
    sums = np.zeros((num_graphs, NUM_NODE_FEATURES))
    np.add.at(sums, graph, sub_batch["nodes"])
    metabolites = sums[:, NODE_FEATURES.index("is_metabolite")]
    return np.concatenate([metabolites[:, None], (sub_batch["n_node"] - metabolites)[:, None],
                           sub_batch["n_edge"][:, None], sums / n_node], axis=1)


def ranking_metrics(pos: jax.Array, neg: jax.Array) -> dict[str, jax.Array]:
    """ROC AUC (ties count one half) and average precision of positive against negative scores.

    AP is the mean, over positives, of the precision among all pairs scored at least as high
    (the step-wise definition of scikit-learn's ``average_precision_score``).
    """
    greater = (pos[:, None] > neg[None, :]).astype(jnp.float32)
    ties = (pos[:, None] == neg[None, :]).astype(jnp.float32)
    auc = jnp.mean(greater + 0.5 * ties)
    scores = jnp.concatenate([pos, neg])
    is_pos = jnp.concatenate([jnp.ones_like(pos), jnp.zeros_like(neg)])
    at_least = scores[None, :] >= pos[:, None]  # [positives, all pairs]
    precision = jnp.sum(at_least * is_pos, 1) / jnp.sum(at_least, 1)
    return {"auc": auc, "ap": jnp.mean(precision)}


class LinkPredictionTask(_GraphTask):
    """VGAE link prediction on one real metabolic network (``data.sbml_path``).

    The model passes messages along the training links only and learns to reconstruct them
    against sampled non-links (metabolite paired with a random reaction); validation and test
    AUC/AP score the held-out links against as many held-out non-links.
    """

    @functools.cached_property
    def network(self):
        if not self.cfg.data.sbml_path:
            raise ConfigError("data.sbml_path", "graph_linkpred needs an SBML file (or "
                                                "'cobra:textbook' for E. coli core)")
        return read_sbml(resolve_sbml_path(self.cfg.data.sbml_path))

    @functools.cached_property
    def split(self):
        d = self.cfg.data
        return split_links(self.network, val_fraction=d.link_val_fraction,
                           test_fraction=d.link_test_fraction, seed=d.link_split_seed)

    @functools.cached_property
    def baselines(self) -> dict[str, float]:
        return {f"baseline/{k}": float(v) for k, v in baseline_report(self.split).items()}

    @functools.cached_property
    def batch(self) -> dict[str, np.ndarray]:
        """The one training graph, padded, with the evaluation pairs as node-index pairs."""
        example = graphs.graph_example(train_network(self.network, self.split),
                                       self.cfg.graph_vae.random_walk_steps)
        batch = graphs.pad_examples([example], graphs.exact_bucket(example), num_graphs=1)
        m = self.network.num_metabolites
        for name in ("val_pairs", "val_negatives", "test_pairs", "test_negatives"):
            pairs = np.asarray(getattr(self.split, name), np.int32) + np.array([0, m], np.int32)
            batch[name] = pairs
        return {k: v[None] for k, v in batch.items()}

    def train_data(self, process_index: int, process_count: int) -> grain.IterDataset:
        if process_count > 1:
            raise ValueError("graph_linkpred trains on one graph: run it on one process")
        return grain.MapDataset.source([self.batch]).repeat(None).to_iter_dataset()

    def eval_data(self, process_index: int, process_count: int) -> Iterable[dict[str, np.ndarray]]:
        return [self.batch]

    def eval_sums(self, model: nnx.Module, batch: Batch) -> Metrics:
        z_nz = model.encode(_graph_part({k: v[0] for k, v in batch.items()})).node_mean
        out = {}
        for split in ("val", "test"):
            pos = model.link_logits(z_nz, batch[f"{split}_pairs"][0])
            neg = model.link_logits(z_nz, batch[f"{split}_negatives"][0])
            out.update({f"{split}_{k}": v for k, v in ranking_metrics(pos, neg).items()})
        return {**out, "count": jnp.ones((), jnp.float32)}

    def finalize_eval(self, sums: dict[str, float]) -> dict[str, float]:
        count = max(sums.pop("count"), 1.0)
        return {**{k: v / count for k, v in sums.items()}, **self.baselines}
