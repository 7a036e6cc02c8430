"""Attention kernels behind one call, and the one place that picks a kernel for ``impl="auto"``.

``attention(q, k, v, *, impl="auto", causal=False, window=None, segment_ids=None, scale=None)``
takes ``q: [batch, q_len, num_heads, head_dim]`` and ``k, v: [batch, kv_len, num_kv_heads,
head_dim]`` (num_kv_heads divides num_heads) and returns ``[batch, q_len, num_heads, head_dim]``.

- ``causal``: key j is seen by query i when j <= i (top-left aligned, as
  ``jax.nn.dot_product_attention``).
- ``window=(left, right)``: key j is seen by query i when i - left <= j <= i + right
  (``local_window_size``); with causal use ``(left, 0)``.
- ``segment_ids``: ``[batch, len]`` ints (or a ``(q_ids, kv_ids)`` pair when the lengths differ);
  queries only see keys of their own segment, and id 0 is padding. A query that sees no key
  returns zeros.

Implementations (``impl``): ``xla`` (the float32 reference), ``cudnn`` (GPU), ``pallas`` (our
flash kernel; interpret mode off GPU), ``blockwise`` (memory-efficient pure JAX), ``ring``
(sequence sharded over the mesh's ``context`` axis), and ``auto``.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable

import jax

from astrojax.models.attention.reference import (
    UnsupportedOption,
    check_inputs,
    check_window,
    normalize_segment_ids,
)

log = logging.getLogger(__name__)

# name -> (module, function). Imported on first use so a missing backend costs nothing.
_IMPLS: dict[str, tuple[str, str]] = {
    "xla": ("astrojax.models.attention.reference", "xla_attention"),
    "cudnn": ("astrojax.models.attention.cudnn", "cudnn_attention"),
    "pallas": ("astrojax.models.attention.pallas", "pallas_attention"),
    "blockwise": ("astrojax.models.attention.blockwise", "blockwise_attention"),
    "ring": ("astrojax.models.attention.ring", "ring_attention"),
}
IMPLS = ("auto", *_IMPLS)
_logged_choices: set = set()


def get_impl(name: str) -> Callable:
    """The kernel function registered as ``name``."""
    if name not in _IMPLS:
        raise ValueError(f"unknown attention impl {name!r}; expected one of {', '.join(IMPLS)}")
    module, function = _IMPLS[name]
    return getattr(importlib.import_module(module), function)


def choose_impl(q, k, *, backend: str | None = None) -> str:
    """The kernel ``auto`` runs for these inputs on ``backend``: the only place this is decided.

    GPU: cuDNN's fused kernel for 16-bit inputs with head_dim <= 128 (what it supports), our
    Pallas kernel otherwise. CPU and others: the XLA reference while the score matrix is small,
    blockwise beyond (the reference's memory grows with q_len * kv_len).
    """
    backend = backend or jax.default_backend()
    if backend in ("gpu", "cuda", "rocm"):
        if q.dtype.itemsize == 2 and q.shape[-1] <= 128 and q.shape[-1] % 8 == 0:
            return "cudnn"
        return "pallas"
    scores = q.shape[0] * q.shape[2] * q.shape[1] * k.shape[1]
    return "xla" if scores <= 64 * 1024 * 1024 else "blockwise"


def attention(q, k, v, *, impl: str = "auto", causal: bool = False,
              window: tuple[int, int] | None = None, segment_ids=None,
              scale: float | None = None) -> jax.Array:
    """Grouped-query dot-product attention through the kernel named by ``impl``."""
    check_inputs(q, k, v)
    window = check_window(window)
    q_ids, kv_ids = normalize_segment_ids(segment_ids, q.shape[1], k.shape[1])
    if impl == "auto":
        impl = choose_impl(q, k)
        key = (impl, q.shape, k.shape, str(q.dtype))
        if key not in _logged_choices:
            _logged_choices.add(key)
            log.info("attention impl auto -> %s for q%s k%s %s on %s", impl, q.shape, k.shape,
                     q.dtype, jax.default_backend())
    return get_impl(impl)(q, k, v, causal=causal, window=window, q_segment_ids=q_ids,
                          kv_segment_ids=kv_ids, scale=scale)


__all__ = ["IMPLS", "UnsupportedOption", "attention", "choose_impl", "get_impl"]
