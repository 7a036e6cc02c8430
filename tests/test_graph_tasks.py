"""Graph VAE tasks end to end: one compile per bucket, sharded equals single device, training
learns, the probe runs, link prediction on the shipped E. coli core model."""

import itertools
import json

import jax
import numpy as np
import pytest

from astrojax.config import Config, ConfigError, DataConfig, MeshConfig, TrainConfig
from astrojax.models.graph_vae import tiny_graph_config
from astrojax.sharding import make_mesh
from astrojax.tasks import get_task
from astrojax.train.loop import train_and_evaluate
from astrojax.train.step import build_program


def tiny_graph_task_config(task="graph_vae", **train) -> Config:
    defaults = dict(steps=6, global_batch_size=16, log_every=1, eval_every=3, eval_batches=1,
                    checkpoint_every=100)
    defaults.update(train)
    return Config(task=task, graph_vae=tiny_graph_config(),
                  data=DataConfig(num_planets=160, graphs_per_sub_batch=2),
                  train=TrainConfig(**defaults))


@pytest.fixture(scope="module")
def task():
    return get_task(tiny_graph_task_config())


def params_of(state):
    return {jax.tree_util.keystr(k): np.asarray(v)
            for k, v in jax.tree_util.tree_leaves_with_path(state.params)}


@pytest.mark.slow
def test_one_compilation_per_bucket_over_an_epoch(task):
    program = build_program(task.cfg, task, make_mesh(MeshConfig(), jax.devices()[:1]))
    epoch = (160 - 16) // 16  # train planets // global batch
    batches = list(itertools.islice(iter(task.train_data(0, 1)), epoch))
    shapes = {b["nodes"].shape for b in batches}
    assert len(shapes) >= 2, f"the epoch used only {shapes}; the test needs several buckets"
    assert {s[1] for s in shapes} <= {b.nodes for b in task.buckets}
    state = program.init()
    for batch in batches:
        state, metrics = program.train_step(state, program.shard(batch))
    assert np.isfinite(float(metrics["loss"]))
    assert program.train_step._cache_size() == len(shapes)
    assert len(shapes) <= len(task.buckets)


@pytest.mark.slow
def test_sharded_graph_step_equals_single_device(task):
    single = build_program(task.cfg, task, make_mesh(MeshConfig(), jax.devices()[:1]))
    sharded = build_program(task.cfg, task, make_mesh(MeshConfig(data=4, fsdp=2)))
    batch = next(iter(task.train_data(0, 1)))
    state_1, state_8 = single.init(), sharded.init()
    for _ in range(2):  # one batch twice: one compilation per mesh, a second step to compare
        state_1, metrics_1 = single.train_step(state_1, single.shard(batch))
        state_8, metrics_8 = sharded.train_step(state_8, sharded.shard(batch))
        for name in ("loss", "link_bce", "feature_mse", "kl_per_node", "grad_norm"):
            np.testing.assert_allclose(metrics_8[name], metrics_1[name], rtol=1e-4,
                                       err_msg=name)
    nodes = sharded.shard(batch)["nodes"]
    assert len(nodes.sharding.device_set) == 8
    p1, p8 = params_of(state_1), params_of(state_8)
    for name in p1:
        # Adam turns near-zero gradients into sign-sized steps, so compare on the step size.
        np.testing.assert_allclose(p8[name], p1[name], rtol=1e-4, atol=2e-5, err_msg=name)


@pytest.mark.slow
def test_graph_vae_trains_and_probes(tmp_path):
    cfg = tiny_graph_task_config(steps=20, eval_every=20, eval_batches=2)
    largest = max(get_task(cfg).buckets)  # one bucket: train, eval and embed compile once each
    cfg.data.graph_buckets = ((largest.nodes, largest.edges),)
    result = train_and_evaluate(cfg, tmp_path, devices=jax.devices()[:2])
    records = [r for r in _metrics(tmp_path) if "loss" in r]
    assert records[-1]["loss"] < records[0]["loss"]
    for name in ("probe/biosphere_accuracy", "probe/counts_baseline_accuracy",
                 "probe/majority_accuracy"):
        assert 0.0 <= result.eval[f"eval/{name}"] <= 1.0
    assert result.eval["eval/link_accuracy"] > 0.5


@pytest.mark.slow
def test_link_prediction_on_e_coli_core(tmp_path):
    cfg = tiny_graph_task_config("graph_linkpred", steps=4, eval_every=4, global_batch_size=1)
    cfg.data.sbml_path = "cobra:textbook"
    cfg.data.graphs_per_sub_batch = 1
    cfg.mesh = MeshConfig(data=1, tensor=-1)
    result = train_and_evaluate(cfg, tmp_path)
    for split in ("val", "test"):
        for metric in ("auc", "ap"):
            assert 0.0 <= result.eval[f"eval/{split}_{metric}"] <= 1.0
            assert 0.0 <= result.eval[f"eval/baseline/l3/{split}_{metric}"] <= 1.0
    task = get_task(cfg)
    # E. coli core: 72 metabolites, 95 reactions, 360 unique metabolite-reaction pairs, of which
    # 36 are held out for test and 18 for validation.
    assert task.network.num_metabolites == 72 and task.network.num_reactions == 95
    assert len(task.split.test_pairs) == 36 and len(task.split.val_pairs) == 18
    assert task.batch["link_mask"].sum() == 360 - 36 - 18


def test_linkpred_without_a_file_names_the_key():
    cfg = tiny_graph_task_config("graph_linkpred", global_batch_size=1)
    with pytest.raises(ConfigError, match="config.data.sbml_path"):
        get_task(cfg).network  # noqa: B018


def _metrics(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
