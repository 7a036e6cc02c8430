"""Decode throughput on CPU: our cached ``generate`` beside transformers' ``model.generate`` on
the same model, in one run.

    python benchmarks/decode.py                  # ~10 min on a shared 2-core CPU
    python benchmarks/decode.py --repeats 2 --new-tokens 16 --out /tmp/decode.json  # a smoke run

The model is the quickstart's (configs/quickstart.py: 4 layers, d_model 128, 4/2 heads of 32,
MLP 384, vocabulary 384), randomly initialised by its own initialisers, written with
``to_hf`` and loaded by ``AutoModelForCausalLM.from_pretrained`` (PyTorch, float32, its default
attention), so both sides run identical weights. PyTorch runs with one intra-op thread and with
its default (one per core); both are reported. Greedy decoding, no stop token, a fixed prompt
length and a fixed number of new tokens, batch 1 and 16. Each side is warmed up first (our first
call compiles the prefill and the token step: reported separately as ``first_call_s``), then
``--repeats`` timed runs; medians are reported. A one-token run of each (the prefill and one
sample) is timed too, so ``(t_N - t_1) / (N - 1)`` is the time per decoded token.

Writes benchmarks/results/decode.json and decode.png. Timings are from a shared 2-core CPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
LABEL = "shared 2-core CPU"


def quickstart_model_config():
    spec = importlib.util.spec_from_file_location("quickstart", ROOT / "configs" /
                                                  "quickstart.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config().model


def build_model(cfg, seed: int):
    """The Transformer initialised by its own initialisers, in one compiled call."""
    import jax
    from flax import nnx

    from astrojax.models.transformer import Transformer

    with nnx.use_eager_sharding(False):
        abstract = nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0)))
        key = jax.random.key(seed, impl="unsafe_rbg")  # threefry compiles slowly on XLA:CPU
        state = jax.jit(lambda: nnx.state(Transformer(cfg, rngs=nnx.Rngs(key))))()
    return nnx.merge(nnx.graphdef(abstract), state)


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def measure(name: str, run, batch: int, new_tokens: int, repeats: int) -> tuple[dict, object]:
    """``run(n)`` generates ``n`` new tokens for the batch and returns the ids ``[b, n]``."""
    start = time.perf_counter()
    ids = run(new_tokens)
    first = time.perf_counter() - start
    start = time.perf_counter()
    run(1)
    first_one = time.perf_counter() - start
    full, one = [], []
    for _ in range(repeats):  # interleaved, so drift on a shared machine hits both alike
        full += timed(lambda: run(new_tokens), 1)
        one += timed(lambda: run(1), 1)
    t_full, t_one = statistics.median(full), statistics.median(one)
    per_token = (t_full - t_one) / (new_tokens - 1)
    result = {
        "first_call_s": round(first, 3),  # ours: includes tracing and compiling
        "first_one_token_call_s": round(first_one, 3),
        "median_s": round(t_full, 4),
        "runs_s": [round(x, 4) for x in full],
        "new_tokens_per_s": round(batch * new_tokens / t_full, 1),
        "prefill_and_first_token_s": round(t_one, 4),
        "per_decode_step_ms": round(1e3 * per_token, 3),
        "decode_tokens_per_s": round(batch / per_token, 1) if per_token > 0 else None,
    }
    print(f"{name:>15} batch {batch:2d}: {result['new_tokens_per_s']:8.1f} new tokens/s "
          f"(median {t_full:.3f} s for {new_tokens}; prefill {t_one * 1e3:.1f} ms, "
          f"{per_token * 1e3:.2f} ms/step; first call {first:.2f} s)", flush=True)
    return result, ids


def token_step_alone(model, prompts, new_tokens: int, repeats: int) -> dict:
    """Where our time goes: the model's own token step (``Transformer.decode_step`` + argmax,
    jitted, the cache donated) run ``new_tokens - 1`` times back to back with one wait at the
    end, against ``generate``'s per-step time, which adds a host round trip per token (the
    "every row stopped?" check) and the per-step key derivation."""
    import functools

    import jax
    import jax.numpy as jnp
    from flax import nnx

    batch, prompt_len = prompts.shape
    cache_len = -(-(prompt_len + new_tokens) // prompt_len) * prompt_len

    @functools.partial(jax.jit, static_argnums=0)
    def prefill(graphdef, state, tokens_bt):
        m = nnx.merge(graphdef, state)
        cache = m.init_cache(tokens_bt.shape[0], cache_len)
        lengths_b = jnp.full((tokens_bt.shape[0],), tokens_bt.shape[1], jnp.int32)
        logits_bv, cache = m.prefill(tokens_bt, lengths_b, cache)
        return jnp.argmax(logits_bv, -1).astype(jnp.int32), cache

    @functools.partial(jax.jit, static_argnums=0, donate_argnums=2)
    def step(graphdef, state, cache, tokens_b):
        logits_bv, cache = nnx.merge(graphdef, state).decode_step(tokens_b, cache)
        return jnp.argmax(logits_bv, -1).astype(jnp.int32), cache

    graphdef, state = nnx.split(model)
    tokens_bt = jnp.asarray(prompts)

    def run():
        token_b, cache = jax.block_until_ready(prefill(graphdef, state, tokens_bt))
        start = time.perf_counter()
        for _ in range(new_tokens - 1):
            token_b, cache = step(graphdef, state, cache, token_b)
        jax.block_until_ready(token_b)
        return time.perf_counter() - start

    run()  # compile
    per_step = statistics.median(run() for _ in range(repeats)) / (new_tokens - 1)
    return {"per_decode_step_ms": round(1e3 * per_step, 3),
            "decode_tokens_per_s": round(batch / per_step, 1),
            "batch": batch}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--prompt-len", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "decode.json")
    args = parser.parse_args(argv)

    import jax
    import numpy as np
    import torch
    import transformers

    from astrojax.models.decode import generate
    from astrojax.models.hf import to_hf

    cfg = quickstart_model_config()
    model = build_model(cfg, args.seed)
    folder = Path(tempfile.mkdtemp(prefix="decode-bench-"))
    to_hf(model, folder)
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.float32).eval()
    # No stop token on either side (transformers' Llama config defaults to eos 2): every run
    # makes exactly the tokens asked for.
    hf_model.generation_config.eos_token_id = None
    rng = np.random.default_rng(args.seed)
    default_threads = torch.get_num_threads()

    rows = []
    for batch in args.batches:
        # Byte ids (3..258), as the quickstart's tokenizer makes; every prompt the same length.
        prompts = rng.integers(3, 259, (batch, args.prompt_len)).astype(np.int32)

        def ours(n, prompts=prompts):
            out = generate(model, list(prompts), max_new_tokens=n,
                           length_bucket=args.prompt_len)
            return np.stack(out.tokens)

        input_ids = torch.as_tensor(prompts, dtype=torch.long)

        def theirs(n, input_ids=input_ids):
            with torch.no_grad():
                out = hf_model.generate(input_ids, attention_mask=torch.ones_like(input_ids),
                                        max_new_tokens=n, do_sample=False, pad_token_id=0)
            return out[:, input_ids.shape[1]:].numpy()

        row = {"batch": batch}
        row["astrojax"], ours_ids = measure("astrojax", ours, batch, args.new_tokens,
                                            args.repeats)
        # PyTorch's default is one intra-op thread per core; on a loaded shared machine its
        # OpenMP threads wait on each other, and one thread is several times faster. Both are
        # measured and the faster one is the comparison.
        for threads in sorted({1, default_threads}):
            torch.set_num_threads(threads)
            row[f"transformers_{threads}_threads"], hf_ids = measure(
                f"transformers/{threads}", theirs, batch, args.new_tokens, args.repeats)
        torch.set_num_threads(default_threads)
        row["astrojax_token_step_alone"] = token_step_alone(model, prompts, args.new_tokens,
                                                            args.repeats)
        print(f"{'step alone':>15} batch {batch:2d}: "
              f"{row['astrojax_token_step_alone']['per_decode_step_ms']:.2f} ms/step", flush=True)
        best = max((k for k in row if k.startswith("transformers_")),
                   key=lambda k: row[k]["new_tokens_per_s"])
        row["transformers_fastest"] = best
        row["speed_ratio_astrojax_over_transformers"] = round(
            row["astrojax"]["new_tokens_per_s"] / row[best]["new_tokens_per_s"], 2)
        # Same weights, greedy: the continuations agree until float32 rounding breaks a near
        # tie (random weights give flat distributions, so that can happen).
        same = ours_ids == hf_ids
        row["identical_tokens_before_first_difference"] = [
            int(np.argmin(r)) if not r.all() else len(r) for r in same]
        rows.append(row)

    result = {
        "what": "greedy decode throughput, the same weights in astrojax.models.generate and "
                "transformers' model.generate; median of interleaved repeats after a warm-up",
        "timings": LABEL,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "jax": jax.__version__,
                    "torch": torch.__version__, "transformers": transformers.__version__,
                    "torch_default_threads": default_threads,
                    "transformers_attention": hf_model.config._attn_implementation},
        "model": {"config": "configs/quickstart.py", "num_layers": cfg.num_layers,
                  "d_model": cfg.d_model, "num_heads": cfg.num_heads,
                  "num_kv_heads": cfg.num_kv_heads, "head_dim": cfg.head_dim,
                  "mlp_dim": cfg.mlp_dim, "vocab_size": cfg.vocab_size,
                  "scan_layers": cfg.scan_layers, "weights": f"random init, seed {args.seed}"},
        "astrojax_token_step_alone": token_step_alone.__doc__.split(":", 1)[1].strip()
        .replace("\n    ", " "),
        "prompt_len": args.prompt_len, "new_tokens": args.new_tokens,
        "repeats": args.repeats, "results": rows,
        "command": "python benchmarks/decode.py " + " ".join(argv or sys.argv[1:]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out.with_suffix(".png"))
    print(f"wrote {args.out}")
    return result


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = result["results"]
    x = np.arange(len(rows))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, key, title in ((axes[0], "new_tokens_per_s",
                            f"end to end ({result['new_tokens']} new tokens)"),
                           (axes[1], "decode_tokens_per_s", "decode steps only")):
        sides = ["astrojax"] + sorted(k for k in rows[0] if k.startswith("transformers_")
                                      and k != "transformers_fastest")
        width = 0.8 / len(sides)
        for i, side in enumerate(sides):
            values = [r[side][key] or 0 for r in rows]
            threads = side.split("_")[1] if side != "astrojax" else None
            label = side if threads is None else \
                f"transformers, {threads} thread{'s' if threads != '1' else ''}"
            bars = ax.bar(x + (i - (len(sides) - 1) / 2) * width, values, width, label=label)
            ax.bar_label(bars, fmt="%.0f", fontsize=7)
        if key == "decode_tokens_per_s":  # our token step without generate's host round trip
            alone = [r["astrojax_token_step_alone"]["decode_tokens_per_s"] for r in rows]
            ax.scatter(x - (len(sides) - 1) / 2 * width, alone, marker="_", s=400, color="k",
                       label="astrojax token step alone", zorder=3)
            for xi, value in zip(x, alone, strict=True):
                ax.annotate(f"{value:.0f}", (xi - (len(sides) - 1) / 2 * width, value),
                            textcoords="offset points", xytext=(0, 4), ha="center", fontsize=7)
            ax.legend(fontsize=7, loc="upper left")
        ax.margins(y=0.12)
        ax.set_xticks(x, [f"batch {r['batch']}" for r in rows])
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("new tokens / s")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"Greedy decoding, quickstart-sized model, prompt {result['prompt_len']} "
                 f"({result['timings']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
