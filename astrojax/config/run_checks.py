"""Start-up validation of the run-level sections: optimizer and schedule, the train loop
(checkpoints, early stopping, profiling, offload, several hosts), LoRA, and the mesh (its sizes,
and what the batch and the sequence split need of it). :mod:`astrojax.config.checks` validates
the task's own sections and calls these; both raise
:class:`~astrojax.config.sections.ConfigError` naming the key.
"""

import math
from typing import Any

from astrojax.config.sections import (
    BAD_CHECKPOINT_POLICIES,
    CONTEXT_IMPLS,
    LORA_TARGETS,
    MESH_AXES,
    OPTIMIZERS,
    SCHEDULES,
    Config,
    ConfigError,
    GraphDataConfig,
    LinkPredDataConfig,
    LoRAConfig,
    MeshConfig,
    OptimConfig,
    TrainConfig,
    TransformerConfig,
)


def _one_of(key: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(key, f"{value!r} is not one of {', '.join(map(str, allowed))}")


def _positive(key: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(key, f"must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def _fraction(key: str, value: float, low: float = 0.0, high: float = 1.0) -> None:
    if not low < value < high:
        raise ConfigError(key, f"must be in ({low:g}, {high:g}), got {value}")


def _check_optim(cfg: Config, o: OptimConfig, p: str) -> None:
    _positive(f"{p}learning_rate", o.learning_rate)
    if not 0.0 <= o.end_learning_rate_fraction <= 1.0:
        raise ConfigError(f"{p}end_learning_rate_fraction",
                          f"must be in [0, 1], got {o.end_learning_rate_fraction}")
    _positive(f"{p}warmup_steps", o.warmup_steps, allow_zero=True)
    if o.decay_steps != -1:
        _positive(f"{p}decay_steps", o.decay_steps)
    _positive(f"{p}weight_decay", o.weight_decay, allow_zero=True)
    for name in ("b1", "b2"):
        if not 0.0 <= getattr(o, name) < 1.0:
            raise ConfigError(f"{p}{name}", f"must be in [0, 1), got {getattr(o, name)}")
    _positive(f"{p}grad_clip_norm", o.grad_clip_norm, allow_zero=True)
    _check_schedule(cfg, o, p)
    _one_of(f"{p}optimizer", o.optimizer, OPTIMIZERS)
    _positive(f"{p}block_size", o.block_size)
    _positive(f"{p}min_8bit_size", o.min_8bit_size, allow_zero=True)
    _positive(f"{p}accumulation_steps", o.accumulation_steps)


def _check_schedule(cfg: Config, o: OptimConfig, p: str) -> None:
    _one_of(f"{p}schedule", o.schedule, SCHEDULES)
    total = o.decay_steps if o.decay_steps > 0 else cfg.train.steps
    if o.schedule == "onecycle":
        if not o.onecycle_div_factor >= 1.0:
            raise ConfigError(f"{p}onecycle_div_factor",
                              f"must be >= 1 (the start is learning_rate / it), got "
                              f"{o.onecycle_div_factor}")
        if o.warmup_steps >= total:
            raise ConfigError(f"{p}warmup_steps", f"{o.warmup_steps} leaves no step of the "
                                                  f"{total} for onecycle's annealing")
    elif o.schedule == "cosine_restarts":
        if not o.warmup_steps < o.restart_period:
            raise ConfigError(f"{p}restart_period",
                              f"{o.restart_period} must exceed {p}warmup_steps="
                              f"{o.warmup_steps} (the first cycle warms up)")
    elif o.schedule == "wsd":
        if not 0.0 < o.wsd_decay_fraction <= 1.0:
            raise ConfigError(f"{p}wsd_decay_fraction",
                              f"must be in (0, 1], got {o.wsd_decay_fraction}")
        if o.warmup_steps + round(o.wsd_decay_fraction * total) > total:
            raise ConfigError(f"{p}wsd_decay_fraction",
                              f"{o.warmup_steps} warmup steps and a decay over "
                              f"{o.wsd_decay_fraction:g} of the {total} steps overlap")


def _check_train(cfg: Config, t: TrainConfig, p: str) -> None:
    for name in ("steps", "global_batch_size", "log_every", "eval_every", "checkpoint_every",
                 "max_checkpoints_to_keep", "max_nonfinite_steps"):
        _positive(f"{p}{name}", getattr(t, name))
    _positive(f"{p}eval_batches", t.eval_batches, allow_zero=True)
    _positive(f"{p}profile_steps", t.profile_steps, allow_zero=True)
    _positive(f"{p}profile_start_step", t.profile_start_step, allow_zero=True)
    _one_of(f"{p}on_bad_checkpoint", t.on_bad_checkpoint, BAD_CHECKPOINT_POLICIES)
    check_distributed(t, p)
    _check_best_metric(t, p)


def check_distributed(t: TrainConfig, p: str = "train.") -> None:
    """The launch fields of several processes: all three set (with ``distributed``), or none
    (JAX detects them from the cluster's environment). Raises ConfigError naming the key."""
    launch = {"coordinator_address": t.coordinator_address != "",
              "num_processes": t.num_processes != -1, "process_id": t.process_id != -1}
    given = [name for name, is_set in launch.items() if is_set]
    if given and not t.distributed:
        raise ConfigError(f"{p}{given[0]}", f"is set but {p}distributed is False; add "
                                            f"--config.{p}distributed=True")
    if given and len(given) < len(launch):
        missing = [name for name in launch if name not in given]
        raise ConfigError(f"{p}{missing[0]}", f"is unset while {p}{given[0]} is set: set "
                                              f"{', '.join(p + n for n in launch)} together, "
                                              "or none of them to let JAX detect them")
    if not given:
        return
    host, _, port = t.coordinator_address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{p}coordinator_address", f"expected HOST:PORT (process 0's address "
                                                     "and a free port, e.g. 10.0.0.1:1234), "
                                                     f"got {t.coordinator_address!r}")
    if t.num_processes < 1:
        raise ConfigError(f"{p}num_processes", f"must be >= 1, got {t.num_processes}")
    if not 0 <= t.process_id < t.num_processes:
        raise ConfigError(f"{p}process_id", f"must be in 0..{t.num_processes - 1} "
                                            f"({p}num_processes={t.num_processes}), got "
                                            f"{t.process_id}")


# Words of an eval metric's name that say which way is better (best_mode_of).
LOWER_IS_BETTER = ("loss", "mse", "mae", "bce", "nll", "kl", "ece", "perplexity", "bits",
                   "error")
HIGHER_IS_BETTER = ("accuracy", "auc", "ap", "r2")


def best_mode_of(t: TrainConfig, p: str = "train.") -> str:
    """``train.best_mode``, or when it is "" the mode the metric's name implies: "min" if a
    word of it (split at "/" and "_") is one of LOWER_IS_BETTER, else "max" if one is in
    HIGHER_IS_BETTER; a ConfigError asking for best_mode otherwise."""
    if t.best_mode:
        return t.best_mode
    words = t.best_metric.replace("/", "_").split("_")
    if any(w in LOWER_IS_BETTER for w in words):
        return "min"
    if any(w in HIGHER_IS_BETTER for w in words):
        return "max"
    raise ConfigError(f"{p}best_mode", f"cannot tell from {p}best_metric={t.best_metric!r} "
                                       "whether lower or higher is better: set it to min or max")


def _check_best_metric(t: TrainConfig, p: str) -> None:
    _positive(f"{p}keep_best", t.keep_best, allow_zero=True)
    _positive(f"{p}early_stopping_patience", t.early_stopping_patience, allow_zero=True)
    _positive(f"{p}early_stopping_min_delta", t.early_stopping_min_delta, allow_zero=True)
    if not t.best_metric:
        if t.early_stopping_patience:
            raise ConfigError(f"{p}early_stopping_patience",
                              f"is {t.early_stopping_patience} but {p}best_metric is unset: name "
                              "the eval metric to watch, e.g. eval/loss")
        return
    if not t.best_metric.startswith("eval/") or t.best_metric.startswith("eval/baseline/"):
        raise ConfigError(f"{p}best_metric", f"must name an eval metric of the model, "
                                             f"e.g. eval/loss; got {t.best_metric!r}")
    if not t.eval_batches:
        raise ConfigError(f"{p}best_metric", f"{t.best_metric} needs evals, but "
                                             f"{p}eval_batches is 0")
    if t.best_mode:
        _one_of(f"{p}best_mode", t.best_mode, ("min", "max"))
    best_mode_of(t, p)
    if not t.keep_best:
        raise ConfigError(f"{p}keep_best", f"must be at least 1 with {p}best_metric set: the "
                                           "test split scores the best checkpoint")


def check_lora_targets(targets: Any, key: str = "lora.targets") -> None:
    """ConfigError naming ``key`` unless ``targets`` are distinct names of LORA_TARGETS."""
    if isinstance(targets, str) or not targets:
        raise ConfigError(key, f"expected a tuple of names of {', '.join(LORA_TARGETS)}, got "
                               f"{targets!r}")
    for name in targets:
        _one_of(key, name, LORA_TARGETS)
    if len(set(targets)) != len(targets):
        raise ConfigError(key, f"names a target twice: {tuple(targets)}")


def _check_lora(cfg: Config, lora: LoRAConfig, p: str) -> None:
    _positive(f"{p}rank", lora.rank, allow_zero=True)
    check_lora_targets(lora.targets, f"{p}targets")
    if lora.rank == 0:
        if lora.base:
            raise ConfigError(f"{p}base", f"is {lora.base!r} but {p}rank is 0 (no adapters); set "
                                          f"{p}rank > 0, or warm-start otherwise")
        return
    _positive(f"{p}alpha", lora.alpha)
    if not 0.0 <= lora.dropout < 1.0:
        raise ConfigError(f"{p}dropout", f"must be in [0, 1), got {lora.dropout}")
    if not lora.base:
        raise ConfigError(f"{p}base", f"{p}rank={lora.rank} trains adapters on frozen weights: "
                                      "name their source, the workdir of a run of this task")


def resolve_mesh_shape(mesh: MeshConfig, num_devices: int) -> dict[str, int]:
    """Mesh axis sizes with -1 filled in; raises ConfigError if they cannot fit ``num_devices``."""
    sizes = {axis: getattr(mesh, axis) for axis in MESH_AXES}
    for axis, size in sizes.items():
        if size == 0 or size < -1:
            raise ConfigError(f"mesh.{axis}", f"must be a positive size or -1, got {size}")
    fill = [axis for axis, size in sizes.items() if size == -1]
    if len(fill) > 1:
        raise ConfigError(f"mesh.{fill[1]}",
                          f"only one mesh axis may be -1, got -1 for {', '.join(fill)}")
    fixed = math.prod(size for size in sizes.values() if size != -1)
    if fill:
        if num_devices % fixed:
            raise ConfigError(f"mesh.{fill[0]}",
                              f"cannot fill: {num_devices} devices do not divide by the other "
                              f"axes' product {fixed}")
        sizes[fill[0]] = num_devices // fixed
    elif fixed != num_devices:
        shape = " x ".join(f"{a}={s}" for a, s in sizes.items())
        raise ConfigError("mesh", f"{shape} needs {fixed} devices, but {num_devices} are "
                                  f"available (set one axis to -1 to fill)")
    return sizes


def _check_mesh(cfg: Config, sizes: dict[str, int]) -> None:
    """What the data and the sequence split need of the mesh (the model's parameters are
    checked by the task, from their logical axes)."""
    data_parallel = sizes["data"] * sizes["fsdp"]
    where = f"(mesh.data={sizes['data']} x mesh.fsdp={sizes['fsdp']})"
    if sizes["context"] > 1:
        _check_context(cfg, sizes["context"])
    d = cfg.data
    if isinstance(d, GraphDataConfig):
        sub_batches = cfg.train.global_batch_size // d.graphs_per_sub_batch
        if sub_batches % data_parallel:
            raise ConfigError("data.graphs_per_sub_batch",
                              f"{sub_batches} sub-batches of {d.graphs_per_sub_batch} graphs "
                              f"(train.global_batch_size={cfg.train.global_batch_size}) do not "
                              f"split over the data-parallel size {data_parallel} {where}")
    elif isinstance(d, LinkPredDataConfig):
        if data_parallel != 1:
            raise ConfigError("mesh.data", f"graph_linkpred trains on one network, which does "
                                           f"not split over a data-parallel size of "
                                           f"{data_parallel} {where}: use mesh.data=1, "
                                           "mesh.fsdp=1")
    elif cfg.train.global_batch_size % data_parallel:
        raise ConfigError("train.global_batch_size",
                          f"{cfg.train.global_batch_size} is not divisible by the data-parallel "
                          f"size {data_parallel} {where}")
    _check_accumulation(cfg, data_parallel, where)


def _check_accumulation(cfg: Config, data_parallel: int, where: str) -> None:
    """Each of the optim.accumulation_steps microbatches must split over the data-parallel
    devices (the task checks that its batch's units split too: Task.microbatch_units)."""
    k = cfg.optim.accumulation_steps
    if k == 1:
        return
    if isinstance(cfg.data, LinkPredDataConfig):
        raise ConfigError("optim.accumulation_steps",
                          f"{k}: task {cfg.task!r} trains on one network per step, which does "
                          "not split into microbatches; use 1")
    units = cfg.train.global_batch_size
    what = f"train.global_batch_size={units}"
    if isinstance(cfg.data, GraphDataConfig):
        units //= cfg.data.graphs_per_sub_batch
        what = f"the {units} sub-batches of data.graphs_per_sub_batch graphs"
    if units % (k * data_parallel):
        raise ConfigError("optim.accumulation_steps",
                          f"{what} does not split into {k} microbatches over the data-parallel "
                          f"size {data_parallel} {where}: it must be divisible by "
                          f"{k} x {data_parallel}")


def _check_context(cfg: Config, context: int) -> None:
    if not isinstance(cfg.model, TransformerConfig):
        raise ConfigError("mesh.context", f"{context} splits the transformer's sequences (task "
                                          f"lm); task {cfg.task!r} has none to split: use 1")
    impl = cfg.model.attention_impl
    if impl not in CONTEXT_IMPLS:
        raise ConfigError("model.attention_impl",
                          f"{impl!r} cannot run on a sequence split over mesh.context={context}; "
                          f"use one of {', '.join(CONTEXT_IMPLS)}")
    chunks = context * (2 if impl in ("auto", "ring") else 1)
    if cfg.data.seq_len % chunks:
        raise ConfigError("data.seq_len", f"{cfg.data.seq_len} does not split into {chunks} "
                                          f"chunks (mesh.context={context}"
                                          + (", x 2 for ring attention's zig-zag)"
                                             if chunks > context else ")"))
