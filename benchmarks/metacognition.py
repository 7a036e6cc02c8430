"""Meta-cognitive control of the fusion model, measured (issue 17): calibration, selective
prediction, modality trust and what to observe next, each beside its baselines.

    PYTHONPATH=$PWD nice python benchmarks/metacognition.py            # trains the ensemble first
    PYTHONPATH=$PWD nice python benchmarks/metacognition.py --ensemble runs/metacog_ensemble

The model: ``configs/fusion.py`` with the catalogue row and spectra (``--modalities``; the
recorded catalogue + spectrum run of the README), trained ``MetacognitionConfig.ensemble_size``
times with seeds 0..k-1 (``astrojax.metacognition.train_ensemble``; a finished member is not
retrained). Every number is on the one split's planets: temperatures and thresholds are fitted
on val (391 planets), everything is reported on test (413):

- calibration: AUC, ECE (15 confidence bins, with its bootstrap standard error), NLL and Brier
  of one member and of the ensemble, before and after temperature scaling, beside the base rate
  (the train prevalence) and gradient-boosted trees on the catalogue row (scikit-learn,
  ``fusion_baselines.py``'s chosen settings), raw and temperature-scaled the same way;
  ``metacognition_reliability.png``;
- selective prediction: accuracy at full coverage and at ``coverage`` (80%), the AURC, and the
  val threshold's coverage and accuracy on test, for the ensemble's maximum probability and
  its disagreement (mutual information), beside the trees' maximum probability;
  ``metacognition_risk_coverage.png``;
- modality trust: per input (column groups of the row, the spectrum) the mean absolute change
  of P(habitable) when it is hidden, over the test planets that have it;
- what to observe next: each test planet acquires its missing observations (host star, RV mass,
  spectrum to 1/3/10/30 transits; ``MetacognitionConfig.costs``) by EIG per cost, at random
  (3 seeds) and in a fixed order; AUC and NLL against the per-planet budget,
  ``metacognition_acquisition.png``.

Writes ``benchmarks/results/metacognition.json`` and the PNGs. Timings are of the shared 2-core
CPU it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
GBM = {"learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 40}  # fusion_baselines
LABELS = ("habitable", "biosignature")
RANDOM_SEEDS = (0, 1, 2)


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def trees(task) -> dict[str, dict[str, np.ndarray]]:
    """The row trees' P(label) on val and test (fitted on train)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    from astrojax.data.generator.observe import CATALOGUE_COLUMNS

    values = task.catalogue.values
    x = np.stack([values[c] for c in CATALOGUE_COLUMNS]
                 + [np.isfinite(values[c]).astype(float) for c in CATALOGUE_COLUMNS], axis=1)
    out = {}
    with threadpool_limits(1):
        for label in LABELS:
            y = task.labels[label]
            model = HistGradientBoostingClassifier(**GBM, random_state=0)
            model.fit(x[task.split.train], y[task.split.train])
            out[label] = {s: model.predict_proba(x[task.split[s]])[:, 1] for s in ("val", "test")}
    return out


def calibration_section(ensemble, logits, y, tree_p, prevalence):
    from astrojax.metacognition import calibration_report, ensemble_probability, fit_temperature

    out, probs = {}, {}
    for label in LABELS:
        yv, yt = y["val"][label], y["test"][label]
        member_v, member_t = logits["val"][label][0], logits["test"][label][0]
        ens_v, ens_t = logits["val"][label], logits["test"][label]
        t_member = fit_temperature(member_v, yv)
        t_ens = fit_temperature(ens_v, yv)
        t_tree = fit_temperature(logit(tree_p[label]["val"]), yv)
        candidates = {
            "one_member": ensemble_probability(member_t),
            "one_member_temperature": ensemble_probability(member_t, t_member),
            "ensemble": ensemble_probability(ens_t),
            "ensemble_temperature": ensemble_probability(ens_t, t_ens),
            "trees_row": tree_p[label]["test"],
            "trees_row_temperature": ensemble_probability(logit(tree_p[label]["test"]), t_tree),
            "base_rate": np.full(len(yt), prevalence[label]),
        }
        val_ens = {"ensemble": ensemble_probability(ens_v),
                   "ensemble_temperature": ensemble_probability(ens_v, t_ens)}
        out[label] = {
            "temperature": {"one_member": t_member, "ensemble": t_ens, "trees_row": t_tree},
            "test": {name: calibration_report(yt, p) for name, p in candidates.items()},
            "val_in_sample": {name: calibration_report(yv, p) for name, p in val_ens.items()}}
        probs[label] = candidates
    return out, probs


def selective_section(ensemble, logits, y, probs, tree_p, coverage):
    from astrojax.metacognition import (
        disagreement,
        ensemble_probability,
        max_probability,
        risk_coverage,
        selective_report,
        threshold_for_coverage,
    )
    from astrojax.metacognition.calibration import sigmoid

    out, curves = {}, {}
    for label in LABELS:
        t = ensemble.temperature[label]
        pv = ensemble_probability(logits["val"][label], t)
        pt = probs[label]["ensemble_temperature"]
        members_v = sigmoid(logits["val"][label] / t)
        members_t = sigmoid(logits["test"][label] / t)
        scores_v = {"max_probability": max_probability(pv),
                    "negative_disagreement": -disagreement(members_v)}
        scores_t = {"max_probability": max_probability(pt),
                    "negative_disagreement": -disagreement(members_t)}
        thresholds = {k: threshold_for_coverage(v, coverage) for k, v in scores_v.items()}
        row = {f"ensemble_temperature/{k}": v for k, v in selective_report(
            y["test"][label], pt, scores_t, coverage, thresholds).items()}
        tree = tree_p[label]["test"]
        tree_v = max_probability(tree_p[label]["val"])
        row["trees_row/max_probability"] = selective_report(
            y["test"][label], tree, {"max_probability": max_probability(tree)}, coverage,
            {"max_probability": threshold_for_coverage(tree_v, coverage)})["max_probability"]
        out[label] = row
        curves[label] = {name: risk_coverage(y["test"][label], p, s) for name, (p, s) in {
            "ensemble, max probability": (pt, scores_t["max_probability"]),
            "ensemble, agreement": (pt, scores_t["negative_disagreement"]),
            "trees on the row, max probability": (tree, max_probability(tree))}.items()}
    return out, curves


def trust_section(ensemble, task, rows, label="habitable"):
    from astrojax.metacognition import trust, trust_text

    inputs = {k: v[rows] for k, v in task.arrays.items()}
    got = trust(ensemble, inputs, label)
    summary = {name: {"planets_with_it": int(np.isfinite(v).sum()),
                      "mean_abs_change": float(np.nanmean(np.abs(v))),
                      "share_moved_over_0.05": float(np.nanmean(np.abs(v) > 0.05)),
                      "largest_abs_change": float(np.nanmax(np.abs(v)))}
               for name, v in got.items()}
    p = ensemble.probability(ensemble.logits(inputs)[label], label)
    top = np.argsort(-p)[:5]
    examples = [{"planet": str(task.table.ids[rows[i]]), f"p_{label}": float(p[i]),
                 "trust": trust_text(got, i)} for i in top]
    return {"label": label, "by_input": summary, "examples_highest_p": examples}


def acquisition_section(ensemble, world, rows, labels_y, label):
    from astrojax.metacognition import State, acquire, budget_curve
    from astrojax.metacognition.acquisition import area, realised_gains

    runs = {"eig_per_cost": acquire(ensemble, world, rows, "eig_per_cost", label),
            "fixed": acquire(ensemble, world, rows, "fixed", label)}
    for seed in RANDOM_SEEDS:
        runs[f"random_{seed}"] = acquire(ensemble, world, rows, "random", label, seed=seed)
    top = max(float(r["cost"].max()) for r in runs.values())
    budgets = np.arange(0.0, top + 1.0, 1.0)
    curves = {name: budget_curve(r, labels_y, budgets) for name, r in runs.items()}
    table = {}
    marks = [b for b in (0, 10, 40, 80, 160) if b <= top] + [top]
    for name, c in curves.items():
        at = {f"auc_at_{m:g}": c["auc"][int(m)] for m in marks}
        at.update({f"nll_at_{m:g}": c["nll"][int(m)] for m in marks})
        table[name] = {"mean_auc_over_budget": area(c, "auc"),
                       "mean_nll_over_budget": area(c, "nll"), **at,
                       "mean_total_cost": float(runs[name]["cost"][:, -1].mean())}
    eig = runs["eig_per_cost"]
    first = [max(g, key=g.get) for g in eig["first_gains"] if g]
    gains_by_kind: dict[str, list] = {}
    for g in eig["first_gains"]:
        for k, v in g.items():
            gains_by_kind.setdefault(k, []).append(v)
    first_choice = [c[0] for c in eig["chosen"] if c]
    worth = realised_gains(ensemble, world, State.observed(world, rows), label, labels_y)
    return {"label": label, "planets": len(rows), "budget_max": top, "table": table,
            "expected_and_realised_gain_first_step": worth,
            "first_step_mean_eig_bits": {k: float(np.mean(v)) for k, v in
                                         sorted(gains_by_kind.items())},
            "first_step_planets_with_candidate": {k: len(v) for k, v in
                                                  sorted(gains_by_kind.items())},
            "first_choice_share_eig_per_cost": {k: first_choice.count(k) / len(first_choice)
                                                for k in sorted(set(first_choice))},
            "largest_eig_first_step_share": {k: first.count(k) / max(len(first), 1)
                                             for k in sorted(set(first))},
            "curves": {name: {k: [round(x, 5) for x in v] for k, v in c.items()}
                       for name, c in curves.items()}}


def plots(probs, y, curves, acquisitions, coverage):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from astrojax.metacognition import plot_reliability

    names = {"one_member": "one model", "ensemble": "ensemble",
             "ensemble_temperature": "ensemble + temperature", "trees_row": "trees on the row"}
    plot_reliability(RESULTS / "metacognition_reliability.png",
                     {f"{label} (test)": {names[k]: (y["test"][label], probs[label][k])
                                          for k in names} for label in LABELS},
                     "fusion (row + spectrum), 4-member ensemble; temperatures fitted on val")
    fig, axes = plt.subplots(1, len(LABELS), figsize=(9.5, 4))
    for ax, label in zip(axes, LABELS, strict=True):
        for name, (cov, risk) in curves[label].items():
            ax.plot(cov, 1 - risk, label=name)
        ax.axvline(coverage, color="0.6", ls=":", lw=1)
        ax.set(title=f"{label} (test)", xlabel="coverage (share of planets answered)",
               ylabel="accuracy on the answered planets", xlim=(0, 1))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "metacognition_risk_coverage.png", dpi=110)
    plt.close(fig)
    fig, axes = plt.subplots(len(acquisitions), 2, figsize=(10, 3.8 * len(acquisitions)),
                             squeeze=False)
    for row, acq in zip(axes, acquisitions, strict=True):
        for j, metric in enumerate(("auc", "nll")):
            ax = row[j]
            randoms = [acq["curves"][f"random_{s}"][metric] for s in RANDOM_SEEDS]
            b = acq["curves"]["fixed"]["budget"]
            ax.plot(b, acq["curves"]["eig_per_cost"][metric], label="EIG per cost")
            ax.plot(b, acq["curves"]["fixed"][metric], label="fixed order")
            ax.plot(b, np.mean(randoms, 0), label=f"random (mean of {len(randoms)})")
            ax.fill_between(b, np.min(randoms, 0), np.max(randoms, 0), alpha=0.2, color="C2")
            ax.set(title=f"{acq['label']}: {metric.upper()} of the test planets",
                   xlabel="observing budget per planet (cost units)", ylabel=metric.upper())
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "metacognition_acquisition.png", dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ensemble", default=str(ROOT / "runs" / "metacog_ensemble"),
                        help="folder of the ensemble (trained there if its members are missing)")
    parser.add_argument("--modalities", nargs="*", default=["catalogue", "spectrum"])
    parser.add_argument("--size", type=int, default=None,
                        help="ensemble members (default: MetacognitionConfig.ensemble_size)")
    parser.add_argument("--output", default=str(RESULTS / "metacognition.json"))
    args = parser.parse_args(argv)

    import jax

    from astrojax.config.sections import MetacognitionConfig
    from astrojax.metacognition import World, train_ensemble

    mc = MetacognitionConfig()
    cfg = runpy.run_path(str(ROOT / "configs" / "fusion.py"))["get_config"]()
    cfg.data.modalities = tuple(args.modalities)
    timings = {}
    start = time.perf_counter()
    ensemble = train_ensemble(cfg, args.ensemble, args.size or mc.ensemble_size)
    timings["train_or_load_ensemble"] = time.perf_counter() - start
    task = ensemble.task
    lap = time.perf_counter()
    ensemble.calibrate(mc.coverage)
    logits = {s: ensemble.planet_logits(task.split[s], s) for s in ("val", "test")}
    y = {s: {label: task.labels[label][task.split[s]].astype(int) for label in LABELS}
         for s in ("val", "test")}
    prevalence = {label: float(task.labels[label][task.split.train].mean()) for label in LABELS}
    timings["calibrate_and_score"] = time.perf_counter() - lap
    lap = time.perf_counter()
    tree_p = trees(task)
    timings["trees"] = time.perf_counter() - lap
    calibration, probs = calibration_section(ensemble, logits, y, tree_p, prevalence)
    selective, curves = selective_section(ensemble, logits, y, probs, tree_p, mc.coverage)
    lap = time.perf_counter()
    trust = trust_section(ensemble, task, task.split["test"])
    timings["trust"] = time.perf_counter() - lap
    world = World(task, mc)
    acquisitions = []
    for label in LABELS:
        lap = time.perf_counter()
        acquisitions.append(acquisition_section(ensemble, world, task.split["test"],
                                                y["test"][label], label))
        timings[f"acquisition_{label}"] = time.perf_counter() - lap
    plots(probs, y, curves, acquisitions, mc.coverage)
    out = {
        "command": "PYTHONPATH=$PWD nice python benchmarks/metacognition.py",
        "machine": f"shared {os.cpu_count()}-core CPU ({jax.default_backend()}), other jobs "
                   "running",
        "model": {"config": "configs/fusion.py", "modalities": list(args.modalities),
                  "steps": ensemble.members[0].step, "ensemble_size": ensemble.size,
                  "members": [str(m.workdir) for m in ensemble.members],
                  "calibration": {"temperature": ensemble.temperature,
                                  "threshold": ensemble.threshold, "coverage": mc.coverage}},
        "metacognition_config": {"costs": dict(mc.costs), "draws": mc.draws,
                                 "spectrum_transits": list(mc.spectrum_transits)},
        "split": {s: len(task.split[s]) for s in ("train", "val", "test")},
        "prevalence_train": prevalence,
        "calibration": calibration,
        "selective": selective,
        "trust": trust,
        "acquisition": {a["label"]: a for a in acquisitions},
        "timings_s": timings,
    }
    Path(args.output).write_text(json.dumps(out, indent=1) + "\n")
    for label in LABELS:
        print(label, json.dumps({k: {m: round(v[m], 4) for m in ("auc", "ece", "nll")}
                                 for k, v in calibration[label]["test"].items()}))
        print(label, json.dumps(selective[label], indent=None)[:600])
        print(label, json.dumps(out["acquisition"][label]["table"])[:900])
    print(json.dumps(trust)[:800], json.dumps(timings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
