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
flash kernel; interpret mode off GPU), ``blockwise`` (memory-efficient pure JAX), ``chunked``
(query chunks against only the keys they see; the CPU kernel), ``ring`` (sequence sharded over
the mesh's ``context`` axis), and ``auto``, which picks from the times that
benchmarks/attention.py measured on this backend (``auto_table.json`` beside this file).
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import math
from collections.abc import Callable
from pathlib import Path

import jax

from astrojax import sharding
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
    "chunked": ("astrojax.models.attention.chunked", "chunked_attention"),
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


# The XLA reference holds [batch, heads, q_len, kv_len] float32 scores, the chunked kernel a
# chunk's share of them: fine while small.
_XLA_SCORE_BYTES = 256 * 1024 * 1024
# Written by benchmarks/attention.py: per backend, measured times of every impl at each shape.
AUTO_TABLE = Path(__file__).with_name("auto_table.json")
_CANDIDATES = ("xla", "chunked", "blockwise", "cudnn", "pallas")


@functools.cache
def auto_table() -> dict:
    """The measured table ``auto`` consults (``{}`` when the file is absent)."""
    if not AUTO_TABLE.exists():
        return {}
    try:
        return json.loads(AUTO_TABLE.read_text())
    except ValueError as err:
        raise ValueError(f"{AUTO_TABLE} is not valid JSON ({err}); rerun "
                         "benchmarks/attention.py or restore the file") from err


def _score_mb(q, k, impl: str, causal: bool, window) -> float:
    """MB of float32 scores the O(len^2)-memory impls hold at once (0 for the others)."""
    b, t, n, _ = q.shape
    s = k.shape[1]
    if impl == "xla":
        return 4 * b * n * t * s / 2**20
    if impl == "chunked":
        from astrojax.models.attention.chunked import default_chunk

        return 4 * b * n * min(default_chunk(t, causal, window), t) * s / 2**20
    return 0.0


def _measured_choice(q, k, *, causal, window, backend, allowed=_CANDIDATES,
                     mode: str = "fwd+bwd") -> tuple[str, str] | None:
    """The fastest impl measured at the nearest benchmarked shape (``mode`` rows: ``fwd+bwd``
    or ``fwd``; same causality, same dtype where the table has it), among those that keep
    their scores within 256 MB; None when the table has nothing for ``backend``."""
    entries = auto_table().get(backend, {}).get("entries", [])
    banded = causal or window is not None  # a window skips blocks like causal does
    rows = [e for e in entries if e["causal"] == banded and e["mode"] == mode]
    same_dtype = [e for e in rows if e["dtype"] == q.dtype.name]
    rows = same_dtype or rows
    if not rows:
        return None
    t, h = max(q.shape[1], k.shape[1]), q.shape[-1]
    entry = min(rows, key=lambda e: (abs(math.log2(e["seq_len"] / t)),
                                     abs(math.log2(e["head_dim"] / h)), -e["seq_len"]))
    times = entry["times_ms"]
    fits = {impl: ms for impl, ms in times.items() if impl in allowed
            and _score_mb(q, k, impl, causal, window) <= _XLA_SCORE_BYTES / 2**20}
    if not fits:
        return None
    impl = min(fits, key=fits.get)
    others = ", ".join(f"{name} {ms:.1f}" for name, ms in sorted(times.items(),
                                                                  key=lambda kv: kv[1]))
    what = "forward + backward" if mode == "fwd+bwd" else "forward"
    return impl, (f"fastest measured {what} at the nearest benchmarked shape "
                  f"(len {entry['seq_len']}, head_dim {entry['head_dim']}, {entry['dtype']}, "
                  f"causal={entry['causal']}; ms: {others})")


def choose_impl(q, k, *, causal: bool = False, window: tuple[int, int] | None = None,
                segment_ids=None, backend: str | None = None, mode: str = "fwd+bwd") -> str:
    """The kernel ``auto`` runs for this call on ``backend`` (for training, or ``mode="fwd"``
    when it is not differentiated): the only place this is decided. :func:`explain_choice`
    gives the reason with it."""
    return explain_choice(q, k, causal=causal, window=window, segment_ids=segment_ids,
                          backend=backend, mode=mode)[0]


def explain_choice(q, k, *, causal: bool = False, window: tuple[int, int] | None = None,
                   segment_ids=None, backend: str | None = None,
                   mode: str = "fwd+bwd") -> tuple[str, str]:
    """``(impl, reason)`` for ``impl="auto"``, for training (``mode="fwd+bwd"``) or for a
    call that is not differentiated (``mode="fwd"``; :func:`attention` runs this one's forward
    and the other's forward and backward under a gradient). Never an O(q_len * kv_len)-memory
    path when an O(len) one supports the call, except the XLA reference while its scores are
    small:

    - The current mesh splits the sequence (the ``sequence`` rule's axis > 1): ``ring``.
    - GPU: the fastest measured impl (as below) among those that take the call; without a GPU
      table, cuDNN's fused kernel for 16-bit inputs with head_dim <= 128, a multiple of 8, and
      no option that cuDNN can only take as a dense ``[b, 1, T, T]`` mask (segment ids under
      jit, a two-sided window without causal); our Pallas kernel otherwise, which handles
      those in O(T) memory.
    - CPU and others: the impl that ran forward + backward fastest at the nearest shape in
      ``auto_table.json`` (written by benchmarks/attention.py on that backend) among those whose
      scores fit in 256 MB; without a table, the XLA reference while its float32 scores fit in
      256 MB, blockwise beyond.
    """
    backend = backend or jax.default_backend()
    context = _sequence_shards()
    if context > 1 and q.shape[1] == k.shape[1]:
        return "ring", f"the mesh splits the sequence {context} ways"
    if backend in ("gpu", "cuda", "rocm"):
        impl, reason = _gpu_rule(q, causal=causal, window=window, segment_ids=segment_ids)
        allowed = ("pallas", "blockwise", "chunked", "xla") + (("cudnn",) if impl == "cudnn"
                                                               else ())
        return _measured_choice(q, k, causal=causal, window=window, backend=backend,
                                allowed=allowed, mode=mode) or (impl, reason)
    measured = _measured_choice(q, k, causal=causal, window=window, backend=backend, mode=mode)
    if measured is not None:
        return measured
    score_bytes = 4 * q.shape[0] * q.shape[2] * q.shape[1] * k.shape[1]
    if score_bytes <= _XLA_SCORE_BYTES:
        return "xla", f"scores take {score_bytes / 2**20:.1f} MB (<= 256 MB)"
    return "blockwise", f"scores would take {score_bytes / 2**20:.0f} MB (> 256 MB)"


def _gpu_rule(q, *, causal, window, segment_ids) -> tuple[str, str]:
    """cuDNN where it takes the call natively, our Pallas kernel otherwise."""
    h = q.shape[-1]
    if q.dtype.itemsize != 2:
        return "pallas", f"{q.dtype} inputs (cuDNN takes 16-bit only)"
    if h > 128 or h % 8:
        return "pallas", f"head_dim={h} (cuDNN here: <= 128, a multiple of 8)"
    if segment_ids is not None:
        return "pallas", "segment ids: cuDNN would need a dense [b, 1, T, T] mask, Pallas is O(T)"
    if window is not None and not causal and window[1] > 0:
        return "pallas", "two-sided window: cuDNN would need a dense [b, 1, T, T] mask"
    return "cudnn", "16-bit inputs cuDNN supports natively"


def _sequence_shards() -> int:
    """How many ways the current mesh splits the ``sequence`` logical axis (1 without a mesh)."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return 1
    shape = dict(mesh.shape)
    return math.prod(shape.get(axis, 1) for axis in sharding.mesh_axes("sequence"))


def attention(q, k, v, *, impl: str = "auto", causal: bool = False,
              window: tuple[int, int] | None = None, segment_ids=None,
              scale: float | None = None) -> jax.Array:
    """Grouped-query dot-product attention through the kernel named by ``impl``."""
    check_inputs(q, k, v)
    window = check_window(window)
    q_ids, kv_ids = normalize_segment_ids(segment_ids, q.shape[1], k.shape[1])
    options = dict(causal=causal, window=window, scale=scale)
    if impl != "auto":
        return get_impl(impl)(q, k, v, q_segment_ids=q_ids, kv_segment_ids=kv_ids, **options)
    choices = {mode: explain_choice(q, k, causal=causal, window=window, segment_ids=q_ids,
                                    mode=mode) for mode in ("fwd+bwd", "fwd")}
    for mode, (name, reason) in choices.items():
        key = (name, mode, q.shape, k.shape, str(q.dtype), q_ids is not None, window)
        if key not in _logged_choices:
            _logged_choices.add(key)
            log.info("attention impl auto -> %s (%s) for q%s k%s %s on %s: %s", name, mode,
                     q.shape, k.shape, q.dtype, jax.default_backend(), reason)
    train, forward = choices["fwd+bwd"][0], choices["fwd"][0]
    if train == forward:
        return get_impl(train)(q, k, v, q_segment_ids=q_ids, kv_segment_ids=kv_ids, **options)
    return _by_pass(get_impl(forward), get_impl(train), options, q, k, v, q_ids, kv_ids)


def _by_pass(forward_fn, train_fn, options, q, k, v, q_ids, kv_ids):
    """``forward_fn``'s output where the call is not differentiated; ``train_fn``'s forward and
    backward under a gradient (both compute the same function)."""

    @jax.custom_vjp
    def run(q, k, v, q_ids, kv_ids):
        return forward_fn(q, k, v, q_segment_ids=q_ids, kv_segment_ids=kv_ids, **options)

    def run_fwd(q, k, v, q_ids, kv_ids):
        return jax.vjp(lambda q, k, v: train_fn(q, k, v, q_segment_ids=q_ids,
                                                kv_segment_ids=kv_ids, **options), q, k, v)

    def run_bwd(vjp, d_out):
        return (*vjp(d_out), None, None)

    run.defvjp(run_fwd, run_bwd)
    return run(q, k, v, q_ids, kv_ids)


__all__ = ["AUTO_TABLE", "IMPLS", "UnsupportedOption", "attention", "auto_table", "choose_impl",
           "explain_choice", "get_impl"]
