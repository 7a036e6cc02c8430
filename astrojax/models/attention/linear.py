"""Causal linear attention kernels (Katharopoulos et al., 2020); the layer is
``astrojax.models.mixers.LinearAttention``.

``out_i = phi(q_i) S_i / (phi(q_i) . z_i + eps)`` with ``S_i = sum_{j<=i} phi(k_j) v_j^T`` and
``z_i = sum_{j<=i} phi(k_j)``, over the keys of query i's own segment. Tensors are
``[batch, len, heads, head_dim]`` as in :mod:`astrojax.models.attention`; k and v may have fewer
heads than q (grouped-query: each kv head's state is shared by its group of query heads).

Segments: ``segment_ids`` ``[batch, len]`` ints, 0 = padding. The running state resets wherever
the id changes from one token to the next, so each contiguous run of equal ids (a packed
sequence) only sees its own earlier tokens. Padding tokens add nothing to the state and output
zeros. For contiguous segments this is exactly the mask of the softmax kernels
(``reference.segment_mask`` and causal); an id that reappears after a different id starts afresh.

Shapes are lettered: b batch, t time, n query heads, k kv heads, g query heads per kv head,
h key dim, v value dim, c chunk, i / j query / key position within a chunk.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

EPS = 1e-6

FEATURE_MAPS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "elu1": lambda x: jax.nn.elu(x) + 1.0,  # the paper's phi: positive, so denominators are > 0
    "relu": jax.nn.relu,
}


def feature_map_fn(name: str) -> Callable[[jax.Array], jax.Array]:
    """The feature map ``phi`` registered as ``name``; raises ValueError naming a bad one."""
    if name not in FEATURE_MAPS:
        raise ValueError(f"unknown feature_map {name!r}; expected one of {', '.join(FEATURE_MAPS)}")
    return FEATURE_MAPS[name]


def segment_starts(segment_ids_bt: jax.Array) -> jax.Array:
    """``[b, t]`` bool: True where a new segment begins (t = 0, or the id differs from t - 1)."""
    first_b1 = jnp.ones_like(segment_ids_bt[:, :1], dtype=bool)
    return jnp.concatenate([first_b1, segment_ids_bt[:, 1:] != segment_ids_bt[:, :-1]], axis=1)


def _runs_and_valid(segment_ids_bt, b: int, t: int):
    """Run index (0, 1, ... increasing at each segment start) and non-padding mask, ``[b, t]``."""
    if segment_ids_bt is None:
        return jnp.zeros((b, t), jnp.int32), jnp.ones((b, t), bool)
    if segment_ids_bt.shape != (b, t):
        raise ValueError(f"segment_ids shape {segment_ids_bt.shape} must be [batch, len] = "
                         f"{(b, t)}")
    run_bt = jnp.cumsum(segment_starts(segment_ids_bt), axis=1, dtype=jnp.int32) - 1
    return run_bt, segment_ids_bt != 0


def _check_qkv(q, k, v) -> None:
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ValueError("linear attention expects q, k, v as [batch, len, heads, head_dim]; got "
                         f"ranks {q.ndim}, {k.ndim}, {v.ndim}")
    if k.shape[:3] != v.shape[:3]:
        raise ValueError(f"k {k.shape} and v {v.shape} must agree on batch, len and heads")
    if q.shape[:2] != k.shape[:2] or q.shape[3] != k.shape[3]:
        raise ValueError(f"q {q.shape} and k {k.shape} must agree on batch, len and head_dim")
    if q.shape[2] % k.shape[2]:
        raise ValueError(f"num_kv_heads={k.shape[2]} must divide num_heads={q.shape[2]}")


def _features(q, k, v, feature_map: str, segment_ids):
    """float32 ``phi(q)`` as ``[b, t, k, g, h]``, ``phi(k)`` (zero on padding), v, runs, valid."""
    phi = feature_map_fn(feature_map)
    _check_qkv(q, k, v)
    b, t, n, h = q.shape
    kh = k.shape[2]
    run_bt, valid_bt = _runs_and_valid(segment_ids, b, t)
    fq_btkgh = phi(q.astype(jnp.float32)).reshape(b, t, kh, n // kh, h)
    fk_btkh = phi(k.astype(jnp.float32)) * valid_bt[:, :, None, None]
    return fq_btkgh, fk_btkh, v.astype(jnp.float32), run_bt, valid_bt


def linear_attention(q, k, v, *, feature_map: str = "elu1", chunk_size: int = 64,
                     segment_ids=None, eps: float = EPS) -> jax.Array:
    """Chunked-parallel causal linear attention; ``[b, t, n, v]`` in q's dtype.

    Within a chunk the masked quadratic form; across chunks a ``lax.scan`` carries the float32
    state (``[b, k, h, v]`` and normaliser ``[b, k, h]``). Any length works (padded up to a
    multiple of ``chunk_size``; a chunk never exceeds the sequence).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    fq_btkgh, fk_btkh, v_btkv, run_bt, valid_bt = _features(q, k, v, feature_map, segment_ids)
    b, t, kh, g, h = fq_btkgh.shape
    hv = v_btkv.shape[-1]
    c = min(chunk_size, t)
    nc = -(-t // c)
    pad = nc * c - t

    def chunks(x, mode="constant"):
        x = jnp.pad(x, [(0, 0), (0, pad)] + [(0, 0)] * (x.ndim - 2), mode=mode)
        return x.reshape(b, nc, c, *x.shape[2:])

    # Padded keys are zero after phi, so they add nothing; padded queries are cut off below.
    fq = chunks(fq_btkgh)
    fk = chunks(fk_btkh)
    vv = chunks(v_btkv)
    run_bci = chunks(run_bt, mode="edge")

    # Intra-chunk: causal and same run.
    causal_ij = jnp.tril(jnp.ones((c, c), bool))
    mask_bcij = causal_ij & (run_bci[..., :, None] == run_bci[..., None, :])
    scores_bckgij = jnp.einsum("bcikgh,bcjkh->bckgij", fq, fk)
    scores_bckgij = jnp.where(mask_bcij[:, :, None, None], scores_bckgij, 0.0)
    num_bcikgv = jnp.einsum("bckgij,bcjkv->bcikgv", scores_bckgij, vv)
    den_bcikg = jnp.einsum("bckgij->bcikg", scores_bckgij)

    # What each chunk adds to the state it passes on: its keys in the run of its last token.
    last_run_bc = run_bci[:, :, -1]
    prev_run_bc = jnp.concatenate([jnp.full((b, 1), -1, jnp.int32), last_run_bc[:, :-1]], axis=1)
    in_last_bcj = (run_bci == last_run_bc[..., None]).astype(jnp.float32)
    ds_bckhv = jnp.einsum("bcjkh,bcjkv,bcj->bckhv", fk, vv, in_last_bcj)
    dz_bckh = jnp.einsum("bcjkh,bcj->bckh", fk, in_last_bcj)
    # The incoming state survives the chunk only if no segment starts inside it.
    keep_bc = (last_run_bc == prev_run_bc).astype(jnp.float32)

    def carry_state(state, inputs):
        s_bkhv, z_bkh = state
        ds, dz, keep_b = inputs
        new = (keep_b[:, None, None, None] * s_bkhv + ds, keep_b[:, None, None] * z_bkh + dz)
        return new, state

    init = (jnp.zeros((b, kh, h, hv), jnp.float32), jnp.zeros((b, kh, h), jnp.float32))
    _, (s_cbkhv, z_cbkh) = jax.lax.scan(
        carry_state, init, (jnp.moveaxis(ds_bckhv, 1, 0), jnp.moveaxis(dz_bckh, 1, 0),
                            jnp.moveaxis(keep_bc, 1, 0)))

    # Inter-chunk: the incoming state reaches the queries before the chunk's first reset.
    from_prev_bci = (run_bci == prev_run_bc[..., None]).astype(jnp.float32)
    num_bcikgv += jnp.einsum("bcikgh,cbkhv,bci->bcikgv", fq, s_cbkhv, from_prev_bci)
    den_bcikg += jnp.einsum("bcikgh,cbkh,bci->bcikg", fq, z_cbkh, from_prev_bci)

    out_bcikgv = num_bcikgv / (den_bcikg[..., None] + eps)
    out_btnv = out_bcikgv.reshape(b, nc * c, kh * g, hv)[:, :t]
    return (out_btnv * valid_bt[:, :, None, None]).astype(q.dtype)


def linear_attention_reference(q, k, v, *, feature_map: str = "elu1", segment_ids=None,
                               eps: float = EPS) -> jax.Array:
    """The sequential recurrence, one token per ``lax.scan`` step: the ground truth."""
    fq_btkgh, fk_btkh, v_btkv, _, valid_bt = _features(q, k, v, feature_map, segment_ids)
    b, t, kh, g, h = fq_btkgh.shape
    hv = v_btkv.shape[-1]
    if segment_ids is None:
        keep_bt = jnp.ones((b, t), jnp.float32)
    else:
        keep_bt = 1.0 - segment_starts(segment_ids).astype(jnp.float32)

    def step(state, inputs):
        s_bkhv, z_bkh = state
        fq_bkgh, fk_bkh, v_bkv, keep_b = inputs
        s_bkhv = keep_b[:, None, None, None] * s_bkhv + fk_bkh[..., :, None] * v_bkv[..., None, :]
        z_bkh = keep_b[:, None, None] * z_bkh + fk_bkh
        num_bkgv = jnp.einsum("bkgh,bkhv->bkgv", fq_bkgh, s_bkhv)
        den_bkg = jnp.einsum("bkgh,bkh->bkg", fq_bkgh, z_bkh)
        return (s_bkhv, z_bkh), num_bkgv / (den_bkg[..., None] + eps)

    init = (jnp.zeros((b, kh, h, hv), jnp.float32), jnp.zeros((b, kh, h), jnp.float32))
    _, out_tbkgv = jax.lax.scan(step, init, tuple(jnp.moveaxis(x, 1, 0) for x in (
        fq_btkgh, fk_btkh, v_btkv, keep_bt)))
    out_btnv = jnp.moveaxis(out_tbkgv, 0, 1).reshape(b, t, kh * g, hv)
    return (out_btnv * valid_bt[:, :, None, None]).astype(q.dtype)


__all__ = ["EPS", "FEATURE_MAPS", "feature_map_fn", "linear_attention",
           "linear_attention_reference", "segment_starts"]


# ----------------------------------------------------------------------------------------------
# Recurrent form, for decoding: the state ``(s [b, k, h, v], z [b, k, h])`` in float32.


def linear_attention_state(k, v, *, feature_map: str = "elu1", segment_ids=None):
    """The state after every token of ``k``, ``v`` (``[b, t, k, h]``), padding (id 0) skipped:
    what a prompt leaves for :func:`linear_attention_step` to go on from. The prompt must be one
    run (left padding, then one segment)."""
    phi = feature_map_fn(feature_map)
    b, t = k.shape[:2]
    _, valid_bt = _runs_and_valid(segment_ids, b, t)
    fk_btkh = phi(k.astype(jnp.float32)) * valid_bt[:, :, None, None]
    return (jnp.einsum("btkh,btkv->bkhv", fk_btkh, v.astype(jnp.float32)),
            jnp.sum(fk_btkh, axis=1))


def linear_attention_step(q_b1nh, k_b1kh, v_b1kh, state, *, feature_map: str = "elu1",
                          eps: float = EPS):
    """One more token per row: ``(out [b, 1, n, v] in q's dtype, state)``, the recurrence of
    :func:`linear_attention_reference`."""
    fq_b1kgh, fk_b1kh, v_b1kv, _, _ = _features(q_b1nh, k_b1kh, v_b1kh, feature_map, None)
    s_bkhv, z_bkh = state
    s_bkhv = s_bkhv + fk_b1kh[:, 0, :, :, None] * v_b1kv[:, 0, :, None, :]
    z_bkh = z_bkh + fk_b1kh[:, 0]
    num_bkgv = jnp.einsum("bkgh,bkhv->bkgv", fq_b1kgh[:, 0], s_bkhv)
    den_bkg = jnp.einsum("bkgh,bkh->bkg", fq_b1kgh[:, 0], z_bkh)
    out_bkgv = num_bkgv / (den_bkg[..., None] + eps)
    b, kh, g, hv = out_bkgv.shape
    return out_bkgv.reshape(b, 1, kh * g, hv).astype(q_b1nh.dtype), (s_bkhv, z_bkh)
