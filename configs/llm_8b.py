"""A Llama-3-8B-sized language model (8.03B parameters), FSDP x tensor parallel.

    python -m astrojax.train --config configs/llm_8b.py --workdir runs/llm_8b

Llama 3 8B's shape: 32 layers, d_model 4096, 32 query / 8 key-value heads of 128, SwiGLU MLP
14,336, vocabulary 128,256 (untied embedding and output layer), RoPE theta 500,000; rows of
4,096 tokens, 32 a step (131,072 tokens). Parameters and AdamW's moments in float32,
computation in bfloat16, every layer rematerialised in the backward pass. The mesh is
tensor=4 inside fsdp over the remaining devices.

It reads the built-in planets' descriptions as bytes (ids below 259; the large vocabulary is
there so that the shapes and the memory are a Llama's). It is meant for GPU nodes; plan it
anywhere first:

    python -m astrojax.train --config configs/llm_8b.py --dry_run --dry_run_devices=8

(README "Training at scale" shows that plan.)
"""

from astrojax.config import Config


def get_config() -> Config:
    cfg = Config(task="lm")
    m = cfg.model
    m.vocab_size = 128_256
    m.d_model = 4096
    m.num_layers = 32
    m.num_heads = 32
    m.num_kv_heads = 8
    m.head_dim = 128
    m.mlp_dim = 14_336
    m.max_seq_len = 4096
    m.rope_theta = 500_000.0
    m.norm_eps = 1e-5
    m.tie_embeddings = False
    m.scan_layers = True
    m.remat_policy = "full"
    m.param_dtype = "float32"
    m.dtype = "bfloat16"
    cfg.data.seq_len = 4096
    cfg.train.global_batch_size = 32
    cfg.train.steps = 10_000
    cfg.train.log_every = 10
    cfg.train.eval_every = 500
    cfg.train.checkpoint_every = 500
    cfg.optim.learning_rate = 3e-4
    cfg.optim.warmup_steps = 500
    cfg.mesh.data = 1
    cfg.mesh.fsdp = -1
    cfg.mesh.tensor = 4
    return cfg
