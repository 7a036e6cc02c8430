"""The config-free building blocks: logical axes on every parameter, causal and non-causal
attention, rotary tables, the residual block's wiring, and the errors that name bad arguments.
The models' own tests cover the layers inside them (parity, sharding, dtypes)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from astrojax.config import DEFAULT_LOGICAL_AXIS_RULES
from astrojax.models import layers

LOGICAL_NAMES = {name for name, _ in DEFAULT_LOGICAL_AXIS_RULES}
D, N, K, H = 16, 4, 2, 4  # width, heads, kv heads, head_dim

jit_fast = functools.partial(
    jax.jit, compiler_options={"xla_backend_optimization_level": 0,
                               "xla_llvm_disable_expensive_passes": True})


def filled(make, seed: int = 0):
    """``make(rngs)`` built abstractly and filled with numpy normals (nothing to compile)."""
    with nnx.use_eager_sharding(False):
        abstract = nnx.eval_shape(lambda: make(nnx.Rngs(0)))
    rng = np.random.default_rng(seed)
    state = jax.tree.map(lambda x: jnp.asarray(rng.normal(0.0, 0.3, x.shape), x.dtype),
                         nnx.state(abstract))
    return nnx.merge(nnx.graphdef(abstract), state)


def attention(rngs, **kw):
    return layers.Attention(D, N, K, H, impl="xla", rngs=rngs, **kw)


def block(rngs):
    return layers.Block(D, 32, functools.partial(attention, causal=True, rope=True), rngs=rngs)


@functools.partial(jit_fast, static_argnums=0)
def _call(graphdef, state, *args):
    return nnx.merge(graphdef, state)(*args)


def call(module, *args):
    return _call(*nnx.split(module), *args)


@pytest.mark.parametrize("make", [
    block, attention,
    lambda rngs: layers.Dense(3, D, (None, "embed"), rngs=rngs),
    lambda rngs: layers.MLP(D, 32, 2, ("embed", "mlp", None), rngs=rngs),
    lambda rngs: layers.LayerNorm(D, rngs=rngs),
    lambda rngs: nnx.Dict(table=layers.embedding_table(64, D, rngs=rngs)),
])
def test_every_parameter_has_known_logical_axes(make):
    with nnx.use_eager_sharding(False):
        params = nnx.state(nnx.eval_shape(lambda: make(nnx.Rngs(0))), nnx.Param)
    leaves = jax.tree.leaves(params)
    specs = jax.tree.leaves(nnx.get_partition_spec(params),
                            is_leaf=lambda s: isinstance(s, jax.sharding.PartitionSpec))
    assert len(specs) == len(leaves) > 0
    for leaf, spec in zip(leaves, specs, strict=True):
        assert isinstance(spec, jax.sharding.PartitionSpec) and len(spec) == leaf.ndim, spec
        assert set(spec) - {None} <= LOGICAL_NAMES, spec


def test_causal_attention_hides_the_future_and_non_causal_does_not():
    x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 6, D)), jnp.float32)
    changed = x.at[:, 4].add(1.0)
    for causal in (True, False):
        layer = filled(functools.partial(attention, causal=causal))
        before, after = call(layer, x), call(layer, changed)
        moved = np.abs(np.asarray(after - before)).max(axis=(0, 2))
        assert (moved[:4].max() == 0.0) == causal, (causal, moved)
        assert moved[4:].min() > 1e-4


def test_rope_tables_are_required_and_used():
    x = jnp.asarray(np.random.default_rng(2).normal(size=(1, 5, D)), jnp.float32)
    layer = filled(functools.partial(attention, causal=True, rope=True))
    with pytest.raises(ValueError, match="rotary"):
        layer(x)
    positions = jnp.arange(5)[None]
    sin, cos = layers.rope_sin_cos(positions, H, 10_000.0)
    shifted = layers.rope_sin_cos(positions + 7, H, 10_000.0)
    # Rotations are relative: shifting every position alike leaves the output unchanged.
    np.testing.assert_allclose(call(layer, x, *shifted), call(layer, x, sin, cos), atol=1e-5)
    plain = nnx.merge(nnx.graphdef(filled(attention)), nnx.state(layer))
    assert np.abs(np.asarray(call(layer, x, sin, cos) - call(plain, x))).max() > 1e-3


def test_block_is_two_pre_norm_residual_branches():
    blk = filled(block)
    x = jnp.asarray(np.random.default_rng(3).normal(size=(2, 5, D)), jnp.float32)
    sin, cos = layers.rope_sin_cos(jnp.broadcast_to(jnp.arange(5), (2, 5)), H, 10_000.0)

    @jit_fast
    def by_hand(state, x, sin, cos):
        b = nnx.merge(nnx.graphdef(blk), state)
        x = x + b.attn(b.attn_norm(x), sin, cos)
        return x + b.mlp(b.mlp_norm(x))

    np.testing.assert_allclose(call(blk, x, sin, cos), by_hand(nnx.state(blk), x, sin, cos),
                               rtol=1e-6, atol=1e-6)
    assert [type(m).__name__ for m in (blk.attn_norm, blk.attn, blk.mlp_norm, blk.mlp)] == [
        "RMSNorm", "Attention", "RMSNorm", "SwiGLU"]


def test_rms_norm_normalises_in_float32_and_returns_its_dtype():
    with nnx.use_eager_sharding(False):
        norm = layers.RMSNorm(D, dtype="bfloat16", rngs=nnx.Rngs(0))
    x = jnp.asarray(np.random.default_rng(4).normal(0.0, 5.0, (3, D)), jnp.float32)
    y = norm(x)
    assert y.dtype == jnp.bfloat16
    np.testing.assert_allclose(jnp.sqrt(jnp.mean(y.astype(jnp.float32) ** 2, -1)), 1.0,
                               rtol=1e-2)


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="dtype 'float8'"):
        layers.to_dtype("float8")
    with pytest.raises(ValueError, match="two different names"):
        layers.Dense(D, D, ("embed", "embed"), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="num_kv_heads=3 must divide num_heads=4"):
        layers.Attention(D, 4, 3, H, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="head_dim=3 must be even"):
        layers.Attention(D, 4, 2, 3, rope=True, rngs=nnx.Rngs(0))
