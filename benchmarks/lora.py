"""LoRA against full fine-tuning: the quickstart language model (trained on the planets'
descriptions) fine-tuned on the observing notes, a text it never saw.

    python benchmarks/lora.py                      # trains a short base first (see --base-steps)
    python benchmarks/lora.py --base runs/quickstart   # or fine-tunes an existing quickstart run

Both fine-tunings start from the same base weights, see the same batches and use the same
optimizer (configs/lora_quickstart.py's: AdamW 3e-3, warmup 10, cosine decay), for the same
steps. Measured: trainable parameters, optimizer-state and checkpoint bytes, seconds per step,
and the loss on the val planets' notes (what was learned) and descriptions (what was kept)
every ``--eval-every`` steps, beside the base model's and an 8-gram model's of the training
texts. To stay within a few minutes on a shared 2-core CPU the base is the quickstart config
trained for ``--base-steps`` (default 100, not the quickstart's 300) unless ``--base`` is given.
Writes benchmarks/results/lora.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import runpy
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from astrojax.sharding import make_mesh
from astrojax.tasks import get_task
from astrojax.tasks.base import WarmStart
from astrojax.train.loop import evaluate, train_and_evaluate
from astrojax.train.step import build_program, warm_start

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def lora_config(base: str, steps: int, rank: int):
    cfg = runpy.run_path(str(ROOT / "configs" / "lora_quickstart.py"))["get_config"]()
    cfg.lora = dataclasses.replace(cfg.lora, base=base, rank=rank)
    cfg.train.steps = steps
    return cfg


def nbytes(tree) -> int:
    return int(sum(x.nbytes for x in jax.tree.leaves(tree)))


def held_out(program, params, task) -> dict[str, float]:
    batches = task.eval_data(0, 1)
    with jax.set_mesh(program.mesh):
        return {k: round(v, 4) for k, v in evaluate(program, params, batches).items()
                if k in ("loss", "accuracy")}


def fine_tune(cfg, base: str, eval_every: int, devices) -> dict:
    """Trains ``cfg`` (LoRA if ``cfg.lora.rank`` else in full, from ``base``'s weights) and
    scores the val notes every ``eval_every`` steps and the val descriptions at the end."""
    mesh = make_mesh(cfg.mesh, devices)
    task = get_task(cfg)
    program = build_program(cfg, task, mesh)
    descriptions = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data,
                                                                     corpus="descriptions"))
    desc_task = get_task(descriptions)
    desc_program = build_program(descriptions, desc_task, mesh)
    with jax.set_mesh(mesh):
        state = program.init()
        if not cfg.lora.rank:
            state = warm_start(state, WarmStart({"": (base, "")}))
    curve = [(0, held_out(program, state.params, task))]
    start_descriptions = held_out(desc_program, state.params, desc_task)
    it = iter(task.train_data(0, 1))
    batches = [program.shard(next(it)) for _ in range(cfg.train.steps)]
    seconds = []
    with jax.set_mesh(mesh):
        for step, batch in enumerate(batches, 1):
            t0 = time.perf_counter()
            state, metrics = program.train_step(state, batch)
            jax.block_until_ready(metrics)
            seconds.append(time.perf_counter() - t0)
            if step % eval_every == 0 or step == cfg.train.steps:
                curve.append((step, held_out(program, state.params, task)))
                print(f"  step {step}: notes {curve[-1][1]}", flush=True)
    return {
        "trainable_params": int(sum(x.size for x in jax.tree.leaves(state.params))),
        "optimizer_state_bytes": nbytes(state.opt_state),
        "checkpointed_param_bytes": nbytes(state.params),
        "frozen_param_bytes": nbytes(program.frozen) if program.frozen is not None else 0,
        "compile_and_first_step_seconds": round(seconds[0], 2),
        "median_step_seconds": round(float(np.median(seconds[1:])), 3),
        "val_notes_curve": curve,
        "val_notes": curve[-1][1],
        "val_descriptions_before": start_descriptions,
        "val_descriptions_after": held_out(desc_program, state.params, desc_task),
        "_notes_baselines": task.baselines(),
        "_descriptions_baselines": desc_task.baselines(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="", help="workdir of a quickstart run to fine-tune")
    parser.add_argument("--base-steps", type=int, default=100)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--eval-every", type=int, default=20)
    args = parser.parse_args()
    devices = jax.devices()[:1]
    with tempfile.TemporaryDirectory() as tmp:
        base, base_info = args.base, {"workdir": args.base}
        if not base:
            base = str(Path(tmp) / "base")
            cfg = runpy.run_path(str(ROOT / "configs" / "quickstart.py"))["get_config"]()
            cfg.train.steps = args.base_steps
            cfg.train.checkpoint_every = args.base_steps
            print(f"training the base: quickstart config, {args.base_steps} steps", flush=True)
            t0 = time.perf_counter()
            result = train_and_evaluate(cfg, base, devices=devices)
            base_info = {"workdir": None, "config": "configs/quickstart.py",
                         "steps": args.base_steps, "seconds": round(time.perf_counter() - t0),
                         "val_descriptions": {k.removeprefix("eval/"): round(v, 4)
                                              for k, v in result.eval.items()
                                              if k in ("eval/loss", "eval/accuracy")}}
        runs = {}
        quick = lora_config("", args.steps, 0)
        batch = (quick.train.global_batch_size, quick.data.seq_len)
        for name, rank in (("lora", args.rank), ("full", 0)):
            print(f"fine-tuning on the notes: {name}", flush=True)
            cfg = lora_config(base if rank else "", args.steps, rank)
            runs[name] = fine_tune(cfg, base, args.eval_every, devices)
    lora, full = runs["lora"], runs["full"]
    out = {
        "what": "the quickstart LM (trained on planet descriptions) fine-tuned on the observing "
                "notes of the train planets; held-out: the val planets' notes and descriptions",
        "machine": f"shared 2-core CPU ({platform.machine()}), JAX {jax.__version__}, 1 device",
        "base": base_info,
        "fine_tuning": {"steps": args.steps, "batch": f"{batch[0]} x {batch[1]} bytes",
                        "optimizer":
                        "AdamW 3e-3, warmup 10, cosine to 10% (configs/lora_quickstart.py)",
                        "lora": {"rank": args.rank, "alpha": 16.0, "dropout": 0.0,
                                 "targets": "q k v o gate up down"}},
        "base_model_val_notes": lora["val_notes_curve"][0][1],
        "notes_baselines": {k: round(v, 4) for k, v in lora.pop("_notes_baselines").items()
                            if k.endswith(("/loss", "/accuracy"))},
        "descriptions_baselines": {k: round(v, 4) for k, v in
                                   lora.pop("_descriptions_baselines").items()
                                   if k.endswith(("/loss", "/accuracy"))},
        "lora": lora,
        "full": {k: v for k, v in full.items() if not k.startswith("_")},
        "ratios_lora_over_full": {
            "trainable_params": round(lora["trainable_params"] / full["trainable_params"], 4),
            "optimizer_state_bytes": round(lora["optimizer_state_bytes"]
                                           / full["optimizer_state_bytes"], 4),
            "checkpointed_param_bytes": round(lora["checkpointed_param_bytes"]
                                              / full["checkpointed_param_bytes"], 4),
            "median_step_seconds": round(lora["median_step_seconds"]
                                         / full["median_step_seconds"], 3)},
        "command": "python benchmarks/lora.py " + " ".join(sys.argv[1:]),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "lora.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out[k] for k in ("base_model_val_notes", "notes_baselines",
                                          "ratios_lora_over_full")}, indent=2))
    print("lora", lora["val_notes"], lora["val_descriptions_after"])
    print("full", full["val_notes"], full["val_descriptions_after"])


if __name__ == "__main__":
    main()
