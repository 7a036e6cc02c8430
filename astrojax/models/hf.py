"""Hugging Face checkpoints: a Llama 2/3, Mistral or Qwen2 folder into our Transformer
(:func:`from_hf`) and our Transformer out to such a folder (:func:`to_hf`).

A folder is ``config.json`` plus ``model.safetensors``, or shards ``model-0000i-of-0000n``
with ``model.safetensors.index.json``. The config is read strictly: a value we do not
implement (another ``model_type``, ``hidden_act``, a bias on ``o_proj``, a RoPE type, layers
that mix full and sliding attention) is refused with one line naming the key and value, never
approximated. Weights are read tensor by tensor (``safetensors.safe_open``, numpy; bfloat16
through ml_dtypes), converted to our layout and put on their sharding at once, so the host holds
one parameter at a time (with scanned layers, one parameter of every layer), never the model
twice.

Layouts. HF ``Linear`` weights are ``[out, in]``; ours are ``[in..., out...]`` with heads split
out: ``q_proj [n*h, d] -> w_dnh [d, n, h]``, ``k/v_proj [k*h, d] -> w_dkh_k/v [d, k, h]``,
``o_proj [d, n*h] -> w_nhd [n, h, d]``, ``gate/up_proj [f, d] -> w_df_gate/up [d, f]``,
``down_proj [d, f] -> w_fd_down [f, d]``, ``lm_head [v, d] -> w_dv_out [d, v]``; the embedding
``[v, d]`` and the norm scales are the same, Qwen2's q/k/v biases ``[n*h] -> [n, h]``. RoPE is
the rotate-half layout in both (``layers.apply_rope``), so q and k need no permutation. HF's
sliding window ``W`` counts the token itself; ours is ``W - 1``
(:func:`~astrojax.models.transformer.sliding_window_from_hf`).
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Any

import jax
import numpy as np
import safetensors
import safetensors.numpy
from flax import nnx

from astrojax.config import DEFAULT_LOGICAL_AXIS_RULES, DTYPES, TransformerConfig
from astrojax.models.layers import Attention, to_dtype
from astrojax.models.transformer import (
    Transformer,
    sliding_window_from_hf,
    sliding_window_to_hf,
)
from astrojax.sharding import Rules, check_divisible, state_shardings

ARCHITECTURES = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
                 "qwen2": "Qwen2ForCausalLM"}
# transformers' class defaults for keys a config.json may leave out (transformers 5.24).
_MAX_POSITIONS = {"llama": 2048, "mistral": 4096 * 32, "qwen2": 32768}
_ROPE_TYPES = {"default": "none", "linear": "linear", "dynamic": "dynamic", "llama3": "llama3"}

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


class HFCheckpointError(ValueError):
    """A Hugging Face folder we cannot read: the message names the file, and the key or tensor."""


# ----------------------------------------------------------------------------------------------
# config.json


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; HFCheckpointError naming the file if missing or broken."""
    if not path.is_file():
        raise HFCheckpointError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise HFCheckpointError(f"{path}: not readable JSON ({err})") from None
    if not isinstance(data, dict):
        raise HFCheckpointError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def config_from_hf(path: str | Path, *, dtype: str = "float32", param_dtype: str = "auto",
                   scan_layers: bool = True, attention_impl: str = "auto",
                   remat_policy: str = "none") -> TransformerConfig:
    """Our :class:`TransformerConfig` for the folder's ``config.json`` (see :func:`from_hf`)."""
    where = Path(path) / "config.json"
    hf = read_json(where)

    def get(key, default=None, required=False):
        if required and hf.get(key) is None:
            raise HFCheckpointError(f"{where}: no {key!r}")
        value = hf.get(key)
        return default if value is None else value

    def refuse(key, value, why):
        raise HFCheckpointError(f"{where}: {key}={value!r} is not supported ({why})")

    model_type = get("model_type", required=True)
    if model_type not in ARCHITECTURES:
        refuse("model_type", model_type, f"expected one of {', '.join(ARCHITECTURES)}")
    if get("hidden_act", "silu") != "silu":
        refuse("hidden_act", hf["hidden_act"], "the MLP is SwiGLU with silu")
    if model_type == "llama":
        for key, what in (("attention_bias", "q/k/v/o_proj"), ("mlp_bias", "the MLP")):
            if get(key, False):
                refuse(key, hf[key], f"biases on {what}; only Qwen2's q/k/v biases are "
                                     "implemented")
    d_model = get("hidden_size", required=True)
    num_heads = get("num_attention_heads", required=True)
    num_layers = get("num_hidden_layers", required=True)
    max_positions = get("max_position_embeddings", _MAX_POSITIONS[model_type])
    rope = _rope_fields(hf, where, max_positions)
    if param_dtype == "auto":
        stored = get("dtype", get("torch_dtype", "float32"))
        param_dtype = stored if stored in DTYPES else "float32"
    cfg = TransformerConfig(
        vocab_size=get("vocab_size", required=True), d_model=d_model, num_layers=num_layers,
        num_heads=num_heads, num_kv_heads=get("num_key_value_heads", num_heads),
        head_dim=get("head_dim", d_model // num_heads),
        mlp_dim=get("intermediate_size", required=True), max_seq_len=max_positions,
        norm_eps=float(get("rms_norm_eps", 1e-6)),
        tie_embeddings=bool(get("tie_word_embeddings", False)),
        attention_impl=attention_impl, sliding_window=_sliding_window(hf, where, num_layers),
        scan_layers=scan_layers, remat_policy=remat_policy, param_dtype=param_dtype,
        dtype=dtype, qkv_bias=model_type == "qwen2", **rope)
    if cfg.num_heads % cfg.num_kv_heads:
        refuse("num_key_value_heads", cfg.num_kv_heads,
               f"must divide num_attention_heads={cfg.num_heads}")
    return cfg


def _rope_fields(hf: dict, where: Path, max_positions: int) -> dict[str, Any]:
    """rope_theta and the rope_scaling fields of our config from HF's ``rope_parameters``
    (transformers >= 5) or ``rope_theta`` + ``rope_scaling`` (before; the type under
    ``rope_type`` since 4.45, ``type`` before)."""
    params = hf.get("rope_scaling") or hf.get("rope_parameters") or {}
    key = "rope_scaling" if hf.get("rope_scaling") else "rope_parameters"
    if not isinstance(params, dict):
        raise HFCheckpointError(f"{where}: {key} must be an object, got {params!r}")
    theta = float(params.get("rope_theta") or hf.get("rope_theta") or 10_000.0)
    kind = params.get("rope_type", params.get("type", "default"))
    if kind not in _ROPE_TYPES:
        raise HFCheckpointError(f"{where}: {key}.rope_type={kind!r} is not supported (expected "
                                f"one of {', '.join(_ROPE_TYPES)})")
    for extra, default in (("partial_rotary_factor", 1.0), ("attention_factor", 1.0)):
        value = params.get(extra, hf.get(extra) if extra == "partial_rotary_factor" else None)
        if value is not None and value != default:
            raise HFCheckpointError(f"{where}: {extra}={value!r} is not supported (expected "
                                    f"{default})")
    fields = dict(rope_theta=theta, rope_scaling=_ROPE_TYPES[kind])
    if kind == "default":
        return fields

    def number(name):
        if params.get(name) is None:
            raise HFCheckpointError(f"{where}: {key} of type {kind!r} has no {name!r}")
        return params[name]

    fields["rope_scaling_factor"] = float(number("factor"))
    if kind == "dynamic":  # transformers stretches from max_position_embeddings
        fields["rope_original_max_len"] = int(max_positions)
    if kind == "llama3":
        fields.update(rope_low_freq_factor=float(number("low_freq_factor")),
                      rope_high_freq_factor=float(number("high_freq_factor")),
                      rope_original_max_len=int(params.get("original_max_position_embeddings")
                                                or max_positions))
    return fields


def _sliding_window(hf: dict, where: Path, num_layers: int) -> int:
    """Our window (0: none). Mistral windows every layer when ``sliding_window`` is set (class
    default 4096); Qwen2 only with ``use_sliding_window``, and then the layers its
    ``layer_types`` (else: index >= ``max_window_layers``) name. One window for all layers or
    none is what our stack has, so a mix is refused."""
    model_type = hf["model_type"]
    if model_type == "llama":
        return 0
    window = hf.get("sliding_window", 4096)
    if model_type == "qwen2":
        if not hf.get("use_sliding_window", False):
            return 0
        types = hf.get("layer_types")
        if types is None:
            first = hf.get("max_window_layers", 28)
            types = ["sliding_attention" if i >= first else "full_attention"
                     for i in range(num_layers)]
        if len(set(types)) > 1:
            raise HFCheckpointError(
                f"{where}: layer_types mixes full and sliding attention (max_window_layers="
                f"{hf.get('max_window_layers')!r}); is not supported (one window for every layer)")
        if types and types[0] == "full_attention":
            return 0
    try:
        return sliding_window_from_hf(window)
    except ValueError as err:
        raise HFCheckpointError(f"{where}: sliding_window={window!r} is not supported "
                                f"({err})") from None


# ----------------------------------------------------------------------------------------------
# The tensors of a folder


class _Tensors:
    """Tensor name -> the file that holds it, over one ``model.safetensors`` or an index of
    shards; files are opened when first needed and read one tensor at a time."""

    def __init__(self, folder: Path, stack: contextlib.ExitStack):
        self.folder, self._stack, self._open = folder, stack, {}
        index, single = folder / INDEX_FILE, folder / SINGLE_FILE
        if index.exists():
            weight_map = read_json(index).get("weight_map")
            if not isinstance(weight_map, dict):
                raise HFCheckpointError(f"{index}: no 'weight_map' object")
            self.file_of = {name: folder / file for name, file in weight_map.items()}
        elif single.exists():
            self.file_of = {name: single for name in self._handle(single).keys()}
        else:
            raise HFCheckpointError(f"{folder}: no {SINGLE_FILE} or {INDEX_FILE} (only "
                                    "safetensors are read; pytorch_model.bin is not)")
        for file in sorted(set(self.file_of.values())):
            if not file.is_file():
                raise HFCheckpointError(f"{file}: no such file (named in {INDEX_FILE})")

    def _handle(self, file: Path):
        if file not in self._open:
            try:
                self._open[file] = self._stack.enter_context(
                    safetensors.safe_open(str(file), framework="numpy"))
            except (safetensors.SafetensorError, OSError) as err:
                raise HFCheckpointError(f"{file}: not a readable safetensors file "
                                        f"({err})") from None
        return self._open[file]

    def get(self, name: str) -> np.ndarray:
        if name not in self.file_of:
            raise HFCheckpointError(f"{self.folder}: no tensor {name!r} in the checkpoint")
        file = self.file_of[name]
        try:
            return self._handle(file).get_tensor(name)
        except (safetensors.SafetensorError, OSError, KeyError) as err:
            raise HFCheckpointError(f"{file}: cannot read tensor {name!r} ({err})") from None


# ----------------------------------------------------------------------------------------------
# Our parameters <-> HF tensors
#
# How each parameter converts: "same" (identical array), "flat" (HF's is ours flattened: the
# biases), or an int k for a Linear weight: HF's [out, in] is ours reshaped to
# [prod(first k dims), rest] and transposed.

_IN_BLOCK = {
    ("attn_norm", "scale_d"): ("input_layernorm.weight", "same"),
    ("attn", "w_dnh"): ("self_attn.q_proj.weight", 1),
    ("attn", "w_dkh_k"): ("self_attn.k_proj.weight", 1),
    ("attn", "w_dkh_v"): ("self_attn.v_proj.weight", 1),
    ("attn", "w_nhd"): ("self_attn.o_proj.weight", 2),
    ("attn", "b_nh_q"): ("self_attn.q_proj.bias", "flat"),
    ("attn", "b_kh_k"): ("self_attn.k_proj.bias", "flat"),
    ("attn", "b_kh_v"): ("self_attn.v_proj.bias", "flat"),
    ("mlp_norm", "scale_d"): ("post_attention_layernorm.weight", "same"),
    ("mlp", "w_df_gate"): ("mlp.gate_proj.weight", 1),
    ("mlp", "w_df_up"): ("mlp.up_proj.weight", 1),
    ("mlp", "w_fd_down"): ("mlp.down_proj.weight", 1),
}
_TOP = {
    ("embedding_vd",): ("model.embed_tokens.weight", "same"),
    ("final_norm", "scale_d"): ("model.norm.weight", "same"),
    ("w_dv_out",): ("lm_head.weight", 1),
}


def _hf_shape(shape: tuple[int, ...], how) -> tuple[int, ...]:
    if how == "same":
        return tuple(shape)
    if how == "flat":
        return (math.prod(shape),)
    return (math.prod(shape[how:]), math.prod(shape[:how]))


def _to_ours(array: np.ndarray, shape: tuple[int, ...], how) -> np.ndarray:
    return array.reshape(shape) if how in ("same", "flat") else array.T.reshape(shape)


def _to_hf(array: np.ndarray, how) -> np.ndarray:
    if how == "same":
        return array
    if how == "flat":
        return array.reshape(-1)
    return np.ascontiguousarray(array.reshape(math.prod(array.shape[:how]), -1).T)


def _hf_names(path: tuple, scanned: bool, num_layers: int) -> tuple[list[str], Any]:
    """(the HF tensors of our parameter at ``path``, one per layer it stacks; how they
    convert)."""
    if path[0] == "blocks":
        layers = range(num_layers) if scanned else [path[1]]
        name, how = _IN_BLOCK[path[1:] if scanned else path[2:]]
        return [f"model.layers.{i}.{name}" for i in layers], how
    name, how = _TOP[path]
    return [name], how


def _ignored(name: str, cfg: TransformerConfig) -> bool:
    """Tensors a checkpoint may carry that the model does not use: old Llama files' rotary
    tables, and the output projection of a tied model (transformers ties it over the
    embedding too)."""
    return name.endswith("rotary_emb.inv_freq") or (cfg.tie_embeddings and
                                                     name == "lm_head.weight")


# ----------------------------------------------------------------------------------------------
# Import


def from_hf(path: str | Path, mesh: jax.sharding.Mesh | None = None, *, dtype: str = "float32",
            param_dtype: str = "auto", rules: Rules = DEFAULT_LOGICAL_AXIS_RULES,
            scan_layers: bool = True, attention_impl: str = "auto",
            remat_policy: str = "none") -> Transformer:
    """The Transformer of a local Hugging Face folder (Llama 2/3, Mistral, Qwen2), its
    parameters on ``mesh`` (sharded by their logical axes under ``rules``) or on the first
    device. ``model(tokens_bt)`` gives float32 logits ``[b, t, vocab]`` equal to transformers'.

    ``dtype``: compute dtype; ``param_dtype``: stored dtype, ``"auto"`` for the checkpoint's
    own (config.json ``dtype``/``torch_dtype``). ``scan_layers`` stacks the layers (one
    compiled block) or keeps them apart; neither changes the numbers."""
    folder = Path(path)
    cfg = config_from_hf(folder, dtype=dtype, param_dtype=param_dtype, scan_layers=scan_layers,
                         attention_impl=attention_impl, remat_policy=remat_policy)
    with nnx.use_eager_sharding(False):
        abstract = nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0)))
    graphdef, params = nnx.split(abstract, nnx.Param)
    if mesh is None:
        only = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        shardings = jax.tree.map(lambda _: only, params)
    else:
        check_divisible(abstract, rules, dict(mesh.shape), section=cfg)
        shardings = state_shardings(params, mesh, rules)
    flat_shardings = dict(nnx.to_flat_state(shardings))

    used = set()
    with contextlib.ExitStack() as stack:
        tensors = _Tensors(folder, stack)
        loaded = []
        for ours, variable in nnx.to_flat_state(params):
            target = variable.get_value()
            names, how = _hf_names(ours, cfg.scan_layers, cfg.num_layers)
            stacked = ours[0] == "blocks" and cfg.scan_layers
            layer_shape = target.shape[1:] if stacked else target.shape
            # Scanned: one parameter of every layer, filled layer by layer.
            host = np.empty(target.shape, target.dtype) if stacked else None
            for i, name in enumerate(names):
                array = tensors.get(name)
                expected = _hf_shape(layer_shape, how)
                if tuple(array.shape) != expected:
                    raise HFCheckpointError(
                        f"{tensors.file_of[name]}: tensor {name!r} has shape {tuple(array.shape)};"
                        f" config.json implies {expected}")
                if stacked:
                    host[i] = _to_ours(array, layer_shape, how)
                else:
                    host = np.asarray(_to_ours(array, layer_shape, how), target.dtype)
                used.add(name)
                del array
            sharding = flat_shardings[ours]
            sharding = sharding.get_value() if isinstance(sharding, nnx.Variable) else sharding
            loaded.append((ours, variable.replace(jax.make_array_from_callback(
                host.shape, sharding, lambda index, host=host: host[index]))))
            del host
        unused = sorted(n for n in tensors.file_of if n not in used and not _ignored(n, cfg))
    if unused:
        more = f" and {len(unused) - 3} more" if len(unused) > 3 else ""
        raise HFCheckpointError(f"{folder}: tensors the model has no place for: "
                                f"{', '.join(unused[:3])}{more} (config.json does not match the "
                                "weights, or the architecture has parts we do not implement)")
    return nnx.merge(graphdef, nnx.from_flat_state(loaded))


# ----------------------------------------------------------------------------------------------
# Export


def hf_config(model: Transformer, *, model_type: str | None = None,
              dtype: str = "float32", **token_ids: int | list[int] | None) -> dict[str, Any]:
    """The ``config.json`` of ``model`` for transformers. ``model_type``: ``llama``,
    ``mistral`` or ``qwen2``; by default qwen2 if the model has q/k/v biases, else mistral if
    it has a sliding window, else llama. ``token_ids``: ``bos_token_id``, ``eos_token_id``,
    ``pad_token_id`` to record."""
    blocks = _blocks(model)
    attn = blocks[0].attn
    for i, block in enumerate(blocks):
        if type(block.attn) is not Attention:  # not LinearAttention (a subclass), not Mamba
            raise ValueError(f"layer {i}'s sequence mixer is {type(block.attn).__name__}; "
                             "Llama, Mistral and Qwen2 have softmax attention in every layer")
    window = attn.window[0] if attn.window else 0
    if model_type is None:
        model_type = "qwen2" if attn.qkv_bias else "mistral" if window else "llama"
    if model_type not in ARCHITECTURES:
        raise ValueError(f"model_type={model_type!r}; expected one of {', '.join(ARCHITECTURES)}")
    if attn.qkv_bias and model_type != "qwen2":
        raise ValueError(f"model_type={model_type!r} has no q/k/v biases; this model has them "
                         "(use qwen2)")
    if window and model_type == "llama":
        raise ValueError("model_type='llama' has no sliding window; this model has one (use "
                         "mistral or qwen2)")
    unknown = set(token_ids) - {"bos_token_id", "eos_token_id", "pad_token_id"}
    if unknown:
        raise TypeError(f"unknown arguments {sorted(unknown)}")
    d, n, h = _abstract_shape(attn.w_dnh, model)
    k = _abstract_shape(attn.w_dkh_k, model)[1]
    scaling = model.rope_scaling
    max_positions = model.max_seq_len
    rope = {"rope_type": "default", "rope_theta": model.rope_theta}
    if scaling is not None:
        rope.update(rope_type=scaling.kind, factor=scaling.factor)
        if scaling.kind == "dynamic":
            max_positions = scaling.original_max_len  # what transformers stretches from
        if scaling.kind == "llama3":
            rope.update(low_freq_factor=scaling.low_freq_factor,
                        high_freq_factor=scaling.high_freq_factor,
                        original_max_position_embeddings=scaling.original_max_len)
    config = {
        "architectures": [ARCHITECTURES[model_type]], "model_type": model_type,
        "vocab_size": model.embedding_vd.get_value().shape[0], "hidden_size": d,
        "intermediate_size": _abstract_shape(blocks[0].mlp.w_df_gate, model)[1],
        "num_hidden_layers": len(blocks) if not model.scan_layers else
        model.blocks.attn.w_dnh.get_value().shape[0],
        "num_attention_heads": n, "num_key_value_heads": k, "head_dim": h,
        "hidden_act": "silu", "max_position_embeddings": max_positions,
        "rms_norm_eps": blocks[0].attn_norm.eps, "tie_word_embeddings": model.tie_embeddings,
        "attention_bias": False, "mlp_bias": False,
        # transformers >= 5 reads rope_parameters; older ones rope_theta and rope_scaling.
        "rope_theta": model.rope_theta,
        "rope_scaling": None if scaling is None else {
            "type": scaling.kind, **{k: v for k, v in rope.items() if k != "rope_theta"}},
        "rope_parameters": rope, "dtype": dtype, "torch_dtype": dtype,
    }
    if model_type == "mistral":
        config["sliding_window"] = sliding_window_to_hf(window)
    if model_type == "qwen2":
        del config["attention_bias"], config["mlp_bias"]
        config.update(use_sliding_window=bool(window), sliding_window=sliding_window_to_hf(window),
                      max_window_layers=0)
    config.update({key: value for key, value in token_ids.items() if value is not None})
    return config


def _blocks(model: Transformer) -> list:
    return [model.blocks] if model.scan_layers else list(model.blocks)


def _abstract_shape(variable, model: Transformer) -> tuple[int, ...]:
    """A block parameter's shape for one layer."""
    shape = tuple(variable.get_value().shape)
    return shape[1:] if model.scan_layers else shape


def to_hf(model: Transformer, path: str | Path, *, model_type: str | None = None,
          dtype: str | None = None, max_shard_bytes: int = 5 * 2**30,
          **token_ids: int | list[int] | None) -> Path:
    """Writes ``model`` as a Hugging Face folder at ``path`` (created): ``config.json``
    (:func:`hf_config`) and the weights as one ``model.safetensors`` or, past
    ``max_shard_bytes``, shards with their index. ``AutoModelForCausalLM.from_pretrained(path)``
    loads it and gives the same logits. ``dtype``: of the written tensors (default: the
    parameters'). Tensors are fetched from the devices one at a time, and the host holds one
    shard's worth at most. Returns the folder."""
    if jax.tree.leaves(nnx.state(model, nnx.LoRAParam)):
        raise ValueError("this model carries LoRA adapters, which a Hugging Face folder cannot "
                         "hold: write astrojax.models.lora.merge_and_unload(model)")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    params = nnx.state(model, nnx.Param)
    flat = dict(nnx.to_flat_state(params))
    if dtype is None:
        dtype = np.dtype(model.embedding_vd.get_value().dtype).name
    to_dtype(dtype)  # a bad name fails here, before anything is written
    config = hf_config(model, model_type=model_type, dtype=dtype, **token_ids)
    num_layers = config["num_hidden_layers"]

    # (HF name, our path, layer index or None, how), in HF's usual order.
    plan = [("model.embed_tokens.weight", ("embedding_vd",), None, "same")]
    inner_paths = [p for p in _IN_BLOCK if p in _layer_params(flat, model.scan_layers)]
    for i in range(num_layers):
        for inner in inner_paths:
            ours = ("blocks",) + inner if model.scan_layers else ("blocks", i) + inner
            plan.append((f"model.layers.{i}.{_IN_BLOCK[inner][0]}", ours,
                         i if model.scan_layers else None, _IN_BLOCK[inner][1]))
        if config["model_type"] == "qwen2" and ("attn", "b_nh_q") not in inner_paths:
            for inner in (("attn", "b_nh_q"), ("attn", "b_kh_k"), ("attn", "b_kh_v")):
                plan.append((f"model.layers.{i}.{_IN_BLOCK[inner][0]}", None, inner, "zeros"))
    plan.append(("model.norm.weight", ("final_norm", "scale_d"), None, "same"))
    if not model.tie_embeddings:
        plan.append(("lm_head.weight", ("w_dv_out",), None, 1))

    out_dtype = np.dtype(to_dtype(dtype))
    attn = _blocks(model)[0].attn

    def tensor(ours, layer, how) -> np.ndarray:
        if how == "zeros":  # Qwen2 always has q/k/v biases; ours had none
            n_or_k = _abstract_shape(attn.w_dnh if layer[1] == "b_nh_q" else attn.w_dkh_k,
                                     model)
            return np.zeros(n_or_k[1] * n_or_k[2], out_dtype)
        value = flat[ours].get_value()
        value = value[layer] if layer is not None else value
        return _to_hf(np.asarray(jax.device_get(value)).astype(out_dtype), how)

    def nbytes(ours, layer, how) -> int:
        if how == "zeros":
            return 0
        shape = flat[ours].get_value().shape
        return math.prod(shape[1:] if layer is not None else shape) * out_dtype.itemsize

    shards, size = [[]], 0
    for entry in plan:
        b = nbytes(*entry[1:])
        if shards[-1] and size + b > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(entry)
        size += b
    names = ([SINGLE_FILE] if len(shards) == 1 else
             [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))])
    weight_map, total = {}, 0
    for file, shard in zip(names, shards, strict=True):
        arrays = {name: tensor(*rest) for name, *rest in shard}
        safetensors.numpy.save_file(arrays, str(folder / file), metadata={"format": "pt"})
        total += sum(a.nbytes for a in arrays.values())
        weight_map.update({name: file for name in arrays})
        del arrays
    if len(shards) > 1:
        (folder / INDEX_FILE).write_text(json.dumps(
            {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


def _layer_params(flat: dict, scanned: bool) -> set[tuple]:
    """The paths inside a block that the model's blocks have."""
    if scanned:
        return {p[1:] for p in flat if p[0] == "blocks"}
    return {p[2:] for p in flat if p[0] == "blocks" and p[1] == 0}


__all__ = ["ARCHITECTURES", "HFCheckpointError", "config_from_hf", "from_hf", "hf_config",
           "to_hf"]

