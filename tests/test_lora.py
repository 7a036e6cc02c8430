"""LoRA: adapters start at the base, merged equals adapted, only adapters train, adapters save
and load alone, scanned equals unrolled, sharded equals single device, dropout only in
training, one-line errors; and a LoRA training run on a base workdir, resumed and restored."""

from __future__ import annotations

import dataclasses
import shutil

import hf_reference as hf_ref
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from test_config import assert_one_line_error, run_cli

from astrojax.config import (
    LORA_TARGETS,
    Config,
    ConfigError,
    LoRAConfig,
    MeshConfig,
    PlanetsConfig,
    TextDataConfig,
    TrainConfig,
    TransformerConfig,
    to_dict,
    validate,
)
from astrojax.generate import load_generator
from astrojax.models import lora
from astrojax.models.hf import from_hf, to_hf
from astrojax.models.transformer import Transformer, tiny_config
from astrojax.sharding import make_mesh, state_shardings
from astrojax.tasks import get_task
from astrojax.train.checkpoint import Checkpointer, read_params
from astrojax.train.loop import TrainingError, train_and_evaluate
from astrojax.train.restore import load_trained
from astrojax.train.step import build_program
from astrojax.train.workdir import WorkdirError, check_resume

KEY_IMPL = "unsafe_rbg"  # XLA:CPU compiles threefry slowly; init randomness is irrelevant here
ALL = ("q", "k", "v", "o", "gate", "up", "down")
HYBRID = dict(mixers=("mamba", "linear", "attention"), num_layers=3, scan_layers=False)


def build(cfg: TransformerConfig, rank: int = 4, targets=ALL, dropout: float = 0.0,
          trained: bool = True, seed: int = 0):
    """A transformer of ``cfg`` with adapters. ``trained``: every weight, adapters included,
    random from numpy ``seed`` (B nonzero, as after training; nothing to compile); else as the
    initialisers draw them (B = 0)."""
    spec = LoRAConfig(rank=rank, alpha=2.0 * rank, dropout=dropout, targets=targets)

    def make():
        model = Transformer(cfg, rngs=nnx.Rngs(jax.random.key(0, impl=KEY_IMPL)))
        lora.apply_lora(model, spec, rngs=nnx.Rngs(jax.random.key(1, impl=KEY_IMPL)))
        return model

    with nnx.use_eager_sharding(False):
        if not trained:  # the initialisers' own draws
            return make()
        model = nnx.eval_shape(make)
    rng = np.random.default_rng(seed)
    state = jax.tree.map(lambda x: jnp.asarray(rng.normal(0, 0.2, x.shape), x.dtype),
                         nnx.state(model))
    return nnx.merge(nnx.graphdef(model), state)


def tokens(cfg: TransformerConfig, batch: int = 2, length: int = 12) -> jax.Array:
    return jnp.asarray(np.random.default_rng(1).integers(0, cfg.vocab_size, (batch, length)))


def base_of(model) -> Transformer:
    """The model's base weights in a plain Transformer (adapters dropped, not merged)."""
    plain = nnx.clone(model)
    for item in list(lora.adapters(plain)):
        delattr(item.module, f"{item.weight_name}_lora")
    return plain


def frozen_leaves(model) -> dict:
    state = nnx.state(model, nnx.All(nnx.Param, nnx.Not(nnx.LoRAParam)))
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in
            jax.tree_util.tree_leaves_with_path(state)}


# ---------------------------------------------------------------------------------------------
# The model: equal to the base at start, merge, unmerge, export


@pytest.mark.parametrize("overrides", [dict(scan_layers=True),
                                       pytest.param(HYBRID, marks=pytest.mark.slow)],
                         ids=["scanned", "hybrid"])
def test_adapted_model_starts_equal_to_its_base(overrides):
    cfg = tiny_config(**overrides)
    targets = LORA_TARGETS if "mixers" in overrides else ALL
    model = build(cfg, targets=targets, trained=False)
    x = tokens(cfg)
    np.testing.assert_array_equal(model(x), base_of(model)(x))
    for item in lora.adapters(model):  # B starts at zero, A does not
        assert not np.any(np.asarray(item.adapter.lora_b[...]))
        assert np.any(np.asarray(item.adapter.lora_a[...]))


@pytest.mark.parametrize("overrides", [dict(scan_layers=True), dict(scan_layers=False),
                                       pytest.param(HYBRID, marks=pytest.mark.slow)],
                         ids=["scanned", "unrolled", "hybrid"])
def test_merged_equals_adapted_and_unmerge_restores_the_base(overrides):
    cfg = tiny_config(**overrides)
    targets = LORA_TARGETS if "mixers" in overrides else ALL
    model = build(cfg, targets=targets)
    x = tokens(cfg)
    adapted, base = model(x), base_of(model)(x)
    assert float(jnp.max(jnp.abs(adapted - base))) > 0.1  # the adapters do something
    before = frozen_leaves(model)

    lora.merge(model)
    assert all(item.adapter.merged for item in lora.adapters(model))
    np.testing.assert_allclose(model(x), adapted, rtol=1e-5, atol=1e-5)
    moved = frozen_leaves(model)
    assert any(not np.array_equal(moved[k], before[k]) for k in before)
    lora.merge(model)  # merging twice adds nothing
    np.testing.assert_allclose(model(x), adapted, rtol=1e-5, atol=1e-5)

    lora.unmerge(model)
    np.testing.assert_allclose(model(x), adapted, rtol=1e-5, atol=1e-5)
    for name, value in frozen_leaves(model).items():
        np.testing.assert_allclose(value, before[name], rtol=0, atol=1e-6, err_msg=name)


def test_merged_params_are_a_plain_transformer_tree():
    cfg = tiny_config(scan_layers=False)
    model = build(cfg)
    x = tokens(cfg)
    plain = lora.merged_params(model)
    with nnx.use_eager_sharding(False):
        reference = nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0)))
    expected = nnx.state(reference, nnx.Param)
    assert jax.tree.structure(plain) == jax.tree.structure(expected)
    np.testing.assert_allclose(nnx.merge(nnx.graphdef(reference), plain)(x), model(x),
                               rtol=1e-5, atol=1e-5)
    assert not any(item.adapter.merged for item in lora.adapters(model))  # model untouched


def test_scanned_equals_unrolled():
    unrolled = build(tiny_config(scan_layers=False))
    scanned_shape = build(tiny_config(scan_layers=True))
    state = nnx.to_pure_dict(nnx.state(unrolled))
    layers = [state["blocks"][i] for i in sorted(state["blocks"])]
    state["blocks"] = jax.tree.map(lambda *xs: jnp.stack(xs), *layers)
    target = nnx.state(scanned_shape)
    nnx.replace_by_pure_dict(target, state)
    scanned = nnx.merge(nnx.graphdef(scanned_shape), target)
    x = tokens(tiny_config())
    np.testing.assert_allclose(scanned(x), unrolled(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(nnx.state(lora.merge(scanned))["blocks"]["attn"]["w_dnh"][...][1],
                               nnx.state(lora.merge(unrolled))["blocks"][1]["attn"]["w_dnh"][...],
                               rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_cached_decoding_applies_the_adapters():
    """Prefill and the one-token steps read the weights through the same projections, so a
    model with adapters decodes exactly as its full forward pass scores (attention and Mamba)."""
    cfg = tiny_config(mixers=("mamba", "attention"), scan_layers=False)
    model = build(cfg, targets=LORA_TARGETS)
    seq = tokens(cfg, batch=2, length=9)
    full = nnx.jit(lambda m, t: m(t))(model, seq)
    assert float(jnp.max(jnp.abs(full - nnx.jit(lambda m, t: m(t))(base_of(model), seq)))) > 0.1
    logits, cache = nnx.jit(lambda m, t: m.prefill(t, jnp.array([5, 5]), m.init_cache(2, 9)))(
        model, seq[:, :5])
    step = nnx.jit(lambda m, t, c: m.decode_step(t, c))
    for i in range(5, 9):
        np.testing.assert_allclose(logits, full[:, i - 1], rtol=2e-5, atol=2e-5, err_msg=str(i))
        logits, cache = step(model, seq[:, i], cache)


def test_a_hugging_face_model_takes_adapters_and_exports_merged(tmp_path):
    """from_hf -> adapters (Qwen2: q/k/v biases too) -> to_hf of the merged model -> from_hf
    gives the adapted logits; to_hf refuses the model with its adapters still attached."""
    config = hf_ref.config("qwen2")
    hf_ref.write_checkpoint(tmp_path / "base", config, hf_ref.random_tensors(config))
    model = from_hf(tmp_path / "base", scan_layers=True)
    with nnx.use_eager_sharding(False):
        lora.apply_lora(model, LoRAConfig(rank=4, targets=ALL),
                        rngs=nnx.Rngs(jax.random.key(1, impl=KEY_IMPL)))
    rng = np.random.default_rng(0)
    for item in lora.adapters(model):
        b = item.adapter.lora_b
        b[...] = jnp.asarray(rng.normal(0, 0.1, b.shape), b.dtype)
    x = tokens(tiny_config())
    forward = nnx.jit(lambda m, t: m(t))
    adapted = forward(model, x)
    with pytest.raises(ValueError, match="merge_and_unload"):
        to_hf(model, tmp_path / "refused")
    to_hf(lora.merge_and_unload(model), tmp_path / "merged")
    np.testing.assert_allclose(forward(from_hf(tmp_path / "merged"), x), adapted,
                               rtol=1e-5, atol=1e-5)


def test_adapters_carry_the_weights_logical_axes():
    model = build(tiny_config(scan_layers=True), targets=("q", "o", "down"))
    axes = {f"{i.weight_name}/{n}": getattr(i.adapter, n).get_metadata()["out_sharding"]
            for i in lora.adapters(model) for n in ("lora_a", "lora_b")}
    assert axes == {
        "w_dnh/lora_a": ("layers", "embed", None),
        "w_dnh/lora_b": ("layers", None, "heads", "head_dim"),
        "w_nhd/lora_a": ("layers", "heads", "head_dim", None),
        "w_nhd/lora_b": ("layers", None, "embed"),
        "w_fd_down/lora_a": ("layers", "mlp", None),
        "w_fd_down/lora_b": ("layers", None, "embed"),
    }


def test_sharded_forward_equals_single_device():
    cfg = tiny_config(scan_layers=True)
    model = build(cfg)
    x = tokens(cfg, batch=4)
    mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    graphdef, state = nnx.split(model)
    placed = jax.device_put(state, state_shardings(state, mesh, MeshConfig().logical_axis_rules))
    a_q = placed["blocks"]["attn"]["w_dnh_lora"]["lora_a"][...]
    b_q = placed["blocks"]["attn"]["w_dnh_lora"]["lora_b"][...]
    assert tuple(a_q.sharding.spec) == (None, "fsdp", None)  # like w_dnh's embed
    assert tuple(b_q.sharding.spec)[:3] == (None, None, "tensor")  # like w_dnh's heads
    with jax.set_mesh(mesh):
        sharded = jax.jit(lambda s, t: nnx.merge(graphdef, s)(t))(placed, x)
    np.testing.assert_allclose(sharded, model(x), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Training the adapters alone, dropout, save / load


def test_only_adapters_train_and_hold_optimizer_state():
    cfg = tiny_config(scan_layers=False)
    model = build(cfg)
    x = tokens(cfg, batch=4, length=16)
    frozen_before = frozen_leaves(model)
    adapters_before = nnx.to_pure_dict(lora.adapter_state(model))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.LoRAParam)

    @nnx.jit
    def step(model, optimizer, x):
        def loss_fn(model):
            logits = model(x[:, :-1])
            return optax.softmax_cross_entropy_with_integer_labels(logits, x[:, 1:]).mean()
        loss, grads = nnx.value_and_grad(loss_fn, argnums=nnx.DiffState(0, nnx.LoRAParam))(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(step(model, optimizer, x)) for _ in range(4)]
    assert losses[-1] < losses[0]
    for name, value in frozen_leaves(model).items():  # bit-identical
        np.testing.assert_array_equal(value, frozen_before[name], err_msg=name)
    moved = jax.tree.map(lambda a, b: not np.array_equal(a, b),
                         nnx.to_pure_dict(lora.adapter_state(model)), adapters_before)
    assert all(jax.tree.leaves(moved))
    # Adam's two moments, shaped like the adapters and nothing else
    adapter_shapes = sorted(x.shape for x in jax.tree.leaves(lora.adapter_state(model)))
    moments = sorted(x.shape for x in jax.tree.leaves(nnx.state(optimizer.opt_state))
                     if np.ndim(x) > 0)
    assert moments == sorted(adapter_shapes * 2)


def test_dropout_only_inside_its_context():
    cfg = tiny_config(scan_layers=True)
    x = tokens(cfg)
    model = build(cfg, dropout=0.5)
    no_dropout = build(cfg, dropout=0.0)  # the same weights (same numpy draws)
    plain = model(x)
    np.testing.assert_array_equal(plain, no_dropout(x))  # deterministic outside the context
    with lora.dropout_rng(jax.random.key(0)):
        dropped = model(x)
        again = model(x)
        untouched = no_dropout(x)
    with lora.dropout_rng(jax.random.key(1)):
        other = model(x)
    np.testing.assert_array_equal(untouched, plain)  # rate 0 ignores the key
    np.testing.assert_array_equal(again, dropped)  # one key, one mask
    assert float(jnp.max(jnp.abs(dropped - plain))) > 1e-3
    assert float(jnp.max(jnp.abs(other - dropped))) > 1e-3
    np.testing.assert_array_equal(model(x), plain)  # and deterministic again after it


def test_scanned_layers_draw_their_own_dropout_masks():
    model = build(tiny_config(scan_layers=True), targets=("q",), dropout=0.5)
    adapter = next(lora.adapters(model)).adapter
    a = adapter.lora_a[...]
    x = jnp.ones((2, 64, 32))
    with lora.dropout_rng(jax.random.key(0)):
        masks = [np.asarray(adapter._dropout(x, a[i]) == 0) for i in range(a.shape[0])]
    assert 0.4 < masks[0].mean() < 0.6
    assert (masks[0] != masks[1]).mean() > 0.3  # independent masks, not one shared


def test_save_and_load_adapters(tmp_path):
    cfg = tiny_config(scan_layers=True)
    trained, fresh = build(cfg), build(cfg, seed=1)
    x = tokens(cfg)
    lora.save_adapters(trained, tmp_path / "adapters")
    assert not (tmp_path / "adapters" / "state").exists()  # adapters only
    with pytest.raises(FileExistsError):
        lora.save_adapters(trained, tmp_path / "adapters")
    # another model (other base weights, other adapters) takes the saved adapters, only them
    before, frozen = fresh(x), frozen_leaves(fresh)
    lora.load_adapters(fresh, tmp_path / "adapters")
    saved = dict(nnx.to_flat_state(lora.adapter_state(trained)))
    for name, value in nnx.to_flat_state(lora.adapter_state(fresh)):
        np.testing.assert_array_equal(value[...], saved[name][...])
    for name, value in frozen_leaves(fresh).items():
        np.testing.assert_array_equal(value, frozen[name])
    assert float(jnp.max(jnp.abs(fresh(x) - before))) > 0.1
    other = build(cfg, targets=("q", "v"))
    with pytest.raises(ValueError, match="targets="):
        lora.load_adapters(other, tmp_path / "adapters")


# ---------------------------------------------------------------------------------------------
# Errors


def test_bad_targets_are_one_line_config_errors():
    cfg = Config(task="lm")
    cfg.lora = LoRAConfig(rank=8, targets=("q", "query"), base="runs/x")
    with pytest.raises(ConfigError, match=r"^config.lora.targets: 'query' is not one of q, k, "
                                          r"v, o, gate, up, down, in_proj, out_proj$"):
        validate(cfg)
    with nnx.use_eager_sharding(False):
        model = nnx.eval_shape(lambda: Transformer(tiny_config(), rngs=nnx.Rngs(0)))
    with pytest.raises(ConfigError, match=r"'in_proj' matches no weight of this Transformer "
                                          r"\(it has q, k, v, o, gate, up, down\)"), \
            nnx.use_eager_sharding(False):
        lora.apply_lora(model, LoRAConfig(rank=2, targets=("q", "in_proj")), rngs=nnx.Rngs(0))
    for field, value, message in (("base", "", "name their source"),
                                  ("dropout", 1.0, r"must be in \[0, 1\)"),
                                  ("alpha", 0.0, "must be > 0"),
                                  ("rank", -1, "must be >= 0")):
        cfg.lora = dataclasses.replace(LoRAConfig(rank=8, base="runs/x"), **{field: value})
        with pytest.raises(ConfigError, match=f"config.lora.{field}: .*{message}"):
            validate(cfg)
    cfg.lora = LoRAConfig(rank=0, base="runs/x")
    with pytest.raises(ConfigError, match="config.lora.base: .*rank is 0"):
        validate(cfg)


def test_resume_refuses_another_adapter_scale(tmp_path):
    saved, current = Config(task="lm"), Config(task="lm")
    saved.lora = LoRAConfig(rank=8, alpha=16.0, base="runs/x")
    current.lora = LoRAConfig(rank=8, alpha=32.0, base="runs/x")
    shapes = {("blocks", "attn", "w_dnh_lora", "lora_a"): (4, 128, 8)}
    with pytest.raises(WorkdirError, match=r"another scale \(config.lora.alpha \(16.0 -> 32.0\)"):
        check_resume(4, to_dict(saved), to_dict(current), shapes, shapes, tmp_path)
    current.lora = LoRAConfig(rank=8, alpha=16.0, dropout=0.1, base="runs/x")
    check_resume(4, to_dict(saved), to_dict(current), shapes, shapes, tmp_path)  # a warning


LORA_CLI = ("--config", "configs/lora_quickstart.py", "--workdir", "/tmp/astrojax-never-written")


@pytest.mark.slow
def test_cli_names_bad_targets_and_a_missing_base(tmp_path):
    proc = run_cli(*LORA_CLI, "--config.lora.targets=('q','query')")
    assert_one_line_error(proc, "config.lora.targets", "'query'", "q, k, v, o, gate")
    proc = run_cli("--config", "configs/lora_quickstart.py", "--workdir", str(tmp_path / "w"),
                   f"--config.lora.base={tmp_path / 'nowhere'}", devices=1)
    assert_one_line_error(proc, "config.lora.base", "nowhere does not exist")


# ---------------------------------------------------------------------------------------------
# A LoRA training run on a base workdir


def run_config(steps: int, **lora_fields) -> Config:
    model = TransformerConfig(d_model=32, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8,
                              mlp_dim=64, max_seq_len=64)
    cfg = Config(task="lm", model=model, data=TextDataConfig(seq_len=64),
                 planets=PlanetsConfig(num_planets=256),
                 train=TrainConfig(steps=steps, global_batch_size=8, log_every=1, eval_every=100,
                                   eval_batches=1, checkpoint_every=2))
    if lora_fields:
        cfg.data.corpus = "notes"
        cfg.lora = LoRAConfig(rank=4, **lora_fields)
    return cfg


@pytest.fixture(scope="module")
def base_workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("lora") / "base"
    train_and_evaluate(run_config(2), workdir)
    return workdir


@pytest.fixture(scope="module")
def lora_run(base_workdir):
    workdir = base_workdir.parent / "lora"
    return workdir, train_and_evaluate(run_config(4, base=str(base_workdir), dropout=0.1),
                                       workdir)


@pytest.mark.slow
def test_lora_run_trains_adapters_on_the_frozen_base(base_workdir, lora_run):
    workdir, result = lora_run
    base_params, _, base_step = read_params(base_workdir)
    # the train state is the adapters; AdamW's moments are shaped like them and nothing else
    params = dict(nnx.to_flat_state(result.state.params))
    assert len(params) == 2 * len(ALL)  # A and B of every target, stacked over the 2 layers
    assert all(path[-1] in ("lora_a", "lora_b") and p.shape[0] == 2 for path, p in params.items())
    shapes = sorted(p.shape for p in params.values())
    moments = sorted(x.shape for x in jax.tree.leaves(result.state.opt_state) if x.ndim > 0)
    assert moments == sorted(shapes * 2)
    # the checkpoint holds the adapters alone and names the base's step
    checkpointer = Checkpointer(workdir / "checkpoints", max_to_keep=3, async_save=False)
    saved = checkpointer.saved_shapes(4)
    checkpointer.manager.close()
    assert saved and all(path[-2] in ("lora_a", "lora_b") for path in saved)  # .../value
    # restored for inference: the base's weights bit for bit, the adapters moved
    trained = load_trained(workdir)
    assert trained.artifacts["lora_base"]["step"] == base_step
    flat = {tuple(map(str, k)): np.asarray(v[...]) for k, v in nnx.to_flat_state(trained.params)}
    for path, value in base_params.items():
        np.testing.assert_array_equal(flat[path[:-1]], value, err_msg="/".join(path))
    assert all(np.any(v) for k, v in flat.items() if k[-1] == "lora_b")
    # the restored model scores the eval batch as the run did (on the observing notes)
    batch = trained.task.eval_data(0, 1)[0]
    sums = trained.task.eval_sums(trained.model, jax.tree.map(jnp.asarray, batch))
    np.testing.assert_allclose(sums["nll_sum"] / sums["count"], result.eval["eval/loss"],
                               rtol=1e-5)
    # and python -m astrojax.generate's loader decodes with it
    completion = load_generator(workdir, sharded=False)(["method="], max_new_tokens=4)
    assert len(completion) == 1


@pytest.mark.slow
def test_lora_resume_is_exact_and_refuses_another_base(base_workdir, lora_run, tmp_path):
    base = tmp_path / "base"  # a copy, so that it can move on below
    shutil.copytree(base_workdir, base)
    half = run_config(2, base=str(base), dropout=0.1)
    half.optim.decay_steps = 4  # the schedule of the 4-step run
    train_and_evaluate(half, tmp_path / "resumed")
    rest = run_config(4, base=str(base), dropout=0.1)
    rest.optim.decay_steps = 4
    resumed = train_and_evaluate(rest, tmp_path / "resumed")
    for a, b in zip(jax.tree.leaves(lora_run[1].state.params),
                    jax.tree.leaves(resumed.state.params), strict=True):
        np.testing.assert_array_equal(a, b)  # dropout masks included
    # the base moves on (a newer checkpoint): the adapters were not trained on that one
    shutil.copytree(base / "checkpoints" / "2", base / "checkpoints" / "3")
    more = run_config(6, base=str(base), dropout=0.1)
    more.optim.decay_steps = 4
    with pytest.raises(TrainingError, match=r"trained adapters on the base .*'step': 2.* but "
                                            r"this run reads .*'step': 3"):
        train_and_evaluate(more, tmp_path / "resumed")


@pytest.mark.slow
def test_lora_sharded_step_equals_single_device(base_workdir):
    cfg = run_config(2, base=str(base_workdir))  # no dropout: its random bits compile slowly
    task = get_task(cfg)
    single = build_program(cfg, task, make_mesh(MeshConfig(), jax.devices()[:1]))
    sharded = build_program(cfg, task, make_mesh(MeshConfig(data=2, fsdp=2, tensor=2)))
    batch = next(iter(task.train_data(0, 1)))
    with jax.set_mesh(single.mesh):
        state_1, metrics_1 = single.train_step(single.init(), single.shard(batch))
    with jax.set_mesh(sharded.mesh):
        state_8, metrics_8 = sharded.train_step(sharded.init(), sharded.shard(batch))
    np.testing.assert_allclose(metrics_8["loss"], metrics_1["loss"], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(state_1.params), jax.tree.leaves(state_8.params),
                    strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    split = [x for x in jax.tree.leaves(sharded.frozen) + jax.tree.leaves(state_8.params)
             if len({str(s.index) for s in x.addressable_shards}) > 1]
    assert split, "neither the frozen weights nor the adapters were sharded on the 2x2x2 mesh"


@pytest.mark.slow
def test_lora_base_must_match_the_model(base_workdir, tmp_path):
    cfg = run_config(2, base=str(base_workdir))
    cfg.model.mlp_dim = 128
    with pytest.raises(ConfigError, match=r"config.model.mlp_dim: differs from the LoRA base .*"
                                          r"model.mlp_dim=128 \(the base has 64\)"):
        train_and_evaluate(cfg, tmp_path / "bad")
    cfg = run_config(2, base=str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="config.lora.base: .*nowhere does not exist"):
        train_and_evaluate(cfg, tmp_path / "bad2")
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    cfg = run_config(2, base=str(tmp_path / "hf"))
    with pytest.raises(ConfigError, match="config.lora.base: .*a Hugging Face folder, but the "
                                          "training tasks read byte tokens"):
        train_and_evaluate(cfg, tmp_path / "bad3")
