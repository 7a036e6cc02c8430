"""Graph batching and the graph VAE: permutation and padding invariance, buckets, PE, losses."""

import jax
import numpy as np
import pytest
from flax import nnx

from astrojax.config import DEFAULT_LOGICAL_AXIS_RULES
from astrojax.data import graphs
from astrojax.data.metabolic import (
    NUM_EDGE_FEATURES,
    NUM_NODE_FEATURES,
    MetabolicNetwork,
    NetworkError,
)
from astrojax.models.graph_vae import GraphVAE, elbo_loss, kl_weight, loss_sums, tiny_graph_config
from astrojax.sharding import logical_to_mesh_spec


def random_network(rng: np.random.Generator, m: int, r: int, name: str = "net"):
    per_reaction = rng.integers(2, min(5, m) + 1, r)
    met = np.concatenate([rng.choice(m, k, replace=False) for k in per_reaction])
    rxn = np.repeat(np.arange(r), per_reaction)
    coef = np.where(rng.random(len(met)) < 0.5, -1.0, 2.0).astype(np.float32)
    return MetabolicNetwork(
        name=name, metabolite_ids=tuple(f"m{i}" for i in range(m)),
        element_counts=rng.integers(0, 7, (m, 7)).astype(np.float32),
        formula_known=rng.random(m) < 0.9, charge=rng.integers(-2, 3, m).astype(np.float32),
        compartment=rng.integers(0, 4, m).astype(np.int32),
        metabolite_boundary=rng.random(m) < 0.1, reaction_ids=tuple(f"r{j}" for j in range(r)),
        reversible=rng.random(r) < 0.5, reaction_boundary=rng.random(r) < 0.1,
        stoich_metabolite=met.astype(np.int32), stoich_reaction=rxn.astype(np.int32),
        coefficient=coef)


@pytest.fixture(scope="module")
def examples():
    rng = np.random.default_rng(0)
    return [graphs.graph_example(random_network(rng, int(rng.integers(4, 25)),
                                                int(rng.integers(2, 15)), f"g{i}"), 4)
            for i in range(24)]


def make(cfg, *args) -> GraphVAE:
    """A GraphVAE built eagerly (no mesh: its parameters' logical axes are only metadata)."""
    with nnx.use_eager_sharding(False):
        return GraphVAE(cfg, NUM_NODE_FEATURES, NUM_EDGE_FEATURES, *args, rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def model():
    return make(tiny_graph_config())


def permuted(ex: dict, perm: np.ndarray) -> dict:
    """The same graph with node i renamed perm[i], edges shuffled, PE recomputed from scratch."""
    n = len(ex["nodes"])
    inverse = np.empty(n, int)
    inverse[perm] = np.arange(n)
    edge_order = np.random.default_rng(1).permutation(len(ex["senders"]))
    out = dict(ex)
    out["nodes"] = ex["nodes"][inverse]
    out["senders"] = perm[ex["senders"]][edge_order].astype(np.int32)
    out["receivers"] = perm[ex["receivers"]][edge_order].astype(np.int32)
    out["edges"] = ex["edges"][edge_order]
    out["links"] = perm[ex["links"]].astype(np.int32)
    out["pe"] = graphs.random_walk_encoding(out["senders"], out["receivers"], n,
                                            ex["pe"].shape[1])
    return out


def test_random_walk_encoding_is_equivariant_and_bipartite(examples):
    ex = examples[0]
    n = len(ex["nodes"])
    perm = np.random.default_rng(2).permutation(n)
    np.testing.assert_allclose(permuted(ex, perm)["pe"][perm], ex["pe"], atol=1e-6)
    assert np.all((ex["pe"] >= 0) & (ex["pe"] <= 1))
    # A 4-cycle: after 2 moves a walk is back home with probability 1/2.
    pe = graphs.random_walk_encoding(np.array([0, 1, 1, 2, 2, 3, 3, 0]),
                                     np.array([1, 0, 2, 1, 3, 2, 0, 3]), 4, 2)
    np.testing.assert_allclose(pe, [[0.5, 0.5]] * 4)


def test_random_walk_encoding_matches_dense_matrix_powers(examples):
    ex = examples[3]
    n = len(ex["nodes"])
    adjacency = np.zeros((n, n))
    np.add.at(adjacency, (ex["receivers"], ex["senders"]), 1.0)
    walk = adjacency / np.maximum(adjacency.sum(1, keepdims=True), 1.0)
    expected = [np.diagonal(np.linalg.matrix_power(walk, 2 * k)) for k in (1, 2, 3, 4)]
    np.testing.assert_allclose(ex["pe"], np.stack(expected, 1), atol=1e-6)


def test_graph_level_outputs_are_permutation_invariant(model, examples):
    bucket = graphs.Bucket(128, 512)
    batch = graphs.pad_examples(examples[:3], bucket, 3)
    perms = [np.random.default_rng(3 + i).permutation(len(e["nodes"]))
             for i, e in enumerate(examples[:3])]
    batch_p = graphs.pad_examples([permuted(e, p) for e, p in zip(examples[:3], perms,
                                                                   strict=True)], bucket, 3)
    enc, enc_p = model.encode(batch), model.encode(batch_p)
    np.testing.assert_allclose(enc_p.graph_mean, enc.graph_mean, atol=1e-5)
    np.testing.assert_allclose(enc_p.graph_logvar, enc.graph_logvar, atol=1e-5)
    # Node outputs move with their nodes.
    n0 = len(examples[0]["nodes"])
    np.testing.assert_allclose(enc_p.node_mean[:n0][perms[0]], enc.node_mean[:n0], atol=1e-5)


def test_padding_does_not_change_real_outputs(model, examples):
    small = graphs.pad_examples(examples[:2], graphs.Bucket(64, 256), 2)
    large = graphs.pad_examples(examples[:2], graphs.Bucket(256, 1024), 2)
    enc_s, enc_l = model.encode(small), model.encode(large)
    real = small["node_mask"]
    np.testing.assert_allclose(enc_l.node_mean[:64][real], enc_s.node_mean[real], atol=1e-5)
    np.testing.assert_allclose(enc_l.graph_mean[:2], enc_s.graph_mean[:2], atol=1e-5)
    sums_s = loss_sums(model, small, jax.random.key(0), sample=False)
    sums_l = loss_sums(model, large, jax.random.key(0), sample=False)
    for name in ("feature_se_sum", "node_kl_sum", "graph_kl_sum", "nodes", "links", "graphs"):
        np.testing.assert_allclose(sums_l[name], sums_s[name], rtol=1e-5, err_msg=name)


def test_positional_encoding_is_used(model, examples):
    batch = graphs.pad_examples(examples[:2], graphs.Bucket(64, 256), 2)
    shuffled = dict(batch, pe=np.random.default_rng(0).permutation(batch["pe"]))
    assert not np.allclose(model.encode(shuffled).graph_mean, model.encode(batch).graph_mean)


def test_pad_examples_layout(examples):
    batch = graphs.pad_examples(examples[:3], graphs.Bucket(96, 384), 3)
    n = [len(e["nodes"]) for e in examples[:3]]
    assert batch["n_node"].tolist() == n + [96 - sum(n)]
    assert batch["n_node"].sum() == 96 and batch["n_edge"].sum() == 384
    assert batch["graph_mask"].tolist() == [True, True, True, False]
    assert batch["node_graph"][: n[0]].tolist() == [0] * n[0]
    assert np.all(batch["node_graph"][sum(n):] == 3)
    pad = ~batch["edge_mask"]
    assert np.all(batch["senders"][pad] >= sum(n)) and np.all(batch["receivers"][pad] >= sum(n))
    # Every link joins a metabolite to a reaction node of the same graph; negatives come from
    # that graph's reactions.
    links = batch["links"][batch["link_mask"]]
    is_reaction = batch["nodes"][:, 1] == 1
    assert np.all(~is_reaction[links[:, 0]]) and np.all(is_reaction[links[:, 1]])
    start = batch["negative_start"][batch["link_mask"]]
    stop = start + batch["negative_count"][batch["link_mask"]]
    assert np.all(is_reaction[start]) and np.all(is_reaction[stop - 1])
    assert np.all(batch["node_graph"][start] == batch["node_graph"][stop - 1])


def test_buckets_cover_worst_case_and_errors_name_sizes(examples):
    sizes = graphs.example_sizes(examples)
    buckets = graphs.default_buckets(sizes, 4)
    worst = max(buckets)
    top = np.sort(sizes[:, 0])[-4:].sum()
    assert worst.fits(top, np.sort(sizes[:, 1])[-4:].sum())
    assert len(buckets) >= 2 and buckets == tuple(sorted(buckets))
    with pytest.raises(ValueError, match="10000 nodes.*data.graph_buckets"):
        graphs.choose_bucket(buckets, 10_000, 10)
    with pytest.raises(ValueError, match="do not fit bucket"):
        graphs.pad_examples(examples[:4], graphs.Bucket(8, 8), 4)


def test_edge_index_out_of_range_names_the_edge(examples):
    bad = dict(examples[0], receivers=examples[0]["receivers"].copy())
    bad["receivers"][5] = 999
    with pytest.raises(NetworkError, match=r"bad.xml: edge 5 has receiver 999, out of range"):
        graphs.check_edge_indices(bad, "bad.xml")


def test_graph_dataset_is_deterministic_and_resumes(examples):
    def make():
        return graphs.graph_dataset(examples, graphs_per_batch=8, num_shards=2,
                                    buckets=graphs.default_buckets(
                                        graphs.example_sizes(examples), 4), seed=3)
    it = iter(make())
    first = [next(it) for _ in range(2)]
    state = it.get_state()
    rest = [next(it) for _ in range(4)]
    again = iter(make())
    again.set_state(state)
    for a, b in zip(rest, [next(again) for _ in range(4)], strict=True):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    assert first[0]["nodes"].shape[0] == 2 and first[0]["graph_mask"].shape == (2, 5)


def test_processes_share_buckets_and_split_sub_batches(examples):
    buckets = graphs.default_buckets(graphs.example_sizes(examples), 2)
    batcher = {p: graphs.ShardedGraphBatcher(examples, num_shards=4, buckets=buckets,
                                             process_index=p, process_count=2) for p in (0, 1)}
    whole = graphs.ShardedGraphBatcher(examples, num_shards=4, buckets=buckets)
    indices = np.arange(8)
    full = whole(indices)
    parts = [batcher[p](indices) for p in (0, 1)]
    for k in full:
        np.testing.assert_array_equal(np.concatenate([parts[0][k], parts[1][k]]), full[k])


def test_losses_are_finite_and_kl_warms_up(model, examples):
    cfg = tiny_graph_config(beta=0.5, kl_warmup_steps=10)
    batch = graphs.pad_examples(examples[:4], graphs.Bucket(128, 512), 4)
    sums = loss_sums(model, batch, jax.random.key(0), sample=True)
    loss, parts = elbo_loss(cfg, sums, step=5)
    assert np.isfinite(loss) and float(parts["kl_beta"]) == pytest.approx(0.25)
    assert float(kl_weight(cfg, 100)) == pytest.approx(0.5)
    assert sums["links"] == sum(len(e["links"]) for e in examples[:4])


def test_mlp_edge_decoder(examples):
    model = make(tiny_graph_config(edge_decoder="mlp"))
    batch = graphs.pad_examples(examples[:2], graphs.Bucket(64, 256), 2)
    logits = model.link_logits(model.encode(batch).node_mean, batch["links"])
    assert logits.shape == (128,) and np.all(np.isfinite(logits))


def test_structural_edge_decoder_reads_pair_features(examples):
    model = make(tiny_graph_config(edge_decoder="structural"), 3)
    batch = graphs.pad_examples(examples[:2], graphs.Bucket(64, 256), 2)
    z_nz = model.encode(batch).node_mean
    features = np.random.default_rng(0).normal(size=(128, 3)).astype(np.float32)
    logits = model.link_logits(z_nz, batch["links"], features)
    assert logits.shape == (128,) and np.all(np.isfinite(logits))
    assert not np.allclose(logits, model.link_logits(z_nz, batch["links"], features + 1.0))
    with pytest.raises(ValueError, match="needs pair features"):
        make(tiny_graph_config(edge_decoder="structural"))


def test_every_parameter_has_logical_axes_that_replicate_by_default():
    """The graph VAE's widths are named (so a run can read its constraints off the abstract
    parameters) and the default rules keep all of them replicated."""
    with nnx.use_eager_sharding(False):
        abstract = nnx.eval_shape(lambda: GraphVAE(
            tiny_graph_config(edge_decoder="structural"), NUM_NODE_FEATURES, NUM_EDGE_FEATURES,
            3, rngs=nnx.Rngs(0)))
    params = nnx.state(abstract, nnx.Param)
    is_spec = lambda s: isinstance(s, jax.sharding.PartitionSpec)  # noqa: E731
    specs = {jax.tree_util.keystr(p): s for p, s in
             jax.tree.leaves_with_path(nnx.get_partition_spec(params), is_leaf=is_spec)}
    leaves = dict(jax.tree.leaves_with_path(params))
    assert len(specs) == len(leaves)
    for (path, leaf), spec in zip(leaves.items(), specs.values(), strict=True):
        assert is_spec(spec) and len(spec) == leaf.ndim, jax.tree_util.keystr(path)
        replicated = jax.sharding.PartitionSpec(*[None] * leaf.ndim)
        assert logical_to_mesh_spec(spec, DEFAULT_LOGICAL_AXIS_RULES) == replicated
    named = {k.removesuffix(".value"): tuple(s) for k, s in specs.items()}
    assert named["['layers'][0]['query']['kernel']"] == ("graph_embed", "graph_heads")
    assert named["['layers'][0]['out']['kernel']"] == ("graph_heads", "graph_embed")
    assert named["['layers'][1]['mlp']['up']['kernel']"] == ("graph_embed", "graph_mlp")
    assert named["['layers'][1]['attn_norm']['scale']"] == ("norm",)
    assert named["['embed_nodes']['kernel']"] == (None, "graph_embed")
    assert named["['link_mlp']['down']['bias']"] == (None,)


def test_pad_examples_places_held_out_links_per_graph(examples):
    first, second = dict(examples[0]), dict(examples[1])
    first["heldout_pairs"], first["heldout_negatives"] = np.array([[0, 1]]), np.array([[1, 2]])
    second["heldout_pairs"] = np.array([[2, 3], [0, 4]])
    second["heldout_negatives"] = np.array([[1, 3], [2, 4]])
    batch = graphs.pad_examples([first, second], graphs.Bucket(64, 256), 3)
    offset = len(first["nodes"])
    np.testing.assert_array_equal(batch["heldout_pairs"][:3],
                                  [[0, 1], [2 + offset, 3 + offset], [offset, 4 + offset]])
    np.testing.assert_array_equal(batch["heldout_negatives"][1], [1 + offset, 3 + offset])
    np.testing.assert_array_equal(batch["heldout_graph"][:4], [0, 1, 1, 3])
    assert batch["heldout_mask"].sum() == 3 and not batch["heldout_mask"][3:].any()
    assert "heldout_pairs" not in graphs.pad_examples(examples[:2], graphs.Bucket(64, 256), 2)
