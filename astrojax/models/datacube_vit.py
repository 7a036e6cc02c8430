"""3D-convolution + ViT hybrid that embeds a planet's climate datacube and predicts its labels.

Input ``x_bvtlyx`` is ``[batch, variables, time, level, lat, lon]``, already normalized.
Shapes are lettered: b batch, v variables, t time, l level, y lat, x lon, c channels,
n tokens, d d_model, h heads, k head dim, m mlp; ``p`` prefixes a token-grid axis (``pt`` token
rows along time, ...).

Channels. Levels and variables are folded into channels, ``c = v * L + l``. Levels are few
(a handful) and strongly coupled through the lapse rate, so mixing them in the very first layer
is cheap and lets the stem see vertical structure (inversions, greenhouse warming aloft) at
once. Time, lat and lon are the axes with spatial structure and a translation-like symmetry,
so they are the ones the convolutions slide over.

Multi-scale stem. A 3x3x3 convolution gives ``stem_channels`` features at full resolution; a
stride-2 3x3x3 convolution on those gives ``2 * stem_channels`` features at half resolution.
Tokens are tubelets: ``patch_size`` cells of the full-resolution features and
``patch_size // 2`` cells of the half-resolution ones cover the same region of the planet, each
is projected to d_model and the two are summed, so every token sees both scales. An axis whose
patch extent is odd (e.g. 1, for single-time-step cubes) is not downsampled: the "half"
resolution path keeps full resolution along it.

Boundaries and padding. Longitude is periodic: every convolution pads it circularly, and a
grid whose lon size divides the patch is exactly equivariant to longitude rolls by whole
tubelets. Time and latitude are padded by repeating the edge (poles, first/last step). A grid
size that does not divide its patch extent is padded the same way (at the high end, after the
full-resolution convolution) up to the next multiple, so any grid works, including a single
time step with a time patch of 2; the padded cells duplicate real ones (and along lon make the
seam slightly non-periodic), they are never zeros. The token grid is ``ceil(grid / patch)``.

Then: position embeddings (3D sinusoidal, or one learned table per axis, summed), pre-norm
transformer blocks (RMSNorm, non-causal multi-head attention through
``astrojax.models.attention.attention``, SwiGLU), attention pooling (a learned query per head)
to the planet embedding, and linear regression and classification heads. Parameters carry
logical axis names (``embed``, ``heads``, ``head_dim``, ``mlp``, ``norm``; stem convolutions are
small and replicated); activations use ``cfg.dtype``, parameters ``cfg.param_dtype``.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from astrojax.config import ConfigError, DatacubeConfig
from astrojax.models.attention import attention
from astrojax.models.transformer import _fan_in_init, _param, to_dtype

POSITION_EMBEDDINGS = ("sinusoidal", "learned")
_NORM_EPS = 1e-6
_AXES = ("time", "lat", "lon")


def tiny_datacube_config(**overrides) -> DatacubeConfig:
    """A DatacubeConfig small enough for unit tests on a 2-core CPU."""
    base = DatacubeConfig(stem_channels=8, d_model=32, num_layers=2, num_heads=2, mlp_dim=64)
    return dataclasses.replace(base, **overrides)


def token_grid(grid: tuple[int, int, int], patch: tuple[int, int, int]) -> tuple[int, int, int]:
    """Tokens along (time, lat, lon): ``ceil(grid / patch)`` (partial tubelets are padded)."""
    return tuple(-(-g // p) for g, p in zip(grid, patch, strict=True))


def _pad_txy(f_btyxc: jax.Array, pads: tuple[tuple[int, int], ...]) -> jax.Array:
    """Pads (time, lat, lon): time and lat by repeating the edge, lon circularly."""
    (t0, t1), (y0, y1), (x0, x1) = pads
    f_btyxc = jnp.pad(f_btyxc, ((0, 0), (t0, t1), (y0, y1), (0, 0), (0, 0)), mode="edge")
    return jnp.pad(f_btyxc, ((0, 0), (0, 0), (0, 0), (x0, x1), (0, 0)), mode="wrap")


def sinusoid_1d(positions: np.ndarray, dim: int) -> np.ndarray:
    """``[len(positions), dim]`` sin/cos features (Transformer-style frequencies); dim even."""
    inv_freq = 10_000.0 ** (-np.arange(dim // 2, dtype=np.float64) / max(dim // 2, 1))
    angle = positions.astype(np.float64)[:, None] * inv_freq[None, :]
    return np.concatenate([np.sin(angle), np.cos(angle)], axis=-1).astype(np.float32)


def sinusoid_3d(tokens: tuple[int, int, int], d_model: int) -> np.ndarray:
    """Fixed ``[pt * py * px, d]`` embedding: d_model split (even parts) over time, lat, lon,
    each part a 1D sinusoid of that axis' token index; lon gets the remainder."""
    part = (d_model // 3) // 2 * 2
    dims = (part, part, d_model - 2 * part)
    grids = np.meshgrid(*(np.arange(n) for n in tokens), indexing="ij")
    feats = [sinusoid_1d(g.reshape(-1), dim) for g, dim in zip(grids, dims, strict=True)]
    return np.concatenate(feats, axis=-1)


def tubelets(f_btyxc: jax.Array, patch: tuple[int, int, int]) -> jax.Array:
    """``[b, T, Y, X, c]`` (each size a multiple of its patch extent) -> ``[b, pt, py, px,
    patch_t * patch_y * patch_x * c]``, each token's cells in (time, lat, lon, channel) order."""
    b, t, y, x, c = f_btyxc.shape
    (st, sy, sx) = patch
    f = f_btyxc.reshape(b, t // st, st, y // sy, sy, x // sx, sx, c)
    return f.transpose(0, 1, 3, 5, 2, 4, 6, 7).reshape(b, t // st, y // sy, x // sx, -1)


def strided_conv3d(x_btyxc: jax.Array, w_tyxio: jax.Array, strides: tuple[int, int, int]):
    """A VALID 3D convolution with ``strides`` in {1, 2} per axis, computed exactly as a
    stride-1 convolution of the space-to-depth input.

    Why: XLA:CPU runs the input gradient of a strided convolution (an lhs-dilated
    convolution) some 50x slower than the forward pass, and the stride-2 stem was most of a
    training step. Along a stride-2 axis of padded length 2J, cell ``2j + r`` becomes phase
    ``r`` of block ``j``, and kernel tap ``i`` (zero-padded to an even length) becomes tap
    ``i // 2``, phase ``i % 2``; the result equals
    ``lax.conv_general_dilated(x, w, strides, "VALID")``. Sizes along stride-2 axes must be even.
    """
    b, *sizes, c = x_btyxc.shape
    w = w_tyxio
    x_shape, w_shape = [b], []
    for axis, (size, stride) in enumerate(zip(sizes, strides, strict=True)):
        taps = w.shape[axis]
        if stride == 2:
            if size % 2:
                raise ValueError(f"strided_conv3d needs an even size along stride-2 axis "
                                 f"{_AXES[axis]}, got {size}")
            pad = [(0, 0)] * w.ndim
            pad[axis] = (0, taps % 2)
            w = jnp.pad(w, pad)
            x_shape += [size // 2, 2]
            w_shape += [(taps + 1) // 2, 2]
        elif stride == 1:
            x_shape += [size, 1]
            w_shape += [taps, 1]
        else:
            raise ValueError(f"strided_conv3d supports strides 1 and 2, got {strides}")
    # [b, Jt, rt, Jy, ry, Jx, rx, c] -> [b, Jt, Jy, Jx, (rt, ry, rx, c)], the kernel alike.
    x = x_btyxc.reshape(*x_shape, c).transpose(0, 1, 3, 5, 2, 4, 6, 7)
    x = x.reshape(*x.shape[:4], -1)
    w = w.reshape(*w_shape, *w.shape[3:]).transpose(0, 2, 4, 1, 3, 5, 6, 7)
    w = w.reshape(*w.shape[:3], -1, w.shape[-1])
    return jax.lax.conv_general_dilated(x, w, (1, 1, 1), "VALID",
                                        dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))


# ----------------------------------------------------------------------------------------------
# Layers


class StridedConv(nnx.Module):
    """A 3x3x3 convolution (kernel ``[3, 3, 3, in, out]`` and bias, as ``nnx.Conv``) with
    strides in {1, 2} per axis on an input already padded by one cell each side; see
    ``strided_conv3d`` for why it is not ``nnx.Conv(strides=2)``."""

    def __init__(self, in_features: int, out_features: int, strides: tuple[int, int, int], *,
                 dtype, param_dtype, rngs: nnx.Rngs):
        self.strides, self.dtype = tuple(strides), dtype
        self.kernel = nnx.Param(nnx.initializers.lecun_normal()(
            rngs.params(), (3, 3, 3, in_features, out_features), param_dtype))
        self.bias = nnx.Param(jnp.zeros((out_features,), param_dtype))

    def __call__(self, x_btyxc: jax.Array) -> jax.Array:
        dt = self.dtype
        out = strided_conv3d(x_btyxc.astype(dt), self.kernel[...].astype(dt), self.strides)
        return out + self.bias[...].astype(dt)


class TubeletEmbed(nnx.Module):
    """Non-overlapping ``patch`` tubelets of ``[b, T, Y, X, c]`` features -> ``[b, pt, py, px,
    d]`` (a convolution with stride = kernel = patch, as a reshape and one matmul)."""

    def __init__(self, in_features: int, d_model: int, patch: tuple[int, int, int], *,
                 use_bias: bool, dtype, param_dtype, rngs: nnx.Rngs):
        self.patch, self.dtype = tuple(patch), dtype
        fan_in = math.prod(patch) * in_features
        self.w_pd = _param(rngs, _fan_in_init(fan_in), (None, "embed"), (fan_in, d_model),
                           param_dtype)
        self.bias_d = (_param(rngs, nnx.initializers.zeros, ("embed",), (d_model,), param_dtype)
                       if use_bias else None)

    def __call__(self, f_btyxc: jax.Array) -> jax.Array:
        dt = self.dtype
        tok = jnp.einsum("btyxp,pd->btyxd", tubelets(f_btyxc.astype(dt), self.patch),
                         self.w_pd[...].astype(dt))
        return tok if self.bias_d is None else tok + self.bias_d[...].astype(dt)


class RMSNorm(nnx.Module):
    """Root-mean-square norm in float32 (as ``transformer.RMSNorm``, which needs a
    TransformerConfig); returns ``out_dtype``."""

    def __init__(self, dim: int, *, out_dtype, param_dtype, rngs: nnx.Rngs):
        self.out_dtype = out_dtype
        self.scale_d = _param(rngs, nnx.initializers.ones, ("norm",), (dim,), param_dtype)

    def __call__(self, x_bnd: jax.Array) -> jax.Array:
        x_bnd = x_bnd.astype(jnp.float32)
        x_bnd = x_bnd * jax.lax.rsqrt(jnp.mean(x_bnd * x_bnd, axis=-1, keepdims=True) + _NORM_EPS)
        return (x_bnd * self.scale_d[...].astype(jnp.float32)).astype(self.out_dtype)


class SelfAttention(nnx.Module):
    """Non-causal multi-head self-attention over all tokens (no rotary: positions are added to
    the tokens)."""

    def __init__(self, cfg: DatacubeConfig, *, rngs: nnx.Rngs):
        d, h = cfg.d_model, cfg.num_heads
        k = d // h
        pdt = to_dtype(cfg.param_dtype)
        self.dtype, self.impl = to_dtype(cfg.dtype), cfg.attention_impl
        qkv_names = ("embed", "heads", "head_dim")
        self.w_dhk_q = _param(rngs, _fan_in_init(d), qkv_names, (d, h, k), pdt)
        self.w_dhk_k = _param(rngs, _fan_in_init(d), qkv_names, (d, h, k), pdt)
        self.w_dhk_v = _param(rngs, _fan_in_init(d), qkv_names, (d, h, k), pdt)
        self.w_hkd = _param(rngs, _fan_in_init(d), ("heads", "head_dim", "embed"), (h, k, d), pdt)

    def __call__(self, x_bnd: jax.Array) -> jax.Array:
        dt = self.dtype
        x_bnd = x_bnd.astype(dt)
        q_bnhk = jnp.einsum("bnd,dhk->bnhk", x_bnd, self.w_dhk_q[...].astype(dt))
        k_bnhk = jnp.einsum("bnd,dhk->bnhk", x_bnd, self.w_dhk_k[...].astype(dt))
        v_bnhk = jnp.einsum("bnd,dhk->bnhk", x_bnd, self.w_dhk_v[...].astype(dt))
        o_bnhk = attention(q_bnhk, k_bnhk, v_bnhk, impl=self.impl, causal=False)
        return jnp.einsum("bnhk,hkd->bnd", o_bnhk.astype(dt), self.w_hkd[...].astype(dt))


class SwiGLU(nnx.Module):
    """``down(silu(gate(x)) * up(x))`` (as ``transformer.SwiGLU``)."""

    def __init__(self, cfg: DatacubeConfig, *, rngs: nnx.Rngs):
        d, m = cfg.d_model, cfg.mlp_dim
        pdt = to_dtype(cfg.param_dtype)
        self.dtype = to_dtype(cfg.dtype)
        self.w_dm_gate = _param(rngs, _fan_in_init(d), ("embed", "mlp"), (d, m), pdt)
        self.w_dm_up = _param(rngs, _fan_in_init(d), ("embed", "mlp"), (d, m), pdt)
        self.w_md_down = _param(rngs, _fan_in_init(m), ("mlp", "embed"), (m, d), pdt)

    def __call__(self, x_bnd: jax.Array) -> jax.Array:
        dt = self.dtype
        x_bnd = x_bnd.astype(dt)
        gate_bnm = jnp.einsum("bnd,dm->bnm", x_bnd, self.w_dm_gate[...].astype(dt))
        up_bnm = jnp.einsum("bnd,dm->bnm", x_bnd, self.w_dm_up[...].astype(dt))
        return jnp.einsum("bnm,md->bnd", jax.nn.silu(gate_bnm) * up_bnm,
                          self.w_md_down[...].astype(dt))


class Block(nnx.Module):
    """Pre-norm residual block: self-attention then a SwiGLU MLP."""

    def __init__(self, cfg: DatacubeConfig, *, rngs: nnx.Rngs):
        dt, pdt = to_dtype(cfg.dtype), to_dtype(cfg.param_dtype)
        self.attn_norm = RMSNorm(cfg.d_model, out_dtype=dt, param_dtype=pdt, rngs=rngs)
        self.attn = SelfAttention(cfg, rngs=rngs)
        self.mlp_norm = RMSNorm(cfg.d_model, out_dtype=dt, param_dtype=pdt, rngs=rngs)
        self.mlp = SwiGLU(cfg, rngs=rngs)

    def __call__(self, x_bnd: jax.Array) -> jax.Array:
        with jax.named_scope("attention"):
            x_bnd = x_bnd + self.attn(self.attn_norm(x_bnd))
        with jax.named_scope("mlp"):
            x_bnd = x_bnd + self.mlp(self.mlp_norm(x_bnd))
        return x_bnd


class AttentionPool(nnx.Module):
    """A learned query per head attends over the (normed) tokens -> ``[b, d]``."""

    def __init__(self, cfg: DatacubeConfig, *, rngs: nnx.Rngs):
        d, h = cfg.d_model, cfg.num_heads
        k = d // h
        dt, pdt = to_dtype(cfg.dtype), to_dtype(cfg.param_dtype)
        self.dtype, self.impl = dt, cfg.attention_impl
        self.norm = RMSNorm(d, out_dtype=dt, param_dtype=pdt, rngs=rngs)
        self.query_hk = _param(rngs, nnx.initializers.normal(1.0), ("heads", "head_dim"),
                               (h, k), pdt)
        self.w_dhk_k = _param(rngs, _fan_in_init(d), ("embed", "heads", "head_dim"), (d, h, k),
                              pdt)
        self.w_dhk_v = _param(rngs, _fan_in_init(d), ("embed", "heads", "head_dim"), (d, h, k),
                              pdt)
        self.w_hkd = _param(rngs, _fan_in_init(d), ("heads", "head_dim", "embed"), (h, k, d), pdt)

    def __call__(self, x_bnd: jax.Array) -> jax.Array:
        dt = self.dtype
        x_bnd = self.norm(x_bnd)
        k_bnhk = jnp.einsum("bnd,dhk->bnhk", x_bnd, self.w_dhk_k[...].astype(dt))
        v_bnhk = jnp.einsum("bnd,dhk->bnhk", x_bnd, self.w_dhk_v[...].astype(dt))
        q_b1hk = jnp.broadcast_to(self.query_hk[...].astype(dt),
                                  (x_bnd.shape[0], 1, *self.query_hk.shape))
        o_b1hk = attention(q_b1hk, k_bnhk, v_bnhk, impl=self.impl, causal=False)
        return jnp.einsum("bhk,hkd->bd", o_b1hk[:, 0].astype(dt), self.w_hkd[...].astype(dt))


# ----------------------------------------------------------------------------------------------
# Model


class DatacubeViT(nnx.Module):
    """Datacube ``[b, v, t, l, y, x]`` -> float32 ``embedding [b, d]``, ``regression
    [b, num_targets]`` and ``logits [b, num_classes]`` (see the module docstring)."""

    def __init__(self, cfg: DatacubeConfig, in_channels: int, grid: tuple[int, int, int],
                 num_targets: int, num_classes: int, *, rngs: nnx.Rngs):
        _check_config(cfg, grid)
        d, s = cfg.d_model, cfg.stem_channels
        dt, pdt = to_dtype(cfg.dtype), to_dtype(cfg.param_dtype)
        self.dtype, self.in_channels, self.d_model = dt, in_channels, d
        self.grid, self.patch = tuple(grid), tuple(cfg.patch_size)
        # Downsample only along axes whose patch halves exactly (odd extents stay full res).
        self.stride = tuple(2 if p % 2 == 0 else 1 for p in self.patch)
        self.half_patch = tuple(p // st for p, st in zip(self.patch, self.stride, strict=True))
        self.token_shape = token_grid(self.grid, self.patch)
        self.position_embedding = cfg.position_embedding

        conv = dict(padding="VALID", dtype=dt, param_dtype=pdt, rngs=rngs)
        # Stem convolutions are small (kernels of a few thousand numbers): replicated.
        self.conv_full = nnx.Conv(in_channels, s, (3, 3, 3), **conv)
        self.conv_half = StridedConv(s, 2 * s, self.stride, dtype=dt, param_dtype=pdt, rngs=rngs)
        tub = dict(dtype=dt, param_dtype=pdt, rngs=rngs)
        self.tubelet_full = TubeletEmbed(s, d, self.patch, use_bias=True, **tub)
        # One bias for the summed projections.
        self.tubelet_half = TubeletEmbed(2 * s, d, self.half_patch, use_bias=False, **tub)
        if cfg.position_embedding == "learned":
            pos_init = nnx.initializers.normal(0.02)
            self.pos_t_d, self.pos_y_d, self.pos_x_d = (
                _param(rngs, pos_init, (None, "embed"), (n, d), pdt) for n in self.token_shape)
        self.blocks = nnx.List([Block(cfg, rngs=rngs) for _ in range(cfg.num_layers)])
        self.pool = AttentionPool(cfg, rngs=rngs)
        self.final_norm = RMSNorm(d, out_dtype=jnp.float32, param_dtype=pdt, rngs=rngs)
        head = dict(dtype=jnp.float32, param_dtype=pdt, rngs=rngs,
                    kernel_init=nnx.with_partitioning(_fan_in_init(d), ("embed", None)))
        self.regression_head = nnx.Linear(d, num_targets, **head)
        self.class_head = nnx.Linear(d, num_classes, **head)

    def _check_input(self, x_bvtlyx: jax.Array) -> None:
        if x_bvtlyx.ndim != 6:
            raise ValueError(f"datacube must be [batch, var, time, level, lat, lon]; got shape "
                             f"{x_bvtlyx.shape}")
        _, v, t, lev, y, x = x_bvtlyx.shape
        if v * lev != self.in_channels or (t, y, x) != self.grid:
            raise ValueError(f"datacube shape {x_bvtlyx.shape} does not fit the model: expected "
                             f"variables * levels = {self.in_channels} and (time, lat, lon) = "
                             f"{self.grid}")

    def embed_tokens(self, x_bvtlyx: jax.Array) -> jax.Array:
        """Multi-scale stem and tubelets: ``[b, n, d]`` in time-major token order, before
        position embeddings."""
        self._check_input(x_bvtlyx)
        b, v, t, lev, y, x = x_bvtlyx.shape
        x_btyxc = jnp.transpose(x_bvtlyx, (0, 2, 4, 5, 1, 3)).reshape(b, t, y, x, v * lev)
        x_btyxc = x_btyxc.astype(self.dtype)
        with jax.named_scope("stem_full"):
            f_btyxc = jax.nn.gelu(self.conv_full(_pad_txy(x_btyxc, ((1, 1),) * 3)))
            pads = tuple((0, n * p - g) for n, p, g in zip(self.token_shape, self.patch, self.grid,
                                                          strict=True))
            f_btyxc = _pad_txy(f_btyxc, pads)
        with jax.named_scope("stem_half"):
            g_btyxc = jax.nn.gelu(self.conv_half(_pad_txy(f_btyxc, ((1, 1),) * 3)))
        with jax.named_scope("tubelets"):
            tok_btyxd = self.tubelet_full(f_btyxc) + self.tubelet_half(g_btyxc)
        return tok_btyxd.reshape(b, -1, tok_btyxd.shape[-1])

    def position_embeddings(self) -> jax.Array:
        """``[n, d]`` float32, in the token order of ``embed_tokens``."""
        if self.position_embedding == "sinusoidal":
            return jnp.asarray(sinusoid_3d(self.token_shape, self.d_model))
        pos_tyxd = (self.pos_t_d[...][:, None, None] + self.pos_y_d[...][None, :, None]
                    + self.pos_x_d[...][None, None, :])
        return pos_tyxd.reshape(-1, pos_tyxd.shape[-1]).astype(jnp.float32)

    def __call__(self, x_bvtlyx: jax.Array) -> dict[str, jax.Array]:
        x_bnd = self.embed_tokens(x_bvtlyx)
        with jax.named_scope("position_embedding"):
            x_bnd = x_bnd + self.position_embeddings().astype(self.dtype)[None]
        for i, block in enumerate(self.blocks):
            with jax.named_scope(f"block_{i}"):
                x_bnd = block(x_bnd)
        with jax.named_scope("pool"):
            embedding_bd = self.final_norm(self.pool(x_bnd))
        with jax.named_scope("heads"):
            return dict(embedding=embedding_bd, regression=self.regression_head(embedding_bd),
                        logits=self.class_head(embedding_bd))


def _check_config(cfg: DatacubeConfig, grid: tuple[int, int, int]) -> None:
    if cfg.position_embedding not in POSITION_EMBEDDINGS:
        raise ConfigError("datacube.position_embedding",
                          f"unknown value {cfg.position_embedding!r}; expected one of "
                          f"{', '.join(POSITION_EMBEDDINGS)}")
    if len(cfg.patch_size) != 3 or any(int(p) < 1 for p in cfg.patch_size):
        raise ConfigError("datacube.patch_size",
                          f"expected three positive (time, lat, lon) extents, got {cfg.patch_size}")
    if len(grid) != 3 or any(int(g) < 1 for g in grid):
        raise ValueError(f"grid must be three positive (time, lat, lon) sizes, got {grid}")
    if cfg.d_model % cfg.num_heads:
        raise ConfigError("datacube.num_heads",
                          f"{cfg.num_heads} does not divide d_model={cfg.d_model}")
    if cfg.d_model % 2 or cfg.d_model < 6:
        raise ConfigError("datacube.d_model", f"must be even and >= 6 (three sinusoid parts), "
                          f"got {cfg.d_model}")


# ----------------------------------------------------------------------------------------------
# Losses and evaluation statistics


def datacube_losses(outputs: dict[str, jax.Array], targets: jax.Array, target_mask: jax.Array,
                    classes: jax.Array, class_mask: jax.Array, cfg: DatacubeConfig):
    """Weighted masked MSE (standardized targets) + masked cross-entropy -> ``(loss, metrics)``.

    ``targets``/``target_mask`` are ``[b, num_targets]`` (masked entries may hold anything,
    NaN included); ``classes`` is ``[b]`` ints with -1 for "no label", ``class_mask`` ``[b]``.
    Besides the batch means, ``metrics`` holds additive statistics to sum over batches:
    per-target ``sse``, ``count``, ``sum_target``, ``sum_target_sq`` (for R²) and scalar
    ``correct``, ``class_count`` (for accuracy); see ``datacube_eval_metrics``.
    """
    pred_bt = outputs["regression"].astype(jnp.float32)
    mask_bt = target_mask.astype(bool)
    y_bt = jnp.where(mask_bt, targets.astype(jnp.float32), 0.0)
    err2_bt = jnp.where(mask_bt, (pred_bt - y_bt) ** 2, 0.0)
    count_t = mask_bt.sum(axis=0).astype(jnp.float32)
    sse_t = err2_bt.sum(axis=0)
    mse = sse_t.sum() / jnp.maximum(count_t.sum(), 1.0)

    logits_bc = outputs["logits"].astype(jnp.float32)
    cmask_b = class_mask.astype(bool) & (classes >= 0)
    labels_b = jnp.where(cmask_b, classes, 0).astype(jnp.int32)
    ce_b = optax.softmax_cross_entropy_with_integer_labels(logits_bc, labels_b)
    class_count = cmask_b.sum().astype(jnp.float32)
    cross_entropy = jnp.where(cmask_b, ce_b, 0.0).sum() / jnp.maximum(class_count, 1.0)
    correct = (cmask_b & (jnp.argmax(logits_bc, axis=-1) == labels_b)).sum().astype(jnp.float32)

    loss = cfg.regression_weight * mse + cfg.classification_weight * cross_entropy
    metrics = dict(loss=loss, mse=mse, cross_entropy=cross_entropy, sse=sse_t, count=count_t,
                   sum_target=y_bt.sum(axis=0), sum_target_sq=(y_bt * y_bt).sum(axis=0),
                   correct=correct, class_count=class_count)
    return loss, metrics


def datacube_eval_metrics(stats: dict) -> dict[str, np.ndarray | float]:
    """R² per target (and its mean over targets with data) and accuracy from summed
    ``datacube_losses`` statistics. A target with fewer than 2 values or no variance gets NaN."""
    count = np.asarray(stats["count"], np.float64)
    sse = np.asarray(stats["sse"], np.float64)
    mean = np.asarray(stats["sum_target"], np.float64) / np.maximum(count, 1.0)
    sst = np.asarray(stats["sum_target_sq"], np.float64) - count * mean**2
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where((count > 1) & (sst > 0), 1.0 - sse / sst, np.nan)
    class_count = float(stats["class_count"])
    accuracy = float(stats["correct"]) / class_count if class_count else math.nan
    r2_mean = float(np.nanmean(r2)) if np.isfinite(r2).any() else math.nan
    return dict(r2=r2, r2_mean=r2_mean, accuracy=accuracy)
