"""Optimizers and schedules from config: AdamW (float32 or 8-bit state), optax's learning-rate
schedules, weight-decay masking, global-norm clipping, skipping non-finite updates."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import jax
import optax

from astrojax.config import ConfigError, OptimConfig
from astrojax.config.sections import SCHEDULES
from astrojax.train.adamw8bit import adamw_8bit
from astrojax.train.checkpoint import path_key


def make_schedule(cfg: OptimConfig, total_steps: int) -> optax.Schedule:
    """The learning rate by update step, ``cfg.schedule`` of optax's schedules (see
    OptimConfig): every one peaks at ``learning_rate`` and ends at its
    ``end_learning_rate_fraction`` after ``total_steps``."""
    peak, warmup = cfg.learning_rate, cfg.warmup_steps
    end = peak * cfg.end_learning_rate_fraction
    total = max(total_steps, warmup + 1)
    if cfg.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(
            init_value=0.0, peak_value=peak, warmup_steps=warmup, decay_steps=total,
            end_value=end)
    if cfg.schedule == "onecycle":
        div = cfg.onecycle_div_factor
        # optax's final value is peak / (div * final_div): an end fraction of 0 ends at 0.
        final_div = 1.0 / (div * cfg.end_learning_rate_fraction) \
            if cfg.end_learning_rate_fraction > 0 else math.inf
        return optax.cosine_onecycle_schedule(
            transition_steps=total, peak_value=peak, pct_start=warmup / total, div_factor=div,
            final_div_factor=final_div)
    if cfg.schedule == "cosine_restarts":
        # SGDR: cycles of restart_period steps (the last one cut at total_steps), the first
        # warming up from 0, each later one restarting at the peak.
        period = cfg.restart_period
        cycles = [dict(init_value=0.0 if i == 0 else peak, peak_value=peak,
                       warmup_steps=warmup if i == 0 else 0, decay_steps=period, end_value=end)
                  for i in range(-(-total // period))]
        return optax.sgdr_schedule(cycles)
    if cfg.schedule == "wsd":
        decay = max(round(cfg.wsd_decay_fraction * total), 1)
        return optax.join_schedules(
            [optax.linear_schedule(0.0, peak, warmup), optax.constant_schedule(peak),
             optax.linear_schedule(peak, end, decay)],
            boundaries=[warmup, total - decay])
    raise ConfigError("optim.schedule", f"unknown schedule {cfg.schedule!r}; one of "
                                        f"{', '.join(SCHEDULES)}")


# What a parameter is, read from its name (the last entry of its path in the module tree),
# never from its rank: a scanned stack gives every norm scale a leading "layers" axis, and
# Mamba's A_log is a matrix. Weight matrices (projections, convolution kernels, the token
# embedding) are decayed, as in the Llama, GPT and Mamba recipes; norm scales, biases, Mamba's
# A_log and D, learned position tables, mask tokens and pooling queries are not. A name that
# matches neither list is an error, so a new kind of parameter is decided on, not guessed.
# LoRA's adapter matrices are weights too (decayed toward the base model, as PEFT's AdamW does).
DECAYED = re.compile(r"w_.*|kernel|embedding(_.*)?|lora_[ab]")
# Learned tokens (mask, missing-value, planet tokens), modality embeddings and the learned
# uncertainty weights' log variances are vectors that stand for something, not weights.
NOT_DECAYED = re.compile(r"scale(_.*)?|bias(_.*)?|b_.*|a_log(_.*)?|d_e|pos_.*|query(_.*)?|"
                         r"(.*_)?token(_.*)?|modality(_.*)?|log_var(_.*)?")


def param_name(path) -> str:
    """The parameter's own name: the last named entry of its pytree path (``.value`` and
    list indices skipped)."""
    names = [str(getattr(k, "key", getattr(k, "name", ""))) for k in path
             if not isinstance(k, jax.tree_util.SequenceKey)]
    names = [n for n in names if n and n != "value"]
    return names[-1] if names else ""


def is_decayed(path) -> bool:
    """Whether weight decay applies to the parameter at ``path``; ValueError for a name that
    neither :data:`DECAYED` nor :data:`NOT_DECAYED` knows."""
    name = param_name(path)
    if DECAYED.fullmatch(name):
        return True
    if NOT_DECAYED.fullmatch(name):
        return False
    raise ValueError(f"parameter {jax.tree_util.keystr(path)} ({name!r}): weight decay is decided "
                     f"by name and this one is in neither astrojax.train.optim.DECAYED "
                     f"({DECAYED.pattern}) nor NOT_DECAYED ({NOT_DECAYED.pattern}); rename it or "
                     "add it to one of them")


def decay_mask(params):
    """A pytree of bools like ``params``: True where AdamW's weight decay applies."""
    return jax.tree_util.tree_map_with_path(lambda path, _: is_decayed(path), params)


# Token (and other lookup-table) embeddings: their rows see rare, spiky gradients, so 8-bit
# AdamW keeps their moments in float32, as bitsandbytes' StableEmbedding does.
EMBEDDING = re.compile(r"embedding(_.*)?")


def embedding_mask(params):
    """A pytree of bools like ``params``: True for the embedding tables (8-bit AdamW keeps
    their moments in float32)."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: bool(EMBEDDING.fullmatch(param_name(path))), params)


def make_optimizer(cfg: OptimConfig, total_steps: int,
                   trainable: Callable[[tuple[str, ...]], bool] | None = None
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """The optax chain and its learning-rate schedule (returned for logging). ``trainable``
    (a parameter's path names -> bool; None: all): the others are frozen, their updates zero
    and no moments kept for them (``optax.multi_transform``), so weight decay cannot move them
    either; gradient clipping sees the trained parameters' gradients only."""
    schedule = make_schedule(cfg, total_steps)
    parts = []
    if cfg.grad_clip_norm > 0:
        parts.append(optax.clip_by_global_norm(cfg.grad_clip_norm))
    if cfg.optimizer == "adamw8bit":
        parts.append(adamw_8bit(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
                                weight_decay=cfg.weight_decay, mask=decay_mask,
                                block_size=cfg.block_size, min_8bit_size=cfg.min_8bit_size,
                                fp32_mask=embedding_mask if cfg.stable_embedding else None))
    else:
        parts.append(optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
                                 weight_decay=cfg.weight_decay, mask=decay_mask))
    if trainable is not None:
        def labels(params):
            return jax.tree_util.tree_map_with_path(
                lambda path, _: "train" if trainable(path_key(path)) else "frozen", params)

        parts = [optax.multi_transform({"train": optax.chain(*parts),
                                        "frozen": optax.set_to_zero()}, labels)]
    # A non-finite gradient skips the whole update (params, moments and the schedule's count
    # stay as they were) and is counted; optax would accept one after max_consecutive_errors,
    # so that is set out of reach and the train loop stops the run instead
    # (train.max_nonfinite_steps).
    return optax.apply_if_finite(optax.chain(*parts), max_consecutive_errors=2**30), schedule


def nonfinite_counts(opt_state) -> dict[str, jax.Array]:
    """Skipped (non-finite) updates of an optimizer from :func:`make_optimizer`: how many in a
    row up to now, and in total."""
    return {"nonfinite_in_a_row": opt_state.notfinite_count,
            "nonfinite_steps": opt_state.total_notfinite}
