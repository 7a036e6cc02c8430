"""Model FLOPs utilisation of the language-model train step on one accelerator.

    python benchmarks/step_mfu.py                     # configs/llm_1b.py, 8 x 2048, on a GPU
    python benchmarks/step_mfu.py --config configs/quickstart.py --batch 8 --seq 512  # any

Builds the config's train step on ONE device (a 1 x 1 mesh; the config's dtype, remat, scan
and optimizer), times ``--steps`` steps after two warm-up ones and reports:

- model FLOPs per step as MaxText and the PaLM paper count them: 6 x (matmul parameters) per
  token for forward + backward, plus attention's two matmuls (causal: half the square), times 3;
  the embedding lookup is not a matmul, the tied output projection is;
- achieved TFLOP/s, and MFU = achieved / the device's dense bf16 peak (H100/H200 SXM 989,
  A100 312, from the device kind; null where unknown, e.g. CPU);
- seconds per step and tokens per second.

Writes ``step_mfu.json`` under ``--out`` (default benchmarks/results/).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# Dense bf16 tensor-core peaks (FLOP/s), by a substring of jax's device_kind.
PEAKS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12}


def model_flops_per_token(cfg, seq_len: int) -> float:
    """Forward + backward FLOPs per token of the Llama-style model in ``cfg.model``."""
    m = cfg.model
    d, n, kh, h, f, layers = (m.d_model, m.num_heads, m.num_kv_heads, m.head_dim, m.mlp_dim,
                              m.num_layers)
    per_layer = d * n * h + 2 * d * kh * h + n * h * d + 3 * d * f  # q, k and v, o, SwiGLU
    matmul_params = layers * per_layer + d * m.vocab_size  # + the output projection
    attention = 2 * 2 * layers * n * h * seq_len / 2  # QK^T and PV, causal half, per token
    return 6 * matmul_params + 3 * attention


def peak_flops(device) -> float | None:
    kind = getattr(device, "device_kind", "")
    return next((peak for name, peak in PEAKS.items() if name in kind), None)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "llm_1b.py"))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--attention_impl", default=None, help="override model.attention_impl")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    import jax

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from step_vs_torch import Ours

    from astrojax.cli import load_config_file

    cfg = load_config_file(Path(args.config))
    cfg.train.global_batch_size = args.batch
    cfg.data.seq_len = args.seq
    cfg.model.max_seq_len = max(cfg.model.max_seq_len, args.seq)
    if args.attention_impl:
        cfg.model.attention_impl = args.attention_impl
    ours = Ours(cfg)  # one device, the loop's jitted step
    batches = ours.batches(args.steps)
    start = time.perf_counter()
    ours.run(batches[:1])
    compile_s = time.perf_counter() - start
    ours.run(batches[:1])
    times = [ours.run([batch]) for batch in batches]
    step_s = statistics.median(times)
    tokens = args.batch * args.seq
    flops = model_flops_per_token(cfg, args.seq) * tokens
    device = jax.devices()[0]
    peak = peak_flops(device)
    achieved = flops / step_s
    result = {
        "command": "python benchmarks/step_mfu.py " + " ".join(sys.argv[1:] if argv is None
                                                               else argv),
        "machine": f"{platform.machine()}, {getattr(device, 'device_kind', device.platform)}",
        "jax": jax.__version__, "config": Path(args.config).name,
        "parameters": sum(x.size for x in jax.tree.leaves(ours.state.params)),
        "batch": args.batch, "seq_len": args.seq, "dtype": cfg.model.dtype,
        "attention_impl": cfg.model.attention_impl, "remat_policy": cfg.model.remat_policy,
        "first_step_s": round(compile_s, 2), "step_s": round(step_s, 4),
        "step_s_all": [round(t, 4) for t in times],
        "tokens_per_second": round(tokens / step_s),
        "model_tflop_per_step": round(flops / 1e12, 3),
        "achieved_tflops": round(achieved / 1e12, 2),
        "peak_tflops": None if peak is None else peak / 1e12,
        "mfu": None if peak is None else round(achieved / peak, 4),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "step_mfu.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
