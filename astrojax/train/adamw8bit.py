"""8-bit AdamW: both moments kept as 8-bit codes with blockwise dynamic quantization, as an optax
GradientTransformation that shards like the parameters.

This follows bitsandbytes' ``Adam8bit`` (Dettmers et al. 2022, "8-bit Optimizers via Block-wise
Quantization"): each moment is split into blocks, each block is divided by its absolute maximum
(a float32 scale per block) and every value is stored as the index of the nearest entry of a
256-entry *dynamic* map (an exponent and a fraction, dense near zero); the first moment uses the
signed map, the second the unsigned one. A step dequantizes, updates in float32, computes the
Adam update from the float32 moments and quantizes them again for storage.

Two choices differ in form, not in kind, from bitsandbytes' flat 2048-element blocks: here
blocks run along a parameter's *trailing* axes (the last one, and those before it while their
product fits in ``block_size``; :func:`block_axes`), and the codes keep the parameter's own
shape. So the codes take the parameter's sharding unchanged, the scales (shape
``param.shape[:-m] + (n_blocks,)``) take it on the leading axes, and no block straddles shards
of those axes. Like bitsandbytes, parameters with fewer than
``min_8bit_size`` elements keep float32 moments, and so do those ``fp32_mask`` selects (the token
embedding: bitsandbytes' StableEmbedding keeps its optimizer state in 32 bits).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec


def dynamic_map(signed: bool, max_exponent_bits: int = 7, total_bits: int = 8) -> np.ndarray:
    """bitsandbytes' dynamic quantization map (``create_dynamic_map``): 256 sorted float32
    values in [-1, 1] (signed) or [0, 1] (unsigned). Each decade 10^-6 ... 10^0 gets twice the
    fraction values of the one below it, so small magnitudes keep their relative precision."""
    non_sign_bits = total_bits - 1
    data: list[float] = []
    for i in range(max_exponent_bits):
        items = 2 ** (i + non_sign_bits - max_exponent_bits + (0 if signed else 1)) + 1
        boundaries = np.linspace(0.1, 1.0, items)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        scale = 10.0 ** (-(max_exponent_bits - 1) + i)
        data += (scale * means).tolist()
        if signed:
            data += (-scale * means).tolist()
    extra = 2 ** (non_sign_bits - max_exponent_bits) - 1
    if extra > 0:
        boundaries = np.linspace(0.1, 1.0, extra + 1)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += (scale * means).tolist()
        if signed:
            data += (-scale * means).tolist()
    data += [0.0, 1.0]
    if len(data) != 2 ** total_bits:
        raise ValueError(f"dynamic map of {len(data)} values for {total_bits} bits")
    return np.sort(np.asarray(data, np.float32))


SIGNED_MAP = dynamic_map(signed=True)  # the first moment's
UNSIGNED_MAP = dynamic_map(signed=False)  # the second moment's (never negative)


class QuantizedMoment(NamedTuple):
    """One parameter's moment in 8 bits: ``codes`` (uint8, the parameter's shape) index the
    map; ``scales`` (float32, ``shape[:-1] + (n_blocks,)``) are each block's absolute maximum."""

    codes: jax.Array
    scales: jax.Array


def block_axes(shape: tuple[int, ...], block_size: int) -> int:
    """How many trailing axes of ``shape`` the blocks run along: the last one, and the ones
    before it while their product stays within ``block_size`` (a ``[d, heads, head_dim]``
    projection's blocks span heads x head_dim, not head_dim alone)."""
    m, size = 1, shape[-1]
    while m < len(shape) and size * shape[-m - 1] <= block_size:
        size *= shape[-m - 1]
        m += 1
    return m


def _blocks(x: jax.Array, m: int, block_size: int) -> jax.Array:
    """``x`` with its last ``m`` axes flattened and cut into blocks: ``[..., n_blocks, block]``
    (``block`` = ``block_size`` or the flattened size when smaller; the last block
    zero-padded)."""
    lead = x.shape[:x.ndim - m]
    x = x.reshape(*lead, -1)
    n = x.shape[-1]
    block = min(block_size, n)
    n_blocks = -(-n // block)
    if n_blocks * block != n:
        x = jnp.pad(x, [(0, 0)] * len(lead) + [(0, n_blocks * block - n)])
    return x.reshape(*lead, n_blocks, block)


def quantize(x: jax.Array, qmap: np.ndarray, block_size: int) -> QuantizedMoment:
    """``x`` (rank >= 1) as codes of the nearest ``qmap`` entry after dividing each block of
    at most ``block_size`` elements along its trailing axes (:func:`block_axes`) by the block's
    absolute maximum."""
    m = block_axes(x.shape, block_size)
    xb = _blocks(x.astype(jnp.float32), m, block_size)
    absmax = jnp.max(jnp.abs(xb), axis=-1)
    normed = xb / jnp.where(absmax > 0, absmax, 1.0)[..., None]
    table = jnp.asarray(qmap)
    hi = jnp.clip(jnp.searchsorted(table, normed), 1, table.shape[0] - 1)
    lo = hi - 1
    nearest = jnp.where(table[hi] - normed < normed - table[lo], hi, lo).astype(jnp.uint8)
    flat = nearest.reshape(*nearest.shape[:-2], -1)[..., :math.prod(x.shape[x.ndim - m:])]
    return QuantizedMoment(codes=flat.reshape(x.shape), scales=absmax)


def dequantize(q: QuantizedMoment, qmap: np.ndarray, block_size: int) -> jax.Array:
    """The float32 moment ``q`` stands for."""
    shape = q.codes.shape
    m = block_axes(shape, block_size)
    values = jnp.asarray(qmap)[_blocks(q.codes, m, block_size).astype(jnp.int32)]
    values = values * q.scales[..., None]
    flat = values.reshape(*values.shape[:-2], -1)[..., :math.prod(shape[len(shape) - m:])]
    return flat.reshape(shape)


class ScaleByAdam8bitState(NamedTuple):
    """``mu`` and ``nu`` are like the parameters: per parameter a :class:`QuantizedMoment`, or a
    float32 array for those kept in 32 bits."""

    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates


def scale_by_adam_8bit(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, *,
                       block_size: int = 2048, min_8bit_size: int = 4096,
                       fp32_mask: Any = None) -> optax.GradientTransformation:
    """Adam's scaling (``optax.scale_by_adam``) with both moments stored in 8 bits.

    ``fp32_mask``: a pytree of bools like the parameters, or a callable of the parameters
    returning one: True keeps that parameter's moments in float32 (as do parameters of rank 0
    or of fewer than ``min_8bit_size`` elements)."""

    def keeps_fp32(p, flagged) -> bool:
        return bool(flagged) or p.ndim == 0 or math.prod(p.shape) < min_8bit_size

    def init_fn(params):
        flags = fp32_mask(params) if callable(fp32_mask) else fp32_mask
        if flags is None:
            flags = jax.tree.map(lambda _: False, params)

        def zeros(p, flagged, qmap):
            if keeps_fp32(p, flagged):
                return jnp.zeros(p.shape, jnp.float32)
            return quantize(jnp.zeros(p.shape, jnp.float32), qmap, block_size)

        return ScaleByAdam8bitState(
            count=jnp.zeros([], jnp.int32),
            mu=jax.tree.map(lambda p, f: zeros(p, f, SIGNED_MAP), params, flags),
            nu=jax.tree.map(lambda p, f: zeros(p, f, UNSIGNED_MAP), params, flags))

    def update_fn(updates, state, params=None):
        del params
        count = optax.safe_increment(state.count)
        c = count.astype(jnp.float32)
        leaves, treedef = jax.tree.flatten(updates)
        mus, nus = treedef.flatten_up_to(state.mu), treedef.flatten_up_to(state.nu)
        out_u, out_mu, out_nu = [], [], []
        for g, mu, nu in zip(leaves, mus, nus, strict=True):
            quantized = isinstance(mu, QuantizedMoment)
            g32 = g.astype(jnp.float32)
            m = dequantize(mu, SIGNED_MAP, block_size) if quantized else mu
            v = dequantize(nu, UNSIGNED_MAP, block_size) if quantized else nu
            m = b1 * m + (1.0 - b1) * g32
            v = b2 * v + (1.0 - b2) * g32 * g32
            # The update reads the float32 moments; only what is kept for the next step is
            # rounded to 8 bits (as bitsandbytes' kernels do).
            u = (m / (1.0 - b1 ** c)) / (jnp.sqrt(v / (1.0 - b2 ** c)) + eps)
            out_u.append(u.astype(g.dtype))
            out_mu.append(quantize(m, SIGNED_MAP, block_size) if quantized else m)
            out_nu.append(quantize(v, UNSIGNED_MAP, block_size) if quantized else v)
        return treedef.unflatten(out_u), ScaleByAdam8bitState(
            count=count, mu=treedef.unflatten(out_mu), nu=treedef.unflatten(out_nu))

    return optax.GradientTransformation(init_fn, update_fn)


def adamw_8bit(learning_rate: optax.ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999,
               eps: float = 1e-8, weight_decay: float = 1e-4, mask: Any = None, *,
               block_size: int = 2048, min_8bit_size: int = 4096,
               fp32_mask: Any = None) -> optax.GradientTransformation:
    """``optax.adamw`` with 8-bit moments (:func:`scale_by_adam_8bit`): the same chain of
    Adam's scaling, decoupled weight decay on ``mask`` and the learning rate."""
    return optax.chain(
        scale_by_adam_8bit(b1, b2, eps, block_size=block_size, min_8bit_size=min_8bit_size,
                           fp32_mask=fp32_mask),
        optax.add_decayed_weights(weight_decay, mask),
        optax.scale_by_learning_rate(learning_rate))


def fit_sharding(sharding: NamedSharding, shape: tuple[int, ...]) -> NamedSharding:
    """``sharding`` for an array of ``shape``: each dimension keeps its mesh axes when they
    divide it, else is replicated."""
    spec = tuple(sharding.spec) + (None,) * (len(shape) - len(sharding.spec))
    fitted = []
    for size, axes in zip(shape, spec[:len(shape)], strict=True):
        names = () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)
        shards = math.prod(sharding.mesh.shape[a] for a in names)
        fitted.append(axes if names and size % shards == 0 else None)
    return NamedSharding(sharding.mesh, PartitionSpec(*fitted))


def moment_sharding(moment: Any, param_sharding: NamedSharding) -> Any:
    """The sharding of a parameter's moment (abstract or concrete) given the parameter's: the
    same for a float32 moment and the codes; for the scales, the leading axes' and, on the
    blocks axis, the mesh axes of the trailing axes the blocks run along (row-major, so a
    device's blocks are those of its own shard), each kept only where it divides."""
    if not isinstance(moment, QuantizedMoment):
        return param_sharding
    ndim = len(moment.codes.shape)
    m = ndim - len(moment.scales.shape) + 1
    spec = tuple(param_sharding.spec) + (None,) * (ndim - len(param_sharding.spec))
    merged = [a for axes in spec[ndim - m:] if axes is not None
              for a in ((axes,) if isinstance(axes, str) else axes)]
    scales = NamedSharding(param_sharding.mesh,
                           PartitionSpec(*spec[:ndim - m], tuple(merged) or None))
    return QuantizedMoment(codes=param_sharding,
                           scales=fit_sharding(scales, moment.scales.shape))


def is_moment(x: Any) -> bool:
    """For ``is_leaf``: a quantized moment is one leaf of a parameter-like tree."""
    return isinstance(x, QuantizedMoment)

