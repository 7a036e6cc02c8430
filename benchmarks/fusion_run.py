"""The fusion model on the built-in planets as an observer sees them: one run of configs/fusion.py.

    python benchmarks/fusion_run.py                  # the config's 1,500 steps
    python benchmarks/fusion_run.py --steps 100      # quick
    python benchmarks/fusion_run.py --spectrum-rates 0 0.3 1   # the spectrum ablation

Trains through the train loop and records the final val evaluation (every label's metrics and
the baselines logged beside them: base rate, conservative habitable zone, logistic regression on
the catalogue row) and the test split's, into ``benchmarks/results/fusion_run.json``; the wall
time is that of the machine that ran it. ``--spectrum-rates`` adds one run per share of transiting
planets with a spectrum (0: the catalogue row alone) under ``ablation``.
"""

import argparse
import json
import os
import runpy
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="default: the config's")
    parser.add_argument("--output", default=str(RESULTS / "fusion_run.json"))
    parser.add_argument("--spectrum-rates", type=float, nargs="*", default=[],
                        help="also train with these data.spectrum_rate values")
    args = parser.parse_args(argv)

    import jax

    from astrojax.config import to_dict
    from astrojax.train.loop import train_and_evaluate

    def run(spectrum_rate=None) -> dict:
        cfg = runpy.run_path(str(ROOT / "configs" / "fusion.py"))["get_config"]()
        if args.steps:
            cfg.train.steps = args.steps
            cfg.train.eval_every = cfg.train.checkpoint_every = args.steps
        if spectrum_rate is not None:
            cfg.data.spectrum_rate = spectrum_rate
        with tempfile.TemporaryDirectory() as workdir:
            start = time.perf_counter()
            result = train_and_evaluate(cfg, Path(workdir))
            wall = time.perf_counter() - start
        return {"steps": result.step, "wall_seconds": wall,
                "compile_seconds": result.compile_seconds, "config_values": to_dict(cfg),
                "val": {k.removeprefix("eval/"): v for k, v in result.eval.items()},
                "test": {k.removeprefix("test/"): v for k, v in result.test.items()}}

    out = {"backend": jax.default_backend(), "config": "fusion.py",
           "machine": f"{os.cpu_count()}-core CPU, shared with other jobs", **run()}
    if args.spectrum_rates:
        out["ablation"] = {f"spectrum_rate={rate:g}": run(rate) for rate in args.spectrum_rates}
    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k not in ("config_values", "ablation")},
                     indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
