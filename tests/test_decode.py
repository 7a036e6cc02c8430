"""Cached decoding: the cache gives the full forward pass's logits at every position (attention,
sliding window, linear attention, Mamba, mixed, scanned or not, with a soft prefix), sampling
does what it says, the token step compiles once, a mesh changes nothing, and a trained model
writes its training text back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from astrojax.config import DEFAULT_LOGICAL_AXIS_RULES, MeshConfig
from astrojax.models import decode, generate
from astrojax.models.decode import Sampling, sample_tokens
from astrojax.models.transformer import Transformer, tiny_config
from astrojax.sharding import make_mesh, state_shardings

ROOT = Path(__file__).resolve().parents[1]


def build(**overrides) -> Transformer:
    with nnx.use_eager_sharding(False):
        return Transformer(tiny_config(**overrides), rngs=nnx.Rngs(0))


# Jitted once per model structure: eager NNX calls cost seconds each on a 2-core CPU.
@nnx.jit
def forward(model, tokens, prefix=None):
    return model(tokens, prefix_bpd=prefix)


@nnx.jit(static_argnames="length")
def prefill(model, tokens, lengths, length, prefix=None):
    return model.prefill(tokens, lengths, model.init_cache(tokens.shape[0], length),
                         prefix_bpd=prefix)


@nnx.jit
def decode_step(model, tokens, cache):
    return model.decode_step(tokens, cache)


STACKS = {
    "attention": {},
    "attention_unrolled": {"scan_layers": False},
    "sliding_window": {"sliding_window": 3},
    "linear": {"mixers": ("linear",)},
    "mamba": {"mixers": ("mamba",)},
    "mamba_attention": {"mixers": ("mamba", "attention"), "scan_layers": False},
}


@pytest.mark.parametrize("stack", list(STACKS))
def test_cached_logits_equal_the_full_forward_pass_at_every_position(stack):
    """Prompts of three lengths, left-padded together; prefill then feed each row's true next
    tokens. Every step's logits equal the uncached forward pass on the row alone. The sliding
    window (3) is shorter than the sequences, so its ring buffer wraps."""
    model = build(**STACKS[stack])
    seqs = np.asarray(jax.random.randint(jax.random.key(1), (3, 14), 3, 64))
    lengths = np.array([4, 6, 1])
    t = 6
    tokens = np.zeros((3, t), np.int32)
    for row, n in enumerate(lengths):
        tokens[row, t - n:] = seqs[row, :n]
    full = forward(model, jnp.asarray(seqs))
    logits, cache = prefill(model, jnp.asarray(tokens), jnp.asarray(lengths), t + 8)
    for step in range(8):
        for row, n in enumerate(lengths):
            np.testing.assert_allclose(logits[row], full[row, n - 1 + step], atol=2e-5,
                                       rtol=2e-5, err_msg=f"{stack} row {row} step {step}")
        if step < 7:
            logits, cache = decode_step(
                model, jnp.asarray([seqs[row, n + step] for row, n in enumerate(lengths)]), cache)
    assert int(cache["index"]) == t + 7


@pytest.mark.parametrize("stack", ["attention", "mamba_attention"])
def test_cached_logits_with_a_soft_prefix(stack):
    """A soft prefix goes before each row's real tokens (its padding moves in front of it), so
    the cached logits equal the forward pass on prefix + row alone."""
    model = build(**STACKS[stack])
    seqs = np.asarray(jax.random.randint(jax.random.key(2), (2, 9), 3, 64))
    prefix = jax.random.normal(jax.random.key(3), (2, 3, 32))
    lengths = np.array([2, 5])
    tokens = np.zeros((2, 5), np.int32)
    for row, n in enumerate(lengths):
        tokens[row, 5 - n:] = seqs[row, :n]
    full = forward(model, jnp.asarray(seqs), prefix)
    logits, cache = prefill(model, jnp.asarray(tokens), jnp.asarray(lengths), 16, prefix)
    for step in range(3):
        for row, n in enumerate(lengths):
            np.testing.assert_allclose(logits[row], full[row, 3 + n - 1 + step], atol=2e-5,
                                       rtol=2e-5)
        logits, cache = decode_step(
            model, jnp.asarray([seqs[row, n + step] for row, n in enumerate(lengths)]), cache)


def greedy_by_hand(model, prompt, steps):
    """Argmax of the uncached forward pass, one token at a time (on a fixed 32-token buffer:
    the model is causal, so what follows a position does not change its logits)."""
    seq = list(prompt)
    for _ in range(steps):
        buffer = jnp.asarray([seq + [0] * (32 - len(seq))])
        seq.append(int(jnp.argmax(forward(model, buffer)[0, len(seq) - 1])))
    return seq[len(prompt):]


def test_greedy_generate_equals_argmax_of_the_uncached_model():
    model = build()
    prompts = [[1, 5, 6, 9], [1, 7]]
    out = generate(model, prompts, max_new_tokens=12, length_bucket=8)
    for prompt, got in zip(prompts, out.tokens, strict=True):
        assert got.tolist() == greedy_by_hand(model, prompt, 12)
    assert out.steps == 12 and not out.stopped.any()


def test_stop_tokens_end_a_row_and_are_left_out():
    model = build()
    free = generate(model, [[1, 5, 6, 9], [1, 7]], max_new_tokens=12).tokens
    stop = int(free[0][4])  # a token row 0 writes at step 4
    out = generate(model, [[1, 5, 6, 9], [1, 7]], max_new_tokens=12, stop_tokens=(stop,))
    first = free[0].tolist().index(stop)
    assert out.tokens[0].tolist() == free[0][:first].tolist()
    assert out.stopped[0]
    if stop not in free[1].tolist():
        assert out.tokens[1].tolist() == free[1].tolist() and not out.stopped[1]


def test_sampling_rules():
    logits = jnp.log(jnp.asarray([[0.05, 0.5, 0.3, 0.15]] * 4000))
    key = jax.random.key(0)
    greedy = sample_tokens(logits, None, Sampling())
    assert set(np.asarray(greedy).tolist()) == {1}
    # top_k=1 and a top_p below the likeliest id's mass are greedy too
    for rule in (Sampling(1.0, top_k=1), Sampling(1.0, top_p=0.4)):
        assert set(np.asarray(sample_tokens(logits, key, rule)).tolist()) == {1}
    # top_k=2 keeps ids 1 and 2; top_p=0.7 keeps 1 and 2 (0.5 < 0.7 <= 0.8) in 5:3
    for rule in (Sampling(1.0, top_k=2), Sampling(1.0, top_p=0.7)):
        drawn = np.asarray(sample_tokens(logits, key, rule))
        assert set(drawn.tolist()) == {1, 2}
        assert abs(np.mean(drawn == 1) - 0.5 / 0.8) < 0.03
    # temperature 1 follows the distribution; a vocab limit removes the ids past it
    drawn = np.asarray(sample_tokens(logits, key, Sampling(1.0)))
    np.testing.assert_allclose(np.bincount(drawn, minlength=4) / 4000, [0.05, 0.5, 0.3, 0.15],
                               atol=0.03)
    limited = np.asarray(sample_tokens(logits, key, Sampling(1.0, vocab_limit=3)))
    assert limited.max() == 2
    assert set(np.asarray(sample_tokens(logits, None, Sampling(vocab_limit=1))).tolist()) == {0}


def test_sampled_generation_is_reproducible_and_checked():
    model = build()
    kw = dict(max_new_tokens=10, temperature=0.8, top_k=20, top_p=0.95, vocab_limit=50)
    a = generate(model, [[1, 5]], rng=jax.random.key(4), **kw).tokens[0]
    b = generate(model, [[1, 5]], rng=jax.random.key(4), **kw).tokens[0]
    c = generate(model, [[1, 5]], rng=jax.random.key(5), **kw).tokens[0]
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()
    assert a.max() < 50
    with pytest.raises(ValueError, match="needs a PRNG key"):
        generate(model, [[1, 5]], max_new_tokens=3, temperature=0.5)
    with pytest.raises(ValueError, match="top_p"):
        generate(model, [[1, 5]], max_new_tokens=3, top_p=0.0)
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        generate(model, [[1], []], max_new_tokens=3)


def test_the_token_step_compiles_once():
    """Different prompt lengths in one bucket and any number of new tokens: one prefill and
    one token step compilation."""
    model = build()
    decode._prefill.clear_cache()
    decode._step.clear_cache()
    generate(model, [[1, 5, 6]], max_new_tokens=9, length_bucket=16)
    generate(model, [[1, 2, 3, 4, 5, 6, 7]], max_new_tokens=5, length_bucket=16)
    assert decode._prefill._cache_size() == 1
    assert decode._step._cache_size() == 1


def test_sharded_generation_equals_one_device():
    """On a (data 2, fsdp 2, tensor 2) mesh, with the parameters sharded as in training, three
    prompts (padded to the data axes' 4 rows) get the same greedy tokens as on one device."""
    model = build()
    prompts = [[1, 5, 6, 9], [1, 7], [1, 8, 8]]
    expected = [t.tolist() for t in generate(model, prompts, max_new_tokens=8).tokens]
    mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    graphdef, state = nnx.split(model)
    state = jax.device_put(state, state_shardings(state, mesh, DEFAULT_LOGICAL_AXIS_RULES))
    sharded = nnx.merge(graphdef, state)
    out = generate(sharded, prompts, max_new_tokens=8, mesh=mesh)
    assert [t.tolist() for t in out.tokens] == expected


# ----------------------------------------------------------------------------------------------
# A trained model


@pytest.fixture(scope="module")
def memorised(tmp_path_factory):
    """A small LM trained on two planets' descriptions until it knows them by heart."""
    from astrojax.config import Config, PlanetsConfig, TextDataConfig, TrainConfig
    from astrojax.config import TransformerConfig as TC
    from astrojax.train.loop import train_and_evaluate

    workdir = tmp_path_factory.mktemp("memorised")
    cfg = Config(task="lm", model=TC(d_model=64, num_layers=2, num_heads=4, num_kv_heads=2,
                                     head_dim=16, mlp_dim=192, max_seq_len=512,
                                     scan_layers=False),
                 data=TextDataConfig(seq_len=512),
                 planets=PlanetsConfig(num_planets=6, val_fraction=0.3, test_fraction=0.3),
                 train=TrainConfig(steps=150, global_batch_size=4, log_every=50,
                                   eval_every=150, eval_batches=0, checkpoint_every=150))
    cfg.optim.learning_rate = 1e-2
    cfg.optim.warmup_steps = 10
    train_and_evaluate(cfg, workdir, devices=jax.devices()[:1])  # 8 CPU "devices" share 2 cores
    return workdir


def unique_prompt(text: str, texts: list[str]) -> str:
    """The shortest start of ``text`` that no other text shares (descriptions of different
    planets can agree for a while: same template, same star type), and 4 more characters."""
    n = next(n for n in range(1, len(text)) if sum(t.startswith(text[:n]) for t in texts) == 1)
    return text[:n + 4]


@pytest.mark.slow
def test_greedy_decoding_of_a_trained_model_reproduces_a_training_description(memorised):
    from astrojax.generate import load_generator
    from astrojax.tasks import get_task
    from astrojax.train.restore import load_trained

    generator = load_generator(memorised, sharded=False)
    texts = get_task(load_trained(memorised, task="lm").config).texts("train")
    prompts = [unique_prompt(text, texts) for text in texts[:2]]
    completions = generator(prompts, max_new_tokens=600)
    assert [p + c for p, c in zip(prompts, completions, strict=True)] == texts[:2]


@pytest.mark.slow
def test_the_command_line(memorised, tmp_path):
    from astrojax.tasks import get_task
    from astrojax.train.restore import load_trained

    texts = get_task(load_trained(memorised, task="lm").config).texts("train")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(f"{unique_prompt(texts[0], texts)}\n\n{unique_prompt(texts[1], texts)}\n")
    proc = subprocess.run([sys.executable, "-m", "astrojax.generate", "--checkpoint",
                           str(memorised), "--prompts", str(prompts), "--max_new_tokens", "600"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n\n")[:2] == [texts[0], texts[1]]
    bad = subprocess.run([sys.executable, "-m", "astrojax.generate", "--checkpoint",
                          str(tmp_path / "nowhere"), "--prompt", "x"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no workdir at" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_the_language_model_shows_a_held_out_planet(memorised):
    """What ``python -m astrojax.train`` prints after an lm run: the first held-out planet's
    first sentence, the model's continuation and the true one."""
    from astrojax.tasks import get_task
    from astrojax.train.restore import load_trained

    trained = load_trained(memorised, task="lm")
    task = get_task(trained.config)
    truth = task.texts("test")[0]
    mesh = make_mesh(MeshConfig(data=1), jax.devices()[:1])
    shown = task.showcase(trained.model, mesh, DEFAULT_LOGICAL_AXIS_RULES)
    lines = shown.splitlines()
    assert lines[0].startswith("A held-out planet (test split)")
    labels = [line.split()[0] for line in lines[1:] if not line.startswith(" " * 10)]
    assert labels == ["prompt", "model", "truth"]
    prompt = truth[:truth.find(". ") + 1]
    assert " ".join(shown.split()).find(" ".join(prompt.split())) > 0
    assert " ".join(truth[len(prompt):].split()) in " ".join(shown.split())
