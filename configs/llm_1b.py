"""A Llama-3.2-1B-sized language model (1.24B parameters), FSDP x tensor parallel.

    python -m astrojax.train --config configs/llm_1b.py --workdir runs/llm_1b

Llama 3.2 1B's shape: 16 layers, d_model 2048, 32 query / 8 key-value heads of 64, SwiGLU MLP
8192, vocabulary 128,256 (tied embeddings), RoPE theta 500,000; rows of 2,048 tokens, 64 a
step (131,072 tokens). Parameters and AdamW's moments in float32, computation in bfloat16,
each layer's activations rematerialised except its weight matmuls' outputs. The mesh is
tensor=2 inside fsdp over the remaining devices (all of them take the batch).

It reads the built-in planets' descriptions as bytes (ids below 259; the large vocabulary is
there so that the shapes and the memory are a Llama's). It is meant for a GPU node; plan it
anywhere first:

    python -m astrojax.train --config configs/llm_1b.py --dry_run --dry_run_devices=8

(README "Training at scale" shows that plan: parameters, optimizer state, activations and
FLOPs per device, as XLA compiles the step.)
"""

from astrojax.config import Config


def get_config() -> Config:
    cfg = Config(task="lm")
    m = cfg.model
    m.vocab_size = 128_256
    m.d_model = 2048
    m.num_layers = 16
    m.num_heads = 32
    m.num_kv_heads = 8
    m.head_dim = 64
    m.mlp_dim = 8192
    m.max_seq_len = 2048
    m.rope_theta = 500_000.0
    m.norm_eps = 1e-5
    m.tie_embeddings = True
    m.scan_layers = True
    m.remat_policy = "dots_with_no_batch_dims_saveable"
    m.param_dtype = "float32"
    m.dtype = "bfloat16"
    cfg.data.seq_len = 2048
    cfg.train.global_batch_size = 64
    cfg.train.steps = 10_000
    cfg.train.log_every = 10
    cfg.train.eval_every = 500
    cfg.train.checkpoint_every = 500
    cfg.optim.learning_rate = 3e-4
    cfg.optim.warmup_steps = 500
    cfg.mesh.data = 1
    cfg.mesh.fsdp = -1
    cfg.mesh.tensor = 2
    return cfg
