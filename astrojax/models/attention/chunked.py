"""Attention for CPUs: query chunks against only the keys they can see, with a FlashAttention
style backward.

Same contract as ``reference.xla_attention`` (``[batch, len, heads, head_dim]``, top-left
causal, windows, segment ids with 0 = padding, GQA, a query that sees no key returns zeros with
zero gradients).

Why a separate kernel. On XLA:CPU the reference's time goes to passes over the float32 score
matrix that are not matmuls: the mask's ``select``, the softmax's max, exp and divide, and in
the backward the softmax's ``sum(dP * P)`` over keys (one ``[q_len, kv_len]`` reduction per
head). benchmarks/profile_step.py put these at about two thirds of the attention time of the
quickstart's step. This kernel does less of each:

- Queries are cut into static chunks; chunk ``i`` computes scores only against the key range
  ``[lo, hi)`` that its rows can see (``causal``: keys up to the chunk's last query; ``window``:
  the band). Causal attention over ``n`` chunks computes ``(n + 1) / 2n`` of the square instead
  of all of it, and only the chunk's diagonal block needs a mask (built from iotas inside the
  same fusion as the exp). Each chunk sees all its keys at once, so its softmax is exact (no
  online rescaling). Chunks are unrolled in Python: every shape is static.
- The softmax is not normalised over the scores: ``O = (exp(S - m) V) / l`` divides the
  ``[rows, head_dim]`` output, not the ``[rows, keys]`` probabilities.
- Backward (``jax.custom_vjp``): ``delta = rowsum(dO * O)`` over head_dim replaces the
  ``[rows, keys]`` reduction, and ``dS = P * (dP - delta)``. The unnormalised probabilities are
  kept from the forward when they are small (``save_probs_bytes``); beyond that the backward
  recomputes them from the saved log-sum-exp, chunk by chunk, so memory stays O(chunk * len).
- GQA without repeating K/V: queries are laid out ``[batch, kv_heads, len * group, head_dim]``
  (a query chunk is a contiguous block of rows), so every matmul is a plain batched matmul.

Matmuls take the input dtype and accumulate in float32 (``preferred_element_type``).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from astrojax.models.attention.reference import Window, check_kernel_args, positive_int

# Keep the forward's probabilities for the backward while all chunks' together fit in this
# many bytes; recompute them from the log-sum-exp beyond.
SAVE_PROBS_BYTES = 64 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class _Config:
    """Static parameters (hashable: a non-differentiable custom_vjp argument)."""

    causal: bool
    window: Window
    scale: float
    group: int
    chunks: tuple[tuple[int, int, int, int], ...]  # (q_lo, q_hi, k_lo, k_hi) per query chunk
    save_probs: bool


def chunk_ranges(q_len: int, kv_len: int, chunk: int, *, causal: bool,
                 window: Window) -> tuple[tuple[int, int, int, int], ...]:
    """``(q_lo, q_hi, k_lo, k_hi)`` per query chunk: the keys any of its queries can see by
    position (``k_hi <= k_lo`` when none can)."""
    ranges = []
    for q_lo in range(0, q_len, chunk):
        q_hi = min(q_lo + chunk, q_len)
        k_lo, k_hi = 0, kv_len
        if causal:
            k_hi = min(k_hi, q_hi)
        if window is not None:
            left, right = window
            k_lo = max(q_lo - left, 0)
            k_hi = min(k_hi, q_hi + right)
        ranges.append((q_lo, q_hi, k_lo, max(k_hi, k_lo)))
    return tuple(ranges)


def _chunk_mask(cfg: _Config, q_lo, q_hi, k_lo, k_hi, q_ids, k_ids):
    """``[batch or 1, 1, rows, keys]`` bool visibility inside one chunk, or None when every
    key of the range is visible from every row."""
    rows = (q_hi - q_lo) * cfg.group
    mask = None
    needs_position = (cfg.causal and k_hi > q_lo + 1) or cfg.window is not None
    if needs_position:
        qi = q_lo + jax.lax.broadcasted_iota(jnp.int32, (rows, k_hi - k_lo), 0) // cfg.group
        kj = k_lo + jax.lax.broadcasted_iota(jnp.int32, (rows, k_hi - k_lo), 1)
        mask = jnp.ones((rows, k_hi - k_lo), bool)
        if cfg.causal:
            mask &= kj <= qi
        if cfg.window is not None:
            left, right = cfg.window
            mask &= (kj >= qi - left) & (kj <= qi + right)
        mask = mask[None, None]
    if q_ids is not None:
        q_rows = jnp.repeat(q_ids[:, q_lo:q_hi], cfg.group, axis=1)  # [b, rows]
        kv = k_ids[:, k_lo:k_hi]
        seg = (q_rows[:, :, None] == kv[:, None, :]) & (kv[:, None, :] != 0)
        mask = seg[:, None] if mask is None else mask & seg[:, None]
    return mask


def _scores(cfg, q_bkrh, k_bksh, chunk, q_ids, k_ids):
    """Scaled, masked float32 scores of one chunk, ``[b, kh, rows, keys]``, and its mask."""
    q_lo, q_hi, k_lo, k_hi = chunk
    g = cfg.group
    s = jnp.einsum("bkrh,bksh->bkrs", q_bkrh[:, :, q_lo * g:q_hi * g], k_bksh[:, :, k_lo:k_hi],
                   preferred_element_type=jnp.float32) * cfg.scale
    mask = _chunk_mask(cfg, q_lo, q_hi, k_lo, k_hi, q_ids, k_ids)
    return (s if mask is None else jnp.where(mask, s, -jnp.inf)), mask


def _forward(cfg: _Config, q, k, v, q_ids, k_ids):
    """``out [b, kh, t*g, h]``, ``lse [b, kh, t*g]`` (+inf: the row saw no key) and, when
    ``save_probs``, each chunk's unnormalised probabilities and ``1 / l``."""
    b, kh, _, h = q.shape
    outs, lses, probs = [], [], []
    for chunk in cfg.chunks:
        q_lo, q_hi, k_lo, k_hi = chunk
        rows = (q_hi - q_lo) * cfg.group
        if k_hi <= k_lo:  # no query of the chunk sees a key
            outs.append(jnp.zeros((b, kh, rows, h), jnp.float32))
            lses.append(jnp.full((b, kh, rows), jnp.inf, jnp.float32))
            probs.append(None)
            continue
        s, _ = _scores(cfg, q, k, chunk, q_ids, k_ids)
        m = jnp.max(s, axis=-1, keepdims=True)
        m = jnp.where(jnp.isfinite(m), m, 0.0)  # a row with no key: exp(-inf) = 0
        p = jnp.exp(s - m)
        l_sum = jnp.sum(p, axis=-1, keepdims=True)
        inv_l = jnp.where(l_sum > 0, 1.0 / jnp.where(l_sum > 0, l_sum, 1.0), 0.0)
        pv = jnp.einsum("bkrs,bksh->bkrh", p.astype(v.dtype), v[:, :, k_lo:k_hi],
                        preferred_element_type=jnp.float32)
        outs.append(pv * inv_l)
        lses.append(jnp.where(l_sum > 0, m + jnp.log(jnp.where(l_sum > 0, l_sum, 1.0)),
                              jnp.inf)[..., 0])
        probs.append((p, inv_l) if cfg.save_probs else None)
    out = jnp.concatenate(outs, axis=2)
    return out, jnp.concatenate(lses, axis=2), probs


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _chunked(cfg: _Config, q, k, v, q_ids, k_ids):
    return _forward(cfg, q, k, v, q_ids, k_ids)[0].astype(q.dtype)


def _chunked_fwd(cfg, q, k, v, q_ids, k_ids):
    out, lse, probs = _forward(cfg, q, k, v, q_ids, k_ids)
    out = out.astype(q.dtype)
    return out, (q, k, v, q_ids, k_ids, out, lse, probs)


def _chunked_bwd(cfg, residuals, d_out):
    q, k, v, q_ids, k_ids, out, lse, probs = residuals
    g = cfg.group
    d_out = d_out.astype(q.dtype)
    # FlashAttention's delta: rowsum(dO * O) over head_dim, not sum(dP * P) over the keys.
    delta = jnp.einsum("bkrh,bkrh->bkr", d_out.astype(jnp.float32), out.astype(jnp.float32))
    dk = jnp.zeros(k.shape, jnp.float32)
    dv = jnp.zeros(v.shape, jnp.float32)
    dqs = []
    for chunk, saved in zip(cfg.chunks, probs, strict=True):
        q_lo, q_hi, k_lo, k_hi = chunk
        r_lo, r_hi = q_lo * g, q_hi * g
        if k_hi <= k_lo:
            dqs.append(jnp.zeros(q[:, :, r_lo:r_hi].shape, jnp.float32))
            continue
        do = d_out[:, :, r_lo:r_hi]
        d = delta[:, :, r_lo:r_hi, None]
        k_c, v_c = k[:, :, k_lo:k_hi], v[:, :, k_lo:k_hi]
        if saved is not None:  # P = p * inv_l: fold 1/l into dO's rows and delta
            p, inv_l = saved
            do_scaled = (do.astype(jnp.float32) * inv_l).astype(q.dtype)
            d = d * inv_l
        else:
            s, _ = _scores(cfg, q, k, chunk, q_ids, k_ids)
            p = jnp.exp(s - lse[:, :, r_lo:r_hi, None])
            do_scaled = do
        dv = dv.at[:, :, k_lo:k_hi].add(jnp.einsum(
            "bkrs,bkrh->bksh", p.astype(q.dtype), do_scaled, preferred_element_type=jnp.float32))
        dp = jnp.einsum("bkrh,bksh->bkrs", do_scaled, v_c, preferred_element_type=jnp.float32)
        ds = (p * (dp - d)).astype(q.dtype)
        dqs.append(jnp.einsum("bkrs,bksh->bkrh", ds, k_c, preferred_element_type=jnp.float32))
        dk = dk.at[:, :, k_lo:k_hi].add(jnp.einsum(
            "bkrs,bkrh->bksh", ds, q[:, :, r_lo:r_hi], preferred_element_type=jnp.float32))
    dq = jnp.concatenate(dqs, axis=2) * cfg.scale
    return (dq.astype(q.dtype), (dk * cfg.scale).astype(k.dtype), dv.astype(v.dtype), None, None)


_chunked.defvjp(_chunked_fwd, _chunked_bwd)


def default_chunk(q_len: int, causal: bool, window: Window) -> int:
    """The query chunk: 64 queries, or more so that long sequences stay at <= 32 chunks (each
    chunk is a few unrolled ops). Measured on the 2-core CPU (1 x 2048 tokens, 8/2 heads of 64,
    forward + backward): causal 458 ms at 64 and 422 at 128 against 1,087 for one chunk;
    non-causal 733 / 731 against 940 (a chunk's scores stay nearer the caches)."""
    del causal, window  # the same rule has measured best with and without a band
    return max(64, -(-q_len // 32))


def chunked_attention(q, k, v, *, causal: bool = False, window: Window = None,
                      q_segment_ids=None, kv_segment_ids=None, scale: float | None = None,
                      chunk: int | None = None,
                      save_probs_bytes: int = SAVE_PROBS_BYTES) -> jax.Array:
    """Chunked attention (see the module docstring); same contract as ``xla_attention``.
    ``chunk`` is the number of queries per chunk (default :func:`default_chunk`)."""
    window, dtype = check_kernel_args("chunked", q, k, v, window, q_segment_ids,
                                      kv_segment_ids)
    if chunk is not None:
        positive_int("chunk", chunk)
    b, t, n, h = q.shape
    s, kh = k.shape[1], k.shape[2]
    if t == 0 or s == 0:
        return jnp.zeros(q.shape, q.dtype)
    g = n // kh
    chunk = chunk or default_chunk(t, causal, window)
    chunks = chunk_ranges(t, s, chunk, causal=bool(causal), window=window)
    kept = sum((q_hi - q_lo) * max(k_hi - k_lo, 0) for q_lo, q_hi, k_lo, k_hi in chunks)
    cfg = _Config(causal=bool(causal), window=window,
                  scale=float(h**-0.5 if scale is None else scale), group=g, chunks=chunks,
                  save_probs=4 * b * n * kept <= save_probs_bytes)
    # [b, t, kh*g, h] -> [b, kh, t*g, h]: a chunk of queries is a block of contiguous rows.
    q_bkrh = q.astype(dtype).reshape(b, t, kh, g, h).transpose(0, 2, 1, 3, 4).reshape(
        b, kh, t * g, h)
    k_bksh = k.astype(dtype).transpose(0, 2, 1, 3)
    v_bksh = v.astype(dtype).transpose(0, 2, 1, 3)
    q_ids = k_ids = None
    if q_segment_ids is not None:
        q_ids, k_ids = q_segment_ids.astype(jnp.int32), kv_segment_ids.astype(jnp.int32)
    out = _chunked(cfg, q_bkrh, k_bksh, v_bksh, q_ids, k_ids)
    out = out.reshape(b, kh, t, g, h).transpose(0, 2, 1, 3, 4).reshape(b, t, n, h)
    return out.astype(q.dtype)


__all__ = ["chunk_ranges", "chunked_attention", "default_chunk"]
