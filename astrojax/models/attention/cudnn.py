"""cuDNN fused attention through ``jax.nn.dot_product_attention(implementation="cudnn")``, with
our options (causal, windows, segment ids, zero rows for queries that see nothing) mapped
onto it.

Mapping (``jax.nn.dot_product_attention`` as of jax 0.10/0.11):
- ``causal`` -> ``is_causal`` (top-left aligned, as ours).
- ``window=(left, 0)`` (causal or not: they are the same mask) -> ``is_causal=True`` and
  ``local_window_size=(left, 0)``, which cuDNN runs as a sliding window. Always with
  ``is_causal=True``: jax passes cuDNN only the left bound, so ``(left, 0)`` with
  ``is_causal=False`` silently attends to the whole future (jax-ml/jax#39576). A window with
  ``right > 0`` without ``causal`` is not expressible that way (jax raises for it), so it
  becomes part of a boolean ``mask``.
- ``segment_ids`` that only express padding (each row: one non-zero id on a prefix of q and
  of kv, then zeros) -> ``query_seq_lengths`` / ``key_value_seq_lengths``. This needs the ids'
  values, so it applies only when they are concrete (eager calls); under ``jit`` any segment
  ids become a boolean ``mask`` ``[batch, 1, q_len, kv_len]``, which cuDNN takes as an additive
  bias: correct for arbitrary segments, but O(q_len * kv_len) memory for the bias (and its
  gradient) instead of O(len). The mask path pads both lengths to even, as cuDNN's backward
  with a bias requires.
- Queries that see no key get zeros (cuDNN would spread them uniformly over masked keys), so
  their gradients are zero too.

Raises ``UnsupportedOption`` (before calling cuDNN) off an NVIDIA GPU backend, for dtypes
other than bfloat16/float16 (no silent cast: cast yourself, or use ``impl="pallas"`` for
float32) and for head_dim above 256 or not a multiple of 8. cuDNN itself may still reject
a shape for this GPU (e.g. head_dim > 128 before Hopper) with jax's ``NotImplementedError``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from astrojax.models.attention.reference import (
    UnsupportedOption,
    Window,
    check_inputs,
    check_window,
    full_mask,
)

_DTYPES = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
_MAX_HEAD_DIM = 256


def check_supported(q, k, v, *, backend: str | None = None) -> None:
    """Raises ``UnsupportedOption`` for inputs the cuDNN path cannot take on ``backend``."""
    backend = backend or jax.default_backend()
    if backend not in ("gpu", "cuda"):
        raise UnsupportedOption("cudnn", f"backend <{backend}>",
                                "cuDNN attention needs an NVIDIA GPU")
    dtypes = {jnp.dtype(x.dtype) for x in (q, k, v)}
    if len(dtypes) != 1 or not dtypes <= set(_DTYPES):
        names = ", ".join(sorted(d.name for d in dtypes))
        raise UnsupportedOption("cudnn", f"dtype {names}",
                                "cuDNN fused attention takes bfloat16 or float16 q, k, v (one "
                                "dtype); cast them yourself or use impl='pallas' for float32")
    h = q.shape[-1]
    if h > _MAX_HEAD_DIM or h % 8:
        raise UnsupportedOption("cudnn", f"head_dim={h}",
                                f"cuDNN needs head_dim <= {_MAX_HEAD_DIM} and a multiple of 8")


def padding_lengths(q_segment_ids, kv_segment_ids):
    """``(q_lengths, kv_lengths)`` int32 ``[batch]`` when the ids are concrete and only mark
    padding (per row: one non-zero id on a non-empty prefix of q and of kv, zeros after);
    otherwise None."""
    try:
        q_ids, kv_ids = np.asarray(q_segment_ids), np.asarray(kv_segment_ids)
    except jax.errors.TracerArrayConversionError:
        return None  # traced (under jit): the values are unknown
    q_len, kv_len = (q_ids != 0).sum(axis=1), (kv_ids != 0).sum(axis=1)
    first = q_ids[:, :1]
    q_ok = q_ids == np.where(np.arange(q_ids.shape[1]) < q_len[:, None], first, 0)
    kv_ok = kv_ids == np.where(np.arange(kv_ids.shape[1]) < kv_len[:, None], first, 0)
    if not (q_ok.all() and kv_ok.all() and (q_len > 0).all() and (kv_len > 0).all()):
        return None
    return jnp.asarray(q_len, jnp.int32), jnp.asarray(kv_len, jnp.int32)


def _seen_by_position(q_len, kv_len, q_lengths, kv_lengths, *, causal: bool,
                      window: Window):
    """``[batch or 1, q_len]`` bool: query i sees some key, from positions and lengths only."""
    i = jnp.arange(q_len)[None, :]
    q_lengths = jnp.full((1, 1), q_len) if q_lengths is None else q_lengths[:, None]
    kv_lengths = jnp.full((1, 1), kv_len) if kv_lengths is None else kv_lengths[:, None]
    lo = jnp.zeros_like(i) if window is None else jnp.maximum(i - window[0], 0)
    hi = kv_lengths - 1
    if causal:
        hi = jnp.minimum(hi, i)
    if window is not None:
        hi = jnp.minimum(hi, i + window[1])
    return (i < q_lengths) & (lo <= hi)


def _pad_len(x, axis: int, size: int):
    if x.shape[axis] == size:
        return x
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, size - x.shape[axis])
    return jnp.pad(x, widths)


def mapped_dot_product_attention(q, k, v, *, causal: bool = False, window: Window = None,
                                 q_segment_ids=None, kv_segment_ids=None,
                                 scale: float | None = None, implementation: str = "cudnn"):
    """Our options mapped onto ``jax.nn.dot_product_attention(implementation=...)`` (see the
    module docstring). ``implementation="xla"`` runs the same mapping on any backend, which is
    how the mapping is tested without a GPU."""
    check_inputs(q, k, v)
    window = check_window(window)
    if (q_segment_ids is None) != (kv_segment_ids is None):
        raise ValueError("pass both q_segment_ids and kv_segment_ids, or neither")
    t, s = q.shape[1], k.shape[1]
    is_causal, local_window, mask_window = bool(causal), None, None
    if window is not None:
        if causal or window[1] == 0:
            is_causal, local_window = True, (window[0], 0)
        else:
            mask_window = window
    lengths = None
    if q_segment_ids is not None:
        lengths = padding_lengths(q_segment_ids, kv_segment_ids)
    if (q_segment_ids is not None and lengths is None) or mask_window is not None:
        # Boolean mask path: visibility from segments and the two-sided window; causal and a
        # left window stay with cuDNN. Pad to even lengths (cuDNN's bias backward needs them);
        # padded queries and keys are masked out.
        q_ids, kv_ids = q_segment_ids, kv_segment_ids
        if q_ids is None:
            q_ids, kv_ids = jnp.ones((q.shape[0], t), jnp.int32), jnp.ones(k.shape[:2], jnp.int32)
        t_even, s_even = t + t % 2, s + s % 2
        mask_bts = full_mask(t_even, s_even, causal=False, window=mask_window,
                             q_segment_ids=_pad_len(q_ids, 1, t_even),
                             kv_segment_ids=_pad_len(kv_ids, 1, s_even))
        q_e, k_e, v_e = _pad_len(q, 1, t_even), _pad_len(k, 1, s_even), _pad_len(v, 1, s_even)
        out = jax.nn.dot_product_attention(
            q_e, k_e, v_e, mask=mask_bts[:, None], scale=scale, is_causal=is_causal,
            local_window_size=local_window, implementation=implementation)[:, :t]
        visible = mask_bts[:, :t, :s] & full_mask(t, s, causal=is_causal, window=local_window,
                                                  q_segment_ids=None, kv_segment_ids=None)
        seen_bt = jnp.any(visible, axis=-1)
    else:
        q_lengths, kv_lengths = lengths if lengths is not None else (None, None)
        out = jax.nn.dot_product_attention(
            q, k, v, scale=scale, is_causal=is_causal, local_window_size=local_window,
            query_seq_lengths=q_lengths, key_value_seq_lengths=kv_lengths,
            implementation=implementation)
        seen_bt = _seen_by_position(t, s, q_lengths, kv_lengths, causal=is_causal,
                                    window=local_window)
    return jnp.where(seen_bt[:, :, None, None], out, jnp.zeros((), out.dtype))


def cudnn_attention(q, k, v, *, causal: bool = False, window: Window = None,
                    q_segment_ids=None, kv_segment_ids=None,
                    scale: float | None = None) -> jax.Array:
    """cuDNN flash attention; same contract as ``xla_attention`` (16-bit inputs, NVIDIA GPU)."""
    check_inputs(q, k, v)
    check_supported(q, k, v)
    return mapped_dot_product_attention(q, k, v, causal=causal, window=window,
                                        q_segment_ids=q_segment_ids,
                                        kv_segment_ids=kv_segment_ids, scale=scale,
                                        implementation="cudnn")


__all__ = ["check_supported", "cudnn_attention", "mapped_dot_product_attention",
           "padding_lengths"]
