"""8-bit AdamW: the dynamic maps, blockwise quantization, updates against optax.adamw, the
float32 fallback, sharding like the parameters and checkpoints of the 8-bit state."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from astrojax.config import (
    Config,
    MeshConfig,
    OptimConfig,
    PlanetsConfig,
    TextDataConfig,
    TrainConfig,
)
from astrojax.models.transformer import tiny_config
from astrojax.sharding import make_mesh
from astrojax.tasks import get_task
from astrojax.train.adamw8bit import (
    SIGNED_MAP,
    UNSIGNED_MAP,
    QuantizedMoment,
    adamw_8bit,
    block_axes,
    dequantize,
    quantize,
)
from astrojax.train.checkpoint import Checkpointer
from astrojax.train.optim import make_optimizer
from astrojax.train.step import build_program


def test_dynamic_maps_are_bitsandbytes_256_sorted_codes():
    for qmap in (SIGNED_MAP, UNSIGNED_MAP):
        assert qmap.shape == (256,) and qmap.dtype == np.float32
        assert np.all(np.diff(qmap) >= 0) and qmap[-1] == 1.0 and 0.0 in qmap
    assert SIGNED_MAP[0] < -0.99 and UNSIGNED_MAP[0] == 0.0
    # 7 decades of dynamic exponent: the smallest non-zero magnitude is ~1e-7 of the block max
    assert UNSIGNED_MAP[1] == pytest.approx(3.25e-7)
    assert np.min(np.abs(SIGNED_MAP[SIGNED_MAP != 0])) == pytest.approx(5.5e-7)


def _half_gap(qmap: np.ndarray) -> float:
    """The largest rounding error of a value in [min, 1] (or [-1, 1]) on ``qmap``, as a
    fraction of the block's absolute maximum."""
    low = -1.0 if qmap[0] < 0 else 0.0
    return max(np.max(np.diff(qmap)) / 2, qmap[0] - low)


@pytest.mark.parametrize("signed", [True, False])
def test_round_trip_error_is_bounded_by_the_map_per_block(signed):
    qmap = SIGNED_MAP if signed else UNSIGNED_MAP
    # rows of very different magnitudes: each block has its own scale
    x = jax.random.normal(jax.random.key(0), (6, 3000)) * jnp.logspace(-6, 2, 6)[:, None]
    x = x if signed else x * x
    q = quantize(x, qmap, block_size=1024)
    assert q.codes.shape == x.shape and q.codes.dtype == jnp.uint8
    assert q.scales.shape == (6, 3)  # 3000 = 2 blocks of 1024 + one padded block
    y = dequantize(q, qmap, block_size=1024)
    blocks = np.pad(np.abs(np.asarray(x)), ((0, 0), (0, 72))).reshape(6, 3, 1024)
    absmax = np.repeat(blocks.max(-1), 1024, axis=-1)[:, :3000]
    err = np.abs(np.asarray(y) - np.asarray(x))
    assert np.all(err <= _half_gap(qmap) * absmax * (1 + 1e-5))
    # and values near the block maximum keep ~1% relative precision
    big = np.abs(np.asarray(x)) > 0.5 * absmax
    assert np.max(err[big] / np.abs(np.asarray(x))[big]) < 0.02


def test_zero_blocks_and_exact_codes_round_trip_exactly():
    x = jnp.zeros((4, 64)).at[1].set(jnp.asarray(SIGNED_MAP[3::4]) * 3.0)  # with 1.0
    y = dequantize(quantize(x, SIGNED_MAP, 64), SIGNED_MAP, 64)
    np.testing.assert_allclose(y, x, rtol=1e-6)


def test_blocks_span_trailing_axes_within_the_block_size():
    assert block_axes((128, 4, 32), 2048) == 2  # heads x head_dim = 128 <= 2048
    assert block_axes((2048, 32, 64), 2048) == 2
    assert block_axes((16, 8192), 2048) == 1
    assert block_axes((64,), 2048) == 1
    q = quantize(jnp.ones((64, 4, 32)), SIGNED_MAP, 2048)
    assert q.scales.shape == (64, 1)
    assert quantize(jnp.ones((4, 8, 8)), SIGNED_MAP, 2048).scales.shape == (1,)


def test_first_update_equals_optax_adamw_and_later_ones_stay_close():
    params = {"w": jax.random.normal(jax.random.key(0), (64, 256)) * 0.1}
    kwargs = dict(b1=0.9, b2=0.95, weight_decay=0.1)
    tx8 = adamw_8bit(1e-2, **kwargs, min_8bit_size=0, block_size=256)
    tx = optax.adamw(1e-2, **kwargs)
    s8, s = tx8.init(params), tx.init(params)
    assert isinstance(s8[0].mu["w"], QuantizedMoment)
    p8 = p = params
    for i in range(10):
        g = {"w": jax.random.normal(jax.random.key(i + 1), (64, 256)) * (1 + jnp.arange(256) / 50)}
        u8, s8 = tx8.update(g, s8, p8)
        u, s = tx.update(g, s, p)
        rel = float(jnp.linalg.norm(u8["w"] - u["w"]) / jnp.linalg.norm(u["w"]))
        # step 1 reads the float32 moments before they are stored: exact; later steps read
        # moments rounded to 8 bits
        assert rel < (1e-6 if i == 0 else 0.05), (i, rel)
        p8, p = optax.apply_updates(p8, u8), optax.apply_updates(p, u)
    moved = jnp.linalg.norm(p["w"] - params["w"])
    assert float(jnp.linalg.norm(p8["w"] - p["w"]) / moved) < 0.05


def test_small_parameters_and_the_embedding_keep_float32_moments():
    params = {"embedding_vd": jnp.zeros((384, 128)), "w_df_up": jnp.zeros((128, 384)),
              "w_small": jnp.zeros((16, 16)), "scale_d": jnp.zeros((128,))}
    tx, _ = make_optimizer(OptimConfig(optimizer="adamw8bit"), 10)
    adam = tx.init(params).inner_state[1][0]  # apply_if_finite(chain(clip, adamw_8bit))
    for moments in (adam.mu, adam.nu):
        assert isinstance(moments["w_df_up"], QuantizedMoment)
        for name in ("embedding_vd", "w_small", "scale_d"):
            assert moments[name].dtype == jnp.float32, name
    tx, _ = make_optimizer(OptimConfig(optimizer="adamw8bit", stable_embedding=False), 10)
    assert isinstance(tx.init(params).inner_state[1][0].mu["embedding_vd"], QuantizedMoment)


@pytest.fixture(scope="module")
def sharded_8bit():
    """A tiny lm on 8 devices, fsdp=4 x tensor=2, trained 2 steps with 8-bit AdamW."""
    cfg = Config(model=tiny_config(max_seq_len=32, vocab_size=384, d_model=64, mlp_dim=128,
                                   num_heads=4, num_kv_heads=2, head_dim=16),
                 data=TextDataConfig(seq_len=32), planets=PlanetsConfig(num_planets=64),
                 optim=OptimConfig(optimizer="adamw8bit", min_8bit_size=1024, block_size=64),
                 train=TrainConfig(steps=2, global_batch_size=4),
                 mesh=MeshConfig(data=1, fsdp=4, tensor=2))
    task = get_task(cfg)
    program = build_program(cfg, task, make_mesh(cfg.mesh))
    it = iter(task.train_data(0, 1))
    with jax.set_mesh(program.mesh):
        state = program.init()
        for _ in range(2):
            state, metrics = program.train_step(state, program.shard(next(it)))
    return program, state, metrics, it


def _moments(opt_state):
    adam = opt_state.inner_state[1][0]
    return [(path, leaf) for tree in (adam.mu, adam.nu)
            for path, leaf in jax.tree_util.tree_leaves_with_path(
                tree, is_leaf=lambda x: isinstance(x, QuantizedMoment))]


@pytest.mark.slow
def test_8bit_state_is_sharded_like_the_parameters(sharded_8bit):
    program, state, metrics, _ = sharded_8bit
    assert np.isfinite(float(metrics["loss"]))
    params = {jax.tree_util.keystr(p): leaf
              for p, leaf in jax.tree_util.tree_leaves_with_path(state.params)}
    quantized = 0
    for path, moment in _moments(state.opt_state):
        param = params[jax.tree_util.keystr(path)]
        if not isinstance(moment, QuantizedMoment):
            assert moment.sharding == param.sharding
            continue
        quantized += 1
        assert moment.codes.dtype == jnp.uint8
        assert moment.codes.sharding == param.sharding
        # not replicated: each device holds a slice of the codes and of the scales
        n = moment.codes.size
        assert moment.codes.addressable_shards[0].data.size < n
        assert moment.scales.addressable_shards[0].data.size < moment.scales.size
        assert moment.codes.sharding.spec[:1] == moment.scales.sharding.spec[:1]
    assert quantized >= 4  # every projection of the tiny model


@pytest.mark.slow
def test_8bit_state_checkpoint_round_trip(sharded_8bit, tmp_path):
    program, state, _, it = sharded_8bit
    checkpointer = Checkpointer(tmp_path / "checkpoints", max_to_keep=1, async_save=False)
    checkpointer.save(2, state, it, {"note": "test"})
    restored, _, _ = checkpointer.restore(2, program.restore_target(), it)
    checkpointer.close()
    for (path, a), b in zip(_moments(state.opt_state), (m for _, m in
                                                        _moments(restored.opt_state)),
                            strict=True):
        assert type(a) is type(b), path
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            assert x.dtype == y.dtype and x.sharding == y.sharding
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # and training goes on from the restored state exactly as from the live one
    batch = program.shard(next(it))
    with jax.set_mesh(program.mesh):
        _, live = program.train_step(jax.tree.map(jnp.copy, state), batch)
        _, again = program.train_step(restored, batch)
    assert float(live["loss"]) == float(again["loss"])


def test_resuming_with_another_optimizer_state_layout_is_refused(tmp_path):
    from astrojax.config import to_dict
    from astrojax.train.workdir import WorkdirError, check_resume
    shapes = {("w",): (4, 4)}
    fp32, q8 = Config(task="lm"), Config(task="lm", optim=OptimConfig(optimizer="adamw8bit"))
    with pytest.raises(WorkdirError, match=r"another layout \(optim.optimizer='adamw' -> "):
        check_resume(4, to_dict(fp32), to_dict(q8), shapes, shapes, tmp_path)
    other_blocks = Config(task="lm", optim=OptimConfig(optimizer="adamw8bit", block_size=256))
    with pytest.raises(WorkdirError, match="block_size=2048.*block_size=256"):
        check_resume(4, to_dict(q8), to_dict(other_blocks), shapes, shapes, tmp_path)
    # a checkpoint from before the field existed holds float32 AdamW's state
    old = to_dict(fp32)
    del old["optim"]["optimizer"]
    check_resume(4, old, to_dict(fp32), shapes, shapes, tmp_path)
    faster = Config(task="lm", optim=OptimConfig(optimizer="adamw8bit", accumulation_steps=2))
    check_resume(4, to_dict(q8), to_dict(faster), shapes, shapes, tmp_path)  # a warning only
