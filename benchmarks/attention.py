"""Compares the attention kernels: median time, TFLOP/s and compiled peak memory.

    python benchmarks/attention.py                 # CPU sizes: 256 .. 8k tokens
    python benchmarks/attention.py --preset h200   # GPU sizes: 512 .. 32k tokens, bf16
    python benchmarks/attention.py --lengths 1024 --impls chunked torch_sdpa  # rows merged in

PyTorch's ``scaled_dot_product_attention`` (``torch_sdpa``, CPU, ``enable_gqa``, torch's own
threads set to the CPU count) runs beside ours when torch is installed (the ``bench`` extra):
its forward + backward is ``out.sum().backward()`` on leaf tensors, as ours is ``grad`` of the
sum. Rows of a run replace the same (impl, mode, causal, head_dim, seq_len) rows already in the
CSV, so a long sweep can run one length at a time. The table ``impl="auto"`` consults
(``astrojax/models/attention/auto_table.json``) is rewritten from the CSV for this backend
after every run into benchmarks/results (``--no-table`` to keep it; ``--table`` to rewrite it
from a CSV elsewhere, as benchmarks/gpu_check.sh does).

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
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

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


def torch_sdpa_fn(causal, mode):
    """PyTorch's SDPA on ``[b, heads, len, head_dim]`` leaf tensors: ``fn(q, k, v)`` runs the
    forward (under no_grad) or the forward and ``out.sum().backward()``."""
    import torch

    def fwd(q, k, v):
        with torch.no_grad():
            return torch.nn.functional.scaled_dot_product_attention(
                q, k, v, is_causal=causal, enable_gqa=True)

    def fwd_bwd(q, k, v):
        for x in (q, k, v):
            x.grad = None
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal,
                                                               enable_gqa=True)
        out.sum().backward()
        return q.grad

    return fwd if mode == "fwd" else fwd_bwd


def measure_torch(fn, args, repeats) -> tuple[float, float, float]:
    import numpy as np
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    tensors = [torch.from_numpy(np.asarray(x, np.float32).transpose(0, 2, 1, 3).copy())
               .requires_grad_() for x in args]
    fn(*tensors)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*tensors)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, float("nan"), float("nan")


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
    impls = ["xla", "blockwise", "chunked", "pallas", "auto"]
    if backend == "gpu":
        impls.insert(1, "cudnn")
    import jax

    if jax.device_count() > 1:
        impls.append("ring")
    impls.append("pallas_bundled")
    if backend == "cpu" and importlib.util.find_spec("torch") is not None:
        impls.append("torch_sdpa")
    return impls


ROW_KEY = ("impl", "mode", "causal", "head_dim", "seq_len")


def _typed(row: dict) -> dict:
    """A CSV row with its numbers and flags parsed back."""
    row = dict(row, causal=row["causal"] == "True")
    for k in ("head_dim", "seq_len", "batch", "heads", "kv_heads"):
        row[k] = int(row[k])
    for k in ("median_ms", "tflops", "peak_memory_mb", "temp_memory_mb"):
        row[k] = float(row[k]) if row.get(k) not in (None, "") else float("nan")
    return row


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open() as f:
        return [_typed(r) for r in csv.DictReader(f)]


def merge_rows(old: list[dict], new_rows: list[dict]) -> list[dict]:
    """``old`` rows with ``new_rows`` in place of those with the same key, sorted."""
    key = lambda r: tuple(str(r[k]) for k in ROW_KEY)  # noqa: E731
    merged = {key(r): r for r in old}
    merged.update({key(r): r for r in new_rows})
    return sorted(merged.values(), key=lambda r: (r["head_dim"], r["seq_len"], r["causal"],
                                                   r["mode"], r["impl"]))


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def write_auto_table(rows: list[dict], backend: str, source: Path) -> Path:
    """The measured times ``impl="auto"`` picks from: per (dtype, causal, head_dim, seq_len,
    mode) the median ms of every impl that ran (``ok``), ours and torch's."""
    from astrojax.models.attention import AUTO_TABLE

    table = json.loads(AUTO_TABLE.read_text()) if AUTO_TABLE.exists() else {}
    entries = {}
    for r in rows:
        if r.get("status") != "ok" or r["impl"] in ("auto", "ring"):
            continue
        key = (r["dtype"], r["causal"], r["head_dim"], r["seq_len"], r["mode"])
        entries.setdefault(key, {})[r["impl"]] = float(r["median_ms"])
    table[backend] = {
        "source": str(source.relative_to(ROOT) if source.is_relative_to(ROOT) else source),
        "written": time.strftime("%Y-%m-%d"),
        "shape": "batch, heads, kv_heads = " + ", ".join(
            str(rows[0][k]) for k in ("batch", "heads", "kv_heads")) if rows else "",
        "entries": [dict(dtype=d, causal=c, head_dim=h, seq_len=t, mode=m, times_ms=times)
                    for (d, c, h, t, m), times in sorted(entries.items())],
    }
    AUTO_TABLE.write_text(json.dumps(table, indent=1) + "\n")
    return AUTO_TABLE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=PRESETS, default="cpu")
    parser.add_argument("--impls", nargs="*", help="subset of impls (default: all available)")
    parser.add_argument("--lengths", nargs="*", type=int, help="override the preset lengths")
    parser.add_argument("--head-dims", nargs="*", type=int, default=(64, 128))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-table", action="store_true",
                        help="leave astrojax/models/attention/auto_table.json as it is")
    parser.add_argument("--table", action="store_true",
                        help="rewrite the auto table even when --out is not benchmarks/results")
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
    earlier = read_rows(out_csv)
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
                            if impl == "torch_sdpa":
                                ms, peak, temp = measure_torch(torch_sdpa_fn(causal, mode),
                                                               (q, k, v), args.repeats)
                                flops = attention_flops(b, n, seq_len, seq_len, head_dim,
                                                        causal, mode)
                                row.update(median_ms=round(ms, 3),
                                           tflops=round(flops / (ms * 1e-3) / 1e12, 4),
                                           peak_memory_mb=peak, temp_memory_mb=temp,
                                           status="ok")
                                rows.append(row)
                                print(" ".join(f"{k}={row.get(k, '')}" for k in FIELDS[1:]),
                                      flush=True)
                                write_csv(out_csv, merge_rows(earlier, rows))
                                continue
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
                        # rewritten as results come: a run cut short keeps what it measured
                        write_csv(out_csv, merge_rows(earlier, rows))
    rows = merge_rows(earlier, rows)
    plot(rows, args.out / f"attention_{backend}.png", backend)
    print(f"wrote {out_csv}", file=sys.stderr)
    if not args.no_table and (args.table or args.out.resolve() == RESULTS.resolve()):
        print(f"wrote {write_auto_table(rows, backend, out_csv)}", file=sys.stderr)


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
