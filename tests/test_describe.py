"""Task describe: the description parser, the prefix, the loss on description tokens only, and a
run warm-started from fusion and language-model runs with the fusion model frozen."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from astrojax.config import (
    Config,
    ConfigError,
    FusionConfig,
    PlanetsConfig,
    TextDataConfig,
    TrainConfig,
    validate,
)
from astrojax.data.generator import (
    BIOSPHERE_CLASSES,
    CLIMATE_REGIMES,
    STAR_TYPES,
    describe_planet,
    generate_population,
)
from astrojax.data.generator.text import DESCRIPTION_FACTS, read_description
from astrojax.models.describe import PlanetDescriber, prefixed_next_token_stats
from astrojax.models.fusion import FusionModel
from astrojax.models.transformer import Transformer, tiny_config
from astrojax.tasks import get_task
from astrojax.train.loop import train_and_evaluate

PLANETS = PlanetsConfig(num_planets=256)
LM = tiny_config(vocab_size=384, attention_impl="xla", scan_layers=False)
FUSION = FusionConfig(d_model=16, num_layers=1, num_heads=2, mlp_dim=32, attention_impl="xla")


# ---- the parser
def test_the_parser_reads_every_template_and_phrasing_back_to_the_truth():
    population = generate_population(600, seed=5)
    seen = {name: set() for name in DESCRIPTION_FACTS}
    for record in population.records():
        for variant in range(16):  # 4 templates x 2 habitability x 2 life phrasings
            facts = read_description(describe_planet(record, variant))
            assert facts == {name: int(record[name]) for name in DESCRIPTION_FACTS}, variant
        for name in DESCRIPTION_FACTS:
            seen[name].add(int(record[name]))
    # every value of every fact was read at least once, so no branch went untested
    assert seen == {"climate_regime": set(range(len(CLIMATE_REGIMES))),
                    "biosphere": set(range(len(BIOSPHERE_CLASSES))),
                    "habitable": {0, 1}, "biosignature": {0, 1},
                    "star_type": set(range(len(STAR_TYPES)))}


def test_the_parser_calls_garbage_and_contradictions_unparseable():
    none = dict.fromkeys(DESCRIPTION_FACTS)
    rng = np.random.default_rng(0)
    assert read_description("") == none
    assert read_description(bytes(rng.integers(0, 256, 400, dtype=np.uint8)).decode(
        "latin-1")) == none
    record = next(generate_population(8, seed=0).records())
    text = describe_planet(record, 3)  # "... Climate: X. Habitability: ... Life: ...; ..."
    assert read_description(text[:text.index("Climate:")])["climate_regime"] is None
    other = CLIMATE_REGIMES[(record["climate_regime"] + 1) % len(CLIMATE_REGIMES)]
    contradicted = read_description(text + f" Climate: {other}.")
    assert contradicted["climate_regime"] is None
    assert contradicted["habitable"] == int(record["habitable"])  # the rest still reads
    assert read_description("It is a warm climate.")["climate_regime"] is None
    assert read_description("It hosts a lichen biosphere and no biosignature is "
                            "detectable.") == {**none, "biosignature": 0}
    assert read_description("it is habitable; it is not habitable")["habitable"] is None


# ---- the model
def describer(prefix_tokens: int, seed: int = 0, fusion: bool = True) -> PlanetDescriber:
    rngs = nnx.Rngs(seed)
    with nnx.use_eager_sharding(False):
        model = FusionModel(dataclasses.replace(FUSION, row_columns=("a", "b", "c")),
                            rngs=rngs) if fusion else None
        return PlanetDescriber(Transformer(LM, rngs=rngs), model, prefix_tokens=prefix_tokens,
                               fusion_dim=FUSION.d_model, projector_dim=24, rngs=rngs)


def _rows(b: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"row_values": jnp.asarray(rng.normal(size=(b, 3)), jnp.float32),
            "row_known": jnp.ones((b, 3), bool)}


@pytest.fixture(scope="module")
def model():
    return describer(3)


@nnx.jit
def forward(model, batch, tokens):
    return model(batch, tokens)


@pytest.mark.slow
def test_the_prefix_is_prefix_tokens_vectors_of_the_lm_width(model):
    tokens = jnp.ones((2, 10), jnp.int32)
    prefix = nnx.jit(lambda m, b: m.prefix(b))(model, _rows(2))
    assert prefix.shape == (2, 3, LM.d_model)
    assert not np.allclose(prefix[0], prefix[1])  # each planet its own prefix
    assert forward(model, _rows(2), tokens).shape == (2, 13, LM.vocab_size)
    alone = describer(0, fusion=False)
    assert alone.prefix(_rows(2)) is None and not hasattr(alone, "fusion")
    assert forward(alone, _rows(2), tokens).shape == (2, 10, LM.vocab_size)
    with pytest.raises(ValueError, match="needs a fusion model exactly when"):
        describer(2, fusion=False)


@pytest.mark.slow
def test_the_loss_reads_only_the_description_tokens_after_the_prefix(model):
    rng = np.random.default_rng(0)
    tokens = rng.integers(3, 259, (2, 12)).astype(np.int32)
    tokens[:, 0] = 1  # BOS
    mask = np.ones((2, 12), bool)
    mask[0, 8:], mask[1, 5:] = False, False
    tokens[~mask] = 0

    def stats(tokens_bt, logits=None):
        logits = forward(model, _rows(2), jnp.asarray(tokens_bt)) if logits is None else logits
        return jax.device_get(prefixed_next_token_stats(logits, jnp.asarray(tokens_bt),
                                                        jnp.asarray(mask)))

    base = stats(tokens)
    assert base["count"] == mask[:, 1:].sum() == 7 + 4  # BOS is the prompt, not a target
    # what stands at padding positions changes nothing (causal, and never a target)
    garbage = tokens.copy()
    garbage[~mask] = rng.integers(3, 259, (~mask).sum())
    np.testing.assert_allclose(stats(garbage)["nll_sum"], base["nll_sum"], rtol=1e-6)
    # nothing is read at the prefix positions; the first token's position is read
    logits = forward(model, _rows(2), jnp.asarray(tokens))
    moved = logits.at[:, :3].add(jnp.asarray(rng.normal(size=(2, 3, LM.vocab_size)) * 10,
                                             jnp.float32))
    np.testing.assert_allclose(stats(tokens, moved)["nll_sum"], base["nll_sum"], rtol=1e-6)
    read = logits.at[:, 3].add(jnp.asarray(rng.normal(size=(2, LM.vocab_size)) * 10,
                                           jnp.float32))
    assert not np.isclose(stats(tokens, read)["nll_sum"], base["nll_sum"])
    # a real description token is a target
    changed = tokens.copy()
    changed[0, 4] = 3 + (changed[0, 4] - 3 + 1) % 256
    assert not np.isclose(stats(changed)["nll_sum"], base["nll_sum"])


# ---- the task
def describe_config(**model) -> Config:
    cfg = Config(task="describe", planets=dataclasses.replace(PLANETS),
                 train=TrainConfig(steps=3, global_batch_size=8, log_every=1, eval_every=3,
                                   eval_batches=1, checkpoint_every=3))
    cfg.model.lm, cfg.model.fusion = dataclasses.replace(LM), dataclasses.replace(FUSION)
    cfg.model.prefix_tokens, cfg.model.projector_dim = 2, 32
    cfg.data.modalities = ("catalogue",)
    for name, value in model.items():
        setattr(cfg.model, name, value)
    return cfg


def test_the_batches_are_the_fusion_inputs_and_the_descriptions():
    task = get_task(describe_config(train_fusion=True))
    batch = next(iter(task.train_data(0, 1)))
    fusion_batch = next(iter(task.fusion.train_data(0, 1)))
    assert set(batch) == set(fusion_batch) | {"description", "description_mask"}
    np.testing.assert_array_equal(batch["row_values"], fusion_batch["row_values"])
    texts = task.table.population.descriptions()
    for row, tokens, mask in zip(batch["planet"], batch["description"],
                                 batch["description_mask"], strict=True):
        assert task.tokenizer.decode(tokens[mask]) == texts[row]
        assert tokens[0] == task.tokenizer.bos_id and tokens[mask][-1] == task.tokenizer.eos_id
    assert np.isin(batch["planet"], task.split.train).all()
    cfg = describe_config(train_fusion=True)
    cfg.data.description_length = 100
    with pytest.raises(ConfigError, match="config.data.description_length: 100 tokens do not "
                                          "hold the description of planet"):
        get_task(cfg).descriptions  # noqa: B018


def test_a_frozen_untrained_fusion_model_is_refused():
    with pytest.raises(ConfigError, match="config.model.fusion_init: is empty and "
                                          "model.train_fusion is False"):
        validate(describe_config())
    validate(describe_config(prefix_tokens=0))  # the control needs no fusion model


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A fusion run and a language-model run of the same planets (one step each)."""
    root = tmp_path_factory.mktemp("runs")
    steps = dict(steps=1, global_batch_size=8, eval_batches=0)
    fusion = Config(task="fusion", model=dataclasses.replace(FUSION),
                    planets=dataclasses.replace(PLANETS), train=TrainConfig(**steps))
    fusion.data.modalities = ("catalogue",)
    train_and_evaluate(fusion, root / "fusion", devices=jax.devices()[:1])
    lm = Config(task="lm", model=dataclasses.replace(LM), data=TextDataConfig(seq_len=32),
                planets=dataclasses.replace(PLANETS), train=TrainConfig(**steps))
    train_and_evaluate(lm, root / "lm", devices=jax.devices()[:1])
    return root


@pytest.mark.slow
def test_a_run_starts_from_the_fusion_and_lm_runs_and_keeps_the_fusion_model_frozen(runs):
    from astrojax.train.checkpoint import path_key, read_params

    cfg = describe_config(fusion_init=str(runs / "fusion"), lm_init=str(runs / "lm"))
    cfg.model.lm.d_model = 64  # replaced by the lm run's model, as the fusion by its run's
    cfg.model.fusion.d_model = 8
    result = train_and_evaluate(cfg, runs / "describe", devices=jax.devices()[:2])
    for split, record in (("eval", result.eval), ("test", result.test)):
        assert np.isfinite(record[f"{split}/loss"])
        assert record[f"{split}/baseline/ngram8/loss"] < record[f"{split}/baseline/uniform/loss"]
    assert result.train["nonfinite_steps"] == 0
    fusion, _, _ = read_params(runs / "fusion")
    lm, _, _ = read_params(runs / "lm")
    trained = {path_key(p): np.asarray(v) for p, v in
               jax.tree_util.tree_leaves_with_path(result.state.params)}
    frozen = [p for p in trained if p[0] == "fusion"]
    assert len(frozen) == len(fusion)  # every fusion parameter, heads included
    for path in frozen:  # neither gradient steps nor weight decay moved them
        np.testing.assert_array_equal(trained[path], fusion[path[1:]], err_msg="/".join(path))
    assert trained[("lm", "embedding_vd", "value")].shape == lm[("embedding_vd", "value")].shape
    moved = [p for p in trained if p[0] == "lm" and not np.array_equal(trained[p], lm[p[1:]])]
    assert len(moved) == len([p for p in trained if p[0] == "lm"])  # the LM trained
    # the optimizer state without the frozen parameters' moments checkpoints and resumes
    cfg.train.steps = 4
    resumed = train_and_evaluate(cfg, runs / "describe", devices=jax.devices()[:2])
    assert resumed.step == 4 and np.isfinite(resumed.train["loss"])
    np.testing.assert_array_equal(
        np.asarray(resumed.state.params["fusion"]["planet_token_d"][...]),
        fusion[("planet_token_d", "value")])
    # greedy cached decoding after the prefix writes what the model's own forward pass
    # (the training layout: prefix, BOS, tokens) ranks first at every position
    from astrojax.train.step import abstract_model

    task = get_task(cfg)
    model = nnx.merge(abstract_model(task, cfg.train.seed)[0],
                      jax.device_get(resumed.state.params))
    batch = task.eval_data(0, 1, "val")[0]
    written = task.write_tokens(model, batch)
    assert len(written) == len(batch["planet"]) == 8
    k = min(32, min(len(w) for w in written))
    tokens = np.stack([np.concatenate([[task.tokenizer.bos_id], w[:k]]) for w in written])
    logits = forward(model, {key: jnp.asarray(v) for key, v in batch.items()},
                     jnp.asarray(tokens, jnp.int32))
    vocab = task.tokenizer.vocab_size  # generation never picks the model's padding ids
    np.testing.assert_array_equal(np.argmax(logits[:, 2:2 + k, :vocab], -1), tokens[:, 1:])


@pytest.mark.slow
def test_warm_start_runs_must_fit_the_task(runs):
    cfg = describe_config(fusion_init=str(runs / "lm"))
    with pytest.raises(ConfigError, match="is a 'lm' run; the fusion model starts from a "
                                          "'fusion' run"):
        get_task(cfg).warm_start()
    cfg = describe_config(fusion_init=str(runs / "fusion"))
    cfg.data.modalities = ("catalogue", "spectrum")
    with pytest.raises(ConfigError, match=r"config.data.modalities: \('catalogue', 'spectrum'\) "
                                          "is not that of the fusion run"):
        get_task(cfg).warm_start()
    cfg = describe_config(train_fusion=True, lm_init=str(runs / "lm"))
    cfg.planets.split_seed = 1
    with pytest.raises(ConfigError, match="config.model.lm_init: .* read other planets or "
                                          "another split"):
        get_task(cfg).warm_start()
    task = get_task(describe_config(fusion_init=str(runs / "fusion"), lm_init=str(runs / "lm"),
                                    prefix_tokens=0))
    assert task.warm_start().parts == {"lm": (str(runs / "lm"), "")}  # no fusion model
