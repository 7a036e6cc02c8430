"""Exact ring attention: the sequence is split over the mesh's ``context`` axis and key/value
chunks travel around the ring with ``ppermute``.

Design:

- The wrapper reorders the sequence with a static permutation (``load_balance``: ``"zigzag"``,
  ``"striped"`` or ``None`` = contiguous; see :func:`sequence_permutation`) so that under
  ``causal`` every device gets about the same number of visible (query, key) pairs, runs the
  ring inside ``jax.shard_map`` and undoes the permutation. Absolute token positions travel
  with the chunks, so the masks (``position_mask``, ``segment_mask``) stay exact.
- Each device holds one chunk of q and of k/v. For ``context_size`` steps it attends its q chunk
  to the visiting k/v chunk, producing ``(out, lse)``, merges that into its running result with
  a log-sum-exp merge (a block nobody sees has ``lse = -inf`` and merges as a no-op), and passes
  the k/v chunk on. The ppermute of the next chunk is issued before the current chunk's
  compute so XLA can overlap them.
- Blocks are split into sub-blocks (two halves per chunk for zigzag, whose chunks are two
  separate stretches of the sequence) and a sub-block whose mask is all False is skipped with
  ``lax.cond`` (``skip_masked_blocks``): causal zigzag does about half the dense work.
- Backward is a ``jax.custom_vjp`` (flash-attention style): it keeps q, k, v, out and lse
  (memory linear in the sequence) and re-runs the ring; dk/dv accumulators travel with their
  k/v chunk and take one extra hop home at the end.

The mesh axes come from the logical axis rules (:mod:`astrojax.sharding`), as for every other
layer: the sequence is split over the mesh axis of the ``sequence`` rule (``context`` by
default), the batch over the ``batch`` rule's axes and heads over the ``heads`` rule's axes
where they divide.

Unsupported: ``q_len != kv_len`` and sequence lengths that do not divide by the number of
chunks (``context_size``, times 2 for zigzag) raise :class:`UnsupportedOption`; pad first.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from astrojax import sharding
from astrojax.models.attention.reference import (
    UnsupportedOption,
    Window,
    check_inputs,
    check_window,
    position_mask,
    segment_mask,
)

LOAD_BALANCE = ("zigzag", "striped", None)


def sequence_permutation(seq_len: int, context_size: int, load_balance: str | None) -> np.ndarray:
    """``perm`` such that ``x[:, perm]`` puts device ``d``'s tokens at ``[d*c, (d+1)*c)``
    (``c = seq_len // context_size``); ``perm`` also gives each permuted token's position.

    ``None``: contiguous chunks. ``"zigzag"``: 2C chunks, device d holds chunks d and 2C-1-d.
    ``"striped"``: token t goes to device t % C.
    """
    if load_balance not in LOAD_BALANCE:
        raise ValueError(f"load_balance must be one of {LOAD_BALANCE}, got {load_balance!r}")
    chunks = context_size * (2 if load_balance == "zigzag" else 1)
    if seq_len % chunks:
        raise UnsupportedOption("ring", f"sequence length {seq_len}",
                                f"must divide by {chunks} (context size {context_size}"
                                + (" x 2 for zigzag)" if load_balance == "zigzag" else ")"))
    tokens = np.arange(seq_len)
    if load_balance is None:
        return tokens
    if load_balance == "striped":
        return tokens.reshape(seq_len // context_size, context_size).T.reshape(-1)
    parts = tokens.reshape(chunks, seq_len // chunks)
    return np.concatenate([np.concatenate([parts[d], parts[chunks - 1 - d]])
                           for d in range(context_size)])


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Everything static about one ring call (hashable: a custom_vjp nondiff argument)."""

    mesh: jax.sharding.AbstractMesh
    axis_name: str
    context_size: int
    causal: bool
    window: Window
    scale: float
    num_sub: int
    skip_masked: bool
    has_segments: bool
    qkv_spec: P
    seg_spec: P

    @property
    def masked(self) -> bool:
        return self.causal or self.window is not None or self.has_segments

    def mask(self, q_pos, kv_pos, q_seg, kv_seg):
        """``[batch or 1, q, kv]`` visibility, or None when every key is visible."""
        if not self.masked:
            return None
        mask = position_mask(q_pos, kv_pos, causal=self.causal, window=self.window)[None]
        if self.has_segments:
            mask = mask & segment_mask(q_seg, kv_seg)
        return mask


def ring_attention(q, k, v, *, causal: bool = False, window: Window = None, q_segment_ids=None,
                   kv_segment_ids=None, scale: float | None = None,
                   axis_name: str | None = None, load_balance: str | None = "zigzag",
                   skip_masked_blocks: bool = True):
    """Attention with the sequence sharded over mesh axis ``axis_name`` (default: the axis of
    the ``sequence`` logical rule); same results as ``xla_attention``. Call under
    ``jax.set_mesh(mesh)``; see the module docstring."""
    check_inputs(q, k, v)
    window = check_window(window)
    axis_name = sequence_axis() if axis_name is None else axis_name
    mesh = _context_mesh(axis_name)
    if (q_segment_ids is None) != (kv_segment_ids is None):
        raise ValueError("pass both q_segment_ids and kv_segment_ids, or neither")
    b, seq_len, n, h = q.shape
    if k.shape[1] != seq_len:
        raise UnsupportedOption("ring", "q_len != kv_len",
                                f"got q_len={seq_len}, kv_len={k.shape[1]}")
    context_size = mesh.shape[axis_name]
    perm = sequence_permutation(seq_len, context_size, load_balance)
    identity = bool(np.all(perm == np.arange(seq_len)))
    spec = _qkv_spec(mesh, axis_name, q.shape, k.shape)

    def permute(x, order):
        return x if identity else jnp.take(x, jnp.asarray(order), axis=1)

    segs = ()
    if q_segment_ids is not None:
        segs = (permute(q_segment_ids, perm), permute(kv_segment_ids, perm))
    plan = _Plan(mesh=mesh, axis_name=axis_name, context_size=context_size, causal=causal,
                 window=window, scale=float(h**-0.5 if scale is None else scale),
                 num_sub=2 if load_balance == "zigzag" else 1,
                 skip_masked=skip_masked_blocks, has_segments=bool(segs), qkv_spec=spec,
                 seg_spec=P(*spec[:2]))
    out = _ring(plan, permute(q, perm), permute(k, perm), permute(v, perm), segs,
                jnp.asarray(perm, jnp.int32))
    out = permute(out, np.argsort(perm))
    return jax.lax.with_sharding_constraint(out, spec)


def _context_mesh(axis_name: str) -> jax.sharding.AbstractMesh:
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        raise ValueError(f"ring attention needs a mesh with a {axis_name!r} axis: call it under "
                         "`with jax.set_mesh(mesh):`, but no mesh is set")
    if axis_name not in mesh.axis_names:
        raise ValueError(f"ring attention needs mesh axis {axis_name!r}; the current mesh has "
                         f"axes {tuple(mesh.axis_names)}")
    return mesh


def sequence_axis() -> str:
    """The one mesh axis the ``sequence`` logical axis maps to under the current rules."""
    axes = sharding.mesh_axes("sequence")
    if len(axes) != 1:
        raise ValueError("ring attention splits the sequence over one mesh axis, but the "
                         f"'sequence' rule in mesh.logical_axis_rules maps to {axes or 'none'}")
    return axes[0]


def _qkv_spec(mesh, axis_name: str, q_shape, kv_shape) -> P:
    """``[batch, len, heads, head_dim]`` spec: the batch over the ``batch`` rule's axes that
    divide it, the sequence over ``axis_name``, heads over the ``heads`` rule's axes when the
    same axes divide both head counts (``kv_heads``)."""
    b, _, n, _ = q_shape
    ring = (axis_name,)  # the ring's own axis splits only the sequence
    batch, heads = sharding.fitted_spec((b, n), ("batch", "heads"), mesh, exclude=ring)
    _, kv_heads = sharding.fitted_spec((b, kv_shape[2]), ("batch", "kv_heads"), mesh, exclude=ring)
    return P(batch, axis_name, heads if heads == kv_heads else None, None)


# ----------------------------------------------------------------------------------------------
# custom_vjp around the two shard_maps


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _ring(plan: _Plan, q, k, v, segs, pos):
    return _ring_fwd(plan, q, k, v, segs, pos)[0]


def _specs(plan: _Plan):
    segs = (plan.seg_spec, plan.seg_spec) if plan.has_segments else ()
    return segs, P(plan.axis_name)


def _ring_fwd(plan: _Plan, q, k, v, segs, pos):
    seg_specs, pos_spec = _specs(plan)
    out, lse = jax.shard_map(
        functools.partial(_forward_shard, plan), mesh=plan.mesh,
        in_specs=(plan.qkv_spec,) * 3 + (seg_specs, pos_spec),
        out_specs=(plan.qkv_spec, plan.qkv_spec))(q, k, v, segs, pos)
    return out, (q, k, v, segs, pos, out, lse)


def _ring_bwd(plan: _Plan, residuals, d_out):
    q, k, v, segs, pos, out, lse = residuals
    seg_specs, pos_spec = _specs(plan)
    dq, dk, dv = jax.shard_map(
        functools.partial(_backward_shard, plan), mesh=plan.mesh,
        in_specs=(plan.qkv_spec,) * 3 + (seg_specs, pos_spec) + (plan.qkv_spec,) * 3,
        out_specs=(plan.qkv_spec,) * 3)(q, k, v, segs, pos, out, lse, d_out)
    return dq, dk, dv, None, None


_ring.defvjp(_ring_fwd, _ring_bwd)


# ----------------------------------------------------------------------------------------------
# Per-device ring loops (inside shard_map)


def _rotate(plan: _Plan, x):
    """Sends ``x`` (a pytree) from each device to the next one around the ring."""
    c = plan.context_size
    return jax.lax.ppermute(x, plan.axis_name, [(i, (i + 1) % c) for i in range(c)])


def _grouped(q, num_kv_heads: int):
    """``[b, t, n, h]`` -> float32 ``[b, t, kh, g, h]``."""
    b, t, n, h = q.shape
    return q.astype(jnp.float32).reshape(b, t, num_kv_heads, n // num_kv_heads, h)


def _forward_shard(plan: _Plan, q, k, v, segs, pos):
    q_seg, kv_seg = segs if segs else (None, None)
    local_q = (_grouped(q, k.shape[2]), pos, q_seg)
    kv = (k, v, pos, kv_seg)
    out, lse = _attend(plan, local_q, kv)
    if plan.context_size > 1:
        def step(_, carry):
            kv, out, lse = carry
            next_kv = _rotate(plan, kv)
            return (next_kv, *_merge(out, lse, *_attend(plan, local_q, kv)))

        carry = (_rotate(plan, kv), out, lse)
        kv, out, lse = jax.lax.fori_loop(1, plan.context_size - 1, step, carry)
        out, lse = _merge(out, lse, *_attend(plan, local_q, kv))
    return out.reshape(q.shape).astype(q.dtype), lse


def _backward_shard(plan: _Plan, q, k, v, segs, pos, out, lse, d_out):
    q_seg, kv_seg = segs if segs else (None, None)
    kh = k.shape[2]
    d_out_g = _grouped(d_out, kh)
    delta = jnp.sum(d_out_g * _grouped(out, kh), axis=-1)
    local_q = (_grouped(q, kh), pos, q_seg, d_out_g, lse, delta)
    kv = (k, v, pos, kv_seg)
    dq, dk, dv = _attend_grad(plan, local_q, kv)
    if plan.context_size > 1:
        def step(_, carry):
            kv, dq, dk, dv = carry
            next_kv = _rotate(plan, kv)
            dq_i, dk_i, dv_i = _attend_grad(plan, local_q, kv)
            return (next_kv, dq + dq_i, *_rotate(plan, (dk + dk_i, dv + dv_i)))

        carry = (_rotate(plan, kv), dq, *_rotate(plan, (dk, dv)))
        kv, dq, dk, dv = jax.lax.fori_loop(1, plan.context_size - 1, step, carry)
        dq_i, dk_i, dv_i = _attend_grad(plan, local_q, kv)
        dq = dq + dq_i
        dk, dv = _rotate(plan, (dk + dk_i, dv + dv_i))  # the last hop brings them home
    return dq.reshape(q.shape).astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype)


# ----------------------------------------------------------------------------------------------
# One visiting block, split into sub-blocks that are skipped when fully masked


def _split(x, parts: int):
    return [None] * parts if x is None else jnp.split(x, parts, axis=x.ndim - 1 if x.ndim == 1
                                                        else 1)


def _vma_zero(*xs):
    """A float32 0 that varies over the same mesh axes as ``xs`` (shard_map types a cond's
    skipped branch by the axes its outputs vary over)."""
    return sum(jnp.zeros_like(x.reshape(-1)[0]).astype(jnp.float32) for x in xs
               if x is not None)


def _maybe_skip(plan: _Plan, mask, compute, skipped, *operands):
    if mask is None or not plan.skip_masked:
        return compute()
    zero = _vma_zero(mask, *operands)
    return jax.lax.cond(jnp.any(mask), compute, lambda: jax.tree.map(lambda x: x + zero,
                                                                     skipped()))


def _attend(plan: _Plan, local_q, kv):
    """The local queries against one k/v chunk: ``(out [b,t,kh,g,h], lse [b,t,kh,g])``."""
    q, q_pos, q_seg = local_q
    k, v, kv_pos, kv_seg = kv
    parts = plan.num_sub
    kv_parts = list(zip(_split(k, parts), _split(v, parts), _split(kv_pos, parts),
                        _split(kv_seg, parts), strict=True))
    outs, lses = [], []
    for q_i, q_pos_i, q_seg_i in zip(_split(q, parts), _split(q_pos, parts), _split(q_seg, parts),
                                     strict=True):
        out = lse = None
        for k_j, v_j, kv_pos_j, kv_seg_j in kv_parts:
            mask = plan.mask(q_pos_i, kv_pos_j, q_seg_i, kv_seg_j)
            block = _maybe_skip(
                plan, mask, lambda q_i=q_i, k_j=k_j, v_j=v_j, mask=mask: _block_forward(
                    q_i, k_j, v_j, mask, plan.scale),
                lambda q_i=q_i: (jnp.zeros(q_i.shape), jnp.full(q_i.shape[:-1], -jnp.inf)),
                q_i, k_j, v_j)
            out, lse = block if out is None else _merge(out, lse, *block)
        outs.append(out)
        lses.append(lse)
    return jnp.concatenate(outs, axis=1), jnp.concatenate(lses, axis=1)


def _attend_grad(plan: _Plan, local_q, kv):
    """Gradient contributions ``(dq, dk, dv)`` (float32) of the local queries' attention to
    one k/v chunk."""
    q, q_pos, q_seg, d_out, lse, delta = local_q
    k, v, kv_pos, kv_seg = kv
    parts = plan.num_sub
    kv_parts = list(zip(_split(k, parts), _split(v, parts), _split(kv_pos, parts),
                        _split(kv_seg, parts), strict=True))
    dqs, dks, dvs = [], [None] * parts, [None] * parts
    for q_i, q_pos_i, q_seg_i, d_out_i, lse_i, delta_i in zip(
            *(_split(x, parts) for x in (q, q_pos, q_seg, d_out, lse, delta)), strict=True):
        dq = None
        for j, (k_j, v_j, kv_pos_j, kv_seg_j) in enumerate(kv_parts):
            mask = plan.mask(q_pos_i, kv_pos_j, q_seg_i, kv_seg_j)
            dq_ij, dk_ij, dv_ij = _maybe_skip(
                plan, mask,
                lambda q_i=q_i, k_j=k_j, v_j=v_j, d_out_i=d_out_i, lse_i=lse_i, delta_i=delta_i,
                mask=mask: _block_backward(q_i, k_j, v_j, d_out_i, lse_i, delta_i, mask,
                                           plan.scale),
                lambda q_i=q_i, k_j=k_j: (jnp.zeros(q_i.shape), jnp.zeros(k_j.shape),
                                          jnp.zeros(k_j.shape)),
                q_i, k_j, v_j, d_out_i, lse_i)
            dq = dq_ij if dq is None else dq + dq_ij
            dks[j] = dk_ij if dks[j] is None else dks[j] + dk_ij
            dvs[j] = dv_ij if dvs[j] is None else dvs[j] + dv_ij
        dqs.append(dq)
    return tuple(jnp.concatenate(x, axis=1) for x in (dqs, dks, dvs))


def _scores(q, k, mask, scale):
    """``[b, kh, g, t, s]`` float32 logits, masked entries at -inf."""
    logits = jnp.einsum("btkgh,bskh->bkgts", q, k.astype(jnp.float32)) * scale
    return logits if mask is None else jnp.where(mask[:, None, None], logits, -jnp.inf)


def _block_forward(q, k, v, mask, scale):
    logits = _scores(q, k, mask, scale)
    row_max = jnp.max(logits, axis=-1)
    row_max = jnp.where(jnp.isfinite(row_max), row_max, 0.0)
    p = jnp.exp(logits - row_max[..., None])
    denom = jnp.sum(p, axis=-1)
    out = jnp.einsum("bkgts,bskh->btkgh", p, v.astype(jnp.float32))
    denom_t = jnp.moveaxis(denom, -1, 1)  # [b, t, kh, g]
    out = out / jnp.where(denom_t == 0, 1.0, denom_t)[..., None]
    return out, jnp.moveaxis(row_max, -1, 1) + jnp.log(denom_t)  # lse -inf: sees no key


def _merge(out_a, lse_a, out_b, lse_b):
    """Exact softmax merge of two partial results over disjoint key sets (-inf safe)."""
    top = jnp.maximum(lse_a, lse_b)
    top = jnp.where(jnp.isfinite(top), top, 0.0)
    w_a, w_b = jnp.exp(lse_a - top), jnp.exp(lse_b - top)
    total = w_a + w_b
    out = (out_a * w_a[..., None] + out_b * w_b[..., None]) / jnp.where(
        total == 0, 1.0, total)[..., None]
    return out, top + jnp.log(total)


def _block_backward(q, k, v, d_out, lse, delta, mask, scale):
    logits = _scores(q, k, mask, scale)
    lse_t = jnp.moveaxis(jnp.where(jnp.isfinite(lse), lse, 0.0), 1, -1)  # [b, kh, g, t]
    p = jnp.exp(logits - lse_t[..., None])  # masked logits are -inf: p = 0
    dv = jnp.einsum("bkgts,btkgh->bskh", p, d_out)
    dp = jnp.einsum("btkgh,bskh->bkgts", d_out, v.astype(jnp.float32))
    ds = p * (dp - jnp.moveaxis(delta, 1, -1)[..., None])
    dq = jnp.einsum("bkgts,bskh->btkgh", ds, k.astype(jnp.float32)) * scale
    dk = jnp.einsum("bkgts,btkgh->bskh", ds, q) * scale
    return dq, dk, dv


__all__ = ["LOAD_BALANCE", "ring_attention", "sequence_axis", "sequence_permutation"]
