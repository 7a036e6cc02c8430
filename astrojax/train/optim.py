"""Optimizers and schedules from config: AdamW, linear warmup, cosine decay, global-norm clip."""

from __future__ import annotations

import re
from collections.abc import Callable

import jax
import optax

from astrojax.config import OptimConfig
from astrojax.train.checkpoint import path_key


def make_schedule(cfg: OptimConfig, total_steps: int) -> optax.Schedule:
    """Linear warmup from 0 to ``learning_rate``, then cosine decay to the end fraction."""
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=cfg.learning_rate,
        warmup_steps=cfg.warmup_steps,
        decay_steps=max(total_steps, cfg.warmup_steps + 1),
        end_value=cfg.learning_rate * cfg.end_learning_rate_fraction,
    )


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
