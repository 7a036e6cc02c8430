"""Memory in training: host offload through memory kinds, device memory in the logs, and the
profiler window."""

import gzip
import json

import jax
import numpy as np
import pytest

from astrojax.config import MeshConfig
from astrojax.train.loop import train_and_evaluate
from astrojax.train.metrics import device_memory
from tests.test_train import params_of, read_metrics, tiny_config


def _offload_config(**train):
    cfg = tiny_config(**{"steps": 4, "checkpoint_every": 2, **train})
    cfg.mesh = MeshConfig(data=2, fsdp=2, tensor=2)
    return cfg


@pytest.mark.slow
def test_offloaded_state_trains_and_resumes_like_the_device_one(tmp_path, caplog):
    plain = train_and_evaluate(_offload_config(), tmp_path / "plain")
    caplog.clear()
    off = train_and_evaluate(_offload_config(offload_optimizer=True, offload_params=True),
                             tmp_path / "off")
    assert "no effect on CPU" in caplog.text
    kinds = {leaf.sharding.memory_kind for leaf in jax.tree.leaves(off.state.opt_state)}
    assert kinds == {"pinned_host", "device"}  # moments on the host, counters on the device
    assert {leaf.sharding.memory_kind for leaf in jax.tree.leaves(off.state.params)} == {
        "pinned_host"}
    for name, value in params_of(plain.state).items():
        np.testing.assert_allclose(params_of(off.state)[name], value, rtol=1e-6, atol=1e-7)
    assert off.eval["eval/loss"] == pytest.approx(plain.eval["eval/loss"], rel=1e-6)
    # Orbax restores onto the pinned_host shardings and the run goes on.
    longer = train_and_evaluate(_offload_config(steps=6, offload_optimizer=True), tmp_path / "off")
    assert longer.step == 6 and np.isfinite(longer.train["loss"])


def test_only_moments_move_to_the_host():
    from astrojax.sharding import make_mesh
    from astrojax.tasks import get_task
    from astrojax.train import step as step_lib
    from astrojax.train.optim import make_optimizer

    cfg = _offload_config()
    task = get_task(cfg)
    tx, _ = make_optimizer(cfg.optim, 4)
    abstract = jax.eval_shape(lambda: step_lib.init_state(task, tx, 0))
    mesh = make_mesh(cfg.mesh)
    on_chip = step_lib.state_shardings(abstract, tx, mesh, cfg.mesh.logical_axis_rules)
    moved = step_lib.offloaded(on_chip, tx, optimizer=True, params=False)
    before = jax.tree.leaves(on_chip.opt_state)
    after = jax.tree.leaves(moved.opt_state)
    n_params = len(jax.tree.leaves(abstract.params))
    assert sum(s.memory_kind == "pinned_host" for s in after) == 2 * n_params  # mu and nu
    assert all(a.spec == b.spec for a, b in zip(after, before, strict=True))
    assert all(s.memory_kind != "pinned_host" for s in jax.tree.leaves(moved.params))


def test_device_memory_reports_what_the_backend_has():
    assert device_memory(jax.local_devices()) == {}  # CPU: memory_stats() is None

    class Fake:
        def __init__(self, used, peak):
            self.stats = {"bytes_in_use": used, "peak_bytes_in_use": peak, "bytes_limit": 100}

        def memory_stats(self):
            return self.stats

    assert device_memory([Fake(10, 30), Fake(20, 25)]) == {
        "memory/bytes_in_use": 20, "memory/peak_bytes_in_use": 30, "memory/bytes_limit": 100}


@pytest.mark.slow
def test_profile_window_writes_a_trace_of_its_steps(tmp_path):
    train_and_evaluate(tiny_config(steps=6, profile_steps=2, profile_start_step=2,
                                   eval_every=100), tmp_path)
    traces = list((tmp_path / "tensorboard" / "plugins" / "profile").glob("*/*.trace.json.gz"))
    assert len(traces) == 1
    assert list(traces[0].parent.glob("*.xplane.pb"))  # TensorBoard's profile plugin reads it
    events = json.load(gzip.open(traces[0]))["traceEvents"]
    steps = sorted(int(e["args"]["step_num"]) for e in events if e.get("name") == "train")
    assert steps == [3, 4]
    assert read_metrics(tmp_path)[-1]["step"] == 6  # the run went on after the window


@pytest.mark.gpu
def test_offload_lowers_device_memory_on_gpu(tmp_path):
    """With a GPU: the optimizer's moments in pinned host memory leave the device; bytes in
    use after building the state drop by about their size."""
    from astrojax.sharding import make_mesh
    from astrojax.tasks import get_task
    from astrojax.train.step import build_program

    def used_after_init(**train):
        cfg = _offload_config(**train)
        cfg.mesh = MeshConfig()
        cfg.model.d_model, cfg.model.mlp_dim = 512, 2048
        program = build_program(cfg, get_task(cfg), make_mesh(cfg.mesh,
                                                              jax.devices("gpu")[:1]))
        state = program.init()
        jax.block_until_ready(state)
        used = jax.devices("gpu")[0].memory_stats()["bytes_in_use"]
        moments = sum(x.nbytes for x in jax.tree.leaves(state.opt_state) if x.ndim)
        del state
        return used, moments

    plain, moments = used_after_init()
    offloaded, _ = used_after_init(offload_optimizer=True)
    assert plain - offloaded >= 0.9 * moments
