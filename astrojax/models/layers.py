"""Config-free building blocks with logical axis names: parameters, norms, projections, MLPs,
rotary embeddings, softmax self-attention and the pre-norm residual block.

Every model builds from these (the transformer, the datacube ViT, the graph VAE, and the
fusion model to come), so a norm or an attention block exists once. Constructors take plain
ints, strings and dtypes, never a config dataclass: a model reads its config and passes the
numbers on. Every parameter carries logical axis names from
``astrojax.config.DEFAULT_LOGICAL_AXIS_RULES`` (``embed``, ``heads``, ``kv_heads``,
``head_dim``, ``mlp``, ``vocab``, ``norm``, ...); the table maps them to mesh axes, so sharding
is decided there and a model's divisibility constraints can be read off its abstract
parameters. ``dtype`` is the compute dtype (activations), ``param_dtype`` the stored one; both
accept a name (``"bfloat16"``) or a JAX dtype.

Shapes are lettered: b batch, t sequence (or tokens), d model width, n query heads, k kv heads,
h head_dim, f mlp width, v vocab.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from astrojax.models.attention import attention
from astrojax.sharding import constrain

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}

DType = str | jnp.dtype | type
LECUN_NORMAL = nnx.initializers.lecun_normal()  # nnx.Linear's default kernel init


def to_dtype(dtype: DType):
    """``"bfloat16"`` -> ``jnp.bfloat16`` (a dtype passes through); ValueError naming a bad name."""
    if not isinstance(dtype, str):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def param(rngs: nnx.Rngs, init, axes: tuple[str | None, ...], shape: tuple[int, ...],
          dtype) -> nnx.Param:
    """A parameter drawn by ``init`` whose dimensions are named ``axes`` (logical names).
    Draws one key from ``rngs.params`` even when ``init`` ignores it, so that the keys of the
    parameters after it depend only on the order of creation."""
    return nnx.Param(nnx.with_partitioning(init, axes)(rngs.params(), shape, to_dtype(dtype)))


def fan_in_init(fan_in: int):
    """Normal with standard deviation ``fan_in ** -0.5`` (unit-variance outputs)."""
    return nnx.initializers.normal(stddev=fan_in**-0.5)


def embedding_table(num_embeddings: int, features: int, *, param_dtype: DType = "float32",
                    rngs: nnx.Rngs) -> nnx.Param:
    """A ``[v, d]`` embedding table named ``("vocab", "embed")``, normal with standard deviation
    ``features ** -0.5`` (so that the tied output projection ``x @ table.T`` starts at unit
    scale). Look tokens up with ``jnp.take(table[...], ids, axis=0)``."""
    return param(rngs, fan_in_init(features), ("vocab", "embed"),
                 (num_embeddings, features), param_dtype)


# ----------------------------------------------------------------------------------------------
# Norms and projections


def _as_matmul(spec: str, x_shape, w_shape):
    """For an einsum ``spec`` that contracts x's trailing axes with w's leading axes in the same
    order (``btd,dnh->btnh``, ``btnh,nhd->btd``, ``btd,df->btf``): ``(rows, inner, cols,
    out_shape)`` of the equivalent 2-D matmul; None for any other spec."""
    lhs, rest = spec.replace(" ", "").split(",")
    rhs, out = rest.split("->")
    inner = [c for c in lhs if c in rhs and c not in out]
    k, joined = len(inner), "".join(inner)
    lead = lhs[:len(lhs) - k]
    if (not k or not lhs.endswith(joined) or not rhs.startswith(joined)
            or out != lead + rhs[k:] or len(set(lhs + rhs)) != len(lhs) + len(rhs) - k):
        return None
    batch, free = x_shape[:len(lead)], w_shape[k:]
    return math.prod(batch), math.prod(x_shape[len(lead):]), math.prod(free), (*batch, *free)


def project(module: nnx.Module, name: str, spec: str, x: jax.Array) -> jax.Array:
    """``einsum(spec, x, module.<name>)`` in ``module.dtype``: the one place where a layer's
    projection reads its weight, so that an adapter attached beside the weight (an attribute
    ``<name>_lora``, see :mod:`astrojax.models.lora`) applies wherever the weight does
    (training, evaluation, cached decoding). Without one, exactly the plain einsum.

    A spec that is a matmul over x's trailing axes runs as one 2-D ``[rows, inner] @ [inner,
    cols]`` dot: XLA:CPU differentiates the 3-D einsum into layout copies around every weight
    gradient (benchmarks/profile_step.py), which the 2-D form does not need."""
    dt = module.dtype
    x = x.astype(dt)
    w = getattr(module, name)[...].astype(dt)
    shapes = _as_matmul(spec, x.shape, w.shape)
    if shapes is None:
        y = jnp.einsum(spec, x, w)
    else:
        rows, inner, cols, out_shape = shapes
        y = jnp.dot(x.reshape(rows, inner), w.reshape(inner, cols)).reshape(out_shape)
    adapter = getattr(module, f"{name}_lora", None)
    return y if adapter is None else adapter(x, spec, y)


class RMSNorm(nnx.Module):
    """Root-mean-square norm computed in float32, with a learned ``scale_d`` (``("norm",)``);
    returns ``dtype``."""

    def __init__(self, dim: int, *, eps: float = 1e-6, dtype: DType = "float32",
                 param_dtype: DType = "float32", rngs: nnx.Rngs):
        self.eps, self.dtype = eps, to_dtype(dtype)
        self.scale_d = param(rngs, nnx.initializers.ones, ("norm",), (dim,), param_dtype)

    def __call__(self, x_btd: jax.Array) -> jax.Array:
        x_btd = x_btd.astype(jnp.float32)
        x_btd = x_btd * jax.lax.rsqrt(jnp.mean(x_btd * x_btd, axis=-1, keepdims=True) + self.eps)
        return (x_btd * self.scale_d[...].astype(jnp.float32)).astype(self.dtype)


class LayerNorm(nnx.LayerNorm):
    """``nnx.LayerNorm`` whose ``scale`` and ``bias`` are named ``("norm",)``."""

    def __init__(self, dim: int, *, dtype: DType | None = None, param_dtype: DType = "float32",
                 rngs: nnx.Rngs):
        super().__init__(
            dim, dtype=None if dtype is None else to_dtype(dtype),
            param_dtype=to_dtype(param_dtype), rngs=rngs,
            scale_init=nnx.with_partitioning(nnx.initializers.ones_init(), ("norm",)),
            bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), ("norm",)))


class Dense(nnx.Linear):
    """``nnx.Linear`` (``kernel [in, out]`` and optional ``bias [out]``) whose dimensions are
    named ``axes = (in_axis, out_axis)``; default init LeCun normal, as ``nnx.Linear``."""

    def __init__(self, in_features: int, out_features: int,
                 axes: tuple[str | None, str | None], *, use_bias: bool = True,
                 kernel_init=LECUN_NORMAL, dtype: DType | None = None,
                 param_dtype: DType = "float32", rngs: nnx.Rngs):
        if len(axes) != 2 or (axes[0] is not None and axes[0] == axes[1]):
            # Flax cannot map one logical name to two dimensions of an array.
            raise ValueError(f"Dense axes must name (in, out) with two different names (or "
                             f"None), got {axes}")
        super().__init__(
            in_features, out_features, use_bias=use_bias,
            dtype=None if dtype is None else to_dtype(dtype), param_dtype=to_dtype(param_dtype),
            kernel_init=nnx.with_partitioning(kernel_init, tuple(axes)),
            bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), (axes[1],)),
            rngs=rngs)


class MLP(nnx.Module):
    """``down(gelu(up(x)))`` of two biased :class:`Dense` layers; ``axes`` names (in, hidden,
    out)."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int,
                 axes: tuple[str | None, str | None, str | None], *, dtype: DType | None = None,
                 param_dtype: DType = "float32", rngs: nnx.Rngs):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.up = Dense(d_in, d_hidden, (axes[0], axes[1]), **kw)
        self.down = Dense(d_hidden, d_out, (axes[1], axes[2]), **kw)

    def __call__(self, x):
        return self.down(jax.nn.gelu(self.up(x)))


@jax.custom_vjp
def swiglu(x_nd, w_df_gate, w_df_up, w_fd_down):
    """``(silu(x @ gate) * (x @ up)) @ down`` on 2-D rows, with a hand-written backward: on
    XLA:CPU the autodiff of the same expression ran the 8 x 512-token quickstart MLP's forward +
    backward in 60 ms against 40 ms for this one (transformers' PyTorch: 45 ms)."""
    return _swiglu_fwd(x_nd, w_df_gate, w_df_up, w_fd_down)[0]


def _swiglu_fwd(x_nd, w_df_gate, w_df_up, w_fd_down):
    gate_nf, up_nf = x_nd @ w_df_gate, x_nd @ w_df_up
    sig_nf = jax.nn.sigmoid(gate_nf)
    hidden_nf = gate_nf * sig_nf * up_nf
    return hidden_nf @ w_fd_down, (x_nd, w_df_gate, w_df_up, w_fd_down, gate_nf, up_nf, sig_nf,
                                   hidden_nf)


def _swiglu_bwd(residuals, dy_nd):
    x_nd, w_df_gate, w_df_up, w_fd_down, gate_nf, up_nf, sig_nf, hidden_nf = residuals
    dy_nd = dy_nd.astype(x_nd.dtype)
    dhidden_nf = dy_nd @ w_fd_down.T
    dup_nf = dhidden_nf * (gate_nf * sig_nf)
    # d silu(g) / dg = s (1 + g (1 - s)) with s = sigmoid(g)
    dgate_nf = dhidden_nf * up_nf * (sig_nf * (1 + gate_nf * (1 - sig_nf)))
    dx_nd = dgate_nf @ w_df_gate.T + dup_nf @ w_df_up.T
    return dx_nd, x_nd.T @ dgate_nf, x_nd.T @ dup_nf, hidden_nf.T @ dy_nd


swiglu.defvjp(_swiglu_fwd, _swiglu_bwd)


class SwiGLU(nnx.Module):
    """``down(silu(gate(x)) * up(x))`` without biases (Llama's MLP)."""

    def __init__(self, d_model: int, mlp_dim: int, *, dtype: DType = "float32",
                 param_dtype: DType = "float32", rngs: nnx.Rngs):
        d, f = d_model, mlp_dim
        self.dtype = to_dtype(dtype)
        self.w_df_gate = param(rngs, fan_in_init(d), ("embed", "mlp"), (d, f), param_dtype)
        self.w_df_up = param(rngs, fan_in_init(d), ("embed", "mlp"), (d, f), param_dtype)
        self.w_fd_down = param(rngs, fan_in_init(f), ("mlp", "embed"), (f, d), param_dtype)

    def __call__(self, x_btd: jax.Array) -> jax.Array:
        names = ("w_df_gate", "w_df_up", "w_fd_down")
        if any(hasattr(self, f"{name}_lora") for name in names):  # adapters: through project
            gate_btf = project(self, "w_df_gate", "btd,df->btf", x_btd)
            up_btf = project(self, "w_df_up", "btd,df->btf", x_btd)
            return project(self, "w_fd_down", "btf,fd->btd", jax.nn.silu(gate_btf) * up_btf)
        dt = self.dtype
        weights = (getattr(self, name)[...].astype(dt) for name in names)
        y_nd = swiglu(x_btd.astype(dt).reshape(-1, x_btd.shape[-1]), *weights)
        return y_nd.reshape(x_btd.shape)


# ----------------------------------------------------------------------------------------------
# Rotary position embeddings


ROPE_SCALINGS = ("none", "linear", "dynamic", "llama3")


@dataclasses.dataclass(frozen=True)
class RopeScaling:
    """How the rotary frequencies are stretched for contexts longer than pretraining, as in
    Hugging Face's ``rope_parameters`` (``rope_scaling`` before transformers 5). Frozen and
    hashable: a model keeps it in its graphdef.

    - ``linear``: every frequency divided by ``factor`` (positions / factor).
    - ``dynamic`` (NTK-aware): while a call's largest position + 1, ``L``, is at most
      ``original_max_len`` nothing changes; beyond it the base becomes
      ``theta * (factor * L / original_max_len - (factor - 1)) ** (d / (d - 2))``. As
      transformers 5.24 computes it for a fresh forward pass (``_compute_dynamic_ntk_parameters``
      with ``seq_len = max(position_ids) + 1``); its module also remembers the longest ``L``
      it has seen and keeps that base for later, shorter calls until one falls back under
      ``original_max_len``. We keep no state: each call's tables depend on its own positions
      only, so a jitted function gives the same answer whatever ran before. In cached decoding
      both recompute the base at every step, and keys already in the cache keep the rotation
      they were written with.
    - ``llama3`` (Llama 3.1): wavelengths longer than ``original_max_len / low_freq_factor``
      divided by ``factor``, shorter than ``original_max_len / high_freq_factor`` kept, and a
      smooth blend between.
    """

    kind: str
    factor: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_len: int = 0

    def __post_init__(self):
        if self.kind not in ROPE_SCALINGS[1:]:
            raise ValueError(f"unknown rope scaling {self.kind!r}; expected one of "
                             f"{', '.join(ROPE_SCALINGS[1:])} (or no RopeScaling)")
        if not self.factor >= 1.0:
            raise ValueError(f"rope scaling factor must be >= 1, got {self.factor}")
        if self.kind in ("dynamic", "llama3") and self.original_max_len < 1:
            raise ValueError(f"{self.kind} rope scaling needs original_max_len >= 1, got "
                             f"{self.original_max_len}")
        if self.kind == "llama3" and not 0 < self.low_freq_factor < self.high_freq_factor:
            raise ValueError("llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor, "
                             f"got {self.low_freq_factor} and {self.high_freq_factor}")


def rope_inv_freq(head_dim: int, theta: float, scaling: RopeScaling | None = None,
                  positions_bt: jax.Array | None = None) -> jax.Array:
    """float32 inverse frequencies ``[head_dim // 2]``; ``dynamic`` scaling reads the largest
    of ``positions_bt``."""
    exponent_h = jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim
    if scaling is not None and scaling.kind == "dynamic":
        if positions_bt is None:
            raise ValueError("dynamic rope scaling needs the positions")
        length = jnp.maximum(jnp.max(positions_bt) + 1, scaling.original_max_len)
        stretch = scaling.factor * length.astype(jnp.float32) / scaling.original_max_len
        theta = theta * (stretch - (scaling.factor - 1)) ** (head_dim / (head_dim - 2))
        return 1.0 / theta ** exponent_h
    inv_freq_h = theta ** (-exponent_h)
    if scaling is None:
        return inv_freq_h
    if scaling.kind == "linear":
        return inv_freq_h / scaling.factor
    # llama3
    wavelen_h = 2 * math.pi / inv_freq_h
    low_wavelen = scaling.original_max_len / scaling.low_freq_factor
    high_wavelen = scaling.original_max_len / scaling.high_freq_factor
    scaled_h = jnp.where(wavelen_h > low_wavelen, inv_freq_h / scaling.factor, inv_freq_h)
    smooth_h = ((scaling.original_max_len / wavelen_h - scaling.low_freq_factor)
                / (scaling.high_freq_factor - scaling.low_freq_factor))
    blended_h = (1 - smooth_h) * scaled_h / scaling.factor + smooth_h * scaled_h
    medium_h = (wavelen_h >= high_wavelen) & (wavelen_h <= low_wavelen)
    return jnp.where(medium_h, blended_h, scaled_h)


def rope_sin_cos(positions_bt: jax.Array, head_dim: int, theta: float,
                 scaling: RopeScaling | None = None):
    """float32 ``(sin_bth, cos_bth)`` with ``h = head_dim // 2`` frequencies, stretched by
    ``scaling`` when given."""
    inv_freq_h = rope_inv_freq(head_dim, theta, scaling, positions_bt)
    angle_bth = positions_bt.astype(jnp.float32)[:, :, None] * inv_freq_h
    return jnp.sin(angle_bth), jnp.cos(angle_bth)


def apply_rope(x_btnh: jax.Array, sin_bth: jax.Array, cos_bth: jax.Array) -> jax.Array:
    """Rotates the two halves of head_dim (Llama / HF "rotate_half" layout), in float32."""
    x1, x2 = jnp.split(x_btnh.astype(jnp.float32), 2, axis=-1)
    sin, cos = sin_bth[:, :, None, :], cos_bth[:, :, None, :]
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x_btnh.dtype)


# ----------------------------------------------------------------------------------------------
# Attention and the residual block


class Attention(nnx.Module):
    """Grouped-query softmax self-attention through the kernel registry
    (``astrojax.models.attention.attention``); K/V keep their own (fewer) heads.

    ``causal`` and ``window`` (``(left, right)``, the registry's semantics) shape the mask;
    ``rope`` rotates q and k by the ``sin_bth``/``cos_bth`` tables passed to the call (the
    caller computes them once for all layers). The call takes a sequence mixer's arguments,
    ``(x_btd, sin_bth, cos_bth, segment_ids_bt)``; without ``rope`` the tables are not needed.
    ``qkv_bias`` adds biases to the q, k and v projections (Qwen2); they are created only then,
    so models without them keep their parameter tree.
    """

    def __init__(self, d_model: int, num_heads: int, num_kv_heads: int, head_dim: int, *,
                 impl: str = "auto", causal: bool = False,
                 window: tuple[int, int] | None = None, rope: bool = False,
                 qkv_bias: bool = False, dtype: DType = "float32",
                 param_dtype: DType = "float32", rngs: nnx.Rngs):
        if num_heads % num_kv_heads:
            raise ValueError(f"num_kv_heads={num_kv_heads} must divide num_heads={num_heads}")
        if rope and head_dim % 2:
            raise ValueError(f"head_dim={head_dim} must be even for rotary embeddings")
        d, n, k, h = d_model, num_heads, num_kv_heads, head_dim
        pdt = param_dtype
        self.dtype = to_dtype(dtype)
        self.w_dnh = param(rngs, fan_in_init(d), ("embed", "heads", "head_dim"), (d, n, h), pdt)
        self.w_dkh_k = param(rngs, fan_in_init(d), ("embed", "kv_heads", "head_dim"),
                             (d, k, h), pdt)
        self.w_dkh_v = param(rngs, fan_in_init(d), ("embed", "kv_heads", "head_dim"),
                             (d, k, h), pdt)
        self.w_nhd = param(rngs, fan_in_init(n * h), ("heads", "head_dim", "embed"),
                           (n, h, d), pdt)
        self.qkv_bias = qkv_bias
        if qkv_bias:
            zeros = nnx.initializers.zeros
            self.b_nh_q = param(rngs, zeros, ("heads", "head_dim"), (n, h), pdt)
            self.b_kh_k = param(rngs, zeros, ("kv_heads", "head_dim"), (k, h), pdt)
            self.b_kh_v = param(rngs, zeros, ("kv_heads", "head_dim"), (k, h), pdt)
        self.scale = h**-0.5
        self.impl, self.causal, self.rope = impl, causal, rope
        self.window = None if window is None else tuple(window)

    def project_qkv(self, x_btd: jax.Array):
        """``(q_btnh, k_btkh, v_btkh)`` in the compute dtype, before any rotation."""
        q_btnh = project(self, "w_dnh", "btd,dnh->btnh", x_btd)
        k_btkh = project(self, "w_dkh_k", "btd,dkh->btkh", x_btd)
        v_btkh = project(self, "w_dkh_v", "btd,dkh->btkh", x_btd)
        if self.qkv_bias:
            dt = self.dtype
            q_btnh = q_btnh + self.b_nh_q[...].astype(dt)
            k_btkh = k_btkh + self.b_kh_k[...].astype(dt)
            v_btkh = v_btkh + self.b_kh_v[...].astype(dt)
        return q_btnh, k_btkh, v_btkh

    def project_out(self, o_btnh: jax.Array) -> jax.Array:
        return project(self, "w_nhd", "btnh,nhd->btd", o_btnh)

    def __call__(self, x_btd, sin_bth=None, cos_bth=None, segment_ids_bt=None):
        q_btnh, k_btkh, v_btkh = self.project_qkv(x_btd)
        if self.rope:
            if sin_bth is None or cos_bth is None:
                raise ValueError("this Attention applies rotary embeddings: pass sin_bth and "
                                 "cos_bth (layers.rope_sin_cos)")
            q_btnh = apply_rope(q_btnh, sin_bth, cos_bth)
            k_btkh = apply_rope(k_btkh, sin_bth, cos_bth)
        o_btnh = attention(q_btnh, k_btkh, v_btkh, impl=self.impl, causal=self.causal,
                           window=self.window, segment_ids=segment_ids_bt, scale=self.scale)
        return self.project_out(o_btnh)

    # ------------------------------------------------------------------------------------------
    # Cached decoding (causal attention only). The cache is a plain dict of arrays: keys and
    # values ``[b, c, k, h]`` in the compute dtype and ``pos [c]``, the sequence index each slot
    # holds (-1: empty). Rows are left-padded, so every row writes the same slot at each step
    # and ``start_b`` (the row's first real index) masks its padding. Without a window ``c`` is
    # the whole length; with ``window=(left, 0)`` it is a ring buffer of ``left + 1`` slots.

    def init_cache(self, batch_size: int, length: int) -> dict[str, jax.Array]:
        """An empty cache for sequences of up to ``length`` tokens."""
        if not self.causal or (self.window is not None and self.window[1] != 0):
            raise ValueError("only causal attention (window (left, 0) or none) can decode "
                             "from a cache")
        slots = length if self.window is None else min(length, self.window[0] + 1)
        k, h = self.w_dkh_k.shape[-2:]
        kv = jnp.zeros((batch_size, slots, k, h), self.dtype)
        return {"k": kv, "v": kv, "pos": jnp.full((slots,), -1, jnp.int32)}

    def _cache_kv(self, k_btkh, v_btkh, cache, first: jax.Array | int):
        """``cache`` with the ``t`` new keys and values of sequence indices ``first ..
        first + t - 1`` written in (the last ``c`` of them if more than fit)."""
        t, c = k_btkh.shape[1], cache["pos"].shape[0]
        keep = min(t, c)
        index_t = first + jnp.arange(t - keep, t, dtype=jnp.int32)
        slot_t = index_t % c
        axes = ("batch", None, "kv_heads", "head_dim")
        k = cache["k"].at[:, slot_t].set(k_btkh[:, t - keep:].astype(cache["k"].dtype))
        v = cache["v"].at[:, slot_t].set(v_btkh[:, t - keep:].astype(cache["v"].dtype))
        return {"k": constrain(k, axes), "v": constrain(v, axes),
                "pos": cache["pos"].at[slot_t].set(index_t)}

    def prefill(self, x_btd, sin_bth, cos_bth, segment_ids_bt, cache):
        """The call's output for a left-padded prompt (segment id 0 on padding, 1 on the
        rest), and ``cache`` (empty) holding its keys and values: ``(y_btd, cache)``."""
        q_btnh, k_btkh, v_btkh = self.project_qkv(x_btd)
        q_btnh = apply_rope(q_btnh, sin_bth, cos_bth)
        k_btkh = apply_rope(k_btkh, sin_bth, cos_bth)
        o_btnh = attention(q_btnh, k_btkh, v_btkh, impl=self.impl, causal=True,
                           window=self.window, segment_ids=segment_ids_bt, scale=self.scale)
        real = (segment_ids_bt != 0)[:, :, None, None]  # padding's keys stay zero in the cache
        cache = self._cache_kv(jnp.where(real, k_btkh, 0), jnp.where(real, v_btkh, 0), cache, 0)
        return self.project_out(o_btnh), cache

    def decode(self, x_b1d, sin_b1h, cos_b1h, cache, index, start_b):
        """One token per row at sequence index ``index`` (a scalar): ``(y_b1d, cache)``.
        Attends over the cache through the ``xla`` kernel: one query is memory-bound, and the
        kernel masks slots by segment id (empty, another row's padding, outside the window)."""
        q_b1nh, k_b1kh, v_b1kh = self.project_qkv(x_b1d)
        q_b1nh = apply_rope(q_b1nh, sin_b1h, cos_b1h)
        k_b1kh = apply_rope(k_b1kh, sin_b1h, cos_b1h)
        cache = self._cache_kv(k_b1kh, v_b1kh, cache, index)
        pos_c = cache["pos"]
        seen_bc = (pos_c >= 0) & (pos_c >= start_b[:, None])
        if self.window is not None:
            seen_bc &= pos_c >= index - self.window[0]
        ids = (jnp.ones((x_b1d.shape[0], 1), jnp.int32), seen_bc.astype(jnp.int32))
        o_b1nh = attention(q_b1nh, cache["k"], cache["v"], impl="xla", causal=False,
                           segment_ids=ids, scale=self.scale)
        return self.project_out(o_b1nh), cache


class Block(nnx.Module):
    """Pre-norm residual block: ``x + attn(attn_norm(x))`` then ``x + mlp(mlp_norm(x))``, with
    a SwiGLU MLP and any sequence mixer in the ``attn`` slot.

    ``make_mixer(rngs)`` builds the mixer; it is called between the two norms so parameters are
    created (and their keys drawn) in the order norm, mixer, norm, MLP. The call passes its
    extra arguments on to the mixer. ``out_axes``: logical names of the output's dimensions to
    constrain its sharding to (``None``: no constraint).
    """

    def __init__(self, d_model: int, mlp_dim: int, make_mixer: Callable[[nnx.Rngs], nnx.Module],
                 *, eps: float = 1e-6, dtype: DType = "float32", param_dtype: DType = "float32",
                 out_axes: Sequence[str | None] | None = None, rngs: nnx.Rngs):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.attn_norm = RMSNorm(d_model, eps=eps, **kw)
        self.attn = make_mixer(rngs)
        self.mlp_norm = RMSNorm(d_model, eps=eps, **kw)
        self.mlp = SwiGLU(d_model, mlp_dim, **kw)
        self.out_axes = None if out_axes is None else tuple(out_axes)

    def __call__(self, x_btd: jax.Array, *mixer_args, **mixer_kwargs) -> jax.Array:
        with jax.named_scope("attention"):
            x_btd = x_btd + self.attn(self.attn_norm(x_btd), *mixer_args, **mixer_kwargs)
        with jax.named_scope("mlp"):
            x_btd = x_btd + self.mlp(self.mlp_norm(x_btd))
        return x_btd if self.out_axes is None else constrain(x_btd, self.out_axes)

    def _extend(self, x_btd, mixer_out):
        y_btd, cache = mixer_out
        x_btd = x_btd + y_btd
        x_btd = x_btd + self.mlp(self.mlp_norm(x_btd))
        return (x_btd if self.out_axes is None else constrain(x_btd, self.out_axes)), cache

    def prefill(self, x_btd, sin_bth, cos_bth, segment_ids_bt, cache):
        """The call on a left-padded prompt, through the mixer's ``prefill``:
        ``(x_btd, mixer cache)``."""
        return self._extend(x_btd, self.attn.prefill(self.attn_norm(x_btd), sin_bth, cos_bth,
                                                     segment_ids_bt, cache))

    def decode(self, x_b1d, sin_b1h, cos_b1h, cache, index, start_b):
        """One token per row through the mixer's ``decode``: ``(x_b1d, mixer cache)``."""
        return self._extend(x_b1d, self.attn.decode(self.attn_norm(x_b1d), sin_b1h, cos_b1h,
                                                    cache, index, start_b))


__all__ = ["DTYPES", "ROPE_SCALINGS", "Attention", "Block", "Dense", "LayerNorm", "MLP",
           "RMSNorm", "RopeScaling", "SwiGLU", "apply_rope", "embedding_table", "fan_in_init",
           "param", "project", "rope_inv_freq", "rope_sin_cos", "swiglu", "to_dtype"]
