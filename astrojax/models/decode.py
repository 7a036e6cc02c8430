"""Text generation with a key/value cache: prefill a batch of prompts, then one jitted token
step per new token, with greedy, temperature, top-k and top-p sampling.

    from astrojax.models import generate
    out = generate(model, [prompt_ids, ...], max_new_tokens=200, stop_tokens=(eos,))
    out.tokens[0]  # the new ids of the first prompt, without the stop token

Shapes are static: prompts are **left-padded** to a multiple of ``length_bucket``, and the cache
holds the prefix, the padded prompt and the new tokens, rounded up to the same multiple. So the
prefill compiles once per (batch, bucket) and the token step once per cache length, however
many prompts and tokens pass through (``tests/test_decode.py`` counts the compilations).
Attention layers cache keys and values (a ring buffer of ``sliding_window + 1`` slots for a
windowed model); linear-attention and Mamba layers carry their recurrent state instead
(:meth:`astrojax.models.transformer.Transformer.init_cache`).

Sampling is explicit: ``temperature=0`` (the default) is greedy and needs no key; otherwise
pass ``rng``, and the same key gives the same text. Logits at ids ``>= vocab_limit`` (a
tokenizer's size below the model's padded vocabulary) are never chosen. A row stops at its
first stop token; the loop ends when every row has stopped or after ``max_new_tokens``.

On a mesh, pass ``mesh`` (and ``rules``): the batch is split over the data axes (padded up to
their size), the cache's key/value heads over the tensor axis, and the parameters stay where
they are, as in training.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from astrojax import sharding
from astrojax.config import DEFAULT_LOGICAL_AXIS_RULES


@dataclasses.dataclass(frozen=True)
class Sampling:
    """How the next token is chosen from the logits (hashable: a static jit argument)."""

    temperature: float = 0.0  # 0: greedy (argmax)
    top_k: int = 0  # > 0: only the k most likely ids
    top_p: float = 1.0  # < 1: only the smallest set of ids whose probability reaches p
    vocab_limit: int | None = None  # ids >= this are never chosen

    def __post_init__(self):
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1] (1 = off), got {self.top_p}")
        if self.vocab_limit is not None and self.vocab_limit < 1:
            raise ValueError(f"vocab_limit must be >= 1, got {self.vocab_limit}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def sample_tokens(logits_bv: jax.Array, key: jax.Array | None, sampling: Sampling) -> jax.Array:
    """int32 ids ``[b]`` drawn from ``logits_bv`` as ``sampling`` says (pure; jit it)."""
    logits_bv = logits_bv.astype(jnp.float32)
    v = logits_bv.shape[-1]
    if sampling.vocab_limit is not None and sampling.vocab_limit < v:
        logits_bv = jnp.where(jnp.arange(v) < sampling.vocab_limit, logits_bv, -jnp.inf)
    if sampling.greedy:
        return jnp.argmax(logits_bv, axis=-1).astype(jnp.int32)
    logits_bv = logits_bv / sampling.temperature
    if 0 < sampling.top_k < v:
        kth_b1 = jax.lax.top_k(logits_bv, sampling.top_k)[0][:, -1:]
        logits_bv = jnp.where(logits_bv < kth_b1, -jnp.inf, logits_bv)
    if sampling.top_p < 1:
        sorted_bv = -jnp.sort(-logits_bv, axis=-1)
        probs_bv = jax.nn.softmax(sorted_bv, axis=-1)
        before_bv = jnp.cumsum(probs_bv, axis=-1) - probs_bv  # mass of the likelier ids
        kept_b = jnp.sum(before_bv < sampling.top_p, axis=-1)  # >= 1: the likeliest stays
        cut_b1 = jnp.take_along_axis(sorted_bv, kept_b[:, None] - 1, axis=-1)
        logits_bv = jnp.where(logits_bv < cut_b1, -jnp.inf, logits_bv)
    return jax.random.categorical(key, logits_bv, axis=-1).astype(jnp.int32)


@dataclasses.dataclass(frozen=True)
class Generation:
    """What :func:`generate` made: per prompt, the new ids (the stop token and anything after
    it left out) and whether a stop token ended it (else ``max_new_tokens`` did)."""

    tokens: list[np.ndarray]
    stopped: np.ndarray  # [num_prompts] bool
    steps: int  # the longest row's count of generated tokens, its stop token included


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


@functools.partial(jax.jit, static_argnames=("graphdef", "cache_len", "sampling"))
def _prefill(graphdef, state, tokens_bt, lengths_b, prefix_bpd, key, *, cache_len, sampling):
    model = nnx.merge(graphdef, state)
    cache = model.init_cache(tokens_bt.shape[0], cache_len)
    logits_bv, cache = model.prefill(tokens_bt, lengths_b, cache, prefix_bpd=prefix_bpd)
    return sample_tokens(logits_bv, key, sampling), cache


@functools.partial(jax.jit, static_argnames=("graphdef", "sampling"), donate_argnames=("cache",))
def _step(graphdef, state, cache, tokens_b, done_b, stop_s, pad_id, key, step, *, sampling):
    model = nnx.merge(graphdef, state)
    logits_bv, cache = model.decode_step(tokens_b, cache)
    sampled_b = sample_tokens(logits_bv, jax.random.fold_in(key, step), sampling)
    next_b = jnp.where(done_b, pad_id, sampled_b)
    return next_b, cache, done_b | jnp.isin(next_b, stop_s)


# The host asks whether every row has stopped once per this many tokens: each question is a
# round trip that cost more than the token step itself on CPU (benchmarks/decode.py), and a
# late answer costs at most this many padding steps, which are cut from the output.
STOP_CHECK_EVERY = 16


def generate(model: nnx.Module, prompts: Sequence[Sequence[int] | np.ndarray], *,
             max_new_tokens: int, stop_tokens: Sequence[int] = (),
             rng: jax.Array | None = None, temperature: float = 0.0, top_k: int = 0,
             top_p: float = 1.0, vocab_limit: int | None = None,
             prefix_bpd: jax.Array | None = None, pad_id: int = 0, length_bucket: int = 64,
             mesh: jax.sharding.Mesh | None = None,
             rules=DEFAULT_LOGICAL_AXIS_RULES) -> Generation:
    """Continues each prompt (a sequence of token ids) by up to ``max_new_tokens`` ids.

    ``model``: a :class:`~astrojax.models.transformer.Transformer` (anything with its
    ``init_cache`` / ``prefill`` / ``decode_step``). ``prefix_bpd``: a soft prefix ``[num
    prompts, p, d_model]`` placed before each prompt (a prompt may then be empty). See the
    module docstring for padding, sampling and sharding.
    """
    sampling = Sampling(temperature, top_k, top_p, vocab_limit)
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if length_bucket < 1:
        raise ValueError(f"length_bucket must be >= 1, got {length_bucket}")
    if not sampling.greedy and rng is None:
        raise ValueError(f"sampling at temperature {temperature} needs a PRNG key: pass rng="
                         "jax.random.key(seed) (temperature=0 is greedy and needs none)")
    prompts = [np.asarray(p, np.int32).reshape(-1) for p in prompts]
    n = len(prompts)
    if not n:
        raise ValueError("generate needs at least one prompt")
    lengths = np.array([len(p) for p in prompts], np.int32)
    p_len = 0 if prefix_bpd is None else int(prefix_bpd.shape[1])
    if prefix_bpd is not None and prefix_bpd.shape[0] != n:
        raise ValueError(f"prefix_bpd has {prefix_bpd.shape[0]} rows for {n} prompts")
    if not p_len and lengths.min() == 0:
        raise ValueError(f"prompt {int(np.argmin(lengths))} is empty; give every prompt at "
                         "least one token (a BOS id) or a prefix")

    # Static shapes: the batch padded to the data axes, prompts to the bucket.
    shards = 1 if mesh is None else sharding.data_parallel_size(mesh, rules)
    b = _round_up(n, shards)
    t = _round_up(max(int(lengths.max()), 1), length_bucket)
    cache_len = _round_up(p_len + t + max_new_tokens, length_bucket)
    tokens_bt = np.full((b, t), pad_id, np.int32)
    lengths_b = np.ones((b,), np.int32)  # filler rows: one pad token each
    for row, ids in enumerate(prompts):
        tokens_bt[row, t - len(ids):] = ids
        lengths_b[row] = len(ids)
    if prefix_bpd is not None and b > n:
        prefix_bpd = jnp.concatenate(
            [prefix_bpd, jnp.zeros((b - n, *prefix_bpd.shape[1:]), prefix_bpd.dtype)])
    stop_s = jnp.asarray(sorted(set(int(s) for s in stop_tokens)) or [-1], jnp.int32)
    key = jax.random.key(0) if rng is None else rng

    graphdef, state = nnx.split(model)
    context = _on_mesh(mesh, rules)
    with context:
        if mesh is not None:
            rows = sharding.batch_sharding(mesh, rules)
            tokens_bt = jax.device_put(tokens_bt, rows)
            lengths_b = jax.device_put(lengths_b, sharding.batch_sharding(mesh, rules, 1))
        token_b, cache = _prefill(graphdef, state, tokens_bt, lengths_b, prefix_bpd,
                                  jax.random.fold_in(key, 0), cache_len=cache_len,
                                  sampling=sampling)
        done_b = jnp.isin(token_b, stop_s)
        out = [token_b]
        for step in range(1, max_new_tokens):
            if step % STOP_CHECK_EVERY == 1 and bool(jnp.all(done_b[:n])):
                break
            token_b, cache, done_b = _step(graphdef, state, cache, token_b, done_b, stop_s,
                                           pad_id, key, np.int32(step), sampling=sampling)
            out.append(token_b)
    ids_bs = np.stack(jax.device_get(out), axis=1)[:n]
    stop_set = set(int(s) for s in stop_tokens)
    tokens, stopped, steps = [], np.zeros(n, bool), 0
    for row in range(n):
        ends = [i for i, x in enumerate(ids_bs[row]) if int(x) in stop_set]
        stopped[row] = bool(ends)
        tokens.append(ids_bs[row, :ends[0]] if ends else ids_bs[row])
        steps = max(steps, ends[0] + 1 if ends else ids_bs.shape[1])
    return Generation(tokens, stopped, steps)


def _on_mesh(mesh, rules):
    """The contexts a sharded generate runs under (nothing without a mesh)."""
    stack = contextlib.ExitStack()
    if mesh is not None:
        stack.enter_context(jax.set_mesh(mesh))
        stack.enter_context(sharding.axis_rules(rules))
    return stack


def generate_text(model: nnx.Module, tokenizer, prompts: Sequence[str], **kwargs) -> list[str]:
    """:func:`generate` on text: each prompt encoded with ``tokenizer`` (BOS first, no EOS),
    completions decoded; stops at the tokenizer's end-of-sequence id(s) unless
    ``stop_tokens`` is given, and never picks an id past its vocabulary."""
    encoded = [tokenizer.encode(p, add_bos=True, add_eos=False) for p in prompts]
    kwargs.setdefault("stop_tokens", _eos_ids(tokenizer))
    kwargs.setdefault("vocab_limit", tokenizer.vocab_size)
    kwargs.setdefault("pad_id", getattr(tokenizer, "pad_id", 0) or 0)
    out = generate(model, encoded, **kwargs)
    return [tokenizer.decode(ids) for ids in out.tokens]


def _eos_ids(tokenizer) -> tuple[int, ...]:
    ids = getattr(tokenizer, "eos_ids", None)
    if ids is None:
        ids = getattr(tokenizer, "eos_id", None)
    if ids is None:
        return ()
    return tuple(int(i) for i in np.atleast_1d(ids))


__all__ = ["Generation", "Sampling", "generate", "generate_text", "sample_tokens"]
