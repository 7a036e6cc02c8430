"""Graph batches with static shapes: per-graph examples, size buckets, padding and Grain batching.

A metabolic network becomes an *example* (:func:`graph_example`): node and edge features, edge
lists, random-walk positional encodings computed once here, and the candidate links (metabolite,
reaction) that the VAE learns to reconstruct. Examples are batched into *sub-batches* padded to a
**bucket**, a fixed ``(nodes, edges)`` size: jit then compiles once per bucket, never per batch.
A global batch is ``num_shards`` sub-batches stacked on a leading axis, which the mesh splits
over its data axes, so each device holds whole graphs and message passing never crosses devices.

Padding follows jraph's convention: padding nodes and edges belong to one extra padding graph
per sub-batch, padding edges connect padding nodes only, and masks mark what is real.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import grain
import numpy as np
import scipy.sparse

from astrojax.data.metabolic import MetabolicNetwork, NetworkError, to_graph

Example = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True, order=True)
class Bucket:
    """Padded size of one sub-batch: total nodes and edges, padding included."""

    nodes: int
    edges: int

    def fits(self, nodes: int, edges: int) -> bool:
        # The padding graph needs at least one node of its own.
        return nodes + 1 <= self.nodes and edges <= self.edges


def random_walk_encoding(senders: np.ndarray, receivers: np.ndarray, num_nodes: int,
                         steps: int) -> np.ndarray:
    """``[num_nodes, steps]``: the probability that a random walk returns to its start node after
    2, 4, ..., 2 * steps moves (RWSE, Dwivedi et al. 2022).

    Unlike Laplacian eigenvectors it has no sign or basis ambiguity, so it is permutation
    equivariant as computed. Odd steps are skipped: on a bipartite graph they are always 0.
    The sparse one-step walk is applied twice per step rather than squared first: hubs (h2o,
    h+) make the two-step matrix nearly dense, and iJO1366's encoding took 40 s that way
    against about 2 s this way.
    """
    if steps == 0:
        return np.zeros((num_nodes, 0), np.float32)
    adjacency = scipy.sparse.csr_matrix(
        (np.ones(len(senders), np.float64), (receivers, senders)), shape=(num_nodes, num_nodes))
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    walk = (scipy.sparse.diags(1.0 / np.maximum(degree, 1.0)) @ adjacency).tocsr()
    power = np.eye(num_nodes)
    out = np.empty((num_nodes, steps), np.float32)
    for k in range(steps):
        power = walk @ (walk @ power)
        out[:, k] = np.diagonal(power)
    return out


def graph_example(net: MetabolicNetwork, pe_steps: int) -> Example:
    """One network as numpy arrays: the graph, its positional encoding and its links.

    ``links`` are the unique (metabolite node, reaction node) pairs; a negative for each is drawn
    from the reactions of the same graph, whose node range is ``[num_metabolites, num_nodes)``.
    """
    graph = to_graph(net)
    num_nodes = int(graph.n_node[0])
    m = net.num_metabolites
    links = np.unique(np.stack([net.stoich_metabolite, net.stoich_reaction + m], 1), axis=0)
    example = {
        "nodes": graph.nodes, "edges": graph.edges,
        "senders": graph.senders.astype(np.int32), "receivers": graph.receivers.astype(np.int32),
        "pe": random_walk_encoding(graph.senders, graph.receivers, num_nodes, pe_steps),
        "links": links.astype(np.int32).reshape(-1, 2),
        "num_metabolites": np.int32(m),
    }
    check_edge_indices(example, net.name)
    return example


def example_sizes(examples: Sequence[Example]) -> np.ndarray:
    """``[len(examples), 3]`` int: nodes, edges and links of each example."""
    return np.array([(len(e["nodes"]), len(e["senders"]), len(e["links"])) for e in examples],
                    np.int64).reshape(-1, 3)


def _round_up(x: int, multiple: int) -> int:
    return -(-int(x) // multiple) * multiple


def default_buckets(sizes: np.ndarray, graphs_per_shard: int, num_shards: int = 1, *,
                    seed: int = 0, quantiles: Sequence[float] = (0.5, 0.9)) -> tuple[Bucket, ...]:
    """Buckets at quantiles of random batches' needs, plus the worst case so every batch fits.

    A batch of ``num_shards`` sub-batches needs the bucket of its largest sub-batch, so the
    quantiles are taken over that maximum (nodes and edges separately), estimated from 2,048
    random batches. The worst case is the ``graphs_per_shard`` largest graphs together; sizes
    round up to multiples of 32 nodes and 64 edges.
    """
    nodes, edges = sizes[:, 0], sizes[:, 1]
    k = min(graphs_per_shard, len(sizes))
    worst = Bucket(_round_up(np.sort(nodes)[-k:].sum() + 1, 32),
                   _round_up(max(np.sort(edges)[-k:].sum(), 1), 64))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(sizes), size=(2048, num_shards, graphs_per_shard))
    need_n, need_e = nodes[draws].sum(2).max(1), edges[draws].sum(2).max(1)
    buckets = {worst}
    for q in quantiles:
        buckets.add(Bucket(min(_round_up(np.quantile(need_n, q) + 1, 32), worst.nodes),
                           min(_round_up(np.quantile(need_e, q), 64), worst.edges)))
    return tuple(sorted(buckets))


def exact_bucket(example: Example) -> Bucket:
    """The smallest bucket (in our rounding) that holds one example: for a single-graph batch."""
    nodes, edges, _ = example_sizes([example])[0]
    return Bucket(_round_up(nodes + 1, 32), _round_up(max(edges, 2), 64))


def choose_bucket(buckets: Sequence[Bucket], nodes: int, edges: int) -> Bucket:
    """The smallest bucket (by nodes, then edges) that fits; ValueError naming the sizes if none."""
    for bucket in sorted(buckets):
        if bucket.fits(nodes, edges):
            return bucket
    largest = max(buckets)
    raise ValueError(f"a sub-batch of {nodes} nodes and {edges} edges does not fit the largest "
                     f"graph bucket ({largest.nodes} nodes incl. 1 for padding, {largest.edges} "
                     f"edges); raise data.graph_buckets or lower the graphs per batch")


def pad_examples(examples: Sequence[Example], bucket: Bucket, num_graphs: int,
                 widths: tuple[int, int, int] | None = None) -> Example:
    """One sub-batch: ``examples`` (at most ``num_graphs``) concatenated and padded to ``bucket``.

    Node ``i`` of graph ``g`` moves to ``offset[g] + i``; edges and links shift with it. Graph
    arrays have ``num_graphs + 1`` rows, the last being jraph's padding graph; graph ids of
    padding nodes point to it. Links are padded to ``bucket.edges // 2`` (each stoichiometric
    entry gives two edges, so a graph never has more links than half its edges). ``widths``
    (node, positional-encoding and edge feature widths) shape an empty sub-batch like the
    others; by default they come from the first example.
    """
    if len(examples) > num_graphs:
        raise ValueError(f"{len(examples)} graphs exceed the {num_graphs} slots of a sub-batch")
    num_links = bucket.edges // 2
    sizes = example_sizes(examples)
    total_nodes, total_edges, total_links = sizes.sum(0) if len(sizes) else (0, 0, 0)
    if not bucket.fits(total_nodes, total_edges) or total_links > num_links:
        raise ValueError(f"graphs of {total_nodes} nodes, {total_edges} edges and {total_links} "
                         f"links do not fit bucket {bucket}")
    n, e = bucket.nodes, bucket.edges
    pad_node = total_nodes  # first padding node; padding edges loop on it
    if examples:
        widths = tuple(examples[0][key].shape[1] for key in ("nodes", "pe", "edges"))
    node_width, pe_width, edge_width = widths or (0, 0, 0)
    out = {
        "nodes": np.zeros((n, node_width), np.float32),
        "pe": np.zeros((n, pe_width), np.float32),
        "edges": np.zeros((e, edge_width), np.float32),
        "senders": np.full(e, pad_node, np.int32), "receivers": np.full(e, pad_node, np.int32),
        "node_graph": np.full(n, num_graphs, np.int32),
        "node_mask": np.zeros(n, bool), "edge_mask": np.zeros(e, bool),
        "n_node": np.zeros(num_graphs + 1, np.int32), "n_edge": np.zeros(num_graphs + 1, np.int32),
        "graph_mask": np.zeros(num_graphs + 1, bool),
        "links": np.full((num_links, 2), pad_node, np.int32),
        "link_mask": np.zeros(num_links, bool),
        "negative_start": np.full(num_links, pad_node, np.int32),
        "negative_count": np.ones(num_links, np.int32),
    }
    heldout = any("heldout_pairs" in ex for ex in examples)
    if heldout:
        total_heldout = sum(len(ex.get("heldout_pairs", ())) for ex in examples)
        if total_heldout > num_links:
            raise ValueError(f"{total_heldout} held-out links do not fit the {num_links} link "
                             f"slots of bucket {bucket}")
        out.update({"heldout_pairs": np.full((num_links, 2), pad_node, np.int32),
                    "heldout_negatives": np.full((num_links, 2), pad_node, np.int32),
                    "heldout_graph": np.full(num_links, num_graphs, np.int32),
                    "heldout_mask": np.zeros(num_links, bool)})
    node_at = edge_at = link_at = heldout_at = 0
    for g, ex in enumerate(examples):
        nn, ne, nl = len(ex["nodes"]), len(ex["senders"]), len(ex["links"])
        nodes, edges, links = slice(node_at, node_at + nn), slice(edge_at, edge_at + ne), \
            slice(link_at, link_at + nl)
        out["nodes"][nodes], out["pe"][nodes] = ex["nodes"], ex["pe"]
        out["edges"][edges] = ex["edges"]
        out["senders"][edges] = ex["senders"] + node_at
        out["receivers"][edges] = ex["receivers"] + node_at
        out["node_graph"][nodes], out["node_mask"][nodes], out["edge_mask"][edges] = g, True, True
        out["n_node"][g], out["n_edge"][g], out["graph_mask"][g] = nn, ne, True
        out["links"][links] = ex["links"] + node_at
        out["link_mask"][links] = True
        out["negative_start"][links] = node_at + int(ex["num_metabolites"])
        out["negative_count"][links] = max(nn - int(ex["num_metabolites"]), 1)
        if heldout and "heldout_pairs" in ex:
            rows = slice(heldout_at, heldout_at + len(ex["heldout_pairs"]))
            out["heldout_pairs"][rows] = ex["heldout_pairs"] + node_at
            out["heldout_negatives"][rows] = ex["heldout_negatives"] + node_at
            out["heldout_graph"][rows], out["heldout_mask"][rows] = g, True
            heldout_at = rows.stop
        node_at, edge_at, link_at = node_at + nn, edge_at + ne, link_at + nl
    out["n_node"][num_graphs] = n - node_at
    out["n_edge"][num_graphs] = e - edge_at
    return out


class ShardedGraphBatcher:
    """Global batch of example indices -> this process's padded sub-batches, stacked.

    Every process sees the same global indices and the sizes of all their graphs, so all pick the
    same bucket (the smallest that fits every sub-batch of the global batch) while each builds
    only its own ``num_shards // process_count`` sub-batches.
    """

    def __init__(self, examples: Sequence[Example], *, num_shards: int,
                 buckets: Sequence[Bucket], process_index: int = 0, process_count: int = 1,
                 extra: Callable[[int], Example] | None = None):
        if num_shards % process_count:
            raise ValueError(f"{num_shards} sub-batches do not split over {process_count} "
                             "processes")
        self.examples, self.sizes = examples, example_sizes(examples)
        self.num_shards, self.buckets = num_shards, tuple(sorted(buckets))
        self.process_index, self.process_count = process_index, process_count
        self.extra = extra  # per-graph labels, padded with -1 for the padding graph

    def __call__(self, indices: np.ndarray) -> Example:
        indices = np.asarray(indices).reshape(self.num_shards, -1)
        per_shard = self.sizes[indices].sum(1)
        bucket = choose_bucket(self.buckets, int(per_shard[:, 0].max()),
                               int(per_shard[:, 1].max()))
        local = self.num_shards // self.process_count
        mine = indices[self.process_index * local:(self.process_index + 1) * local]
        subs = [self.sub_batch(row, bucket) for row in mine]
        return {k: np.stack([s[k] for s in subs]) for k in subs[0]}

    def sub_batch(self, row: np.ndarray, bucket: Bucket) -> Example:
        out = pad_examples([self.examples[i] for i in row], bucket, len(row))
        if self.extra is not None:
            labels = [self.extra(int(i)) for i in row]
            for key in labels[0]:
                values = np.array([lab[key] for lab in labels])
                out[key] = np.concatenate([values, np.full((1,) + values.shape[1:], -1,
                                                           values.dtype)])
        return out


def graph_dataset(examples: Sequence[Example], *, graphs_per_batch: int, num_shards: int,
                  buckets: Sequence[Bucket], seed: int = 0, shuffle: bool = True,
                  num_epochs: int | None = None, process_index: int = 0, process_count: int = 1,
                  extra: Callable[[int], Example] | None = None) -> grain.IterDataset:
    """Padded graph batches: ``[num_shards // process_count, ...]`` per array, per process.

    ``graphs_per_batch`` is global and splits evenly over ``num_shards`` sub-batches. With
    ``shuffle`` the order is a seeded permutation, reshuffled every epoch; ``num_epochs=None``
    repeats forever; the last partial batch of a finite run is dropped.
    """
    if graphs_per_batch % num_shards:
        raise ValueError(f"{graphs_per_batch} graphs per batch do not split into {num_shards} "
                         "sub-batches")
    if len(examples) < graphs_per_batch:
        raise ValueError(f"{len(examples)} graphs are fewer than one batch of {graphs_per_batch}")
    batcher = ShardedGraphBatcher(examples, num_shards=num_shards, buckets=buckets,
                                  process_index=process_index, process_count=process_count,
                                  extra=extra)
    ds = grain.MapDataset.range(len(examples))
    if shuffle:
        ds = ds.shuffle(seed=seed)
    if num_epochs != 1:
        ds = ds.repeat(num_epochs)
    ds = ds.batch(graphs_per_batch, drop_remainder=True, batch_fn=np.array).map(batcher)
    return ds.to_iter_dataset()


def check_edge_indices(example: Example, name: str) -> None:
    """NetworkError naming the graph and the first edge whose endpoint is not a node."""
    n = len(example["nodes"])
    for field in ("senders", "receivers"):
        bad = np.flatnonzero((example[field] < 0) | (example[field] >= n))
        if bad.size:
            i = int(bad[0])
            raise NetworkError(f"{name}: edge {i} has {field[:-1]} {int(example[field][i])}, "
                               f"out of range for {n} nodes")
