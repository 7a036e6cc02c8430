"""The cross-implementation attention matrix on CPU: ``xla`` (against jax's own
``dot_product_attention``), ``blockwise``, ``chunked`` and ``pallas`` (against
``xla_attention``), outputs and gradients; ``auto`` selection from the measured table, argument
errors, the cuDNN option mapping, and GPU-only cuDNN parity (skipped without a GPU)."""

from __future__ import annotations

import functools
import logging
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import astrojax.models.attention as attention_module
from astrojax.models.attention import (
    UnsupportedOption,
    attention,
    choose_impl,
    explain_choice,
    get_impl,
)
from astrojax.models.attention.blockwise import kv_block_range, q_block_range
from astrojax.models.attention.chunked import chunk_ranges
from astrojax.models.attention.cudnn import (
    check_supported,
    mapped_dot_product_attention,
    padding_lengths,
)
from astrojax.models.attention.reference import position_mask, xla_attention

TOL = {jnp.float32: 1e-5, jnp.bfloat16: 2e-2}
# Small blocks so every blockwise case crosses several (and ragged) blocks.
BLOCKS = dict(block_q=16, block_k=24)


def segments(b: int, length: int, rng) -> np.ndarray:
    """``[b, length]`` ids: two or three segments of random length, then padding (id 0)."""
    ids = np.zeros((b, length), np.int32)
    for row in ids:
        cuts = np.sort(rng.choice(np.arange(4, length - 4), size=3, replace=False))
        row[: cuts[0]], row[cuts[0]: cuts[1]], row[cuts[1]: cuts[2]] = 1, 2, 3
        row[rng.integers(cuts[1], cuts[2]):] = 0  # a padded tail of random length
    return ids


def inputs(b, t, s, n, kh, h, dtype=jnp.float32, seed=0):
    # numpy randomness: XLA:CPU compiles threefry slowly and the values do not matter here.
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal(shape, np.float32) for shape in
               ((b, t, n, h), (b, s, kh, h), (b, s, kh, h)))
    do = rng.standard_normal((b, t, n, h), np.float32)
    return tuple(jnp.asarray(x, dtype) for x in (q, k, v, do))


# Correctness tests do not need optimised machine code: this halves XLA:CPU compile time,
# which is most of this file's run time. (GPU runs compile normally.)
FAST_COMPILE = {"xla_backend_optimization_level": 0} if jax.default_backend() == "cpu" else {}


def compiled(fn, *args):
    """``fn(*args)`` jitted and compiled with ``FAST_COMPILE``."""
    return jax.jit(fn).lower(*args).compile(FAST_COMPILE)(*args)


def out_and_grads(fn, q, k, v, do):
    def run(q, k, v, do):
        out, vjp = jax.vjp(fn, q, k, v)
        return (out, *vjp(do))
    return compiled(run, q, k, v, do)


def rel_err(actual, expected) -> float:
    """max |actual - expected| relative to max |expected| (the array's scale, not elementwise)."""
    actual, expected = np.asarray(actual, np.float32), np.asarray(expected, np.float32)
    assert np.isfinite(actual).all(), "non-finite values"
    return float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-6))


def assert_all_close(got, want, tol):
    for name, a, b in zip(("out", "dq", "dk", "dv"), got, want, strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype, (name, a.shape, b.shape, a.dtype)
        err = rel_err(a, b)
        assert err <= tol, f"{name}: relative error {err:.2e} > {tol:.0e}"


# name -> (batch, q_len, kv_len, heads, kv_heads, head_dim, options). "segments" is expanded
# into segment ids with padding by `case_inputs`.
CASES = {
    "mha": (2, 48, 48, 4, 4, 64, {}),
    "gqa2_causal": (2, 48, 48, 4, 2, 64, dict(causal=True)),
    "gqa4_causal_window8": (1, 56, 56, 4, 1, 64, dict(causal=True, window=(8, 0))),
    "window_4_3": (2, 50, 50, 2, 2, 64, dict(window=(4, 3))),
    "segments_gqa2": (2, 48, 48, 4, 2, 64, dict(segments=True)),
    "segments_causal_gqa4": (1, 64, 64, 4, 1, 64, dict(segments=True, causal=True)),
    "cross_40_72": (2, 40, 72, 4, 2, 64, {}),
    "cross_40_72_causal_segments": (1, 40, 72, 2, 1, 64, dict(causal=True, segments=True)),
    # Queries past kv_len + 8 see no key: zeros out, zero gradients.
    "cross_72_40_causal_window8": (1, 72, 40, 4, 2, 64, dict(causal=True, window=(8, 0))),
    "head_dim_128_causal": (1, 40, 40, 2, 1, 128, dict(causal=True)),
    "ragged_37_83_window": (1, 37, 83, 2, 2, 64, dict(window=(4, 3), scale=0.3)),
}


def case_inputs(name, dtype):
    b, t, s, n, kh, h, options = CASES[name]
    q, k, v, do = inputs(b, t, s, n, kh, h, dtype)
    options = dict(options)
    if options.pop("segments", False):
        rng = np.random.default_rng(1)
        options["segment_ids"] = (jnp.asarray(segments(b, t, rng)),
                                  jnp.asarray(segments(b, s, rng)))
    return (q, k, v, do), options


def impl_options(options):
    """Public ``attention`` options -> the keyword arguments an impl function takes."""
    options = dict(options)
    q_ids, kv_ids = options.pop("segment_ids", (None, None))
    return dict(options, q_segment_ids=q_ids, kv_segment_ids=kv_ids)


def visible(t, s, *, causal=False, window=None, segment_ids=None, scale=None):
    """Independent numpy ``[b or 1, t, s]`` visibility (for the outside check)."""
    i, j = np.arange(t)[:, None], np.arange(s)[None, :]
    vis = np.ones((t, s), bool)
    if causal:
        vis &= j <= i
    if window is not None:
        vis &= (j >= i - window[0]) & (j <= i + window[1])
    vis = vis[None]
    if segment_ids is not None:
        q_ids, kv_ids = (np.asarray(x) for x in segment_ids)
        vis = vis & (q_ids[:, :, None] == kv_ids[:, None, :]) & (q_ids[:, :, None] != 0)
    return vis


@functools.cache
def reference(case, dtype):
    """``xla_attention``'s output and gradients for a case (shared by the impls' tests)."""
    (q, k, v, do), options = case_inputs(case, dtype)
    return out_and_grads(functools.partial(xla_attention, **impl_options(options)), q, k, v, do)


DTYPES = [pytest.param(jnp.float32, id="f32"), pytest.param(jnp.bfloat16, id="bf16")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_blockwise_matches_reference(case, dtype):
    (q, k, v, do), options = case_inputs(case, dtype)
    ours = functools.partial(get_impl("blockwise"), **BLOCKS, **impl_options(options))
    assert_all_close(out_and_grads(ours, q, k, v, do), reference(case, dtype), TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_chunked_matches_reference(case, dtype):
    """Chunks of 16 queries (several, ragged), the forward's probabilities kept."""
    (q, k, v, do), options = case_inputs(case, dtype)
    ours = functools.partial(get_impl("chunked"), chunk=16, **impl_options(options))
    assert_all_close(out_and_grads(ours, q, k, v, do), reference(case, dtype), TOL[dtype])


@pytest.mark.parametrize("case", ["gqa2_causal", "segments_causal_gqa4",
                                  "cross_72_40_causal_window8", "ragged_37_83_window"])
def test_chunked_recomputing_backward_matches_reference(case):
    """``save_probs_bytes=0``: the backward recomputes the probabilities from the saved
    log-sum-exp, as it does for long sequences."""
    (q, k, v, do), options = case_inputs(case, jnp.float32)
    ours = functools.partial(get_impl("chunked"), chunk=16, save_probs_bytes=0,
                             **impl_options(options))
    assert_all_close(out_and_grads(ours, q, k, v, do), reference(case, jnp.float32), 1e-5)


def test_chunked_computes_only_the_visible_band():
    """Causal over 4 chunks computes (4 + 1) / 8 of the square's matmul FLOPs (XLA's count),
    and no array is as large as the score matrix."""
    length = 512
    q = jax.ShapeDtypeStruct((1, length, 2, 64), jnp.float32)
    kv = jax.ShapeDtypeStruct((1, length, 1, 64), jnp.float32)

    def flops(fn):
        return jax.jit(functools.partial(fn, causal=True)).lower(q, kv, kv).compile() \
            .cost_analysis()["flops"]

    chunked = functools.partial(get_impl("chunked"), chunk=length // 4)
    assert 0.55 < flops(chunked) / flops(xla_attention) < 0.7
    assert largest_array(functools.partial(chunked, causal=True), q, kv, kv) < length**2
    assert chunk_ranges(10, 10, 4, causal=True, window=None) == (
        (0, 4, 0, 4), (4, 8, 0, 8), (8, 10, 0, 10))
    assert chunk_ranges(10, 10, 4, causal=False, window=(2, 1)) == (
        (0, 4, 0, 5), (4, 8, 2, 9), (8, 10, 6, 10))


OUTSIDE_CASES = ["mha", "gqa4_causal_window8", "window_4_3", "segments_causal_gqa4",
                 "cross_40_72_causal_segments", "cross_72_40_causal_window8",
                 "ragged_37_83_window"]
OUTSIDE_MATRIX = (
    [pytest.param(case, jnp.float32, id=f"{case}-f32") for case in OUTSIDE_CASES]
    + [pytest.param(case, jnp.bfloat16, id=f"{case}-bf16")
       for case in ("gqa4_causal_window8", "cross_40_72_causal_segments")])


@pytest.mark.parametrize("case,dtype", OUTSIDE_MATRIX)
def test_xla_matches_jax_dot_product_attention(case, dtype):
    """Outside check of the reference: jax.nn.dot_product_attention(implementation="xla") with
    the same mask. jax spreads a query that sees nothing over all keys (we return zeros), so
    those rows are compared with a zero cotangent and masked out of the output."""
    (q, k, v, do), options = case_inputs(case, dtype)
    seen = jnp.asarray(visible(q.shape[1], k.shape[1], **options).any(-1)[:, :, None, None])
    segment_ids = options.get("segment_ids")
    mask = None if segment_ids is None else jnp.asarray(visible(
        q.shape[1], k.shape[1], segment_ids=segment_ids))[:, None]
    jax_fn = functools.partial(
        jax.nn.dot_product_attention, mask=mask, scale=options.get("scale"),
        is_causal=options.get("causal", False), local_window_size=options.get("window"),
        implementation="xla")
    do = jnp.where(seen, do, 0)
    ours = functools.partial(attention, impl="xla", **options)
    got, want = out_and_grads(ours, q, k, v, do), out_and_grads(jax_fn, q, k, v, do)
    got, want = (got[0] * seen, *got[1:]), (want[0] * seen, *want[1:])
    assert_all_close(got, want, TOL[dtype])
    assert not np.asarray(jnp.where(seen, 0, got[0])).any(), "rows that see nothing must be 0"


# Interpret mode is slow: a few cases (the kernel's own tests go further).
PALLAS_MATRIX = [pytest.param("gqa4_causal_window8", jnp.float32, id="gqa4_causal_window8-f32"),
                 pytest.param("ragged_37_83_window", jnp.float32, id="ragged_37_83_window-f32"),
                 pytest.param("segments_gqa2", jnp.bfloat16, id="segments_gqa2-bf16")]


@pytest.mark.parametrize("case,dtype", PALLAS_MATRIX)
def test_pallas_matches_reference(case, dtype):
    pytest.importorskip("astrojax.models.attention.pallas")
    (q, k, v, do), options = case_inputs(case, dtype)
    ours = functools.partial(attention, impl="pallas", **options)
    assert_all_close(out_and_grads(ours, q, k, v, do), reference(case, dtype), TOL[dtype])


def test_blockwise_default_blocks_through_public_api():
    (q, k, v, do), options = case_inputs("segments_causal_gqa4", jnp.float32)
    ours = functools.partial(attention, impl="blockwise", **options)
    assert_all_close(out_and_grads(ours, q, k, v, do), reference("segments_causal_gqa4",
                                                                 jnp.float32), 1e-5)


@pytest.mark.parametrize("causal,window", [(True, None), (True, (5, 0)), (False, (3, 9)),
                                           (False, (0, 0)), (False, None)])
@pytest.mark.parametrize("block_q,block_k", [(8, 8), (8, 16), (16, 8), (12, 5)])
def test_block_ranges_hold_exactly_the_visible_blocks(causal, window, block_q, block_k):
    num_q, num_k = 6, 7
    pos = position_mask(np.arange(num_q * block_q), np.arange(num_k * block_k), causal=causal,
                        window=window)
    blocks = np.asarray(pos).reshape(num_q, block_q, num_k, block_k).any(axis=(1, 3))
    for i in range(num_q):
        lo, hi = kv_block_range(i, block_q=block_q, block_k=block_k, num_k_blocks=num_k,
                                causal=causal, window=window)
        assert np.flatnonzero(blocks[i]).tolist() == list(range(int(lo), int(hi))), i
    for j in range(num_k):
        lo, hi = q_block_range(j, block_q=block_q, block_k=block_k, num_q_blocks=num_q,
                               causal=causal, window=window)
        assert np.flatnonzero(blocks[:, j]).tolist() == list(range(int(lo), int(hi))), j


def largest_array(fn, *args) -> int:
    """Elements in the largest tensor of ``fn``'s lowered StableHLO (forward and backward)."""
    text = jax.jit(fn).lower(*args).as_text()
    sizes = [int(np.prod([int(d) for d in dims.split("x")[:-1]]))
             for dims in re.findall(r"tensor<((?:\d+x)+)[a-z]", text)]
    return max(sizes)


def test_blockwise_never_materialises_the_score_matrix():
    length = 1024
    q = jax.ShapeDtypeStruct((1, length, 2, 64), jnp.float32)
    kv = jax.ShapeDtypeStruct((1, length, 1, 64), jnp.float32)

    def fwd_bwd(fn):
        def run(q, k, v):
            out, vjp = jax.vjp(functools.partial(fn, causal=True), q, k, v)
            return out, vjp(out)
        return run

    square = length * length
    # The check can fail: the reference does hold [len, len] scores.
    assert largest_array(fwd_bwd(xla_attention), q, kv, kv) >= square
    blockwise = get_impl("blockwise")
    assert largest_array(functools.partial(blockwise, causal=True), q, kv, kv) < square
    assert largest_array(fwd_bwd(blockwise), q, kv, kv) < square


def test_blockwise_and_chunked_reject_bad_blocks_and_lone_segment_ids():
    q, k, v, _ = inputs(1, 8, 8, 2, 2, 8)
    with pytest.raises(ValueError, match="block_q"):
        get_impl("blockwise")(q, k, v, block_q=0)
    with pytest.raises(ValueError, match="chunk must be a positive int"):
        get_impl("chunked")(q, k, v, chunk=0)
    for impl in ("blockwise", "chunked"):
        with pytest.raises(ValueError, match="both q_segment_ids and kv_segment_ids"):
            get_impl(impl)(q, k, v, q_segment_ids=jnp.ones((1, 8), jnp.int32))


# ---------------------------------------------------------------------------------------------
# Selection and argument errors.


def test_auto_without_a_table_keeps_the_memory_rule(caplog, monkeypatch):
    monkeypatch.setattr(attention_module, "_logged_choices", set())  # log every choice
    monkeypatch.setattr(attention_module, "auto_table", dict)  # no measurements
    small = inputs(1, 32, 32, 2, 2, 16)[:3]
    assert choose_impl(*small[:2]) == "xla"
    np.testing.assert_array_equal(attention(*small), xla_attention(*small))

    big_q = jax.ShapeDtypeStruct((1, 8200, 8, 64), jnp.float32)
    big_kv = jax.ShapeDtypeStruct((1, 8200, 2, 64), jnp.float32)
    assert choose_impl(big_q, big_kv, backend="cpu") == "blockwise"
    with caplog.at_level(logging.INFO, logger="astrojax.models.attention"):
        jax.eval_shape(functools.partial(attention, causal=True), big_q, big_kv, big_kv)
    assert "auto -> blockwise" in caplog.text

    bf16 = jax.ShapeDtypeStruct((1, 128, 4, 64), jnp.bfloat16)
    f32 = jax.ShapeDtypeStruct((1, 128, 4, 64), jnp.float32)
    assert choose_impl(bf16, bf16, backend="gpu") == "cudnn"
    assert choose_impl(f32, f32, backend="gpu") == "pallas"


def test_auto_picks_the_fastest_measured_impl_at_every_benchmarked_shape():
    """The shipped table (benchmarks/attention.py on this CPU): at each row, forward + backward
    and forward only, auto runs the fastest of our impls whose scores fit in 256 MB, and says
    why."""
    table = attention_module.auto_table()["cpu"]
    b, n, kh = (int(x) for x in table["shape"].split("=")[1].split(","))
    checked = 0
    for entry in table["entries"]:
        t, h, dtype = entry["seq_len"], entry["head_dim"], jnp.dtype(entry["dtype"])
        q = jax.ShapeDtypeStruct((b, t, n, h), dtype)
        k = jax.ShapeDtypeStruct((b, t, kh, h), dtype)
        ours = {impl: ms for impl, ms in entry["times_ms"].items()
                if impl in ("xla", "chunked", "blockwise")
                and not (impl == "xla" and 4 * b * n * t * t > 256 * 2**20)}
        impl, reason = explain_choice(q, k, causal=entry["causal"], backend="cpu",
                                      mode=entry["mode"])
        assert impl == min(ours, key=ours.get), entry
        assert f"len {t}," in reason and f"{impl} {ours[impl]:.1f}" in reason
        checked += 1
    assert checked >= 16


def test_auto_runs_the_forward_winner_undifferentiated_and_the_training_winner_under_grad(
        monkeypatch):
    rows = [dict(dtype="float32", causal=True, head_dim=16, seq_len=32, mode=mode,
                 times_ms=times)
            for mode, times in (("fwd", {"xla": 1.0, "chunked": 2.0}),
                                ("fwd+bwd", {"xla": 2.0, "chunked": 1.0}))]
    monkeypatch.setattr(attention_module, "auto_table", lambda: {"cpu": {"entries": rows}})
    calls = []

    def spy(name):
        fn = get_impl(name)

        def run(*args, **kwargs):
            calls.append(name)
            return fn(*args, **kwargs)
        return run

    monkeypatch.setattr(attention_module, "get_impl", spy)
    q, k, v, do = inputs(1, 32, 32, 2, 1, 16)
    out = attention(q, k, v, causal=True)
    assert calls == ["xla"]
    calls.clear()
    got = jax.vjp(functools.partial(attention, causal=True), q, k, v)
    assert calls == ["chunked"]
    want = jax.vjp(functools.partial(xla_attention, causal=True), q, k, v)
    assert rel_err(got[0], want[0]) < 1e-5 and rel_err(out, want[0]) < 1e-5
    for a, b in zip(got[1](do), want[1](do), strict=True):
        assert rel_err(a, b) < 1e-5


def test_auto_follows_the_table_and_its_memory_limit(monkeypatch):
    rows = [dict(dtype="float32", causal=c, head_dim=64, seq_len=t, mode="fwd+bwd",
                 times_ms={"xla": 1.0, "chunked": 2.0, "blockwise": 3.0, "torch_sdpa": 0.5})
            for c in (True, False) for t in (256, 8192)]
    monkeypatch.setattr(attention_module, "auto_table",
                        lambda: {"cpu": {"entries": rows}})
    small = jax.ShapeDtypeStruct((1, 300, 8, 64), jnp.float32)
    kv = jax.ShapeDtypeStruct((1, 300, 2, 64), jnp.float32)
    impl, reason = explain_choice(small, kv, causal=True, backend="cpu")
    assert impl == "xla" and "len 256" in reason and "torch_sdpa 0.5" in reason
    # xla's 8 x 8000^2 float32 scores (2 GB) do not fit: the next fastest runs instead
    big = jax.ShapeDtypeStruct((1, 8000, 8, 64), jnp.float32)
    big_kv = jax.ShapeDtypeStruct((1, 8000, 2, 64), jnp.float32)
    assert choose_impl(big, big_kv, causal=True, backend="cpu") == "chunked"
    # a sliding window skips blocks like causal: the causal rows decide
    rows[0]["times_ms"] = {"xla": 5.0, "chunked": 1.0}
    assert choose_impl(small, kv, window=(64, 0), backend="cpu") == "chunked"
    assert choose_impl(small, kv, backend="cpu") == "xla"


def test_auto_never_picks_a_dense_mask_path_when_pallas_supports_the_call():
    bf16 = jax.ShapeDtypeStruct((2, 4096, 8, 64), jnp.bfloat16)
    kv = jax.ShapeDtypeStruct((2, 4096, 2, 64), jnp.bfloat16)
    ids = jax.ShapeDtypeStruct((2, 4096), jnp.int32)
    # packed batches: cuDNN would build a [b, 1, T, T] mask under jit; Pallas is O(T)
    impl, reason = explain_choice(bf16, kv, causal=True, segment_ids=ids, backend="gpu")
    assert impl == "pallas" and "segment ids" in reason
    assert choose_impl(bf16, kv, window=(64, 64), backend="gpu") == "pallas"
    # cuDNN takes causal sliding windows natively
    assert choose_impl(bf16, kv, causal=True, window=(64, 0), backend="gpu") == "cudnn"


def test_auto_picks_ring_when_the_mesh_splits_the_sequence(caplog, monkeypatch):
    monkeypatch.setattr(attention_module, "_logged_choices", set())
    from astrojax.config import MeshConfig
    from astrojax.sharding import make_mesh

    q, k, _, _ = inputs(2, 64, 64, 4, 2, 16)
    with jax.set_mesh(make_mesh(MeshConfig(data=2, context=4))):
        assert explain_choice(q, k)[0] == "ring"
        with caplog.at_level(logging.INFO, logger="astrojax.models.attention"):
            jax.eval_shape(functools.partial(attention, causal=True), q, k, k)
    assert "auto -> ring" in caplog.text and "splits the sequence 4 ways" in caplog.text
    assert choose_impl(q, k) != "ring"  # no mesh


def test_unknown_impl_is_named():
    q, k, v, _ = inputs(1, 8, 8, 2, 2, 8)
    with pytest.raises(ValueError, match="unknown attention impl 'flash'.*blockwise"):
        attention(q, k, v, impl="flash")


@pytest.mark.parametrize("impl", ["xla", "blockwise", "chunked"])
def test_shape_errors_name_the_problem(impl):
    q, k, v, _ = inputs(1, 8, 8, 4, 2, 16)
    with pytest.raises(ValueError, match="ranks 3, 4, 4"):
        attention(q[0], k, v, impl=impl)
    k3, v3 = inputs(1, 8, 8, 4, 3, 16)[1:3]
    with pytest.raises(ValueError, match="num_kv_heads=3 must divide num_heads=4"):
        attention(q, k3, v3, impl=impl)
    with pytest.raises(ValueError, match="head_dim"):
        attention(q, k[..., :8], v[..., :8], impl=impl)
    with pytest.raises(ValueError, match="k and v must have the same shape"):
        attention(q, k, v[:, :4], impl=impl)


# ---------------------------------------------------------------------------------------------
# cuDNN: refusal off GPU, the option mapping (run with jax's XLA implementation), GPU parity.


@pytest.mark.skipif(jax.default_backend() == "gpu", reason="checks the refusal off GPU")
@pytest.mark.parametrize("dtype", DTYPES)
def test_cudnn_refuses_cpu_backend(dtype):
    q, k, v, _ = inputs(1, 16, 16, 2, 2, 64, dtype)
    with pytest.raises(UnsupportedOption, match=r"'cudnn'.*backend <cpu>.*NVIDIA GPU"):
        attention(q, k, v, impl="cudnn")


def test_cudnn_refuses_float32_and_odd_head_dims():
    q, k, v, _ = inputs(1, 16, 16, 2, 2, 64)
    with pytest.raises(UnsupportedOption, match="dtype float32.*bfloat16 or float16"):
        check_supported(q, k, v, backend="gpu")
    q, k, v, _ = inputs(1, 16, 16, 2, 2, 12, jnp.bfloat16)
    with pytest.raises(UnsupportedOption, match="head_dim=12"):
        check_supported(q, k, v, backend="gpu")
    check_supported(*inputs(1, 16, 16, 2, 2, 64, jnp.bfloat16)[:3], backend="gpu")


def test_padding_lengths_only_for_concrete_padding_ids():
    pad_q = jnp.asarray([[5, 5, 5, 0], [5, 5, 5, 5]])
    pad_kv = jnp.asarray([[5, 5, 0, 0, 0], [5, 5, 5, 5, 0]])
    q_len, kv_len = padding_lengths(pad_q, pad_kv)
    assert q_len.tolist() == [3, 4] and kv_len.tolist() == [2, 4]
    assert padding_lengths(jnp.asarray([[1, 1, 2, 0]]), jnp.asarray([[1, 1, 2, 0]])) is None
    assert padding_lengths(jnp.asarray([[1, 0, 1, 0]]), jnp.asarray([[1, 1, 0, 0]])) is None
    assert padding_lengths(jnp.asarray([[1, 1, 0, 0]]), jnp.asarray([[2, 2, 0, 0]])) is None
    assert padding_lengths(jnp.asarray([[0, 0]]), jnp.asarray([[1, 0]])) is None  # empty row
    assert jax.jit(lambda a, b: padding_lengths(a, b) is None)(pad_q, pad_kv)


MAPPING_MATRIX = [
    # No segment ids: sequence-length-free path (causal, left window, zero rows by position).
    ("gqa2_causal", "traced"), ("cross_72_40_causal_window8", "traced"),
    # Two-sided window / general segments / odd lengths: boolean mask path.
    ("window_4_3", "traced"), ("ragged_37_83_window", "traced"),
    ("cross_40_72_causal_segments", "traced"), ("cross_40_72_causal_segments", "concrete"),
    # Padding-only segment ids: seq lengths when concrete, the mask when traced.
    ("padding_only_causal_window", "concrete"), ("padding_only_causal_window", "traced"),
]


@pytest.mark.parametrize("case,ids", MAPPING_MATRIX)
def test_cudnn_option_mapping_with_xla_implementation(case, ids):
    """The cuDNN path's mapping (seq lengths, left windows, boolean mask, zero rows), run with
    implementation="xla" so it is checked without a GPU."""
    if case == "padding_only_causal_window":
        q, k, v, do = inputs(2, 48, 48, 4, 2, 64)
        pad = np.zeros((2, 48), np.int32)
        pad[0, :30], pad[1, :] = 7, 7
        options = dict(causal=True, window=(6, 0), q_segment_ids=jnp.asarray(pad),
                       kv_segment_ids=jnp.asarray(pad))
        want = out_and_grads(functools.partial(xla_attention, **options), q, k, v, do)
    else:
        (q, k, v, do), options = case_inputs(case, jnp.float32)
        options, want = impl_options(options), reference(case, jnp.float32)
    segs = options.pop("q_segment_ids"), options.pop("kv_segment_ids")
    if segs[0] is not None and ids == "concrete":
        assert (padding_lengths(*segs) is not None) == (case == "padding_only_causal_window")

    def ours(q, k, v, do, q_ids, kv_ids):
        fn = functools.partial(mapped_dot_product_attention, implementation="xla",
                               q_segment_ids=q_ids, kv_segment_ids=kv_ids, **options)
        out, vjp = jax.vjp(fn, q, k, v)
        return (out, *vjp(do))

    if ids == "concrete":  # closed over: concrete while tracing
        got = compiled(lambda q, k, v, do: ours(q, k, v, do, *segs), q, k, v, do)
    else:  # arguments of jit: traced
        got = compiled(ours, q, k, v, do, *segs)
    assert_all_close(got, want, TOL[jnp.float32])


GPU_CASES = ["gqa2_causal", "gqa4_causal_window8", "window_4_3", "segments_gqa2",
             "cross_40_72", "cross_40_72_causal_segments", "cross_72_40_causal_window8",
             "head_dim_128_causal", "ragged_37_83_window"]


@pytest.mark.gpu
@pytest.mark.parametrize("case", GPU_CASES)
def test_cudnn_matches_reference_bf16(case):
    (q, k, v, do), options = case_inputs(case, jnp.bfloat16)
    ours = functools.partial(attention, impl="cudnn", **options)
    ref = functools.partial(xla_attention, **impl_options(options))
    assert_all_close(out_and_grads(ours, q, k, v, do), out_and_grads(ref, q, k, v, do),
                     TOL[jnp.bfloat16])


@pytest.mark.gpu
def test_cudnn_padding_lengths_path_bf16():
    q, k, v, do = inputs(2, 64, 64, 4, 2, 64, jnp.bfloat16)
    ids = np.zeros((2, 64), np.int32)
    ids[0, :40], ids[1, :] = 3, 3
    options = dict(causal=True, q_segment_ids=jnp.asarray(ids), kv_segment_ids=jnp.asarray(ids))
    out, vjp = jax.vjp(functools.partial(get_impl("cudnn"), **options), q, k, v)  # eager
    assert_all_close((out, *vjp(do)),
                     out_and_grads(functools.partial(xla_attention, **options), q, k, v, do),
                     TOL[jnp.bfloat16])


@pytest.mark.gpu
def test_cudnn_refuses_float32_on_gpu():
    q, k, v, _ = inputs(1, 16, 16, 2, 2, 64)
    with pytest.raises(UnsupportedOption, match="dtype float32"):
        attention(q, k, v, impl="cudnn")
