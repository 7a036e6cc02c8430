"""Decoder-only Llama-style transformer (RoPE, GQA, RMSNorm, SwiGLU) in Flax NNX.

Built from :mod:`astrojax.models.layers` (the pre-norm ``Block``, ``RMSNorm``, the embedding)
with each layer's sequence mixer from :mod:`astrojax.models.mixers`. Every parameter carries
logical axis names (``vocab``, ``embed``, ``heads``, ``kv_heads``, ``head_dim``, ``mlp``,
``norm``, and ``layers`` for stacked blocks); the mapping to mesh axes lives in
``astrojax.config.DEFAULT_LOGICAL_AXIS_RULES``, never here. Shapes are lettered: b batch,
t sequence, d d_model, n query heads, k kv heads, h head_dim, f mlp_dim, v vocab, l layers.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.ad_checkpoint  # noqa: F401  (makes jax.checkpoint_policies available)
import jax.numpy as jnp
import optax
from flax import nnx

from astrojax.config import TransformerConfig
from astrojax.models.layers import (
    Block,
    RMSNorm,
    RopeScaling,
    embedding_table,
    fan_in_init,
    param,
    rope_sin_cos,
    to_dtype,
)
from astrojax.models.mixers import make_mixer
from astrojax.sharding import constrain

# The residual stream's layout: batch over the data axes, the sequence over the context axis
# (sequence parallelism; attention impls other than ring gather keys and values as needed).
_ACTIVATIONS = ("batch", "sequence", None)


def tiny_config(**overrides) -> TransformerConfig:
    """A TransformerConfig small enough for unit tests on a 2-core CPU."""
    base = TransformerConfig(
        vocab_size=64, d_model=32, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8,
        mlp_dim=64, max_seq_len=32, tie_embeddings=True, scan_layers=True,
    )
    return dataclasses.replace(base, **overrides)


def sliding_window_from_hf(hf_sliding_window: int | None) -> int:
    """Our ``sliding_window`` for a Hugging Face config's: HF's W counts the token itself (W
    keys, ``kv > q - W``), ours counts the keys before it (W + 1 keys), so W -> W - 1.
    ``None`` or 0 (no window) -> 0."""
    if not hf_sliding_window:
        return 0
    if hf_sliding_window < 2:  # ours would be 0, which means no window at all
        raise ValueError(f"Hugging Face sliding_window={hf_sliding_window} (each token sees only "
                         "itself) has no equivalent here; expected >= 2 or None")
    return hf_sliding_window - 1


def sliding_window_to_hf(sliding_window: int) -> int | None:
    """The Hugging Face ``sliding_window`` of ours (the inverse of
    :func:`sliding_window_from_hf`); ``None`` for no window."""
    return sliding_window + 1 if sliding_window > 0 else None


def rope_scaling_of(cfg: TransformerConfig) -> RopeScaling | None:
    """The :class:`~astrojax.models.layers.RopeScaling` of ``cfg`` (None for ``"none"``)."""
    if cfg.rope_scaling == "none":
        return None
    return RopeScaling(cfg.rope_scaling, factor=cfg.rope_scaling_factor,
                       low_freq_factor=cfg.rope_low_freq_factor,
                       high_freq_factor=cfg.rope_high_freq_factor,
                       original_max_len=cfg.rope_original_max_len)


def checkpoint_policy(name: str):
    """The ``jax.checkpoint`` policy for a remat name other than ``"none"``; ``"full"`` -> None
    (save nothing, recompute the whole block)."""
    if name == "full":
        return None
    if name in ("dots_saveable", "dots_with_no_batch_dims_saveable"):
        return getattr(jax.checkpoint_policies, name)
    raise ValueError(f"unknown remat_policy {name!r}; expected none, full, dots_saveable or "
                     "dots_with_no_batch_dims_saveable")


def _run_block(block: Block, x_btd, sin_bth, cos_bth, segment_ids_bt):
    return block(x_btd, sin_bth, cos_bth, segment_ids_bt)


# ----------------------------------------------------------------------------------------------
# Model


class Transformer(nnx.Module):
    """Token ids ``[b, t]`` -> float32 logits ``[b, t, vocab]``."""

    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        if cfg.scan_layers and len(set(cfg.mixers)) > 1:
            raise ValueError(f"mixers={cfg.mixers} mixes layer kinds; scanned layers must be "
                             "alike, so set scan_layers=False")
        # Plain hashable fields, not the (mutable, unhashable) config: they end up in the
        # graphdef, which jax.jit / nnx.jit hash as a static argument.
        self.head_dim, self.rope_theta = cfg.head_dim, cfg.rope_theta
        self.scan_layers, self.tie_embeddings = cfg.scan_layers, cfg.tie_embeddings
        self.num_layers = cfg.num_layers
        self.dtype = to_dtype(cfg.dtype)
        self.rope_scaling, self.max_seq_len = rope_scaling_of(cfg), cfg.max_seq_len
        # Resolve the remat policy now so a bad name fails at construction, not under jit.
        self._remat = cfg.remat_policy != "none"
        self._policy = checkpoint_policy(cfg.remat_policy) if self._remat else None

        self.embedding_vd = embedding_table(cfg.vocab_size, cfg.d_model,
                                            param_dtype=cfg.param_dtype, rngs=rngs)

        def block(kind: str, rngs: nnx.Rngs) -> Block:
            return Block(cfg.d_model, cfg.mlp_dim,
                         lambda rngs: make_mixer(kind, cfg, rngs=rngs), eps=cfg.norm_eps,
                         dtype=cfg.dtype, param_dtype=cfg.param_dtype, out_axes=_ACTIVATIONS,
                         rngs=rngs)

        if cfg.scan_layers:
            # One Block whose params gain a leading "layers" axis (logical name via
            # transform_metadata), built by vmapping over split rng keys.
            @nnx.split_rngs(splits=cfg.num_layers)
            @nnx.vmap(in_axes=(0,), out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
            def make_blocks(rngs: nnx.Rngs) -> Block:
                return block(cfg.mixers[0], rngs)

            self.blocks = make_blocks(rngs)
        else:
            self.blocks = nnx.List([block(cfg.mixers[i % len(cfg.mixers)], rngs)
                                    for i in range(cfg.num_layers)])
        # The final norm and the output projection stay in float32 whatever the compute dtype.
        self.final_norm = RMSNorm(cfg.d_model, eps=cfg.norm_eps, dtype=jnp.float32,
                                  param_dtype=cfg.param_dtype, rngs=rngs)
        if not cfg.tie_embeddings:
            self.w_dv_out = param(rngs, fan_in_init(cfg.d_model), ("embed", "vocab"),
                                  (cfg.d_model, cfg.vocab_size), cfg.param_dtype)

    def _block_fn(self):
        if self._remat:
            return nnx.remat(_run_block, policy=self._policy, prevent_cse=not self.scan_layers)
        return _run_block

    def __call__(self, tokens_bt, *, positions_bt=None, segment_ids_bt=None,
                 prefix_bpd=None) -> jax.Array:
        x_btd = self.hidden_states(tokens_bt, positions_bt=positions_bt,
                                   segment_ids_bt=segment_ids_bt, prefix_bpd=prefix_bpd)
        return self.logits(x_btd)

    def logits(self, x_btd: jax.Array) -> jax.Array:
        """float32 logits ``[b, t, v]`` of final-normed hidden states."""
        with jax.named_scope("logits"):
            if self.tie_embeddings:
                w_dv = self.embedding_vd[...].T
            else:
                w_dv = self.w_dv_out[...]
            return jnp.einsum("btd,dv->btv", x_btd, w_dv.astype(jnp.float32))

    def rope(self, positions_bt: jax.Array):
        """float32 rotary tables ``(sin_bth, cos_bth)`` at ``positions_bt``, computed once for
        every layer (the cached decoder calls this too, so a change of RoPE lands in both)."""
        return rope_sin_cos(positions_bt, self.head_dim, self.rope_theta, self.rope_scaling)

    def embed(self, tokens_bt: jax.Array, prefix_bpd: jax.Array | None = None) -> jax.Array:
        """Token embeddings ``[b, t, d]`` in the compute dtype; with ``prefix_bpd``, those ``p``
        vectors (soft prompt, e.g. a planet embedding's projection) come first: ``[b, p+t, d]``."""
        with jax.named_scope("embed"):
            x_btd = jnp.take(self.embedding_vd[...], tokens_bt, axis=0).astype(self.dtype)
            if prefix_bpd is not None:
                if prefix_bpd.shape[0] != x_btd.shape[0] or prefix_bpd.shape[2] != x_btd.shape[2]:
                    raise ValueError(f"prefix_bpd {prefix_bpd.shape} must be [batch "
                                     f"{x_btd.shape[0]}, p, d_model {x_btd.shape[2]}]")
                x_btd = jnp.concatenate([prefix_bpd.astype(self.dtype), x_btd], axis=1)
            return constrain(x_btd, _ACTIVATIONS)

    def hidden_states(self, tokens_bt, *, positions_bt=None, segment_ids_bt=None,
                      prefix_bpd=None) -> jax.Array:
        """The final-normed float32 hidden states ``[b, t, d]`` the logits are read from (what
        an encoder built on the language model, such as the fusion model's text encoder,
        pools).

        With ``prefix_bpd`` (``[b, p, d]``) the sequence is the prefix then the tokens, ``p + t``
        long: the output, and ``positions_bt`` / ``segment_ids_bt`` when given, cover all of
        it (default positions ``0 .. p+t-1``)."""
        x_btd = self.embed(tokens_bt, prefix_bpd)
        b, t = x_btd.shape[:2]
        if positions_bt is None:
            positions_bt = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
        sin_bth, cos_bth = self.rope(positions_bt)

        block_fn = self._block_fn()
        if self.scan_layers:
            @nnx.scan(in_axes=(0, nnx.Carry, None, None, None), out_axes=nnx.Carry)
            def scan_blocks(block, x_btd, sin_bth, cos_bth, segment_ids_bt):
                return block_fn(block, x_btd, sin_bth, cos_bth, segment_ids_bt)

            x_btd = scan_blocks(self.blocks, x_btd, sin_bth, cos_bth, segment_ids_bt)
        else:
            for block in self.blocks:
                x_btd = block_fn(block, x_btd, sin_bth, cos_bth, segment_ids_bt)

        with jax.named_scope("final_norm"):
            return self.final_norm(x_btd)


    # ------------------------------------------------------------------------------------------
    # Cached decoding. The cache is an explicit pytree: ``{"layers": one mixer cache per layer
    # (stacked on a leading axis when layers are scanned), "index": the next sequence index
    # (int32 scalar), "start": each row's first real index [b]}``. Prompts are left-padded, so
    # every row is at the same index and writes the same cache slot; a row's positions count
    # from its own start. astrojax.models.decode drives these with jit.

    def init_cache(self, batch_size: int, length: int) -> dict:
        """An empty cache for ``batch_size`` sequences of up to ``length`` tokens (prefix,
        prompt and generated tokens together)."""
        if self.scan_layers:
            one = self.blocks.attn.init_cache(batch_size, length)
            layers = jax.tree.map(
                lambda a: jnp.broadcast_to(a, (self.num_layers, *a.shape)), one)
        else:
            layers = [block.attn.init_cache(batch_size, length) for block in self.blocks]
        return {"layers": layers, "index": jnp.zeros((), jnp.int32),
                "start": jnp.zeros((batch_size,), jnp.int32)}

    def prefill(self, tokens_bt, lengths_b, cache, *, prefix_bpd=None):
        """Runs left-padded prompts (``tokens_bt [b, t]``, the last ``lengths_b`` of each row
        real) after an optional soft prefix through the model, filling the empty ``cache``.

        Returns ``(logits_bv, cache)``: the next-token logits after each prompt. Row r's
        sequence is ``prefix_bpd[r]`` then its tokens, at positions ``0, 1, ...``; its padding
        moves before the prefix so that the real part is contiguous and ends at the last index.
        """
        b, t = tokens_bt.shape
        x_btd = self.embed(tokens_bt, prefix_bpd)
        p = x_btd.shape[1] - t
        pad_b = t - lengths_b.astype(jnp.int32)
        j_t = jnp.arange(p + t, dtype=jnp.int32)
        if p:  # [prefix, padding, tokens] -> [padding, prefix, tokens]
            pad_bt = pad_b[:, None]
            src_bt = jnp.where(j_t < pad_bt, p + j_t,
                               jnp.where(j_t < pad_bt + p, j_t - pad_bt, j_t))
            x_btd = jnp.take_along_axis(x_btd, src_bt[:, :, None], axis=1)
        real_bt = j_t >= pad_b[:, None]
        x_btd = jnp.where(real_bt[:, :, None], x_btd, 0).astype(x_btd.dtype)
        segment_ids_bt = real_bt.astype(jnp.int32)
        positions_bt = jnp.maximum(j_t - pad_b[:, None], 0)
        sin_bth, cos_bth = self.rope(positions_bt)

        if self.scan_layers:
            @nnx.scan(in_axes=(0, nnx.Carry, None, None, None, 0), out_axes=(nnx.Carry, 0))
            def run(block, x_btd, sin_bth, cos_bth, segment_ids_bt, layer_cache):
                return block.prefill(x_btd, sin_bth, cos_bth, segment_ids_bt, layer_cache)

            x_btd, layers = run(self.blocks, x_btd, sin_bth, cos_bth, segment_ids_bt,
                                cache["layers"])
        else:
            layers = []
            for block, layer_cache in zip(self.blocks, cache["layers"], strict=True):
                x_btd, layer_cache = block.prefill(x_btd, sin_bth, cos_bth, segment_ids_bt,
                                                   layer_cache)
                layers.append(layer_cache)
        logits_bv = self.logits(self.final_norm(x_btd[:, -1:]))[:, 0]
        return logits_bv, {"layers": layers, "index": jnp.asarray(p + t, jnp.int32),
                           "start": pad_b}

    def decode_step(self, tokens_b, cache):
        """One token per row at the cache's index: ``(logits_bv, cache)``, the next-token
        logits and the cache one longer."""
        index, start_b = cache["index"], cache["start"]
        x_b1d = self.embed(tokens_b[:, None])
        sin_b1h, cos_b1h = self.rope((index - start_b)[:, None])

        if self.scan_layers:
            @nnx.scan(in_axes=(0, nnx.Carry, None, None, 0, None, None),
                      out_axes=(nnx.Carry, 0))
            def run(block, x_b1d, sin_b1h, cos_b1h, layer_cache, index, start_b):
                return block.decode(x_b1d, sin_b1h, cos_b1h, layer_cache, index, start_b)

            x_b1d, layers = run(self.blocks, x_b1d, sin_b1h, cos_b1h, cache["layers"], index,
                                start_b)
        else:
            layers = []
            for block, layer_cache in zip(self.blocks, cache["layers"], strict=True):
                x_b1d, layer_cache = block.decode(x_b1d, sin_b1h, cos_b1h, layer_cache, index,
                                                  start_b)
                layers.append(layer_cache)
        logits_bv = self.logits(self.final_norm(x_b1d))[:, 0]
        return logits_bv, {"layers": layers, "index": index + 1, "start": start_b}


def count_params(model: nnx.Module) -> int:
    """Total number of parameter elements (nnx.Param leaves) in ``model``."""
    return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


# ----------------------------------------------------------------------------------------------
# Loss


def next_token_stats(logits_btv: jax.Array, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Summed negative log-likelihood, correct predictions and count of real next-token targets.

    A target counts when it continues the same packed document as its input (same non-zero
    segment id), so document boundaries and padding are never predicted.
    """
    tokens_bt, segments_bt = batch["tokens"], batch["segment_ids"]
    targets = tokens_bt[:, 1:]
    logits = logits_btv[:, :-1].astype(jnp.float32)
    mask = (segments_bt[:, 1:] == segments_bt[:, :-1]) & (segments_bt[:, 1:] != 0)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    correct = jnp.argmax(logits, axis=-1) == targets
    return {
        "nll_sum": jnp.sum(jnp.where(mask, nll, 0.0)),
        "correct": jnp.sum(mask & correct).astype(jnp.float32),
        "count": jnp.sum(mask).astype(jnp.float32),
    }
