"""Mamba-style selective state-space mixer: the parallel scan, its sequential reference, and a
block with the transformer mixer interface plus a one-token decoding step.

Per channel d with state size n: ``h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t`` and
``y_t = C_t . h_t + D x_t`` (Gu & Dao, 2023), in float32. ``segment_ids`` ``[batch, len]``
(0 = padding) zero the decay where the id changes, so a packed sequence starts from an empty
state, and zero the output on padding; the block's causal convolution also stops at those
boundaries. Shapes are lettered: b batch, t time, d model width, e inner width, n state size,
k conv kernel, r dt rank, c chunk, l position within a chunk.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from astrojax.config import TransformerConfig
from astrojax.models.attention.linear import segment_starts
from astrojax.models.transformer import _fan_in_init, _param, to_dtype


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


def _uniform_init(scale: float):
    def init(key, shape, dtype):
        return jax.random.uniform(key, shape, dtype, -scale, scale)
    return init


def _dt_bias_init(dt_min: float, dt_max: float):
    """Bias whose softplus is log-uniform in [dt_min, dt_max] (Mamba's dt initialisation)."""
    def init(key, shape, dtype):
        u = jax.random.uniform(key, shape, jnp.float32)
        dt = jnp.exp(u * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        return (dt + jnp.log(-jnp.expm1(-dt))).astype(dtype)  # inverse softplus
    return init


def _s4d_real_init(key, shape, dtype):
    """``A_log[e, i] = log(i + 1)``, so ``A = -exp(A_log) = -(1, 2, ..., n)`` (S4D-real)."""
    del key
    return jnp.broadcast_to(jnp.log(jnp.arange(1, shape[-1] + 1, dtype=jnp.float32)),
                            shape).astype(dtype)


class MambaBlock(nnx.Module):
    """Selective SSM mixer (Mamba): in-proj, causal conv, SiLU, selective scan, gate, out-proj.

    Takes the transformer mixer's ``(x_btd, sin_bth, cos_bth, segment_ids_bt)`` and ignores
    the rotary tables. ``scan_chunk_size`` picks :func:`selective_scan`'s chunking.
    """

    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs, d_state: int = 16,
                 d_conv: int = 4, expand: int = 2, dt_rank: int | None = None,
                 dt_min: float = 1e-3, dt_max: float = 1e-1, scan_chunk_size: int | None = None):
        for name, value in (("d_state", d_state), ("d_conv", d_conv), ("expand", expand)):
            if value < 1:
                raise ValueError(f"MambaBlock {name} must be >= 1, got {value}")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"MambaBlock needs 0 < dt_min <= dt_max, got {dt_min}, {dt_max}")
        d, n, k = cfg.d_model, d_state, d_conv
        e = expand * d
        r = dt_rank or math.ceil(d / 16)
        pdt = to_dtype(cfg.param_dtype)
        self.dtype = to_dtype(cfg.dtype)
        self.d_inner, self.d_state, self.d_conv = e, n, k
        self.scan_chunk_size = scan_chunk_size
        self.w_de_x = _param(rngs, _fan_in_init(d), ("embed", "mlp"), (d, e), pdt)
        self.w_de_z = _param(rngs, _fan_in_init(d), ("embed", "mlp"), (d, e), pdt)
        self.w_ke_conv = _param(rngs, _uniform_init(k**-0.5), (None, "mlp"), (k, e), pdt)
        self.b_e_conv = _param(rngs, nnx.initializers.zeros, ("mlp",), (e,), pdt)
        self.w_er_dt = _param(rngs, _fan_in_init(e), ("mlp", None), (e, r), pdt)
        self.w_re_dt = _param(rngs, _uniform_init(r**-0.5), (None, "mlp"), (r, e), pdt)
        self.b_e_dt = _param(rngs, _dt_bias_init(dt_min, dt_max), ("mlp",), (e,), pdt)
        self.w_en_b = _param(rngs, _fan_in_init(e), ("mlp", None), (e, n), pdt)
        self.w_en_c = _param(rngs, _fan_in_init(e), ("mlp", None), (e, n), pdt)
        self.a_log_en = _param(rngs, _s4d_real_init, ("mlp", None), (e, n), pdt)
        self.d_e = _param(rngs, nnx.initializers.ones, ("mlp",), (e,), pdt)
        self.w_ed_out = _param(rngs, _fan_in_init(e), ("mlp", "embed"), (e, d), pdt)

    def _in_proj(self, x_d):
        dt = self.dtype
        x_d = x_d.astype(dt)
        xin_e = jnp.einsum("...d,de->...e", x_d, self.w_de_x[...].astype(dt))
        z_e = jnp.einsum("...d,de->...e", x_d, self.w_de_z[...].astype(dt))
        return xin_e.astype(jnp.float32), z_e

    def _selective_params(self, xc_e):
        """float32 ``dt``, ``B``, ``C`` from the convolved input (any leading shape)."""
        dt = self.dtype
        xc_e = xc_e.astype(dt)
        low_r = jnp.einsum("...e,er->...r", xc_e, self.w_er_dt[...].astype(dt))
        dt_e = jnp.einsum("...r,re->...e", low_r, self.w_re_dt[...].astype(dt))
        dt_e = jax.nn.softplus(dt_e.astype(jnp.float32) + self.b_e_dt[...].astype(jnp.float32))
        b_n = jnp.einsum("...e,en->...n", xc_e, self.w_en_b[...].astype(dt))
        c_n = jnp.einsum("...e,en->...n", xc_e, self.w_en_c[...].astype(dt))
        return dt_e, b_n.astype(jnp.float32), c_n.astype(jnp.float32)

    def _a_en(self):
        return -jnp.exp(self.a_log_en[...].astype(jnp.float32))

    def _out_proj(self, y_e, z_e):
        dt = self.dtype
        y_e = y_e * jax.nn.silu(z_e.astype(jnp.float32))
        return jnp.einsum("...e,ed->...d", y_e.astype(dt), self.w_ed_out[...].astype(dt))

    def __call__(self, x_btd, sin_bth, cos_bth, segment_ids_bt):
        del sin_bth, cos_bth
        xin_bte, z_bte = self._in_proj(x_btd)
        xc_bte = jax.nn.silu(causal_depthwise_conv(
            xin_bte, self.w_ke_conv[...].astype(jnp.float32),
            self.b_e_conv[...].astype(jnp.float32), segment_ids_bt))
        dt_bte, b_btn, c_btn = self._selective_params(xc_bte)
        y_bte = selective_scan(xc_bte, dt_bte, self._a_en(), b_btn, c_btn,
                               self.d_e[...].astype(jnp.float32),
                               chunk_size=self.scan_chunk_size, segment_ids=segment_ids_bt)
        return self._out_proj(y_bte, z_bte)

    def init_cache(self, batch_size: int):
        """Empty decoding state: ``(conv_state [b, d_conv - 1, e], ssm_state [b, e, n])``."""
        return (jnp.zeros((batch_size, self.d_conv - 1, self.d_inner), jnp.float32),
                jnp.zeros((batch_size, self.d_inner, self.d_state), jnp.float32))

    def step(self, x_bd, cache):
        """One token of one sequence per row: ``(y_bd, cache)``, the recurrent form of
        ``__call__`` (no segment handling: start a new sequence with ``init_cache``)."""
        conv_bke, h_ben = cache
        xin_be, z_be = self._in_proj(x_bd)
        window_bke = jnp.concatenate([conv_bke, xin_be[:, None]], axis=1)
        xc_be = jnp.einsum("bke,ke->be", window_bke, self.w_ke_conv[...].astype(jnp.float32))
        xc_be = jax.nn.silu(xc_be + self.b_e_conv[...].astype(jnp.float32))
        dt_be, b_bn, c_bn = self._selective_params(xc_be)
        h_ben = (jnp.exp(dt_be[..., None] * self._a_en()) * h_ben
                 + (dt_be * xc_be)[..., None] * b_bn[:, None, :])
        y_be = jnp.einsum("ben,bn->be", h_ben, c_bn) + self.d_e[...].astype(jnp.float32) * xc_be
        return self._out_proj(y_be, z_be), (window_bke[:, 1:], h_ben)


__all__ = ["MambaBlock", "causal_depthwise_conv", "selective_scan", "selective_scan_reference"]
