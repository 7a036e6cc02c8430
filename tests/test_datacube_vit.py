"""Tests for the datacube 3D-conv + ViT: shapes and padding, masking (hidden tubelets cannot
reach the encoder), positions, dtypes, attention kernels, gradients, jit, sharding specs, and
the loss / evaluation statistics."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from astrojax.config import DEFAULT_LOGICAL_AXIS_RULES, ConfigError, DatacubeConfig
from astrojax.models.datacube_vit import (
    DatacubeViT,
    datacube_losses,
    num_visible,
    sinusoid_3d,
    strided_conv3d,
    tiny_datacube_config,
    token_grid,
    tubelet_masks,
)

LOGICAL_NAMES = {name for name, _ in DEFAULT_LOGICAL_AXIS_RULES}
# XLA:CPU compiles threefry slowly; initialisation randomness does not matter here.
KEY_IMPL = "unsafe_rbg"
V, L = 3, 2  # variables, levels -> 6 channels
GRID = (4, 8, 16)  # (time, lat, lon) of most tests: tokens (2, 2, 4) with patch (2, 4, 4)
NUM_TARGETS = 3

jit_fast = functools.partial(
    jax.jit, compiler_options={"xla_backend_optimization_level": 0,
                               "xla_llvm_disable_expensive_passes": True})


def make(cfg, grid=GRID):
    return DatacubeViT(cfg, V * L, grid, NUM_TARGETS, rngs=nnx.Rngs(
        jax.random.key(0, impl=KEY_IMPL)))


def abstract(cfg, grid=GRID):
    with nnx.use_eager_sharding(False):
        return nnx.eval_shape(lambda: make(cfg, grid))


def build(cfg, grid=GRID):
    """A model initialised by its own initialisers, in one compiled call."""
    with nnx.use_eager_sharding(False):
        graphdef = nnx.graphdef(abstract(cfg, grid))
        return nnx.merge(graphdef, jit_fast(lambda: nnx.state(make(cfg, grid)))())


def random_fill(module, seed: int = 0, scale: float = 0.1):
    """Fills an abstract module with random parameters (numpy: nothing to compile)."""
    rng = np.random.default_rng(seed)
    state = jax.tree.map(
        lambda x: jnp.asarray(rng.normal(0.0, scale, x.shape), x.dtype), nnx.state(module))
    return nnx.merge(nnx.graphdef(module), state)


def with_config(model, cfg, grid=GRID, dtype=None):
    """``model``'s parameters in a model of ``cfg`` (same shapes), optionally cast."""
    state = nnx.state(model)
    if dtype is not None:
        state = jax.tree.map(lambda x: x.astype(dtype), state)
    return nnx.merge(nnx.graphdef(abstract(cfg, grid)), state)


def eval_shape(model, method: str, x_shape, dtype=jnp.float32):
    """Output shapes of ``model.<method>`` on an input of ``x_shape`` (abstract models too)."""
    graphdef, state = nnx.split(model)
    args = (jax.random.key(0),) if method == "masked" else ()
    fn = lambda s, x: getattr(nnx.merge(graphdef, s), method)(x, *args)  # noqa: E731
    return jax.eval_shape(fn, state, jax.ShapeDtypeStruct(x_shape, dtype))


@functools.partial(jit_fast, static_argnums=0)
def _forward(graphdef, state, x):
    return nnx.merge(graphdef, state)(x)


def forward(model, x):
    return _forward(*nnx.split(model), x)


def cube(grid=GRID, batch=2, seed=0):
    shape = (batch, V, grid[0], L, grid[1], grid[2])
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def max_abs(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32))))


@pytest.fixture(scope="module")
def cfg():
    return tiny_datacube_config(position_embedding="learned")


@pytest.fixture(scope="module")
def model(cfg):
    return build(cfg)


# ----------------------------------------------------------------------------------------------
# Shapes and padding


@pytest.mark.parametrize("position_embedding", ["sinusoidal", "learned"])
@pytest.mark.parametrize("grid", [(8, 16, 32), (4, 8, 16), (1, 16, 32), (3, 10, 30)])
def test_output_shapes(grid, position_embedding):
    cfg = tiny_datacube_config(position_embedding=position_embedding)
    model = abstract(cfg, grid)
    x_shape = (2, V, grid[0], L, grid[1], grid[2])
    out = eval_shape(model, "__call__", x_shape)
    assert {k: (v.shape, v.dtype) for k, v in out.items()} == {
        "embedding": ((2, cfg.d_model), jnp.float32),
        "regression": ((2, NUM_TARGETS), jnp.float32)}
    assert model.token_shape == tuple(-(-g // p) for g, p in zip(grid, (2, 4, 4), strict=True))
    n, p = int(np.prod(model.token_shape)), 2 * 4 * 4 * V * L
    assert eval_shape(model, "patchify", x_shape).shape == (2, n, p)
    assert eval_shape(model, "encode", (2, n, p)).shape == (2, n, cfg.d_model)
    masked = eval_shape(model, "masked", x_shape)
    k = num_visible(n, cfg.mask_ratio)
    assert masked["reconstruction"].shape == masked["hidden_cells"].shape == (2, n - k, p)


def test_supervised_model_has_no_decoder_and_masked_one_no_head_without_targets():
    supervised = abstract(tiny_datacube_config(objective="supervised"))
    assert supervised.decoder is None and supervised.regression_head is not None
    with pytest.raises(ValueError, match="without a decoder"):
        eval_shape(supervised, "masked", (2, V, GRID[0], L, *GRID[1:]))
    with nnx.use_eager_sharding(False):
        masked = nnx.eval_shape(lambda: DatacubeViT(tiny_datacube_config(objective="masked"),
                                                    V * L, GRID, 0, rngs=nnx.Rngs(0)))
    assert masked.regression_head is None and masked.decoder is not None
    assert set(eval_shape(masked, "__call__", (2, V, GRID[0], L, *GRID[1:]))) == {"embedding"}


def test_token_grid_pads_partial_tubelets():
    assert token_grid((8, 16, 32), (2, 4, 4)) == (4, 4, 8)
    assert token_grid((1, 15, 30), (2, 4, 4)) == (1, 4, 8)
    assert token_grid((1, 16, 32), (1, 4, 4)) == (1, 4, 8)


@pytest.mark.parametrize("grid,patch", [((1, 8, 16), (2, 4, 4)), ((3, 6, 10), (2, 4, 4)),
                                        ((1, 8, 16), (1, 4, 4))])
def test_forward_runs_on_single_step_and_non_divisible_grids(grid, patch):
    cfg = tiny_datacube_config(patch_size=patch)
    model = random_fill(abstract(cfg, grid))
    out = forward(model, cube(grid))
    assert out["embedding"].shape == (2, cfg.d_model)
    assert all(np.isfinite(np.asarray(v)).all() for v in out.values())
    assert max_abs(out["embedding"][0], out["embedding"][1]) > 1e-3


def test_odd_patch_axis_is_not_downsampled():
    model = abstract(tiny_datacube_config(patch_size=(1, 4, 4)), (1, 8, 16))
    assert model.stride == (1, 2, 2) and model.half_patch == (1, 2, 2)


def test_patchify_orders_tubelets_time_major_and_pads_with_edges():
    model = abstract(tiny_datacube_config(), (3, 8, 14))  # partial tubelets in time and lon
    x = jnp.arange(V * 3 * L * 8 * 14, dtype=jnp.float32).reshape(1, V, 3, L, 8, 14)
    graphdef, state = nnx.split(model)
    tub = np.asarray(nnx.merge(graphdef, state).patchify(x))
    assert model.token_shape == (2, 2, 4) and tub.shape == (1, 16, 2 * 4 * 4 * V * L)
    cells = tub.reshape(2, 2, 4, 2, 4, 4, V, L)  # tokens (t, y, x), cells (t, y, x), c = v L + l
    np.testing.assert_array_equal(cells[0, 1, 2, 1, 3, 0, 2, 1], x[0, 2, 1, 1, 7, 8])
    # Padding repeats the last real cell of the same tubelet (time 2, lon 13), never wraps.
    np.testing.assert_array_equal(cells[1, 0, 3, 1, 0, 3, 0, 0], x[0, 0, 2, 0, 0, 13])
    np.testing.assert_array_equal(cells[1, 0, 3, 0, 0, 2, 0, 0], x[0, 0, 2, 0, 0, 13])


@pytest.mark.parametrize("x_shape,strides", [((2, 10, 18, 34, 3), (2, 2, 2)),
                                             ((1, 3, 10, 6, 3), (1, 2, 2)),
                                             ((1, 4, 5, 6, 3), (2, 1, 2))])
def test_strided_conv3d_matches_lax_conv(x_shape, strides):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=x_shape), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3, 3, 3, 3, 5)), jnp.float32)
    expected = jax.lax.conv_general_dilated(x, w, strides, "VALID",
                                            dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))
    np.testing.assert_allclose(strided_conv3d(x, w, strides), expected, atol=1e-4)


def test_bad_inputs_raise():
    with pytest.raises(ConfigError, match="model.position_embedding.*'rope'"):
        DatacubeViT(tiny_datacube_config(position_embedding="rope"), 6, GRID, 1,
                    rngs=nnx.Rngs(0))
    with pytest.raises(ConfigError, match="model.num_heads"):
        DatacubeViT(tiny_datacube_config(num_heads=3), 6, GRID, 1, rngs=nnx.Rngs(0))
    with pytest.raises(ConfigError, match="model.patch_size.*single token"):
        DatacubeViT(tiny_datacube_config(patch_size=(4, 8, 16)), 6, GRID, 1, rngs=nnx.Rngs(0))
    model = abstract(tiny_datacube_config())
    with pytest.raises(ValueError, match=r"\(time, lat, lon\) = \(4, 8, 16\)"):
        eval_shape(model, "__call__", (2, V, 4, L, 8, 15))
    with pytest.raises(ValueError, match="variables \\* levels = 6"):
        eval_shape(model, "__call__", (2, V, 4, L + 1, 8, 16))


# ----------------------------------------------------------------------------------------------
# What the embedding depends on


def test_embedding_depends_on_input(model):
    x = cube(batch=2)
    out = forward(model, x)
    assert max_abs(out["embedding"][0], out["embedding"][1]) > 1e-2
    changed = x.at[0, 1, 2, 0, 3, 5].add(3.0)  # one cell of one variable
    assert max_abs(forward(model, changed)["embedding"][0], out["embedding"][0]) > 1e-4


def test_masks_split_each_samples_tokens_at_random():
    visible, masked = jax.device_get(tubelet_masks(jax.random.key(3), 4, 16, 5))
    assert visible.shape == (4, 5) and masked.shape == (4, 11)
    for v, m in zip(visible, masked, strict=True):
        assert sorted([*v, *m]) == list(range(16)) and list(v) == sorted(v)
    assert len({tuple(v) for v in visible}) > 1  # a different mask per sample
    assert num_visible(128, 0.75) == 32 and num_visible(2, 0.99) == 1 and num_visible(4, 0.01) == 3


def _cell_slices(model, token: int):
    """Index of token ``token``'s cells in a ``[b, v, t, l, y, x]`` cube."""
    pt, py, px = np.unravel_index(token, model.token_shape)
    st, sy, sx = model.patch
    return (slice(None), slice(None), slice(pt * st, (pt + 1) * st), slice(None),
            slice(py * sy, (py + 1) * sy), slice(px * sx, (px + 1) * sx))


def test_hidden_tubelets_cannot_reach_the_encoder(model):
    """VideoMAE's premise: the encoder's output for the visible tokens is a function of the
    visible tubelets only. Rewriting every hidden tubelet leaves it bit-identical; rewriting
    one visible tubelet changes it (so the check can fail)."""
    x = cube(batch=1)
    visible, hidden = tubelet_masks(jax.random.key(7), 1, model.num_tokens, model.num_visible)
    graphdef, state = nnx.split(model)

    @jit_fast
    def encode_visible(state, x):
        m = nnx.merge(graphdef, state)
        return m.encode(m.patchify(x), visible)

    noise = jnp.asarray(np.random.default_rng(1).normal(0, 5.0, x.shape), jnp.float32)
    rewritten = x
    for token in np.asarray(hidden[0]):
        where = _cell_slices(model, int(token))
        rewritten = rewritten.at[where].set(noise[where])
    assert max_abs(rewritten, x) > 1.0
    before = np.asarray(encode_visible(state, x))
    np.testing.assert_array_equal(np.asarray(encode_visible(state, rewritten)), before)
    where = _cell_slices(model, int(visible[0, 0]))
    assert max_abs(encode_visible(state, x.at[where].add(1.0)), before) > 1e-4


def test_reconstruction_targets_are_the_hidden_tubelets(model):
    x = cube(batch=2)
    graphdef, state = nnx.split(model)
    out = jit_fast(lambda s, x: nnx.merge(graphdef, s).masked(x, jax.random.key(2)))(state, x)
    _, hidden = tubelet_masks(jax.random.key(2), 2, model.num_tokens, model.num_visible)
    tub = np.asarray(jit_fast(lambda s, x: nnx.merge(graphdef, s).patchify(x))(state, x))
    for b in range(2):
        np.testing.assert_array_equal(out["hidden_cells"][b], tub[b, np.asarray(hidden[b])])


def _lon_roll(x, model):
    return jnp.roll(x, model.patch[2], axis=-1)  # one tubelet eastwards


def test_position_embedding_is_used(cfg, model):
    """Rolling the planet east by one tubelet only permutes the tokens (each is made from its
    own tubelet), so without position embeddings the pooled embedding would not move: check
    both ways."""
    x = cube()
    assert max_abs(forward(model, x)["embedding"],
                   forward(model, _lon_roll(x, model))["embedding"]) > 1e-3
    state = nnx.state(model)
    for name in ("pos_t_d", "pos_y_d", "pos_x_d"):
        state[name] = jax.tree.map(jnp.zeros_like, state[name])
    blind = nnx.merge(nnx.graphdef(model), state)
    assert max_abs(forward(blind, x)["embedding"],
                   forward(blind, _lon_roll(x, model))["embedding"]) < 1e-5
    sin_cfg = dataclasses.replace(cfg, position_embedding="sinusoidal")
    sin_state = {k: v for k, v in state.items() if not k.startswith("pos_")}
    sin_model = nnx.merge(nnx.graphdef(abstract(sin_cfg)), nnx.State(sin_state))
    assert max_abs(forward(sin_model, x)["embedding"],
                   forward(sin_model, _lon_roll(x, model))["embedding"]) > 1e-3


def test_sinusoid_3d_gives_every_token_its_own_code():
    emb = sinusoid_3d((4, 4, 8), 32)
    assert emb.shape == (128, 32)
    distances = np.linalg.norm(emb[:, None] - emb[None], axis=-1)
    assert (distances + np.eye(len(emb)) > 1e-2).all()


# ----------------------------------------------------------------------------------------------
# Dtypes, kernels, jit, gradients


def test_bfloat16_compute_close_to_float32(cfg, model):
    x = cube()
    out32 = forward(model, x)
    out16 = forward(with_config(model, dataclasses.replace(cfg, dtype="bfloat16")), x)
    for key in out32:
        assert out16[key].dtype == jnp.float32
        scale = float(np.abs(np.asarray(out32[key])).max())
        assert max_abs(out16[key], out32[key]) < 0.1 * scale, key


def test_bfloat16_params_keep_float32_outputs():
    cfg = tiny_datacube_config(dtype="bfloat16", param_dtype="bfloat16")
    model = abstract(cfg)
    assert {x.dtype for x in jax.tree.leaves(nnx.state(model))} == {jnp.dtype(jnp.bfloat16)}
    out = eval_shape(model, "__call__", (2, V, *GRID[:1], L, *GRID[1:]))
    assert {v.dtype for v in out.values()} == {jnp.dtype(jnp.float32)}
    tokens = eval_shape(model, "embed_tubelets", (2, 16, 2 * 4 * 4 * V * L))
    assert tokens.dtype == jnp.bfloat16


def test_xla_and_blockwise_attention_agree(cfg, model):
    x = cube()
    xla = forward(with_config(model, dataclasses.replace(cfg, attention_impl="xla")), x)
    blockwise = forward(with_config(model, dataclasses.replace(cfg, attention_impl="blockwise")),
                        x)
    for key in xla:
        np.testing.assert_allclose(blockwise[key], xla[key], atol=1e-5, rtol=1e-5)


@pytest.mark.slow  # eager dispatch compiles every op on its own (~15 s here)
def test_jit_equals_eager(model):
    x = cube(batch=1)
    np.testing.assert_allclose(model(x)["embedding"], forward(model, x)["embedding"],
                               atol=1e-5, rtol=1e-5)




def test_gradients_finite_and_reach_every_parameter(cfg, model):
    """The masked+supervised objective trains every parameter: encoder, decoder and head."""
    x = cube(batch=4)
    rng = np.random.default_rng(1)
    batch = (jnp.asarray(rng.normal(size=(4, NUM_TARGETS)), jnp.float32),
             jnp.ones((4, NUM_TARGETS), bool))
    graphdef, state = nnx.split(model)

    def loss_fn(state):
        outputs = nnx.merge(graphdef, state).masked(x, jax.random.key(0))
        return datacube_losses(outputs, *batch, cfg)[0]

    loss, grads = jit_fast(jax.value_and_grad(loss_fn))(state)
    assert np.isfinite(float(loss))
    for path, g in jax.tree.leaves_with_path(grads):
        name, g = jax.tree_util.keystr(path), np.asarray(g)  # numpy: no per-shape compiles
        assert np.isfinite(g).all(), name
        assert np.abs(g).max() > 0, name


# ----------------------------------------------------------------------------------------------
# Parameters and sharding


def test_only_params_with_logical_axis_names(cfg):
    model = abstract(cfg)
    params = nnx.state(model, nnx.Param)
    assert len(jax.tree.leaves(nnx.state(model))) == len(jax.tree.leaves(params))
    is_spec = lambda s: isinstance(s, jax.sharding.PartitionSpec)  # noqa: E731
    specs = {jax.tree_util.keystr(p).removesuffix(".value"): tuple(s)
             for p, s in jax.tree.leaves_with_path(nnx.get_partition_spec(params),
                                                   is_leaf=is_spec) if is_spec(s)}
    for name, spec in specs.items():
        assert set(spec) - {None} <= LOGICAL_NAMES, (name, spec)
    expected = {
        "['blocks'][0]['attn']['w_dnh']": ("embed", "heads", "head_dim"),
        "['blocks'][0]['attn']['w_dkh_v']": ("embed", "kv_heads", "head_dim"),
        "['blocks'][1]['attn']['w_nhd']": ("heads", "head_dim", "embed"),
        "['blocks'][1]['mlp']['w_df_gate']": ("embed", "mlp"),
        "['blocks'][1]['mlp']['w_fd_down']": ("mlp", "embed"),
        "['blocks'][0]['attn_norm']['scale_d']": ("norm",),
        "['decoder']['blocks'][0]['attn']['w_dnh']": ("embed", "heads", "head_dim"),
        "['decoder']['w_de_in']": ("embed", None),
        "['tubelet_full']['kernel']": (None, "embed"),
        "['tubelet_full']['bias']": ("embed",),
        "['pos_x_d']": (None, "embed"),
        "['regression_head']['kernel']": ("embed", None),
    }
    for name, spec in expected.items():
        assert specs[name] == spec, name


@pytest.mark.slow
def test_sharded_forward_matches(model):
    n = len(jax.devices())
    if n % 4:
        pytest.skip("needs a multiple of 4 devices")
    mesh = jax.make_mesh((n // 4, 2, 2), ("data", "fsdp", "tensor"),
                         axis_types=(jax.sharding.AxisType.Auto,) * 3)
    x = cube(batch=n // 2)
    with jax.set_mesh(mesh), nnx.logical_axis_rules(DEFAULT_LOGICAL_AXIS_RULES):
        graphdef, state = nnx.split(model)
        shardings = nnx.get_named_sharding(state, mesh)
        w = shardings["blocks"][0]["attn"]["w_dnh"].get_value()
        assert w.spec == jax.sharding.PartitionSpec("fsdp", "tensor", None)
        out = _forward(graphdef, jax.device_put(state, shardings), x)
    np.testing.assert_allclose(out["embedding"], forward(model, x)["embedding"], atol=1e-5)


def test_default_config_builds_with_expected_size():
    with nnx.use_eager_sharding(False):  # the default grid: 5 variables x 4 levels
        model = nnx.eval_shape(lambda: DatacubeViT(DatacubeConfig(), 20, (8, 16, 32), NUM_TARGETS,
                                                   rngs=nnx.Rngs(0)))
    state = nnx.state(model, nnx.Param)
    size = lambda tree: sum(x.size for x in jax.tree.leaves(tree))  # noqa: E731
    decoder, head = size(state["decoder"]), size(state["regression_head"])
    # stem 17,312 + 55,360, tubelets 131,200 + 32,768, 4 blocks of 164,096, final norm 128
    assert size(state) - decoder - head == 893_152
    # in 8,192, mask token 64, one block 41,088, norm 64, out 64 x 640 + 640
    assert decoder == 91_008 and head == 128 * NUM_TARGETS + NUM_TARGETS


# ----------------------------------------------------------------------------------------------
# Losses and evaluation statistics


@functools.partial(jit_fast, static_argnums=(3, 4))
def losses(outputs, targets, target_mask, reconstruction_weight=1.0, regression_weight=1.0):
    """``datacube_losses`` compiled (the weights are static: the config is not hashable)."""
    cfg = DatacubeConfig(reconstruction_weight=reconstruction_weight,
                         regression_weight=regression_weight)
    return datacube_losses(outputs, targets, target_mask, cfg)


def _hand_batch():
    outputs = dict(regression=jnp.array([[1.0, 0.0], [2.0, 5.0], [0.0, 1.0], [1.0, 1.0]]),
                   reconstruction=jnp.array([[[1.0, 2.0]], [[0.0, 0.0]], [[3.0, 0.0]],
                                             [[1.0, 1.0]]]),
                   hidden_cells=jnp.array([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 0.0]],
                                           [[1.0, 1.0]]]))
    targets = jnp.array([[0.0, jnp.nan], [2.0, 1.0], [1.0, 3.0], [3.0, 2.0]])
    target_mask = jnp.array([[True, False], [True, True], [True, True], [False, True]])
    return outputs, targets, target_mask


def test_losses_respect_masks():
    outputs, targets, target_mask = _hand_batch()
    loss, m = losses(outputs, targets, target_mask, 0.5, 2.0)
    # squared errors: target 0: 1, 0, 1, (masked); target 1: (masked NaN), 16, 4, 1
    np.testing.assert_allclose(m["mse"], 23.0 / 6.0, rtol=1e-6)
    # hidden cells: squared errors 0, 4, 0, 1, 4, 0, 0, 0
    np.testing.assert_allclose(m["reconstruction_sse"], 9.0)
    np.testing.assert_allclose(m["reconstruction_count"], 8.0)
    np.testing.assert_allclose(loss, 2.0 * 23.0 / 6.0 + 0.5 * 9.0 / 8.0, rtol=1e-6)
    # Changing masked entries changes nothing.
    changed = dict(outputs, regression=outputs["regression"].at[0, 1].set(99.0).at[3, 0].set(-5.0))
    _, m2 = losses(changed, targets.at[3, 0].set(7.0), target_mask, 0.5, 2.0)
    for key in m:
        np.testing.assert_allclose(m2[key], m[key], rtol=1e-6, err_msg=key)
    only_recon = {k: v for k, v in outputs.items() if k != "regression"}
    loss, m3 = losses(only_recon, targets, target_mask)
    assert "mse" not in m3 and float(loss) == 9.0 / 8.0
    _, none = losses({"regression": outputs["regression"]}, targets,
                     jnp.zeros_like(target_mask))
    assert float(none["loss"]) == 0.0 and np.isfinite(float(none["mse"]))
