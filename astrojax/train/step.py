"""Pure train and eval steps over an explicit train state, and the state's shardings.

With LoRA (``config.lora.rank > 0``) the model carries adapters, the train state's ``params``
are the adapters alone (so only they get gradients, optimizer moments and checkpoints), and
the frozen weights, read from ``config.lora.base``, are an extra argument of every step that
the :class:`Program` binds.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding

from astrojax import sharding
from astrojax.config import Config, ConfigError
from astrojax.models.lora import apply_lora, dropout_rng
from astrojax.tasks.base import Batch, Metrics, Task, WarmStart
from astrojax.train.accumulate import accumulated_value_and_grad, split_microbatches
from astrojax.train.adamw8bit import QuantizedMoment, moment_sharding
from astrojax.train.checkpoint import CheckpointError, path_key, read_params
from astrojax.train.frozen import load_base
from astrojax.train.optim import make_optimizer, nonfinite_counts

log = logging.getLogger(__name__)


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training, as one pytree."""

    step: jax.Array
    params: nnx.State
    opt_state: optax.OptState
    rng: jax.Array


LORA_STREAM = 0x10A  # folded into the seed for the adapters' initialization and dropout


def build_model(task: Task, seed: int) -> nnx.Module:
    """The task's model, with LoRA adapters when ``config.lora.rank > 0`` (drawn from their own
    stream, so the base weights' initialization does not depend on them)."""
    # Shardings are applied by jit's out_shardings, not eagerly at variable creation.
    with nnx.use_eager_sharding(False):
        model = task.build_model(nnx.Rngs(seed))
        if task.cfg.lora.rank:
            apply_lora(model, task.cfg.lora, rngs=nnx.Rngs(params=jax.random.fold_in(
                jax.random.key(seed), LORA_STREAM)))
        return model


def trainable_filter(cfg: Config):
    """The filter of the parameters that train: the adapters with LoRA, else all."""
    return nnx.LoRAParam if cfg.lora.rank else nnx.Param


def frozen_filter(cfg: Config):
    """The filter of the parameters that do not train (nothing without LoRA)."""
    return nnx.All(nnx.Param, nnx.Not(trainable_filter(cfg)))


def abstract_model(task: Task, seed: int) -> tuple[nnx.GraphDef, nnx.State]:
    """The model's graph definition and abstract params, without allocating any memory."""
    model = nnx.eval_shape(lambda: build_model(task, seed))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    if jax.tree.leaves(rest):
        raise TypeError(f"{type(model).__name__} holds non-Param state "
                        f"({sorted({type(v).__name__ for v in jax.tree.leaves(rest)})}); "
                        "tasks' models must keep randomness and statistics outside the module")
    return graphdef, params


def init_state(task: Task, tx: optax.GradientTransformation, seed: int) -> TrainState:
    """A fresh train state (call under jit with out_shardings to create it sharded)."""
    params = nnx.state(build_model(task, seed), trainable_filter(task.cfg))
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                      rng=jax.random.key_data(jax.random.key(seed)))


def with_params(state: TrainState, arrays: dict[tuple[str, ...], Any]) -> TrainState:
    """``state`` with the parameters at the paths of ``arrays`` replaced by those values (host
    arrays, placed on each parameter's sharding). A path the state lacks, or a shape that
    differs, is a ValueError naming it."""
    leaves = {path_key(p): leaf for p, leaf in
              jax.tree_util.tree_leaves_with_path(state.params)}
    for path, value in arrays.items():
        if path not in leaves:
            raise ValueError(f"no parameter {'/'.join(path)} in the model")
        if tuple(np.shape(value)) != tuple(leaves[path].shape):
            raise ValueError(f"parameter {'/'.join(path)} has shape {leaves[path].shape} in "
                             f"the model but {np.shape(value)} in the values given for it")

    def replace(path, leaf):
        value = arrays.get(path_key(path))
        if value is None:
            return leaf
        return jax.device_put(np.asarray(value, leaf.dtype), leaf.sharding)

    params = jax.tree_util.tree_map_with_path(replace, state.params)
    return state.replace(params=params)


def warm_start(state: TrainState, spec: WarmStart) -> TrainState:
    """``state`` with the parameters ``spec`` names taken from other runs' newest checkpoints
    (see ``WarmStart``). A parameter such a run lacks is a CheckpointError naming both."""

    def split(prefix: str) -> tuple[str, ...]:
        return tuple(prefix.split("/")) if prefix else ()

    fresh = [split(f) for f in spec.fresh]
    paths = [path_key(p) for p, _ in jax.tree_util.tree_leaves_with_path(state.params)]
    arrays, read = {}, {}
    for prefix, (workdir, source_prefix) in spec.parts.items():
        if workdir not in read:
            read[workdir] = read_params(workdir)
        params, _, step = read[workdir]
        target, source = split(prefix), split(source_prefix)
        for path in paths:
            if path[:len(target)] != target or any(path[:len(f)] == f for f in fresh):
                continue
            key = source + path[len(target):]
            if key not in params:
                raise CheckpointError(f"{workdir} (step {step}) has no parameter "
                                      f"{'/'.join(key)} for the model's {'/'.join(path)}")
            arrays[path] = params[key]
    return with_params(state, arrays)


def state_shardings(abstract_state: TrainState, tx: optax.GradientTransformation, mesh: Mesh,
                    rules) -> TrainState:
    """NamedShardings for every leaf: params by their logical axes, optimizer moments like the
    params they track (8-bit moments' codes too, their block scales on the leading axes),
    everything else replicated."""
    param_shardings = sharding.state_shardings(abstract_state.params, mesh, rules)
    rep = sharding.replicated(mesh)
    # A frozen parameter's moments are optax's MaskedNode (no array): it stays as it is.
    masked = optax.transforms.MaskedNode
    opt_shardings = optax.tree_map_params(
        tx, lambda v, s: v if isinstance(v, masked) else moment_sharding(v, s),
        abstract_state.opt_state, param_shardings, transform_non_params=lambda _: rep,
        is_leaf=lambda x: isinstance(x, NamedSharding | masked | QuantizedMoment))
    return TrainState(step=rep, params=param_shardings, opt_state=opt_shardings, rng=rep)


def offloaded(shardings: TrainState, tx: optax.GradientTransformation, *, optimizer: bool,
              params: bool) -> TrainState:
    """``shardings`` with the optimizer's moments (the state that tracks a parameter) and/or the
    parameters in ``pinned_host`` memory. Counters and other scalars stay on the device."""

    def to_host(s):
        return s.with_memory_kind("pinned_host") if isinstance(s, NamedSharding) else s

    out = shardings
    if optimizer:
        out = out.replace(opt_state=optax.tree_map_params(
            tx, to_host, shardings.opt_state,
            is_leaf=lambda x: isinstance(x, NamedSharding | optax.transforms.MaskedNode)))
    if params:
        out = out.replace(params=jax.tree.map(
            to_host, shardings.params, is_leaf=lambda x: isinstance(x, NamedSharding)))
    return out


def on_device(fn: Callable, shardings: Any, argnum: int = 0) -> Callable:
    """``fn`` with its ``argnum``-th argument first copied onto ``shardings`` (the device
    memory): inside jit, the copy from pinned host memory is part of the compiled step."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        args = list(args)
        args[argnum] = jax.device_put(args[argnum], shardings)
        return fn(*args, **kwargs)

    return wrapped


def make_train_step(graphdef: nnx.GraphDef, task: Task, tx: optax.GradientTransformation,
                    schedule: optax.Schedule) -> Callable[[TrainState, Batch],
                                                          tuple[TrainState, Metrics]]:
    """``train_step(state, batch, frozen=None) -> (state, metrics)``: a pure function, ready
    for jax.jit. ``frozen``: the parameters that do not train (LoRA's base weights)."""
    dropout = task.cfg.lora.rank and task.cfg.lora.dropout
    accumulation = task.cfg.optim.accumulation_steps

    def train_step(state: TrainState, batch: Batch,
                   frozen: nnx.State | None = None) -> tuple[TrainState, Metrics]:
        rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)

        def loss_fn(params, batch, rng):
            # The frozen state's Variables were made at jit's trace level; NNX transforms
            # (the scanned stack) refuse a model that mixes levels, so copy them at this one.
            model = _merge(graphdef, params, jax.tree.map(lambda x: x, frozen))
            if not dropout:
                return task.loss(model, batch, rng, state.step)
            with dropout_rng(jax.random.fold_in(rng, LORA_STREAM)):
                return task.loss(model, batch, rng, state.step)

        if accumulation == 1:
            (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                state.params, batch, rng)
        else:  # optim.accumulation_steps microbatches, one update
            microbatches = split_microbatches(batch, accumulation, task.microbatch_units())
            loss, aux, grads = accumulated_value_and_grad(
                loss_fn, state.params, microbatches, rng, task.loss_weight_key)
        # A NaN or Inf loss with finite gradients (a masked-out term, say) is no better: mark
        # the gradients so the optimizer's finiteness check skips this update too.
        grads = jax.tree.map(lambda g: jnp.where(jnp.isfinite(loss), g, jnp.nan), grads)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads),
                   "learning_rate": schedule(state.step), **nonfinite_counts(opt_state), **aux}
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
        return new_state, metrics

    return train_step


def _merge(graphdef: nnx.GraphDef, params: nnx.State, frozen: nnx.State | None) -> nnx.Module:
    return nnx.merge(graphdef, params) if frozen is None else nnx.merge(graphdef, params, frozen)


def make_eval_step(graphdef: nnx.GraphDef, task: Task) -> Callable[[nnx.State, Batch], Metrics]:
    """``eval_step(params, batch, frozen=None) -> sums``: additive eval statistics of one
    batch."""

    def eval_step(params: nnx.State, batch: Batch, frozen: nnx.State | None = None) -> Metrics:
        return task.eval_sums(_merge(graphdef, params, frozen), batch)

    return eval_step


def make_embed_fn(graphdef: nnx.GraphDef, task: Task) -> Callable[[nnx.State, Batch], Metrics]:
    """``embed(params, batch, frozen=None) -> embeddings``, for probes and downstream models."""

    def embed(params: nnx.State, batch: Batch, frozen: nnx.State | None = None) -> Metrics:
        return task.embed(_merge(graphdef, params, frozen), batch)

    return embed


def abstract_with_shardings(abstract: Any, shardings: Any) -> Any:
    """ShapeDtypeStructs carrying shardings: restore targets for Orbax."""
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                        abstract, shardings)


@dataclasses.dataclass(frozen=True)
class Program:
    """The jitted pieces of a run on one mesh: init, train step and eval step, with shardings.
    With LoRA, ``frozen`` holds the base weights on the mesh (bound into the steps) and
    ``artifacts`` where they came from (saved with every checkpoint)."""

    task: Task
    mesh: Mesh
    rules: Any
    abstract_state: TrainState
    state_shardings: TrainState
    init: Callable[[], TrainState]
    train_step: Callable[[TrainState, Batch], tuple[TrainState, Metrics]]
    eval_step: Callable[[nnx.State, Batch], Metrics]
    embed: Callable[[nnx.State, Batch], Metrics]
    healthy: Callable[[TrainState], jax.Array]
    frozen: nnx.State | None = None
    artifacts: dict[str, Any] = dataclasses.field(default_factory=dict)

    def shard(self, local_batch: dict[str, Any]) -> Batch:
        """This process's numpy slice of a batch as global arrays on the mesh."""
        return sharding.shard_batch(local_batch, self.mesh, self.rules)

    def data_block(self) -> tuple[int, int]:
        """``(index, count)``: this process feeds block ``index`` of ``count`` of every global
        batch's rows (:func:`astrojax.sharding.process_data_block`): pass them to the task's
        ``train_data``/``eval_data`` as the process index and count."""
        return sharding.process_data_block(self.mesh, self.rules,
                                           self.task.cfg.train.global_batch_size)

    def restore_target(self) -> TrainState:
        return abstract_with_shardings(self.abstract_state, self.state_shardings)


def build_program(cfg: Config, task: Task, mesh: Mesh) -> Program:
    """Derives shardings from the model's logical axes and jits init, train and eval steps.

    The train step donates the state and pins its output shardings to the input ones, so it
    compiles once and updates the state in place. With LoRA the frozen weights are read from
    ``config.lora.base`` onto their shardings here, once, and bound into the steps.
    """
    rules = cfg.mesh.logical_axis_rules
    decay_steps = cfg.optim.decay_steps if cfg.optim.decay_steps > 0 else cfg.train.steps
    graphdef, abstract_params = abstract_model(task, cfg.train.seed)
    frozen = any(not task.trainable(path_key(p))
                 for p, _ in jax.tree_util.tree_leaves_with_path(abstract_params))
    tx, schedule = make_optimizer(cfg.optim, decay_steps, task.trainable if frozen else None)
    init_fn = functools.partial(init_state, task, tx, cfg.train.seed)
    abstract_state = jax.eval_shape(init_fn)
    on_chip = state_shardings(abstract_state, tx, mesh, rules)
    shardings = on_chip
    step_fn, eval_fn, embed_fn, healthy_fn = (make_train_step(graphdef, task, tx, schedule),
                                              make_eval_step(graphdef, task),
                                              make_embed_fn(graphdef, task), healthy)
    t = cfg.train
    if t.offload_optimizer or t.offload_params:
        if mesh.devices.flat[0].platform == "cpu":
            log.warning("train.offload_optimizer/offload_params: no effect on CPU, whose host "
                        "memory is its device memory (the state is placed in pinned_host "
                        "memory all the same)")
        shardings = offloaded(on_chip, tx, optimizer=t.offload_optimizer,
                              params=t.offload_params)
        step_fn, healthy_fn = on_device(step_fn, on_chip), on_device(healthy_fn, on_chip)
        eval_fn, embed_fn = on_device(eval_fn, on_chip.params), on_device(embed_fn,
                                                                         on_chip.params)
    rep = sharding.replicated(mesh)

    def traced_with_rules(fn):  # activations' sharding constraints read the same table
        return sharding.with_axis_rules(fn, rules)

    train_step = jax.jit(traced_with_rules(step_fn), out_shardings=(shardings, rep),
                         donate_argnums=0)
    eval_step = jax.jit(traced_with_rules(eval_fn), out_shardings=rep)
    embed = jax.jit(traced_with_rules(embed_fn))
    frozen_params, artifacts = None, {}
    if cfg.lora.rank:
        frozen_params, artifacts = load_frozen(cfg, task, mesh)
        train_step, eval_step, embed = (functools.partial(fn, frozen=frozen_params)
                                        for fn in (train_step, eval_step, embed))
    return Program(
        task=task, mesh=mesh, rules=rules, abstract_state=abstract_state,
        state_shardings=shardings, init=jax.jit(init_fn, out_shardings=shardings),
        train_step=train_step, eval_step=eval_step, embed=embed,
        healthy=jax.jit(healthy_fn, out_shardings=rep), frozen=frozen_params, artifacts=artifacts,
    )


def load_frozen(cfg: Config, task: Task, mesh: Mesh | None = None, *, device=None,
                step: int | None = None) -> tuple[nnx.State, dict[str, Any]]:
    """A LoRA run's frozen weights from ``config.lora.base`` on ``mesh`` (sharded by their
    logical axes) or on one ``device``, and where they came from (see
    ``astrojax.train.frozen.load_base``); ``step``: the base's step, default its newest."""
    if task.warm_start() is not None:
        raise ConfigError("lora.base", "this task also warm-starts part of its model from "
                                       "other runs; with LoRA every frozen weight comes from "
                                       "lora.base alone")
    _, abstract = abstract_model(task, cfg.train.seed)
    abstract = nnx.filter_state(abstract, frozen_filter(cfg))
    if mesh is not None:
        where = sharding.state_shardings(abstract, mesh, cfg.mesh.logical_axis_rules)
    else:
        single = jax.sharding.SingleDeviceSharding(device or jax.devices()[0])
        where = jax.tree.map(lambda _: single, abstract)
    return load_base(cfg, abstract_with_shardings(abstract, where), step)


def healthy(state: TrainState) -> jax.Array:
    """A scalar bool: the parameters are finite and the last update was not skipped as
    non-finite. Only such states are checkpointed."""
    return all_finite(state.params) & (nonfinite_counts(state.opt_state)["nonfinite_in_a_row"]
                                       == 0)


def all_finite(tree: Any) -> jax.Array:
    """A scalar bool: no leaf of ``tree`` holds a NaN or an Inf."""
    leaves = jax.tree.leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else \
        jnp.array(True)
