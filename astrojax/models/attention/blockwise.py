"""Memory-efficient attention in pure JAX for any backend: an online softmax over key blocks
and a flash-attention-2 backward that recomputes the scores block by block.

Layout is ``[batch, len, heads, head_dim]``; semantics are exactly those of
``reference.xla_attention`` (top-left causal, windows, segment ids with 0 = padding, GQA, a
query that sees no key returns zeros with zero gradients).

Design
- The wrapper pads the lengths up to the block sizes (blocks shrink to the length for short
  inputs) and splits them into blocks: ``q_nbtkgh`` is ``[q_blocks, batch, block_q, kv_heads,
  group, head_dim]``. Grouping the query heads by kv head gives GQA without repeating K/V.
  Padded keys are masked (by a static ``k < kv_len`` test, or by segment id 0 when segment ids
  are given); padded query rows are sliced off (their cotangent is zero, so they add nothing
  to dK/dV).
- Forward: ``lax.scan`` over query blocks; inside, a loop over key blocks keeps a running max,
  running sum and f32 accumulator (online softmax). Per step only one
  ``[batch, kv_heads, group, block_q, block_k]`` score tile exists. Saves ``(q, k, v, out,
  lse)``; ``lse = +inf`` marks rows that saw no key, so ``exp(s - lse) = 0`` there.
- Backward (``jax.custom_vjp``, FlashAttention-2): ``delta = rowsum(dO * O)``; ``lax.scan``
  over key blocks, an inner loop over the query blocks that can see them recomputes
  ``P = exp(S - lse)``, accumulates dK/dV for the key block in the loop carry and adds each
  query block's dQ into one f32 ``[len, heads, head_dim]`` buffer (updated in place). One
  recomputation of the scores, memory O(len * block).
- Block skipping: under ``causal``/``window`` the inner loops run over only the blocks that
  intersect the band (``kv_block_range`` / ``q_block_range``: dynamic ``fori_loop`` bounds,
  so skipped blocks cost nothing, not even a ``lax.cond``). Without them the bounds are static
  and the loop is a ``scan``. Blocks masked only by segment ids are not skipped.
- Matmuls take the input dtype and accumulate in f32 (``preferred_element_type``).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax import lax

from astrojax.models.attention.reference import (
    Window,
    check_kernel_args,
    kv_block_range,
    position_mask,
    positive_int,
    q_block_range,
)

# Initial running max: finite, so a row whose keys are all masked so far gives exp(-inf - m) = 0
# instead of exp(-inf + inf) = nan.
_M_INIT = -1e30


@dataclasses.dataclass(frozen=True)
class _Config:
    """Static parameters (hashable: a non-differentiable custom_vjp argument)."""

    causal: bool
    window: Window
    scale: float
    block_q: int
    block_k: int
    kv_len: int  # true key length; keys at >= kv_len are padding
    mask_kv_tail: bool  # padded keys exist and no segment ids mask them already




def _scores(cfg: _Config, q_btkgh, k_bskh, q_block, k_block, q_ids_bt, k_ids_bs):
    """Scaled f32 scores ``[batch, kv_heads, group, block_q, block_k]``, masked at -inf."""
    s = jnp.einsum("btkgh,bskh->bkgts", q_btkgh, k_bskh, preferred_element_type=jnp.float32)
    s = s * cfg.scale
    q_pos = q_block * cfg.block_q + jnp.arange(cfg.block_q)
    k_pos = k_block * cfg.block_k + jnp.arange(cfg.block_k)
    mask_ts = None
    if cfg.causal or cfg.window is not None:
        mask_ts = position_mask(q_pos, k_pos, causal=cfg.causal, window=cfg.window)
    if cfg.mask_kv_tail:
        tail = (k_pos < cfg.kv_len)[None, :]
        mask_ts = tail if mask_ts is None else mask_ts & tail
    if q_ids_bt is not None:
        # q == k and k != 0 implies q != 0: id 0 (padding) never matches.
        seg_bts = (q_ids_bt[:, :, None] == k_ids_bs[:, None, :]) & (k_ids_bs[:, None, :] != 0)
        mask_bts = seg_bts if mask_ts is None else seg_bts & mask_ts
        return jnp.where(mask_bts[:, None, None], s, -jnp.inf)
    return s if mask_ts is None else jnp.where(mask_ts, s, -jnp.inf)


def _take(x, i):
    return None if x is None else x[i]


def _forward(cfg: _Config, q_nbtkgh, k_nbskh, v_nbskh, q_ids_nbt, k_ids_nbs):
    """Returns ``out`` (blocked like q) and ``lse`` ``[q_blocks, b, kh, g, block_q]``."""
    num_q, num_k = q_nbtkgh.shape[0], k_nbskh.shape[0]
    b, bq, kh, g, h = q_nbtkgh.shape[1:]

    def q_step(_, xs):
        i, q, q_ids = xs

        def k_step(j, carry):
            acc, row_max, row_sum = carry
            v = v_nbskh[j]
            s = _scores(cfg, q, k_nbskh[j], i, j, q_ids, _take(k_ids_nbs, j))
            new_max = jnp.maximum(row_max, jnp.max(s, axis=-1))
            alpha = jnp.exp(row_max - new_max)
            p = jnp.exp(s - new_max[..., None])
            pv = jnp.einsum("bkgts,bskh->bkgth", p.astype(v.dtype), v,
                            preferred_element_type=jnp.float32)
            return acc * alpha[..., None] + pv, new_max, row_sum * alpha + jnp.sum(p, axis=-1)

        init = (jnp.zeros((b, kh, g, bq, h), jnp.float32),
                jnp.full((b, kh, g, bq), _M_INIT, jnp.float32),
                jnp.zeros((b, kh, g, bq), jnp.float32))
        lo, hi = kv_block_range(i, block_q=bq, block_k=cfg.block_k, num_k_blocks=num_k,
                                causal=cfg.causal, window=cfg.window)
        acc, row_max, row_sum = lax.fori_loop(lo, hi, k_step, init)
        seen = row_sum > 0
        row_sum = jnp.where(seen, row_sum, 1.0)
        out_btkgh = (acc / row_sum[..., None]).transpose(0, 3, 1, 2, 4).astype(q.dtype)
        lse = jnp.where(seen, row_max + jnp.log(row_sum), jnp.inf)
        return None, (out_btkgh, lse)

    _, (out, lse) = lax.scan(q_step, None, (jnp.arange(num_q), q_nbtkgh, q_ids_nbt))
    return out, lse


def _backward(cfg: _Config, residuals, do_nbtkgh):
    q_nbtkgh, k_nbskh, v_nbskh, q_ids_nbt, k_ids_nbs, out_nbtkgh, lse_nbkgt = residuals
    num_q, num_k = q_nbtkgh.shape[0], k_nbskh.shape[0]
    do_nbtkgh = do_nbtkgh.astype(q_nbtkgh.dtype)
    # Memory-bound row reduction over O(len) arrays: one fused XLA pass.
    delta_nbkgt = jnp.einsum("nbtkgh,nbtkgh->nbkgt", out_nbtkgh.astype(jnp.float32),
                             do_nbtkgh.astype(jnp.float32))

    def k_step(dq_nbtkgh, xs):
        j, k, v, k_ids = xs

        def q_step(i, carry):
            dk, dv, dq_all = carry
            q, do = q_nbtkgh[i], do_nbtkgh[i]
            s = _scores(cfg, q, k, i, j, _take(q_ids_nbt, i), k_ids)
            p = jnp.exp(s - lse_nbkgt[i][..., None])
            dv = dv + jnp.einsum("bkgts,btkgh->bskh", p.astype(do.dtype), do,
                                 preferred_element_type=jnp.float32)
            dp = jnp.einsum("btkgh,bskh->bkgts", do, v, preferred_element_type=jnp.float32)
            ds = (p * (dp - delta_nbkgt[i][..., None])).astype(q.dtype)
            dk = dk + jnp.einsum("bkgts,btkgh->bskh", ds, q, preferred_element_type=jnp.float32)
            dq = jnp.einsum("bkgts,bskh->btkgh", ds, k, preferred_element_type=jnp.float32)
            return dk, dv, dq_all.at[i].add(dq)

        lo, hi = q_block_range(j, block_q=cfg.block_q, block_k=cfg.block_k,
                               num_q_blocks=num_q, causal=cfg.causal, window=cfg.window)
        zeros = jnp.zeros(k.shape, jnp.float32)
        dk, dv, dq_nbtkgh = lax.fori_loop(lo, hi, q_step, (zeros, zeros, dq_nbtkgh))
        return dq_nbtkgh, ((dk * cfg.scale).astype(k.dtype), dv.astype(v.dtype))

    dq, (dk, dv) = lax.scan(k_step, jnp.zeros(q_nbtkgh.shape, jnp.float32),
                            (jnp.arange(num_k), k_nbskh, v_nbskh, k_ids_nbs))
    return (dq * cfg.scale).astype(q_nbtkgh.dtype), dk, dv


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _blockwise(cfg: _Config, q, k, v, q_ids, k_ids):
    return _forward(cfg, q, k, v, q_ids, k_ids)[0]


def _blockwise_fwd(cfg, q, k, v, q_ids, k_ids):
    out, lse = _forward(cfg, q, k, v, q_ids, k_ids)
    return out, (q, k, v, q_ids, k_ids, out, lse)


def _blockwise_bwd(cfg, residuals, do):
    return (*_backward(cfg, residuals, do), None, None)


_blockwise.defvjp(_blockwise_fwd, _blockwise_bwd)


def _to_blocks(x, block: int, num_blocks: int):
    """``[b, len, ...]`` -> zero-padded ``[num_blocks, b, block, ...]``."""
    pad = num_blocks * block - x.shape[1]
    if pad:
        x = jnp.pad(x, [(0, 0), (0, pad)] + [(0, 0)] * (x.ndim - 2))
    x = x.reshape(x.shape[0], num_blocks, block, *x.shape[2:])
    return jnp.moveaxis(x, 1, 0)


def blockwise_attention(q, k, v, *, causal: bool = False, window: Window = None,
                        q_segment_ids=None, kv_segment_ids=None, scale: float | None = None,
                        block_q: int = 512, block_k: int = 512) -> jax.Array:
    """Memory-efficient attention (see the module docstring); same contract as
    ``xla_attention``. ``block_q``/``block_k`` bound the score tile; they shrink to the
    sequence lengths for short inputs."""
    window, dtype = check_kernel_args("blockwise", q, k, v, window, q_segment_ids,
                                      kv_segment_ids)
    block_q, block_k = positive_int("block_q", block_q), positive_int("block_k", block_k)
    b, t, n, h = q.shape
    s, kh = k.shape[1], k.shape[2]
    if t == 0 or s == 0:
        return jnp.zeros(q.shape, q.dtype)
    bq, bk = min(block_q, t), min(block_k, s)
    num_q, num_k = -(-t // bq), -(-s // bk)
    segs = q_segment_ids is not None
    cfg = _Config(causal=bool(causal), window=window,
                  scale=float(h**-0.5 if scale is None else scale), block_q=bq, block_k=bk,
                  kv_len=s, mask_kv_tail=num_k * bk != s and not segs)
    q_nbtkgh = _to_blocks(q.astype(dtype).reshape(b, t, kh, n // kh, h), bq, num_q)
    k_nbskh = _to_blocks(k.astype(dtype), bk, num_k)
    v_nbskh = _to_blocks(v.astype(dtype), bk, num_k)
    q_ids = k_ids = None
    if segs:  # padded positions get id 0 (padding): they see and are seen by nothing
        q_ids = _to_blocks(q_segment_ids.astype(jnp.int32), bq, num_q)
        k_ids = _to_blocks(kv_segment_ids.astype(jnp.int32), bk, num_k)
    out = _blockwise(cfg, q_nbtkgh, k_nbskh, v_nbskh, q_ids, k_ids)
    out = jnp.moveaxis(out, 0, 1).reshape(b, num_q * bq, n, h)
    return out[:, :t].astype(q.dtype)


__all__ = ["blockwise_attention", "kv_block_range", "q_block_range"]
