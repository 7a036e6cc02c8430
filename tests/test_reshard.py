"""Restoring onto another mesh: a checkpoint written on (data=8) resumes on (fsdp=4, tensor=2)
and on one device, and continues with the numbers of the run that was never interrupted."""

import shutil

import jax
import numpy as np
import pytest
from test_train import params_of, read_metrics, tiny_config

from astrojax.config import MeshConfig
from astrojax.train.loop import train_and_evaluate

KEYS = ("loss", "grad_norm", "learning_rate", "eval/loss")


def config(steps, mesh):
    cfg = tiny_config(steps=steps)
    cfg.optim.decay_steps = 8  # the schedule of the 8-step run, also in the 4-step one
    cfg.mesh = mesh
    return cfg


def records(workdir, first_step):
    return [{k: r[k] for k in KEYS if k in r} | {"step": r["step"]}
            for r in read_metrics(workdir) if r["step"] >= first_step and r.keys() & set(KEYS)]


@pytest.fixture(scope="module")
def straight_and_half(tmp_path_factory):
    """The uninterrupted 8-step run on (data=8), and a workdir holding step 4 of the same run."""
    root = tmp_path_factory.mktemp("reshard")
    straight = train_and_evaluate(config(8, MeshConfig(data=8)), root / "straight")
    train_and_evaluate(config(4, MeshConfig(data=8)), root / "half")
    return straight, root


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["fsdp4_tensor2", "one_device"])
def test_a_data8_checkpoint_resumes_on_another_mesh_with_the_same_numbers(
        straight_and_half, tmp_path, layout):
    straight, root = straight_and_half
    workdir = tmp_path / "resumed"
    shutil.copytree(root / "half", workdir)
    if layout == "one_device":
        mesh, devices = MeshConfig(), jax.devices()[:1]
    else:
        mesh, devices = MeshConfig(data=1, fsdp=4, tensor=2), None
    resumed = train_and_evaluate(config(8, mesh), workdir, devices=devices)
    assert resumed.step == 8
    # the state really moved: no leaf is on the old (data=8) mesh
    meshes = {tuple(leaf.sharding.mesh.shape.items()) for leaf in jax.tree.leaves(
        (resumed.state.params, resumed.state.opt_state))}
    expected = {(("data", 1), ("fsdp", 4), ("context", 1), ("tensor", 2))} \
        if layout != "one_device" else {(("data", 1), ("fsdp", 1), ("context", 1), ("tensor", 1))}
    assert meshes == expected
    if layout != "one_device":
        split = [leaf for leaf in jax.tree.leaves(resumed.state.opt_state)
                 if len({str(s.index) for s in leaf.addressable_shards}) > 1]
        assert split, "no optimizer moment is sharded over fsdp x tensor"
    # steps 5..8, computed only after the move, match the uninterrupted run's
    ours, theirs = records(workdir, 5), records(root / "straight", 5)
    assert [r["step"] for r in ours] == [r["step"] for r in theirs]
    for a, b in zip(ours, theirs, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_allclose(a[key], b[key], rtol=2e-5, err_msg=f"{key} {a['step']}")
    p_straight, p_resumed = params_of(straight.state), params_of(resumed.state)
    assert p_straight.keys() == p_resumed.keys()
    for name in p_straight:
        np.testing.assert_allclose(p_resumed[name], p_straight[name], rtol=1e-4, atol=1e-6,
                                   err_msg=name)
