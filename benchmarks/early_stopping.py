"""Early stopping on a run that overfits: the same run trained to the end and stopped early.

    python benchmarks/early_stopping.py     # two runs, ~25 min on the shared 2-core CPU

The quickstart's language model, made smaller (d_model 64, 2 layers) and given 32 training
planets' descriptions (planets.num_planets=64, a quarter each for val and test), overfits:
its val loss bottoms out and rises while the train loss keeps falling. Run "full" trains all
400 steps (no train.best_metric: the test split scores the last step); run "early" watches
eval/loss with patience 3 evals (60 steps) and scores the test split with its best step's
parameters. Both beside the test split's baselines (uniform, unigram and 8-gram models).

Writes benchmarks/results/early_stopping.json and early_stopping.png (python -m astrojax.plot
of both workdirs).
"""

import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
WORKDIRS = ROOT / "runs" / "benchmarks" / "early_stopping"
COMMAND = [sys.executable, "-m", "astrojax.train", "--config", "configs/quickstart.py",
           "--config.model.d_model=64", "--config.model.num_layers=2",
           "--config.model.head_dim=16", "--config.model.mlp_dim=192",
           "--config.planets.num_planets=64", "--config.planets.val_fraction=0.25",
           "--config.planets.test_fraction=0.25", "--config.train.steps=400",
           "--config.train.eval_every=20", "--config.train.eval_batches=2",
           "--config.train.log_every=20", "--config.train.checkpoint_every=100"]
EARLY = ["--config.train.best_metric=eval/loss", "--config.train.early_stopping_patience=3"]


def run(name: str, extra: list[str]) -> dict:
    workdir = WORKDIRS / name
    shutil.rmtree(workdir, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run([*COMMAND, *extra, "--workdir", str(workdir)], cwd=ROOT, check=True)
    wall = time.perf_counter() - start
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "loss" in r]
    evals = [r for r in rows if "eval/loss" in r]
    best = min(evals, key=lambda r: r["eval/loss"])
    return {
        "command": " ".join([*COMMAND[1:], *extra, "--workdir", f"runs/benchmarks/"
                                                                 f"early_stopping/{name}"]),
        "wall_seconds_shared_2core_cpu": round(wall, 1),
        "steps": train[-1]["step"],
        "final_train_loss": train[-1]["loss"],
        "eval_loss_curve": [(r["step"], round(r["eval/loss"], 4)) for r in evals],
        "lowest_eval_loss": {"step": best["step"], "eval/loss": best["eval/loss"]},
        "test": {k.removeprefix("test/"): v for r in rows for k, v in r.items()
                 if k.startswith("test/")},
        "kept_checkpoints": sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()
                                   if p.name.isdigit()),
    }


def main() -> None:
    results = {
        "what": "the same overfitting run trained to step 400 (full) and stopped early on "
                "eval/loss with patience 3 evals (early); test/ scores the last step (full) "
                "or the best one (early, test/from_step)",
        "machine": f"shared 2-core CPU ({platform.processor() or platform.machine()}), "
                   "wall times include compilation and evals",
        "full": run("full", []),
        "early": run("early", EARLY),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "early_stopping.json").write_text(json.dumps(results, indent=2) + "\n")
    subprocess.run([sys.executable, "-m", "astrojax.plot", str(WORKDIRS / "full"),
                    str(WORKDIRS / "early"), "--out", str(RESULTS / "early_stopping.png")],
                   cwd=ROOT, check=True)
    for name in ("full", "early"):
        r = results[name]
        test = r["test"]
        print(f"{name}: {r['steps']} steps in {r['wall_seconds_shared_2core_cpu']} s, test "
              f"loss {test['loss']:.4f} (step {test.get('from_step', r['steps'])}'s "
              f"parameters); 8-gram {test['baseline/ngram8/loss']:.4f}")


if __name__ == "__main__":
    main()
