"""Gradient accumulation inside the jitted train step: a batch split into microbatches that stay
sharded over the data axes, their gradients summed by ``jax.lax.scan``, one optimizer update.

As in Levanter and MaxText, and unlike ``optax.MultiSteps``, one train step is one optimizer
update: ``train.global_batch_size`` stays the batch of an update, and the step counter, the
schedule and metrics.jsonl count updates; the data pipeline does not change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from astrojax import sharding

Batch = dict[str, jax.Array]


def split_microbatches(batch: Batch, k: int, units: int) -> Batch:
    """Every array ``[n, ...]`` of ``batch`` as ``[k, n / k, ...]``: microbatch ``j`` holds the
    units ``j, j + k, j + 2k, ...`` of the batch's ``units`` (rows, sub-batches or packing
    groups; ``n`` a multiple of ``units``, each unit's ``n / units`` rows kept together).

    Strided, not contiguous: a device's shard of the batch is a contiguous run of units, so
    reshaping ``[units] -> [units / k, k]`` and taking column ``j`` leaves every microbatch
    spread over all the data-parallel devices, each keeping its own rows (no communication).
    Contiguous microbatches would each live on ``1 / k`` of the devices."""

    def split(name: str, x: jax.Array) -> jax.Array:
        n = x.shape[0]
        if n % units:
            raise ValueError(f"batch entry {name!r} has {n} rows, not a multiple of the "
                             f"batch's {units} units")
        per_unit = n // units
        x = x.reshape(units // k, k, per_unit, *x.shape[1:])
        x = jnp.moveaxis(x, 1, 0).reshape(k, n // k, *x.shape[3:])
        return sharding.constrain(x, (None, "batch") + (None,) * (x.ndim - 2))

    return {name: split(name, x) for name, x in batch.items()}


def accumulated_value_and_grad(
        loss_fn: Callable[[Any, Batch, jax.Array], tuple[jax.Array, dict[str, jax.Array]]],
        params: Any, microbatches: Batch, rng: jax.Array, weight_key: str | None = None
) -> tuple[jax.Array, dict[str, jax.Array], Any]:
    """``(loss, metrics, grads)`` of ``loss_fn(params, batch, rng) -> (loss, metrics)`` over
    ``microbatches`` (leading axis: the microbatch), as one ``jax.lax.scan``.

    Each microbatch is weighted by its ``metrics[weight_key]`` (a count: what its loss is a
    mean over), or equally when ``weight_key`` is None: loss, gradients and metrics are the
    weighted means, and the ``weight_key`` entry itself is summed. With counts as weights this
    is the whole batch's mean loss and gradient, to float rounding. Microbatch ``j`` draws from
    ``fold_in(rng, j)``. Gradients are summed in float32 and returned in the parameters'
    dtypes."""
    k = jax.tree.leaves(microbatches)[0].shape[0]
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def body(carry, xs):
        j, batch = xs
        batch = {name: sharding.constrain(x, ("batch",) + (None,) * (x.ndim - 1))
                 for name, x in batch.items()}
        (loss, metrics), grads = grad_fn(params, batch, jax.random.fold_in(rng, j))
        weight = (jax.lax.stop_gradient(metrics[weight_key]).astype(jnp.float32)
                  if weight_key is not None else jnp.float32(1.0))
        grad_sum, loss_sum, metric_sums, weight_sum = carry
        grad_sum = jax.tree.map(lambda s, g: s + weight * g.astype(jnp.float32), grad_sum, grads)
        metric_sums = {name: metric_sums[name] + (value if name == weight_key else weight * value)
                       for name, value in metrics.items()}
        return (grad_sum, loss_sum + weight * loss, metric_sums, weight_sum + weight), None

    abstract = jax.eval_shape(grad_fn, params, jax.tree.map(lambda x: x[0], microbatches), rng)
    (_, metrics_shape), grads_shape = abstract
    init = (jax.tree.map(lambda g: jnp.zeros(g.shape, jnp.float32), grads_shape),
            jnp.float32(0.0),
            {name: jnp.zeros(m.shape, jnp.float32) for name, m in metrics_shape.items()},
            jnp.float32(0.0))
    (grad_sum, loss_sum, metric_sums, weight_sum), _ = jax.lax.scan(
        body, init, (jnp.arange(k), microbatches))
    # Weights are counts: an all-empty batch divides by 1, as the tasks' own means do.
    total = jnp.maximum(weight_sum, 1.0)
    grads = jax.tree.map(lambda s, g: (s / total).astype(g.dtype), grad_sum, grads_shape)
    metrics = {name: (value if name == weight_key else value / total).astype(
                   metrics_shape[name].dtype) for name, value in metric_sums.items()}
    return loss_sum / total, metrics, grads
