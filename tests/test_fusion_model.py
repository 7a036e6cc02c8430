"""The fusion model: masking of absent modalities, static shapes, losses, learning."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from astrojax.config import FusionConfig
from astrojax.models.fusion import FusionModel, fusion_losses, loss_terms, modality_keep
from astrojax.train.optim import decay_mask

B, C, S = 6, 5, 32


def tiny(**overrides) -> FusionConfig:
    base = FusionConfig(d_model=16, num_layers=1, num_heads=2, mlp_dim=32,
                        row_columns=tuple(f"c{i}" for i in range(C)), spectrum_bins=S,
                        spectrum_patch=8, embedding_inputs=(("graph", 4),),
                        classes=(("habitable", 2), ("biosphere", 4)),
                        retrieval_targets=("log_p",), attention_impl="xla")
    return dataclasses.replace(base, **overrides)


def build(cfg: FusionConfig) -> FusionModel:
    with nnx.use_eager_sharding(False):
        return FusionModel(cfg, rngs=nnx.Rngs(0))


def batch(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"row_values": rng.normal(size=(B, C)).astype(np.float32),
            "row_known": rng.random((B, C)) < 0.8,
            "spectrum_depth": rng.normal(size=(B, S)).astype(np.float32),
            "spectrum_sigma": rng.uniform(0.1, 1.0, (B, S)).astype(np.float32),
            "spectrum_known": rng.random((B, S)) < 0.9,
            "has_spectrum": np.array([True, False, True, False, True, True]),
            "graph": rng.normal(size=(B, 4)).astype(np.float32),
            "has_graph": np.array([False, True, True, False, False, True])}


@pytest.fixture(scope="module")
def model():
    return build(tiny())


def test_outputs_and_shapes(model):
    out = model(batch())
    assert out["embedding"].shape == (B, 16)
    assert out["logits/habitable"].shape == (B,) and out["logits/biosphere"].shape == (B, 4)
    assert out["mean/log_p"].shape == out["logvar/log_p"].shape == (B,)
    tokens, segments, _ = model.tokens(batch())
    assert tokens.shape == (B, 1 + C + S // 8 + 1, 16)
    assert model.modalities() == ("row", "spectrum", "graph")
    np.testing.assert_array_equal(segments[:, 1 + C], batch()["has_spectrum"])


def test_an_absent_modality_changes_nothing(model):
    """Whatever an absent spectrum or graph holds, the predictions are the same; a present
    one matters."""
    a, b = batch(0), batch(0)
    rng = np.random.default_rng(9)
    for key in ("spectrum_depth", "spectrum_sigma", "graph"):
        b[key] = rng.normal(size=b[key].shape).astype(np.float32) * 100
    absent = ~a["has_spectrum"] & ~a["has_graph"]
    out_a, out_b = model(a), model(b)
    np.testing.assert_allclose(out_a["logits/habitable"][absent],
                               out_b["logits/habitable"][absent], rtol=1e-5, atol=1e-6)
    assert not np.allclose(out_a["logits/habitable"][~absent],
                           out_b["logits/habitable"][~absent])


def test_unknown_catalogue_values_are_never_read(model):
    a, b = batch(1), batch(1)
    b["row_values"] = np.where(b["row_known"], b["row_values"], 1e6).astype(np.float32)
    np.testing.assert_allclose(model(a)["embedding"], model(b)["embedding"], rtol=1e-5,
                               atol=1e-6)


def test_keep_hides_a_modality_like_absence(model):
    a = batch(2)
    hidden = dict(a, has_graph=np.zeros(B, bool))
    keep = {"graph": jnp.zeros(B, bool)}
    np.testing.assert_allclose(model(a, keep)["embedding"], model(hidden)["embedding"],
                               rtol=1e-5, atol=1e-6)
    masks = modality_keep(jax.random.key(0), model.modalities(), 1000, 0.25)
    assert set(masks) == {"spectrum", "graph"}  # the catalogue row is never dropped
    assert abs(float(jnp.mean(masks["graph"])) - 0.75) < 0.05


def test_one_compilation_for_every_mix_of_modalities(model):
    graphdef, state = nnx.split(model)

    @jax.jit
    def forward(state, batch):
        return nnx.merge(graphdef, state)(batch)["embedding"]

    for seed in range(3):
        b = batch(seed)
        b["has_spectrum"] = np.random.default_rng(seed).random(B) < 0.5
        forward(state, b)
    assert forward._cache_size() == 1


def test_loss_terms_match_direct_formulas():
    outputs = {"logits/habitable": jnp.array([2.0, -1.0, 0.5]),
               "logits/biosphere": jnp.array([[1.0, 0.0, 0.0, 0.0]] * 3),
               "mean/log_p": jnp.array([0.0, 1.0, 2.0]),
               "logvar/log_p": jnp.array([0.0, np.log(4.0), 0.0])}
    labels = {"habitable": jnp.array([1, 0, 1]), "habitable_known": jnp.array([1, 1, 0]),
              "biosphere": jnp.array([0, 3, 1]), "biosphere_known": jnp.array([1, 1, 1]),
              "log_p": jnp.array([1.0, 3.0, 99.0]), "log_p_known": jnp.array([1, 1, 0])}
    terms, counts = loss_terms(outputs, labels, (("habitable", 2), ("biosphere", 4)),
                               ("log_p",))
    bce = np.mean([np.log1p(np.exp(-2.0)), np.log1p(np.exp(-1.0))])
    np.testing.assert_allclose(terms["habitable"], bce, rtol=1e-6)
    lse = np.log(np.e + 3)
    np.testing.assert_allclose(terms["biosphere"], np.mean([lse - 1, lse, lse]), rtol=1e-6)
    nll = np.mean([0.5 * (0 + 1.0), 0.5 * (np.log(4.0) + 4.0 / 4.0)])
    np.testing.assert_allclose(terms["log_p"], nll, rtol=1e-6)
    assert float(counts["habitable"]) == 2.0


def test_uncertainty_weights_are_learned_and_not_decayed():
    model = build(tiny(loss_weighting="uncertainty"))
    out = model(batch())
    labels = {"habitable": jnp.ones(B), "habitable_known": jnp.ones(B),
              "biosphere": jnp.zeros(B, jnp.int32), "biosphere_known": jnp.ones(B),
              "log_p": jnp.zeros(B), "log_p_known": jnp.ones(B)}
    loss, metrics = fusion_losses(model, out, labels, tiny(loss_weighting="uncertainty"))
    # at initialisation every log variance is 0: the weighted sum is the plain sum
    np.testing.assert_allclose(loss, sum(metrics.values()), rtol=1e-6)
    mask = decay_mask(nnx.state(model, nnx.Param))
    flat = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(mask)}
    for name in ("log_var_t", "planet_token_d", "missing_token_cd", "modality_md"):
        assert not any(v for k, v in flat.items() if name in k), name
    assert any(v for k, v in flat.items() if "w_value_cd" in k)


@pytest.mark.slow
def test_it_learns_a_label_only_one_modality_carries():
    """Habitable is the sign of the graph input's first entry; the model learns it, and the
    planets without a graph stay near chance."""
    cfg = tiny(classes=(("habitable", 2),), retrieval_targets=(), modality_dropout=0.0)
    model = build(cfg)
    optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)

    def labelled(seed):
        b = batch(seed)
        b["has_graph"] = np.ones(B, bool)
        return b, {"habitable": (b["graph"][:, 0] > 0).astype(np.float32),
                   "habitable_known": np.ones(B, np.float32)}

    @nnx.jit
    def step(model, optimizer, b, labels):
        def loss_fn(model):
            return fusion_losses(model, model(b), labels, cfg)[0]

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(step(model, optimizer, *labelled(i))) for i in range(150)]
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:20])
    b, labels = labelled(1000)
    accuracy = np.mean((np.asarray(model(b)["logits/habitable"]) > 0) == labels["habitable"])
    assert accuracy >= 5 / 6


# ---- packed encoders: climate cubes, networks and texts
G, K = 2, 2  # two groups of B // G = 3 planets, two slots each
SLOTS = {"climate": np.array([1, -1, 0, -1, 0, -1]),
         "network": np.array([-1, 0, 1, 0, -1, -1]),
         "text": np.array([0, 1, -1, -1, -1, 0])}


@pytest.fixture(scope="module")
def packed_model():
    from astrojax.config import TransformerConfig
    from astrojax.data.generator import generate_population
    from astrojax.data.generator.biochem import generate_networks
    from astrojax.data.graphs import Bucket, graph_example, pad_examples
    from astrojax.models.datacube_vit import tiny_datacube_config
    from astrojax.models.fusion import ModalityEncoders
    from astrojax.models.graph_vae import tiny_graph_config

    graph_cfg = tiny_graph_config()
    examples = [graph_example(net, graph_cfg.random_walk_steps)
                for net in generate_networks(generate_population(4, 0), 0)]
    groups = [pad_examples(examples[2 * g:2 * g + 2], Bucket(512, 2048), K) for g in range(G)]
    rng = np.random.default_rng(3)
    packed = {f"network_{k}": np.stack([g[k] for g in groups]) for k in groups[0]}
    packed["climate"] = rng.normal(size=(G, K, 2, 4, 1, 8, 8)).astype(np.float32)
    packed["text"] = rng.integers(3, 259, size=(G, K, 12)).astype(np.int32)
    packed["text"][:, :, 9:] = 0  # padding
    packed.update({f"{name}_slot": slot for name, slot in SLOTS.items()})
    encoders = ModalityEncoders(
        climate=(tiny_datacube_config(d_model=16, num_layers=1, objective="supervised"), 2,
                 (4, 8, 8)),
        network=(graph_cfg, examples[0]["nodes"].shape[1], examples[0]["edges"].shape[1]),
        text=TransformerConfig(vocab_size=384, d_model=16, num_layers=1, num_heads=2,
                               num_kv_heads=2, head_dim=8, mlp_dim=32, attention_impl="xla"))
    with nnx.use_eager_sharding(False):
        model = FusionModel(tiny(embedding_inputs=()), encoders, rngs=nnx.Rngs(0))
    return model, {**batch(4), **packed}


@pytest.mark.slow
def test_each_planet_reads_its_own_slot(packed_model):
    """Changing what a slot holds moves exactly the planets that point at it."""
    model, a = packed_model
    assert model.modalities() == ("row", "spectrum", "climate", "network", "text")
    tokens, segments, _ = model.tokens(a)
    assert tokens.shape == (B, 1 + C + S // 8 + 3, 16)
    for j, name in enumerate(("climate", "network", "text")):
        np.testing.assert_array_equal(segments[:, 1 + C + S // 8 + j], SLOTS[name] >= 0)
    base = np.asarray(model(a)["embedding"])
    # group 1 (planets 3-5), slot 0 of each modality
    changed = dict(a, climate=a["climate"].copy(), text=a["text"].copy())
    changed["climate"][1, 0] *= 5.0
    moved = ~np.isclose(np.asarray(model(changed)["embedding"]), base, atol=1e-6).all(1)
    np.testing.assert_array_equal(moved, [False, False, False, False, True, False])
    changed = dict(a, text=a["text"].copy())
    changed["text"][0, 1, :9] = 7
    moved = ~np.isclose(np.asarray(model(changed)["embedding"]), base, atol=1e-6).all(1)
    np.testing.assert_array_equal(moved, [False, True, False, False, False, False])
    changed = dict(a, network_nodes=a["network_nodes"].copy())
    changed["network_nodes"][0] += 1.0  # every node of group 0: planets 1 and 2
    moved = ~np.isclose(np.asarray(model(changed)["embedding"]), base, atol=1e-6).all(1)
    np.testing.assert_array_equal(moved, [False, True, True, False, False, False])


@pytest.mark.slow
def test_text_padding_is_not_read(packed_model):
    """The text token is the mean over real tokens of a causal encoder: more padding after
    the text changes nothing."""
    model, a = packed_model
    longer = dict(a, text=np.concatenate([a["text"], np.zeros((G, K, 4), np.int32)], -1))
    np.testing.assert_allclose(model(longer)["embedding"], model(a)["embedding"], atol=1e-5)


# ---- contrastive pretraining and scarce labels
def test_contrastive_loss_rewards_matching_views_and_ignores_absent_planets():
    from astrojax.models.fusion import contrastive_loss

    rng = np.random.default_rng(0)
    z = rng.normal(size=(6, 8))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    present = np.array([True, True, True, True, False, True])
    outputs = {"contrast/a": jnp.asarray(z), "contrast/b": jnp.asarray(z),
               "present/a": jnp.asarray(present), "present/b": jnp.ones(6, bool)}
    matched, pairs = contrastive_loss(outputs, 0.1)
    shuffled = dict(outputs, **{"contrast/b": jnp.asarray(z[[1, 2, 3, 0, 4, 5]])})
    assert float(matched) < float(contrastive_loss(shuffled, 0.1)[0]) - 1.0
    assert set(pairs) == {"contrastive/a~b"}
    # planet 4 lacks modality a: whatever its views are, the loss is the same
    moved = dict(outputs, **{"contrast/a": jnp.asarray(z).at[4].set(z[0]),
                             "contrast/b": jnp.asarray(z).at[4].set(z[0])})
    np.testing.assert_allclose(contrastive_loss(moved, 0.1)[0], matched, rtol=1e-6)
    # fewer than two planets with both views: no pair, no loss
    lonely = dict(outputs, **{"present/a": jnp.asarray(np.eye(6, dtype=bool)[0])})
    assert float(contrastive_loss(lonely, 0.1)[0]) == 0.0


def test_a_label_no_planet_has_leaves_its_uncertainty_weight_alone():
    from astrojax.models.fusion import LossWeights

    weights = LossWeights(("a", "b"), rngs=nnx.Rngs(0))
    terms = {"a": jnp.asarray(0.7), "b": jnp.asarray(0.0)}

    def loss(w, counts):
        return w(terms, counts)

    grads = nnx.grad(loss)(weights, {"a": jnp.asarray(5.0), "b": jnp.asarray(0.0)})
    assert float(grads.log_var_t[...][1]) == 0.0 and float(grads.log_var_t[...][0]) != 0.0


def test_the_model_projects_each_modality_for_the_contrastive_loss():
    model = build(tiny(contrastive_weight=1.0, contrastive_dim=8))
    out = model(batch())
    for name in ("row", "spectrum", "graph"):
        assert out[f"contrast/{name}"].shape == (B, 8)
        np.testing.assert_allclose(np.linalg.norm(out[f"contrast/{name}"], axis=1), 1.0,
                                   rtol=1e-5)
    np.testing.assert_array_equal(out["present/graph"], batch()["has_graph"])
    loss, metrics = fusion_losses(model, out, {"habitable": jnp.zeros(B, jnp.int32),
                                               "habitable_known": jnp.zeros(B),
                                               "biosphere": jnp.zeros(B, jnp.int32),
                                               "biosphere_known": jnp.zeros(B),
                                               "log_p": jnp.zeros(B), "log_p_known": jnp.zeros(B)},
                                  tiny(contrastive_weight=1.0))
    assert float(loss) == pytest.approx(float(metrics["loss/contrastive"]), rel=1e-6)
    assert {"contrastive/graph~row", "contrastive/row~spectrum"} <= set(metrics)


@pytest.mark.slow
def test_absent_inputs_are_planets_without_those_modalities(packed_model):
    model, a = packed_model
    none = dict(a, **{f"{name}_slot": np.full(B, -1, np.int32) for name in SLOTS})
    absent = {k: v for k, v in a.items() if not k.startswith(("climate", "network", "text"))}
    np.testing.assert_allclose(model({**absent, **model.absent_inputs(B)})["embedding"],
                               model(none)["embedding"], atol=1e-6)
