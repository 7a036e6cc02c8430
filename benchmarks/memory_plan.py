"""Memory plans of the Llama-sized configs, and, with a GPU, the device memory offload saves.

    python benchmarks/memory_plan.py             # dry runs on 8 fake CPU devices (~5 min)
    python benchmarks/memory_plan.py --measure   # on a GPU: train a few steps per offload
                                                 # setting and read the device's memory

The first writes ``plans`` into benchmarks/results/memory_plan.json: ``--dry_run`` of
configs/llm_1b.py and configs/llm_8b.py on 8 fake CPU devices (what README "Training at
scale" shows), and llm_8b with its optimizer state offloaded to pinned host memory. The
second (GPU only) adds ``measured``: a 1B-shaped model on one GPU trained for a few steps with
no offload, the optimizer state offloaded, and both optimizer state and parameters offloaded:
bytes in use and peak from ``memory_stats()``, the seconds per step, and the dry run's figures
for the same config on the same GPU beside them.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
OUT = RESULTS / "memory_plan.json"


def load_config(name: str):
    from astrojax.cli import load_config_file

    return load_config_file(ROOT / "configs" / f"{name}.py")


def plans() -> dict:
    from astrojax.train.plan import format_plan, plan_run

    out = {}
    for name, offload in (("llm_1b", False), ("llm_8b", False), ("llm_8b", True)):
        cfg = load_config(name)
        cfg.train.offload_optimizer = offload
        start = time.perf_counter()
        plan = plan_run(cfg)
        key = f"{name}{'+offload_optimizer' if offload else ''}"
        out[key] = {**plan.as_dict(), "text": format_plan(plan),
                    "wall_seconds": round(time.perf_counter() - start, 1)}
        print(out[key]["text"], flush=True)
    return out


def measure(steps: int) -> dict:
    """A 1B-shaped model (llm_1b with 8 rows of 2,048 tokens) on one GPU, per offload setting."""
    import tempfile

    import jax

    from astrojax.train.loop import train_and_evaluate
    from astrojax.train.plan import plan_run

    rows = {}
    for label, opt, params in (("none", False, False), ("optimizer", True, False),
                               ("optimizer+params", True, True)):
        cfg = load_config("llm_1b")
        cfg.train.global_batch_size = 8
        cfg.train.steps = steps
        cfg.train.eval_batches = 0
        cfg.train.checkpoint_every = 10**6
        cfg.train.log_every = 1
        cfg.train.offload_optimizer, cfg.train.offload_params = opt, params
        cfg.mesh.fsdp, cfg.mesh.tensor = 1, 1
        devices = jax.devices()[:1]
        plan = plan_run(cfg, devices)
        with tempfile.TemporaryDirectory() as workdir:
            result = train_and_evaluate(cfg, workdir, devices=devices)
            stats = devices[0].memory_stats() or {}
            records = [json.loads(line) for line in
                       (Path(workdir) / "metrics.jsonl").read_text().splitlines()]
        del result
        times = [1 / r["tokens_per_second"] * 8 * 2048 for r in records
                 if r.get("tokens_per_second")]
        rows[label] = {
            "bytes_in_use_after": stats.get("bytes_in_use"),
            "peak_bytes_in_use": stats.get("peak_bytes_in_use"),
            "seconds_per_step_median": sorted(times)[len(times) // 2] if times else None,
            "plan_peak": plan.peak, "plan_host_state": plan.host_state,
            "plan_temporaries": plan.temporaries,
        }
        print(label, rows[label], flush=True)
        jax.clear_caches()
    return {"device": str(jax.devices()[0].device_kind), "steps": steps, "rows": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", action="store_true", help="measure offload on a GPU")
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args(argv)
    if not args.measure:  # 8 fake CPU devices, set before JAX starts
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   " --xla_force_host_platform_device_count=8")
        os.environ["JAX_PLATFORMS"] = "cpu"
    import jax

    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    results.update({"machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
                    "jax": jax.__version__,
                    "command": "python " + " ".join(["benchmarks/memory_plan.py", *sys.argv[1:]])})
    if args.measure:
        if jax.default_backend() != "gpu":
            print("--measure needs a GPU (memory_stats() is None on CPU)", file=sys.stderr)
            return 2
        results["measured"] = measure(args.steps)
    else:
        results["plans"] = plans()
    RESULTS.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
