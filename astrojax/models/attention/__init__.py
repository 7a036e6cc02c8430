"""Attention: the one place the model calls a dot-product attention kernel.

``attention(q, k, v, ...)`` takes ``q: [batch, q_len, num_heads, head_dim]`` and
``k, v: [batch, kv_len, num_kv_heads, head_dim]`` (num_kv_heads divides num_heads) and returns
``[batch, q_len, num_heads, head_dim]``. Today it runs ``jax.nn.dot_product_attention`` with the
XLA implementation; the kernel registry (cuDNN, Pallas, blockwise, ring, ...) plugs in here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def segment_mask(q_segment_ids: jax.Array, kv_segment_ids: jax.Array) -> jax.Array:
    """``[batch, 1, q_len, kv_len]`` boolean mask: same segment, and not padding (id 0)."""
    same = q_segment_ids[:, :, None] == kv_segment_ids[:, None, :]
    real = (q_segment_ids[:, :, None] != 0) & (kv_segment_ids[:, None, :] != 0)
    return (same & real)[:, None, :, :]


def attention(
    q_btnh: jax.Array,
    k_bskh: jax.Array,
    v_bskh: jax.Array,
    *,
    causal: bool = False,
    segment_ids: jax.Array | None = None,
    scale: float | None = None,
) -> jax.Array:
    """Grouped-query dot-product attention; ``segment_ids`` ([batch, len]) isolate packed rows.

    Rows whose segment id is 0 (padding) attend to nothing and return zeros.
    """
    mask = None
    if segment_ids is not None:
        if q_btnh.shape[1] != k_bskh.shape[1]:
            raise ValueError("segment_ids needs q_len == kv_len; got "
                             f"{q_btnh.shape[1]} and {k_bskh.shape[1]}")
        mask = segment_mask(segment_ids, segment_ids)
    out = jax.nn.dot_product_attention(
        q_btnh, k_bskh, v_bskh, mask=mask, is_causal=causal, scale=scale, implementation="xla"
    )
    if segment_ids is not None:
        out = jnp.where((segment_ids != 0)[:, :, None, None], out, jnp.zeros_like(out))
    return out
