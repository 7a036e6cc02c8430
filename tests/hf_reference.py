"""An independent numpy forward pass of Hugging Face's Llama, Mistral and Qwen2 (float64), read
straight off a config.json dict and HF-named tensors, and tiny random checkpoints written in
HF's on-disk format. Written from transformers' conventions, sharing no code with
astrojax.models: RMSNorm, rotate-half RoPE (default, linear, dynamic NTK and llama3
frequencies, transformers 5.24 formulas), grouped-query attention (kv head j serves query heads
j*g .. j*g+g-1), the causal mask with HF's sliding window (key kv is seen by query q when
q - W < kv <= q), Qwen2's q/k/v biases, SwiGLU, tied or untied output."""

from __future__ import annotations

import json
import math
from pathlib import Path

import ml_dtypes
import numpy as np
import safetensors.numpy


def rope_params(config: dict) -> dict:
    """The rope dict (``rope_type``, ``rope_theta``, ...), from either format."""
    params = dict(config.get("rope_scaling") or config.get("rope_parameters") or {})
    params["rope_type"] = params.get("rope_type", params.get("type", "default"))
    params.setdefault("rope_theta", config.get("rope_theta", 10_000.0))
    return params


def head_dim(config: dict) -> int:
    return config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]


def inv_freq(config: dict, seq_len: int) -> np.ndarray:
    params, dim = rope_params(config), head_dim(config)
    base = params["rope_theta"]
    kind = params["rope_type"]
    if kind == "dynamic":
        max_pos = config["max_position_embeddings"]
        seq_len = max(seq_len, max_pos)
        base = base * ((params["factor"] * seq_len / max_pos) - (params["factor"] - 1)) ** (
            dim / (dim - 2))
    freq = 1.0 / base ** (np.arange(0, dim, 2, dtype=np.float64) / dim)
    if kind == "linear":
        freq = freq / params["factor"]
    if kind == "llama3":
        factor, low, high = params["factor"], params["low_freq_factor"], params["high_freq_factor"]
        old = params["original_max_position_embeddings"]
        wavelen = 2 * math.pi / freq
        out = np.where(wavelen > old / low, freq / factor, freq)
        smooth = (old / wavelen - low) / (high - low)
        medium = (wavelen >= old / high) & (wavelen <= old / low)
        freq = np.where(medium, (1 - smooth) * out / factor + smooth * out, out)
    return freq


def rotate_half(x: np.ndarray) -> np.ndarray:
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def sliding_window(config: dict) -> int | None:
    """HF's window W for every layer (None: full causal attention)."""
    kind = config["model_type"]
    if kind == "mistral":
        return config.get("sliding_window")
    if kind == "qwen2" and config.get("use_sliding_window"):
        assert config.get("max_window_layers", 28) <= 0  # every layer windowed in our tests
        return config.get("sliding_window")
    return None


def rms_norm(x, weight, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def linear(x, tensors, name):
    out = x @ tensors[f"{name}.weight"].T
    bias = tensors.get(f"{name}.bias")
    return out if bias is None else out + bias


def forward(config: dict, tensors: dict[str, np.ndarray], tokens_bt: np.ndarray) -> np.ndarray:
    """Logits ``[b, t, vocab]`` (float64) of HF's ``XForCausalLM(input_ids=tokens_bt)``."""
    w = {k: np.asarray(v, np.float64) for k, v in tensors.items()}
    eps = config.get("rms_norm_eps", 1e-6)
    n, kv, h = config["num_attention_heads"], config["num_key_value_heads"], head_dim(config)
    b, t = tokens_bt.shape
    positions = np.arange(t)
    angle = positions[:, None] * inv_freq(config, int(positions.max()) + 1)[None]
    emb = np.concatenate([angle, angle], axis=-1)
    cos, sin = np.cos(emb)[None, None], np.sin(emb)[None, None]  # [1, 1, t, h]
    q_pos, k_pos = positions[:, None], positions[None, :]
    allowed = k_pos <= q_pos
    window = sliding_window(config)
    if window:
        allowed &= k_pos > q_pos - window

    x = w["model.embed_tokens.weight"][tokens_bt]
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        y = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = linear(y, w, p + "self_attn.q_proj").reshape(b, t, n, h).transpose(0, 2, 1, 3)
        k = linear(y, w, p + "self_attn.k_proj").reshape(b, t, kv, h).transpose(0, 2, 1, 3)
        v = linear(y, w, p + "self_attn.v_proj").reshape(b, t, kv, h).transpose(0, 2, 1, 3)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k, v = np.repeat(k, n // kv, axis=1), np.repeat(v, n // kv, axis=1)
        scores = np.where(allowed, q @ k.transpose(0, 1, 3, 2) / math.sqrt(h), -np.inf)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        attn = (probs @ v).transpose(0, 2, 1, 3).reshape(b, t, n * h)
        x = x + linear(attn, w, p + "self_attn.o_proj")
        y = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate, up = linear(y, w, p + "mlp.gate_proj"), linear(y, w, p + "mlp.up_proj")
        x = x + linear(gate / (1 + np.exp(-gate)) * up, w, p + "mlp.down_proj")
    x = rms_norm(x, w["model.norm.weight"], eps)
    out = w["model.embed_tokens.weight"] if config.get("tie_word_embeddings") else \
        w["lm_head.weight"]
    return x @ out.T


# ----------------------------------------------------------------------------------------------
# Tiny checkpoints


def config(model_type: str = "llama", **overrides) -> dict:
    """A tiny config.json dict (2 layers, d 32, 4/2 heads of 8, mlp 64, vocab 64)."""
    base = {"architectures": [{"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
                               "qwen2": "Qwen2ForCausalLM"}[model_type]],
            "model_type": model_type, "vocab_size": 64, "hidden_size": 32,
            "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "hidden_act": "silu", "max_position_embeddings": 64,
            "rms_norm_eps": 1e-5, "rope_theta": 10_000.0, "tie_word_embeddings": False,
            "torch_dtype": "float32"}
    base.update(overrides)
    return base


def random_tensors(config: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """HF-named float32 tensors for ``config``, at scales that give O(1) logits."""
    rng = np.random.default_rng(seed)
    d, f, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    n, kv, h = config["num_attention_heads"], config["num_key_value_heads"], head_dim(config)

    def normal(*shape, scale=None):
        scale = shape[-1] ** -0.5 if scale is None else scale
        return rng.normal(0.0, scale, shape).astype(np.float32)

    tensors = {"model.embed_tokens.weight": normal(v, d, scale=1.0),
               "model.norm.weight": 1 + normal(d, scale=0.1)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        tensors.update({
            p + "input_layernorm.weight": 1 + normal(d, scale=0.1),
            p + "post_attention_layernorm.weight": 1 + normal(d, scale=0.1),
            p + "self_attn.q_proj.weight": normal(n * h, d),
            p + "self_attn.k_proj.weight": normal(kv * h, d),
            p + "self_attn.v_proj.weight": normal(kv * h, d),
            p + "self_attn.o_proj.weight": normal(d, n * h),
            p + "mlp.gate_proj.weight": normal(f, d),
            p + "mlp.up_proj.weight": normal(f, d),
            p + "mlp.down_proj.weight": normal(d, f),
        })
        if config["model_type"] == "qwen2":
            tensors.update({p + "self_attn.q_proj.bias": normal(n * h, scale=0.5),
                            p + "self_attn.k_proj.bias": normal(kv * h, scale=0.5),
                            p + "self_attn.v_proj.bias": normal(kv * h, scale=0.5)})
    if not config.get("tie_word_embeddings"):
        tensors["lm_head.weight"] = normal(v, d)
    return tensors


def write_checkpoint(folder: Path, config: dict, tensors: dict[str, np.ndarray], *,
                     shards: int = 1, dtype=np.float32) -> dict[str, np.ndarray]:
    """Writes an HF folder (config.json, one model.safetensors or ``shards`` files and their
    index) with the tensors stored as ``dtype``; returns the tensors as stored (bf16-rounded
    when ``dtype`` is bfloat16), in float32."""
    folder.mkdir(parents=True, exist_ok=True)
    stored = {k: np.asarray(v).astype(dtype) for k, v in tensors.items()}
    (folder / "config.json").write_text(json.dumps(config))
    names = list(stored)
    if shards == 1:
        safetensors.numpy.save_file(stored, str(folder / "model.safetensors"),
                                    metadata={"format": "pt"})
    else:
        weight_map = {}
        for s, part in enumerate(np.array_split(np.arange(len(names)), shards)):
            file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            safetensors.numpy.save_file({names[j]: stored[names[j]] for j in part},
                                        str(folder / file), metadata={"format": "pt"})
            weight_map.update({names[j]: file for j in part})
        (folder / "model.safetensors.index.json").write_text(json.dumps(
            {"metadata": {"total_size": sum(a.nbytes for a in stored.values())},
             "weight_map": weight_map}))
    return {k: v.astype(np.float32) for k, v in stored.items()}


BFLOAT16 = ml_dtypes.bfloat16
