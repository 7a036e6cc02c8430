"""Low-rank adapters (LoRA, Hu et al. 2021) on a model's projections: attach, train only them,
merge into the weights and back out, save and load them alone.

An adapter of rank r on a weight ``W`` adds ``scale * B(A(dropout(x)))`` to the projection
``x @ W``, with ``scale = alpha / r`` (PEFT's ``lora_alpha / r``), ``A`` drawn as PEFT draws
it (uniform in ``+-1/sqrt(fan_in)``) and ``B`` zero, so an adapted model starts equal to its
base. Targets are named as in PEFT / Hugging Face Llama and Mamba, mapped to our weights:

======== ======================================== ===========================
target   weight                                   in the modules
======== ======================================== ===========================
q        ``w_dnh``    [d, n, h]                    Attention, LinearAttention
k        ``w_dkh_k``  [d, k, h]                    Attention, LinearAttention
v        ``w_dkh_v``  [d, k, h]                    Attention, LinearAttention
o        ``w_nhd``    [n, h, d]                    Attention, LinearAttention
gate     ``w_df_gate`` [d, f]                      SwiGLU
up       ``w_df_up``  [d, f]                       SwiGLU
down     ``w_fd_down`` [f, d]                      SwiGLU
in_proj  ``w_de_x`` and ``w_de_z`` [d, e]          MambaBlock (HF Mamba's fused in_proj)
out_proj ``w_ed_out`` [e, d]                       MambaBlock
======== ======================================== ===========================

``A`` spans the weight's input dimensions and the rank (``A [d, r]`` for q, ``A [n, h, r]``
for o), ``B`` the rank and its output dimensions (``B [r, n, h]`` for q), and they carry the
weight's logical axes with ``None`` for the rank, so they shard like the weight on the mesh. A
scanned stack's weight (a leading ``layers`` axis) gets stacked adapters, which ``nnx.scan``
slices layer by layer like the weight. The adapters are ``nnx.LoRAParam`` (a kind of
``nnx.Param``), so ``nnx.state(model, nnx.LoRAParam)`` is exactly what trains and what
:func:`save_adapters` writes.

**Why an adapter sits beside its weight and is called from ``layers.project``.** Our
projections are einsums over named parameters, not ``nnx.Linear`` modules to wrap, and the
adapter must see the projection's *input* (PEFT's dropout acts there, and the backward pass
then never forms a full-size weight gradient, which folding ``A @ B`` into ``W`` on every call
would). So every projection in ``layers`` and ``mixers`` reads its weight through
:func:`astrojax.models.layers.project`, which adds the adapter found at attribute
``<weight>_lora`` of the same module. The hook is one ``getattr`` in one function: without
LoRA the parameter tree and the computation are exactly as before, and every path that reads a
weight (training, evaluation, the cached decoder) gets its adapter without knowing about it.

**Dropout** needs a key, and the models hold only parameters (the train state is explicit), so
the key comes from a context: inside ``with dropout_rng(key):`` adapters with ``dropout > 0``
drop their input; outside it (evaluation, decoding, a plain call) they are deterministic. Each
adapter folds in its own number, so q, k and v draw different masks; a scanned stack runs one
traced body for every layer, so its adapters also fold in the bits of their own layer's first
``A`` entry, which differ between layers. Enter the context inside the function you jit.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from astrojax.config import LORA_TARGETS, ConfigError, LoRAConfig
from astrojax.config.run_checks import check_lora_targets
from astrojax.models.layers import Attention, SwiGLU
from astrojax.models.mixers import MambaBlock

# target -> (module type, the weights it adapts, how many leading dims of each are inputs)
TARGETS: dict[str, tuple[type, tuple[str, ...], int]] = {
    "q": (Attention, ("w_dnh",), 1),
    "k": (Attention, ("w_dkh_k",), 1),
    "v": (Attention, ("w_dkh_v",), 1),
    "o": (Attention, ("w_nhd",), 2),
    "gate": (SwiGLU, ("w_df_gate",), 1),
    "up": (SwiGLU, ("w_df_up",), 1),
    "down": (SwiGLU, ("w_fd_down",), 1),
    "in_proj": (MambaBlock, ("w_de_x", "w_de_z"), 1),
    "out_proj": (MambaBlock, ("w_ed_out",), 1),
}
assert tuple(TARGETS) == LORA_TARGETS  # the config lists them without importing JAX

STACK_AXIS = "layers"  # the logical name of a scanned stack's leading axis (transformer.py)

_DROPOUT_KEY: contextvars.ContextVar = contextvars.ContextVar("lora_dropout_key", default=None)


@contextlib.contextmanager
def dropout_rng(key: jax.Array):
    """Adapters with ``dropout > 0`` drop their input, with masks drawn from ``key``, while
    this context is open (see the module docstring); elsewhere they are deterministic."""
    token = _DROPOUT_KEY.set(key)
    try:
        yield
    finally:
        _DROPOUT_KEY.reset(token)


def _axes(weight: nnx.Variable) -> tuple[str | None, ...]:
    metadata = weight.get_metadata()
    axes = metadata.get("out_sharding") or metadata.get("sharding_names")
    return tuple(axes) if axes else (None,) * weight.ndim


def _uniform(bound: float):
    def init(key, shape, dtype):
        return jax.random.uniform(key, shape, dtype, -bound, bound)
    return init


class LoRA(nnx.Module):
    """The adapter of one weight (or of one scanned stack of weights): ``lora_a`` spans the
    weight's ``n_in`` input dimensions and the rank, ``lora_b`` the rank and its output
    dimensions. Called by ``layers.project`` as ``adapter(x, spec, y)``: returns ``y`` plus
    ``scale * B(A(dropout(x)))`` for the projection ``y = einsum(spec, x, W)``, or ``y`` itself
    once merged into ``W``."""

    def __init__(self, weight: nnx.Variable, weight_name: str, target: str, n_in: int, *,
                 rank: int, alpha: float, dropout: float, salt: int, rngs: nnx.Rngs):
        shape, axes = tuple(weight.shape), _axes(weight)
        lead = 1 if axes[0] == STACK_AXIS else 0
        ins, outs = shape[lead:lead + n_in], shape[lead + n_in:]
        if not outs:
            raise ValueError(f"{weight_name} {shape} has no output dimension after {n_in} "
                             "input ones")
        self.weight_name, self.target, self.n_in = weight_name, target, n_in
        self.rank, self.alpha, self.scale = rank, float(alpha), alpha / rank
        self.dropout, self.salt, self.stacked = float(dropout), salt, bool(lead)
        self.merged = False
        stack, stack_axes = shape[:lead], axes[:lead]
        init_a = nnx.with_partitioning(_uniform(math.prod(ins) ** -0.5),
                                       stack_axes + axes[lead:lead + n_in] + (None,))
        init_b = nnx.with_partitioning(nnx.initializers.zeros,
                                       stack_axes + (None,) + axes[lead + n_in:])
        self.lora_a = nnx.LoRAParam(init_a(rngs.params(), stack + ins + (rank,), jnp.float32))
        self.lora_b = nnx.LoRAParam(init_b(rngs.params(), stack + (rank,) + outs, jnp.float32))

    def __call__(self, x: jax.Array, spec: str, y: jax.Array) -> jax.Array:
        if self.merged:
            return y
        lhs, out_sub = spec.replace(" ", "").split("->")
        x_sub, w_sub = lhs.split(",")
        ins, outs = w_sub[:self.n_in], w_sub[self.n_in:]
        r = next(c for c in "rRzZ" if c not in spec)
        rest = "".join(c for c in x_sub if c not in ins)
        a, b = self.lora_a[...], self.lora_b[...]
        x = self._dropout(x, a)
        low = jnp.einsum(f"{x_sub},{ins}{r}->{rest}{r}", x, a.astype(x.dtype)) * self.scale
        delta = jnp.einsum(f"{rest}{r},{r}{outs}->{out_sub}", low, b.astype(x.dtype))
        return y + delta.astype(y.dtype)

    def _dropout(self, x: jax.Array, a: jax.Array) -> jax.Array:
        key = _DROPOUT_KEY.get()
        if key is None or self.dropout == 0.0:
            return x
        key = jax.random.fold_in(key, self.salt)
        if self.stacked:  # one traced body serves every layer: tell them apart by their A
            first = jax.lax.stop_gradient(a.reshape(-1)[0]).astype(jnp.float32)
            key = jax.random.fold_in(key, jax.lax.bitcast_convert_type(first, jnp.uint32))
        keep = jax.random.bernoulli(key, 1.0 - self.dropout, x.shape)
        return jnp.where(keep, x / (1.0 - self.dropout), jnp.zeros_like(x))

    def delta(self, shape: Sequence[int]) -> jax.Array:
        """float32 ``scale * A @ B`` in the weight's layout ``shape``."""
        a, b = self.lora_a[...], self.lora_b[...]
        lead = a.shape[:1] if self.stacked else ()
        a = a.reshape(*lead, -1, self.rank)
        b = b.reshape(*lead, self.rank, -1)
        return (jnp.matmul(a, b) * self.scale).reshape(shape)


@dataclasses.dataclass(frozen=True)
class Adapted:
    """One adapted weight: the module holding it, its name, its adapter and its path."""

    path: tuple
    module: nnx.Module
    weight_name: str
    adapter: LoRA

    @property
    def weight(self) -> nnx.Variable:
        return getattr(self.module, self.weight_name)


def apply_lora(model: nnx.Module, cfg: LoRAConfig, *, rngs: nnx.Rngs) -> list[str]:
    """Attaches adapters of ``cfg.rank`` to every weight of ``model`` that ``cfg.targets``
    names (in place), and returns the adapted weights' paths. A target that matches no weight
    of the model is a ConfigError naming the ones it has."""
    check_lora_targets(cfg.targets)
    if cfg.rank < 1:
        raise ConfigError("lora.rank", f"must be >= 1 to attach adapters, got {cfg.rank}")
    modules = list(nnx.iter_modules(model))
    if any(isinstance(m, LoRA) for _, m in modules):
        raise ValueError(f"this {type(model).__name__} has adapters already")
    adapted, salt = [], 0
    for target in cfg.targets:
        kind, names, n_in = TARGETS[target]
        hits = [(path, m) for path, m in modules if isinstance(m, kind)]
        if not hits:
            present = [t for t, (k, _, _) in TARGETS.items()
                       if any(isinstance(m, k) for _, m in modules)]
            raise ConfigError("lora.targets", f"{target!r} matches no weight of this "
                                              f"{type(model).__name__} (it has "
                                              f"{', '.join(present) or 'none of them'})")
        for path, module in hits:
            for name in names:
                salt += 1
                adapter = LoRA(getattr(module, name), name, target, n_in, rank=cfg.rank,
                               alpha=cfg.alpha, dropout=cfg.dropout, salt=salt, rngs=rngs)
                setattr(module, f"{name}_lora", adapter)
                adapted.append("/".join(map(str, (*path, name))))
    return adapted


def adapters(model: nnx.Module) -> Iterator[Adapted]:
    """Every adapted weight of ``model``, in a fixed order."""
    for path, adapter in nnx.iter_modules(model):
        if isinstance(adapter, LoRA):
            module = model
            for key in path[:-1]:
                module = module[key] if isinstance(key, int) else getattr(module, key)
            yield Adapted(tuple(path[:-1]), module, adapter.weight_name, adapter)


def _fold(model: nnx.Module, sign: float, merged: bool) -> None:
    for item in adapters(model):
        if item.adapter.merged == merged:
            continue
        weight = item.weight
        delta = item.adapter.delta(weight.shape)
        weight[...] = (weight[...].astype(jnp.float32) + sign * delta).astype(weight.dtype)
        item.adapter.merged = merged


def merge(model: nnx.Module) -> nnx.Module:
    """Folds every adapter into its weight, ``W += alpha / rank * A @ B`` (in place; the
    adapters stay, marked merged, and no longer add anything). Returns ``model``."""
    _fold(model, 1.0, True)
    return model


def unmerge(model: nnx.Module) -> nnx.Module:
    """Undoes :func:`merge`: ``W -= alpha / rank * A @ B`` and the adapters apply again (the
    weights come back to within float32 rounding of the base). Returns ``model``."""
    _fold(model, -1.0, False)
    return model


def merge_and_unload(model: nnx.Module) -> nnx.Module:
    """A copy of ``model`` with every adapter merged into its weight and removed: the plain
    model (PEFT's ``merge_and_unload``), ``model`` itself untouched."""
    plain = merge(nnx.clone(model))
    for item in list(adapters(plain)):
        delattr(item.module, f"{item.weight_name}_lora")
    return plain


def merged_params(model: nnx.Module) -> nnx.State:
    """The merged model's parameters, the tree of the plain model (a ``Transformer`` without
    LoRA): what to save, export or serve."""
    return nnx.state(merge_and_unload(model), nnx.Param)


def adapter_state(model: nnx.Module) -> nnx.State:
    """The adapters' parameters alone (``nnx.LoRAParam``): what trains."""
    return nnx.state(model, nnx.LoRAParam)


def _description(model: nnx.Module) -> dict:
    items = list(adapters(model))
    if not items:
        raise ValueError(f"this {type(model).__name__} has no adapters (apply_lora first)")
    first = items[0].adapter
    return {"rank": first.rank, "alpha": first.alpha,
            "targets": sorted({i.adapter.target for i in items}),
            "weights": ["/".join(map(str, (*i.path, i.weight_name))) for i in items]}


def save_adapters(model: nnx.Module, path: str | Path) -> Path:
    """Writes the adapters alone (Orbax, any mesh) and their settings (JSON) to the new
    folder ``path``; the frozen weights are not written. Returns the folder."""
    path = Path(path).absolute()
    if path.exists():
        raise FileExistsError(f"{path} exists; save adapters to a new folder")
    if any(i.adapter.merged for i in adapters(model)):
        raise ValueError("the adapters are merged into the weights; unmerge(model) first")
    arrays = nnx.to_pure_dict(adapter_state(model))
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
        checkpointer.save(path, ocp.args.Composite(
            adapters=ocp.args.StandardSave(arrays),
            lora=ocp.args.JsonSave(_description(model))))
    return path


def load_adapters(model: nnx.Module, path: str | Path) -> nnx.Module:
    """Loads adapters written by :func:`save_adapters` into ``model``, which must carry the
    same adapters (``apply_lora`` with the same rank and targets) on the same weights; each
    array lands on the sharding of the one it replaces. A mismatch is a ValueError naming it."""
    path = Path(path).absolute()
    if not path.is_dir():
        raise FileNotFoundError(f"no saved adapters at {path}")
    if any(i.adapter.merged for i in adapters(model)):
        raise ValueError("the adapters are merged into the weights; unmerge(model) first")
    mine = _description(model)
    state = adapter_state(model)
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                          nnx.to_pure_dict(state))
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
        saved = checkpointer.restore(path, ocp.args.Composite(lora=ocp.args.JsonRestore()))
        theirs = saved["lora"]
        for key in ("rank", "alpha", "targets", "weights"):
            if theirs.get(key) != mine[key]:
                raise ValueError(f"{path} holds adapters with {key}={theirs.get(key)!r}, but "
                                 f"this model's have {key}={mine[key]!r}")
        restored = checkpointer.restore(path, ocp.args.Composite(
            adapters=ocp.args.StandardRestore(target)))["adapters"]
    nnx.replace_by_pure_dict(state, restored)
    nnx.update(model, state)
    return model


def count(model: nnx.Module) -> dict[str, int]:
    """Parameter counts: ``trainable`` (the adapters), ``frozen`` (every other parameter)."""
    def size(state):
        return int(sum(np.prod(x.shape) for x in jax.tree.leaves(state)))
    return {"trainable": size(nnx.state(model, nnx.LoRAParam)),
            "frozen": size(nnx.state(model, nnx.All(nnx.Param, nnx.Not(nnx.LoRAParam))))}


__all__ = ["TARGETS", "Adapted", "LoRA", "adapter_state", "adapters", "apply_lora",
           "count", "dropout_rng", "load_adapters", "merge",
           "merge_and_unload", "merged_params", "save_adapters", "unmerge"]
