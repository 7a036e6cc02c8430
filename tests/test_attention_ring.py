"""Ring attention against the float32 XLA reference on 8 fake CPU devices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrojax.config import MeshConfig
from astrojax.models.attention import UnsupportedOption
from astrojax.models.attention.reference import xla_attention
from astrojax.models.attention.ring import ring_attention, sequence_permutation
from astrojax.sharding import make_mesh


def _inputs(b=2, length=64, n=4, kh=2, h=16, dtype=jnp.float32, seed=0):
    keys = jax.random.split(jax.random.key(seed), 4)
    q = jax.random.normal(keys[0], (b, length, n, h), dtype)
    k = jax.random.normal(keys[1], (b, length, kh, h), dtype)
    v = jax.random.normal(keys[2], (b, length, kh, h), dtype)
    d_out = jax.random.normal(keys[3], (b, length, n, h), dtype)
    return q, k, v, d_out


def _out_and_grads(fn, q, k, v, d_out, **kwargs):
    def run(q, k, v, d_out):
        out, vjp = jax.vjp(lambda q, k, v: fn(q, k, v, **kwargs), q, k, v)
        return out, *vjp(d_out)

    return jax.jit(run)(q, k, v, d_out)


def _check_against_reference(mesh, *, dtype=jnp.float32, rtol=1e-5, shapes=None,
                             load_balance="zigzag", skip_masked_blocks=True, **kwargs):
    q, k, v, d_out = _inputs(dtype=dtype, **(shapes or {}))
    with jax.set_mesh(mesh):
        got = _out_and_grads(ring_attention, q, k, v, d_out, load_balance=load_balance,
                             skip_masked_blocks=skip_masked_blocks, **kwargs)
    want = _out_and_grads(xla_attention, *(x.astype(jnp.float32) for x in (q, k, v, d_out)),
                          **kwargs)
    for name, a, b in zip(("out", "dq", "dk", "dv"), got, want, strict=True):
        assert a.dtype == dtype, name
        b = np.asarray(b)
        np.testing.assert_allclose(np.asarray(a, np.float32), b, rtol=rtol,
                                   atol=rtol * np.abs(b).max(), err_msg=name)
    return got


def _segments(b, length):
    """Two documents then padding in row 0; one document and a longer pad in row 1."""
    ids = np.zeros((b, length), np.int32)
    ids[0, : length // 3] = 1
    ids[0, length // 3 : length - 7] = 2
    ids[1, : length // 2 + 5] = 3
    return jnp.asarray(ids)


@pytest.mark.parametrize("load_balance", ["zigzag", "striped", None])
def test_causal_matches_reference(load_balance):
    _check_against_reference(make_mesh(MeshConfig(data=2, context=4)), causal=True,
                             load_balance=load_balance)


def test_non_causal_context_8():
    _check_against_reference(make_mesh(MeshConfig(data=1, context=8)),
                             shapes=dict(length=128), scale=0.3)


def test_context_1_is_plain_attention():
    _check_against_reference(make_mesh(MeshConfig(data=8, context=1)), causal=True)


@pytest.mark.parametrize(("causal", "window", "load_balance", "context"),
                         [(False, (5, 3), "zigzag", 4), (True, (16, 0), "striped", 8)])
def test_window(causal, window, load_balance, context):
    _check_against_reference(make_mesh(MeshConfig(data=8 // context, context=context)),
                             causal=causal, window=window, load_balance=load_balance,
                             shapes=dict(length=128))


@pytest.mark.parametrize(("causal", "load_balance"), [(True, "zigzag"), (False, None)])
def test_segments_with_padding(causal, load_balance):
    ids = _segments(2, 64)
    out, dq, _, _ = _check_against_reference(
        make_mesh(MeshConfig(data=2, context=4)), causal=causal, load_balance=load_balance,
        q_segment_ids=ids, kv_segment_ids=ids)
    padding = np.asarray(ids) == 0
    assert padding.any()
    assert not np.asarray(out)[padding].any()
    assert not np.asarray(dq)[padding].any()


@pytest.mark.parametrize(("n", "kh"), [(4, 2), (8, 2)])
def test_gqa_with_heads_over_tensor(n, kh):
    _check_against_reference(make_mesh(MeshConfig(data=1, context=4, tensor=2)), causal=True,
                             shapes=dict(n=n, kh=kh, h=32))


def test_bfloat16():
    _check_against_reference(make_mesh(MeshConfig(data=2, context=4)), causal=True,
                             dtype=jnp.bfloat16, rtol=3e-2)


def test_skipping_masked_blocks_changes_nothing():
    ids = _segments(2, 64)
    kwargs = dict(causal=True, window=(20, 0), q_segment_ids=ids, kv_segment_ids=ids)
    mesh = make_mesh(MeshConfig(data=2, context=4))
    skipped = _check_against_reference(mesh, **kwargs)
    with jax.set_mesh(mesh):
        dense = _out_and_grads(ring_attention, *_inputs(), skip_masked_blocks=False, **kwargs)
    for a, b in zip(skipped, dense, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)
    with jax.set_mesh(mesh):
        jaxprs = {skip: str(jax.make_jaxpr(lambda *a, skip=skip: ring_attention(
            *a, skip_masked_blocks=skip, **kwargs))(*_inputs()[:3])) for skip in (True, False)}
    assert "cond[" in jaxprs[True] and "cond[" not in jaxprs[False]


def test_output_is_sharded_over_context():
    mesh = make_mesh(MeshConfig(data=2, context=4))
    q, k, v, _ = _inputs()
    with jax.set_mesh(mesh):
        out = jax.jit(lambda q, k, v: ring_attention(q, k, v, causal=True))(q, k, v)
    assert tuple(out.sharding.spec)[:2] == ("data", "context")
    assert {s.data.shape for s in out.addressable_shards} == {(1, 16, 4, 16)}


def _causal_pairs_per_device(perm, context):
    """Visible (query, key) pairs of each device's queries under causal masking."""
    return (perm + 1).reshape(context, -1).sum(axis=1)


def _blocks_computed_per_device(perm, context, sub_blocks):
    """Causal sub-blocks with any visible pair (the ones the ring does not skip) per device."""
    chunks = perm.reshape(context * sub_blocks, -1)
    visible = chunks.min(axis=1)[None, :] <= chunks.max(axis=1)[:, None]  # [q chunk, kv chunk]
    return visible.reshape(context, -1).sum(axis=1)


def test_load_balancing_evens_causal_work():
    context, length = 8, 1024
    ratio = {}
    for balance in ("zigzag", "striped", None):
        work = _causal_pairs_per_device(sequence_permutation(length, context, balance), context)
        assert work.sum() == length * (length + 1) // 2
        ratio[balance] = work.max() / work.min()
    assert ratio["zigzag"] == 1.0
    assert ratio["striped"] < 1.02
    assert ratio[None] > 10
    zigzag_blocks = _blocks_computed_per_device(sequence_permutation(length, context, "zigzag"),
                                                context, 2)
    assert set(zigzag_blocks.tolist()) == {2 * context + 1}  # of (2C)^2/C = 4C: about half
    contiguous_blocks = _blocks_computed_per_device(np.arange(length), context, 1)
    assert contiguous_blocks.tolist() == list(range(1, context + 1))


def test_permutations_are_permutations():
    for balance in ("zigzag", "striped", None):
        perm = sequence_permutation(48, 4, balance)
        assert sorted(perm.tolist()) == list(range(48))
    assert sequence_permutation(16, 2, "zigzag").tolist() == [
        0, 1, 2, 3, 12, 13, 14, 15, 4, 5, 6, 7, 8, 9, 10, 11]
    assert sequence_permutation(8, 2, "striped").tolist() == [0, 2, 4, 6, 1, 3, 5, 7]


def test_needs_a_mesh():
    q, k, v, _ = _inputs()
    with pytest.raises(ValueError, match="'context'.*no mesh is set"):
        ring_attention(q, k, v)


def test_needs_the_context_axis():
    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    q, k, v, _ = _inputs()
    with jax.set_mesh(mesh), pytest.raises(ValueError, match="axis 'context'"):
        ring_attention(q, k, v)


def test_bad_lengths_and_options():
    mesh = make_mesh(MeshConfig(data=2, context=4))
    q, k, v, _ = _inputs(length=36)  # 36 divides by 4 but not by 2 * 4

    def shape_of(*args, **kwargs):
        return jax.eval_shape(lambda *a: ring_attention(*a, **kwargs), *args).shape

    with jax.set_mesh(mesh):
        with pytest.raises(UnsupportedOption, match="sequence length 36"):
            shape_of(q, k, v)
        assert shape_of(q, k, v, load_balance="striped") == q.shape  # 4 chunks of 9 are fine
        with pytest.raises(UnsupportedOption, match="q_len != kv_len"):
            shape_of(q, k[:, :32], v[:, :32], load_balance=None)
        with pytest.raises(ValueError, match="load_balance"):
            shape_of(q, k, v, load_balance="spiral")
        with pytest.raises(ValueError, match="kv_segment_ids"):
            shape_of(q, k, v, q_segment_ids=jnp.ones(q.shape[:2], jnp.int32))


def test_mesh_axes_come_from_the_logical_rules():
    # The sequence rule names fsdp here: the ring runs over fsdp, the batch over data.
    from astrojax import sharding
    from astrojax.config import DEFAULT_LOGICAL_AXIS_RULES

    rules = tuple(r for r in DEFAULT_LOGICAL_AXIS_RULES if r[0] not in ("batch", "sequence"))
    rules += (("batch", "data"), ("sequence", "fsdp"))
    mesh = make_mesh(MeshConfig(data=2, fsdp=4))
    with sharding.axis_rules(rules):
        _check_against_reference(mesh, causal=True)
        q, k, v, _ = _inputs()
        with jax.set_mesh(mesh):
            out = jax.jit(lambda q, k, v: ring_attention(q, k, v, causal=True))(q, k, v)
    assert tuple(out.sharding.spec)[:2] == ("data", "fsdp")
    bad = rules[:-1] + (("sequence", ("fsdp", "context")),)
    with sharding.axis_rules(bad), jax.set_mesh(mesh), pytest.raises(ValueError,
                                                                      match="one mesh axis"):
        jax.eval_shape(ring_attention, q, k, v)
