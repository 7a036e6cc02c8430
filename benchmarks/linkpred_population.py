"""Held-out link prediction and the biosphere probe on the built-in planets' networks.

    nice python benchmarks/linkpred_population.py       # configs/graph_vae.py, its 500 steps

Trains ``configs/graph_vae.py`` through the train loop and records its final evaluation: on the
held-out planets, whose held-out links (``data.link_test_fraction`` of each network) are hidden
from the encoder, the sign accuracy and per-planet AUC and AP beside L3, resource allocation and
preferential attachment on the same visible graphs; the reconstruction accuracy of the visible
links; and the linear probes of the biosphere class (graph latents, simple counts, majority).
Writes ``benchmarks/results/linkpred_population_cpu.json``; the wall time is that of the machine
that ran it (the committed figures: a shared 2-core CPU).
"""

import argparse
import json
import runpy
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="default: the config's")
    parser.add_argument("--output", default=str(RESULTS / "linkpred_population_cpu.json"))
    args = parser.parse_args(argv)

    import jax

    from astrojax.train.loop import train_and_evaluate

    cfg = runpy.run_path(str(ROOT / "configs" / "graph_vae.py"))["get_config"]()
    if args.steps:
        cfg.train.steps = args.steps
    with tempfile.TemporaryDirectory() as workdir:
        start = time.perf_counter()
        result = train_and_evaluate(cfg, Path(workdir))
        wall = time.perf_counter() - start
    out = {"backend": jax.default_backend(), "config": "graph_vae.py",
           "machine": "shared 2-core CPU", "steps": result.step, "wall_seconds": wall,
           "eval_planets": cfg.train.eval_batches * cfg.train.global_batch_size,
           "eval": {k.removeprefix("eval/"): v for k, v in result.eval.items()},
           "test": {k.removeprefix("test/"): v for k, v in result.test.items()}}
    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
