"""Device mesh from config, logical-to-mesh axis rules, and shardings of NNX state and batches.

Model code names only logical axes (``embed``, ``heads``, ``batch``, ``sequence``, ...); the
table ``MeshConfig.logical_axis_rules`` maps them onto the mesh axes ``data``, ``fsdp``,
``context`` and ``tensor``. Everything here derives shardings from that one table: parameters'
through :func:`state_shardings`, activations' through :func:`constrain`, which reads the table
that :func:`axis_rules` (flax's logical-axis-rules context) makes current while a step traces.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.core.spmd
import flax.linen as nn
import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from astrojax.config import (
    DEFAULT_LOGICAL_AXIS_RULES,
    MESH_AXES,
    ConfigError,
    MeshConfig,
    resolve_mesh_shape,
)

Rules = Sequence[tuple[str, Any]]


def make_mesh(cfg: MeshConfig, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A ``(data, fsdp, tensor)`` mesh with Auto axis types over ``devices`` (default: all)."""
    devices = list(jax.devices() if devices is None else devices)
    sizes = resolve_mesh_shape(cfg, len(devices))
    check_rules(cfg.logical_axis_rules)
    shape = tuple(sizes[axis] for axis in MESH_AXES)
    auto = (jax.sharding.AxisType.Auto,) * len(MESH_AXES)
    return jax.make_mesh(shape, MESH_AXES, axis_types=auto, devices=devices)


def check_rules(rules: Rules) -> None:
    """Raises ConfigError unless every rule maps a logical name to known mesh axes."""
    seen = set()
    for entry in rules:
        if len(entry) != 2 or not isinstance(entry[0], str):
            raise ConfigError("mesh.logical_axis_rules",
                              f"each rule is (logical_name, mesh_axes), got {entry!r}")
        name, axes = entry
        if name in seen:
            raise ConfigError("mesh.logical_axis_rules", f"logical axis {name!r} appears twice")
        seen.add(name)
        for axis in _as_tuple(axes):
            if axis not in MESH_AXES:
                raise ConfigError("mesh.logical_axis_rules",
                                  f"rule {name!r} names mesh axis {axis!r}; mesh axes are "
                                  f"{', '.join(MESH_AXES)}")


def _as_tuple(axes: Any) -> tuple[str, ...]:
    if axes is None:
        return ()
    return (axes,) if isinstance(axes, str) else tuple(axes)


def logical_to_mesh_spec(logical: Sequence[str | None], rules: Rules) -> PartitionSpec:
    """Maps a tuple of logical axis names to a mesh PartitionSpec; unknown names are an error."""
    known = {name for name, _ in rules}
    for name in logical:
        if name is not None and name not in known:
            raise KeyError(f"logical axis {name!r} has no rule in mesh.logical_axis_rules "
                           f"(known: {', '.join(sorted(known))})")
    return nn.logical_to_mesh_axes(tuple(logical), rules)


def logical_specs(state: nnx.State) -> Any:
    """The logical PartitionSpec of every leaf of an NNX state (P() where none was declared)."""
    return nnx.get_partition_spec(state)


def state_shardings(state: nnx.State | Any, mesh: Mesh, rules: Rules) -> Any:
    """NamedSharding for every leaf of ``state`` (abstract or concrete), from its logical axes."""
    specs = logical_specs(state)

    def to_sharding(spec: Any) -> NamedSharding:
        if not isinstance(spec, PartitionSpec):
            spec = PartitionSpec()
        return NamedSharding(mesh, logical_to_mesh_spec(tuple(spec), rules))

    return jax.tree.map(to_sharding, specs, is_leaf=lambda x: isinstance(x, PartitionSpec))


def check_divisible(abstract_model: nnx.Module, rules: Rules, mesh_sizes: Mapping[str, int],
                    section: Any = None) -> None:
    """Raises ConfigError if a parameter's dimension does not divide over the mesh axes its
    logical axis maps to. ``abstract_model`` is the model from ``nnx.eval_shape``: the
    constraint comes from the model's own parameters, never from a list kept elsewhere. The
    error names the field of ``section`` (the model's config, ``config.model``) whose value is
    that size when one is, the parameter and the logical axis."""
    state = nnx.state(abstract_model, nnx.Param)
    specs = jax.tree.leaves(logical_specs(state), is_leaf=lambda x: isinstance(x, PartitionSpec))
    rule_of = dict(rules)
    for (path, leaf), spec in zip(nnx.to_flat_state(state), specs, strict=True):
        for size, logical in zip(leaf.get_value().shape, tuple(spec), strict=False):
            axes = _as_tuple(rule_of.get(logical)) if isinstance(logical, str) else ()
            shards = int(np.prod([mesh_sizes[a] for a in axes])) if axes else 1
            if size % shards:
                where = " x ".join(f"mesh.{a}={mesh_sizes[a]}" for a in axes)
                field = _field_of_size(section, size, logical)
                raise ConfigError(f"model.{field}" if field else "model",
                                  f"{size} (axis {logical!r} of parameter "
                                  f"{'/'.join(map(str, path))}) is not divisible by {where} "
                                  "(mesh.logical_axis_rules)")


# Which config field names a logical axis most likely stands for, to name the right one when
# several fields share a value (num_layers = num_heads = 4). Only for the error message.
_FIELD_HINTS = {"kv_heads": ("kv_heads", "heads"), "heads": ("heads",), "mlp": ("mlp",),
                "vocab": ("vocab",), "embed": ("d_model", "hidden_dim", "_dim")}


def _field_of_size(section: Any, size: int, logical: str) -> str | None:
    """The int field of a config dataclass whose value is ``size``, preferring one whose name
    fits the logical axis."""
    if section is None or not dataclasses.is_dataclass(section):
        return None
    names = [f.name for f in dataclasses.fields(section)
             if isinstance(getattr(section, f.name), int)
             and not isinstance(getattr(section, f.name), bool)
             and getattr(section, f.name) == size]
    hints = _FIELD_HINTS.get(logical, ())
    for hint in hints:  # the closest hint first: kv_heads -> num_kv_heads, else num_heads
        fitting = [n for n in names if hint in n
                   and not (logical == "heads" and "kv_heads" in n)]
        if fitting:
            return fitting[0]
    return names[0] if names else None


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh, rules: Rules, ndim: int = 2) -> NamedSharding:
    """Sharding of a ``[batch, ...]`` array: the leading axis split over the ``batch`` rule."""
    return NamedSharding(mesh, logical_to_mesh_spec(("batch",) + (None,) * (ndim - 1), rules))


def data_parallel_size(mesh: Mesh, rules: Rules) -> int:
    """How many ways the ``batch`` logical axis is split on this mesh."""
    axes = _as_tuple(dict(rules).get("batch"))
    return int(np.prod([mesh.shape[a] for a in axes])) if axes else 1


def process_data_block(mesh: Mesh, rules: Rules, global_batch: int,
                       process: int | None = None) -> tuple[int, int]:
    """``(index, count)``: the process (default: this one) feeds block ``index`` of ``count``
    equal blocks of every global batch's rows, the rows its devices hold under the ``batch``
    rule. Processes whose devices hold the same rows (peers along a mesh axis that does not
    split the batch, such as ``tensor`` or ``context`` spanning processes when each process
    has one GPU) feed the same block; with one process it is ``(0, 1)``. A ConfigError when
    the mesh gives a process rows that are not one such block."""
    indices = batch_sharding(mesh, rules, 1).devices_indices_map((global_batch,))
    slices: dict[int, set[tuple[int, int]]] = {}
    for device, (index,) in indices.items():
        start, stop, _ = index.indices(global_batch)
        slices.setdefault(device.process_index, set()).add((start, stop))
    return row_blocks(slices, global_batch)[jax.process_index() if process is None else process]


def row_blocks(slices: Mapping[int, set[tuple[int, int]]],
               global_batch: int) -> dict[int, tuple[int, int]]:
    """For :func:`process_data_block`: each process's ``(index, count)`` from the row ranges
    ``(start, stop)`` its devices hold."""
    spans = {}
    for process, ranges in slices.items():
        start, stop = min(a for a, _ in ranges), max(b for _, b in ranges)
        if sum(b - a for a, b in ranges) != stop - start:  # gaps or overlaps
            spans = None
            break
        spans[process] = (start, stop)
    blocks = sorted(set(spans.values())) if spans else []
    size = blocks[0][1] - blocks[0][0] if blocks else 0
    if not size or blocks != [(a, a + size) for a in range(0, global_batch, size)]:
        raise ConfigError("mesh", f"the mesh gives the processes rows of each batch that are "
                                  f"not equal contiguous blocks ({dict(sorted(slices.items()))} "
                                  f"of {global_batch}); order the devices so that each "
                                  "process's hold one block")
    return {process: (blocks.index(span), len(blocks)) for process, span in spans.items()}


def shard_batch(local_batch: Mapping[str, np.ndarray], mesh: Mesh, rules: Rules) -> dict:
    """Turns this process's slice of a batch into global arrays sharded over the data axes."""
    return {
        name: jax.make_array_from_process_local_data(batch_sharding(mesh, rules, value.ndim),
                                                     value)
        for name, value in local_batch.items()
    }


# ----------------------------------------------------------------------------------------------
# Activations: the current rules and sharding constraints named by logical axes


def axis_rules(rules: Rules) -> contextlib.AbstractContextManager:
    """Makes ``rules`` the table that :func:`constrain` and the layers read (flax's
    logical-axis-rules context; thread-local, so wrap the function that jit traces)."""
    return flax.core.spmd.logical_axis_rules(tuple(rules))


def with_axis_rules(fn: Callable, rules: Rules) -> Callable:
    """``fn`` traced under :func:`axis_rules` ``(rules)``: for functions handed to ``jax.jit``."""
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with axis_rules(rules):
            return fn(*args, **kwargs)
    return wrapped


def current_rules() -> Rules:
    """The rules :func:`axis_rules` made current, else the default table."""
    return flax.core.spmd.get_logical_axis_rules() or DEFAULT_LOGICAL_AXIS_RULES


def mesh_axes(logical: str, rules: Rules | None = None) -> tuple[str, ...]:
    """The mesh axes the logical axis ``logical`` maps to (``()``: replicated)."""
    rules = current_rules() if rules is None else rules
    table = dict(rules)
    if logical not in table:
        raise KeyError(f"logical axis {logical!r} has no rule in mesh.logical_axis_rules "
                       f"(known: {', '.join(sorted(table))})")
    return _as_tuple(table[logical])


def fitted_spec(shape: Sequence[int], logical: Sequence[str | None],
                mesh: jax.sharding.AbstractMesh | Mesh | None = None,
                exclude: Sequence[str] = ()) -> PartitionSpec:
    """The PartitionSpec of an array of ``shape`` whose dimensions are named ``logical``, on
    ``mesh`` (default: the current one) under the current rules. Mesh axes that the mesh lacks,
    that have size 1, that an earlier dimension already uses, that are in ``exclude`` or that
    do not divide the dimension are left out, so the same model code runs on any mesh."""
    mesh = jax.sharding.get_abstract_mesh() if mesh is None else mesh
    if len(logical) != len(shape):
        raise ValueError(f"{len(logical)} logical axes {tuple(logical)} for an array of shape "
                         f"{tuple(shape)}")
    spec, used = [], set(exclude)
    for size, name in zip(shape, logical, strict=True):
        axes, shards = [], 1
        for axis in (() if name is None else mesh_axes(name)):
            n = dict(mesh.shape).get(axis, 1)
            if n > 1 and axis not in used and size % (shards * n) == 0:
                axes.append(axis)
                shards *= n
        used.update(axes)
        spec.append(None if not axes else axes[0] if len(axes) == 1 else tuple(axes))
    return PartitionSpec(*spec)


def constrain(x: jax.Array, logical: Sequence[str | None]) -> jax.Array:
    """``x`` constrained to the sharding its logical axes map to (:func:`fitted_spec`) on the
    current mesh; a no-op outside ``jax.set_mesh``."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return x
    return jax.lax.with_sharding_constraint(x, fitted_spec(x.shape, logical, mesh))
