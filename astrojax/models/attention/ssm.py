"""Mamba-style selective state-space kernels: the parallel scan, its sequential reference and
the segment-aware causal depthwise convolution; the layer is ``astrojax.models.mixers.MambaBlock``.

Per channel d with state size n: ``h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t`` and
``y_t = C_t . h_t + D x_t`` (Gu & Dao, 2023), in float32. ``segment_ids`` ``[batch, len]``
(0 = padding) zero the decay where the id changes, so a packed sequence starts from an empty
state, and zero the output on padding; the causal convolution also stops at those boundaries.
Shapes are lettered: b batch, t time, d channels, e inner width, n state size, k conv kernel,
c chunk, l position within a chunk.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from astrojax.models.attention.linear import segment_starts


def _combine(earlier, later):
    """Composes two affine maps ``h -> a h + u``: ``earlier`` first, then ``later``."""
    a1, u1 = earlier
    a2, u2 = later
    return a1 * a2, a2 * u1 + u2


def _scan_inputs(x_btd, dt_btd, A_dn, B_btn, segment_ids):
    """float32 ``[b, t, d, n]`` decay ``exp(dt A)`` (0 at segment starts), drive ``dt B x``."""
    x_btd, dt_btd = x_btd.astype(jnp.float32), dt_btd.astype(jnp.float32)
    decay_btdn = jnp.exp(dt_btd[..., None] * A_dn.astype(jnp.float32))
    if segment_ids is not None:
        decay_btdn = decay_btdn * (~segment_starts(segment_ids))[:, :, None, None]
    drive_btdn = (dt_btd * x_btd)[..., None] * B_btn.astype(jnp.float32)[:, :, None, :]
    return decay_btdn, drive_btdn


def _check_scan_args(x_btd, dt_btd, A_dn, B_btn, C_btn, D_d, segment_ids) -> None:
    b, t, d = x_btd.shape
    n = A_dn.shape[-1]
    expected = {"dt_btd": (dt_btd.shape, (b, t, d)), "A_dn": (A_dn.shape, (d, n)),
                "B_btn": (B_btn.shape, (b, t, n)), "C_btn": (C_btn.shape, (b, t, n)),
                "D_d": (D_d.shape, (d,))}
    if segment_ids is not None:
        expected["segment_ids"] = (segment_ids.shape, (b, t))
    for name, (got, want) in expected.items():
        if got != want:
            raise ValueError(f"selective_scan: {name} has shape {got}, expected {want}")


def _finish(y_btd, x_btd, D_d, segment_ids):
    y_btd = y_btd + D_d.astype(jnp.float32) * x_btd.astype(jnp.float32)
    if segment_ids is not None:
        y_btd = y_btd * (segment_ids != 0)[..., None]
    return y_btd.astype(x_btd.dtype)


def selective_scan(x_btd, dt_btd, A_dn, B_btn, C_btn, D_d, *, chunk_size: int | None = None,
                   segment_ids=None) -> jax.Array:
    """Parallel selective scan; ``[b, t, d]`` in x's dtype.

    ``chunk_size=None``: one ``associative_scan`` over the whole sequence (holds ``[b,t,d,n]``).
    Otherwise an associative scan within chunks and a ``lax.scan`` across them, rematerialised
    per chunk, so only ``[b, chunk, d, n]`` is live at a time (lengths need not divide).
    """
    _check_scan_args(x_btd, dt_btd, A_dn, B_btn, C_btn, D_d, segment_ids)
    C_btn = C_btn.astype(jnp.float32)
    if chunk_size is None:
        decay_btdn, drive_btdn = _scan_inputs(x_btd, dt_btd, A_dn, B_btn, segment_ids)
        _, h_btdn = jax.lax.associative_scan(_combine, (decay_btdn, drive_btdn), axis=1)
        y_btd = jnp.einsum("btdn,btn->btd", h_btdn, C_btn)
        return _finish(y_btd, x_btd, D_d, segment_ids)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1 or None, got {chunk_size}")

    b, t, d = x_btd.shape
    c = min(chunk_size, t)
    nc = -(-t // c)
    pad = nc * c - t
    # Padding goes at the end, so it never reaches a real output.
    ids = jnp.zeros((b, t), jnp.int32) if segment_ids is None else segment_ids

    def chunks(x):
        x = jnp.pad(x, [(0, 0), (0, pad)] + [(0, 0)] * (x.ndim - 2))
        return jnp.moveaxis(x.reshape(b, nc, c, *x.shape[2:]), 1, 0)

    # A chunk's first token starts a segment only if its id differs from the previous token's,
    # so each chunk also gets the id of the token before it.
    prev_ids_bc = jnp.pad(ids, [(0, 0), (1, pad)])[:, 0:nc * c:c]

    @jax.checkpoint
    def chunk_step(h_bdn, inputs):
        x_bld, dt_bld, b_bln, c_bln, ids_bl, prev_b = inputs
        with_prev = jnp.concatenate([prev_b[:, None], ids_bl], axis=1)
        decay_bldn, drive_bldn = _scan_inputs(x_bld, dt_bld, A_dn, b_bln, None)
        if segment_ids is not None:
            starts_bl = with_prev[:, 1:] != with_prev[:, :-1]
            decay_bldn = decay_bldn * (~starts_bl)[:, :, None, None]
        a_bldn, u_bldn = jax.lax.associative_scan(_combine, (decay_bldn, drive_bldn), axis=1)
        h_bldn = a_bldn * h_bdn[:, None] + u_bldn
        return h_bldn[:, -1], jnp.einsum("bldn,bln->bld", h_bldn, c_bln)

    n = A_dn.shape[-1]
    h0_bdn = jnp.zeros((b, d, n), jnp.float32)
    _, y_cbld = jax.lax.scan(chunk_step, h0_bdn, (
        chunks(x_btd), chunks(dt_btd), chunks(B_btn), chunks(C_btn), chunks(ids),
        jnp.moveaxis(prev_ids_bc, 1, 0)))
    y_btd = jnp.moveaxis(y_cbld, 0, 1).reshape(b, nc * c, d)[:, :t]
    return _finish(y_btd, x_btd, D_d, segment_ids)


def selective_scan_reference(x_btd, dt_btd, A_dn, B_btn, C_btn, D_d, *,
                             segment_ids=None) -> jax.Array:
    """The recurrence one token per ``lax.scan`` step: the ground truth."""
    _check_scan_args(x_btd, dt_btd, A_dn, B_btn, C_btn, D_d, segment_ids)
    decay_btdn, drive_btdn = _scan_inputs(x_btd, dt_btd, A_dn, B_btn, segment_ids)

    def step(h_bdn, inputs):
        decay_bdn, drive_bdn, c_bn = inputs
        h_bdn = decay_bdn * h_bdn + drive_bdn
        return h_bdn, jnp.einsum("bdn,bn->bd", h_bdn, c_bn)

    b, _, d, n = decay_btdn.shape
    _, y_tbd = jax.lax.scan(step, jnp.zeros((b, d, n), jnp.float32), tuple(
        jnp.moveaxis(x, 1, 0) for x in (decay_btdn, drive_btdn, C_btn.astype(jnp.float32))))
    return _finish(jnp.moveaxis(y_tbd, 0, 1), x_btd, D_d, segment_ids)


def causal_depthwise_conv(x_bte, w_ke, b_e, segment_ids=None) -> jax.Array:
    """``y_t = b + sum_s w[k-1-s] x_{t-s}`` per channel, over earlier tokens of t's segment."""
    k, t = w_ke.shape[0], x_bte.shape[1]
    run_bt = None
    if segment_ids is not None:
        run_bt = jnp.cumsum(segment_starts(segment_ids), axis=1, dtype=jnp.int32)
    y_bte = x_bte * w_ke[k - 1] + b_e
    for s in range(1, k):
        shifted_bte = jnp.pad(x_bte, [(0, 0), (s, 0), (0, 0)])[:, :t]
        if run_bt is not None:
            same_bt = jnp.pad(run_bt, [(0, 0), (s, 0)], constant_values=-1)[:, :t] == run_bt
            shifted_bte = shifted_bte * same_bt[..., None]
        y_bte = y_bte + shifted_bte * w_ke[k - 1 - s]
    return y_bte


__all__ = ["causal_depthwise_conv", "selective_scan", "selective_scan_reference"]
