"""The multimodal fusion model: planet-level predictions from whatever modalities a planet has.

Each modality becomes tokens in a shared width ``d``, plus a learned modality embedding:

- the catalogue row (:class:`RowEncoder`): one token per column, from the value *and* its
  known mask (an unknown value becomes a learned "missing" token of that column, never a 0
  the model could mistake for a measurement);
- a transmission spectrum (:class:`SpectrumEncoder`): bins grouped into patches of
  ``spectrum_patch`` (depth, log error and known flag per bin), a linear patch embedding, a
  learned position, and a few pre-norm transformer blocks;
- a climate cube (a :class:`~astrojax.models.datacube_vit.DatacubeViT`'s planet embedding), a
  metabolic network (a :class:`~astrojax.models.graph_vae.GraphVAE` encoder's graph latent
  mean) and a text (a :class:`~astrojax.models.transformer.Transformer`'s hidden states,
  averaged over the text's tokens): one token each through a linear projection. Their
  encoders are the single-modality models themselves, so their weights can start from a
  single-modality run (:class:`ModalityEncoders` says which to build);
- any modality given as one embedding vector computed outside (``embedding_inputs``): one
  token through a linear projection.

**Packed inputs.** Few planets have a cube, a network or a text, so their encoders do not run
on every planet of the batch. The batch is cut into ``G`` groups of consecutive planets (the
mesh splits the batch and these groups alike, so a group never straddles devices); each group
packs the inputs of its planets that have the modality into ``k`` slots: the cubes as
``climate [G, k, v, t, l, y, x]``, the texts as ``text [G, k, length]``, the networks of a
group as one padded graph batch ``network_* [G, ...]`` (jraph's layout: ``k`` graphs plus the
padding graph). ``NAME_slot [b]`` is the planet's slot in its group, -1 where it has none.
Encoders run on the ``G * k`` slots and each planet gathers its slot's token.

A learned planet token is prepended; the cross-modal transformer attends over the planet token
and the tokens of the modalities present (segment id 1; absent ones get segment id 0, which the
attention kernels treat as padding, so nothing about an absent modality's inputs reaches the
output). Heads read the planet token: one logit per binary label, logits per class for the
others, and mean and log variance per retrieval target.

Shapes are static: a planet lacking a modality still carries its (masked) arrays, so one
compilation serves every mix of modalities. Letters: b batch, c columns, s spectrum bins,
p patches, n tokens, d width.

:func:`fusion_losses` is the objective: cross-entropy per label (over the planets whose label
is known), Gaussian NLL per retrieval target, combined with fixed weights or with Kendall et
al. (2018)'s learned uncertainty weights.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from astrojax.config import DatacubeConfig, FusionConfig, GraphVAEConfig, TransformerConfig
from astrojax.models.datacube_vit import DatacubeViT
from astrojax.models.graph_vae import GraphVAE
from astrojax.models.layers import Attention, Block, Dense, RMSNorm, param
from astrojax.models.transformer import Transformer

_INITIAL_LOG_VAR = 0.0  # of the uncertainty weights: every loss term starts at weight 1


def _block(cfg: FusionConfig, rngs: nnx.Rngs) -> Block:
    def mixer(rngs: nnx.Rngs) -> Attention:
        return Attention(cfg.d_model, cfg.num_heads, cfg.num_heads, cfg.d_model // cfg.num_heads,
                         impl=cfg.attention_impl, causal=False, dtype=cfg.dtype,
                         param_dtype=cfg.param_dtype, rngs=rngs)

    return Block(cfg.d_model, cfg.mlp_dim, mixer, dtype=cfg.dtype, param_dtype=cfg.param_dtype,
                 rngs=rngs)


def _normal(stddev: float = 0.02):
    return nnx.initializers.normal(stddev=stddev)


class RowEncoder(nnx.Module):
    """Catalogue values ``[b, c]`` with known masks ``[b, c]`` -> tokens ``[b, c, d]``: a known
    value ``x`` of column ``j`` becomes ``x * w_j + b_j + e_j`` (values standardized by the
    caller), an unknown one ``m_j + e_j`` (``e_j`` the column's embedding)."""

    def __init__(self, num_columns: int, d_model: int, *, param_dtype: str = "float32",
                 rngs: nnx.Rngs):
        shape = (num_columns, d_model)
        axes = (None, "embed")
        self.w_value_cd = param(rngs, _normal(1.0), axes, shape, param_dtype)
        self.b_value_cd = param(rngs, nnx.initializers.zeros, axes, shape, param_dtype)
        self.missing_token_cd = param(rngs, _normal(), axes, shape, param_dtype)
        self.pos_column_cd = param(rngs, _normal(), axes, shape, param_dtype)

    def __call__(self, values_bc: jax.Array, known_bc: jax.Array) -> jax.Array:
        values_bc = jnp.where(known_bc, values_bc, 0.0).astype(jnp.float32)
        measured = values_bc[..., None] * self.w_value_cd[...] + self.b_value_cd[...]
        tokens = jnp.where(known_bc[..., None], measured, self.missing_token_cd[...])
        return tokens + self.pos_column_cd[...]


class SpectrumEncoder(nnx.Module):
    """A spectrum ``depth, sigma, known`` (each ``[b, s]``) -> tokens ``[b, s / patch, d]``.

    Per bin the features are the depth (zero where unknown), ``log10 sigma`` (zero where
    unknown) and the known flag; ``patch`` consecutive bins make one token through a linear
    embedding; a learned position per patch; ``layers`` pre-norm blocks of self-attention over
    the patches (unknown bins are features, not padding, so a partial spectrum still has all
    its patches). Depths are expected in units the caller chose (for example ppm / 1000)."""

    def __init__(self, cfg: FusionConfig, *, rngs: nnx.Rngs):
        if cfg.spectrum_bins % cfg.spectrum_patch:
            raise ValueError(f"spectrum_bins={cfg.spectrum_bins} is not a multiple of "
                             f"spectrum_patch={cfg.spectrum_patch}")
        self.patch = cfg.spectrum_patch
        num_patches = cfg.spectrum_bins // cfg.spectrum_patch
        self.embed = Dense(3 * cfg.spectrum_patch, cfg.d_model, (None, "embed"),
                           param_dtype=cfg.param_dtype, rngs=rngs)
        self.pos_patch_pd = param(rngs, _normal(), (None, "embed"), (num_patches, cfg.d_model),
                                  cfg.param_dtype)
        self.blocks = nnx.List([_block(cfg, rngs) for _ in range(cfg.spectrum_layers)])

    def __call__(self, depth_bs, sigma_bs, known_bs) -> jax.Array:
        b, s = depth_bs.shape
        known = known_bs.astype(bool)
        depth = jnp.where(known, depth_bs, 0.0)
        log_sigma = jnp.where(known, jnp.log10(jnp.maximum(sigma_bs, 1e-12)), 0.0)
        features_bs3 = jnp.stack([depth, log_sigma, known.astype(jnp.float32)], axis=-1)
        patches = features_bs3.reshape(b, s // self.patch, self.patch * 3).astype(jnp.float32)
        x_bpd = self.embed(patches) + self.pos_patch_pd[...]
        for block in self.blocks:
            x_bpd = block(x_bpd)
        return x_bpd


@dataclasses.dataclass(frozen=True)
class ModalityEncoders:
    """The single-modality encoders a fusion model holds (None: that modality is not read).

    ``climate``: a DatacubeConfig with the cube's channels (variables x levels) and (time, lat,
    lon) grid; ``network``: a GraphVAEConfig with the node and edge feature widths; ``text``:
    a TransformerConfig (byte tokens; ``pad_id`` marks padding)."""

    climate: tuple[DatacubeConfig, int, tuple[int, int, int]] | None = None
    network: tuple[GraphVAEConfig, int, int] | None = None
    text: TransformerConfig | None = None
    pad_id: int = 0

    def names(self) -> tuple[str, ...]:
        return tuple(n for n in ("climate", "network", "text") if getattr(self, n) is not None)


GRAPH_KEYS = ("nodes", "pe", "edges", "senders", "receivers", "node_graph", "node_mask",
               "graph_mask")


def gather_slots(tokens_gkd: jax.Array, slot_b: jax.Array) -> jax.Array:
    """Each planet's token from its group's packed slots: ``[G, k, d]``, ``[b]`` -> ``[b, d]``
    (planet ``i`` is in group ``i // (b / G)``; a slot of -1 reads slot 0, to be masked)."""
    g, _, d = tokens_gkd.shape
    slot_gm = jnp.maximum(slot_b, 0).reshape(g, -1)
    return jnp.take_along_axis(tokens_gkd, slot_gm[..., None], axis=1).reshape(-1, d)


class FusionModel(nnx.Module):
    """Planet batch -> ``{"embedding": [b, d], "logits/LABEL": [b] or [b, k],
    "mean/TARGET": [b], "logvar/TARGET": [b]}``.

    The batch holds ``row_values``/``row_known`` ``[b, c]`` (when ``cfg.row_columns``),
    ``spectrum_depth``/``spectrum_sigma``/``spectrum_known`` ``[b, s]`` and ``has_spectrum``
    ``[b]`` (when ``cfg.spectrum_bins``), the packed inputs of each encoder of ``encoders``
    with their ``NAME_slot`` ``[b]`` (see the module docstring), and per embedding input NAME
    ``NAME`` ``[b, width]`` with ``has_NAME`` ``[b]``. ``keep`` (``{"spectrum": [b] bool,
    NAME: [b] bool}``, optional) hides present modalities on top of the ``has_*`` flags and
    slots (modality dropout, ablations).
    """

    HEADS = ("class_heads", "retrieval_heads", "loss_weights")  # what a fine-tuning starts anew

    def __init__(self, cfg: FusionConfig, encoders: ModalityEncoders = ModalityEncoders(), *,
                 rngs: nnx.Rngs):
        if cfg.d_model % cfg.num_heads:
            raise ValueError(f"num_heads={cfg.num_heads} must divide d_model={cfg.d_model}")
        self.row_columns = tuple(cfg.row_columns)
        self.embedding_inputs = tuple(tuple(e) for e in cfg.embedding_inputs)
        self.classes = tuple(tuple(c) for c in cfg.classes)
        self.retrieval_targets = tuple(cfg.retrieval_targets)
        self.has_spectrum = cfg.spectrum_bins > 0
        self.encoded = encoders.names()
        self.pad_id = encoders.pad_id
        if not (self.row_columns or self.has_spectrum or self.embedding_inputs
                or self.encoded):
            raise ValueError("the fusion model needs at least one modality: row_columns, "
                             "spectrum_bins, encoders or embedding_inputs")
        d = cfg.d_model
        modalities = self.modalities()
        self.planet_token_d = param(rngs, _normal(), ("embed",), (d,), cfg.param_dtype)
        self.modality_md = param(rngs, _normal(), (None, "embed"), (len(modalities), d),
                                 cfg.param_dtype)
        if self.row_columns:
            self.row = RowEncoder(len(self.row_columns), d, param_dtype=cfg.param_dtype,
                                  rngs=rngs)
        if self.has_spectrum:
            self.spectrum = SpectrumEncoder(cfg, rngs=rngs)
        if encoders.climate is not None:
            climate_cfg, channels, grid = encoders.climate
            self.climate = DatacubeViT(climate_cfg, channels, grid, 0, rngs=rngs)
            self.climate_proj = Dense(climate_cfg.d_model, d, (None, "embed"),
                                   param_dtype=cfg.param_dtype, rngs=rngs)
        if encoders.network is not None:
            graph_cfg, node_features, edge_features = encoders.network
            self.network = GraphVAE(graph_cfg, node_features, edge_features, rngs=rngs)
            self.network_widths = (node_features, edge_features)
            self.network_proj = Dense(graph_cfg.graph_latent_dim, d, (None, "embed"),
                                      param_dtype=cfg.param_dtype, rngs=rngs)
        if encoders.text is not None:
            self.text = Transformer(encoders.text, rngs=rngs)
            self.text_proj = Dense(encoders.text.d_model, d, (None, "embed"),
                                   param_dtype=cfg.param_dtype, rngs=rngs)
        self.inputs = nnx.Dict({name: Dense(width, d, (None, "embed"),
                                            param_dtype=cfg.param_dtype, rngs=rngs)
                                for name, width in self.embedding_inputs})
        self.blocks = nnx.List([_block(cfg, rngs) for _ in range(cfg.num_layers)])
        self.final_norm = RMSNorm(d, rngs=rngs)
        self.class_heads = nnx.Dict({
            name: Dense(d, 1 if k == 2 else k, ("embed", None), param_dtype=cfg.param_dtype,
                        rngs=rngs) for name, k in self.classes})
        self.retrieval_heads = nnx.Dict({  # mean and log variance
            target: Dense(d, 2, ("embed", None), param_dtype=cfg.param_dtype, rngs=rngs)
            for target in self.retrieval_targets})
        self.contrastive = cfg.contrastive_weight > 0
        if self.contrastive:
            self.contrast = nnx.Dict({
                name: Dense(d, cfg.contrastive_dim, ("embed", None),
                            param_dtype=cfg.param_dtype, rngs=rngs) for name in modalities})
        if cfg.loss_weighting == "uncertainty":
            self.loss_weights = LossWeights(tuple(name for name, _ in self.classes)
                                            + self.retrieval_targets, rngs=rngs)

    def modalities(self) -> tuple[str, ...]:
        """The modality names in token order (their embeddings' rows)."""
        names = (("row",) if self.row_columns else ()) + (("spectrum",) if self.has_spectrum
                                                           else ())
        return names + self.encoded + tuple(name for name, _ in self.embedding_inputs)

    def absent_inputs(self, batch_size: int) -> dict[str, np.ndarray]:
        """Batch entries that say no planet of a batch has a climate cube, a network or a text
        (one group, one empty slot), for callers that cannot supply them (inference on
        catalogue rows alone)."""
        out = {}
        for name in self.encoded:
            out[f"{name}_slot"] = np.full(batch_size, -1, np.int32)
        if "climate" in self.encoded:
            grid = self.climate.grid
            out["climate"] = np.zeros((1, 1, self.climate.in_channels, grid[0], 1, *grid[1:]),
                                      np.float32)
        if "network" in self.encoded:
            nodes, edges = 32, 64
            node_width, edge_width = self.network_widths
            out.update({
                "network_nodes": np.zeros((1, nodes, node_width), np.float32),
                "network_pe": np.zeros((1, nodes, max(self.network.cfg.random_walk_steps, 1)),
                                       np.float32),
                "network_edges": np.zeros((1, edges, edge_width), np.float32),
                "network_senders": np.zeros((1, edges), np.int32),
                "network_receivers": np.zeros((1, edges), np.int32),
                "network_node_graph": np.ones((1, nodes), np.int32),  # the padding graph
                "network_node_mask": np.zeros((1, nodes), bool),
                "network_graph_mask": np.zeros((1, 2), bool)})
        if "text" in self.encoded:
            out["text"] = np.full((1, 1, 1), self.pad_id, np.int32)
        return out

    def encode_packed(self, name: str, batch: dict) -> jax.Array:
        """The packed inputs of modality ``name`` (climate, network or text) -> one token per slot
        ``[G, k, d]``."""
        if name == "climate":
            x = batch["climate"]
            g, k = x.shape[:2]
            emb = self.climate(x.reshape(g * k, *x.shape[2:]))["embedding"]
            return self.climate_proj(emb).reshape(g, k, -1)
        if name == "network":
            graphs = {key: batch[f"network_{key}"] for key in GRAPH_KEYS}
            k = graphs["graph_mask"].shape[1] - 1  # the last graph of a group is the padding
            mean = jax.vmap(lambda one: self.network.encode(one).graph_mean)(graphs)
            return self.network_proj(mean[:, :k].astype(jnp.float32))
        tokens = batch["text"]
        g, k, t = tokens.shape
        flat = tokens.reshape(g * k, t)
        real = (flat != self.pad_id).astype(jnp.float32)[..., None]
        hidden = self.text.hidden_states(flat)
        pooled = (hidden * real).sum(1) / jnp.maximum(real.sum(1), 1.0)
        return self.text_proj(pooled).reshape(g, k, -1)

    def tokens(self, batch: dict, keep: dict | None = None):
        """``(tokens [b, n, d], segment_ids [b, n], summaries)``: the planet token, then each
        modality's tokens with its embedding; segment 0 marks a modality the planet does not
        have. ``summaries``: per modality the mean of its encoder's tokens ``[b, d]`` and which
        planets have it ``[b]`` (the contrastive objective's views)."""
        keep = keep or {}
        b = next(v.shape[0] for k, v in batch.items()
                 if k in ("row_values", "spectrum_depth") or k.startswith("has_")
                 or k.endswith("_slot"))
        parts, present, summaries = [], [], {}
        embeddings = {name: i for i, name in enumerate(self.modalities())}

        def add(name: str, tokens_bnd: jax.Array, has_b: jax.Array) -> None:
            has_b = has_b.astype(bool) & keep.get(name, jnp.ones((b,), bool)).astype(bool)
            summaries[name] = (tokens_bnd.astype(jnp.float32).mean(1), has_b)
            tokens_bnd = tokens_bnd + self.modality_md[embeddings[name]]
            parts.append(tokens_bnd.astype(jnp.float32))
            present.append(jnp.broadcast_to(has_b[:, None], tokens_bnd.shape[:2]))

        planet = jnp.broadcast_to(self.planet_token_d[...], (b, 1, self.planet_token_d.shape[0]))
        parts.append(planet.astype(jnp.float32))
        present.append(jnp.ones((b, 1), bool))
        if self.row_columns:
            add("row", self.row(batch["row_values"], batch["row_known"]),
                jnp.any(batch["row_known"], axis=-1))
        if self.has_spectrum:
            add("spectrum", self.spectrum(batch["spectrum_depth"], batch["spectrum_sigma"],
                                          batch["spectrum_known"]), batch["has_spectrum"])
        for name in self.encoded:
            slot_b = batch[f"{name}_slot"]
            add(name, gather_slots(self.encode_packed(name, batch), slot_b)[:, None, :],
                slot_b >= 0)
        for name, _ in self.embedding_inputs:
            add(name, self.inputs[name](batch[name].astype(jnp.float32))[:, None, :],
                batch[f"has_{name}"])
        tokens = jnp.concatenate(parts, axis=1)
        segment_ids = jnp.concatenate(present, axis=1).astype(jnp.int32)
        return tokens, segment_ids, summaries

    def __call__(self, batch: dict, keep: dict | None = None) -> dict[str, jax.Array]:
        x_bnd, segment_ids, summaries = self.tokens(batch, keep)
        for block in self.blocks:
            x_bnd = block(x_bnd, None, None, segment_ids)
        planet_bd = self.final_norm(x_bnd[:, 0])
        out = {"embedding": planet_bd}
        if self.contrastive:  # each modality's own view, before fusion
            for name, (mean_bd, has_b) in summaries.items():
                z = self.contrast[name](mean_bd)
                # rsqrt(|z|^2 + eps), not z / |z|: a zero z (an empty slot's token) would give
                # 0/0 in the gradient, and NaN * 0 is still NaN where the loss masks it out
                out[f"contrast/{name}"] = z * jax.lax.rsqrt(
                    jnp.sum(z * z, axis=-1, keepdims=True) + 1e-12)
                out[f"present/{name}"] = has_b
        for name, k in self.classes:
            logits = self.class_heads[name](planet_bd)
            out[f"logits/{name}"] = logits[:, 0] if k == 2 else logits
        for target in self.retrieval_targets:
            mean_logvar = self.retrieval_heads[target](planet_bd)
            out[f"mean/{target}"] = mean_logvar[:, 0]
            out[f"logvar/{target}"] = jnp.clip(mean_logvar[:, 1], -10.0, 10.0)
        return out


class LossWeights(nnx.Module):
    """Kendall et al. (2018) uncertainty weights: a learned ``log sigma^2`` per loss term; the
    combined loss is ``sum_i exp(-s_i) L_i + s_i`` (classification and regression terms alike,
    the common simplification)."""

    def __init__(self, names: tuple[str, ...], *, rngs: nnx.Rngs):
        del rngs
        self.names = tuple(names)
        self.log_var_t = nnx.Param(jnp.full((len(self.names),), _INITIAL_LOG_VAR, jnp.float32))

    def __call__(self, terms: dict[str, jax.Array],
                 counts: dict[str, jax.Array] | None = None) -> jax.Array:
        """A term whose label no planet of the batch has (``counts[name] == 0``) adds nothing,
        its ``s_i`` included: otherwise scarce labels would drive ``s_i`` down unopposed."""
        s = self.log_var_t[...]
        on = {name: 1.0 if counts is None else (counts[name] > 0).astype(jnp.float32)
              for name in self.names}
        return sum(on[name] * (jnp.exp(-s[i]) * terms[name] + s[i])
                   for i, name in enumerate(self.names))


def loss_terms(outputs: dict[str, jax.Array], labels: dict[str, jax.Array],
               classes: tuple[tuple[str, int], ...],
               retrieval_targets: tuple[str, ...]) -> tuple[dict[str, jax.Array], dict]:
    """Per label the mean loss over the planets whose label is known (``labels[name]`` with
    ``labels[f"{name}_known"]``): binary cross-entropy on one logit, softmax cross-entropy on
    several, Gaussian NLL ``0.5 * (logvar + (y - mean)^2 / exp(logvar))`` per retrieval target.
    Returns ``(terms, counts)``; a label no planet of the batch has contributes 0."""
    terms, counts = {}, {}
    for name, k in classes:
        known = labels[f"{name}_known"].astype(jnp.float32)
        logits = outputs[f"logits/{name}"].astype(jnp.float32)
        y = labels[name]
        if k == 2:
            per = optax.sigmoid_binary_cross_entropy(logits, y.astype(jnp.float32))
        else:
            per = optax.softmax_cross_entropy_with_integer_labels(
                logits, jnp.clip(y.astype(jnp.int32), 0, k - 1))
        counts[name] = known.sum()
        terms[name] = jnp.sum(per * known) / jnp.maximum(counts[name], 1.0)
    for target in retrieval_targets:
        known = labels[f"{target}_known"].astype(jnp.float32)
        y = jnp.where(known > 0, labels[target], 0.0).astype(jnp.float32)
        mean, logvar = outputs[f"mean/{target}"], outputs[f"logvar/{target}"]
        per = 0.5 * (logvar + (y - mean) ** 2 * jnp.exp(-logvar))
        counts[target] = known.sum()
        terms[target] = jnp.sum(per * known) / jnp.maximum(counts[target], 1.0)
    return terms, counts


def fusion_losses(model: FusionModel, outputs: dict[str, jax.Array], labels: dict,
                  cfg: FusionConfig) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The objective -> ``(loss, metrics)``: the per-label terms of :func:`loss_terms`,
    combined with ``cfg.loss_weights`` (default 1 each) or, for ``loss_weighting=
    "uncertainty"``, by the model's learned :class:`LossWeights`."""
    terms, counts = loss_terms(outputs, labels, model.classes, model.retrieval_targets)
    if cfg.loss_weighting == "uncertainty":
        loss = model.loss_weights(terms, counts)
    else:
        fixed = dict(cfg.loss_weights)
        loss = sum(fixed.get(name, 1.0) * term for name, term in terms.items())
    metrics = {f"loss/{name}": term for name, term in terms.items()}
    if cfg.contrastive_weight > 0:
        contrastive, pairs = contrastive_loss(outputs, cfg.contrastive_temperature)
        loss = loss + cfg.contrastive_weight * contrastive
        metrics.update({"loss/contrastive": contrastive, **pairs})
    return loss, metrics


def contrastive_loss(outputs: dict[str, jax.Array], temperature: float
                     ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """CLIP's symmetric InfoNCE between every pair of modalities, over the planets of the batch
    that have both (AstroCLIP, AstroM3): planet i's view in modality A must pick planet i's view
    in modality B among the other planets' and the reverse. ``outputs["contrast/NAME"]`` are the
    L2-normalized projections ``[b, e]`` and ``outputs["present/NAME"]`` ``[b]`` which planets
    have the modality. Returns the mean over pairs with at least two such planets (0 if none)
    and the per-pair losses (``contrastive/A~B``)."""
    names = sorted(k.removeprefix("contrast/") for k in outputs if k.startswith("contrast/"))
    total, used, pairs = jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32), {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            both = outputs[f"present/{a}"] & outputs[f"present/{b}"]
            valid = both[:, None] & both[None, :]
            logits = outputs[f"contrast/{a}"] @ outputs[f"contrast/{b}"].T / temperature
            logits = jnp.where(valid, logits, -1e9)
            eye = jnp.eye(logits.shape[0], dtype=jnp.float32)
            rows = optax.softmax_cross_entropy(logits, eye)
            cols = optax.softmax_cross_entropy(logits.T, eye)
            n = both.sum()
            pair = jnp.where(both, 0.5 * (rows + cols), 0.0).sum() / jnp.maximum(n, 1)
            ok = (n >= 2).astype(jnp.float32)
            pairs[f"contrastive/{a}~{b}"] = pair * ok
            total, used = total + pair * ok, used + ok
    return total / jnp.maximum(used, 1.0), pairs


def modality_keep(key: jax.Array, modalities: tuple[str, ...], batch_size: int,
                  rate: float) -> dict[str, jax.Array]:
    """Modality dropout: for each modality but the catalogue row, a ``[b]`` mask that keeps it
    with probability ``1 - rate``."""
    keys = jax.random.split(key, len(modalities))
    return {name: jax.random.bernoulli(k, 1.0 - rate, (batch_size,))
            for name, k in zip(modalities, keys, strict=True) if name != "row"}
