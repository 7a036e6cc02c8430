"""Train configs/datacube_vit.py once and record what it reaches beside its baselines.

    nice python benchmarks/datacube_run.py                          # masked+supervised (config)
    nice python benchmarks/datacube_run.py --objective masked       # self-supervised only
    nice python benchmarks/datacube_run.py --objective supervised   # regression only, no masking
    python benchmarks/datacube_run.py --steps 20 --num-planets 256 --out /tmp/dc.json  # smoke
    nice python benchmarks/datacube_run.py --test-fraction 0 \
        --out benchmarks/results/datacube_split_control.json  # another held-out set

Builds the store first if it is missing (timed apart), then runs the train loop in a fresh
work directory and reads its metrics.jsonl: every eval (reconstruction error, R^2 of the
regression head), the linear probes of the embedding after the last step, and the baselines
the task logs beside every eval (closed-form rules and summary-statistic ridge/logistic models
on the same held-out planets). Each objective's run is stored under ``runs[objective]`` of
``benchmarks/results/datacube.json`` (other objectives already there are kept); the first run
also records ``untrained_probes``, the same probes of the untrained encoder's embedding.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import runpy
import tempfile
import time
from pathlib import Path


def untrained_probes(cfg) -> dict[str, float]:
    """The task's linear probes of the embedding of the freshly initialised encoder (the
    encoder's parameters come first from the seed, so they are the same for every objective)."""
    import jax

    from astrojax.sharding import make_mesh
    from astrojax.tasks import get_task
    from astrojax.train.step import build_program

    task = get_task(cfg)
    program = build_program(cfg, task, make_mesh(cfg.mesh, jax.devices()))
    with jax.set_mesh(program.mesh):
        params = program.init().params
        return task.final_eval(program.embed, params, program.shard)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(Path(__file__).parents[1] / "configs" /
                                                "datacube_vit.py"))
    parser.add_argument("--objective", default="", help="override datacube.objective")
    parser.add_argument("--steps", type=int, default=0, help="override train.steps")
    parser.add_argument("--num-planets", type=int, default=0)
    parser.add_argument("--test-fraction", type=float, default=None,
                        help="override planets.test_fraction (0: train on 90%% of the planets, "
                             "another val set; how much the held-out set moves the figures)")
    parser.add_argument("--workdir", default="", help="default: a fresh temporary directory")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" /
                                             "datacube.json"))
    args = parser.parse_args()

    import jax
    from flax import nnx

    from astrojax.data.formats.cubes import build_synthetic_store
    from astrojax.tasks import get_task
    from astrojax.train.loop import train_and_evaluate
    from astrojax.train.step import abstract_model

    cfg = runpy.run_path(args.config)["get_config"]()
    if args.objective:
        cfg.model.objective = args.objective
    if args.steps:
        cfg.train.steps = args.steps
        cfg.train.eval_every = max(1, args.steps // 2)
        cfg.train.checkpoint_every = cfg.train.eval_every
    if args.num_planets:
        cfg.planets.num_planets = args.num_planets
    if args.test_fraction is not None:
        cfg.planets.test_fraction = args.test_fraction
    start = time.perf_counter()
    url = build_synthetic_store(cfg.planets.num_planets, cfg.planets.seed,
                                get_task(cfg).grid, progress=False).url
    store_seconds = time.perf_counter() - start
    cfg.data.cube_store = url

    workdir = args.workdir or tempfile.mkdtemp(prefix="datacube_run_")
    result = train_and_evaluate(cfg, workdir)
    rows = [json.loads(line) for line in open(Path(workdir) / "metrics.jsonl")]
    evals = [r for r in rows if any(k.startswith("eval/") for k in r)]
    final = {}
    for r in evals:
        if r["step"] == result.step:
            final.update(r)
    train_rows = [r for r in rows if "loss" in r]
    _, params = abstract_model(get_task(cfg), cfg.train.seed)
    run = {
        "config": Path(args.config).name, "objective": cfg.model.objective,
        "targets": list(cfg.model.targets), "mask_ratio": cfg.model.mask_ratio,
        "steps": result.step, "global_batch_size": cfg.train.global_batch_size,
        "parameters": int(sum(x.size for x in jax.tree.leaves(nnx.state(params)))),
        "num_planets": cfg.planets.num_planets, "store": url, "store_seconds": store_seconds,
        "wall_seconds": result.wall_seconds, "compile_seconds": result.compile_seconds,
        "machine": f"shared {os.cpu_count()}-core CPU ({platform.machine()}), run with nice",
        "final": {k: v for k, v in final.items() if k.startswith("eval/")
                  and not k.startswith("eval/baseline/")},
        "baselines": {k.removeprefix("eval/baseline/"): v for k, v in final.items()
                      if k.startswith("eval/baseline/")},
        "test": result.test,
        "evals": [{k: v for k, v in r.items() if not k.startswith("eval/baseline/")}
                  for r in evals],
        "train_curve": [{k: r[k] for k in ("step", "loss", "reconstruction_mse", "mse",
                                           "cubes_per_second") if k in r}
                        for r in train_rows],
    }
    out = json.load(open(args.out)) if os.path.exists(args.out) else {"runs": {}}
    out["runs"][cfg.model.objective] = run
    if "untrained_probes" not in out:  # random features: what the architecture gives for free
        out["untrained_probes"] = untrained_probes(cfg)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    for key, value in sorted(run["final"].items()):
        print(f"{key:50s} {value:.4f}")
    print(f"{result.wall_seconds:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
