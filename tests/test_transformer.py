"""Tests for the decoder-only transformer: masking, RoPE, GQA, scan/remat, dtypes, sharding."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from astrojax.config import DEFAULT_LOGICAL_AXIS_RULES
from astrojax.models.layers import rope_sin_cos
from astrojax.models.mixers import make_mixer
from astrojax.models.transformer import Transformer, count_params, tiny_config

LOGICAL_NAMES = {name for name, _ in DEFAULT_LOGICAL_AXIS_RULES}
MESH_NAMES = {"data", "fsdp", "tensor"}

# XLA:CPU compiles threefry very slowly (~1.5 s per random op here); initialisation randomness
# does not matter to these tests, so real builds use the RngBitGenerator key instead.
KEY_IMPL = "unsafe_rbg"


def abstract(cfg, cls=Transformer):
    """Shapes-only model (no compile): the lead builds it this way before sharding."""
    with nnx.use_eager_sharding(False):
        return nnx.eval_shape(lambda: cls(cfg, rngs=nnx.Rngs(0)))


def build(cfg, seed: int = 0) -> Transformer:
    """A model initialised by its own initialisers, in one compiled call."""
    key = jax.random.key(seed, impl=KEY_IMPL)
    with nnx.use_eager_sharding(False):
        graphdef = nnx.graphdef(abstract(cfg))
        return nnx.merge(graphdef, jit_fast(
            lambda: nnx.state(Transformer(cfg, rngs=nnx.Rngs(key))))())


def with_config(model: Transformer, cfg, dtype=None) -> Transformer:
    """A model of ``cfg`` (same parameter shapes, e.g. other remat or dtype) with ``model``'s
    parameters, optionally cast to ``dtype``."""
    state = nnx.state(model)
    if dtype is not None:
        state = jax.tree.map(lambda x: x.astype(dtype), state)
    return nnx.merge(nnx.graphdef(abstract(cfg)), state)


def random_fill(module, seed: int, scale: float = 0.3):
    """Fills an abstract module with random parameters (numpy: nothing to compile)."""
    rng = np.random.default_rng(seed)
    state = jax.tree.map(
        lambda x: jnp.asarray(rng.normal(0.0, scale, x.shape), x.dtype), nnx.state(module))
    return nnx.merge(nnx.graphdef(module), state)


# Tests compile many small programs; XLA:CPU's backend optimisations dominate their compile
# time and buy nothing at these sizes.
jit_fast = functools.partial(
    jax.jit, compiler_options={"xla_backend_optimization_level": 0,
                               "xla_llvm_disable_expensive_passes": True})


@functools.partial(jit_fast, static_argnums=0)
def _forward(graphdef, state, tokens_bt, positions_bt, segment_ids_bt):
    model = nnx.merge(graphdef, state)
    return model(tokens_bt, positions_bt=positions_bt, segment_ids_bt=segment_ids_bt)


def forward(model, tokens_bt, positions_bt=None, segment_ids_bt=None):
    return _forward(*nnx.split(model), tokens_bt, positions_bt, segment_ids_bt)


@functools.partial(jit_fast, static_argnums=0)
def _forward_many(graphdefs, states, tokens_bt):
    return [nnx.merge(g, s)(tokens_bt) for g, s in zip(graphdefs, states, strict=True)]


def forward_many(models, tokens_bt):
    """Logits of several models in one compiled call (one compile instead of several)."""
    graphdefs, states = zip(*(nnx.split(m) for m in models), strict=True)
    return _forward_many(graphdefs, states, tokens_bt)


def next_token_loss(model, tokens_bt):
    logits_btv = model(tokens_bt[:, :-1])
    return optax.softmax_cross_entropy_with_integer_labels(logits_btv, tokens_bt[:, 1:]).mean()


@functools.partial(jit_fast, static_argnums=0)
def _losses_and_grads(graphdefs, state, tokens_bt):
    return [jax.value_and_grad(lambda s, g=g: next_token_loss(nnx.merge(g, s), tokens_bt))(state)
            for g in graphdefs]


def random_tokens(cfg, shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).integers(1, cfg.vocab_size, shape), jnp.int32)


def max_abs(a, b) -> float:
    return float(jnp.max(jnp.abs(a - b)))


B, T = 2, 12  # one input shape for most tests, so forward compiles once per signature
ARANGE_BT = jnp.broadcast_to(jnp.arange(T, dtype=jnp.int32), (B, T))
ONES_BT = jnp.ones((B, T), jnp.int32)


@pytest.fixture(scope="module")
def cfg():
    return tiny_config()


@pytest.fixture(scope="module")
def model(cfg):
    return build(cfg)


# ----------------------------------------------------------------------------------------------
# Shapes, masking, positions


def test_output_shape_and_dtype(cfg, model):
    logits_btv = forward(model, random_tokens(cfg, (B, T)))
    assert logits_btv.shape == (B, T, cfg.vocab_size)
    assert logits_btv.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(logits_btv)))


def test_causality(cfg, model):
    tokens_bt = random_tokens(cfg, (B, T))
    changed_bt = tokens_bt.at[:, 7].set(tokens_bt[:, 7] % (cfg.vocab_size - 1) + 1)
    a, b = forward(model, tokens_bt), forward(model, changed_bt)
    np.testing.assert_allclose(a[:, :7], b[:, :7], atol=1e-6)
    assert max_abs(a[:, 7:], b[:, 7:]) > 1e-3


def test_packed_sequence_matches_alone(cfg, model):
    seq_a, seq_b = random_tokens(cfg, (B, 4), seed=1), random_tokens(cfg, (B, 6), seed=2)
    tokens_bt = jnp.concatenate([seq_a, seq_b, jnp.zeros((B, 2), jnp.int32)], axis=1)
    segment_ids_bt = jnp.array([[1] * 4 + [2] * 6 + [0] * 2] * B, jnp.int32)
    positions_bt = jnp.array([list(range(4)) + list(range(6)) + [0, 0]] * B, jnp.int32)
    packed = forward(model, tokens_bt, positions_bt, segment_ids_bt)

    # Alone: each sequence at the start of the row; what follows it cannot matter (causal).
    filler = random_tokens(cfg, (B, T), seed=3)
    alone_a = forward(model, filler.at[:, :4].set(seq_a))
    alone_b = forward(model, filler.at[:, :6].set(seq_b))
    np.testing.assert_allclose(packed[:, :4], alone_a[:, :4], atol=1e-5)
    np.testing.assert_allclose(packed[:, 4:10], alone_b[:, :6], atol=1e-5)
    assert bool(jnp.all(jnp.isfinite(packed)))

    # Without the segment mask the second sequence sees the first: the test can fail.
    unmasked = forward(model, tokens_bt, positions_bt, ONES_BT)
    assert max_abs(unmasked[:, 4:10], packed[:, 4:10]) > 1e-3


def test_rope_is_relative(cfg, model):
    tokens_bt = random_tokens(cfg, (B, T))
    base = forward(model, tokens_bt, ARANGE_BT, ONES_BT)
    np.testing.assert_allclose(forward(model, tokens_bt), base, atol=1e-5)
    np.testing.assert_allclose(forward(model, tokens_bt, ARANGE_BT + 37, ONES_BT), base,
                               atol=2e-4)
    # Positions are used: spreading them apart changes the output.
    assert max_abs(forward(model, tokens_bt, ARANGE_BT * 3, ONES_BT), base) > 1e-3


# ----------------------------------------------------------------------------------------------
# Grouped-query attention against an explicit repeat-K/V reference


def _rope_np(x_btnh, positions_bt, theta):
    half = x_btnh.shape[-1] // 2
    inv_freq = theta ** (-np.arange(half, dtype=np.float64) * 2 / x_btnh.shape[-1])
    angle = positions_bt[:, :, None, None] * inv_freq
    x1, x2 = x_btnh[..., :half], x_btnh[..., half:]
    return np.concatenate([x1 * np.cos(angle) - x2 * np.sin(angle),
                           x2 * np.cos(angle) + x1 * np.sin(angle)], axis=-1)


def _reference_attention(layer, x_btd, positions_bt, segment_ids_bt, cfg):
    w = {k: np.asarray(getattr(layer, k)[...], np.float64)
         for k in ("w_dnh", "w_dkh_k", "w_dkh_v", "w_nhd")}
    x = np.asarray(x_btd, np.float64)
    q = _rope_np(np.einsum("btd,dnh->btnh", x, w["w_dnh"]), positions_bt, cfg.rope_theta)
    k = _rope_np(np.einsum("btd,dkh->btkh", x, w["w_dkh_k"]), positions_bt, cfg.rope_theta)
    v = np.einsum("btd,dkh->btkh", x, w["w_dkh_v"])
    group = cfg.num_heads // cfg.num_kv_heads
    k, v = np.repeat(k, group, axis=2), np.repeat(v, group, axis=2)  # query head n -> kv n//g
    scores = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(cfg.head_dim)
    t = x.shape[1]
    seg = np.asarray(segment_ids_bt)
    allowed = (np.tril(np.ones((t, t), bool))[None]
               & (seg[:, :, None] == seg[:, None, :]) & (seg[:, :, None] != 0))[:, None]
    scores = np.where(allowed, scores, -1e30)
    probs = np.exp(scores - scores.max(-1, keepdims=True)) * allowed
    probs = probs / np.maximum(probs.sum(-1, keepdims=True), 1e-30)
    out = np.einsum("bnts,bsnh->btnh", probs, v)
    return np.einsum("btnh,nhd->btd", out, w["w_nhd"])


@functools.partial(jit_fast, static_argnums=0)
def _attention_layer(graphdef, state, x_btd, positions_bt, segment_ids_bt):
    layer = nnx.merge(graphdef, state)
    sin_bth, cos_bth = rope_sin_cos(positions_bt, layer.w_dnh.shape[-1], 10_000.0)
    return layer(x_btd, sin_bth, cos_bth, segment_ids_bt)


@pytest.mark.parametrize("num_kv_heads", [4, 2, 1])
def test_gqa_matches_repeated_kv_reference(num_kv_heads):
    cfg = tiny_config(num_kv_heads=num_kv_heads)
    layer = random_fill(abstract(cfg, functools.partial(make_mixer, "attention")),
                        seed=num_kv_heads)
    assert layer.w_dkh_k.shape == (cfg.d_model, num_kv_heads, cfg.head_dim)
    x_btd = np.random.default_rng(0).normal(size=(2, 7, cfg.d_model)).astype(np.float32)
    positions_bt = np.array([[0, 1, 2, 0, 1, 2, 3], [0, 1, 2, 3, 4, 5, 6]], np.int32)
    segment_ids_bt = np.array([[1, 1, 1, 2, 2, 2, 2], [1, 1, 1, 1, 1, 0, 0]], np.int32)
    got = _attention_layer(*nnx.split(layer), x_btd, positions_bt, segment_ids_bt)
    want = _reference_attention(layer, x_btd, positions_bt, segment_ids_bt, cfg)
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-4, rtol=1e-4)


def test_full_model_with_and_without_gqa(cfg):
    mha = random_fill(abstract(dataclasses.replace(cfg, num_kv_heads=cfg.num_heads)), seed=1)
    gqa = random_fill(abstract(dataclasses.replace(cfg, num_kv_heads=1)), seed=1)
    assert count_params(mha) > count_params(gqa)
    for logits_btv in forward_many([mha, gqa], random_tokens(cfg, (B, T))):
        assert logits_btv.shape == (B, T, cfg.vocab_size)
        assert bool(jnp.all(jnp.isfinite(logits_btv)))


# ----------------------------------------------------------------------------------------------
# Scan, remat, dtypes, parameter counts


def test_scanned_equals_unscanned(cfg, model):
    unscanned = random_fill(abstract(dataclasses.replace(cfg, scan_layers=False)), seed=5)
    assert count_params(unscanned) == count_params(model)
    blocks_state = nnx.state(model.blocks)
    for i, block in enumerate(unscanned.blocks):
        nnx.update(block, jax.tree.map(lambda a, i=i: a[i], blocks_state))
    nnx.update(unscanned.final_norm, nnx.state(model.final_norm))
    unscanned.embedding_vd[...] = model.embedding_vd[...]

    tokens_bt = random_tokens(cfg, (B, T))
    np.testing.assert_allclose(forward(unscanned, tokens_bt), forward(model, tokens_bt),
                               atol=1e-5)


def test_remat_matches_no_remat(cfg, model):
    tokens_bt = random_tokens(cfg, (B, T))
    policies = ("none", "full", "dots_saveable", "dots_with_no_batch_dims_saveable")
    graphdefs = tuple(nnx.graphdef(abstract(dataclasses.replace(cfg, remat_policy=p)))
                      for p in policies)
    assert len(set(graphdefs)) == len(policies)  # each model really is different
    (loss0, grads0), *others = _losses_and_grads(graphdefs, nnx.state(model), tokens_bt)
    for policy, (loss1, grads1) in zip(policies[1:], others, strict=True):
        np.testing.assert_allclose(loss1, loss0, rtol=1e-6, err_msg=policy)
        jax.tree.map(lambda a, b, p=policy: np.testing.assert_allclose(
            a, b, atol=1e-6, rtol=1e-5, err_msg=p), grads1, grads0)


@pytest.mark.parametrize("scan", [True, False])
def test_remat_policy_saves_fewer_residuals(cfg, scan):
    """Tracing only: remat must cut what the forward pass keeps for the backward pass."""
    tokens_bt = random_tokens(cfg, (B, T))

    def num_residuals(policy):
        model = abstract(dataclasses.replace(cfg, scan_layers=scan, remat_policy=policy))
        graphdef, state = nnx.split(model)
        loss = lambda s: next_token_loss(nnx.merge(graphdef, s), tokens_bt)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            jax.ad_checkpoint.print_saved_residuals(loss, state)
        return len(printed.getvalue().splitlines())

    none, dots, full = (num_residuals(p) for p in ("none", "dots_saveable", "full"))
    assert full < dots < none, (full, dots, none)


def test_bfloat16_compute_close_to_float32(cfg, model):
    bf16_compute = dataclasses.replace(cfg, dtype="bfloat16")
    bf16_all = dataclasses.replace(cfg, dtype="bfloat16", param_dtype="bfloat16")
    assert {x.dtype for x in jax.tree.leaves(nnx.state(abstract(bf16_all), nnx.Param))} == {
        jnp.dtype(jnp.bfloat16)}
    ref, bf16, bf16_params = forward_many(
        [model, with_config(model, bf16_compute), with_config(model, bf16_all, jnp.bfloat16)],
        random_tokens(cfg, (B, T)))
    scale = float(jnp.max(jnp.abs(ref)))
    assert bf16.dtype == bf16_params.dtype == jnp.float32
    assert 0 < max_abs(bf16, ref) < 0.05 * scale + 0.05  # > 0: it really ran in bfloat16
    assert max_abs(bf16_params, ref) < 0.1 * scale + 0.1


def test_tied_vs_untied_param_count(cfg):
    tied = count_params(abstract(cfg))
    untied = count_params(abstract(dataclasses.replace(cfg, tie_embeddings=False)))
    assert untied - tied == cfg.vocab_size * cfg.d_model
    d, f, n, k, h = cfg.d_model, cfg.mlp_dim, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    per_layer = 2 * d + 2 * d * n * h + 2 * d * k * h + 3 * d * f
    assert tied == cfg.vocab_size * d + d + cfg.num_layers * per_layer


def test_untied_output_projection_is_used(cfg):
    model = random_fill(abstract(dataclasses.replace(cfg, tie_embeddings=False)), seed=2)
    tokens_bt = random_tokens(cfg, (B, T))
    before = forward(model, tokens_bt)
    model.w_dv_out[...] = model.w_dv_out[...] * 2.0
    np.testing.assert_allclose(forward(model, tokens_bt), 2.0 * before, rtol=1e-5, atol=1e-5)


def test_invalid_config_raises():
    with pytest.raises(ValueError, match="num_kv_heads"):
        abstract(tiny_config(num_kv_heads=3))
    with pytest.raises(ValueError, match="remat_policy"):
        abstract(tiny_config(remat_policy="everything"))


# ----------------------------------------------------------------------------------------------
# Sharding metadata


def _is_spec(x):
    return isinstance(x, jax.sharding.PartitionSpec)


@pytest.mark.parametrize("scan", [True, False])
def test_logical_partition_specs(cfg, scan):
    state = nnx.state(abstract(dataclasses.replace(cfg, scan_layers=scan)), nnx.Param)
    leaves = jax.tree.leaves_with_path(state)
    spec_leaves = jax.tree.leaves(nnx.get_partition_spec(state), is_leaf=_is_spec)
    assert len(leaves) == len(spec_leaves) == (2 + 9 * (1 if scan else cfg.num_layers))
    by_name = {}
    for (path, value), spec in zip(leaves, spec_leaves, strict=True):
        name = jax.tree_util.keystr(path).removesuffix(".value")
        by_name[name] = spec
        assert _is_spec(spec) and len(spec) == value.ndim, (name, spec)
        assert set(spec) <= LOGICAL_NAMES and not set(spec) & MESH_NAMES, (name, spec)
        assert (spec[0] == "layers") == (scan and "blocks" in name), (name, spec)
    prefix = ("layers",) if scan else ()
    block = "['blocks']" if scan else "['blocks'][1]"
    expected = {
        "['embedding_vd']": ("vocab", "embed"),
        "['final_norm']['scale_d']": ("norm",),
        f"{block}['attn']['w_dnh']": (*prefix, "embed", "heads", "head_dim"),
        f"{block}['attn']['w_dkh_k']": (*prefix, "embed", "kv_heads", "head_dim"),
        f"{block}['attn']['w_dkh_v']": (*prefix, "embed", "kv_heads", "head_dim"),
        f"{block}['attn']['w_nhd']": (*prefix, "heads", "head_dim", "embed"),
        f"{block}['mlp']['w_df_gate']": (*prefix, "embed", "mlp"),
        f"{block}['mlp']['w_df_up']": (*prefix, "embed", "mlp"),
        f"{block}['mlp']['w_fd_down']": (*prefix, "mlp", "embed"),
        f"{block}['attn_norm']['scale_d']": (*prefix, "norm"),
        f"{block}['mlp_norm']['scale_d']": (*prefix, "norm"),
    }
    for name, spec in expected.items():
        assert tuple(by_name[name]) == spec, name
    untied = nnx.state(abstract(dataclasses.replace(cfg, tie_embeddings=False)), nnx.Param)
    assert tuple(nnx.get_partition_spec(untied)["w_dv_out"].get_value()) == ("embed", "vocab")


def test_sharded_forward_matches(cfg, model):
    """The lead's flow: abstract build under a mesh, shard the state by logical rules, run."""
    n = len(jax.devices())
    tensor = 2 if n % 2 == 0 else 1
    fsdp = 2 if n % 4 == 0 else 1
    mesh = jax.make_mesh((n // (tensor * fsdp), fsdp, tensor), ("data", "fsdp", "tensor"),
                         axis_types=(jax.sharding.AxisType.Auto,) * 3)
    tokens_bt = random_tokens(cfg, (B * n, T))
    expected = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(
        None, "fsdp", "tensor", None))  # w_dnh: (layers, embed, heads, head_dim)
    with jax.set_mesh(mesh), nnx.logical_axis_rules(DEFAULT_LOGICAL_AXIS_RULES):
        abstract_model = nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0)))
        assert abstract_model.blocks.attn.w_dnh.get_value().sharding.spec == expected.spec
        graphdef, state = nnx.split(model)
        shardings = nnx.get_named_sharding(state, mesh)
        assert shardings["blocks"]["attn"]["w_dnh"].get_value().is_equivalent_to(expected, 4)
        state = jax.device_put(state, shardings)
        logits = _forward(graphdef, state, tokens_bt, None, None)
    np.testing.assert_allclose(logits, forward(model, tokens_bt), atol=1e-5)


# ----------------------------------------------------------------------------------------------
# Learning


def test_sgd_lowers_loss_on_repeated_sequence(cfg, model):
    graphdef, params = nnx.split(model)
    tx = optax.sgd(0.5)
    tokens_bt = jnp.tile(jnp.array([3, 14, 15, 9, 26, 5, 35, 8], jnp.int32), (B, 2))[:, : T + 1]

    @jit_fast
    def step(params, opt_state):
        loss, grads = jax.value_and_grad(
            lambda p: next_token_loss(nnx.merge(graphdef, p), tokens_bt))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state, losses = tx.init(params), []
    for _ in range(20):
        params, opt_state, loss = step(params, opt_state)
        losses.append(float(loss))
    assert losses[0] > 3.0  # about log(vocab) at initialisation
    assert losses[-1] < 0.5 * losses[0], losses


# ---- kernel registry, sliding window and sequence mixers inside the model --------------------


def test_attention_impls_in_config_match_the_registry():
    from astrojax.config import ATTENTION_IMPLS
    from astrojax.models.attention import IMPLS

    assert ATTENTION_IMPLS == IMPLS


def test_blockwise_impl_gives_the_same_logits(cfg, model):
    tokens = random_tokens(cfg, (2, 24))
    blockwise = with_config(model, dataclasses.replace(cfg, attention_impl="blockwise"))
    assert max_abs(forward(blockwise, tokens), forward(model, tokens)) < 1e-4


def test_sliding_window_limits_what_a_token_sees(cfg, model):
    window = dataclasses.replace(cfg, sliding_window=4)
    windowed = with_config(model, window)
    tokens = random_tokens(cfg, (1, 24))
    changed = tokens.at[0, 0].set((tokens[0, 0] + 1) % cfg.vocab_size)
    # token 0 reaches position t only through a chain of windows: 4 per layer, 2 layers
    a, b = forward(windowed, tokens), forward(windowed, changed)
    assert max_abs(a[:, 9:], b[:, 9:]) == 0.0
    assert max_abs(a[:, :5], b[:, :5]) > 0.0
    assert max_abs(forward(model, tokens), a) > 0.0


def test_hybrid_mamba_attention_stack_is_causal():
    hybrid = tiny_config(mixers=("mamba", "attention", "linear"), num_layers=3,
                         scan_layers=False)
    model = random_fill(abstract(hybrid), seed=1)
    tokens = random_tokens(hybrid, (1, 16))
    changed = tokens.at[0, 10].set((tokens[0, 10] + 1) % hybrid.vocab_size)
    a, b = forward(model, tokens), forward(model, changed)
    assert a.shape == (1, 16, hybrid.vocab_size) and np.isfinite(np.asarray(a)).all()
    assert max_abs(a[:, :10], b[:, :10]) == 0.0 and max_abs(a[:, 10:], b[:, 10:]) > 0.0
    kinds = [type(block.attn).__name__ for block in model.blocks]
    assert kinds == ["MambaBlock", "Attention", "LinearAttention"]


def test_scanned_hybrid_stack_is_refused():
    with pytest.raises(ValueError, match="scan_layers=False"):
        abstract(tiny_config(mixers=("mamba", "attention"), scan_layers=True))


@pytest.mark.parametrize("hf_window", [2, 3, 8])
def test_hugging_face_sliding_window_converts_to_the_same_mask(hf_window):
    from astrojax.models.attention.reference import position_mask
    from astrojax.models.transformer import sliding_window_from_hf, sliding_window_to_hf

    t = 12
    q, kv = np.arange(t)[:, None], np.arange(t)[None, :]
    hf_mask = (kv <= q) & (kv > q - hf_window)  # transformers' causal + sliding_window_overlay
    ours = sliding_window_from_hf(hf_window)
    mask = position_mask(jnp.arange(t), jnp.arange(t), causal=True, window=(ours, 0))
    np.testing.assert_array_equal(np.asarray(mask), hf_mask)
    assert sliding_window_to_hf(ours) == hf_window


def test_hugging_face_sliding_window_edge_cases():
    from astrojax.models.transformer import sliding_window_from_hf, sliding_window_to_hf

    assert sliding_window_from_hf(None) == 0 and sliding_window_to_hf(0) is None
    with pytest.raises(ValueError, match="sliding_window=1"):
        sliding_window_from_hf(1)


def test_prefix_embeddings_equal_the_tokens_they_embed(cfg, model):
    """A soft prefix that is exactly the embeddings of some tokens gives the logits of the
    sequence with those tokens in front (the planet-conditioned LM's prefix goes this way)."""
    tokens = random_tokens(cfg, (B, T))
    prefix = model.embed(tokens[:, :3])
    np.testing.assert_allclose(model(tokens[:, 3:], prefix_bpd=prefix), model(tokens),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="prefix_bpd"):
        model(tokens, prefix_bpd=prefix[:1])
