"""The frozen weights of a LoRA run (``config.lora``): read from its base, checked against the
run's model, placed on the run's shardings.

The base is the workdir of a run of the same task and model (its newest checkpoint, or the
step a LoRA checkpoint records). A Hugging Face folder (``config.json`` beside safetensors) is
recognised and refused in one line: the tasks train on byte tokens, not the folder's tokenizer
(``astrojax.models.hf.from_hf`` + ``lora.apply_lora`` adapt one from Python; a task that reads
the folder's tokenizer would load it here through ``from_hf``). The weights are restored by
Orbax straight onto the target shardings (each device reads its shards), never gathered on
one host.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jax

from astrojax.config import Config, ConfigError, to_dict
from astrojax.train.checkpoint import Checkpointer, path_key
from astrojax.train.workdir import flatten

log = logging.getLogger(__name__)

# Model keys a base may differ in without changing the function its weights compute.
MODEL_KEYS_THAT_MAY_DIFFER = ("attention_impl", "remat_policy", "dtype", "max_seq_len")


def base_kind(base: str) -> str:
    """``"workdir"`` or ``"hf"`` for the folder ``base``; ConfigError (``lora.base``) for
    anything else."""
    path = Path(base)
    if (path / "checkpoints").is_dir():
        return "workdir"
    if (path / "config.json").is_file():
        return "hf"
    what = "does not exist" if not path.exists() else "holds neither a checkpoints/ folder " \
                                                      "(a training workdir) nor a config.json " \
                                                      "(a Hugging Face model)"
    raise ConfigError("lora.base", f"{base} {what}")


def check_base(cfg: Config) -> None:
    """ConfigError unless ``config.lora.base`` is a run this one can fine-tune: same task and
    model config, not itself a LoRA run (reads the base's saved config only: cheap enough to
    call before anything else starts)."""
    if base_kind(cfg.lora.base) == "hf":
        _no_hf(cfg.lora.base)
    checkpointer = Checkpointer(Path(cfg.lora.base).absolute() / "checkpoints", max_to_keep=1,
                                async_save=False)
    try:
        step = checkpointer.latest_step()
        if step is None:
            raise ConfigError("lora.base", f"{cfg.lora.base} has no checkpoint")
        _check_base(cfg, checkpointer.saved_config(step), cfg.lora.base, step)
    finally:
        checkpointer.manager.close()


def _no_hf(base: str):
    raise ConfigError("lora.base", f"{base} is a Hugging Face folder, but the training tasks "
                                   "read byte tokens, not its tokenizer; in Python, adapt it "
                                   "with astrojax.models.hf.from_hf and lora.apply_lora")


def load_base(cfg: Config, target: Any, step: int | None = None) -> tuple[Any, dict[str, Any]]:
    """The base's parameters restored onto ``target`` (the frozen part of the run's abstract
    params, ``jax.ShapeDtypeStruct`` leaves carrying shardings) and where they came from,
    ``{"lora_base": {"path": ..., "step": ...}}`` (saved with the run's checkpoints, so a
    resume or an inference reads the same step). ``step``: that step, default the newest."""
    base = cfg.lora.base
    if base_kind(base) == "hf":
        _no_hf(base)
    directory = Path(base).absolute() / "checkpoints"
    checkpointer = Checkpointer(directory, max_to_keep=1, async_save=False)
    try:
        step = checkpointer.latest_step() if step is None else step
        if step is None or step not in checkpointer.all_steps():
            raise ConfigError("lora.base", f"{base} has no checkpoint"
                                           + ("" if step is None else f" {step}"))
        saved = checkpointer.saved_config(step)
        _check_base(cfg, saved, base, step)
        _check_shapes(checkpointer.saved_shapes(step), target, base, step)
        params, _ = checkpointer.restore_params(step, target)
    finally:
        checkpointer.manager.close()
    log.info("LoRA: frozen weights from %s (step %d)", base, step)
    return params, {"lora_base": {"path": str(Path(base).absolute()), "step": int(step)}}


def _check_base(cfg: Config, saved: dict[str, Any], base: str, step: int) -> None:
    where = f"{base} (step {step})"
    if saved.get("task") != cfg.task:
        raise ConfigError("lora.base", f"{where} was trained for task {saved.get('task')!r}, "
                                       f"this run is {cfg.task!r}")
    if saved.get("lora", {}).get("rank", 0):
        raise ConfigError("lora.base", f"{where} is itself a LoRA run (its checkpoints hold "
                                       "adapters only); use its base, or a run trained in full")
    theirs, ours = flatten(saved.get("model", {})), flatten(to_dict(cfg.model))
    differ = [k for k in sorted(set(theirs) | set(ours))
              if theirs.get(k) != ours.get(k) and k not in MODEL_KEYS_THAT_MAY_DIFFER]
    if differ:
        listing = ", ".join(f"model.{k}={ours.get(k)!r} (the base has {theirs.get(k)!r})"
                            for k in differ)
        raise ConfigError(f"model.{differ[0]}", f"differs from the LoRA base {where}: {listing}")


def _check_shapes(saved: dict[tuple[str, ...], tuple[int, ...]], target: Any, base: str,
                  step: int) -> None:
    for path, leaf in jax.tree_util.tree_leaves_with_path(target):
        key = path_key(path)
        if saved.get(key) != tuple(leaf.shape):
            raise ConfigError("lora.base", f"{base} (step {step}) has parameter "
                                           f"{'/'.join(key)} of shape {saved.get(key)}, the "
                                           f"model needs {tuple(leaf.shape)}")
