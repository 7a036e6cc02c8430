"""Our flash-attention kernel in Pallas (Triton backend on GPU, interpret mode elsewhere).

Layout is ``[batch, len, heads, head_dim]`` throughout; semantics are exactly those of
``reference.xla_attention`` (causal, windows, segment ids, GQA, rows that see nothing -> 0).

Design
- Forward: grid ``(batch, q_heads, q_blocks)``. Each program holds one ``[block_q, head_dim]``
  query tile and loops over key blocks with an online softmax (running max, running sum and an
  f32 accumulator), then stores the output tile and the log-sum-exp of each row for the
  backward. Query head ``n`` reads kv head ``n // group`` through its BlockSpec index_map, so
  K/V are never repeated in memory.
- Block skipping: the key-block loop runs over ``kv_block_range`` (and the dK/dV loop over
  ``q_block_range``), the blocks that intersect the causal/window band of the tile; blocks that
  are fully masked are never loaded.
- Padding: lengths are padded up to the block sizes and head_dim to a power of two >= 16 inside
  the wrapper; padded keys are masked (by a static ``k < kv_len`` test, or by segment id 0 when
  segment ids are given), padded rows and columns are sliced off the result.
- Backward (FlashAttention-2): ``delta = rowsum(dO * O)`` is a memory-bound row reduction that
  XLA fuses into one pass, so it stays plain jnp; then a dK/dV kernel with grid
  ``(batch, kv_heads, k_blocks)`` that loops over the query heads of its GQA group (static loop)
  and their query blocks, so dK/dV come out already summed over the group; and a dQ kernel with
  grid ``(batch, q_heads, q_blocks)`` looping over key blocks. No atomics.
- Matmuls take the input dtype (bf16/fp16/f32) and accumulate in f32. f32 inputs use IEEE f32
  dots on Triton (its default for f32 at ``Precision.DEFAULT``).

Default tiles: 64x64 for head_dim <= 64; 64x32 for larger head_dim (keeps the f32
accumulators of the dK/dV kernel in registers at head_dim 128). Both are overridable and must
be powers of two >= 16 (Triton's ``tl.dot`` minimum); they shrink to the padded sequence length
for short inputs. The backward uses the same tiles as the forward.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

from astrojax.models.attention.reference import (
    UnsupportedOption,
    Window,
    check_inputs,
    check_window,
    kv_block_range,
    position_mask,
    q_block_range,
)

_DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
_MAX_HEAD_DIM = 256
# Initial running max: finite, so a row whose keys are all masked so far gives exp(-inf - m) = 0
# instead of exp(-inf + inf) = nan.
_M_INIT = -1e30


@dataclasses.dataclass(frozen=True)
class _Config:
    """Static kernel parameters (hashable: passed as a non-differentiable custom_vjp arg)."""

    causal: bool
    window: Window
    scale: float
    block_q: int
    block_k: int
    kv_len: int  # true key length; keys at >= kv_len are padding
    mask_kv_tail: bool  # padded keys exist and no segment ids mask them already
    groups: int  # query heads per kv head
    interpret: bool
    num_warps: int
    num_stages: int


# ---------------------------------------------------------------------------------------------
# Block ranges: which blocks a tile must visit. Work on Python ints and traced int32 alike.




def _mask(cfg: _Config, q_pos, k_pos, q_ids, k_ids):
    """``[block_q, block_k]`` visibility, or None when every key of the tile is visible."""
    mask = None
    if cfg.causal or cfg.window is not None:
        mask = position_mask(q_pos, k_pos, causal=cfg.causal, window=cfg.window)
    if cfg.mask_kv_tail:
        tail = (k_pos < cfg.kv_len)[None, :]
        mask = tail if mask is None else mask & tail
    if q_ids is not None:
        # q == k and k != 0 implies q != 0: id 0 (padding) never matches.
        seg = (q_ids[:, None] == k_ids[None, :]) & (k_ids[None, :] != 0)
        mask = seg if mask is None else mask & seg
    return mask


def _scores(cfg: _Config, q, k, q_pos, k_pos, q_ids, k_ids):
    """Scaled f32 ``q @ k.T`` with masked entries at -inf."""
    s = lax.dot_general(q, k, (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32)
    s = s * cfg.scale
    mask = _mask(cfg, q_pos, k_pos, q_ids, k_ids)
    return s if mask is None else jnp.where(mask, s, -jnp.inf)


def _dot(a, b, contract=(1, 0)):
    return lax.dot_general(a, b, (((contract[0],), (contract[1],)), ((), ())),
                           preferred_element_type=jnp.float32)


# ---------------------------------------------------------------------------------------------
# Kernels.


def _fwd_kernel(q_ref, k_ref, v_ref, q_ids_ref, k_ids_ref, o_ref, lse_ref, *, cfg: _Config):
    bq, bk = cfg.block_q, cfg.block_k
    q_block = pl.program_id(2)
    q = q_ref[...]
    q_pos = q_block * bq + jnp.arange(bq)
    q_ids = None if q_ids_ref is None else q_ids_ref[...]

    def body(k_block, carry):
        acc, row_max, row_sum = carry
        start = pl.multiple_of(k_block * bk, bk)
        keys = pl.ds(start, bk)
        k_ids = None if k_ids_ref is None else k_ids_ref[keys]
        s = _scores(cfg, q, k_ref[keys, :], q_pos, start + jnp.arange(bk), q_ids, k_ids)
        new_max = jnp.maximum(row_max, jnp.max(s, axis=1))
        alpha = jnp.exp(row_max - new_max)
        p = jnp.exp(s - new_max[:, None])
        v = v_ref[keys, :]
        acc = acc * alpha[:, None] + _dot(p.astype(v.dtype), v)
        return acc, new_max, row_sum * alpha + jnp.sum(p, axis=1)

    lo, hi = kv_block_range(q_block, block_q=bq, block_k=bk, num_k_blocks=k_ref.shape[0] // bk,
                            causal=cfg.causal, window=cfg.window)
    init = (jnp.zeros(q.shape, jnp.float32), jnp.full((bq,), _M_INIT, jnp.float32),
            jnp.zeros((bq,), jnp.float32))
    acc, row_max, row_sum = lax.fori_loop(lo, hi, body, init)
    seen = row_sum > 0
    row_sum = jnp.where(seen, row_sum, 1.0)
    o_ref[...] = (acc / row_sum[:, None]).astype(o_ref.dtype)
    # +inf for rows that saw no key: the backward's exp(s - lse) is then 0 for the whole row.
    lse_ref[...] = jnp.where(seen, row_max + jnp.log(row_sum), jnp.inf)


def _dq_kernel(q_ref, k_ref, v_ref, q_ids_ref, k_ids_ref, do_ref, lse_ref, delta_ref, dq_ref,
               *, cfg: _Config):
    bq, bk = cfg.block_q, cfg.block_k
    q_block = pl.program_id(2)
    q, do = q_ref[...], do_ref[...]
    lse, delta = lse_ref[...], delta_ref[...]
    q_pos = q_block * bq + jnp.arange(bq)
    q_ids = None if q_ids_ref is None else q_ids_ref[...]

    def body(k_block, dq):
        start = pl.multiple_of(k_block * bk, bk)
        keys = pl.ds(start, bk)
        k_ids = None if k_ids_ref is None else k_ids_ref[keys]
        k = k_ref[keys, :]
        s = _scores(cfg, q, k, q_pos, start + jnp.arange(bk), q_ids, k_ids)
        p = jnp.exp(s - lse[:, None])
        dp = _dot(do, v_ref[keys, :], (1, 1))
        ds = p * (dp - delta[:, None])
        return dq + _dot(ds.astype(k.dtype), k)

    lo, hi = kv_block_range(q_block, block_q=bq, block_k=bk, num_k_blocks=k_ref.shape[0] // bk,
                            causal=cfg.causal, window=cfg.window)
    dq = lax.fori_loop(lo, hi, body, jnp.zeros(q.shape, jnp.float32))
    dq_ref[...] = (dq * cfg.scale).astype(dq_ref.dtype)


def _dkv_kernel(q_ref, k_ref, v_ref, q_ids_ref, k_ids_ref, do_ref, lse_ref, delta_ref,
                dk_ref, dv_ref, *, cfg: _Config):
    bq, bk = cfg.block_q, cfg.block_k
    k_block = pl.program_id(2)
    k, v = k_ref[...], v_ref[...]
    k_pos = k_block * bk + jnp.arange(bk)
    k_ids = None if k_ids_ref is None else k_ids_ref[...]
    lo, hi = q_block_range(k_block, block_q=bq, block_k=bk, num_q_blocks=q_ref.shape[0] // bq,
                           causal=cfg.causal, window=cfg.window)

    def body(head, q_block, carry):
        dk, dv = carry
        start = pl.multiple_of(q_block * bq, bq)
        rows = pl.ds(start, bq)
        q_ids = None if q_ids_ref is None else q_ids_ref[rows]
        q, do = q_ref[rows, head, :], do_ref[rows, head, :]
        s = _scores(cfg, q, k, start + jnp.arange(bq), k_pos, q_ids, k_ids)
        p = jnp.exp(s - lse_ref[head, rows][:, None])
        dv = dv + _dot(p.astype(do.dtype), do, (0, 0))
        ds = p * (_dot(do, v, (1, 1)) - delta_ref[head, rows][:, None])
        return dk + _dot(ds.astype(q.dtype), q, (0, 0)), dv

    carry = (jnp.zeros(k.shape, jnp.float32), jnp.zeros(v.shape, jnp.float32))
    for head in range(cfg.groups):  # the query heads that share this kv head
        carry = lax.fori_loop(lo, hi, functools.partial(body, head), carry)
    dk, dv = carry
    dk_ref[...] = (dk * cfg.scale).astype(dk_ref.dtype)
    dv_ref[...] = dv.astype(dv_ref.dtype)


# ---------------------------------------------------------------------------------------------
# pallas_call wrappers on padded, block-aligned inputs.


def _call(cfg: _Config, kernel, grid, in_specs, out_specs, out_shape, name):
    return pl.pallas_call(
        functools.partial(kernel, cfg=cfg), grid=grid, in_specs=in_specs, out_specs=out_specs,
        out_shape=out_shape, interpret=cfg.interpret, name=name,
        compiler_params=pltriton.CompilerParams(num_warps=cfg.num_warps,
                                                num_stages=cfg.num_stages),
    )


def _forward(cfg: _Config, q, k, v, q_ids, k_ids):
    b, t, n, h = q.shape
    s = k.shape[1]
    bq, g = cfg.block_q, cfg.groups
    segs = q_ids is not None
    in_specs = [
        pl.BlockSpec((None, bq, None, h), lambda i, j, m: (i, m, j, 0)),
        pl.BlockSpec((None, s, None, h), lambda i, j, m: (i, 0, j // g, 0)),
        pl.BlockSpec((None, s, None, h), lambda i, j, m: (i, 0, j // g, 0)),
        pl.BlockSpec((None, bq), lambda i, j, m: (i, m)) if segs else None,
        pl.BlockSpec((None, s), lambda i, j, m: (i, 0)) if segs else None,
    ]
    out_specs = [pl.BlockSpec((None, bq, None, h), lambda i, j, m: (i, m, j, 0)),
                 pl.BlockSpec((None, None, bq), lambda i, j, m: (i, j, m))]
    out_shape = [jax.ShapeDtypeStruct(q.shape, q.dtype),
                 jax.ShapeDtypeStruct((b, n, t), jnp.float32)]
    out, lse = _call(cfg, _fwd_kernel, (b, n, t // bq), in_specs, out_specs, out_shape,
                     "astrojax_flash_fwd")(q, k, v, q_ids, k_ids)
    return out, lse


def _backward(cfg: _Config, q, k, v, q_ids, k_ids, out, lse, do):
    b, t, n, h = q.shape
    s, kh = k.shape[1], k.shape[2]
    bq, bk, g = cfg.block_q, cfg.block_k, cfg.groups
    segs = q_ids is not None
    do = do.astype(q.dtype)
    delta = jnp.sum(out.astype(jnp.float32) * do.astype(jnp.float32), axis=-1)
    delta = delta.transpose(0, 2, 1)  # [b, n, t] like lse

    dq = _call(
        cfg, _dq_kernel, (b, n, t // bq),
        [pl.BlockSpec((None, bq, None, h), lambda i, j, m: (i, m, j, 0)),
         pl.BlockSpec((None, s, None, h), lambda i, j, m: (i, 0, j // g, 0)),
         pl.BlockSpec((None, s, None, h), lambda i, j, m: (i, 0, j // g, 0)),
         pl.BlockSpec((None, bq), lambda i, j, m: (i, m)) if segs else None,
         pl.BlockSpec((None, s), lambda i, j, m: (i, 0)) if segs else None,
         pl.BlockSpec((None, bq, None, h), lambda i, j, m: (i, m, j, 0)),
         pl.BlockSpec((None, None, bq), lambda i, j, m: (i, j, m)),
         pl.BlockSpec((None, None, bq), lambda i, j, m: (i, j, m))],
        pl.BlockSpec((None, bq, None, h), lambda i, j, m: (i, m, j, 0)),
        jax.ShapeDtypeStruct(q.shape, q.dtype), "astrojax_flash_dq",
    )(q, k, v, q_ids, k_ids, do, lse, delta)

    # Group c of query heads is c*g .. c*g+g-1: a block of g along the heads axis.
    dk, dv = _call(
        cfg, _dkv_kernel, (b, kh, s // bk),
        [pl.BlockSpec((None, t, g, h), lambda i, c, m: (i, 0, c, 0)),
         pl.BlockSpec((None, bk, None, h), lambda i, c, m: (i, m, c, 0)),
         pl.BlockSpec((None, bk, None, h), lambda i, c, m: (i, m, c, 0)),
         pl.BlockSpec((None, t), lambda i, c, m: (i, 0)) if segs else None,
         pl.BlockSpec((None, bk), lambda i, c, m: (i, m)) if segs else None,
         pl.BlockSpec((None, t, g, h), lambda i, c, m: (i, 0, c, 0)),
         pl.BlockSpec((None, g, t), lambda i, c, m: (i, c, 0)),
         pl.BlockSpec((None, g, t), lambda i, c, m: (i, c, 0))],
        [pl.BlockSpec((None, bk, None, h), lambda i, c, m: (i, m, c, 0))] * 2,
        [jax.ShapeDtypeStruct(k.shape, k.dtype), jax.ShapeDtypeStruct(v.shape, v.dtype)],
        "astrojax_flash_dkv",
    )(q, k, v, q_ids, k_ids, do, lse, delta)
    return dq, dk, dv


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _flash(cfg: _Config, q, k, v, q_ids, k_ids):
    return _forward(cfg, q, k, v, q_ids, k_ids)[0]


def _flash_fwd(cfg, q, k, v, q_ids, k_ids):
    out, lse = _forward(cfg, q, k, v, q_ids, k_ids)
    return out, (q, k, v, q_ids, k_ids, out, lse)


def _flash_bwd(cfg, residuals, do):
    q, k, v, q_ids, k_ids, out, lse = residuals
    dq, dk, dv = _backward(cfg, q, k, v, q_ids, k_ids, out, lse, do)
    return dq, dk, dv, None, None


_flash.defvjp(_flash_fwd, _flash_bwd)


# ---------------------------------------------------------------------------------------------
# Public entry point.


def default_block_sizes(head_dim: int) -> tuple[int, int]:
    """``(block_q, block_k)``: 64x64 up to head_dim 64, 64x32 above (register pressure)."""
    return (64, 64) if head_dim <= 64 else (64, 32)


def _block(name: str, size: int, length: int) -> int:
    if size < 16 or size & (size - 1):
        raise UnsupportedOption("pallas", f"{name}={size}",
                                "Triton tiles must be powers of two >= 16")
    return min(size, max(16, pl.next_power_of_2(length)))


def _pad_to(x, axis: int, size: int):
    if x.shape[axis] == size:
        return x
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, size - x.shape[axis])
    return jnp.pad(x, widths)


def pallas_attention(q, k, v, *, causal: bool = False, window: Window = None,
                     q_segment_ids=None, kv_segment_ids=None, scale: float | None = None,
                     block_q: int | None = None, block_k: int | None = None,
                     interpret: bool | None = None) -> jax.Array:
    """Flash attention (see the module docstring); same contract as ``xla_attention``.

    ``interpret=None`` runs the kernels compiled on GPU and in Pallas interpret mode elsewhere.
    """
    check_inputs(q, k, v)
    window = check_window(window)
    if (q_segment_ids is None) != (kv_segment_ids is None):
        raise ValueError("pass both q_segment_ids and kv_segment_ids, or neither")
    dtype = jnp.result_type(q, k, v)
    if dtype not in _DTYPES:
        raise UnsupportedOption("pallas", f"dtype {dtype}", "float32, bfloat16 or float16 only")
    b, t, n, h = q.shape
    s, kh = k.shape[1], k.shape[2]
    if h > _MAX_HEAD_DIM:
        raise UnsupportedOption("pallas", f"head_dim={h}",
                                f"tiles above {_MAX_HEAD_DIM} do not fit in shared memory")
    if t == 0 or s == 0:
        return jnp.zeros(q.shape, q.dtype)
    if interpret is None:
        interpret = jax.default_backend() != "gpu"
    default_q, default_k = default_block_sizes(h)
    bq = _block("block_q", block_q or default_q, t)
    bk = _block("block_k", block_k or default_k, s)
    hp = max(16, pl.next_power_of_2(h))
    t_pad, s_pad = pl.cdiv(t, bq) * bq, pl.cdiv(s, bk) * bk
    segs = q_segment_ids is not None
    cfg = _Config(
        causal=bool(causal), window=window, scale=float(h**-0.5 if scale is None else scale),
        block_q=bq, block_k=bk, kv_len=s, mask_kv_tail=s_pad != s and not segs,
        groups=n // kh, interpret=bool(interpret), num_warps=4 if hp <= 64 else 8,
        num_stages=2,
    )
    qp = _pad_to(_pad_to(q.astype(dtype), 1, t_pad), 3, hp)
    kp = _pad_to(_pad_to(k.astype(dtype), 1, s_pad), 3, hp)
    vp = _pad_to(_pad_to(v.astype(dtype), 1, s_pad), 3, hp)
    q_ids = k_ids = None
    if segs:  # padded positions get id 0 (padding): they see and are seen by nothing
        q_ids = _pad_to(q_segment_ids.astype(jnp.int32), 1, t_pad)
        k_ids = _pad_to(kv_segment_ids.astype(jnp.int32), 1, s_pad)
    out = _flash(cfg, qp, kp, vp, q_ids, k_ids)
    return out[:, :t, :, :h].astype(q.dtype)


__all__ = ["default_block_sizes", "kv_block_range", "pallas_attention", "q_block_range"]
