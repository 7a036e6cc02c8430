"""The dry run (astrojax.train.plan): memory and FLOPs of a train step from abstract shapes."""

import dataclasses
import subprocess
import sys

import jax
import numpy as np
import pytest

from astrojax.config import ConfigError, MeshConfig
from astrojax.train.plan import Plan, format_plan, plan_run, shard_bytes
from tests.test_train import tiny_config


def _config(**mesh):
    cfg = tiny_config()
    cfg.model.scan_layers = True
    cfg.mesh = MeshConfig(**{"data": 1, "fsdp": 4, "tensor": 2, **mesh})
    return cfg


@pytest.fixture(scope="module")
def plan() -> Plan:
    return plan_run(_config())


def test_parameter_bytes_match_the_parameter_count(plan):
    from astrojax.tasks import get_task
    from astrojax.train.step import abstract_model

    _, params = abstract_model(get_task(_config()), 0)
    count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
    assert plan.num_params == count
    assert plan.params_total == 4 * count  # float32 parameters
    # fsdp 4 x tensor 2: the matrices split 8 ways, norm scales and the like only 4 (fsdp)
    # or not at all, so a device holds between 1/8 and all of them.
    assert plan.params_total / 8 <= plan.params < plan.params_total / 2
    # AdamW keeps two moments like the parameters (and a few replicated counters).
    assert 2 * plan.params <= plan.optimizer_state <= 2 * plan.params + 64


def test_xla_arguments_hold_the_state_and_the_batch(plan):
    state = plan.params + plan.optimizer_state
    assert plan.arguments >= state + plan.batch
    assert plan.arguments <= state + plan.batch + 1024  # step, rng, counters
    assert plan.donated >= state  # the state is updated in place
    assert plan.temporaries > 0
    assert plan.peak == plan.arguments + plan.outputs - plan.donated + plan.temporaries


def test_flops_count_every_layer_of_a_scanned_stack(plan):
    """XLA counts a loop's body once; the plan counts the unrolled stack, so a scanned model
    is counted like the unrolled one and is above 6 N D (attention, remat on top)."""
    unrolled = dataclasses.replace(_config(), model=dataclasses.replace(
        _config().model, scan_layers=False))
    assert plan_run(unrolled).flops == pytest.approx(plan.flops, rel=1e-6)
    assert plan.flops > 6 * plan.num_params * plan.tokens
    assert plan.tokens == 8 * 64


def test_a_mesh_that_does_not_fit_is_a_config_error():
    with pytest.raises(ConfigError, match="mesh"):
        plan_run(_config(fsdp=3))


def test_shard_bytes_counts_the_fullest_device():
    mesh = jax.make_mesh((8,), ("x",), axis_types=(jax.sharding.AxisType.Auto,))
    split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("x"))
    whole = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    tree = [jax.ShapeDtypeStruct((64, 3), np.float32), jax.ShapeDtypeStruct((5,), np.int8)]
    assert shard_bytes(tree, [split, whole]) == 8 * 3 * 4 + 5


def test_format_names_each_part(plan):
    text = format_plan(plan)
    for part in ("parameters", "optimizer state", "activations and temporaries", "total",
                 "FLOPs per step", "6 N D", "fsdp=4 x tensor=2"):
        assert part in text


@pytest.mark.slow
def test_cli_dry_run_on_fake_devices(tmp_path):
    """--dry_run needs no workdir and, with --dry_run_devices, plans for that many devices."""
    out = subprocess.run(
        [sys.executable, "-m", "astrojax.train", "--config", "configs/quickstart.py",
         "--dry_run", "--dry_run_devices=2", "--config.planets.num_planets=256",
         "--config.model.num_layers=1"],
        capture_output=True, text=True, timeout=600, env={**_env(), "XLA_FLAGS": ""})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "dry run: the train step compiled for data=2 (2 cpu device(s))" in out.stdout
    assert "optimizer state" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "astrojax.train", "--config",
                          "configs/quickstart.py", "--dry_run_devices=2"],
                         capture_output=True, text=True, timeout=120, env=_env())
    assert bad.returncode == 2 and "--dry_run_devices is for --dry_run" in bad.stderr


def _env():
    import os
    return {**os.environ}
