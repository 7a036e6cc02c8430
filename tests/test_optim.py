"""The optimizer: weight decay is decided by what a parameter is, never by its rank."""


import jax
import numpy as np
import pytest
from flax import nnx

from astrojax.config import (
    Config,
    MeshConfig,
    OptimConfig,
    PlanetsConfig,
    TextDataConfig,
    TrainConfig,
)
from astrojax.models.transformer import Transformer, tiny_config
from astrojax.sharding import make_mesh
from astrojax.tasks import get_task
from astrojax.train.optim import decay_mask, param_name
from astrojax.train.step import build_program

WEIGHT_MATRICES = {"w_dnh", "w_dkh_k", "w_dkh_v", "w_nhd", "w_df_gate", "w_df_up", "w_fd_down",
                   "embedding_vd"}
MAMBA_MATRICES = {"w_de_x", "w_de_z", "w_ke_conv", "w_er_dt", "w_re_dt", "w_en_b", "w_en_c",
                  "w_ed_out"}


def decay_split(model: nnx.Module) -> tuple[set[str], set[str]]:
    """(names of decayed parameters, names of the others) of ``model``."""
    params = nnx.state(model, nnx.Param)
    mask = decay_mask(params)
    decayed, kept = set(), set()
    for path, flag in jax.tree_util.tree_leaves_with_path(mask):
        (decayed if flag else kept).add(param_name(path))
    return decayed, kept


def build(cfg) -> Transformer:
    with nnx.use_eager_sharding(False):
        return Transformer(cfg, rngs=nnx.Rngs(0))


def test_scanned_and_unscanned_stacks_decay_exactly_the_weight_matrices():
    scanned = decay_split(build(tiny_config(scan_layers=True)))
    unscanned = decay_split(build(tiny_config(scan_layers=False)))
    assert scanned == unscanned
    decayed, kept = scanned
    assert decayed == WEIGHT_MATRICES
    assert kept == {"scale_d"}  # every norm, scanned ("layers", "norm") or not


def test_untied_output_projection_is_decayed():
    decayed, _ = decay_split(build(tiny_config(tie_embeddings=False)))
    assert decayed == WEIGHT_MATRICES | {"w_dv_out"}


def test_mamba_and_linear_mixers_leave_ssm_parameters_alone():
    cfg = tiny_config(scan_layers=False, num_layers=3, mixers=("mamba", "linear", "attention"))
    decayed, kept = decay_split(build(cfg))
    assert decayed == WEIGHT_MATRICES | MAMBA_MATRICES
    # Mamba's A_log and D, its conv and dt biases, and every norm scale are not decayed
    assert kept == {"scale_d", "a_log_en", "d_e", "b_e_conv", "b_e_dt"}


def test_other_models_have_no_decayed_norm_or_bias():
    for task_name in ("graph_vae", "datacube"):
        task = get_task(Config(task=task_name, planets=PlanetsConfig(num_planets=16)))
        with nnx.use_eager_sharding(False):
            model = nnx.eval_shape(lambda task=task: task.build_model(nnx.Rngs(0)))
        decayed, kept = decay_split(model)
        assert decayed and kept
        assert not {n for n in decayed if "scale" in n or "bias" in n}, decayed


def test_unknown_parameter_name_is_an_error_naming_it():
    params = {"block": {"gamma": np.ones(3)}}
    with pytest.raises(ValueError, match=r"\['block'\]\['gamma'\].*neither"):
        decay_mask(params)


@pytest.mark.slow
def test_huge_weight_decay_shrinks_matrices_and_leaves_norm_scales_near_one():
    cfg = Config(
        model=tiny_config(max_seq_len=64, vocab_size=384),
        data=TextDataConfig(seq_len=64), planets=PlanetsConfig(num_planets=64),
        optim=OptimConfig(learning_rate=3e-3, warmup_steps=0, weight_decay=100.0),
        train=TrainConfig(steps=10, global_batch_size=4))
    task = get_task(cfg)
    program = build_program(cfg, task, make_mesh(MeshConfig(), jax.devices()[:1]))
    state = program.init()
    before = jax.device_get(state.params)
    it = iter(task.train_data(0, 1))
    for _ in range(10):
        state, _ = program.train_step(state, program.shard(next(it)))
    after = jax.device_get(state.params)
    scales = after["blocks"]["attn_norm"]["scale_d"][...]
    assert scales.shape == (2, 32)  # the scanned stack's ("layers", "norm") scales
    for norm in (scales, after["blocks"]["mlp_norm"]["scale_d"][...],
                 after["final_norm"]["scale_d"][...]):
        np.testing.assert_allclose(norm, 1.0, atol=0.1)
    # and the decay really was applied: the matrices shrank (lr * wd = 0.3 per step)
    ratio = (np.linalg.norm(after["blocks"]["mlp"]["w_df_up"][...])
             / np.linalg.norm(before["blocks"]["mlp"]["w_df_up"][...]))
    assert ratio < 0.2


def schedule_of(**fields):
    from astrojax.train.optim import make_schedule
    fields = {"learning_rate": 1.0, "warmup_steps": 10, "end_learning_rate_fraction": 0.1,
              **fields}
    cfg = OptimConfig(**fields)
    fn = make_schedule(cfg, 100)
    return lambda step: float(fn(step))


def test_cosine_schedule_warms_up_peaks_and_ends_at_the_end_fraction():
    lr = schedule_of(schedule="cosine")
    assert lr(0) == 0.0 and lr(5) == pytest.approx(0.5)
    assert lr(10) == pytest.approx(1.0)
    assert lr(55) == pytest.approx(0.55, abs=1e-6)  # halfway down the cosine
    assert lr(100) == pytest.approx(0.1)


def test_onecycle_starts_at_peak_over_div_factor_and_anneals_to_the_end_fraction():
    lr = schedule_of(schedule="onecycle", onecycle_div_factor=20.0)
    assert lr(0) == pytest.approx(1.0 / 20.0)
    assert lr(10) == pytest.approx(1.0)  # the peak where the warmup ends
    assert lr(5) == pytest.approx((1.0 + 1.0 / 20.0) / 2)  # cosine rise: halfway at half time
    assert lr(100) == pytest.approx(0.1)
    assert schedule_of(schedule="onecycle", end_learning_rate_fraction=0.0)(100) == 0.0


def test_cosine_restarts_restart_at_the_peak_every_period():
    lr = schedule_of(schedule="cosine_restarts", restart_period=30)
    assert lr(0) == 0.0 and lr(10) == pytest.approx(1.0)  # warmup in the first cycle only
    for start in (30, 60, 90):
        assert lr(start) == pytest.approx(1.0), start  # restart
        assert lr(start - 1) < 0.11  # the end of the cycle before
    assert lr(45) == pytest.approx(0.55, abs=1e-6)  # mid-cycle
    assert lr(100) == pytest.approx(0.1 + 0.9 * (1 + np.cos(np.pi * 10 / 30)) / 2, abs=1e-6)


def test_wsd_is_flat_at_the_peak_then_decays_linearly_over_the_last_fraction():
    lr = schedule_of(schedule="wsd", wsd_decay_fraction=0.2)
    assert lr(0) == 0.0 and lr(5) == pytest.approx(0.5) and lr(10) == pytest.approx(1.0)
    assert all(lr(s) == pytest.approx(1.0) for s in (20, 50, 80))
    assert lr(90) == pytest.approx(0.55)
    assert lr(100) == pytest.approx(0.1)


@pytest.mark.parametrize("fields, key", [
    (dict(schedule="linear"), "optim.schedule"),
    (dict(schedule="cosine_restarts", restart_period=20, warmup_steps=20),
     "optim.restart_period"),
    (dict(schedule="wsd", wsd_decay_fraction=0.0), "optim.wsd_decay_fraction"),
    (dict(schedule="wsd", wsd_decay_fraction=0.95, warmup_steps=20), "optim.wsd_decay_fraction"),
    (dict(schedule="onecycle", warmup_steps=300), "optim.warmup_steps"),
    (dict(optimizer="sgd"), "optim.optimizer"),
    (dict(accumulation_steps=0), "optim.accumulation_steps"),
])
def test_bad_schedule_or_optimizer_is_a_config_error_naming_the_key(fields, key):
    from astrojax.config import ConfigError, validate
    with pytest.raises(ConfigError, match=rf"^config\.{key}: ") as err:
        validate(Config(optim=OptimConfig(**fields), train=TrainConfig(steps=300)))
    if key == "optim.schedule":
        assert "cosine, onecycle, cosine_restarts, wsd" in str(err.value)
