"""Decoder-only Llama-style transformer (RoPE, GQA, RMSNorm, SwiGLU) in Flax NNX.

Every parameter carries logical axis names (``vocab``, ``embed``, ``heads``, ``kv_heads``,
``head_dim``, ``mlp``, ``norm``, and ``layers`` for stacked blocks); the mapping to mesh axes
lives in ``astrojax.config.DEFAULT_LOGICAL_AXIS_RULES``, never here. Shapes are lettered:
b batch, t sequence, d d_model, n query heads, k kv heads, h head_dim, f mlp_dim, v vocab,
l layers.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.ad_checkpoint  # noqa: F401  (makes jax.checkpoint_policies available)
import jax.numpy as jnp
from flax import nnx

from astrojax.config import TransformerConfig
from astrojax.models.attention import attention
from astrojax.sharding import constrain

# The residual stream's layout: batch over the data axes, the sequence over the context axis
# (sequence parallelism; attention impls other than ring gather keys and values as needed).
_ACTIVATIONS = ("batch", "sequence", None)

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def tiny_config(**overrides) -> TransformerConfig:
    """A TransformerConfig small enough for unit tests on a 2-core CPU."""
    base = TransformerConfig(
        vocab_size=64, d_model=32, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8,
        mlp_dim=64, max_seq_len=32, tie_embeddings=True, scan_layers=True,
    )
    return dataclasses.replace(base, **overrides)


def to_dtype(name: str) -> jnp.dtype:
    """``"bfloat16"`` -> ``jnp.bfloat16``; raises ValueError naming the bad value."""
    if name not in _DTYPES:
        raise ValueError(f"unknown dtype {name!r}; expected one of {', '.join(_DTYPES)}")
    return _DTYPES[name]


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


def checkpoint_policy(name: str):
    """The ``jax.checkpoint`` policy for a remat name other than ``"none"``; ``"full"`` -> None
    (save nothing, recompute the whole block)."""
    if name == "full":
        return None
    if name in ("dots_saveable", "dots_with_no_batch_dims_saveable"):
        return getattr(jax.checkpoint_policies, name)
    raise ValueError(f"unknown remat_policy {name!r}; expected none, full, dots_saveable or "
                     "dots_with_no_batch_dims_saveable")


def _param(rngs: nnx.Rngs, init, names: tuple[str, ...], shape: tuple[int, ...], dtype):
    return nnx.Param(nnx.with_partitioning(init, names)(rngs.params(), shape, dtype))


def _fan_in_init(fan_in: int):
    return nnx.initializers.normal(stddev=fan_in**-0.5)


# ----------------------------------------------------------------------------------------------
# Rotary position embeddings


def rope_sin_cos(positions_bt: jax.Array, head_dim: int, theta: float):
    """float32 ``(sin_bth, cos_bth)`` with ``h = head_dim // 2`` frequencies."""
    inv_freq_h = theta ** (-jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim)
    angle_bth = positions_bt.astype(jnp.float32)[:, :, None] * inv_freq_h
    return jnp.sin(angle_bth), jnp.cos(angle_bth)


def apply_rope(x_btnh: jax.Array, sin_bth: jax.Array, cos_bth: jax.Array) -> jax.Array:
    """Rotates the two halves of head_dim (Llama / HF "rotate_half" layout), in float32."""
    x1, x2 = jnp.split(x_btnh.astype(jnp.float32), 2, axis=-1)
    sin, cos = sin_bth[:, :, None, :], cos_bth[:, :, None, :]
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x_btnh.dtype)


# ----------------------------------------------------------------------------------------------
# Layers


class RMSNorm(nnx.Module):
    """Root-mean-square norm computed in float32; returns ``out_dtype`` (default: compute)."""

    def __init__(self, dim: int, cfg: TransformerConfig, *, rngs: nnx.Rngs, out_dtype=None):
        self.eps = cfg.norm_eps
        self.dtype = out_dtype or to_dtype(cfg.dtype)
        self.scale_d = _param(rngs, nnx.initializers.ones, ("norm",), (dim,),
                              to_dtype(cfg.param_dtype))

    def __call__(self, x_btd: jax.Array) -> jax.Array:
        x_btd = x_btd.astype(jnp.float32)
        x_btd = x_btd * jax.lax.rsqrt(jnp.mean(x_btd * x_btd, axis=-1, keepdims=True) + self.eps)
        return (x_btd * self.scale_d[...].astype(jnp.float32)).astype(self.dtype)


class Attention(nnx.Module):
    """Grouped-query self-attention with RoPE; K/V keep their own (fewer) heads."""

    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        d, n, k, h = cfg.d_model, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        pdt = to_dtype(cfg.param_dtype)
        self.dtype = to_dtype(cfg.dtype)
        self.w_dnh = _param(rngs, _fan_in_init(d), ("embed", "heads", "head_dim"), (d, n, h), pdt)
        self.w_dkh_k = _param(rngs, _fan_in_init(d), ("embed", "kv_heads", "head_dim"),
                              (d, k, h), pdt)
        self.w_dkh_v = _param(rngs, _fan_in_init(d), ("embed", "kv_heads", "head_dim"),
                              (d, k, h), pdt)
        self.w_nhd = _param(rngs, _fan_in_init(n * h), ("heads", "head_dim", "embed"),
                            (n, h, d), pdt)
        self.scale = h**-0.5
        self.impl = cfg.attention_impl
        self.window = (cfg.sliding_window, 0) if cfg.sliding_window > 0 else None

    def __call__(self, x_btd, sin_bth, cos_bth, segment_ids_bt):
        dt = self.dtype
        x_btd = x_btd.astype(dt)
        q_btnh = jnp.einsum("btd,dnh->btnh", x_btd, self.w_dnh[...].astype(dt))
        k_btkh = jnp.einsum("btd,dkh->btkh", x_btd, self.w_dkh_k[...].astype(dt))
        v_btkh = jnp.einsum("btd,dkh->btkh", x_btd, self.w_dkh_v[...].astype(dt))
        q_btnh = apply_rope(q_btnh, sin_bth, cos_bth)
        k_btkh = apply_rope(k_btkh, sin_bth, cos_bth)
        o_btnh = attention(q_btnh, k_btkh, v_btkh, impl=self.impl, causal=True,
                           window=self.window, segment_ids=segment_ids_bt, scale=self.scale)
        return jnp.einsum("btnh,nhd->btd", o_btnh.astype(dt), self.w_nhd[...].astype(dt))


class SwiGLU(nnx.Module):
    """``down(silu(gate(x)) * up(x))``."""

    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        d, f = cfg.d_model, cfg.mlp_dim
        pdt = to_dtype(cfg.param_dtype)
        self.dtype = to_dtype(cfg.dtype)
        self.w_df_gate = _param(rngs, _fan_in_init(d), ("embed", "mlp"), (d, f), pdt)
        self.w_df_up = _param(rngs, _fan_in_init(d), ("embed", "mlp"), (d, f), pdt)
        self.w_fd_down = _param(rngs, _fan_in_init(f), ("mlp", "embed"), (f, d), pdt)

    def __call__(self, x_btd: jax.Array) -> jax.Array:
        dt = self.dtype
        x_btd = x_btd.astype(dt)
        gate_btf = jnp.einsum("btd,df->btf", x_btd, self.w_df_gate[...].astype(dt))
        up_btf = jnp.einsum("btd,df->btf", x_btd, self.w_df_up[...].astype(dt))
        return jnp.einsum("btf,fd->btd", jax.nn.silu(gate_btf) * up_btf,
                          self.w_fd_down[...].astype(dt))


def make_mixer(kind: str, cfg: TransformerConfig, *, rngs: nnx.Rngs) -> nnx.Module:
    """The sequence mixer of one layer: softmax attention, linear attention or a Mamba SSM."""
    if kind == "attention":
        return Attention(cfg, rngs=rngs)
    # Imported here: the mixers reuse this module's parameter helpers.
    if kind == "linear":
        from astrojax.models.attention.linear import LinearAttention

        return LinearAttention(cfg, rngs=rngs)
    if kind == "mamba":
        from astrojax.models.attention.ssm import MambaBlock

        return MambaBlock(cfg, rngs=rngs)
    raise ValueError(f"unknown sequence mixer {kind!r}; expected attention, linear or mamba")


class Block(nnx.Module):
    """Pre-norm residual block: a sequence mixer (attention by default) then a SwiGLU MLP."""

    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs, mixer: str = "attention"):
        self.attn_norm = RMSNorm(cfg.d_model, cfg, rngs=rngs)
        self.attn = make_mixer(mixer, cfg, rngs=rngs)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg, rngs=rngs)
        self.mlp = SwiGLU(cfg, rngs=rngs)

    def __call__(self, x_btd, sin_bth, cos_bth, segment_ids_bt):
        with jax.named_scope("attention"):
            x_btd = x_btd + self.attn(self.attn_norm(x_btd), sin_bth, cos_bth, segment_ids_bt)
        with jax.named_scope("mlp"):
            x_btd = x_btd + self.mlp(self.mlp_norm(x_btd))
        return constrain(x_btd, _ACTIVATIONS)


def _run_block(block: Block, x_btd, sin_bth, cos_bth, segment_ids_bt):
    return block(x_btd, sin_bth, cos_bth, segment_ids_bt)


# ----------------------------------------------------------------------------------------------
# Model


class Transformer(nnx.Module):
    """Token ids ``[b, t]`` -> float32 logits ``[b, t, vocab]``."""

    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        if cfg.num_heads % cfg.num_kv_heads:
            raise ValueError(f"num_kv_heads={cfg.num_kv_heads} must divide "
                             f"num_heads={cfg.num_heads}")
        if cfg.head_dim % 2:
            raise ValueError(f"head_dim={cfg.head_dim} must be even for rotary embeddings")
        if cfg.scan_layers and len(set(cfg.mixers)) > 1:
            raise ValueError(f"mixers={cfg.mixers} mixes layer kinds; scanned layers must be "
                             "alike, so set scan_layers=False")
        # Plain hashable fields, not the (mutable, unhashable) config: they end up in the
        # graphdef, which jax.jit / nnx.jit hash as a static argument.
        self.head_dim, self.rope_theta = cfg.head_dim, cfg.rope_theta
        self.scan_layers, self.tie_embeddings = cfg.scan_layers, cfg.tie_embeddings
        self.dtype = to_dtype(cfg.dtype)
        pdt = to_dtype(cfg.param_dtype)
        # Resolve the remat policy now so a bad name fails at construction, not under jit.
        self._remat = cfg.remat_policy != "none"
        self._policy = checkpoint_policy(cfg.remat_policy) if self._remat else None

        self.embedding_vd = _param(rngs, _fan_in_init(cfg.d_model), ("vocab", "embed"),
                                   (cfg.vocab_size, cfg.d_model), pdt)
        if cfg.scan_layers:
            # One Block whose params gain a leading "layers" axis (logical name via
            # transform_metadata), built by vmapping over split rng keys.
            @nnx.split_rngs(splits=cfg.num_layers)
            @nnx.vmap(in_axes=(0,), out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
            def make_blocks(rngs: nnx.Rngs) -> Block:
                return Block(cfg, rngs=rngs, mixer=cfg.mixers[0])

            self.blocks = make_blocks(rngs)
        else:
            self.blocks = nnx.List([
                Block(cfg, rngs=rngs, mixer=cfg.mixers[i % len(cfg.mixers)])
                for i in range(cfg.num_layers)])
        # The final norm and the output projection stay in float32 whatever the compute dtype.
        self.final_norm = RMSNorm(cfg.d_model, cfg, rngs=rngs, out_dtype=jnp.float32)
        if not cfg.tie_embeddings:
            self.w_dv_out = _param(rngs, _fan_in_init(cfg.d_model), ("embed", "vocab"),
                                   (cfg.d_model, cfg.vocab_size), pdt)

    def _block_fn(self):
        if self._remat:
            return nnx.remat(_run_block, policy=self._policy, prevent_cse=not self.scan_layers)
        return _run_block

    def __call__(self, tokens_bt, *, positions_bt=None, segment_ids_bt=None) -> jax.Array:
        b, t = tokens_bt.shape
        if positions_bt is None:
            positions_bt = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
        sin_bth, cos_bth = rope_sin_cos(positions_bt, self.head_dim, self.rope_theta)

        with jax.named_scope("embed"):
            x_btd = jnp.take(self.embedding_vd[...], tokens_bt, axis=0).astype(self.dtype)
            x_btd = constrain(x_btd, _ACTIVATIONS)

        block_fn = self._block_fn()
        if self.scan_layers:
            @nnx.scan(in_axes=(0, nnx.Carry, None, None, None), out_axes=nnx.Carry)
            def scan_blocks(block, x_btd, sin_bth, cos_bth, segment_ids_bt):
                return block_fn(block, x_btd, sin_bth, cos_bth, segment_ids_bt)

            x_btd = scan_blocks(self.blocks, x_btd, sin_bth, cos_bth, segment_ids_bt)
        else:
            for block in self.blocks:
                x_btd = block_fn(block, x_btd, sin_bth, cos_bth, segment_ids_bt)

        with jax.named_scope("logits"):
            x_btd = self.final_norm(x_btd)
            if self.tie_embeddings:
                w_dv = self.embedding_vd[...].T
            else:
                w_dv = self.w_dv_out[...]
            return jnp.einsum("btd,dv->btv", x_btd, w_dv.astype(jnp.float32))


def count_params(model: nnx.Module) -> int:
    """Total number of parameter elements (nnx.Param leaves) in ``model``."""
    return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
