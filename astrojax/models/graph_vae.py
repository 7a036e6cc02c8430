"""Graph VAE for metabolic networks: a graph transformer encoder, node and graph latents, decoders.

The model reads one padded sub-batch (see ``astrojax.data.graphs``): node features ``x_nf``,
random-walk positional encodings ``pe_nr``, edge features ``e_ec``, ``senders``/``receivers``
and the graph id of every node. Graph transformer layers let each node attend over its
incoming edges (``jraph.segment_softmax``), with the edge features added to keys and values;
a node latent ``z_nz`` and a graph latent ``z_gy`` come out, each a diagonal Gaussian. The
decoders score links from node latents (inner product or MLP; or, ``structural``, an MLP over
the latents' product and the pair's structural scores ``f_lp``, such as its count of paths of
three, computed on the message-passing graph, as SEAL-style link predictors do), rebuild node
features from the node latent together with its graph's latent, and rebuild a summary of each
graph (its mean node features and log sizes) from the graph latent alone: without that last
term the node latents carry everything and the graph latent (the embedding the fusion model
consumes) learns little.

Shapes are lettered: n nodes, e edges, g graphs (the last is jraph's padding graph), l links,
f node features, c edge features, r positional-encoding steps, d hidden, h heads, k head dim,
m mlp, z node latent, y graph latent, p pair features.

Layers are :mod:`astrojax.models.layers`' ``Dense``, ``LayerNorm`` and ``MLP``; their widths
carry the logical names ``graph_embed``, ``graph_heads`` and ``graph_mlp``, which the default
rules replicate.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import jraph
from flax import nnx

from astrojax.config import GraphVAEConfig
from astrojax.models.layers import MLP, Dense, LayerNorm, to_dtype

# Logical axis names of the graph models' widths (residual, attention heads x head dim, MLP):
# all map to None (replicated) in DEFAULT_LOGICAL_AXIS_RULES. The models are small and message
# passing gathers along nodes, so only the data is split. Input, latent and concatenated widths
# are left unnamed.
_HIDDEN, _HEADS, _MLP = "graph_embed", "graph_heads", "graph_mlp"


def tiny_graph_config(**overrides) -> GraphVAEConfig:
    """A GraphVAEConfig small enough for unit tests on a 2-core CPU."""
    base = GraphVAEConfig(hidden_dim=16, num_layers=2, num_heads=2, mlp_dim=32,
                          node_latent_dim=4, graph_latent_dim=8, random_walk_steps=4)
    return dataclasses.replace(base, **overrides)


def _segment_sum(x, segments, num_segments):
    return jax.ops.segment_sum(x, segments, num_segments=num_segments)


class GraphTransformerLayer(nnx.Module):
    """Pre-norm multi-head attention over incoming edges, then a pre-norm feed-forward block."""

    def __init__(self, cfg: GraphVAEConfig, num_edge_features: int, *, rngs: nnx.Rngs):
        d, dtype = cfg.hidden_dim, to_dtype(cfg.dtype)
        self.num_heads, self.head_dim = cfg.num_heads, d // cfg.num_heads
        qkv, edge = (_HIDDEN, _HEADS), (None, _HEADS)
        self.attn_norm = LayerNorm(d, dtype=dtype, rngs=rngs)
        self.query = Dense(d, d, qkv, dtype=dtype, rngs=rngs)
        self.key = Dense(d, d, qkv, dtype=dtype, rngs=rngs)
        self.value = Dense(d, d, qkv, dtype=dtype, rngs=rngs)
        self.edge_key = Dense(num_edge_features, d, edge, dtype=dtype, rngs=rngs)
        self.edge_value = Dense(num_edge_features, d, edge, dtype=dtype, rngs=rngs)
        self.out = Dense(d, d, (_HEADS, _HIDDEN), dtype=dtype, rngs=rngs)
        self.mlp_norm = LayerNorm(d, dtype=dtype, rngs=rngs)
        self.mlp = MLP(d, cfg.mlp_dim, d, (_HIDDEN, _MLP, _HIDDEN), dtype=dtype, rngs=rngs)

    def __call__(self, h_nd, e_ec, senders_e, receivers_e):
        n, hk = h_nd.shape[0], (self.num_heads, self.head_dim)
        x_nd = self.attn_norm(h_nd)
        q_ehk = self.query(x_nd)[receivers_e].reshape(-1, *hk)
        k_ehk = (self.key(x_nd)[senders_e] + self.edge_key(e_ec)).reshape(-1, *hk)
        v_ehk = (self.value(x_nd)[senders_e] + self.edge_value(e_ec)).reshape(-1, *hk)
        logits_eh = jnp.einsum("ehk,ehk->eh", q_ehk, k_ehk).astype(jnp.float32)
        weights_eh = jraph.segment_softmax(logits_eh * self.head_dim**-0.5, receivers_e, n)
        messages = weights_eh[..., None].astype(v_ehk.dtype) * v_ehk
        h_nd = h_nd + self.out(_segment_sum(messages, receivers_e, n).reshape(n, -1))
        return h_nd + self.mlp(self.mlp_norm(h_nd))


@dataclasses.dataclass(frozen=True)
class Encoding:
    """Diagonal Gaussian posteriors of the node and graph latents (float32)."""

    node_mean: jax.Array  # [n, z]
    node_logvar: jax.Array
    graph_mean: jax.Array  # [g, y]
    graph_logvar: jax.Array


jax.tree_util.register_dataclass(
    Encoding, data_fields=["node_mean", "node_logvar", "graph_mean", "graph_logvar"],
    meta_fields=[])


class GraphVAE(nnx.Module):
    """Encoder, latent heads and decoders. Holds only parameters; randomness comes in as keys."""

    def __init__(self, cfg: GraphVAEConfig, num_node_features: int, num_edge_features: int,
                 num_pair_features: int = 0, *, rngs: nnx.Rngs):
        d, dtype = cfg.hidden_dim, to_dtype(cfg.dtype)
        self.cfg, self.num_node_features = cfg, num_node_features
        kw = dict(dtype=dtype, rngs=rngs)
        self.embed_nodes = Dense(num_node_features, d, (None, _HIDDEN), **kw)
        self.embed_pe = Dense(max(cfg.random_walk_steps, 1), d, (None, _HIDDEN), **kw)
        self.layers = nnx.List([GraphTransformerLayer(cfg, num_edge_features, rngs=rngs)
                                for _ in range(cfg.num_layers)])
        self.final_norm = LayerNorm(d, **kw)
        self.node_head = Dense(d, 2 * cfg.node_latent_dim, (_HIDDEN, None), **kw)
        self.pool_score = Dense(d, 1, (_HIDDEN, None), **kw)
        mlp_axes = (None, _MLP, None)
        self.graph_head = MLP(2 * d, cfg.mlp_dim, 2 * cfg.graph_latent_dim, mlp_axes, **kw)
        z, y = cfg.node_latent_dim, cfg.graph_latent_dim
        if cfg.edge_decoder == "mlp":
            self.link_mlp = MLP(2 * z, cfg.mlp_dim, 1, mlp_axes, **kw)
        elif cfg.edge_decoder == "structural":
            if num_pair_features < 1:
                raise ValueError("the structural edge decoder needs pair features")
            self.link_mlp = MLP(z + num_pair_features, cfg.mlp_dim, 1, mlp_axes, **kw)
        self.feature_decoder = MLP(z + y, cfg.mlp_dim, num_node_features, mlp_axes, **kw)
        self.summary_decoder = MLP(y, cfg.mlp_dim, num_node_features + 2, mlp_axes, **kw)

    def encode(self, batch: dict[str, jax.Array]) -> Encoding:
        """Posterior parameters for one padded sub-batch."""
        h_nd = self.embed_nodes(batch["nodes"])
        if self.cfg.random_walk_steps:
            h_nd = h_nd + self.embed_pe(batch["pe"])
        for layer in self.layers:
            h_nd = layer(h_nd, batch["edges"], batch["senders"], batch["receivers"])
        h_nd = self.final_norm(h_nd)
        node_mean, node_logvar = jnp.split(self.node_head(h_nd).astype(jnp.float32), 2, -1)
        pooled = self.pool(h_nd, batch["node_graph"], batch["node_mask"],
                           batch["graph_mask"].shape[0])
        graph_mean, graph_logvar = jnp.split(self.graph_head(pooled).astype(jnp.float32), 2, -1)
        return Encoding(node_mean, node_logvar, graph_mean, graph_logvar)

    def pool(self, h_nd, node_graph_n, node_mask_n, num_graphs: int):
        """Attention pooling and mean pooling of each graph's real nodes, concatenated."""
        mask = node_mask_n[:, None]
        scores = jnp.where(node_mask_n, self.pool_score(h_nd)[:, 0].astype(jnp.float32), -1e9)
        weights = jraph.segment_softmax(scores, node_graph_n, num_graphs)[:, None]
        attended = _segment_sum(weights.astype(h_nd.dtype) * h_nd, node_graph_n, num_graphs)
        counts = _segment_sum(mask.astype(jnp.float32), node_graph_n, num_graphs)
        mean = _segment_sum(jnp.where(mask, h_nd, 0), node_graph_n, num_graphs)
        mean = mean / jnp.maximum(counts, 1.0).astype(h_nd.dtype)
        return jnp.concatenate([attended, mean], axis=-1)

    def link_logits(self, z_nz, pairs_l2, features_lp=None):
        """Logit that each (i, j) pair of nodes is linked; ``features_lp`` are the pairs'
        structural scores, read by the ``structural`` decoder only."""
        zi, zj = z_nz[pairs_l2[:, 0]], z_nz[pairs_l2[:, 1]]
        if self.cfg.edge_decoder == "inner_product":
            return jnp.sum(zi * zj, axis=-1)
        if self.cfg.edge_decoder == "structural":
            inputs = jnp.concatenate([zi * zj, features_lp.astype(zi.dtype)], -1)
        else:
            inputs = jnp.concatenate([zi, zj], -1)
        return self.link_mlp(inputs.astype(self.link_mlp.up.kernel.dtype))[:, 0].astype(
            jnp.float32)

    def decode_features(self, z_nz, z_gy, node_graph_n):
        """Each node's features from its own latent and its graph's latent."""
        inputs = jnp.concatenate([z_nz, z_gy[node_graph_n]], -1)
        return self.feature_decoder(inputs.astype(self.feature_decoder.up.kernel.dtype)
                                    ).astype(jnp.float32)


def graph_summary(batch: dict[str, jax.Array]) -> jax.Array:
    """What the graph latent must rebuild on its own: each graph's mean node features and its
    log node and edge counts, ``[g, f + 2]``."""
    num_graphs = batch["graph_mask"].shape[0]
    sums = _segment_sum(jnp.where(batch["node_mask"][:, None], batch["nodes"], 0.0),
                        batch["node_graph"], num_graphs)
    n_node = batch["n_node"].astype(jnp.float32)
    return jnp.concatenate([sums / jnp.maximum(n_node, 1.0)[:, None],
                            jnp.log1p(n_node)[:, None] / 5.0,
                            jnp.log1p(batch["n_edge"].astype(jnp.float32))[:, None] / 5.0], -1)


def reparameterize(mean, logvar, key):
    return mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape, mean.dtype)


def gaussian_kl(mean, logvar):
    """KL(N(mean, exp(logvar)) || N(0, 1)) summed over the last axis."""
    return 0.5 * jnp.sum(jnp.exp(logvar) + mean**2 - 1.0 - logvar, axis=-1)


def negative_links(batch: dict[str, jax.Array], key) -> jax.Array:
    """For each link (metabolite, reaction), the same metabolite with a reaction drawn uniformly
    from its own graph (``negative_start`` + [0, ``negative_count``))."""
    u = jax.random.uniform(key, batch["negative_count"].shape)
    offset = jnp.minimum(jnp.floor(u * batch["negative_count"]).astype(jnp.int32),
                         batch["negative_count"] - 1)
    return jnp.stack([batch["links"][:, 0], batch["negative_start"] + offset], axis=-1)


def loss_sums(model: GraphVAE, batch: dict[str, jax.Array], key, *,
              sample: bool) -> dict[str, jax.Array]:
    """Additive loss statistics of one sub-batch: sums over real links, nodes and graphs.

    ``sample`` draws latents by reparameterisation (training); otherwise the posterior means
    are used (evaluation). Negatives come with the batch (``negatives``, one per link, with
    ``link_features`` and ``negative_features`` for the structural decoder) or are drawn from
    ``key``.
    """
    key_node, key_graph, key_neg = jax.random.split(key, 3)
    enc = model.encode(batch)
    z_nz, z_gy = enc.node_mean, enc.graph_mean
    if sample:
        z_nz = reparameterize(enc.node_mean, enc.node_logvar, key_node)
        z_gy = reparameterize(enc.graph_mean, enc.graph_logvar, key_graph)
    link_mask, node_mask = batch["link_mask"], batch["node_mask"]
    negatives = batch["negatives"] if "negatives" in batch else negative_links(batch, key_neg)
    pos = model.link_logits(z_nz, batch["links"], batch.get("link_features"))
    neg = model.link_logits(z_nz, negatives, batch.get("negative_features"))
    link_bce = jax.nn.softplus(-pos) + jax.nn.softplus(neg)
    features = model.decode_features(z_nz, z_gy, batch["node_graph"])
    feature_se = jnp.mean((features - batch["nodes"]) ** 2, axis=-1)
    summary = model.summary_decoder(z_gy.astype(model.summary_decoder.up.kernel.dtype))
    summary_se = jnp.mean((summary.astype(jnp.float32) - graph_summary(batch)) ** 2, axis=-1)
    node_kl = gaussian_kl(enc.node_mean, enc.node_logvar)
    graph_kl = gaussian_kl(enc.graph_mean, enc.graph_logvar)

    def masked_sum(x, mask):
        return jnp.sum(jnp.where(mask, x, 0.0))

    return {
        "link_bce_sum": masked_sum(link_bce, link_mask),
        "link_correct": masked_sum((pos > 0).astype(jnp.float32) + (neg < 0), link_mask),
        "links": jnp.sum(link_mask).astype(jnp.float32),
        "feature_se_sum": masked_sum(feature_se, node_mask),
        "node_kl_sum": masked_sum(node_kl, node_mask),
        "graph_kl_sum": masked_sum(graph_kl, batch["graph_mask"]),
        "summary_se_sum": masked_sum(summary_se, batch["graph_mask"]),
        "nodes": jnp.sum(node_mask).astype(jnp.float32),
        "graphs": jnp.sum(batch["graph_mask"]).astype(jnp.float32),
    }


def kl_weight(cfg: GraphVAEConfig, step) -> jax.Array:
    """beta, warmed up linearly over ``kl_warmup_steps``."""
    if cfg.kl_warmup_steps == 0:
        return jnp.asarray(cfg.beta, jnp.float32)
    return cfg.beta * jnp.minimum(1.0, jnp.asarray(step, jnp.float32) / cfg.kl_warmup_steps)


def elbo_loss(cfg: GraphVAEConfig, sums: dict[str, jax.Array], step) -> tuple[jax.Array, dict]:
    """The loss (negative ELBO per node, with weights) from statistics summed over sub-batches.

    Link reconstruction is a mean over links, feature reconstruction a mean over nodes, the
    graph summary (mean node features and log sizes, from the graph latent alone) a mean over
    graphs, and the node and graph KL terms are divided by the number of nodes, as in VGAE.
    """
    links, nodes = jnp.maximum(sums["links"], 1.0), jnp.maximum(sums["nodes"], 1.0)
    link_bce = sums["link_bce_sum"] / links
    feature_mse = sums["feature_se_sum"] / nodes
    summary_mse = sums["summary_se_sum"] / jnp.maximum(sums["graphs"], 1.0)
    kl = (sums["node_kl_sum"] + sums["graph_kl_sum"]) / nodes
    beta = kl_weight(cfg, step)
    loss = (link_bce + cfg.feature_weight * feature_mse + cfg.summary_weight * summary_mse
            + beta * kl)
    return loss, {"link_bce": link_bce, "feature_mse": feature_mse,
                  "summary_mse": summary_mse, "kl_per_node": kl,
                  "kl_beta": beta, "link_accuracy": sums["link_correct"] / (2 * links)}
