"""Graph VAE training throughput per size bucket, and compilations over an epoch of mixed graphs.

    python benchmarks/graph_vae.py                # configs/graph_vae.py, one epoch
    python benchmarks/graph_vae.py --steps 20     # timed steps per bucket

Part 1 times the jitted train step (median of ``--steps`` after a warm-up, each blocked until
ready) on batches padded to the smallest and the largest bucket, and reports graphs/s and the
share of padded node slots that hold real nodes. Part 2 runs one epoch of the shuffled train
set through the step and counts compilations (the jit cache size), beside how many distinct
shapes the same batches would have had if each were padded only to its own size (no buckets).
Writes ``benchmarks/results/graph_vae_<backend>.json`` and ``graph_vae_<backend>.png``.
"""

import argparse
import json
import runpy
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def timed_steps(program, state, batch, steps):
    import jax

    sharded = program.shard(batch)
    state, metrics = program.train_step(state, sharded)  # compile + warm up
    jax.block_until_ready(metrics)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        state, metrics = program.train_step(state, sharded)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)
    return state, statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "graph_vae.py"))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args(argv)

    import jax

    from astrojax.sharding import make_mesh
    from astrojax.tasks import get_task
    from astrojax.train.step import build_program

    cfg = runpy.run_path(args.config)["get_config"]()
    task = get_task(cfg)
    program = build_program(cfg, task, make_mesh(cfg.mesh, jax.devices()))
    state = program.init()
    num_train = len(task.examples["train"])
    batch_size = cfg.train.global_batch_size
    buckets = task.buckets
    print(f"{num_train} train graphs, batches of {batch_size} in {task.num_sub_batches} "
          f"sub-batches; buckets {[(b.nodes, b.edges) for b in buckets]}", flush=True)

    # Part 1: throughput at the smallest and the largest bucket, on real batches that fit.
    it = iter(task.train_data(0, 1))
    per_bucket = {}
    for _ in range(200):
        batch = next(it)
        per_bucket.setdefault(batch["nodes"].shape[1], batch)
        if len(per_bucket) == len(buckets):
            break
    throughput = []
    for b in (min(buckets), max(buckets)):
        if b.nodes not in per_bucket:
            continue
        batch = per_bucket[b.nodes]
        state, seconds = timed_steps(program, state, batch, args.steps)
        real = float(batch["node_mask"].mean())
        row = {"bucket_nodes": b.nodes, "bucket_edges": b.edges,
               "step_ms": 1000 * seconds, "graphs_per_second": batch_size / seconds,
               "real_node_fraction": real, "real_edge_fraction": float(batch["edge_mask"].mean())}
        throughput.append(row)
        print(json.dumps(row), flush=True)

    # Part 2: one epoch of the shuffled train set.
    program = build_program(cfg, task, make_mesh(cfg.mesh, jax.devices()))
    state = program.init()
    ds = task._dataset("train", 0, 1, shuffle=True, num_epochs=args.epochs)
    used, exact_shapes, real_nodes, padded_nodes, graphs_seen = Counter(), set(), 0, 0, 0
    start = time.perf_counter()
    for batch in ds:
        state, metrics = program.train_step(state, program.shard(batch))
        used[batch["nodes"].shape[1]] += 1
        per_sub = batch["n_node"][:, :-1].sum(1), batch["n_edge"][:, :-1].sum(1)
        exact_shapes.add((int(per_sub[0].max()) + 1, int(per_sub[1].max())))
        real_nodes += int(batch["node_mask"].sum())
        padded_nodes += batch["node_mask"].size
        graphs_seen += int(batch["graph_mask"].sum())
    jax.block_until_ready(metrics)
    epoch = {"epochs": args.epochs, "batches": sum(used.values()), "graphs": graphs_seen,
             "seconds": time.perf_counter() - start,
             "compilations": int(program.train_step._cache_size()),
             "buckets_used": {str(k): v for k, v in sorted(used.items())},
             "distinct_shapes_without_buckets": len(exact_shapes),
             "real_node_fraction": real_nodes / padded_nodes}
    print(json.dumps(epoch), flush=True)

    backend = jax.default_backend()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"backend": backend, "devices": jax.device_count(), "config": Path(args.config).name,
           "global_batch_size": batch_size, "sub_batches": task.num_sub_batches,
           "buckets": [[b.nodes, b.edges] for b in buckets], "throughput": throughput,
           "epoch": epoch}
    path = RESULTS / f"graph_vae_{backend}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    plot(out, RESULTS / f"graph_vae_{backend}.png")
    print(f"wrote {path}")
    return 0


def plot(out, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    labels = [f"{r['bucket_nodes']} nodes\n{r['bucket_edges']} edges" for r in out["throughput"]]
    left.bar(labels, [r["graphs_per_second"] for r in out["throughput"]], color="tab:blue")
    left.set_ylabel("graphs / s (train step)")
    left.set_title(f"Throughput per bucket ({out['backend']}, batch {out['global_batch_size']})")
    used = out["epoch"]["buckets_used"]
    right.bar([f"{k} nodes" for k in used], list(used.values()), color="tab:orange")
    right.set_ylabel("batches in one epoch")
    right.set_title(f"{out['epoch']['compilations']} compilations vs "
                    f"{out['epoch']['distinct_shapes_without_buckets']} shapes unbucketed")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
