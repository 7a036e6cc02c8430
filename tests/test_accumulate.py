"""Gradient accumulation: k microbatches of a batch make the batch's own update, the split keeps
every microbatch sharded over the data axes, and batches that cannot split are refused."""

import json
import re

import jax
import numpy as np
import pytest

from astrojax.config import (
    Config,
    ConfigError,
    GraphDataConfig,
    LinkPredDataConfig,
    MeshConfig,
    OptimConfig,
    PlanetsConfig,
    TextDataConfig,
    TrainConfig,
    validate,
)
from astrojax.models.transformer import tiny_config
from astrojax.sharding import make_mesh
from astrojax.tasks import get_task
from astrojax.train.accumulate import split_microbatches
from astrojax.train.loop import train_and_evaluate
from astrojax.train.step import build_program


def lm_config(k: int, **train) -> Config:
    # Adam's eps at 1e-3, below the typical gradient: with 1e-8 a gradient near zero
    # turns a float rounding difference into a whole step of the other sign.
    return Config(model=tiny_config(max_seq_len=64, vocab_size=384),
                  data=TextDataConfig(seq_len=64), planets=PlanetsConfig(num_planets=64),
                  optim=OptimConfig(accumulation_steps=k, warmup_steps=0, eps=1e-3),
                  train=TrainConfig(global_batch_size=16, **train))


def test_microbatches_take_every_kth_unit_and_keep_units_together():
    # 12 rows in 6 units of 2 (packing groups), and a [units] array beside them
    rows = np.arange(12)
    split = split_microbatches({"rows": rows, "units": np.arange(6) * 10}, k=3, units=6)
    assert split["rows"].shape == (3, 4) and split["units"].shape == (3, 2)
    np.testing.assert_array_equal(split["units"][1], [10, 40])  # units 1 and 4
    np.testing.assert_array_equal(split["rows"][1], [2, 3, 8, 9])  # their rows, together
    with pytest.raises(ValueError, match="'odd' has 5 rows"):
        split_microbatches({"odd": np.arange(5)}, k=3, units=6)


@pytest.mark.slow
def test_microbatches_stay_sharded_no_batch_gather():
    """On 8 data-parallel devices, the accumulated step moves no batch between devices:
    only the gradients' all-reduce, as without accumulation (a contiguous split would
    all-gather each microbatch)."""
    counts = {}
    for k in (1, 2):
        cfg = lm_config(k, steps=1)
        task = get_task(cfg)
        program = build_program(cfg, task, make_mesh(cfg.mesh))
        batch = program.shard(next(iter(task.train_data(0, 1))))
        with jax.set_mesh(program.mesh):
            hlo = program.train_step.lower(program.init(), batch).compile().as_text()
        counts[k] = {op: len(re.findall(rf"{op}(-start)?\(", hlo))
                     for op in ("all-gather", "all-to-all", "collective-permute", "all-reduce")}
    assert counts[2] == counts[1]
    assert counts[2]["all-gather"] == counts[2]["all-to-all"] == 0
    assert counts[2]["collective-permute"] == 0


def _run(tmp_path, name: str, k: int):
    cfg = lm_config(k, steps=3, log_every=1, eval_every=3, eval_batches=1,
                    checkpoint_every=3)
    result = train_and_evaluate(cfg, tmp_path / name, devices=jax.devices()[:4])
    rows = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").open()]
    return result, [r for r in rows if "loss" in r]


@pytest.mark.slow
def test_accumulated_run_equals_the_whole_batch_run(tmp_path):
    """Batch 16 in 4 microbatches of 4 == batch 16 at once, both over 4 data-parallel devices
    (one row of each microbatch per device): losses, metrics and parameters
    after 3 updates (packed rows hold different numbers of target tokens, so the microbatches
    are weighted by them); the step counter and metrics.jsonl count updates."""
    whole, whole_rows = _run(tmp_path, "whole", 1)
    accumulated, accumulated_rows = _run(tmp_path, "accumulated", 4)
    assert int(accumulated.state.step) == 3
    assert [r["step"] for r in accumulated_rows] == [1, 2, 3]
    for a, b in zip(whole_rows, accumulated_rows, strict=True):
        for key in ("loss", "accuracy", "grad_norm", "learning_rate"):
            assert b[key] == pytest.approx(a[key], rel=1e-5), key
        assert b["target_tokens"] == a["target_tokens"]  # summed over the microbatches
    assert accumulated.eval["eval/loss"] == pytest.approx(whole.eval["eval/loss"], rel=1e-5)
    for a, b in zip(jax.tree.leaves(whole.state.params), jax.tree.leaves(
            accumulated.state.params), strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=2e-5)


@pytest.mark.parametrize("cfg, match", [
    (lm_config(3), "global_batch_size=16 does not split into 3 microbatches"),
    (Config(task="lm", optim=OptimConfig(accumulation_steps=4),
            train=TrainConfig(global_batch_size=16)),
     r"into 4 microbatches over the data-parallel size 8 .*divisible by 4 x 8"),
    (Config(task="graph_vae", data=GraphDataConfig(graphs_per_sub_batch=2),
            optim=OptimConfig(accumulation_steps=2), train=TrainConfig(global_batch_size=16)),
     "the 8 sub-batches of data.graphs_per_sub_batch graphs does not split into 2"),
    (Config(task="graph_linkpred", data=LinkPredDataConfig(sbml_path="x.xml"),
            optim=OptimConfig(accumulation_steps=2), train=TrainConfig(global_batch_size=1),
            mesh=MeshConfig(data=1)),
     "task 'graph_linkpred' trains on one network per step"),
])
def test_batches_that_do_not_split_are_refused_naming_the_key(cfg, match):
    devices = 1 if cfg.task == "graph_linkpred" else 8
    with pytest.raises(ConfigError, match=rf"^config\.optim\.accumulation_steps: .*{match}"):
        validate(cfg, num_devices=devices)


def test_task_checks_its_own_units():
    """Fusion splits by packing groups of data.group_size planets: 32 planets in 4 groups do
    not make 2 microbatches over 4 batch shards, though 32 rows would."""
    cfg = Config(task="fusion", planets=PlanetsConfig(num_planets=64),
                 optim=OptimConfig(accumulation_steps=2), train=TrainConfig(global_batch_size=32))
    cfg.data.modalities = ("catalogue", "text")
    cfg.data.group_size = 8
    validate(cfg, num_devices=4)  # rows: 32 = 2 x 4 x 4
    task = get_task(cfg)
    assert task.microbatch_units() == 4
    with pytest.raises(ConfigError, match=r"^config\.optim\.accumulation_steps: task 'fusion'"):
        task.check_mesh({"data": 4, "fsdp": 1, "context": 1, "tensor": 1})


@pytest.mark.slow
def test_dry_run_counts_the_flops_of_every_microbatch():
    """XLA counts a scan's body once; the plan's FLOPs are those of the whole batch."""
    from astrojax.train.plan import abstract_batch, step_flops

    flops = {}
    for k in (1, 4):
        cfg = lm_config(k)
        task = get_task(cfg)
        mesh = make_mesh(MeshConfig(data=2), jax.devices()[:2])
        batch = abstract_batch(build_program(cfg, task, mesh))
        flops[k] = step_flops(cfg, task, mesh, batch)
    assert flops[1] > 0 and flops[4] == pytest.approx(flops[1], rel=1e-3)
