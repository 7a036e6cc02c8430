"""Hugging Face checkpoints: from_hf against an own numpy reference of HF's Llama, Mistral and
Qwen2 (every RoPE scaling, GQA, sliding windows, biases, tied and untied; one file, shards, bf16;
one device and an 8-device mesh, scanned and unrolled), to_hf round trips, the rotate-half
RoPE layout, the errors, the folder's tokenizer, and parity with transformers itself (PyTorch,
CPU) when the ``hf`` extra is installed."""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import hf_reference as ref
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from astrojax.config import DEFAULT_LOGICAL_AXIS_RULES, Config, ConfigError, MeshConfig, validate
from astrojax.data.tokenizer import ByteTokenizer, HFTokenizer, TokenizerError, load_tokenizer
from astrojax.models import generate, layers
from astrojax.models.hf import HFCheckpointError, config_from_hf, from_hf, hf_config, to_hf
from astrojax.models.transformer import Transformer, tiny_config
from astrojax.sharding import axis_rules, make_mesh

B, T = 2, 12
TOKENS_BT = np.random.default_rng(0).integers(0, 64, (B, T)).astype(np.int32)

jit_fast = functools.partial(
    jax.jit, compiler_options={"xla_backend_optimization_level": 0,
                               "xla_llvm_disable_expensive_passes": True})


@functools.partial(jit_fast, static_argnums=0)
def _logits(graphdef, state, tokens_bt):
    return nnx.merge(graphdef, state)(tokens_bt)


def logits(model, tokens_bt=TOKENS_BT):
    return np.asarray(_logits(*nnx.split(model), jnp.asarray(tokens_bt)))


def assert_close(ours, expected, rtol=1e-4):
    """Within ``rtol`` of the largest reference logit (elementwise relative error is
    meaningless for logits near 0)."""
    err = np.max(np.abs(np.asarray(ours, np.float64) - expected)) / np.max(np.abs(expected))
    assert err <= rtol, f"max error {err:.2e} of the largest logit (allowed {rtol:.0e})"


LLAMA3 = {"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 32, "rope_theta": 10_000.0}
CASES = {
    # Llama 2: default RoPE, untied, one file.
    "llama": ref.config("llama"),
    # Llama 3.1: llama3 RoPE (transformers >= 5 format), tied, head_dim 16 so that the short,
    # blended and stretched wavelengths all occur; sharded with an index.
    "llama3": ref.config("llama", num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                         tie_word_embeddings=True, rope_parameters=LLAMA3),
    # Older configs: rope_theta beside rope_scaling, the type under "type" (< 4.45) ...
    "linear": ref.config("llama", rope_theta=500.0, rope_scaling={"type": "linear",
                                                                  "factor": 2.0}),
    # ... or "rope_type"; positions run past max_position_embeddings so NTK scaling acts.
    "dynamic": ref.config("llama", max_position_embeddings=8,
                          rope_scaling={"rope_type": "dynamic", "factor": 3.0}),
    "mistral": ref.config("mistral", sliding_window=4),
    "qwen2": ref.config("qwen2", use_sliding_window=True, sliding_window=5, max_window_layers=0,
                        tie_word_embeddings=True),
}
SHARDS = {"llama3": 3, "mistral": 2}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Each case written once: (folder, config, stored tensors)."""
    out = {}
    for name, config in CASES.items():
        folder = tmp_path_factory.mktemp(name)
        tensors = ref.random_tensors(config, seed=len(out))
        out[name] = (folder, config, ref.write_checkpoint(folder, config, tensors,
                                                          shards=SHARDS.get(name, 1)))
    return out


# ----------------------------------------------------------------------------------------------
# The reference itself: RoPE is rotate-half, and each feature under test changes the logits


def test_rope_is_rotate_half_as_in_hugging_face():
    """Pins the layout: the two halves of head_dim rotate together (HF's rotate_half), not
    neighbouring pairs (the interleaved layout of the original Llama and GPT-J)."""
    x = np.arange(1.0, 9.0, dtype=np.float32)  # one head of 8
    position, theta = 3, 100.0
    freq = theta ** (-np.arange(0, 8, 2) / 8)
    angle = position * freq
    cos, sin = np.cos(np.concatenate([angle, angle])), np.sin(np.concatenate([angle, angle]))
    rotate_half = x * cos + np.concatenate([-x[4:], x[:4]]) * sin
    pairs = x.reshape(4, 2)
    interleaved = np.stack([pairs[:, 0] * np.cos(angle) - pairs[:, 1] * np.sin(angle),
                            pairs[:, 1] * np.cos(angle) + pairs[:, 0] * np.sin(angle)],
                           -1).reshape(-1)
    sin_bth, cos_bth = layers.rope_sin_cos(jnp.full((1, 1), position), 8, theta)
    ours = np.asarray(layers.apply_rope(jnp.asarray(x)[None, None, None], sin_bth, cos_bth))
    ours = ours[0, 0, 0]
    np.testing.assert_allclose(ours, rotate_half, rtol=1e-6)
    assert np.max(np.abs(ours - interleaved)) > 1.0


@pytest.mark.parametrize("name", ["llama3", "linear", "dynamic"])
def test_rope_tables_match_the_reference_frequencies(checkpoints, name):
    folder, config, _ = checkpoints[name]
    cfg = config_from_hf(folder)
    with nnx.use_eager_sharding(False):
        model = nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0)))
    sin_bth, cos_bth = model.rope(jnp.broadcast_to(jnp.arange(T), (1, T)))
    angle = np.arange(T)[:, None] * ref.inv_freq(config, T)[None]
    np.testing.assert_allclose(np.asarray(sin_bth)[0], np.sin(angle), atol=2e-6)
    np.testing.assert_allclose(np.asarray(cos_bth)[0], np.cos(angle), atol=2e-6)
    # The scaling matters at these positions: without it the tables differ.
    plain = {k: v for k, v in config.items() if k not in ("rope_scaling", "rope_parameters")}
    assert np.max(np.abs(np.arange(T)[:, None] * ref.inv_freq(plain, T) - angle)) > 0.1


def test_windows_biases_and_ties_change_the_reference_logits(checkpoints):
    """So that the parity tests below can fail on each of them."""
    for name, drop in (("mistral", {"sliding_window": None}),
                       ("qwen2", {"use_sliding_window": False})):
        _, config, tensors = checkpoints[name]
        base = ref.forward(config, tensors, TOKENS_BT)
        assert np.max(np.abs(ref.forward({**config, **drop}, tensors, TOKENS_BT) - base)) > 1e-2
    _, config, tensors = checkpoints["qwen2"]
    no_bias = {k: v for k, v in tensors.items() if not k.endswith(".bias")}
    assert np.max(np.abs(ref.forward(config, no_bias, TOKENS_BT)
                         - ref.forward(config, tensors, TOKENS_BT))) > 1e-2


# ----------------------------------------------------------------------------------------------
# from_hf against the reference


@pytest.mark.parametrize("name", list(CASES))
def test_from_hf_matches_the_numpy_reference(checkpoints, name):
    folder, config, tensors = checkpoints[name]
    model = from_hf(folder)
    assert_close(logits(model), ref.forward(config, tensors, TOKENS_BT))


def test_bfloat16_checkpoint(tmp_path):
    config = ref.config("qwen2", torch_dtype="bfloat16")
    tensors = ref.write_checkpoint(tmp_path, config, ref.random_tensors(config, seed=7),
                                   dtype=ref.BFLOAT16)
    auto = from_hf(tmp_path)  # param_dtype "auto": the checkpoint's own
    assert auto.embedding_vd.get_value().dtype == jnp.bfloat16
    # Loaded as float32 the bf16 values are exact, so the float32 reference applies.
    model = from_hf(tmp_path, param_dtype="float32")
    assert model.embedding_vd.get_value().dtype == jnp.float32
    assert_close(logits(model), ref.forward(config, tensors, TOKENS_BT))


@pytest.mark.slow
@pytest.mark.parametrize("scan_layers", [True, False])
def test_from_hf_onto_an_8_device_mesh(checkpoints, scan_layers):
    folder, config, tensors = checkpoints["qwen2"]
    mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    model = from_hf(folder, mesh, scan_layers=scan_layers)
    w_dnh = model.blocks.attn.w_dnh if scan_layers else model.blocks[1].attn.w_dnh
    spec = (None, "fsdp", "tensor", None) if scan_layers else ("fsdp", "tensor", None)
    assert tuple(w_dnh.get_value().sharding.spec) == spec
    bias = model.blocks.attn.b_kh_k if scan_layers else model.blocks[0].attn.b_kh_k
    assert "tensor" in tuple(bias.get_value().sharding.spec)
    tokens_bt = np.tile(TOKENS_BT, (2, 1))  # the batch splits over data x fsdp
    with jax.set_mesh(mesh), axis_rules(DEFAULT_LOGICAL_AXIS_RULES):
        out = logits(model, tokens_bt)
    assert_close(out, ref.forward(config, tensors, tokens_bt))


def test_a_width_the_mesh_cannot_split_is_a_config_error(checkpoints):
    folder, _, _ = checkpoints["llama3"]  # one kv head
    with pytest.raises(ConfigError, match="num_kv_heads"):
        from_hf(folder, make_mesh(MeshConfig(data=4, tensor=2)))


# ----------------------------------------------------------------------------------------------
# to_hf


def _random_model(cfg, seed=0):
    with nnx.use_eager_sharding(False):
        abstract = nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0)))
    rng = np.random.default_rng(seed)
    state = jax.tree.map(lambda x: jnp.asarray(rng.normal(0.0, 0.3, x.shape), x.dtype),
                         nnx.state(abstract))
    return nnx.merge(nnx.graphdef(abstract), state)


@pytest.mark.parametrize("cfg, model_type", [
    (tiny_config(tie_embeddings=False, rope_scaling="llama3", rope_scaling_factor=8.0,
                 rope_original_max_len=16), "llama"),
    (tiny_config(sliding_window=3, scan_layers=False), "mistral"),
    (tiny_config(qkv_bias=True, rope_scaling="dynamic", rope_scaling_factor=2.0,
                 rope_original_max_len=8), "qwen2"),
])
def test_to_hf_then_from_hf_gives_the_same_logits(tmp_path, cfg, model_type):
    model = _random_model(cfg)
    to_hf(model, tmp_path, max_shard_bytes=20_000)  # several shards and an index
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["model_type"] == model_type
    assert (tmp_path / "model.safetensors.index.json").exists()
    back = from_hf(tmp_path, scan_layers=not cfg.scan_layers)  # and the other layout
    np.testing.assert_allclose(logits(back), logits(model), rtol=1e-5, atol=1e-5)
    # The reference reads the written folder the way transformers would.
    tensors = {}
    import safetensors.numpy
    for file in sorted(tmp_path.glob("*.safetensors")):
        tensors.update(safetensors.numpy.load_file(str(file)))
    assert_close(logits(model), ref.forward(written, tensors, TOKENS_BT))


def test_to_hf_refuses_what_hugging_face_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match="LinearAttention"):
        hf_config(_random_model(tiny_config(mixers=("linear",))))
    with pytest.raises(ValueError, match="llama.*sliding window"):
        hf_config(_random_model(tiny_config(sliding_window=3)), model_type="llama")
    with pytest.raises(ValueError, match="q/k/v biases"):
        hf_config(_random_model(tiny_config(qkv_bias=True)), model_type="mistral")


# ----------------------------------------------------------------------------------------------
# Errors


def _write(tmp_path, config, **kw):
    ref.write_checkpoint(tmp_path, config, ref.random_tensors(config), **kw)
    return tmp_path


@pytest.mark.parametrize("overrides, match", [
    ({"model_type": "gpt2"}, r"model_type='gpt2' is not supported"),
    ({"hidden_act": "gelu"}, r"hidden_act='gelu' is not supported"),
    ({"attention_bias": True}, r"attention_bias=True is not supported .*o_proj"),
    ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, r"rope_type='yarn'"),
    ({"rope_parameters": {"rope_type": "linear"}}, r"no 'factor'"),
    ({"partial_rotary_factor": 0.5}, r"partial_rotary_factor=0.5"),
])
def test_unsupported_configs_are_refused_naming_the_key(tmp_path, overrides, match):
    config = ref.config("llama")
    config.update(overrides)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(HFCheckpointError, match=match) as err:
        from_hf(tmp_path)
    assert "config.json" in str(err.value) and "\n" not in str(err.value)


def test_qwen2_mixing_full_and_sliding_layers_is_refused(tmp_path):
    config = ref.config("qwen2", use_sliding_window=True, sliding_window=4, max_window_layers=1)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(HFCheckpointError, match="mixes full and sliding"):
        from_hf(tmp_path)
    config.update(max_window_layers=2)  # no layer at or past 2: none windowed
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert config_from_hf(tmp_path).sliding_window == 0


def test_missing_and_broken_files_are_named(tmp_path):
    with pytest.raises(HFCheckpointError, match="config.json: no such file"):
        from_hf(tmp_path)
    _write(tmp_path, ref.config("llama"), shards=2)
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(HFCheckpointError, match="model-00002-of-00002.safetensors: no such"):
        from_hf(tmp_path)
    (tmp_path / "model-00002-of-00002.safetensors").write_bytes(b"\x08\x00\x00\x00garbage!")
    with pytest.raises(HFCheckpointError, match="model-00002-of-00002.safetensors: not a read"):
        from_hf(tmp_path)
    (tmp_path / "model.safetensors.index.json").unlink()
    with pytest.raises(HFCheckpointError, match="no model.safetensors or model.safetensors"):
        from_hf(tmp_path)


def test_weights_that_do_not_fit_the_config_are_named(tmp_path):
    config = ref.config("llama")
    tensors = ref.random_tensors(config)
    ref.write_checkpoint(tmp_path, {**config, "intermediate_size": 48}, tensors)
    with pytest.raises(HFCheckpointError, match=r"tensor 'model.layers.0.mlp.\w+_proj.weight' "
                                                r"has shape \((32, 64|64, 32)\); config.json "
                                                r"implies \((32, 48|48, 32)\)"):
        from_hf(tmp_path)
    tensors["model.layers.0.self_attn.o_proj.bias"] = np.zeros(32, np.float32)
    ref.write_checkpoint(tmp_path, config, tensors)
    with pytest.raises(HFCheckpointError, match="no place for: model.layers.0.self_attn.o_proj"):
        from_hf(tmp_path)
    del tensors["model.layers.0.self_attn.o_proj.bias"], tensors["lm_head.weight"]
    ref.write_checkpoint(tmp_path, config, tensors)
    with pytest.raises(HFCheckpointError, match="no tensor 'lm_head.weight'"):
        from_hf(tmp_path)


# ----------------------------------------------------------------------------------------------
# The model's new options


def test_qkv_biases_exist_only_when_asked():
    def names(cfg):
        with nnx.use_eager_sharding(False):
            abstract = nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0)))
        specs = nnx.get_partition_spec(nnx.state(abstract, nnx.Param))
        return {"/".join(map(str, p)): tuple(v.get_value()) for p, v in nnx.to_flat_state(specs)}
    plain, biased = names(tiny_config()), names(tiny_config(qkv_bias=True))
    assert not any("b_" in n for n in plain)
    assert set(biased) - set(plain) == {"blocks/attn/b_nh_q", "blocks/attn/b_kh_k",
                                        "blocks/attn/b_kh_v"}
    assert biased["blocks/attn/b_nh_q"] == ("layers", "heads", "head_dim")
    assert biased["blocks/attn/b_kh_v"] == ("layers", "kv_heads", "head_dim")


@pytest.mark.parametrize("fields, key", [
    ({"rope_scaling": "yarn"}, "rope_scaling"),
    ({"rope_scaling_factor": 2.0}, "rope_scaling_factor"),  # does nothing without a scaling
    ({"rope_scaling": "linear", "rope_scaling_factor": 0.5}, "rope_scaling_factor"),
    ({"rope_scaling": "dynamic", "rope_scaling_factor": 2.0}, "rope_original_max_len"),
    ({"rope_scaling": "llama3", "rope_scaling_factor": 8.0, "rope_original_max_len": 64,
      "rope_low_freq_factor": 4.0}, "rope_high_freq_factor"),
    ({"qkv_bias": True, "mixers": ("mamba",), "scan_layers": True}, "qkv_bias"),
])
def test_bad_rope_and_bias_fields_are_config_errors(fields, key):
    cfg = Config(task="lm")
    cfg.model = dataclasses.replace(cfg.model, **fields)
    with pytest.raises(ConfigError, match=rf"config\.model\.{key}:"):
        validate(cfg, num_devices=1)


def test_rope_scaling_names_match_the_layers():
    from astrojax.config.sections import ROPE_SCALINGS
    assert ROPE_SCALINGS == layers.ROPE_SCALINGS


# ----------------------------------------------------------------------------------------------
# The folder's tokenizer


def _tokenizer_json(path, bos: bool):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "</s>", "<|eot|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["a warm ocean planet", "a cold desert world"], trainer)
    if bos:  # Llama's template: BOS before every sequence
        tok.post_processor = processors.TemplateProcessing(single="<s> $A",
                                                           special_tokens=[("<s>", 0)])
    tok.save(str(path / "tokenizer.json"))


def test_hf_tokenizer_with_a_bos_template(tmp_path):
    _tokenizer_json(tmp_path, bos=True)
    (tmp_path / "config.json").write_text(json.dumps(ref.config("llama", bos_token_id=0,
                                                                eos_token_id=1)))
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [2, 1]}))
    tok = load_tokenizer(tmp_path)
    assert isinstance(tok, HFTokenizer)
    assert tok.bos_id == 0 and tok.eos_ids == (2, 1) and tok.eos_id == 2 and tok.pad_id == 2
    ids = tok.encode("a warm world")
    assert ids.dtype == np.int32 and ids[0] == 0 and ids[1] != 0 and ids[-1] == 2
    assert tok.decode(ids) == "a warm world"
    assert list(tok.encode("a warm world", add_bos=False, add_eos=False)) == list(ids[1:-1])
    vocab = json.loads((tmp_path / "tokenizer.json").read_text())["model"]["vocab"]
    assert tok.vocab_size == len(vocab) > max(ids)


def test_hf_tokenizer_without_a_template_gets_bos_prepended_once(tmp_path):
    _tokenizer_json(tmp_path, bos=False)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": {"content": "<s>"}, "eos_token": "<|eot|>"}))
    tok = HFTokenizer(tmp_path)
    assert tok.bos_id == 0 and tok.eos_ids == (2,)
    ids = tok.encode("a cold planet", add_eos=False)
    assert ids[0] == 0 and ids[1] != 0


def test_load_tokenizer_falls_back_to_bytes_and_names_what_is_missing(tmp_path):
    assert isinstance(load_tokenizer(None), ByteTokenizer)
    (tmp_path / "config.json").write_text(json.dumps({"task": "lm"}))  # a training workdir
    assert isinstance(load_tokenizer(tmp_path), ByteTokenizer)
    assert ByteTokenizer.eos_ids == (ByteTokenizer.eos_id,)
    (tmp_path / "config.json").write_text(json.dumps(ref.config("llama")))
    with pytest.raises(TokenizerError, match="without tokenizer.json"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{broken")
    with pytest.raises(TokenizerError, match="tokenizer.json: not a readable"):
        load_tokenizer(tmp_path)


# ----------------------------------------------------------------------------------------------
# Parity with transformers (PyTorch, CPU): runs with `pip install -e ".[dev,hf]"`


HF_CASES = {
    "llama": ("LlamaConfig", dict(rope_parameters={"rope_type": "default",
                                                   "rope_theta": 10_000.0})),
    "llama-linear": ("LlamaConfig", dict(rope_parameters={"rope_type": "linear", "factor": 2.0,
                                                          "rope_theta": 10_000.0})),
    "llama-dynamic": ("LlamaConfig", dict(max_position_embeddings=8, rope_parameters={
        "rope_type": "dynamic", "factor": 3.0, "rope_theta": 10_000.0})),
    "llama3": ("LlamaConfig", dict(head_dim=16, num_attention_heads=2, num_key_value_heads=1,
                                   tie_word_embeddings=True, rope_parameters=LLAMA3)),
    "mistral": ("MistralConfig", dict(sliding_window=4)),
    "qwen2": ("Qwen2Config", dict(use_sliding_window=True, sliding_window=5,
                                  max_window_layers=0)),
}


@pytest.fixture(scope="module")
def torch_hf():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    return torch, transformers


def _hf_model(transformers, torch, config_name, **kw):
    sizes = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                 rms_norm_eps=1e-5, initializer_range=0.2)
    config = getattr(transformers, config_name)(**{**sizes, **kw},
                                                attn_implementation="eager")
    model = transformers.AutoModelForCausalLM.from_config(config).float().eval()
    with torch.no_grad():  # non-trivial norms and biases
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or name.endswith(".bias"):
                p.add_(0.2 * torch.randn_like(p))
    return model


def _torch_logits(torch, model, tokens_bt=TOKENS_BT):
    with torch.no_grad():
        return model(torch.as_tensor(tokens_bt, dtype=torch.long)).logits.double().numpy()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(HF_CASES))
def test_from_hf_matches_transformers(torch_hf, tmp_path, name):
    torch, transformers = torch_hf
    config_name, kw = HF_CASES[name]
    model = _hf_model(transformers, torch, config_name, **kw)
    model.save_pretrained(tmp_path)
    expected = _torch_logits(torch, model)
    assert_close(logits(from_hf(tmp_path)), expected)


@pytest.mark.slow
def test_to_hf_loads_in_transformers_with_the_same_logits(torch_hf, tmp_path):
    torch, transformers = torch_hf
    cfg = tiny_config(qkv_bias=True, sliding_window=4, tie_embeddings=False, num_layers=3,
                      rope_scaling="llama3", rope_scaling_factor=4.0, rope_original_max_len=32,
                      rope_theta=500.0)
    model = _random_model(cfg, seed=3)
    to_hf(model, tmp_path, max_shard_bytes=30_000, eos_token_id=2)
    loaded = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path, attn_implementation="eager", dtype=torch.float32).eval()
    assert type(loaded).__name__ == "Qwen2ForCausalLM"
    assert_close(logits(model), _torch_logits(torch, loaded))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["llama-dynamic", "qwen2"])
def test_cached_generate_of_an_imported_model_matches_transformers(torch_hf, tmp_path, name):
    """Greedy decoding through our KV cache (Qwen2: biases and a ring-buffered window of 5;
    dynamic NTK: positions pass max_position_embeddings=8 mid-generation, so the base is
    recomputed every step on both sides) gives transformers' generate's tokens."""
    torch, transformers = torch_hf
    config_name, kw = HF_CASES[name]
    hf = _hf_model(transformers, torch, config_name, **kw)
    hf.save_pretrained(tmp_path)
    hf.generation_config.eos_token_id = None  # no stop token on either side
    prompts_bt = TOKENS_BT[:, :6]
    with torch.no_grad():
        expected = hf.generate(torch.as_tensor(prompts_bt, dtype=torch.long),
                               attention_mask=torch.ones(prompts_bt.shape, dtype=torch.long),
                               max_new_tokens=10, do_sample=False, pad_token_id=0)
    out = generate(from_hf(tmp_path), list(prompts_bt), max_new_tokens=10, length_bucket=6)
    np.testing.assert_array_equal(np.stack(out.tokens), expected[:, 6:].numpy())


@pytest.mark.slow
def test_generate_takes_a_hugging_face_folder(tmp_path):
    """``python -m astrojax.generate --checkpoint FOLDER`` on a Hugging Face folder: from_hf,
    the folder's tokenizer (BOS template, end-of-sequence ids), and the same completion as
    generate_text on the model loaded by hand; the parameters split over the fsdp axis."""
    import subprocess
    import sys

    from astrojax.generate import is_hf_folder, load_generator
    from astrojax.models import generate_text

    config = ref.config("llama", vocab_size=320, bos_token_id=0, eos_token_id=1)
    _write(tmp_path, config)
    _tokenizer_json(tmp_path, bos=True)
    assert is_hf_folder(tmp_path)
    generator = load_generator(tmp_path)
    assert generator.mesh.shape["fsdp"] == jax.device_count()
    expected = generate_text(from_hf(tmp_path), load_tokenizer(tmp_path), ["a warm"],
                             max_new_tokens=12)
    assert generator(["a warm"], max_new_tokens=12) == expected
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-m", "astrojax.generate", "--checkpoint",
                           str(tmp_path), "--prompt", "a warm", "--max_new_tokens", "12",
                           "--nosharded"], cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip("\n") == "a warm" + expected[0]
