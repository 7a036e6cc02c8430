"""Link prediction on real metabolic networks: the graph VAE against the heuristics, per split seed.

    nice python benchmarks/linkpred.py                         # textbook and iJO1366, seeds 0-2
    nice python benchmarks/linkpred.py --ablations             # + what each change contributes

For each network (``cobra:NAME``) and split seed, trains ``configs/graph_vae_linkpred.py``
(structural decoder, training links hidden fold by fold) through the train loop and records the
final test AUC and AP beside, on the same test pairs, the non-learned rules (L3, resource
allocation, preferential attachment; on the training graph) and the simplest fair learned model:
a logistic regression on the same structural pair features, fitted on the same folds (their
hidden links against the same non-links). ``--ablations`` adds, on seed 0 of each network, the
VGAE protocol (reconstruct the visible links, inner-product decoder) and hidden folds with the
inner-product decoder (no pair features). Writes ``benchmarks/results/linkpred_cpu.json`` with
per-seed figures and the mean and standard deviation over seeds; times are wall seconds of the
whole run on whatever machine ran it (the committed figures: a shared 2-core CPU).
"""

import argparse
import json
import runpy
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
METRICS = ("test_auc", "test_ap", "val_auc", "val_ap")
ABLATIONS = {
    "vgae_reconstruction": {"data.link_target_folds": 0, "graph_vae.edge_decoder": "inner_product"},
    "hidden_folds_inner_product": {"graph_vae.edge_decoder": "inner_product"},
}


def config(model: str, seed: int, overrides: dict):
    cfg = runpy.run_path(str(ROOT / "configs" / "graph_vae_linkpred.py"))["get_config"]()
    cfg.data.sbml_path = f"cobra:{model}"
    cfg.data.link_split_seed = seed
    cfg.train.eval_every = cfg.train.steps  # evaluate once, at the end
    for key, value in overrides.items():
        section, field = key.split(".")
        setattr(getattr(cfg, section), field, value)
    return cfg


def train(cfg) -> dict:
    from astrojax.train.loop import train_and_evaluate

    with tempfile.TemporaryDirectory() as workdir:
        start = time.perf_counter()
        result = train_and_evaluate(cfg, Path(workdir))
        wall = time.perf_counter() - start
    out = {m: result.eval[f"eval/{m}"] for m in METRICS}
    baselines = {k.removeprefix("eval/baseline/"): v for k, v in result.eval.items()
                 if k.startswith("eval/baseline/")}
    return {"model": out, "baselines": baselines, "wall_seconds": wall}


def feature_regression(task) -> dict[str, float]:
    """Logistic regression on the structural pair features, fitted on the task's folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from astrojax.evaluators.metrics import average_precision, roc_auc

    x, y = [], []
    for batch in task.train_batches:
        mask = batch["link_mask"][0]
        x += [batch["link_features"][0][mask], batch["negative_features"][0][mask]]
        y += [np.ones(mask.sum()), np.zeros(mask.sum())]
    fit = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    fit.fit(np.concatenate(x), np.concatenate(y))
    out = {}
    for part in ("test", "val"):
        pos, neg = (fit.decision_function(task.batch[f"{part}_{kind}_features"][0])
                    for kind in ("pairs", "negatives"))
        out[f"{part}_auc"], out[f"{part}_ap"] = roc_auc(pos, neg), average_precision(pos, neg)
    return out


def summary(rows: list[dict]) -> dict:
    """Mean and standard deviation over seeds of every figure of the rows."""
    figures = {}
    for row in rows:
        for group in ("model", "feature_regression", "baselines"):
            for key, value in row[group].items():
                figures.setdefault(f"{group}/{key}", []).append(value)
    return {key: {"mean": float(np.mean(v)), "std": float(np.std(v)), "n": len(v)}
            for key, v in sorted(figures.items())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["textbook", "iJO1366"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--ablations", action="store_true")
    parser.add_argument("--output", default=str(RESULTS / "linkpred_cpu.json"))
    args = parser.parse_args(argv)

    import jax

    from astrojax.tasks import get_task

    out = {"backend": jax.default_backend(), "config": "graph_vae_linkpred.py",
           "machine": "shared 2-core CPU", "networks": {}}
    for model in args.models:
        rows = []
        for seed in args.seeds:
            cfg = config(model, seed, {})
            row = {"seed": seed, **train(cfg),
                   "feature_regression": feature_regression(get_task(cfg))}
            rows.append(row)
            print(json.dumps({"network": model, **row}), flush=True)
        entry = {"steps": cfg.train.steps, "folds": cfg.data.link_target_folds,
                 "per_seed": rows, "summary": summary(rows)}
        if args.ablations:
            entry["ablations"] = {}
            for name, overrides in ABLATIONS.items():
                result = train(config(model, args.seeds[0], overrides))
                entry["ablations"][name] = {"seed": args.seeds[0], "overrides": overrides,
                                            **result}
                print(json.dumps({"network": model, "ablation": name, **result}), flush=True)
        out["networks"][model] = entry
    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
