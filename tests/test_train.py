"""The train loop: sharded equals single-device, exact resume, one compilation, the CLI."""

import json
import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from astrojax.config import (
    Config,
    MeshConfig,
    PlanetsConfig,
    TextDataConfig,
    TrainConfig,
    TransformerConfig,
)
from astrojax.sharding import axis_rules, make_mesh
from astrojax.tasks import get_task
from astrojax.train.loop import train_and_evaluate
from astrojax.train.step import abstract_model, build_program

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(**train) -> Config:
    model = TransformerConfig(d_model=32, num_layers=2, num_heads=4, num_kv_heads=2,
                              head_dim=8, mlp_dim=64, max_seq_len=64)
    data = TextDataConfig(seq_len=64)
    defaults = dict(steps=8, global_batch_size=8, log_every=1, eval_every=4, eval_batches=1,
                    checkpoint_every=100)
    defaults.update(train)
    return Config(task="lm", model=model, data=data, planets=PlanetsConfig(num_planets=256),
                  train=TrainConfig(**defaults))


def params_of(state):
    return {jax.tree_util.keystr(k): np.asarray(v)
            for k, v in jax.tree_util.tree_leaves_with_path(state.params)}


def read_metrics(workdir: Path) -> list[dict]:
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_sharded_step_equals_single_device():
    cfg = tiny_config()
    task = get_task(cfg)
    single = build_program(cfg, task, make_mesh(MeshConfig(), jax.devices()[:1]))
    sharded = build_program(cfg, task, make_mesh(MeshConfig(data=2, fsdp=2, tensor=2)))
    batches = task.train_data(0, 1)
    it = iter(batches)
    local = [next(it) for _ in range(2)]
    state_1, state_8 = single.init(), sharded.init()
    for batch in local:
        state_1, metrics_1 = single.train_step(state_1, single.shard(batch))
        state_8, metrics_8 = sharded.train_step(state_8, sharded.shard(batch))
        np.testing.assert_allclose(metrics_8["loss"], metrics_1["loss"], rtol=1e-5)
        np.testing.assert_allclose(metrics_8["grad_norm"], metrics_1["grad_norm"], rtol=1e-4)
    p1, p8 = params_of(state_1), params_of(state_8)
    assert p1.keys() == p8.keys()
    for name in p1:
        np.testing.assert_allclose(p8[name], p1[name], rtol=1e-4, atol=1e-6, err_msg=name)
    # the sharded state really is distributed: some param is split over several devices
    sharded_leaves = [x for x in jax.tree.leaves(state_8.params)
                      if len({str(s.index) for s in x.addressable_shards}) > 1]
    assert sharded_leaves, "no parameter was sharded on the 2x2x2 mesh"


@pytest.mark.slow
@pytest.mark.parametrize("impl", ["auto", "xla"])
def test_context_parallel_step_equals_single_device(impl):
    # auto -> ring attention over the context axis; xla gathers keys and values instead
    cfg = tiny_config()
    cfg.model.attention_impl = impl
    task = get_task(cfg)
    single = build_program(cfg, task, make_mesh(MeshConfig(), jax.devices()[:1]))
    split = build_program(cfg, task, make_mesh(MeshConfig(data=2, context=4)))
    it = iter(task.train_data(0, 1))
    state_1, state_8 = single.init(), split.init()
    for _ in range(2):
        batch = next(it)
        state_1, metrics_1 = single.train_step(state_1, single.shard(batch))
        state_8, metrics_8 = split.train_step(state_8, split.shard(batch))
        np.testing.assert_allclose(metrics_8["loss"], metrics_1["loss"], rtol=1e-5)
        np.testing.assert_allclose(metrics_8["grad_norm"], metrics_1["grad_norm"], rtol=1e-4)
    # the residual stream really is split along the sequence
    graphdef, _ = abstract_model(task, 0)
    tokens = split.shard(batch)["tokens"]
    with jax.set_mesh(split.mesh), axis_rules(cfg.mesh.logical_axis_rules):
        logits = jax.jit(lambda p, t: nnx.merge(graphdef, p)(t))(state_8.params, tokens)
    assert tuple(logits.sharding.spec)[:2] == ("data", "context")


@pytest.mark.slow
def test_resume_is_exact(tmp_path):
    straight = train_and_evaluate(tiny_config(steps=8), tmp_path / "straight")
    half = tiny_config(steps=4)
    half.optim.decay_steps = 8  # the same schedule as the straight run
    first = train_and_evaluate(half, tmp_path / "resumed")
    assert first.step == 4
    resumed_cfg = tiny_config(steps=8)
    resumed_cfg.optim.decay_steps = 8
    resumed = train_and_evaluate(resumed_cfg, tmp_path / "resumed")
    assert resumed.step == 8
    p_straight, p_resumed = params_of(straight.state), params_of(resumed.state)
    for name in p_straight:
        np.testing.assert_array_equal(p_resumed[name], p_straight[name], err_msg=name)
    keys = ("loss", "accuracy", "grad_norm", "learning_rate", "eval/loss")
    rows_a = [{k: r[k] for k in keys if k in r} | {"step": r["step"]}
              for r in read_metrics(tmp_path / "straight") if r.keys() & set(keys)]
    rows_b = [{k: r[k] for k in keys if k in r} | {"step": r["step"]}
              for r in read_metrics(tmp_path / "resumed") if r.keys() & set(keys)]
    assert rows_b == rows_a  # includes steps 5..8, which only the resumed run computed


@pytest.mark.slow
def test_train_step_compiles_once(tmp_path, caplog):
    with jax.log_compiles(), caplog.at_level("WARNING"):
        train_and_evaluate(tiny_config(steps=6, eval_every=2, eval_batches=2),
                           tmp_path / "run")
    messages = [r.getMessage() for r in caplog.records]
    assert sum("jit(train_step)" in m and "Compiling" in m for m in messages) == 1
    assert sum("jit(eval_step)" in m and "Compiling" in m for m in messages) == 1


def quickstart_config() -> Config:
    return runpy.run_path(str(ROOT / "configs" / "quickstart.py"))["get_config"]()


@pytest.mark.slow
def test_quickstart_same_loss_on_1_and_8_devices(tmp_path):
    losses = {}
    for n in (1, 8):
        cfg = quickstart_config()
        cfg.train.steps, cfg.train.log_every, cfg.train.eval_batches = 3, 1, 0
        train_and_evaluate(cfg, tmp_path / f"d{n}", devices=jax.devices()[:n])
        losses[n] = [r["loss"] for r in read_metrics(tmp_path / f"d{n}")]
    assert len(losses[1]) == 3
    np.testing.assert_allclose(losses[8], losses[1], rtol=2e-4)


def test_quickstart_batch_divides_device_counts():
    batch = quickstart_config().train.global_batch_size
    assert all(batch % n == 0 for n in (1, 2, 4, 8))


def cli(workdir, *overrides, devices=1):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               JAX_PLATFORMS="cpu")
    tiny = ["--config.model.d_model=32", "--config.model.num_layers=2",
            "--config.model.mlp_dim=64", "--config.model.head_dim=8",
            "--config.planets.num_planets=256", "--config.data.seq_len=64",
            "--config.train.global_batch_size=8"]
    return [sys.executable, "-m", "astrojax.train", "--config", "configs/quickstart.py",
            "--workdir", str(workdir), *tiny, *overrides], env


@pytest.mark.slow
def test_cli_end_to_end(tmp_path):
    args, env = cli(tmp_path, "--config.train.steps=4", "--config.train.log_every=2",
                    "--config.train.eval_every=4")
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = read_metrics(tmp_path)
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == [2, 4]
    for row in train_rows:
        assert {"step", "loss", "learning_rate", "tokens_per_second"} <= row.keys()
        assert np.isfinite(row["loss"]) and row["tokens_per_second"] > 0
    evals = [r for r in rows if "eval/loss" in r]
    assert evals
    # every eval is logged beside its baselines on the same held-out targets
    baseline = evals[-1]
    assert baseline["eval/baseline/uniform/loss"] == pytest.approx(np.log(259))
    assert (baseline["eval/baseline/ngram8/loss"] < baseline["eval/baseline/unigram/loss"]
            < baseline["eval/baseline/uniform/loss"])
    # after the last step, the test split once, beside its own baselines
    tests = [r for r in rows if "test/loss" in r]
    assert len(tests) == 1 and tests[0]["step"] == 4
    assert tests[0]["test/baseline/ngram8/loss"] < tests[0]["test/baseline/unigram/loss"]
    assert tests[0]["test/loss"] != evals[-1]["eval/loss"]  # other planets
    assert (tmp_path / "checkpoints" / "4").is_dir()
    assert json.loads((tmp_path / "config.json").read_text())["train"]["steps"] == 4
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint(tmp_path):
    args, env = cli(tmp_path, "--config.train.steps=100000", "--config.train.log_every=1",
                    "--config.train.eval_batches=0")
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        metrics = tmp_path / "metrics.jsonl"
        while time.time() < deadline and not (metrics.exists() and metrics.read_text()):
            time.sleep(0.5)
        assert metrics.exists(), "training never logged a step"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "SIGTERM received" in stderr
    steps = [int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()]
    assert steps and max(steps) >= read_metrics(tmp_path)[-1]["step"]
