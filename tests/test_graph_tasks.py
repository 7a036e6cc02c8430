"""Graph VAE tasks end to end: one compile per bucket, sharded equals single device, training
learns, the probe runs, link prediction on the shipped E. coli core model."""

import itertools
import json

import jax
import libsbml
import numpy as np
import pytest

from astrojax.config import (
    Config,
    ConfigError,
    GraphDataConfig,
    MeshConfig,
    PlanetsConfig,
    TrainConfig,
    validate,
)
from astrojax.models.graph_vae import tiny_graph_config
from astrojax.sharding import make_mesh
from astrojax.tasks import get_task
from astrojax.train.loop import train_and_evaluate
from astrojax.train.step import build_program


def tiny_graph_task_config(task="graph_vae", **train) -> Config:
    defaults = dict(steps=6, global_batch_size=16, log_every=1, eval_every=3, eval_batches=1,
                    checkpoint_every=100)
    defaults.update(train)
    if task == "graph_linkpred":
        return Config(task=task, model=tiny_graph_config(), train=TrainConfig(**defaults))
    return Config(task=task, model=tiny_graph_config(),
                  data=GraphDataConfig(graphs_per_sub_batch=2),
                  planets=PlanetsConfig(num_planets=160), train=TrainConfig(**defaults))


@pytest.fixture(scope="module")
def task():
    return get_task(tiny_graph_task_config())


def params_of(state):
    return {jax.tree_util.keystr(k): np.asarray(v)
            for k, v in jax.tree_util.tree_leaves_with_path(state.params)}


@pytest.mark.slow
def test_one_compilation_per_bucket_over_an_epoch(task):
    program = build_program(task.cfg, task, make_mesh(MeshConfig(), jax.devices()[:1]))
    epoch = len(task.split.train) // 16  # train planets // global batch
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
    # Held-out links are hidden from the encoder and scored per planet beside the path and
    # degree rules on the same visible graphs; on these small networks the rules fall below
    # chance (a held-out link takes its own paths with it), and 20 steps beat them.
    rules = ("l3", "resource_allocation", "preferential_attachment")
    for metric in ("heldout_auc", "heldout_ap"):
        assert result.eval[f"eval/{metric}"] > max(result.eval[f"eval/baseline/{rule}/{metric}"]
                                                  for rule in rules)
    assert 0.0 <= result.eval["eval/heldout_link_accuracy"] <= 1.0


def test_held_out_planets_lose_their_held_out_links(task):
    assert len(task.heldout_links["val"]) == len(task.split.val) > 0
    for net, split, example in zip(task.networks["val"], task.heldout_links["val"],
                                   task.examples["val"], strict=True):
        if split is None:
            assert len(example["heldout_pairs"]) == 0
            continue
        m = net.num_metabolites
        graph = set(zip(example["senders"].tolist(), example["receivers"].tolist(),
                        strict=True))
        held = {(a, b + m) for a, b in split.test_pairs.tolist()}
        np.testing.assert_array_equal(example["heldout_pairs"], split.test_pairs + [0, m])
        assert held and not held & graph and not {(b, a) for a, b in held} & graph
        total = len(split.train_pairs) + len(split.test_pairs)
        assert len(split.test_pairs) == max(1, int(0.1 * total))  # 10%, at least one
    assert all("heldout_pairs" not in ex for ex in task.examples["train"])


def test_graph_splits_are_the_planet_split(task):
    """Train, val and test networks are those of the planets of each split, in table order."""
    from astrojax.data.generator.biochem import planet_network

    for name in ("train", "val", "test"):
        assert len(task.networks[name]) == len(task.split[name])
    row = int(task.split.val[3])
    expected = planet_network(task.table.population, row, task.cfg.planets.seed)
    assert task.networks["val"][3].reaction_ids == expected.reaction_ids


def tiny_linkpred_config(sbml_path, **train) -> Config:
    cfg = tiny_graph_task_config("graph_linkpred", global_batch_size=1, **train)
    cfg.data.sbml_path = str(sbml_path)
    cfg.data.link_target_folds = 10
    cfg.model.edge_decoder = "structural"
    cfg.mesh = MeshConfig(data=1, tensor=-1)
    return cfg


@pytest.mark.slow
def test_link_prediction_on_e_coli_core(tmp_path):
    cfg = tiny_linkpred_config("cobra:textbook", steps=4, eval_every=4)
    result = train_and_evaluate(cfg, tmp_path)
    for split in ("val", "test"):
        for metric in ("auc", "ap"):
            assert 0.0 <= result.eval[f"eval/{split}_{metric}"] <= 1.0
            for rule in ("l3", "resource_allocation", "preferential_attachment"):
                assert 0.0 <= result.eval[f"eval/baseline/{rule}/{split}_{metric}"] <= 1.0
    task = get_task(cfg)
    # E. coli core: 72 metabolites, 95 reactions, 360 unique metabolite-reaction pairs, of which
    # 36 are held out for test and 18 for validation.
    assert task.network.num_metabolites == 72 and task.network.num_reactions == 95
    assert len(task.links.test_pairs) == 36 and len(task.links.val_pairs) == 18
    assert task.batch["link_mask"].sum() == 360 - 36 - 18
    # Each fold's targets are missing from the graph its encoder reads, and every training
    # link is a target exactly once.
    targets = []
    for batch in task.train_batches:
        b = {k: v[0] for k, v in batch.items()}
        graph = set(zip(b["senders"][b["edge_mask"]].tolist(),
                        b["receivers"][b["edge_mask"]].tolist(), strict=True))
        fold = [tuple(p) for p in b["links"][b["link_mask"]].tolist()]
        assert not graph & (set(fold) | {(r, m) for m, r in fold})
        targets += fold
    assert len(task.train_batches) == 10 and len(targets) == len(set(targets)) == 360 - 54


def write_sbml(path, compartment_of, reactions):
    """A minimal SBML file: species ``m{i}`` in compartment ``compartment_of[i]``, and one
    reaction per list of species indices (first one consumed, the rest produced)."""
    document = libsbml.SBMLDocument(3, 1)
    model = document.createModel()
    model.setId("planted")
    for name in sorted(set(compartment_of)):
        compartment = model.createCompartment()
        compartment.setId(name)
        compartment.setConstant(True)
    for i, name in enumerate(compartment_of):
        species = model.createSpecies()
        for setter, value in ((species.setId, f"m{i}"), (species.setCompartment, name),
                              (species.setHasOnlySubstanceUnits, False),
                              (species.setBoundaryCondition, False),
                              (species.setConstant, False)):
            setter(value)
    for j, members in enumerate(reactions):
        reaction = model.createReaction()
        reaction.setId(f"r{j}")
        reaction.setReversible(False)
        reaction.setFast(False)
        for k, member in enumerate(members):
            reference = reaction.createReactant() if k == 0 else reaction.createProduct()
            reference.setSpecies(f"m{member}")
            reference.setStoichiometry(1.0)
            reference.setConstant(True)
    assert libsbml.writeSBMLToFile(document, str(path))


@pytest.mark.slow
def test_link_prediction_beats_the_heuristics_where_paths_are_rare(tmp_path):
    """Each reaction joins three metabolites of one compartment, drawn at random among 100:
    paths of three rarely reach a held-out link, but the compartments tell links from random
    pairs, so a trained model must beat every path and degree rule, and chance, by a wide margin
    (60 steps: test AUC/AP about 0.92/0.88; the rules 0.48/0.51 at best)."""
    rng = np.random.default_rng(0)
    compartment_of = np.repeat(["c", "e", "p"], 100)
    reactions = [rng.choice(100, 3, replace=False) + 100 * rng.integers(3) for _ in range(300)]
    write_sbml(tmp_path / "planted.xml", compartment_of.tolist(), reactions)
    cfg = tiny_linkpred_config(tmp_path / "planted.xml", steps=STEPS, eval_every=STEPS)
    result = train_and_evaluate(cfg, tmp_path / "run")
    for metric in ("test_auc", "test_ap"):
        best = max(result.eval[f"eval/baseline/{rule}/{metric}"]
                   for rule in ("l3", "resource_allocation", "preferential_attachment"))
        assert result.eval[f"eval/{metric}"] > max(best, 0.5) + 0.2, (metric, result.eval)


STEPS = 60


def test_structural_decoder_needs_hidden_folds_and_linkpred():
    cfg = tiny_linkpred_config("cobra:textbook")
    validate(cfg)
    cfg.data.link_target_folds = 0
    with pytest.raises(ConfigError, match=r"config.model.edge_decoder: 'structural'"):
        validate(cfg)
    cfg.data.link_target_folds = 1
    with pytest.raises(ConfigError, match=r"config.data.link_target_folds: must be 0"):
        validate(cfg)
    cfg = tiny_graph_task_config()
    cfg.model.edge_decoder = "structural"
    with pytest.raises(ConfigError, match=r"config.model.edge_decoder"):
        validate(cfg)


def test_linkpred_without_a_file_names_the_key():
    cfg = tiny_graph_task_config("graph_linkpred", global_batch_size=1)
    with pytest.raises(ConfigError, match="config.data.sbml_path"):
        get_task(cfg).network  # noqa: B018


def _metrics(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
