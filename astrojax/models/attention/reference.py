"""The XLA reference attention: plain einsum softmax in float32; every other kernel is tested
against it. Also the shared mask semantics and argument checks."""

from __future__ import annotations

import jax
import jax.numpy as jnp

Window = tuple[int, int] | None


class UnsupportedOption(ValueError):
    """An attention implementation was asked for an option it does not support."""

    def __init__(self, impl: str, option: str, detail: str = ""):
        super().__init__(f"attention impl {impl!r} does not support {option}"
                         + (f": {detail}" if detail else ""))
        self.impl, self.option = impl, option


def check_inputs(q, k, v) -> None:
    """Raises ValueError naming the argument whose shape breaks the attention contract."""
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ValueError("attention expects q, k, v as [batch, len, heads, head_dim]; got ranks "
                         f"{q.ndim}, {k.ndim}, {v.ndim}")
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape; got {k.shape} and {v.shape}")
    if q.shape[0] != k.shape[0] or q.shape[3] != k.shape[3]:
        raise ValueError(f"q {q.shape} and k {k.shape} must agree on batch and head_dim")
    if q.shape[2] % k.shape[2]:
        raise ValueError(f"num_kv_heads={k.shape[2]} must divide num_heads={q.shape[2]}")


def positive_int(name: str, value) -> int:
    """``value`` if it is a positive int (a block or chunk size); else ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def check_kernel_args(impl: str, q, k, v, window: Window, q_segment_ids, kv_segment_ids):
    """The argument checks of a kernel function called directly (shapes, window, both segment
    id arrays or neither, floating-point inputs); returns ``(window, dtype)``."""
    check_inputs(q, k, v)
    window = check_window(window)
    if (q_segment_ids is None) != (kv_segment_ids is None):
        raise ValueError("pass both q_segment_ids and kv_segment_ids, or neither")
    dtype = jnp.result_type(q, k, v)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"{impl} attention needs floating-point q, k, v; got {dtype}")
    return window, dtype


def normalize_segment_ids(segment_ids, q_len: int, kv_len: int):
    """``segment_ids`` is one ``[batch, len]`` array (q_len == kv_len) or a ``(q_ids, kv_ids)``
    pair; returns the pair (or ``(None, None)``)."""
    if segment_ids is None:
        return None, None
    if isinstance(segment_ids, tuple | list):
        q_ids, kv_ids = segment_ids
    else:
        if q_len != kv_len:
            raise ValueError(f"one segment_ids array needs q_len == kv_len (got {q_len} and "
                             f"{kv_len}); pass (q_segment_ids, kv_segment_ids)")
        q_ids = kv_ids = segment_ids
    if q_ids.shape[-1] != q_len or kv_ids.shape[-1] != kv_len:
        raise ValueError(f"segment_ids shapes {q_ids.shape}, {kv_ids.shape} do not match "
                         f"q_len={q_len}, kv_len={kv_len}")
    return q_ids, kv_ids


def check_window(window: Window) -> Window:
    if window is None:
        return None
    if len(window) != 2 or min(window) < 0:
        raise ValueError(f"window must be (left, right) with non-negative ints, got {window!r}")
    return int(window[0]), int(window[1])


def position_mask(q_pos, kv_pos, *, causal: bool, window: Window) -> jax.Array:
    """``[..., q, kv]`` bool: key j is visible from query i (causal: j <= i; window (l, r):
    i - l <= j <= i + r). Positions are absolute indices, so blocks of a longer sequence can
    share this function."""
    qi, kj = q_pos[..., :, None], kv_pos[..., None, :]
    mask = jnp.ones(jnp.broadcast_shapes(qi.shape, kj.shape), bool)
    if causal:
        mask &= kj <= qi
    if window is not None:
        left, right = window
        mask &= (kj >= qi - left) & (kj <= qi + right)
    return mask


def kv_block_range(q_block, *, block_q: int, block_k: int, num_k_blocks: int, causal: bool,
                   window: Window):
    """``[lo, hi)`` key blocks holding a key visible (by position) from some query of
    ``q_block``. Python ints when nothing limits the range, so a caller's loop can stay static;
    int32 values otherwise (traced inside kernels)."""
    if not causal and window is None:
        return 0, num_k_blocks
    first_q = q_block * block_q
    last_q = first_q + block_q - 1
    lo = 0
    if window is not None:
        lo = jax.lax.div(jnp.maximum(first_q - window[0], 0), block_k)
    # causal (with or without a window): j <= i; non-causal window: j <= i + right.
    last_k = last_q if causal else last_q + window[1]
    hi = jnp.minimum(jax.lax.div(jnp.asarray(last_k), block_k) + 1, num_k_blocks)
    return jnp.asarray(lo, jnp.int32), jnp.asarray(hi, jnp.int32)


def q_block_range(k_block, *, block_q: int, block_k: int, num_q_blocks: int, causal: bool,
                  window: Window):
    """``[lo, hi)`` query blocks holding a query that sees (by position) some key of
    ``k_block``; the mirror of :func:`kv_block_range`, for backward passes over query blocks."""
    if not causal and window is None:
        return 0, num_q_blocks
    first_k = k_block * block_k
    last_k = first_k + block_k - 1
    lo = 0
    if causal:
        # i >= j (a window's i >= j - right is weaker)
        lo = jax.lax.div(jnp.asarray(first_k), block_q)
    elif window is not None:
        lo = jax.lax.div(jnp.maximum(first_k - window[1], 0), block_q)
    hi = num_q_blocks
    if window is not None:
        hi = jnp.minimum(jax.lax.div(jnp.asarray(last_k + window[0]), block_q) + 1, num_q_blocks)
    return jnp.asarray(lo, jnp.int32), jnp.asarray(hi, jnp.int32)


def segment_mask(q_segment_ids, kv_segment_ids) -> jax.Array:
    """``[batch, q, kv]`` bool: same segment and neither is padding (id 0)."""
    q, kv = q_segment_ids[:, :, None], kv_segment_ids[:, None, :]
    return (q == kv) & (q != 0) & (kv != 0)


def full_mask(q_len, kv_len, *, causal, window, q_segment_ids, kv_segment_ids):
    """``[batch or 1, q_len, kv_len]`` bool visibility of every key from every query."""
    mask = position_mask(jnp.arange(q_len), jnp.arange(kv_len), causal=causal, window=window)
    mask = mask[None]
    if q_segment_ids is not None:
        mask = mask & segment_mask(q_segment_ids, kv_segment_ids)
    return mask


def xla_attention(q, k, v, *, causal=False, window=None, q_segment_ids=None,
                  kv_segment_ids=None, scale=None):
    """Reference attention: materialises the ``[q_len, kv_len]`` scores in float32.

    A query that sees no key (all masked) returns zeros, with zero gradients.

    Heads come first (``[b, kv_heads, group, t, h]``) so both einsums are batched matmuls over
    contiguous rows, and the softmax is ``jax.nn.softmax`` over a finite fill, with the rows that
    see no key zeroed at the end; on XLA:CPU this ran the quickstart's attention (8 x 512
    tokens, 4/2 heads of 32) forward + backward in 180 ms against 301 ms for the
    ``[b, t, kv, g, h]`` layout with an explicit max and a guarded denominator
    (benchmarks/profile_step.py locates the time).
    """
    b, t, n, h = q.shape
    s, kh = k.shape[1], k.shape[2]
    scale = h**-0.5 if scale is None else scale
    q_bkgth = (q.astype(jnp.float32) * scale).reshape(b, t, kh, n // kh, h).transpose(
        0, 2, 3, 1, 4)
    k_bksh = k.astype(jnp.float32).transpose(0, 2, 1, 3)
    v_bksh = v.astype(jnp.float32).transpose(0, 2, 1, 3)
    logits = jnp.einsum("bkgth,bksh->bkgts", q_bkgth, k_bksh)
    mask = full_mask(t, s, causal=causal, window=window, q_segment_ids=q_segment_ids,
                     kv_segment_ids=kv_segment_ids)[:, None, None]
    logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
    p = jax.nn.softmax(logits, axis=-1)
    out = jnp.einsum("bkgts,bksh->bkgth", p, v_bksh)
    sees_a_key = jnp.any(mask, axis=-1, keepdims=True)  # [b or 1, 1, 1, t, 1]
    out = jnp.where(sees_a_key, out, 0.0)
    return out.transpose(0, 3, 1, 2, 4).reshape(b, t, n, h).astype(q.dtype)
