"""Parity of our Pallas flash-attention kernel (interpret mode on CPU) with ``xla_attention``:
outputs and gradients for GQA, causal, windows, segment ids, ragged lengths; block skipping."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrojax.models.attention import UnsupportedOption, attention
from astrojax.models.attention.pallas import (
    kv_block_range,
    pallas_attention,
    q_block_range,
)
from astrojax.models.attention.reference import position_mask, xla_attention

# Small tiles so every test crosses several blocks.
BLOCKS = dict(block_q=16, block_k=32)


def inputs(b, t, s, n, kh, h, dtype=jnp.float32, seed=0):
    # numpy randomness: XLA:CPU compiles threefry slowly and the values do not matter here.
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal(shape, np.float32) for shape in
               ((b, t, n, h), (b, s, kh, h), (b, s, kh, h)))
    do = rng.standard_normal((b, t, n, h), np.float32)
    return tuple(jnp.asarray(x, dtype) for x in (q, k, v, do))


@functools.partial(jax.jit, static_argnums=(0,))
def out_and_grads(fn, q, k, v, do):
    out, vjp = jax.vjp(fn, q, k, v)
    return (out, *vjp(do))


def assert_close(actual, expected, tol, name=""):
    actual, expected = np.asarray(actual, np.float32), np.asarray(expected, np.float32)
    assert np.isfinite(actual).all(), f"{name}: non-finite values"
    scale = max(float(np.abs(expected).max()), 1e-6)
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale, err_msg=name)


def check(q, k, v, do, tol, grads=True, **options):
    """Output (and grads of q, k, v for a random cotangent) of pallas vs the reference."""
    ours = functools.partial(pallas_attention, **BLOCKS, **options)
    ref = functools.partial(xla_attention, **options)
    if not grads:
        assert_close(jax.jit(ours)(q, k, v), jax.jit(ref)(q, k, v), tol, "out")
        return None
    got, want = out_and_grads(ours, q, k, v, do), out_and_grads(ref, q, k, v, do)
    for name, a, b in zip(("out", "dq", "dk", "dv"), got, want, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert_close(a, b, tol, name)
    return got


def segments(lengths_per_row, total):
    """``[batch, total]`` ids: consecutive segments 1, 2, ... of the given lengths, then 0."""
    rows = []
    for lengths in lengths_per_row:
        row = np.concatenate([np.full(n, i + 1) for i, n in enumerate(lengths)])
        rows.append(np.pad(row, (0, total - len(row))))
    return jnp.asarray(np.stack(rows), jnp.int32)


# (b, t, s, n, kh, h), options
CASES = {
    "mha": ((2, 64, 64, 2, 2, 64), {}),
    "gqa2_causal": ((1, 64, 64, 4, 2, 64), dict(causal=True)),
    "gqa4_causal_ragged": ((1, 50, 50, 4, 1, 64), dict(causal=True)),
    "window_5_0_causal": ((1, 64, 64, 4, 2, 64), dict(causal=True, window=(5, 0))),
    "window_3_2_ragged": ((1, 40, 40, 2, 1, 64), dict(window=(3, 2))),
    "cross_48_80": ((1, 48, 80, 4, 2, 64), {}),
    "cross_48_80_causal": ((1, 48, 80, 4, 2, 64), dict(causal=True)),
    # Rows i > 42 see no key at all: zeros with zero grads.
    "cross_80_40_window": ((1, 80, 40, 2, 2, 64), dict(window=(3, 2))),
    "head_dim_48_scale": ((1, 40, 40, 2, 1, 48), dict(causal=True, scale=0.3)),
}


@pytest.mark.parametrize("case", CASES)
def test_matches_reference_f32(case):
    shape, options = CASES[case]
    check(*inputs(*shape), tol=1e-5, **options)


def test_segment_ids_with_padding_gqa4_causal():
    b, t, n, kh, h = 2, 50, 4, 1, 64
    ids = segments([(20, 25), (7, 30, 3)], t)  # row 0 ends in 5 padding positions
    ids = ids.at[1, 10:14].set(0)  # padding in the middle of a segment too
    q, k, v, do = inputs(b, t, t, n, kh, h)
    out, dq, _, _ = check(q, k, v, do, 1e-5, causal=True, q_segment_ids=ids,
                          kv_segment_ids=ids)
    padded = np.asarray(ids) == 0
    assert not np.asarray(out)[padded].any() and not np.asarray(dq)[padded].any()


def test_segment_ids_cross_lengths_window():
    q, k, v, do = inputs(2, 48, 80, 4, 2, 64)
    q_ids, kv_ids = segments([(30, 18), (48,)], 48), segments([(50, 20), (60,)], 80)
    check(q, k, v, do, 1e-5, window=(20, 10), q_segment_ids=q_ids, kv_segment_ids=kv_ids)


def test_bf16_gqa2_causal_window():
    check(*inputs(1, 64, 64, 4, 2, 64, jnp.bfloat16), tol=2e-2, causal=True, window=(20, 0))


def test_head_dim_128_forward():
    check(*inputs(1, 48, 48, 4, 2, 128), tol=1e-5, grads=False, causal=True)


def test_registry_routes_to_pallas_with_default_blocks():
    q, k, v, _ = inputs(1, 40, 40, 4, 2, 64)
    ids = segments([(25, 10)], 40)
    got = jax.jit(functools.partial(attention, impl="pallas", causal=True, segment_ids=ids))(
        q, k, v)
    want = xla_attention(q, k, v, causal=True, q_segment_ids=ids, kv_segment_ids=ids)
    assert_close(got, want, 1e-5)


# --- block skipping ------------------------------------------------------------------------

RANGE_CASES = [  # causal, window, block_q, block_k, num_q_blocks, num_k_blocks
    (False, None, 16, 32, 4, 3),
    (True, None, 16, 32, 6, 3),
    (True, None, 32, 16, 3, 7),
    (True, (5, 0), 16, 16, 5, 5),
    (True, (40, 3), 16, 32, 6, 3),
    (False, (3, 2), 16, 32, 6, 3),
    (False, (0, 0), 32, 16, 3, 6),
    (False, (50, 7), 16, 16, 8, 3),  # queries past the keys see none
]


@pytest.mark.parametrize("causal, window, bq, bk, nq, nk", RANGE_CASES)
def test_block_ranges_are_exactly_the_visible_blocks(causal, window, bq, bk, nq, nk):
    mask = np.asarray(position_mask(jnp.arange(nq * bq), jnp.arange(nk * bk), causal=causal,
                                    window=window))
    visible = mask.reshape(nq, bq, nk, bk).any(axis=(1, 3))  # [q block, k block]
    opts = dict(block_q=bq, block_k=bk, causal=causal, window=window)
    for i in range(nq):
        lo, hi = kv_block_range(i, num_k_blocks=nk, **opts)
        assert set(range(int(lo), int(hi))) == set(np.flatnonzero(visible[i])), (i, lo, hi)
    for j in range(nk):
        lo, hi = q_block_range(j, num_q_blocks=nq, **opts)
        assert set(range(int(lo), int(hi))) == set(np.flatnonzero(visible[:, j])), (j, lo, hi)
    if causal or window is not None:
        assert visible.sum() < nq * nk  # skipping saves work in every masked case here


@pytest.mark.parametrize("options", [dict(causal=True), dict(window=(3, 2))],
                         ids=["causal", "window"])
def test_kernels_never_touch_skipped_blocks(options):
    """Keys 64.. are invisible to all 32 queries; NaN there would poison any visited block
    (p * NaN = NaN even where p = 0), so finite results prove those blocks are skipped."""
    q, k, v, do = inputs(1, 32, 128, 2, 1, 64)
    poison = jnp.arange(128)[None, :, None, None] >= 64
    k_bad, v_bad = jnp.where(poison, jnp.nan, k), jnp.where(poison, jnp.nan, v)
    ours = functools.partial(pallas_attention, **BLOCKS, **options)
    got = out_and_grads(ours, q, k_bad, v_bad, do)
    want = out_and_grads(functools.partial(xla_attention, **options), q, k, v, do)
    for name, a, b in zip(("out", "dq", "dk", "dv"), got, want, strict=True):
        assert_close(a, b, 1e-5, name)


# --- arguments -----------------------------------------------------------------------------


def test_unsupported_options_raise():
    q, k, v, _ = inputs(1, 16, 16, 2, 1, 16)
    with pytest.raises(UnsupportedOption, match="block_q=24"):
        pallas_attention(q, k, v, block_q=24)
    with pytest.raises(UnsupportedOption, match="dtype"):
        pallas_attention(q.astype(jnp.int32), k.astype(jnp.int32), v.astype(jnp.int32))
    with pytest.raises(UnsupportedOption, match="head_dim"):
        big = jnp.zeros((1, 16, 1, 512))
        pallas_attention(big, big, big)
    with pytest.raises(ValueError, match="segment"):
        pallas_attention(q, k, v, q_segment_ids=jnp.ones((1, 16), jnp.int32))


# --- the Triton lowering, checked without a GPU ---------------------------------------------


@pytest.mark.parametrize("dtype, h, options", [
    (jnp.bfloat16, 80, dict(causal=True, window=(16, 0), segments=True)),
    (jnp.float32, 128, dict(window=(8, 8))),
], ids=["bf16_h80_masks", "f32_h128"])
def test_lowers_to_triton_for_cuda(dtype, h, options):
    """Forward and both backward kernels lower through Pallas's Triton path (every load/store
    shape a power of two, supported ops); PTX compilation itself is left to the GPU tests."""
    options = dict(options)
    segments_ = options.pop("segments", False)
    q = jax.ShapeDtypeStruct((2, 100, 4, h), dtype)
    k = jax.ShapeDtypeStruct((2, 70, 2, h), dtype)
    ids = (jax.ShapeDtypeStruct((2, 100), jnp.int32), jax.ShapeDtypeStruct((2, 70), jnp.int32))

    def fwd_bwd(q, k, v, do, q_ids, kv_ids):
        seg = dict(q_segment_ids=q_ids, kv_segment_ids=kv_ids) if segments_ else {}
        fn = functools.partial(pallas_attention, interpret=False, **options, **seg)
        out, vjp = jax.vjp(fn, q, k, v)
        return out, vjp(do)

    text = jax.jit(fwd_bwd).trace(q, k, k, q, *ids).lower(lowering_platforms=("cuda",)).as_text()
    for kernel in ("astrojax_flash_fwd", "astrojax_flash_dq", "astrojax_flash_dkv"):
        assert kernel in text


# --- compiled kernel on a GPU ----------------------------------------------------------------


@pytest.mark.gpu
class TestCompiledOnGpu:
    """The Triton-compiled kernel (interpret=False) at realistic sizes against the reference."""

    @staticmethod
    def _check(shape, dtype, tol, **options):
        q, k, v, do = inputs(*shape, dtype=dtype)
        ours = functools.partial(pallas_attention, interpret=False, **options)
        with jax.default_matmul_precision("highest"):
            want = out_and_grads(functools.partial(xla_attention, **options), q, k, v, do)
        got = out_and_grads(ours, q, k, v, do)
        for name, a, b in zip(("out", "dq", "dk", "dv"), got, want, strict=True):
            assert_close(a, b, tol, name)

    def test_bf16_gqa_causal_head_dim_128(self):
        self._check((2, 1024, 1024, 8, 2, 128), jnp.bfloat16, 3e-2, causal=True)

    def test_bf16_sliding_window_segments(self):
        ids = segments([(300, 500, 200), (1000,)], 1024)
        self._check((2, 1024, 1024, 8, 4, 64), jnp.bfloat16, 3e-2, causal=True,
                    window=(256, 0), q_segment_ids=ids, kv_segment_ids=ids)

    def test_f32_cross_ragged_lengths(self):
        self._check((2, 1000, 1500, 4, 1, 64), jnp.float32, 1e-4)

    def test_fp16_window_both_sides_head_dim_80(self):
        self._check((1, 777, 777, 4, 2, 80), jnp.float16, 3e-2, window=(64, 32))
