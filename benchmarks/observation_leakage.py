"""Does any single observed input give habitability or a biosignature away?

For every input a model of the observed built-in planets gets (each catalogue column, its
1-sigma error and known mask, the star type, whether the planet transits, each modality mask,
and the modeller's climate, i.e. what the climate cube of a planet says), the best closed-form
rule on that input alone (``astrojax.evaluators.catalogue_baselines.single_input_aucs``:
threshold, band and out-of-sample binned rules) is scored by ROC AUC for ``habitable`` and
``biosignature`` over the whole population, beside the conservative habitable zone (Kopparapu
et al. 2014) on the observed Teff and insolation, the reference rule fusion must beat. The
modeller's cubes are also summarised (``cube_baselines.summarize``: mean, std, min and max per
variable and level, longitude variance) for the planets that have one, each summary scored
alone. Hidden-truth columns are scored as controls: they show that the check catches a leak.

    PYTHONPATH=$PWD python benchmarks/observation_leakage.py   # 1-2 min on a shared 2-core CPU

Writes benchmarks/results/observation_leakage.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from astrojax.data.generator import generate_population
from astrojax.data.generator.climate import (
    CUBE_VARIABLES,
    CubeGrid,
    grid_coordinates,
    planet_cubes,
)
from astrojax.data.generator.observe import (
    CATALOGUE_COLUMNS,
    assumed_population,
    modality_masks,
    observe_catalogue,
    planet_labels,
)
from astrojax.evaluators.catalogue_baselines import habitable_zone_report, single_input_aucs
from astrojax.evaluators.cube_baselines import summarize

LABELS = ("habitable", "biosignature")
RESULTS = Path(__file__).parent / "results" / "observation_leakage.json"


def observed_inputs(catalogue, masks, assumed) -> dict[str, np.ndarray]:
    """Every input a model of the observed planets gets, as floats with NaN where unknown."""
    inputs: dict[str, np.ndarray] = {}
    for column in CATALOGUE_COLUMNS:
        inputs[column] = catalogue.values[column]
        inputs[f"{column}_err"] = catalogue.errors[column]
        inputs[f"{column}_known"] = catalogue.known(column).astype(np.float64)
    inputs["star_type"] = np.where(catalogue.star_type >= 0, catalogue.star_type, np.nan)
    inputs["transiting"] = catalogue.transiting.astype(np.float64)
    for name, mask in masks.items():
        if name != "catalogue":  # every planet has a catalogue row: nothing to score
            inputs[f"has_{name}"] = mask.astype(np.float64)
    # What the modeller's climate cube says (its mean surface level is this temperature);
    # scored as if every planet a modeller could run had a cube.
    inputs["modeller_surface_temperature_k"] = assumed.surface_temperature_k
    inputs["modeller_equilibrium_temperature_k"] = assumed.equilibrium_temperature_k
    inputs["modeller_climate_regime"] = np.where(assumed.climate_regime >= 0,
                                                 assumed.climate_regime, np.nan)
    return inputs


def hidden_controls(population) -> dict[str, np.ndarray]:
    """Columns a model must never see: the check should find them leaking."""
    return {"true_liquid_water": population.liquid_water.astype(np.float64),
            "true_surface_temperature_k": population.surface_temperature_k,
            "true_equilibrium_temperature_k": population.equilibrium_temperature_k,
            "true_water_fraction": population.water_fraction,
            "true_ozone_column_du": population.ozone_column_du}


def score_all(inputs: dict, labels: dict) -> dict:
    return {name: {label: single_input_aucs(x, labels[label]) for label in LABELS}
            for name, x in inputs.items()}


def cube_summary_inputs(assumed, rows: np.ndarray, seed: int, grid: CubeGrid) -> dict:
    """Per-planet summaries of the modeller's cubes of ``rows`` (NaN elsewhere)."""
    cubes = planet_cubes(assumed, grid, seed=seed, indices=rows)
    stats = summarize(cubes, CUBE_VARIABLES, grid_coordinates(grid)["lat"])
    out = {}
    for stat in ("mean", "std", "min", "max"):
        for v, variable in enumerate(CUBE_VARIABLES):
            for level in range(grid.levels):
                out[f"cube_{stat}_{variable}_level{level}"] = stats[stat][:, v, level]
    out["cube_lon_std"] = stats["lon_std"]
    return out


def all_inputs_boosted(inputs: dict, labels: dict, seed: int) -> dict:
    """Out-of-fold AUC of gradient-boosted trees (scikit-learn's HistGradientBoosting, NaN as
    unknown) on all the inputs at once, fitted on half of the planets and scored on the other,
    both ways: no combination of inputs should give a label away either."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from astrojax.evaluators.catalogue_baselines import score_auc

    x = np.stack(list(inputs.values()), axis=1)
    fold = np.random.default_rng(seed).permutation(len(x)) % 2
    out = {}
    for label in LABELS:
        y = labels[label].astype(int)
        scores = np.empty(len(x))
        for f in (0, 1):
            model = HistGradientBoostingClassifier(random_state=seed)
            model.fit(x[fold != f], y[fold != f])
            scores[fold == f] = model.predict_proba(x[fold == f])[:, 1]
        out[label] = score_auc(scores, y)
    return out


def best_by_label(scores: dict) -> dict:
    out = {}
    for label in LABELS:
        name = max(scores, key=lambda k: scores[k][label]["best"])
        out[label] = {"input": name, "auc": scores[name][label]["best"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-planets", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    start = time.perf_counter()

    population = generate_population(args.num_planets, args.seed)
    catalogue = observe_catalogue(population, args.seed)
    masks = modality_masks(catalogue)
    assumed = assumed_population(catalogue)
    labels = planet_labels(population)
    inputs = observed_inputs(catalogue, masks, assumed)
    scores = score_all(inputs, labels)

    hz_observed = {label: habitable_zone_report(catalogue.values["star_teff_k"],
                                                catalogue.values["insolation_searth"],
                                                labels[label]) for label in LABELS}
    hz_true = {label: habitable_zone_report(population.star_teff_k, population.insolation_searth,
                                            labels[label]) for label in LABELS}

    # The modeller's cubes themselves, for the planets that have one.
    grid = CubeGrid()
    rows = np.flatnonzero(masks["climate"])
    cube_inputs = cube_summary_inputs(assumed, rows, args.seed, grid)
    cube_labels = {label: labels[label][rows] for label in LABELS}
    cube_scores = score_all(cube_inputs, cube_labels)
    hz_cube_planets = {label: habitable_zone_report(catalogue.values["star_teff_k"][rows],
                                                    catalogue.values["insolation_searth"][rows],
                                                    cube_labels[label]) for label in LABELS}

    controls = score_all(hidden_controls(population), labels)
    true_catalogue = {c: np.asarray(getattr(population, c), np.float64)
                      for c in CATALOGUE_COLUMNS}
    result = {
        "num_planets": args.num_planets, "seed": args.seed,
        "prevalence": {label: float(labels[label].mean()) for label in LABELS},
        "modality_share": {name: float(mask.mean()) for name, mask in masks.items()},
        "known_share": {c: float(catalogue.known(c).mean()) for c in CATALOGUE_COLUMNS},
        "habitable_zone": {"observed_inputs": hz_observed, "true_inputs": hz_true},
        "best_single_input": best_by_label(scores),
        "all_inputs_gradient_boosting": {
            "observed": all_inputs_boosted(inputs, labels, args.seed),
            "true_catalogue_columns_no_noise_no_gaps": all_inputs_boosted(true_catalogue, labels,
                                                                          args.seed)},
        "inputs": scores,
        "climate_cubes": {"planets": len(rows), "grid": list(grid.shape),
                          "prevalence": {k: float(v.mean()) for k, v in cube_labels.items()},
                          "habitable_zone": hz_cube_planets,
                          "best_single_summary": best_by_label(cube_scores),
                          "summaries": cube_scores},
        "hidden_truth_controls": controls,
        "seconds": round(time.perf_counter() - start, 1),
        "machine": "shared 2-core CPU",
        "command": "PYTHONPATH=$PWD python benchmarks/observation_leakage.py",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print_table(result)
    print(f"wrote {args.out} ({result['seconds']} s, shared 2-core CPU)")


def print_table(result: dict) -> None:
    print("| input | habitable AUC | biosignature AUC |")
    print("|---|---|---|")
    rows = sorted(result["inputs"], key=lambda k: -max(result["inputs"][k][lb]["best"]
                                                      for lb in LABELS))
    for name in rows:
        s = result["inputs"][name]
        print(f"| {name} | {s['habitable']['best']:.3f} | {s['biosignature']['best']:.3f} |")
    for which, hz in result["habitable_zone"].items():
        print(f"| HZ ({which}): conservative inside / margin / optimistic inside | "
              + " | ".join(f"{hz[lb]['inside_auc']:.3f} / {hz[lb]['margin_auc']:.3f} / "
                           f"{hz[lb]['optimistic_inside_auc']:.3f}" for lb in LABELS) + " |")
    for which, auc in result["all_inputs_gradient_boosting"].items():
        print(f"| all inputs, gradient boosting ({which}) | {auc['habitable']:.3f} | "
              f"{auc['biosignature']:.3f} |")
    cubes = result["climate_cubes"]["best_single_summary"]
    print(f"| best cube summary ({result['climate_cubes']['planets']} planets) | "
          f"{cubes['habitable']['auc']:.3f} ({cubes['habitable']['input']}) | "
          f"{cubes['biosignature']['auc']:.3f} ({cubes['biosignature']['input']}) |")
    for name, s in result["hidden_truth_controls"].items():
        print(f"| control: {name} | {s['habitable']['best']:.3f} | "
              f"{s['biosignature']['best']:.3f} |")


if __name__ == "__main__":
    main()
