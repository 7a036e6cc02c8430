"""Optimizers and schedules from config: AdamW, linear warmup, cosine decay, global-norm clip."""

from __future__ import annotations

import jax
import optax

from astrojax.config import OptimConfig


def make_schedule(cfg: OptimConfig, total_steps: int) -> optax.Schedule:
    """Linear warmup from 0 to ``learning_rate``, then cosine decay to the end fraction."""
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=cfg.learning_rate,
        warmup_steps=cfg.warmup_steps,
        decay_steps=max(total_steps, cfg.warmup_steps + 1),
        end_value=cfg.learning_rate * cfg.end_learning_rate_fraction,
    )


def _decay_mask(params):
    # Decay matrices only: norms' scales and biases are left alone, as in Llama and GPT recipes.
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(cfg: OptimConfig, total_steps: int) -> tuple[optax.GradientTransformation,
                                                                  optax.Schedule]:
    """The optax chain and its learning-rate schedule (returned for logging)."""
    schedule = make_schedule(cfg, total_steps)
    parts = []
    if cfg.grad_clip_norm > 0:
        parts.append(optax.clip_by_global_norm(cfg.grad_clip_norm))
    parts.append(optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
                             weight_decay=cfg.weight_decay, mask=_decay_mask))
    return optax.chain(*parts), schedule
