"""The fusion model on the built-in planets as an observer sees them: one run of configs/fusion.py.

    python benchmarks/fusion_run.py --modalities catalogue spectrum   # the recorded run
    python benchmarks/fusion_run.py                  # the config's 600 steps, every modality
    python benchmarks/fusion_run.py --steps 100      # quick
    python benchmarks/fusion_run.py --spectrum-rates 0 1   # plus the spectrum ablation
    python benchmarks/fusion_run.py --step-counts 300 1500 --fixed-weights-steps 1500

Trains through the train loop and records the final val evaluation (every label's metrics and
the baselines logged beside them: base rate, conservative habitable zone, logistic regression on
the catalogue row) and the test split's into ``benchmarks/results/fusion_run.json`` (the wall
time is that of the machine that ran it), and draws ``fusion_reliability.png``, the reliability
diagram of the default run's habitable and biosignature probabilities on val and test.
``--spectrum-rates`` adds one run per share of transiting planets with a spectrum (0: the
catalogue row alone), ``--step-counts`` one per number of steps and ``--fixed-weights-steps`` a
run with fixed loss weights, under ``ablation`` (earlier ablation runs in the file are kept).
"""

import argparse
import json
import os
import runpy
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="default: the config's")
    parser.add_argument("--output", default=str(RESULTS / "fusion_run.json"))
    parser.add_argument("--spectrum-rates", type=float, nargs="*", default=[],
                        help="also train with these data.spectrum_rate values")
    parser.add_argument("--step-counts", type=int, nargs="*", default=[],
                        help="also train for these numbers of steps (how train.steps was chosen)")
    parser.add_argument("--fixed-weights-steps", type=int, default=0,
                        help="also train with model.loss_weighting='fixed' for this many steps")
    parser.add_argument("--modalities", nargs="*", default=None,
                        help="data.modalities of every run (default: the config's); the "
                             "recorded fusion_run.json is --modalities catalogue spectrum")
    args = parser.parse_args(argv)

    import jax

    from astrojax.config import to_dict
    from astrojax.train.loop import train_and_evaluate

    def reliability(cfg, result) -> dict:
        """Val and test probabilities of the trained model -> per label and split the
        binary_report and the reliability curve (15 confidence bins), and the PNG."""
        import jax.numpy as jnp
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from flax import nnx

        from astrojax.evaluators.metrics import binary_report
        from astrojax.tasks import get_task
        from astrojax.train.step import build_model

        task = get_task(cfg)
        model = build_model(task, cfg.train.seed)
        nnx.update(model, jax.device_get(result.state.params))
        curves, fig = {}, plt.figure(figsize=(9, 4))
        for i, label in enumerate(("habitable", "biosignature")):
            ax = fig.add_subplot(1, 2, i + 1)
            ax.plot([0, 1], [0, 1], color="0.7", lw=1)
            for split in ("val", "test"):
                probs, ys = [], []
                for batch in task.eval_data(0, 1, split):
                    out = model({k: jnp.asarray(v) for k, v in batch.items()})
                    probs.append(np.asarray(jax.nn.sigmoid(out[f"logits/{label}"])))
                    ys.append(batch[label])
                p, y = np.concatenate(probs), np.concatenate(ys)
                edges = np.linspace(0, 1, 11)
                which = np.clip(np.digitize(p, edges) - 1, 0, 9)
                mean_p = [float(p[which == b].mean()) for b in range(10) if (which == b).any()]
                rate = [float(y[which == b].mean()) for b in range(10) if (which == b).any()]
                curves[f"{split}/{label}"] = {**binary_report(y, p), "mean_probability": mean_p,
                                              "observed_rate": rate}
                ax.plot(mean_p, rate, "o-", label=f"{split} (ECE "
                        f"{curves[f'{split}/{label}']['ece']:.3f})")
            ax.set(title=label, xlabel="predicted probability", ylabel="observed rate",
                   xlim=(0, 1), ylim=(0, 1))
            ax.legend()
        fig.tight_layout()
        fig.savefig(RESULTS / "fusion_reliability.png", dpi=110)
        return curves

    def run(spectrum_rate=None, with_reliability=False, steps=None, weighting=None) -> dict:
        cfg = runpy.run_path(str(ROOT / "configs" / "fusion.py"))["get_config"]()
        if args.modalities:
            cfg.data.modalities = tuple(args.modalities)
        steps = steps or args.steps
        if steps:
            cfg.train.steps = steps
            cfg.train.eval_every = cfg.train.checkpoint_every = steps
        if weighting:
            cfg.model.loss_weighting = weighting
        if spectrum_rate is not None:
            cfg.data.spectrum_rate = spectrum_rate
        with tempfile.TemporaryDirectory() as workdir:
            start = time.perf_counter()
            result = train_and_evaluate(cfg, Path(workdir))
            wall = time.perf_counter() - start
        extra = {"reliability": reliability(cfg, result)} if with_reliability else {}
        return {**extra, "steps": result.step, "wall_seconds": wall,
                "compile_seconds": result.compile_seconds, "config_values": to_dict(cfg),
                "val": {k.removeprefix("eval/"): v for k, v in result.eval.items()},
                "test": {k.removeprefix("test/"): v for k, v in result.test.items()}}

    out = {"backend": jax.default_backend(), "config": "fusion.py",
           "machine": f"{os.cpu_count()}-core CPU, shared with other jobs",
           **run(with_reliability=True)}
    previous = json.loads(Path(args.output).read_text()) if Path(args.output).exists() else {}
    out["ablation"] = previous.get("ablation", {})
    out["ablation"].update({f"spectrum_rate={rate:g}": run(rate) for rate in args.spectrum_rates})
    out["ablation"].update({f"steps={n}": run(steps=n) for n in args.step_counts})
    if args.fixed_weights_steps:
        out["ablation"][f"fixed_weights,steps={args.fixed_weights_steps}"] = run(
            steps=args.fixed_weights_steps, weighting="fixed")
    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k not in ("config_values", "ablation")},
                     indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
