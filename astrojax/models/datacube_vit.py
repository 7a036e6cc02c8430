"""3D-convolution + ViT hybrid that embeds a planet's climate datacube: masked-tubelet
pretraining (VideoMAE) and regression of the labels no closed-form rule reads off the cube.

Input ``x_bvtlyx`` is ``[batch, variables, time, level, lat, lon]``, already normalized.
Shapes are lettered: b batch, v variables, t time, l level, y lat, x lon, c channels,
n tokens (k visible, m masked), p pixels of one tubelet, d d_model, e decoder width, h heads,
r regression targets; ``p`` prefixes a token-grid axis (``pt`` token rows along time, ...).

Channels. Levels and variables are folded into channels, ``c = v * L + l``. Levels are few
(a handful) and strongly coupled through the lapse rate, so mixing them in the very first layer
is cheap and lets the stem see vertical structure (inversions, greenhouse warming aloft) at
once. Time, lat and lon are the axes with spatial structure, so they are the ones the
convolutions slide over.

Tubelets first, then the stem, one tubelet at a time. The cube is cut into non-overlapping
``patch_size`` tubelets (a grid that does not divide its patch is padded at the high end by
repeating the edge cell, along every axis, so the token grid is ``ceil(grid / patch)``). Each
tubelet then goes through a two-resolution stem on its own: a 3x3x3 convolution to
``stem_channels`` features at full resolution and a stride-2 3x3x3 convolution of those to
``2 * stem_channels`` at half resolution, both padded by repeating the tubelet's own edge
cells; each scale is projected to d_model and the two are summed into the token. Why per
tubelet: a stem over the whole cube (what this model had before masking) lets every token see
the cells of its neighbours' tubelets, so hiding a tubelet from the encoder would not hide its
content, and reconstructing it would be copying, not inference. With the stem inside the
tubelet, a token is a function of its own tubelet's cells only, masking is a gather of the
visible tubelets *before* the stem (no compute spent on hidden ones), and the tests check
that changing a masked tubelet's cells leaves the encoder's output bit-identical. The price is
that the convolutions see no context across tubelet borders; attention provides it. An axis
whose patch extent is odd (e.g. 1, for single-time-step cubes) is not downsampled.

Encoder: position embeddings (3D sinusoidal, or one learned table per axis, summed) gathered
at the tokens present, pre-norm transformer blocks (RMSNorm, non-causal multi-head attention
through ``astrojax.models.attention.attention``, SwiGLU) and a final norm. The planet
embedding is the mean of the encoder's output tokens (all of them at evaluation, no masking),
which needs no training of its own, so a purely self-supervised model has a meaningful
embedding; the regression head reads it.

Masked-tubelet reconstruction (VideoMAE, Tong et al. 2022): per sample, a random ``mask_ratio``
of the tubelets is hidden; the number of visible tokens is fixed, so shapes are static. The
decoder (``decoder_layers`` blocks of width ``decoder_dim``) sees the encoded visible tokens and
a learned mask token at each hidden position, both with their sinusoidal positions, and
predicts the hidden tubelets' normalized cells; the loss is the mean squared error over the
hidden tubelets only. Targets are the cube's own normalization (per variable and level), not
VideoMAE's per-patch normalization, so a tubelet's level (how warm, how humid) is part of what
must be inferred.

The blocks, norms and projections are those of :mod:`astrojax.models.layers`. Parameters carry
logical axis names (``embed``, ``heads``, ``kv_heads``, ``head_dim``, ``mlp``, ``norm``; stem
convolutions are small and replicated); activations use ``cfg.dtype``, parameters
``cfg.param_dtype``.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from astrojax.config import ConfigError, DatacubeConfig
from astrojax.models.layers import Attention, Block, Dense, RMSNorm, fan_in_init, param, to_dtype

POSITION_EMBEDDINGS = ("sinusoidal", "learned")
_NORM_EPS = 1e-6
_AXES = ("time", "lat", "lon")


def tiny_datacube_config(**overrides) -> DatacubeConfig:
    """A DatacubeConfig small enough for unit tests on a 2-core CPU."""
    base = DatacubeConfig(stem_channels=8, d_model=32, num_layers=2, num_heads=2, mlp_dim=64,
                          decoder_dim=16, decoder_layers=1, decoder_heads=2)
    return dataclasses.replace(base, **overrides)


def token_grid(grid: tuple[int, int, int], patch: tuple[int, int, int]) -> tuple[int, int, int]:
    """Tokens along (time, lat, lon): ``ceil(grid / patch)`` (partial tubelets are padded)."""
    return tuple(-(-g // p) for g, p in zip(grid, patch, strict=True))


def num_visible(num_tokens: int, mask_ratio: float) -> int:
    """Tokens the encoder sees per sample under masking: at least one, and at least one hidden."""
    if num_tokens < 2:
        raise ValueError(f"masking needs at least 2 tokens, got {num_tokens}")
    hidden = min(max(int(round(mask_ratio * num_tokens)), 1), num_tokens - 1)
    return num_tokens - hidden


def tubelet_masks(key: jax.Array, batch: int, num_tokens: int,
                  visible: int) -> tuple[jax.Array, jax.Array]:
    """A random split of each sample's tokens: ``(visible_bk, masked_bm)`` int32 token indices,
    each ascending, ``k = visible`` and ``m = num_tokens - visible``."""
    order_bn = jnp.argsort(jax.random.uniform(key, (batch, num_tokens)), axis=-1)
    return (jnp.sort(order_bn[:, :visible], axis=-1).astype(jnp.int32),
            jnp.sort(order_bn[:, visible:], axis=-1).astype(jnp.int32))


def _pad_edge(f_btyxc: jax.Array, pads: tuple[tuple[int, int], ...]) -> jax.Array:
    """Pads (time, lat, lon) of ``[b, T, Y, X, c]`` by repeating the edge cells."""
    return jnp.pad(f_btyxc, ((0, 0), *pads, (0, 0)), mode="edge")


def _gather_tokens(x_bn_: jax.Array, index_bk: jax.Array) -> jax.Array:
    """``x[b, index[b, k], ...]``: the tokens ``index_bk`` of each sample."""
    index = index_bk.reshape(*index_bk.shape, *([1] * (x_bn_.ndim - 2)))
    return jnp.take_along_axis(x_bn_, index, axis=1)


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


def encoder_block(d_model: int, num_heads: int, mlp_dim: int, *, impl: str, dtype, param_dtype,
                  rngs: nnx.Rngs) -> Block:
    """Pre-norm block of non-causal multi-head self-attention (no rotary: positions are added
    to the tokens) and a SwiGLU MLP."""
    def mixer(rngs: nnx.Rngs) -> Attention:
        return Attention(d_model, num_heads, num_heads, d_model // num_heads, impl=impl,
                         causal=False, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    return Block(d_model, mlp_dim, mixer, eps=_NORM_EPS, dtype=dtype, param_dtype=param_dtype,
                 rngs=rngs)


# ----------------------------------------------------------------------------------------------
# Model


class MaskedDecoder(nnx.Module):
    """VideoMAE's light decoder: encoded visible tokens and a learned mask token at every hidden
    position, each with its fixed sinusoidal position, through ``decoder_layers`` blocks; the
    hidden positions' outputs are projected to their tubelets' cells ``[b, m, p]``."""

    def __init__(self, cfg: DatacubeConfig, token_shape: tuple[int, int, int],
                 tubelet_size: int, *, rngs: nnx.Rngs):
        d, e = cfg.d_model, cfg.decoder_dim
        dt, pdt = to_dtype(cfg.dtype), to_dtype(cfg.param_dtype)
        self.dtype, self.token_shape, self.width = dt, token_shape, e
        self.w_de_in = param(rngs, fan_in_init(d), ("embed", None), (d, e), pdt)
        self.mask_token_e = param(rngs, nnx.initializers.normal(0.02), (None,), (e,), pdt)
        self.blocks = nnx.List([
            encoder_block(e, cfg.decoder_heads, 2 * e, impl=cfg.attention_impl, dtype=dt,
                          param_dtype=pdt, rngs=rngs) for _ in range(cfg.decoder_layers)])
        self.norm = RMSNorm(e, eps=_NORM_EPS, dtype=dt, param_dtype=pdt, rngs=rngs)
        self.w_ep_out = param(rngs, fan_in_init(e), (None, None), (e, tubelet_size), pdt)
        self.bias_p = param(rngs, nnx.initializers.zeros, (None,), (tubelet_size,), pdt)

    def __call__(self, enc_bkd: jax.Array, visible_bk: jax.Array,
                 masked_bm: jax.Array) -> jax.Array:
        dt = self.dtype
        pos_ne = jnp.asarray(sinusoid_3d(self.token_shape, self.width)).astype(dt)
        vis_bke = (jnp.einsum("bkd,de->bke", enc_bkd.astype(dt), self.w_de_in[...].astype(dt))
                   + pos_ne[visible_bk])
        hidden_bme = self.mask_token_e[...].astype(dt) + pos_ne[masked_bm]
        # Attention is permutation-equivariant and positions are in the tokens, so the hidden
        # tokens can simply follow the visible ones.
        x_bne = jnp.concatenate([vis_bke, hidden_bme], axis=1)
        for block in self.blocks:
            x_bne = block(x_bne)
        out_bme = self.norm(x_bne[:, visible_bk.shape[1]:])
        pred_bmp = jnp.einsum("bme,ep->bmp", out_bme, self.w_ep_out[...].astype(dt))
        return (pred_bmp + self.bias_p[...].astype(dt)).astype(jnp.float32)


class DatacubeViT(nnx.Module):
    """Datacube ``[b, v, t, l, y, x]`` -> float32 ``embedding [b, d]`` (and ``regression
    [b, num_targets]`` when ``num_targets``); :meth:`masked` for the pretraining objective
    (see the module docstring)."""

    def __init__(self, cfg: DatacubeConfig, in_channels: int, grid: tuple[int, int, int],
                 num_targets: int, *, rngs: nnx.Rngs):
        _check_config(cfg, grid)
        d, s = cfg.d_model, cfg.stem_channels
        dt, pdt = to_dtype(cfg.dtype), to_dtype(cfg.param_dtype)
        self.dtype, self.in_channels, self.d_model = dt, in_channels, d
        self.grid, self.patch = tuple(grid), tuple(cfg.patch_size)
        # Downsample only along axes whose patch halves exactly (odd extents stay full res).
        self.stride = tuple(2 if p % 2 == 0 else 1 for p in self.patch)
        self.half_patch = tuple(p // st for p, st in zip(self.patch, self.stride, strict=True))
        self.token_shape = token_grid(self.grid, self.patch)
        self.num_tokens = math.prod(self.token_shape)
        self.tubelet_size = math.prod(self.patch) * in_channels  # cells of one tubelet
        self.position_embedding = cfg.position_embedding
        self.num_visible = (num_visible(self.num_tokens, cfg.mask_ratio)
                            if "masked" in cfg.objective else self.num_tokens)

        conv = dict(padding="VALID", dtype=dt, param_dtype=pdt, rngs=rngs)
        # Stem convolutions are small (kernels of a few thousand numbers): replicated.
        self.conv_full = nnx.Conv(in_channels, s, (3, 3, 3), **conv)
        self.conv_half = StridedConv(s, 2 * s, self.stride, dtype=dt, param_dtype=pdt, rngs=rngs)
        full_in, half_in = math.prod(self.patch) * s, math.prod(self.half_patch) * 2 * s
        tub = dict(dtype=dt, param_dtype=pdt, rngs=rngs)
        self.tubelet_full = Dense(full_in, d, (None, "embed"), kernel_init=fan_in_init(full_in),
                                  **tub)
        # One bias for the summed projections.
        self.tubelet_half = Dense(half_in, d, (None, "embed"), use_bias=False,
                                  kernel_init=fan_in_init(half_in), **tub)
        if cfg.position_embedding == "learned":
            pos_init = nnx.initializers.normal(0.02)
            self.pos_t_d, self.pos_y_d, self.pos_x_d = (
                param(rngs, pos_init, (None, "embed"), (n, d), pdt) for n in self.token_shape)
        self.blocks = nnx.List([
            encoder_block(d, cfg.num_heads, cfg.mlp_dim, impl=cfg.attention_impl, dtype=dt,
                          param_dtype=pdt, rngs=rngs) for _ in range(cfg.num_layers)])
        self.encoder_norm = RMSNorm(d, eps=_NORM_EPS, dtype=jnp.float32, param_dtype=pdt,
                                    rngs=rngs)
        self.regression_head = nnx.data(
            Dense(d, num_targets, ("embed", None), kernel_init=fan_in_init(d),
                  dtype=jnp.float32, param_dtype=pdt, rngs=rngs) if num_targets else None)
        self.decoder = nnx.data(MaskedDecoder(cfg, self.token_shape, self.tubelet_size,
                                              rngs=rngs)
                                if "masked" in cfg.objective else None)

    def _check_input(self, x_bvtlyx: jax.Array) -> None:
        if x_bvtlyx.ndim != 6:
            raise ValueError(f"datacube must be [batch, var, time, level, lat, lon]; got shape "
                             f"{x_bvtlyx.shape}")
        _, v, t, lev, y, x = x_bvtlyx.shape
        if v * lev != self.in_channels or (t, y, x) != self.grid:
            raise ValueError(f"datacube shape {x_bvtlyx.shape} does not fit the model: expected "
                             f"variables * levels = {self.in_channels} and (time, lat, lon) = "
                             f"{self.grid}")

    def patchify(self, x_bvtlyx: jax.Array) -> jax.Array:
        """The cube's tubelets ``[b, n, p]``, tokens in time-major order, each tubelet's cells in
        (time, lat, lon, channel) order: the pixels the decoder reconstructs."""
        self._check_input(x_bvtlyx)
        b, v, t, lev, y, x = x_bvtlyx.shape
        x_btyxc = jnp.transpose(x_bvtlyx, (0, 2, 4, 5, 1, 3)).reshape(b, t, y, x, v * lev)
        pads = tuple((0, n * p - g) for n, p, g in zip(self.token_shape, self.patch, self.grid,
                                                      strict=True))
        tok = tubelets(_pad_edge(x_btyxc, pads), self.patch)
        return tok.reshape(b, self.num_tokens, self.tubelet_size)

    def embed_tubelets(self, tub_bkp: jax.Array) -> jax.Array:
        """The two-resolution stem on each tubelet by itself: ``[b, k, p]`` -> ``[b, k, d]``
        (before position embeddings)."""
        b, k, _ = tub_bkp.shape
        x_ntyxc = tub_bkp.astype(self.dtype).reshape(b * k, *self.patch, self.in_channels)
        with jax.named_scope("stem_full"):
            f_ntyxc = jax.nn.gelu(self.conv_full(_pad_edge(x_ntyxc, ((1, 1),) * 3)))
        with jax.named_scope("stem_half"):
            g_ntyxc = jax.nn.gelu(self.conv_half(_pad_edge(f_ntyxc, ((1, 1),) * 3)))
        with jax.named_scope("tubelets"):
            tok_nd = (self.tubelet_full(f_ntyxc.reshape(b * k, -1))
                      + self.tubelet_half(g_ntyxc.reshape(b * k, -1)))
        return tok_nd.reshape(b, k, -1)

    def position_embeddings(self) -> jax.Array:
        """``[n, d]`` float32, in the token order of :meth:`patchify`."""
        if self.position_embedding == "sinusoidal":
            return jnp.asarray(sinusoid_3d(self.token_shape, self.d_model))
        pos_tyxd = (self.pos_t_d[...][:, None, None] + self.pos_y_d[...][None, :, None]
                    + self.pos_x_d[...][None, None, :])
        return pos_tyxd.reshape(-1, pos_tyxd.shape[-1]).astype(jnp.float32)

    def encode(self, tub_bnp: jax.Array, visible_bk: jax.Array | None = None) -> jax.Array:
        """Encoder output tokens ``[b, k, d]`` (float32, normed) of the tubelets ``visible_bk``
        (default: all). Hidden tubelets are dropped before the stem, so nothing of them reaches
        the output."""
        pos_nd = self.position_embeddings().astype(self.dtype)
        if visible_bk is None:
            tok_bkp, pos_bkd = tub_bnp, pos_nd[None]
        else:
            tok_bkp, pos_bkd = _gather_tokens(tub_bnp, visible_bk), pos_nd[visible_bk]
        x_bkd = self.embed_tubelets(tok_bkp)
        with jax.named_scope("position_embedding"):
            x_bkd = x_bkd + pos_bkd
        for i, block in enumerate(self.blocks):
            with jax.named_scope(f"block_{i}"):
                x_bkd = block(x_bkd)
        return self.encoder_norm(x_bkd)

    def _heads(self, tokens_bkd: jax.Array) -> dict[str, jax.Array]:
        embedding_bd = jnp.mean(tokens_bkd, axis=1)
        out = {"embedding": embedding_bd}
        if self.regression_head is not None:
            out["regression"] = self.regression_head(embedding_bd)
        return out

    def __call__(self, x_bvtlyx: jax.Array) -> dict[str, jax.Array]:
        """Every tubelet visible: the planet embedding and, with targets, the regression."""
        return self._heads(self.encode(self.patchify(x_bvtlyx)))

    def masked(self, x_bvtlyx: jax.Array, key: jax.Array) -> dict[str, jax.Array]:
        """The pretraining forward pass under a random mask drawn from ``key``: the outputs of
        ``__call__`` computed from the visible tubelets only, plus ``reconstruction [b, m, p]``
        of the hidden tubelets and their true cells ``hidden_cells [b, m, p]``."""
        if self.decoder is None:
            raise ValueError("this DatacubeViT was built without a decoder: its objective has "
                             "no masked-tubelet reconstruction")
        tub_bnp = self.patchify(x_bvtlyx)
        visible_bk, masked_bm = tubelet_masks(key, tub_bnp.shape[0], self.num_tokens,
                                              self.num_visible)
        tokens_bkd = self.encode(tub_bnp, visible_bk)
        with jax.named_scope("decoder"):
            reconstruction = self.decoder(tokens_bkd, visible_bk, masked_bm)
        return dict(self._heads(tokens_bkd), reconstruction=reconstruction,
                    hidden_cells=_gather_tokens(tub_bnp, masked_bm).astype(jnp.float32))


def _check_config(cfg: DatacubeConfig, grid: tuple[int, int, int]) -> None:
    if cfg.position_embedding not in POSITION_EMBEDDINGS:
        raise ConfigError("model.position_embedding",
                          f"unknown value {cfg.position_embedding!r}; expected one of "
                          f"{', '.join(POSITION_EMBEDDINGS)}")
    if len(cfg.patch_size) != 3 or any(int(p) < 1 for p in cfg.patch_size):
        raise ConfigError("model.patch_size",
                          f"expected three positive (time, lat, lon) extents, got {cfg.patch_size}")
    if len(grid) != 3 or any(int(g) < 1 for g in grid):
        raise ValueError(f"grid must be three positive (time, lat, lon) sizes, got {grid}")
    if cfg.d_model % cfg.num_heads:
        raise ConfigError("model.num_heads",
                          f"{cfg.num_heads} does not divide d_model={cfg.d_model}")
    if cfg.d_model % 2 or cfg.d_model < 6:
        raise ConfigError("model.d_model", f"must be even and >= 6 (three sinusoid parts), "
                          f"got {cfg.d_model}")
    if "masked" in cfg.objective:
        if math.prod(token_grid(grid, cfg.patch_size)) < 2:
            raise ConfigError("model.patch_size", f"{cfg.patch_size} makes a single token of "
                              f"the grid {grid}: nothing to mask")
        if cfg.decoder_dim % cfg.decoder_heads or cfg.decoder_dim < 6:
            raise ConfigError("model.decoder_dim", f"{cfg.decoder_dim} must be >= 6 and "
                              f"divisible by decoder_heads={cfg.decoder_heads}")


# ----------------------------------------------------------------------------------------------
# Losses and evaluation statistics


def datacube_losses(outputs: dict[str, jax.Array], targets: jax.Array, target_mask: jax.Array,
                    cfg: DatacubeConfig):
    """The objective's loss from model outputs -> ``(loss, metrics)``.

    ``reconstruction``/``hidden_cells`` (when present): mean squared error over the hidden
    tubelets' cells, weighted by ``reconstruction_weight``. ``regression`` (when present):
    masked MSE of the standardized ``targets`` ``[b, r]`` (masked entries may hold anything,
    NaN included), weighted by ``regression_weight``. Besides the batch means, ``metrics`` holds
    the reconstruction's additive statistics ``reconstruction_sse`` and
    ``reconstruction_count`` (the regression's R² statistics are
    :func:`astrojax.evaluators.metrics.r2_sums`).
    """
    loss = jnp.zeros((), jnp.float32)
    metrics = {}
    if "reconstruction" in outputs:
        err2 = (outputs["reconstruction"] - outputs["hidden_cells"]) ** 2
        count = jnp.asarray(err2.size, jnp.float32)
        metrics.update(reconstruction_mse=err2.mean(), reconstruction_sse=err2.sum(),
                       reconstruction_count=count)
        loss = loss + cfg.reconstruction_weight * err2.mean()
    if "regression" in outputs:
        pred_br = outputs["regression"].astype(jnp.float32)
        mask_br = target_mask.astype(bool)
        y_br = jnp.where(mask_br, targets.astype(jnp.float32), 0.0)
        err2_br = jnp.where(mask_br, (pred_br - y_br) ** 2, 0.0)
        mse = err2_br.sum() / jnp.maximum(mask_br.sum().astype(jnp.float32), 1.0)
        metrics.update(mse=mse)
        loss = loss + cfg.regression_weight * mse
    return loss, dict(metrics, loss=loss)
