"""Times the README quickstart end to end and the train step's steady-state throughput.

    python benchmarks/quickstart.py            # full quickstart run + step timing (~5 min)
    python benchmarks/quickstart.py --skip-run # step timing only
    python benchmarks/quickstart.py --reuse    # read the last run's workdir, time the step

Writes benchmarks/results/quickstart.json and quickstart_loss.png (the run's loss curves).
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
COMMAND = [sys.executable, "-m", "astrojax.train", "--config", "configs/quickstart.py"]


def time_quickstart(workdir: Path, reuse: bool = False) -> dict:
    """Runs the README command in a fresh workdir; returns wall time and the loss it reached.
    ``reuse``: read a finished run's workdir instead (no wall time then)."""
    wall = None
    if not reuse:
        shutil.rmtree(workdir, ignore_errors=True)
        start = time.perf_counter()
        subprocess.run([*COMMAND, "--workdir", str(workdir)], cwd=ROOT, check=True)
        wall = time.perf_counter() - start
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "loss" in r]
    evals = [r for r in rows if "eval/loss" in r]
    baselines = {k.removeprefix("eval/baseline/"): v for k, v in evals[-1].items()
                 if k.startswith("eval/baseline/")} if evals else {}
    return {
        "wall_seconds": None if wall is None else round(wall, 1),
        "steps": train[-1]["step"],
        "first_logged_loss": train[0]["loss"],
        "final_loss": train[-1]["loss"],
        "eval_loss_curve": [(r["step"], r["eval/loss"]) for r in evals],
        "final_eval_accuracy": evals[-1]["eval/accuracy"] if evals else None,
        # the same held-out targets scored by closed-form rules and an n-gram model
        "eval_baselines": baselines,
        # the test split, scored once after the last step beside its own baselines
        "test": {k.removeprefix("test/"): v for r in rows for k, v in r.items()
                 if k.startswith("test/")},
        "median_logged_tokens_per_second": sorted(r["tokens_per_second"] for r in train)[
            len(train) // 2],
        # what the command prints at the end: a held-out planet's description, written by the
        # trained model (greedy) after the first sentence of the true one, and the truth
        "showcase": (workdir / "showcase.txt").read_text().rstrip("\n")
        if (workdir / "showcase.txt").exists() else None,
        "_rows": rows,
    }


def time_train_step(num_steps: int = 20) -> dict:
    """Median wall time of the jitted train step at the quickstart size on one device."""
    import jax
    import numpy as np

    from astrojax.sharding import make_mesh
    from astrojax.tasks import get_task
    from astrojax.train.loop import evaluate
    from astrojax.train.step import build_program

    sys.path.insert(0, str(ROOT / "configs"))
    from quickstart import get_config

    cfg = get_config()
    task = get_task(cfg)
    program = build_program(cfg, task, make_mesh(cfg.mesh, jax.devices()[:1]))
    state = program.init()
    it = iter(task.train_data(0, 1))
    batches = [program.shard(next(it)) for _ in range(num_steps + 1)]
    t0 = time.perf_counter()
    state, metrics = program.train_step(state, batches[0])
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - t0
    times = []
    for batch in batches[1:]:
        t0 = time.perf_counter()
        state, metrics = program.train_step(state, batch)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - t0)
    tokens = cfg.train.global_batch_size * cfg.data.seq_len
    median = float(np.median(times))
    untrained = evaluate(program, program.init().params, task.eval_data(0, 1))
    num_params = sum(x.size for x in jax.tree.leaves(state.params))
    return {"params": int(num_params), "tokens_per_step": tokens,
            "first_step_seconds_incl_compile": round(compile_s, 2),
            "median_step_seconds": round(median, 4),
            "tokens_per_second": round(tokens / median, 1),
            "untrained_eval_loss": round(untrained["loss"], 4)}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in rows if "loss" in r]
    evals = [r for r in rows if "eval/loss" in r]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["step"] for r in train], [r["loss"] for r in train], label="train")
    ax.plot([r["step"] for r in evals], [r["eval/loss"] for r in evals], "o-", label="eval")
    ax.set(xlabel="step", ylabel="loss (nats per byte)", title="quickstart on CPU")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-run", action="store_true", help="only time the train step")
    parser.add_argument("--workdir", default="runs/benchmark_quickstart")
    parser.add_argument("--reuse", action="store_true",
                        help="read the finished run in --workdir instead of running it again")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "python": platform.python_version()}}
    if not args.skip_run:
        run = time_quickstart(ROOT / args.workdir, args.reuse)
        plot(run.pop("_rows"), RESULTS / "quickstart_loss.png")
        result["quickstart"] = {"command": "python " + " ".join(COMMAND[1:]) + " --workdir ...",
                                **run}
    import jax

    result["machine"]["jax"] = jax.__version__
    result["machine"]["backend"] = jax.default_backend()
    result["train_step"] = time_train_step()
    out = RESULTS / "quickstart.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
