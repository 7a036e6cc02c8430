"""8-bit AdamW against float32 AdamW: optimizer-state bytes, and the quickstart's loss curve.

    nice python benchmarks/optimizer_memory.py              # state bytes + two quickstart runs
    nice python benchmarks/optimizer_memory.py --skip-runs  # state bytes only (seconds)
    python benchmarks/optimizer_memory.py --reuse           # re-read the two runs' workdirs
    python benchmarks/optimizer_memory.py --plans           # llm_1b dry runs (8 fake devices)

State bytes are those of the optimizer state's arrays (moments, 8-bit codes, block scales,
counters), computed abstractly (``jax.eval_shape``: nothing is allocated) for the quickstart
model and for a Llama-3.2-1B-like shape. The loss curves come from the README quickstart command
run twice with the same data and seed, once per optimizer (``--config.optim.optimizer``).

``--plans`` adds the dry runs (astrojax.train.plan) of configs/llm_1b.py on 8 fake CPU devices
with float32 AdamW, 8-bit AdamW, and 8-bit AdamW with 4 accumulation steps: per-device
optimizer state and XLA's temporaries as compiled.

Writes benchmarks/results/optimizer_memory.json and optimizer_memory_loss.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

if "--plans" in sys.argv:  # the dry runs plan for 8 devices: fake them before JAX starts
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_force_host_platform_device_count=8").strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "configs"))

from astrojax.config import Config, TransformerConfig  # noqa: E402
from astrojax.tasks import get_task  # noqa: E402
from astrojax.train.optim import make_optimizer  # noqa: E402
from astrojax.train.step import abstract_model  # noqa: E402

COMMAND = [sys.executable, "-m", "astrojax.train", "--config", "configs/quickstart.py"]

# Llama 3.2 1B's shape (Hugging Face config): tied embeddings, 16 layers, GQA 32/8 heads.
LLAMA_1B = TransformerConfig(vocab_size=128256, d_model=2048, num_layers=16, num_heads=32,
                             num_kv_heads=8, head_dim=64, mlp_dim=8192, max_seq_len=8192,
                             tie_embeddings=True)


def tree_bytes(tree) -> int:
    return int(sum(np.prod(x.shape, dtype=np.int64) * np.dtype(x.dtype).itemsize
                   for x in jax.tree.leaves(tree)))


def state_bytes(model: TransformerConfig, label: str) -> dict:
    """Optimizer-state bytes of float32 AdamW and 8-bit AdamW (the embedding's moments in
    float32, the default; and with optim.stable_embedding=False, in 8 bits too) for
    ``model``."""
    cfg = Config(task="lm", model=model)
    _, params = abstract_model(get_task(cfg), 0)
    params = jax.tree.map(lambda v: jax.ShapeDtypeStruct(v.shape, v.dtype), params)
    out = {"model": label, "parameters": int(sum(np.prod(x.shape, dtype=np.int64)
                                                 for x in jax.tree.leaves(params))),
           "parameter_bytes": tree_bytes(params)}
    for name in ("adamw", "adamw8bit"):
        cfg.optim.optimizer = name
        tx, _ = make_optimizer(cfg.optim, 100)
        out[f"{name}_state_bytes"] = tree_bytes(jax.eval_shape(tx.init, params))
    cfg.optim.stable_embedding = False
    tx, _ = make_optimizer(cfg.optim, 100)
    out["adamw8bit_embedding_8bit_state_bytes"] = tree_bytes(jax.eval_shape(tx.init, params))
    fp32 = out["adamw_state_bytes"]
    out["ratio_8bit_to_fp32"] = round(out["adamw8bit_state_bytes"] / fp32, 4)
    out["ratio_8bit_embedding_8bit_to_fp32"] = round(
        out["adamw8bit_embedding_8bit_state_bytes"] / fp32, 4)
    out["block_size"], out["min_8bit_size"] = cfg.optim.block_size, cfg.optim.min_8bit_size
    return out


def quickstart_run(workdir: Path, optimizer: str, reuse: bool) -> dict:
    wall = None
    if not reuse:
        shutil.rmtree(workdir, ignore_errors=True)
        start = time.perf_counter()
        subprocess.run([*COMMAND, "--workdir", str(workdir),
                        f"--config.optim.optimizer={optimizer}"], cwd=ROOT, check=True)
        wall = time.perf_counter() - start
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "loss" in r]
    evals = [r for r in rows if "eval/loss" in r]
    test = {k.removeprefix("test/"): v for r in rows for k, v in r.items()
            if k.startswith("test/") and "baseline" not in k}
    return {
        "command": " ".join(["python -m astrojax.train --config configs/quickstart.py",
                             f"--config.optim.optimizer={optimizer}"]),
        "wall_seconds_shared_2core_cpu": None if wall is None else round(wall, 1),
        "steps": train[-1]["step"],
        "train_loss_curve": [(r["step"], r["loss"]) for r in train],
        "final_train_loss": train[-1]["loss"],
        "eval_loss_curve": [(r["step"], r["eval/loss"]) for r in evals],
        "final_eval_loss": evals[-1]["eval/loss"] if evals else None,
        "final_eval_accuracy": evals[-1]["eval/accuracy"] if evals else None,
        "test": test,
        "ngram8_eval_loss": evals[-1].get("eval/baseline/ngram8/loss") if evals else None,
    }


def plot(runs: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for (name, run), color in zip(runs.items(), ("C0", "C3"), strict=False):
        steps, losses = zip(*run["train_loss_curve"], strict=True)
        ax.plot(steps, losses, color=color, label=f"{name}: train")
        if run["eval_loss_curve"]:
            steps, losses = zip(*run["eval_loss_curve"], strict=True)
            ax.plot(steps, losses, "o--", color=color, label=f"{name}: eval (val split)")
    baseline = next(iter(runs.values()))["ngram8_eval_loss"]
    if baseline is not None:
        ax.axhline(baseline, color="gray", ls=":", label="8-gram model (eval)")
    ax.set_yscale("log")
    ax.set_xlabel("optimizer update")
    ax.set_ylabel("loss (nats per byte)")
    ax.set_title("quickstart: float32 AdamW vs 8-bit AdamW (same data and seed)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def llm_1b_plans() -> dict:
    from astrojax.cli import load_config_file
    from astrojax.train.plan import format_plan, plan_run

    out = {}
    for name, optimizer, k in (("adamw", "adamw", 1), ("adamw8bit", "adamw8bit", 1),
                               ("adamw8bit+accumulation_4", "adamw8bit", 4)):
        cfg = load_config_file(ROOT / "configs" / "llm_1b.py")
        cfg.optim.optimizer, cfg.optim.accumulation_steps = optimizer, k
        plan = plan_run(cfg)
        out[name] = {"command": "python -m astrojax.train --config configs/llm_1b.py --dry_run "
                                f"--dry_run_devices=8 --config.optim.optimizer={optimizer}"
                                + (f" --config.optim.accumulation_steps={k}" if k > 1 else ""),
                     **{key: value for key, value in plan.as_dict().items()
                        if key in ("mesh", "params", "optimizer_state", "temporaries", "peak")},
                     "text": format_plan(plan)}
        print(out[name]["text"], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-runs", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="read the runs' workdirs")
    parser.add_argument("--workdir", default=str(ROOT / "runs" / "optimizer_memory"))
    parser.add_argument("--plans", action="store_true", help="only the llm_1b dry runs")
    args = parser.parse_args()
    out = RESULTS / "optimizer_memory.json"
    if args.plans:
        result = json.loads(out.read_text()) if out.exists() else {}
        result["llm_1b_dry_runs_8_fake_cpu_devices"] = llm_1b_plans()
        out.write_text(json.dumps(result, indent=2) + "\n")
        return

    from quickstart import get_config

    result = {
        "machine": {"platform": platform.platform(), "cpus": 2, "note": "shared 2-core CPU",
                    "python": platform.python_version(), "jax": jax.__version__,
                    "backend": jax.default_backend()},
        "state_bytes": [state_bytes(get_config().model, "quickstart (configs/quickstart.py)"),
                        state_bytes(LLAMA_1B, "Llama-3.2-1B-like (abstract shapes)")],
        "goal": {"state_bytes_ratio": "<= 0.30", "final_loss_gap": "<= 2%"},
    }
    print(json.dumps(result["state_bytes"], indent=2))
    if not args.skip_runs:
        runs = {name: quickstart_run(Path(args.workdir) / name, name, args.reuse)
                for name in ("adamw", "adamw8bit")}
        fp32, q8 = runs["adamw"], runs["adamw8bit"]
        result["quickstart_runs"] = runs
        result["quickstart_runs_note"] = (
            "the README quickstart command in full (300 updates of 8 x 512 bytes, the same data "
            "and seed), once per optimizer, on one CPU device of a shared 2-core CPU; wall "
            "times (null when re-read with --reuse) depend on the machine's load, not on the "
            "optimizer")
        result["final_loss_gap"] = {
            key: round((q8[key] - fp32[key]) / fp32[key], 4)
            for key in ("final_train_loss", "final_eval_loss") if fp32[key] is not None}
        if fp32["test"].get("loss") and q8["test"].get("loss"):
            result["final_loss_gap"]["test_loss"] = round(
                (q8["test"]["loss"] - fp32["test"]["loss"]) / fp32["test"]["loss"], 4)
        plot(runs, RESULTS / "optimizer_memory_loss.png")
        print(json.dumps(result["final_loss_gap"], indent=2))
    # keep what this invocation did not redo: the runs of an earlier one, and --plans' dry runs
    previous = json.loads(out.read_text()) if out.exists() else {}
    for key in ("quickstart_runs", "final_loss_gap", "llm_1b_dry_runs_8_fake_cpu_devices"):
        if key in previous and key not in result:
            result[key] = previous[key]
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
