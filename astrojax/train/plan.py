"""Memory and FLOPs of a run before it runs: the train step compiled for the configured mesh
on abstract shapes (no state is allocated), read back from XLA.

``python -m astrojax.train --config ... --dry_run`` prints :func:`format_plan` of
:func:`plan_run`. Per device it gives the parameters and optimizer state (from their shardings:
exact), the batch, and XLA's compiled memory analysis of the step: its arguments, outputs,
the buffers donated back (the state is updated in place) and the temporaries (activations
kept for the backward pass, gradients, workspace). The step's peak is about arguments +
outputs - donated + temporaries.

FLOPs come from XLA's cost analysis of the step as traced, before partitioning, with the
layer stack unrolled and attention on the XLA reference: XLA counts a loop's body once, not once
per trip, so a scanned stack (or a blockwise kernel's loop over blocks) would be counted once.
Attention's scores are thus counted in full, as if no kernel skipped the causal mask's empty
blocks. Remat's recomputation is in the traced step and is counted. ``6 N D`` (N parameters,
D tokens a step) is printed beside it for a language model: the usual estimate, which leaves out
attention's scores and remat.

Planned on CPU (``--dry_run_devices``: fake CPU devices) the figures are XLA:CPU's: it fuses
less than XLA:GPU and picks CPU attention kernels (blockwise past 256 MB of scores, where a
GPU runs cuDNN or Pallas), so temporaries differ from a GPU's; the state's bytes do not.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from astrojax import config as config_lib
from astrojax import sharding
from astrojax.tasks import Task, get_task
from astrojax.train import step as step_lib


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one train step of a config needs, per device unless named otherwise (bytes)."""

    mesh: dict[str, int]
    backend: str
    num_params: int
    params_total: int  # all parameters' bytes, unsharded
    params: int  # one device's shard of them (the largest over devices)
    optimizer_state: int
    host_state: int  # of parameters and optimizer state, what lives in pinned host memory
    batch: int
    arguments: int  # XLA: state + batch as the step receives them
    outputs: int
    donated: int  # outputs written into the donated arguments' buffers
    temporaries: int  # activations kept for the backward pass, gradients, workspace
    peak: int  # arguments + outputs - donated + temporaries
    flops: float  # the whole step, all devices
    tokens: int | None  # tokens per step, for a token model (6 N D)
    compile_seconds: float

    @property
    def flops_per_device(self) -> float:
        return self.flops / math.prod(self.mesh.values())

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "flops_per_device": self.flops_per_device}


def shard_bytes(tree: Any, shardings: Any) -> int:
    """Bytes of ``tree``'s leaves (arrays or ShapeDtypeStructs) held by the device holding the
    most, with each leaf split as ``shardings`` says."""
    per_device: dict[Any, int] = {}
    for leaf, where in zip(jax.tree.leaves(tree), jax.tree.leaves(shardings), strict=True):
        size = int(np.prod(where.shard_shape(leaf.shape))) * np.dtype(leaf.dtype).itemsize
        for device in where.device_set:
            per_device[device] = per_device.get(device, 0) + size
    return max(per_device.values(), default=0)


def abstract_batch(program: step_lib.Program) -> dict[str, jax.ShapeDtypeStruct]:
    """The global train batch's shapes, dtypes and shardings, from one batch of the rows this
    process feeds (tasks batch numpy arrays with a leading batch axis split into blocks)."""
    index, count = program.data_block()
    local = next(iter(program.task.train_data(index, count)))
    return {name: jax.ShapeDtypeStruct(
                (value.shape[0] * count,) + value.shape[1:], value.dtype,
                sharding=sharding.batch_sharding(program.mesh, program.rules, value.ndim))
            for name, value in local.items()}


def step_flops(cfg: config_lib.Config, task: Task, mesh: Mesh, batch) -> float:
    """FLOPs of one train step, counted by XLA on the traced (unpartitioned) step with the layer
    stack unrolled (see the module's docstring)."""
    unrolled = cfg
    changes = {k: v for k, v in (("scan_layers", False), ("attention_impl", "xla"))
               if hasattr(cfg.model, k) and getattr(cfg.model, k) != v}
    if changes:
        unrolled = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, **changes))
    if cfg.optim.accumulation_steps > 1:  # the microbatches' scan would be counted once too
        unrolled = dataclasses.replace(unrolled, optim=dataclasses.replace(
            cfg.optim, accumulation_steps=1))
    if unrolled is not cfg:
        task = get_task(unrolled)
    program = step_lib.build_program(unrolled, task, mesh)
    with jax.set_mesh(mesh):
        lowered = program.train_step.lower(program.restore_target(), batch)
    cost = lowered.cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    return float(cost.get("flops", 0.0)) if cost else 0.0


def plan_run(cfg: config_lib.Config, devices: list[jax.Device] | None = None) -> Plan:
    """Compiles ``cfg``'s train step for its mesh over ``devices`` (default: all) on abstract
    state and one batch's shapes, and reads its memory and FLOPs from XLA. Nothing the size of
    the model is allocated. Raises ConfigError for a config that does not fit the devices."""
    devices = jax.devices() if devices is None else devices
    config_lib.validate(cfg, num_devices=len(devices))
    task = get_task(cfg)
    task.check_mesh(config_lib.resolve_mesh_shape(cfg.mesh, len(devices)))
    mesh = sharding.make_mesh(cfg.mesh, devices)
    program = step_lib.build_program(cfg, task, mesh)
    state = program.abstract_state
    shardings = program.state_shardings
    batch = abstract_batch(program)
    start = time.perf_counter()
    with jax.set_mesh(mesh):
        compiled = program.train_step.lower(program.restore_target(), batch).compile()
    compile_seconds = time.perf_counter() - start
    memory = compiled.memory_analysis()
    arguments = int(memory.argument_size_in_bytes)
    outputs = int(memory.output_size_in_bytes)
    donated = int(memory.alias_size_in_bytes)
    temporaries = int(memory.temp_size_in_bytes)
    leaves = jax.tree.leaves(state.params)
    tokens = None
    if task.throughput_key == "tokens" and "tokens" in batch:
        tokens = int(np.prod(batch["tokens"].shape))
    return Plan(
        mesh=dict(mesh.shape), backend=jax.default_backend(),
        num_params=sum(int(np.prod(x.shape)) for x in leaves),
        params_total=sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in leaves),
        params=shard_bytes(state.params, shardings.params),
        optimizer_state=shard_bytes(state.opt_state, shardings.opt_state),
        host_state=shard_bytes(*_on_host(state, shardings)),
        batch=shard_bytes(batch, {k: v.sharding for k, v in batch.items()}),
        arguments=arguments, outputs=outputs, donated=donated, temporaries=temporaries,
        peak=arguments + outputs - donated + temporaries,
        flops=step_flops(cfg, task, mesh, batch), tokens=tokens,
        compile_seconds=compile_seconds)


def _on_host(state, shardings):
    pairs = [(leaf, where) for leaf, where in zip(jax.tree.leaves(state),
                                                  jax.tree.leaves(shardings), strict=True)
             if where.memory_kind == "pinned_host"]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _size(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            return f"{n / scale:,.2f} {unit}"
    return f"{n:,.0f} B"


def _count(n: float) -> str:
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if abs(n) >= scale:
            return f"{n / scale:,.2f} {unit}"
    return f"{n:,.0f} "


def format_plan(plan: Plan) -> str:
    """The plan as a few aligned lines for a person."""
    devices = math.prod(plan.mesh.values())
    mesh = " x ".join(f"{k}={v}" for k, v in plan.mesh.items() if v > 1) or "one device"
    rows = [
        ("parameters", f"{plan.num_params:,} ({_size(plan.params_total)} in all)"),
        ("per device:", ""),
        ("  parameters", _size(plan.params)),
        ("  optimizer state", _size(plan.optimizer_state)),
        *([("  state in pinned host memory (offload)", _size(plan.host_state))]
          if plan.host_state else []),
        ("  batch", _size(plan.batch)),
        ("  activations and temporaries", _size(plan.temporaries)),
        ("  total (XLA: arguments + outputs - donated + temporaries)", _size(plan.peak)),
        ("FLOPs per step", f"{_count(plan.flops)}FLOP in all, {_count(plan.flops_per_device)}"
                           "FLOP per device"),
    ]
    if plan.tokens:
        rows.append(("  6 N D (N params, D tokens)",
                     f"{_count(6 * plan.num_params * plan.tokens)}FLOP "
                     f"({plan.tokens:,} tokens a step)"))
    width = max(len(name) for name, _ in rows)
    lines = [f"dry run: the train step compiled for {mesh} ({devices} {plan.backend} "
             f"device(s)) in {plan.compile_seconds:.1f} s; nothing allocated"]
    lines += [f"{name:<{width}}  {value}".rstrip() for name, value in rows]
    if plan.backend == "cpu":
        lines.append("(XLA:CPU's figures: a GPU fuses more and runs other attention kernels, "
                     "so its temporaries differ; the state's bytes do not)")
    return "\n".join(lines)
