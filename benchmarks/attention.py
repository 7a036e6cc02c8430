"""Compares the attention kernels: median time, TFLOP/s and compiled peak memory.

    python benchmarks/attention.py                 # CPU sizes: 256 .. 8k tokens
    python benchmarks/attention.py --preset h200   # GPU sizes: 512 .. 32k tokens, bf16

Every impl that runs on the backend, over sequence lengths, head dims 64 and 128, causal and
not, forward and forward+backward. Time is the median over ``--repeats`` runs after a warm-up
(each blocked until ready). FLOPs count only the (query, key) pairs the mask keeps, so causal
attention is credited with about half of the full work; the backward is counted as 2.5x the
forward (its five matmuls against the forward's two), recomputation not credited. Memory is
the compiled executable's ``memory_analysis()``: temporaries plus arguments plus outputs.
Writes ``benchmarks/results/attention_<backend>.csv`` and ``attention_<backend>.png``.
"""

import argparse
import csv
import functools
import os
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"

PRESETS = {
    # batch, query heads, kv heads, lengths, dtype
    "cpu": dict(batch=1, heads=8, kv_heads=2, lengths=(256, 512, 1024, 2048, 4096, 8192),
                dtype="float32", slow_impl_max_len=512),
    "h200": dict(batch=4, heads=16, kv_heads=4,
                 lengths=(512, 1024, 2048, 4096, 8192, 16384, 32768), dtype="bfloat16",
                 slow_impl_max_len=None),
}
FIELDS = ("backend", "impl", "mode", "causal", "head_dim", "seq_len", "batch", "heads",
          "kv_heads", "dtype", "median_ms", "tflops", "peak_memory_mb", "temp_memory_mb",
          "status")


def attention_flops(batch, heads, q_len, kv_len, head_dim, causal, mode) -> float:
    pairs = q_len * (q_len + 1) / 2 if causal and q_len == kv_len else q_len * kv_len
    forward = 4.0 * batch * heads * pairs * head_dim
    return forward * (3.5 if mode == "fwd+bwd" else 1.0)


def bundled_pallas_mha(q, k, v, *, causal, interpret):
    """jax's own Pallas GPU kernel as an outside baseline (no GQA: K/V repeated for it)."""
    from jax.experimental.pallas.ops.gpu import attention as pallas_gpu

    group = q.shape[2] // k.shape[2]
    k, v = (x.repeat(group, axis=2) for x in (k, v))
    return pallas_gpu.mha(q, k, v, segment_ids=None, causal=causal, interpret=interpret)


def make_fn(impl, causal, mode, backend):
    import jax

    from astrojax.models.attention import attention

    if impl == "pallas_bundled":
        fwd = functools.partial(bundled_pallas_mha, causal=causal,
                                interpret=backend != "gpu")
    else:
        fwd = functools.partial(attention, impl=impl, causal=causal)
    if mode == "fwd":
        return jax.jit(lambda q, k, v: fwd(q, k, v))

    def loss(q, k, v):
        return fwd(q, k, v).astype("float32").sum()

    return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))


def measure(fn, args, repeats) -> tuple[float, float, float]:
    import jax

    compiled = fn.lower(*args).compile()
    analysis = compiled.memory_analysis()
    temp = peak = float("nan")
    if analysis is not None:
        temp = analysis.temp_size_in_bytes / 2**20
        peak = (analysis.temp_size_in_bytes + analysis.argument_size_in_bytes
                + analysis.output_size_in_bytes) / 2**20
    jax.block_until_ready(compiled(*args))  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, peak, temp


def available_impls(backend: str) -> list[str]:
    impls = ["xla", "blockwise", "pallas", "auto"]
    if backend == "gpu":
        impls.insert(1, "cudnn")
    import jax

    if jax.device_count() > 1:
        impls.append("ring")
    impls.append("pallas_bundled")
    return impls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=PRESETS, default="cpu")
    parser.add_argument("--impls", nargs="*", help="subset of impls (default: all available)")
    parser.add_argument("--lengths", nargs="*", type=int, help="override the preset lengths")
    parser.add_argument("--head-dims", nargs="*", type=int, default=(64, 128))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--devices", type=int, default=0,
                        help="CPU only: fake host devices for ring attention (0: leave as is)")
    args = parser.parse_args()
    if args.devices:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_force_host_platform_device_count={args.devices}")
    import jax
    import jax.numpy as jnp

    from astrojax.config import MeshConfig
    from astrojax.sharding import make_mesh

    preset = PRESETS[args.preset]
    backend = jax.default_backend()
    impls = args.impls or available_impls(backend)
    lengths = args.lengths or preset["lengths"]
    dtype = jnp.dtype(preset["dtype"])
    b, n, kh = preset["batch"], preset["heads"], preset["kv_heads"]
    mesh = make_mesh(MeshConfig(data=1, context=-1)) if "ring" in impls else None
    args.out.mkdir(parents=True, exist_ok=True)
    out_csv = args.out / f"attention_{backend}.csv"
    rows = []
    for head_dim in args.head_dims:
        for seq_len in lengths:
            key = jax.random.key(seq_len + head_dim)
            kq, kk, kv = jax.random.split(key, 3)
            q = jax.random.normal(kq, (b, seq_len, n, head_dim), dtype)
            k = jax.random.normal(kk, (b, seq_len, kh, head_dim), dtype)
            v = jax.random.normal(kv, (b, seq_len, kh, head_dim), dtype)
            for impl in impls:
                slow = impl in ("pallas", "pallas_bundled") and backend != "gpu"
                for causal in (True, False):
                    for mode in ("fwd", "fwd+bwd"):
                        row = dict(backend=backend, impl=impl, mode=mode, causal=causal,
                                   head_dim=head_dim, seq_len=seq_len, batch=b, heads=n,
                                   kv_heads=kh, dtype=dtype.name)
                        if slow and seq_len > (preset["slow_impl_max_len"] or 0):
                            continue  # interpret mode: minutes per call, says nothing of speed
                        try:
                            fn = make_fn(impl, causal, mode, backend)
                            if impl == "ring":
                                with jax.set_mesh(mesh):
                                    ms, peak, temp = measure(fn, (q, k, v), args.repeats)
                            else:
                                ms, peak, temp = measure(fn, (q, k, v), args.repeats)
                            flops = attention_flops(b, n, seq_len, seq_len, head_dim, causal,
                                                    mode)
                            row.update(median_ms=round(ms, 3),
                                       tflops=round(flops / (ms * 1e-3) / 1e12, 4),
                                       peak_memory_mb=round(peak, 2),
                                       temp_memory_mb=round(temp, 2),
                                       status="interpret" if slow else "ok")
                        except Exception as err:  # recorded, not hidden: the CSV says why
                            row.update(status=f"error: {type(err).__name__}: "
                                              f"{str(err).splitlines()[0][:120]}")
                        rows.append(row)
                        print(" ".join(f"{k}={row.get(k, '')}" for k in FIELDS[1:]),
                              flush=True)
                        with out_csv.open("w", newline="") as f:  # rewritten as results come
                            writer = csv.DictWriter(f, FIELDS)
                            writer.writeheader()
                            writer.writerows(rows)
    plot(rows, args.out / f"attention_{backend}.png", backend)
    print(f"wrote {out_csv}", file=sys.stderr)


def plot(rows, path: Path, backend: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if str(r.get("status", "")).startswith(("ok", "interpret"))]
    head_dims = sorted({r["head_dim"] for r in ok})
    fig, axes = plt.subplots(2, 2 * len(head_dims), figsize=(6 * len(head_dims) * 2, 8),
                             squeeze=False)
    for col, (head_dim, mode) in enumerate((h, m) for h in head_dims
                                           for m in ("fwd", "fwd+bwd")):
        for impl in sorted({r["impl"] for r in ok}):
            sel = sorted((r for r in ok if r["impl"] == impl and r["mode"] == mode
                          and r["head_dim"] == head_dim and r["causal"]),
                         key=lambda r: r["seq_len"])
            if not sel:
                continue
            xs = [r["seq_len"] for r in sel]
            axes[0, col].plot(xs, [r["tflops"] for r in sel], "o-", label=impl)
            axes[1, col].plot(xs, [r["peak_memory_mb"] for r in sel], "o-", label=impl)
        axes[0, col].set(title=f"{mode}, head_dim {head_dim}, causal", ylabel="TFLOP/s",
                         xscale="log", xlabel="sequence length")
        axes[1, col].set(ylabel="peak memory (MB)", xscale="log", yscale="log",
                         xlabel="sequence length")
        axes[0, col].legend(fontsize=8)
    fig.suptitle(f"attention kernels on {backend}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    main()
