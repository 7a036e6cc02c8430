"""Sequence mixers, the layers that fill a residual block's ``attn`` slot: softmax attention
(:class:`astrojax.models.layers.Attention`), causal linear attention and a Mamba selective SSM;
:func:`make_mixer` builds one by name from a ``TransformerConfig``.

Every mixer takes ``(x_btd, sin_bth, cos_bth, segment_ids_bt)`` and returns ``[b, t, d]`` in
its compute dtype; only softmax attention reads the rotary tables. The kernels live in
``astrojax.models.attention`` (``linear``, ``ssm``), which imports nothing from here. Shapes
are lettered as in :mod:`astrojax.models.layers`; Mamba adds e inner width, n state size,
k conv kernel, r dt rank.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from astrojax.config import TransformerConfig
from astrojax.models.attention.linear import (
    feature_map_fn,
    linear_attention,
    linear_attention_state,
    linear_attention_step,
)
from astrojax.models.attention.ssm import causal_depthwise_conv, selective_scan
from astrojax.models.layers import Attention, DType, fan_in_init, param, project, to_dtype

MIXERS = ("attention", "linear", "mamba")


class LinearAttention(Attention):
    """Grouped-query causal linear attention with the parameters (names, shapes, logical
    axes) and call of softmax :class:`~astrojax.models.layers.Attention`.

    RoPE is not applied (``sin_bth``/``cos_bth`` are ignored): rotating q and k before a
    positive feature map does not give relative positions, and the causal recurrence already
    carries order.
    """

    def __init__(self, d_model: int, num_heads: int, num_kv_heads: int, head_dim: int, *,
                 feature_map: str = "elu1", chunk_size: int = 64, qkv_bias: bool = False,
                 dtype: DType = "float32", param_dtype: DType = "float32", rngs: nnx.Rngs):
        feature_map_fn(feature_map)  # a bad name fails here, not under jit
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        super().__init__(d_model, num_heads, num_kv_heads, head_dim, causal=True,
                         qkv_bias=qkv_bias, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.feature_map, self.chunk_size = feature_map, chunk_size

    def __call__(self, x_btd, sin_bth=None, cos_bth=None, segment_ids_bt=None):
        del sin_bth, cos_bth  # see the class docstring
        q_btnh, k_btkh, v_btkh = self.project_qkv(x_btd)
        o_btnh = linear_attention(q_btnh, k_btkh, v_btkh, feature_map=self.feature_map,
                                  chunk_size=self.chunk_size, segment_ids=segment_ids_bt)
        return self.project_out(o_btnh)

    # Cached decoding: the recurrent state replaces the key/value cache (``length`` unused).

    def init_cache(self, batch_size: int, length: int) -> dict[str, jax.Array]:
        del length
        k, h = self.w_dkh_k.shape[-2:]
        hv = self.w_dkh_v.shape[-1]
        return {"s": jnp.zeros((batch_size, k, h, hv), jnp.float32),
                "z": jnp.zeros((batch_size, k, h), jnp.float32)}

    def prefill(self, x_btd, sin_bth, cos_bth, segment_ids_bt, cache):
        del cache  # prefill starts from the empty state
        q_btnh, k_btkh, v_btkh = self.project_qkv(x_btd)
        o_btnh = linear_attention(q_btnh, k_btkh, v_btkh, feature_map=self.feature_map,
                                  chunk_size=self.chunk_size, segment_ids=segment_ids_bt)
        s, z = linear_attention_state(k_btkh, v_btkh, feature_map=self.feature_map,
                                      segment_ids=segment_ids_bt)
        return self.project_out(o_btnh), {"s": s, "z": z}

    def decode(self, x_b1d, sin_b1h, cos_b1h, cache, index, start_b):
        del sin_b1h, cos_b1h, index, start_b
        q_b1nh, k_b1kh, v_b1kh = self.project_qkv(x_b1d)
        o_b1nh, (s, z) = linear_attention_step(q_b1nh, k_b1kh, v_b1kh, (cache["s"], cache["z"]),
                                               feature_map=self.feature_map)
        return self.project_out(o_b1nh), {"s": s, "z": z}


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
    """Selective SSM mixer (Mamba): in-proj, causal conv, SiLU, selective scan, gate, out-proj,
    plus a one-token decoding :meth:`step`.

    Ignores the rotary tables of the mixer call. ``scan_chunk_size`` picks
    :func:`~astrojax.models.attention.ssm.selective_scan`'s chunking.
    """

    def __init__(self, d_model: int, *, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 dt_rank: int | None = None, dt_min: float = 1e-3, dt_max: float = 1e-1,
                 scan_chunk_size: int | None = None, dtype: DType = "float32",
                 param_dtype: DType = "float32", rngs: nnx.Rngs):
        for name, value in (("d_state", d_state), ("d_conv", d_conv), ("expand", expand)):
            if value < 1:
                raise ValueError(f"MambaBlock {name} must be >= 1, got {value}")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"MambaBlock needs 0 < dt_min <= dt_max, got {dt_min}, {dt_max}")
        d, n, k = d_model, d_state, d_conv
        e = expand * d
        r = dt_rank or math.ceil(d / 16)
        pdt = param_dtype
        self.dtype = to_dtype(dtype)
        self.d_inner, self.d_state, self.d_conv = e, n, k
        self.scan_chunk_size = scan_chunk_size
        self.w_de_x = param(rngs, fan_in_init(d), ("embed", "mlp"), (d, e), pdt)
        self.w_de_z = param(rngs, fan_in_init(d), ("embed", "mlp"), (d, e), pdt)
        self.w_ke_conv = param(rngs, _uniform_init(k**-0.5), (None, "mlp"), (k, e), pdt)
        self.b_e_conv = param(rngs, nnx.initializers.zeros, ("mlp",), (e,), pdt)
        self.w_er_dt = param(rngs, fan_in_init(e), ("mlp", None), (e, r), pdt)
        self.w_re_dt = param(rngs, _uniform_init(r**-0.5), (None, "mlp"), (r, e), pdt)
        self.b_e_dt = param(rngs, _dt_bias_init(dt_min, dt_max), ("mlp",), (e,), pdt)
        self.w_en_b = param(rngs, fan_in_init(e), ("mlp", None), (e, n), pdt)
        self.w_en_c = param(rngs, fan_in_init(e), ("mlp", None), (e, n), pdt)
        self.a_log_en = param(rngs, _s4d_real_init, ("mlp", None), (e, n), pdt)
        self.d_e = param(rngs, nnx.initializers.ones, ("mlp",), (e,), pdt)
        self.w_ed_out = param(rngs, fan_in_init(e), ("mlp", "embed"), (e, d), pdt)

    def _in_proj(self, x_d):
        xin_e = project(self, "w_de_x", "...d,de->...e", x_d)
        z_e = project(self, "w_de_z", "...d,de->...e", x_d)
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
        y_e = y_e * jax.nn.silu(z_e.astype(jnp.float32))
        return project(self, "w_ed_out", "...e,ed->...d", y_e)

    def __call__(self, x_btd, sin_bth=None, cos_bth=None, segment_ids_bt=None):
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

    def init_cache_state(self, batch_size: int):
        """Empty decoding state: ``(conv_state [b, d_conv - 1, e], ssm_state [b, e, n])``."""
        return (jnp.zeros((batch_size, self.d_conv - 1, self.d_inner), jnp.float32),
                jnp.zeros((batch_size, self.d_inner, self.d_state), jnp.float32))

    def step(self, x_bd, cache):
        """One token of one sequence per row: ``(y_bd, cache)``, the recurrent form of
        ``__call__`` (no segment handling: start a new sequence with ``init_cache_state``)."""
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

    # The transformer's cached-decoding interface (dict caches, left-padded prompts).

    def init_cache(self, batch_size: int, length: int) -> dict[str, jax.Array]:
        del length
        conv, ssm = self.init_cache_state(batch_size)
        return {"conv": conv, "ssm": ssm}

    def prefill(self, x_btd, sin_bth, cos_bth, segment_ids_bt, cache):
        """The prompt run through :meth:`step` one token at a time (``lax.scan``), padding
        leaving the state as it was: the outputs and the state after the prompt."""
        del sin_bth, cos_bth

        def one(state, inputs):
            x_bd, real_b = inputs
            y_bd, new = self.step(x_bd, state)
            new = jax.tree.map(lambda n, o: jnp.where(
                real_b.reshape((-1,) + (1,) * (n.ndim - 1)), n, o), new, state)
            return new, y_bd

        state, y_tbd = jax.lax.scan(one, (cache["conv"], cache["ssm"]),
                                    (jnp.moveaxis(x_btd, 1, 0),
                                     jnp.moveaxis(segment_ids_bt != 0, 1, 0)))
        return jnp.moveaxis(y_tbd, 0, 1), {"conv": state[0], "ssm": state[1]}

    def decode(self, x_b1d, sin_b1h, cos_b1h, cache, index, start_b):
        del sin_b1h, cos_b1h, index, start_b
        y_bd, (conv, ssm) = self.step(x_b1d[:, 0], (cache["conv"], cache["ssm"]))
        return y_bd[:, None], {"conv": conv, "ssm": ssm}


def make_mixer(kind: str, cfg: TransformerConfig, *, rngs: nnx.Rngs) -> nnx.Module:
    """The sequence mixer ``kind`` (one of :data:`MIXERS`) of a transformer layer: causal
    softmax attention with RoPE (and ``cfg.sliding_window``), linear attention or Mamba, in
    ``cfg``'s sizes and dtypes."""
    dtypes = dict(dtype=cfg.dtype, param_dtype=cfg.param_dtype, rngs=rngs)
    heads = (cfg.d_model, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim)
    if kind == "attention":
        window = (cfg.sliding_window, 0) if cfg.sliding_window > 0 else None
        return Attention(*heads, impl=cfg.attention_impl, causal=True, window=window, rope=True,
                         qkv_bias=cfg.qkv_bias, **dtypes)
    if kind == "linear":
        return LinearAttention(*heads, qkv_bias=cfg.qkv_bias, **dtypes)
    if kind == "mamba":
        return MambaBlock(cfg.d_model, **dtypes)
    raise ValueError(f"unknown sequence mixer {kind!r}; expected one of {', '.join(MIXERS)}")


__all__ = ["MIXERS", "Attention", "LinearAttention", "MambaBlock", "make_mixer"]
