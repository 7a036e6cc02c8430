"""What the climate-datacube labels need: closed-form rules and simple models on the held-out set.

    python benchmarks/datacube_baselines.py                    # configs/datacube_vit.py's split
    python benchmarks/datacube_baselines.py --num-planets 512  # quick

Uses the datacube task itself for the store and the split, so the numbers are on exactly the
held-out planets every eval metric and probe of ``configs/datacube_vit.py`` is scored on, with
everything fitted on the task's train samples only. Reports:

* the task's own baselines (``DatacubeTask.baselines``, logged by every run as
  ``eval/baseline/...``): the closed-form rules (area-mean surface temperature -> surface
  temperature; its regime bounds -> climate regime; longitude variance -> tidal locking; mean
  surface relative humidity -> relative humidity; skin plateau / no atmosphere -> equilibrium
  temperature, where they apply) and ridge / logistic regression on 81 summary statistics per
  cube (per variable and level: area-weighted mean, std, min, max; largest std along
  longitude);
* a stronger nonlinear reference on the same summaries, scikit-learn's
  HistGradientBoosting (regressor or classifier, default settings, seed 0), a cross-check that
  is not part of the library, also behind the partial equilibrium-temperature rule
  (``skin_plateau_else_gbm``);
* the ceiling of log surface pressure: planets without an atmosphere (no wind, identical
  levels) carry nothing of their residual pressure (uniform over 1e-9..1e-4 bar), so the best
  any model can do there is that population's mean.

Writes ``benchmarks/results/datacube_baselines.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import runpy
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(Path(__file__).parents[1] / "configs" /
                                                "datacube_vit.py"))
    parser.add_argument("--num-planets", type=int, default=0, help="0: the config's")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" /
                                             "datacube_baselines.json"))
    args = parser.parse_args()

    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    from astrojax.evaluators.cube_baselines import (
        CLASS_LABELS,
        cube_summaries,
        rule_predictions,
        summary_features,
    )
    from astrojax.evaluators.metrics import accuracy_score, r2_score
    from astrojax.tasks import get_task

    cfg = runpy.run_path(args.config)["get_config"]()
    if args.num_planets:
        cfg.planets.num_planets = args.num_planets
    task = get_task(cfg)
    start = time.perf_counter()
    names, variables = task.store.schema.label_names, task.store.schema.variables
    baselines = task.baselines()
    seconds = time.perf_counter() - start
    train = task._train_summaries  # the summaries baselines() just computed
    test = cube_summaries(task.store, task.eval_indices())
    labels = task.store.read_labels()
    y_train, y_test = labels[task.probe_train_indices], labels[task.eval_indices()]
    x_train, x_test = summary_features(train), summary_features(test)

    rules = rule_predictions(test, variables, names)
    gbm = {}
    for j, name in enumerate(names):
        if name in CLASS_LABELS:
            model = HistGradientBoostingClassifier(random_state=0).fit(x_train, y_train[:, j])
            gbm[f"summary_gbm/accuracy/{name}"] = accuracy_score(y_test[:, j],
                                                                 model.predict(x_test))["accuracy"]
        else:
            model = HistGradientBoostingRegressor(random_state=0).fit(x_train, y_train[:, j])
            predicted = model.predict(x_test)
            gbm[f"summary_gbm/r2/{name}"] = r2_score(y_test[:, j], predicted)
            if name in rules and not np.isfinite(rules[name][1]).all():  # a partial rule
                rule, exact = rules[name]
                gbm[f"{rule}_else_gbm/r2/{name}"] = r2_score(
                    y_test[:, j], np.where(np.isfinite(exact), exact, predicted))

    ceiling = {}
    if "log10_surface_pressure_bar" in names and "no_atmosphere" in test:
        p = y_test[:, names.index("log10_surface_pressure_bar")]
        airless = test["no_atmosphere"]
        # perfect on planets with an atmosphere; on airless ones, the best constant
        best = np.where(airless, p[airless].mean(), p)
        ceiling = {"log10_surface_pressure_bar": {
            "airless_fraction": float(airless.mean()), "r2_ceiling": r2_score(p, best)}}

    out = {"config": Path(args.config).name, "store": task.store.url,
           "num_planets": task.store.num_samples,
           "train_samples": len(task.probe_train_indices),
           "held_out_samples": len(task.eval_indices()),
           "held_out_split": "val",
           "labels": list(names), "variables": list(variables),
           "num_summary_features": int(x_train.shape[1]),
           "baselines": dict(sorted(baselines.items())), "gbm_cross_check": gbm,
           "ceilings": ceiling, "baselines_seconds": seconds,
           "machine": f"shared {os.cpu_count()}-core CPU ({platform.machine()})"}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    for key, value in sorted({**baselines, **gbm}.items()):
        print(f"{key:60s} {value:.4f}")
    print(json.dumps(ceiling), f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
