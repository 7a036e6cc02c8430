"""Where the quickstart train step's time goes on this CPU, op by op.

    python benchmarks/profile_step.py                      # 16 x 256 (~2 min)
    python benchmarks/profile_step.py --batch 8 --seq 512  # the current quickstart's rows

Runs the quickstart-sized step (the model of benchmarks/step_vs_torch.py, one device) under
``jax.profiler`` with XLA:CPU's per-op trace events (``--xla_cpu_enable_xprof_traceme``), and
joins each event to the compiled HLO instruction of the same name, whose metadata carries the
JAX name stack (``jit(train_step)/transpose(jvp(mlp))/...``). Time is summed two ways: by the
model part and pass it belongs to (``mlp`` forward or backward; the attention sublayer split
into its kernel, its projections and the rest; ``embed``; the logits; the optimizer update
outside any model scope, ...; a fusion counts under the name of its root op), and by the kind
of XLA op (matmuls in YNNPACK fusions, layout copies, elementwise loop fusions). Op times are
summed over the threads that ran them, so their total exceeds the wall time on 2 cores. Writes
benchmarks/results/step_profile_cpu.json.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SCOPES = ("attention", "attn", "mlp", "embed", "logits", "norm", "rope", "block")


def part_of(op_name: str) -> str:
    """``forward/mlp``, ``backward/attention``, ``optimizer``, ... from a name stack."""
    if not op_name:
        return "unnamed"
    backward = "transpose(" in op_name
    forward = "jvp(" in op_name and not backward
    names = re.findall(r"[A-Za-z_]+", op_name.replace("jit(train_step)", ""))
    scope = next((n for n in names if n in SCOPES), None)
    if scope is None:
        if not (backward or forward):
            return "optimizer and step"
        return f"{'backward' if backward else 'forward'}/other"
    if scope == "attention":  # the sublayer: split its kernel from its projections
        kernel = r"bkgts|btkgh|bkr[sh]|bksh->|_where|/exp|reduce_max|/(le|eq|and|ne|is_finite)$"
        if re.search(kernel, op_name):
            scope = "attention kernel (scores, masks, softmax)"
        elif re.search(r"btd,d|nhd->btd", op_name):
            scope = "attention projections"
        else:
            scope = "attention norm, rope, reshapes"
    return f"{'backward' if backward else 'forward'}/{scope}"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--attention_impl", default=None,
                        help="override the config's model.attention_impl (default: auto)")
    parser.add_argument("--out", type=Path, default=RESULTS / "step_profile_cpu.json")
    args = parser.parse_args(argv)
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               " --xla_cpu_enable_xprof_traceme=true")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import jax
    from step_vs_torch import Ours, quickstart_config

    cfg = quickstart_config(args.batch, args.seq)
    if args.attention_impl:
        cfg.model.attention_impl = args.attention_impl
    ours = Ours(cfg)
    batches = ours.batches(args.steps)
    ours.run(batches[:2])  # compile, warm up
    with jax.set_mesh(ours.mesh):
        hlo = ours.program.train_step.lower(
            ours.state, ours.program.shard(batches[0])).compile().as_text()
    names = {m.group(1): m.group(2) for m in re.finditer(
        r"%([\w.\-]+) = .*?op_name=\"([^\"]*)\"", hlo)}
    folder = tempfile.mkdtemp()
    jax.profiler.start_trace(folder)
    wall = ours.run(batches)
    jax.profiler.stop_trace()
    trace = sorted(glob.glob(f"{folder}/plugins/profile/*/*.trace.json.gz"))[-1]
    events = [e for e in json.load(gzip.open(trace))["traceEvents"] if e.get("ph") == "X"]
    by_part, by_kind, by_op = (collections.Counter() for _ in range(3))
    for e in events:
        name = e["name"]
        if name not in names and not re.match(r"[\w\-]+(\.\d+)?$", name):
            continue  # Python frames, executor bookkeeping
        if name.startswith(("PjitFunction", "SlinkyThreadPool", "ThunkExecutor")):
            continue
        ms = e.get("dur", 0) / 1e3 / len(batches)
        by_part[part_of(names.get(name, ""))] += ms
        by_kind[re.sub(r"\.\d+$", "", name)] += ms
        by_op[name] += ms
    step_ms = 1e3 * wall / len(batches)
    result = {
        "command": "python benchmarks/profile_step.py " + " ".join(sys.argv[1:]),
        "machine": f"{os.cpu_count()} CPUs; run alone", "jax": jax.__version__,
        "batch": args.batch, "seq_len": args.seq, "steps": len(batches),
        "attention_impl": cfg.model.attention_impl,
        "wall_ms_per_step": round(step_ms, 1),
        "op_ms_per_step_summed_over_threads": round(sum(by_part.values()), 1),
        "by_part_ms": {k: round(v, 1) for k, v in by_part.most_common()},
        "by_op_kind_ms": {k: round(v, 1) for k, v in by_kind.most_common(15)},
        "top_ops": [{"op": k, "ms": round(v, 2), "jax": names.get(k, "")}
                    for k, v in by_op.most_common(40)],
    }
    key = f"{args.batch}x{args.seq}"
    old = json.loads(args.out.read_text()) if args.out.exists() else {}
    old[key] = result
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(old, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
