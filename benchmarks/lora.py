"""LoRA against full fine-tuning: the quickstart language model (trained on the planets'
descriptions) fine-tuned on the observing notes, a text it never saw.

    python benchmarks/lora.py                          # trains a short base first (--base-steps)
    python benchmarks/lora.py --base runs/quickstart   # or fine-tunes an existing quickstart run
    python benchmarks/lora.py --learning-rates 1e-3,3e-3,1e-2   # what results/lora.json holds

Both fine-tunings start from the same base weights, see the same batches and use the same
optimizer (configs/lora_quickstart.py's AdamW, warmup 10, cosine decay) for the same steps, at
every learning rate of ``--learning-rates`` (default: the config's 1e-2); each method's rate
is then chosen on the val notes and reported on the test notes. Measured: trainable
parameters, optimizer-state and checkpoint bytes, seconds per step, and the loss on the notes
(what was learned) and on the descriptions (what was kept) of the val and test planets, beside
the base model's and an 8-gram model's of the training texts. To stay short on a shared 2-core
CPU the base is the quickstart config trained for ``--base-steps`` (default 100, not the
quickstart's 300) unless ``--base`` is given (``--keep-base DIR`` keeps the one trained here).
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


def held_out(program, params, task, split: str = "val") -> dict[str, float]:
    batches = task.eval_data(0, 1, split)
    with jax.set_mesh(program.mesh):
        return {k: round(v, 4) for k, v in evaluate(program, params, batches).items()
                if k in ("loss", "accuracy")}


def fine_tune(cfg, base: str, eval_every: int, devices) -> dict:
    """Trains ``cfg`` (LoRA if ``cfg.lora.rank`` else in full, from ``base``'s weights),
    scoring the val notes every ``eval_every`` steps, and the test notes and the val and test
    descriptions before and after."""
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

    def scores(params) -> dict:
        return {"test_notes": held_out(program, params, task, "test"),
                **{f"{split}_descriptions": held_out(desc_program, params, desc_task, split)
                   for split in ("val", "test")}}

    curve = [(0, held_out(program, state.params, task))]
    before = scores(state.params)
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
                print(f"  step {step}: val notes {curve[-1][1]}", flush=True)
    return {
        "sizes": {
            "trainable_params": int(sum(x.size for x in jax.tree.leaves(state.params))),
            "optimizer_state_bytes": nbytes(state.opt_state),
            "checkpointed_param_bytes": nbytes(state.params),
            "frozen_param_bytes": nbytes(program.frozen) if program.frozen is not None else 0},
        "compile_and_first_step_seconds": round(seconds[0], 2),
        "median_step_seconds": round(float(np.median(seconds[1:])), 3),
        "val_notes_curve": curve,
        "val_notes": curve[-1][1],
        "after": scores(state.params),
        "_before": {"val_notes": curve[0][1], **before},
        "_baselines": {f"{split}_{text}": {k: round(v, 4) for k, v in t.baselines(split).items()
                                           if k.endswith(("/loss", "/accuracy"))}
                       for text, t in (("notes", task), ("descriptions", desc_task))
                       for split in ("val", "test")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="", help="workdir of a quickstart run to fine-tune")
    parser.add_argument("--keep-base", default="", help="train the base into this workdir")
    parser.add_argument("--base-steps", type=int, default=100)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--learning-rates", default="1e-2")
    parser.add_argument("--eval-every", type=int, default=20)
    args = parser.parse_args()
    rates = [float(r) for r in args.learning_rates.split(",")]
    devices = jax.devices()[:1]
    with tempfile.TemporaryDirectory() as tmp:
        base, base_info = args.base, {"workdir": args.base}
        if not base:
            base = args.keep_base or str(Path(tmp) / "base")
            cfg = runpy.run_path(str(ROOT / "configs" / "quickstart.py"))["get_config"]()
            cfg.train.steps = args.base_steps
            cfg.train.checkpoint_every = args.base_steps
            print(f"training the base: quickstart config, {args.base_steps} steps", flush=True)
            t0 = time.perf_counter()
            result = train_and_evaluate(cfg, base, devices=devices)
            base_info = {"workdir": None, "config": "configs/quickstart.py",
                         "steps": args.base_steps, "seconds": round(time.perf_counter() - t0)}
            del result
        runs = {"lora": {}, "full": {}}
        for name, rank in (("lora", args.rank), ("full", 0)):
            for rate in rates:
                print(f"fine-tuning on the notes: {name}, learning rate {rate:g}", flush=True)
                cfg = lora_config(base if rank else "", args.steps, rank)
                cfg.optim.learning_rate = rate
                runs[name][f"{rate:g}"] = fine_tune(cfg, base, args.eval_every, devices)
    quick = lora_config("", args.steps, 0)
    first = runs["lora"][f"{rates[0]:g}"]
    best = {name: min(by_rate, key=lambda r: by_rate[r]["val_notes"]["loss"])
            for name, by_rate in runs.items()}
    lora, full = runs["lora"][best["lora"]], runs["full"][best["full"]]
    out = {
        "what": "the quickstart LM (trained on planet descriptions) fine-tuned on the observing "
                "notes of the train planets; held out: the val and test planets' notes and "
                "descriptions (nats per byte, next-byte accuracy)",
        "machine": f"shared 2-core CPU under load from other jobs ({platform.machine()}), JAX "
                   f"{jax.__version__}, 1 device: seconds are indicative only",
        "base": base_info,
        "fine_tuning": {"steps": args.steps, "batch": f"{quick.train.global_batch_size} x "
                                                       f"{quick.data.seq_len} bytes",
                        "optimizer": "AdamW, warmup 10, cosine to 10% of the rate "
                                     "(configs/lora_quickstart.py)",
                        "learning_rates": rates, "chosen_on": "val notes loss",
                        "lora": {"rank": args.rank, "alpha": 16.0, "dropout": 0.0,
                                 "targets": "q k v o gate up down"}},
        "base_model": first.pop("_before"),
        "baselines": first.pop("_baselines"),
        "best_learning_rate": best,
        "best": {name: {"test_notes": runs[name][best[name]]["after"]["test_notes"],
                        "test_descriptions": runs[name][best[name]]["after"]["test_descriptions"],
                        "val_notes": runs[name][best[name]]["val_notes"]}
                 for name in runs},
        "sizes": {"lora": lora["sizes"], "full": full["sizes"]},
        "ratios_lora_over_full": {
            **{k: round(lora["sizes"][k] / full["sizes"][k], 4)
               for k in ("trainable_params", "optimizer_state_bytes",
                         "checkpointed_param_bytes")},
            "median_step_seconds": round(lora["median_step_seconds"]
                                         / full["median_step_seconds"], 3)},
        "runs": {name: {rate: {k: v for k, v in r.items() if not k.startswith("_")}
                        for rate, r in by_rate.items()} for name, by_rate in runs.items()},
        "command": "python benchmarks/lora.py " + " ".join(sys.argv[1:]),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "lora.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out[k] for k in ("base_model", "best_learning_rate", "best",
                                          "ratios_lora_over_full")}, indent=2))


if __name__ == "__main__":
    main()
