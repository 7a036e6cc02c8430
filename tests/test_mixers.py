"""Tests for the sub-quadratic sequence mixers: causal linear attention and the Mamba SSM."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from astrojax.config import DEFAULT_LOGICAL_AXIS_RULES
from astrojax.models.attention.linear import linear_attention, linear_attention_reference
from astrojax.models.attention.reference import segment_mask
from astrojax.models.attention.ssm import (
    causal_depthwise_conv,
    selective_scan,
    selective_scan_reference,
)
from astrojax.models.layers import Attention
from astrojax.models.mixers import LinearAttention, MambaBlock, make_mixer
from astrojax.models.transformer import tiny_config

LOGICAL_NAMES = {name for name, _ in DEFAULT_LOGICAL_AXIS_RULES}
KEY_IMPL = "unsafe_rbg"  # XLA:CPU compiles threefry slowly; init randomness is irrelevant here

jit_fast = functools.partial(
    jax.jit, compiler_options={"xla_backend_optimization_level": 0,
                               "xla_llvm_disable_expensive_passes": True})

# Two packed sequences and padding; the second row is one sequence.
SEGMENTS = np.array([[1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 0, 0],
                     [7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7]], np.int32)
B, T = SEGMENTS.shape


def normal(rng, shape, scale=1.0):
    return jnp.asarray(rng.normal(0.0, scale, shape), jnp.float32)


def construct(cls, cfg, *, rngs, **kwargs):
    """A ``cls`` mixer in ``cfg``'s sizes and dtypes (the plain arguments make_mixer passes)."""
    sizes = ((cfg.d_model,) if cls is MambaBlock
             else (cfg.d_model, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim))
    return cls(*sizes, dtype=cfg.dtype, param_dtype=cfg.param_dtype, rngs=rngs, **kwargs)


def build(cls, cfg, **kwargs):
    """``cls`` initialised by its own initialisers in one compiled call."""
    key = jax.random.key(0, impl=KEY_IMPL)
    with nnx.use_eager_sharding(False):
        graphdef = nnx.graphdef(nnx.eval_shape(
            lambda: construct(cls, cfg, rngs=nnx.Rngs(0), **kwargs)))
        state = jit_fast(lambda: nnx.state(construct(cls, cfg, rngs=nnx.Rngs(key), **kwargs)))()
    return nnx.merge(graphdef, state)


@functools.partial(jit_fast, static_argnums=0)
def _mix(graphdef, state, x_btd, segment_ids_bt):
    module = nnx.merge(graphdef, state)
    b, t, _ = x_btd.shape
    sin = cos = jnp.zeros((b, t, 4), jnp.float32)  # both mixers ignore the rotary tables
    return module(x_btd, sin, cos, segment_ids_bt)


def mix(module, x_btd, segment_ids_bt=None):
    return _mix(*nnx.split(module), x_btd, segment_ids_bt)


@pytest.fixture(scope="module")
def cfg():
    return tiny_config()


@pytest.fixture(scope="module")
def linear_module(cfg):
    return build(LinearAttention, cfg, chunk_size=4)


@pytest.fixture(scope="module")
def mamba_module(cfg):
    return build(MambaBlock, cfg, scan_chunk_size=4)


# ----------------------------------------------------------------------------------------------
# Linear attention kernel


def qkv(seed=0, n=4, kh=2, h=4, hv=3):
    rng = np.random.default_rng(seed)
    return normal(rng, (B, T, n, h)), normal(rng, (B, T, kh, h)), normal(rng, (B, T, kh, hv))


@functools.cache
def _linear_reference(segments: bool):
    ids = jnp.asarray(SEGMENTS) if segments else None
    return jit_fast(functools.partial(linear_attention_reference, segment_ids=ids))(*qkv())


@pytest.mark.parametrize("segments", [False, True])
@pytest.mark.parametrize("chunk_size", [1, 3, 4, 64])
def test_linear_chunked_matches_reference(chunk_size, segments):
    q, k, v = qkv()
    ids = jnp.asarray(SEGMENTS) if segments else None
    ref = _linear_reference(segments)
    out = jit_fast(functools.partial(linear_attention, chunk_size=chunk_size,
                                     segment_ids=ids))(q, k, v)
    assert out.shape == (B, T, 4, 3)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_linear_matches_masked_quadratic_form():
    """An outside oracle: the softmax kernels' segment mask with phi scores instead of exp."""
    q, k, v = qkv(1, n=2, kh=2)
    ids = jnp.asarray(SEGMENTS)

    @jit_fast
    def oracle(q, k, v):
        phi = lambda x: jax.nn.elu(x) + 1.0  # noqa: E731
        mask_bij = segment_mask(ids, ids) & jnp.tril(jnp.ones((T, T), bool))
        scores_bnij = jnp.einsum("bind,bjnd->bnij", phi(q), phi(k)) * mask_bij[:, None]
        return jnp.einsum("bnij,bjnv->binv", scores_bnij, v) / (
            jnp.einsum("bnij->bin", scores_bnij)[..., None] + 1e-6)

    expected = oracle(q, k, v)
    out = jit_fast(functools.partial(linear_attention, chunk_size=3))(q, k, v, segment_ids=ids)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert not np.any(out[0, -2:])  # padding outputs zeros


def test_linear_gradients_match_reference():
    q, k, v = qkv(2)
    ids = jnp.asarray(SEGMENTS)
    w = normal(np.random.default_rng(3), (B, T, 4, 3))

    def loss(fn, q, k, v):
        return jnp.sum(fn(q, k, v, segment_ids=ids) * w)

    grad = lambda fn: jit_fast(jax.grad(functools.partial(loss, fn), argnums=(0, 1, 2)))  # noqa: E731
    chunked = grad(functools.partial(linear_attention, chunk_size=4))(q, k, v)
    reference = grad(linear_attention_reference)(q, k, v)
    for got, want in zip(chunked, reference, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        assert np.abs(want).max() > 1e-3


def test_linear_rejects_bad_arguments(cfg):
    q, k, v = qkv()
    with pytest.raises(ValueError, match="feature_map 'softmax'"):
        linear_attention(q, k, v, feature_map="softmax")
    with pytest.raises(ValueError, match="num_kv_heads=3"):
        linear_attention(q, jnp.zeros((B, T, 3, 4)), jnp.zeros((B, T, 3, 3)))
    with pytest.raises(ValueError, match="chunk_size"):
        linear_attention(q, k, v, chunk_size=0)
    with pytest.raises(ValueError, match="segment_ids shape"):
        linear_attention(q, k, v, segment_ids=jnp.ones((B, T + 1), jnp.int32))
    with pytest.raises(ValueError, match="feature_map 'cosine'"):
        construct(LinearAttention, cfg, rngs=nnx.Rngs(0), feature_map="cosine")


# ----------------------------------------------------------------------------------------------
# Selective scan kernel


def scan_args(seed=0, d=5, n=3):
    rng = np.random.default_rng(seed)
    return (normal(rng, (B, T, d)), jax.nn.softplus(normal(rng, (B, T, d))),
            -jnp.exp(normal(rng, (d, n), 0.5)), normal(rng, (B, T, n)), normal(rng, (B, T, n)),
            normal(rng, (d,)))


@functools.cache
def _scan_reference(segments: bool):
    ids = jnp.asarray(SEGMENTS) if segments else None
    return jit_fast(functools.partial(selective_scan_reference, segment_ids=ids))(*scan_args())


@pytest.mark.parametrize("segments", [False, True])
@pytest.mark.parametrize("chunk_size", [None, 1, 4, 64])
def test_selective_scan_matches_reference(chunk_size, segments):
    args = scan_args()
    ids = jnp.asarray(SEGMENTS) if segments else None
    ref = _scan_reference(segments)
    out = jit_fast(functools.partial(selective_scan, chunk_size=chunk_size,
                                     segment_ids=ids))(*args)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    if segments:
        assert not np.any(out[0, -2:])


@pytest.mark.parametrize("chunk_size", [None, 4])
def test_selective_scan_gradients_match_reference(chunk_size):
    args = scan_args(1)
    ids = jnp.asarray(SEGMENTS)
    w = normal(np.random.default_rng(2), (B, T, 5))

    def grads(fn):
        loss = lambda *a: jnp.sum(fn(*a, segment_ids=ids) * w)  # noqa: E731
        return jit_fast(jax.grad(loss, argnums=tuple(range(6))))(*args)

    got = grads(functools.partial(selective_scan, chunk_size=chunk_size))
    for g, r in zip(got, grads(selective_scan_reference), strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)
        assert np.abs(r).max() > 1e-3


def test_causal_conv_stops_at_segment_boundaries():
    x_bte = jnp.ones((1, 6, 1))
    w_ke = jnp.array([[1000.0], [100.0], [10.0], [1.0]])
    ids = jnp.array([[1, 1, 1, 1, 2, 2]])
    y = jit_fast(causal_depthwise_conv)(x_bte, w_ke, jnp.zeros((1,)), ids)[0, :, 0]
    np.testing.assert_array_equal(y, [1, 11, 111, 1111, 1, 11])


# ----------------------------------------------------------------------------------------------
# Both mixers as modules

MIXERS = ["linear", "mamba"]


@pytest.fixture
def module(request, linear_module, mamba_module):
    return {"linear": linear_module, "mamba": mamba_module}[request.param]


@pytest.mark.parametrize("module", MIXERS, indirect=True)
def test_mixer_is_causal(module, cfg):
    rng = np.random.default_rng(4)
    x_btd = normal(rng, (B, T, cfg.d_model))
    changed = x_btd.at[:, 6].set(normal(rng, (B, cfg.d_model)))
    y, y_changed = mix(module, x_btd), mix(module, changed)
    assert y.shape == x_btd.shape
    np.testing.assert_allclose(y_changed[:, :6], y[:, :6], rtol=1e-6, atol=1e-6)
    assert np.abs(y_changed[:, 6:] - y[:, 6:]).min(axis=-1).max() > 1e-4


@pytest.mark.parametrize("module", MIXERS, indirect=True)
def test_packed_sequences_do_not_leak(module, cfg):
    x_btd = normal(np.random.default_rng(5), (1, T, cfg.d_model))
    packed = mix(module, x_btd, jnp.asarray(SEGMENTS[:1]))
    first = mix(module, x_btd[:, :5])
    second = mix(module, x_btd[:, 5:11], jnp.ones((1, 6), jnp.int32))
    np.testing.assert_allclose(packed[:, :5], first, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(packed[:, 5:11], second, rtol=1e-5, atol=1e-5)
    assert not np.any(packed[:, 11:])


@pytest.mark.parametrize("module", MIXERS, indirect=True)
def test_bfloat16_compute_runs(module, cfg):
    cls = type(module)
    kwargs = {"chunk_size": 4} if cls is LinearAttention else {"scan_chunk_size": 4}
    bf16_cfg = tiny_config(dtype="bfloat16")
    with nnx.use_eager_sharding(False):
        graphdef = nnx.graphdef(nnx.eval_shape(lambda: construct(cls, bf16_cfg,
                                                                 rngs=nnx.Rngs(0), **kwargs)))
    bf16 = nnx.merge(graphdef, nnx.state(module))
    x_btd = normal(np.random.default_rng(6), (B, T, cfg.d_model))
    y = mix(bf16, x_btd, jnp.asarray(SEGMENTS))
    assert y.dtype == jnp.bfloat16
    np.testing.assert_allclose(y.astype(jnp.float32), mix(module, x_btd, jnp.asarray(SEGMENTS)),
                               rtol=0.1, atol=0.05)


@pytest.mark.parametrize("cls", [LinearAttention, MambaBlock])
def test_abstract_build_and_logical_specs(cls, cfg):
    with nnx.use_eager_sharding(False):
        abstract = nnx.eval_shape(lambda: construct(cls, cfg, rngs=nnx.Rngs(0)))
    state = nnx.state(abstract, nnx.Param)
    leaves = jax.tree.leaves(state)
    specs = jax.tree.leaves(nnx.get_partition_spec(state),
                            is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
    assert len(leaves) == len(specs) == len(jax.tree.leaves(nnx.state(abstract)))
    assert all(isinstance(x, jax.ShapeDtypeStruct) for x in leaves)
    for leaf, spec in zip(leaves, specs, strict=True):
        assert isinstance(spec, jax.sharding.PartitionSpec) and len(spec) == leaf.ndim, spec
        assert set(spec) - {None} <= LOGICAL_NAMES, spec
    if cls is LinearAttention:
        assert tuple(nnx.get_partition_spec(state)["w_dkh_k"].get_value()) == (
            "embed", "kv_heads", "head_dim")
    else:
        assert tuple(nnx.get_partition_spec(state)["a_log_en"].get_value()) == ("mlp", None)


def test_sharded_mamba_forward_matches(mamba_module, cfg):
    """Abstract build under a mesh, state sharded by the logical rules, same outputs."""
    mesh = jax.make_mesh((2, 2, 2), ("data", "fsdp", "tensor"),
                         axis_types=(jax.sharding.AxisType.Auto,) * 3)
    x_btd = normal(np.random.default_rng(7), (B, T, cfg.d_model))
    with jax.set_mesh(mesh), nnx.logical_axis_rules(DEFAULT_LOGICAL_AXIS_RULES):
        abstract = nnx.eval_shape(lambda: construct(MambaBlock, cfg, rngs=nnx.Rngs(0),
                                                    scan_chunk_size=4))
        assert abstract.w_de_x.get_value().sharding.spec == jax.sharding.PartitionSpec(
            "fsdp", "tensor")
        graphdef, state = nnx.split(mamba_module)
        state = jax.device_put(state, nnx.get_named_sharding(state, mesh))
        y = _mix(graphdef, state, x_btd, jnp.asarray(SEGMENTS))
    np.testing.assert_allclose(y, mix(mamba_module, x_btd, jnp.asarray(SEGMENTS)),
                               rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# Mamba block


def test_mamba_init(mamba_module):
    dt = jax.nn.softplus(mamba_module.b_e_dt[...])
    assert dt.shape == (64,) and 1e-3 <= dt.min() and dt.max() <= 1e-1
    np.testing.assert_allclose(mamba_module._a_en()[3], -np.arange(1, 17), rtol=1e-6)


@functools.partial(jit_fast, static_argnums=0)
def _decode(graphdef, state, x_btd):
    module = nnx.merge(graphdef, state)

    def step(cache, x_bd):
        y_bd, cache = module.step(x_bd, cache)
        return cache, y_bd

    _, y_tbd = jax.lax.scan(step, module.init_cache_state(x_btd.shape[0]),
                            jnp.moveaxis(x_btd, 1, 0))
    return jnp.moveaxis(y_tbd, 0, 1)


def test_mamba_step_matches_forward(mamba_module, cfg):
    x_btd = normal(np.random.default_rng(8), (B, T, cfg.d_model))
    stepped = _decode(*nnx.split(mamba_module), x_btd)
    np.testing.assert_allclose(stepped, mix(mamba_module, x_btd), rtol=1e-5, atol=1e-5)
    conv, ssm = mamba_module.init_cache_state(3)
    assert conv.shape == (3, 3, 64) and ssm.shape == (3, 64, 16)


# ----------------------------------------------------------------------------------------------
# make_mixer


def test_make_mixer_builds_each_kind_from_the_config(cfg):
    windowed = tiny_config(sliding_window=3, attention_impl="blockwise", dtype="bfloat16")
    with nnx.use_eager_sharding(False):
        built = {kind: nnx.eval_shape(lambda kind=kind: make_mixer(kind, windowed,
                                                                   rngs=nnx.Rngs(0)))
                 for kind in ("attention", "linear", "mamba")}
    attn = built["attention"]
    assert type(attn) is Attention and attn.rope and attn.causal
    assert attn.window == (3, 0) and attn.impl == "blockwise" and attn.dtype == jnp.bfloat16
    assert type(built["linear"]) is LinearAttention and not built["linear"].rope
    assert type(built["mamba"]) is MambaBlock and built["mamba"].d_inner == 2 * cfg.d_model
    with pytest.raises(ValueError, match="sequence mixer 'rnn'"):
        make_mixer("rnn", cfg, rngs=nnx.Rngs(0))
