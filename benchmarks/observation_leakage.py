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

The two modalities that used to leak are checked the same way, each beside the catalogue row's
figures on the same planets and the same two folds, and beside the old leaking version:

- **observing notes** (``generator.notes.observing_notes``, every planet) against the old
  templated descriptions of the true planet (``describe_planet``): the best single word
  (presence as the score, word and direction chosen on one fold and scored on the other, both
  ways), a bag-of-words logistic regression (out of fold), and the numbers read back from the
  notes (``read_notes``): each alone by the single-input rules, and all of them in gradient-
  boosted trees (out of fold);
- **hypothesised networks** (``generator.observe.hypothesised_networks``, the planets a modeller
  can model) against the networks of the true planets (``biochem.generate_networks`` of the
  population): count features (metabolites, reactions, stoichiometric entries, metabolites per
  compartment, the share of each module's reactions present), each alone by the single-input
  rules and all of them in gradient-boosted trees (out of fold).

    PYTHONPATH=$PWD python benchmarks/observation_leakage.py   # 2-3 min on a shared 2-core CPU

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
    modellable,
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


def folds(n: int, seed: int) -> np.ndarray:
    """The two halves every out-of-fold figure uses: planet ``i`` is in half ``folds[i]``."""
    return np.random.default_rng(seed).permutation(n) % 2


def out_of_fold(x, labels: dict, fold: np.ndarray, make_model) -> dict:
    """AUC per label of ``make_model()`` fitted on one half of the planets and scored on the
    other, both ways (``x``: a feature matrix, dense or sparse)."""
    from astrojax.evaluators.catalogue_baselines import score_auc

    out = {}
    for label in LABELS:
        y = labels[label].astype(int)
        scores = np.empty(len(y))
        for f in (0, 1):
            model = make_model()
            model.fit(x[fold != f], y[fold != f])
            scores[fold == f] = model.predict_proba(x[fold == f])[:, 1]
        out[label] = score_auc(scores, y)
    return out


def boosted_trees(seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return lambda: HistGradientBoostingClassifier(random_state=seed)


def all_inputs_boosted(inputs: dict, labels: dict, seed: int, fold=None) -> dict:
    """Out-of-fold AUC of gradient-boosted trees (scikit-learn's HistGradientBoosting, NaN as
    unknown) on all the inputs at once, fitted on half of the planets and scored on the other,
    both ways: no combination of inputs should give a label away either."""
    x = np.stack(list(inputs.values()), axis=1)
    fold = folds(len(x), seed) if fold is None else fold
    return out_of_fold(x, labels, fold, boosted_trees(seed))


# ------------------------------------------------------------------------ notes and networks
_TOKEN = r"[^\s;,()]+"  # words, numbers and key=value pairs, without the punctuation around


def text_report(texts: list[str], labels: dict, fold: np.ndarray) -> dict:
    """The best single word (out of fold) and a bag-of-words logistic regression (out of fold)
    on ``texts``."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    words = CountVectorizer(binary=True, token_pattern=_TOKEN, min_df=20, lowercase=True)
    x = words.fit_transform(texts).tocsc()
    vocabulary = words.get_feature_names_out()
    best_word = {}
    for label in LABELS:
        y = labels[label].astype(bool)
        held, chosen = [], []
        for f in (0, 1):
            train, test = fold != f, fold == f
            # a yes/no rule's AUC is 0.5 + (TPR - FPR) / 2; either direction
            gap = (np.asarray(x[train & y].mean(axis=0)).ravel()
                   - np.asarray(x[train & ~y].mean(axis=0)).ravel())
            w = int(np.argmax(np.abs(gap)))
            present = x[:, w].toarray().ravel()[test] > 0
            rate = present[y[test]].mean() - present[~y[test]].mean()
            held.append(0.5 + np.sign(gap[w]) * rate / 2)
            chosen.append(str(vocabulary[w]))
        best_word[label] = {"auc": float(np.mean(held)), "words": chosen}
    bag = make_pipeline(CountVectorizer(binary=True, token_pattern=_TOKEN, min_df=5),
                        LogisticRegression(C=1.0, max_iter=2000))
    return {"vocabulary_min_df20": len(vocabulary), "best_single_word_out_of_fold": best_word,
            "bag_of_words_logistic_regression": out_of_fold(np.array(texts, dtype=object),
                                                            labels, fold, lambda: bag)}


def network_features(networks: list) -> dict[str, np.ndarray]:
    """Count features of each network: metabolites, reactions, stoichiometric entries,
    metabolites per compartment, and the share of each biochem module's reactions present."""
    from astrojax.data.generator.biochem import MODULES, module_reactions
    from astrojax.data.metabolic import COMPARTMENTS

    out = {"metabolites": np.array([n.num_metabolites for n in networks], np.float64),
           "reactions": np.array([n.num_reactions for n in networks], np.float64),
           "edges": np.array([len(n.coefficient) for n in networks], np.float64)}
    for c, compartment in enumerate(COMPARTMENTS):
        counts = np.array([(n.compartment == c).sum() for n in networks], np.float64)
        if counts.any():
            out[f"metabolites_{compartment}"] = counts
    for module in MODULES:
        ids = set(module_reactions(module))
        out[f"module_{module}"] = np.array([len(ids.intersection(n.reaction_ids)) / len(ids)
                                            for n in networks])
    return out


def feature_report(features: dict, labels: dict, fold: np.ndarray, seed: int) -> dict:
    """Each feature alone (single-input rules, the best named) and all of them in gradient-
    boosted trees, out of fold."""
    scores = score_all(features, labels)
    return {"best_single_input": best_by_label(scores),
            "all_gradient_boosting": all_inputs_boosted(features, labels, seed, fold)}


def distribution(values) -> dict:
    v = np.asarray(values, np.float64)
    q = np.percentile(v, [0, 5, 50, 95, 100])
    return dict(zip(("min", "p5", "median", "p95", "max"), np.round(q, 1).tolist(), strict=True))


def notes_section(population, catalogue, inputs, labels, fold, seed) -> dict:
    from astrojax.data.generator.notes import observing_notes, read_notes

    start = time.perf_counter()
    notes = observing_notes(catalogue, seed)
    seconds = time.perf_counter() - start
    sizes = [len(note.encode("ascii")) for note in notes]
    return {
        "planets": len(notes),
        "ms_per_planet": round(1e3 * seconds / len(notes), 3),
        "bytes": distribution(sizes),
        "observing_notes": {**text_report(notes, labels, fold),
                            "numbers_read_back": feature_report(read_notes(notes), labels,
                                                                fold, seed)},
        "old_descriptions_of_the_true_planet": text_report(population.descriptions(), labels,
                                                           fold),
        "catalogue_row_same_planets": {
            "best_single_input": best_by_label(score_all(inputs, labels)),
            "all_gradient_boosting": all_inputs_boosted(inputs, labels, seed, fold)},
    }


def networks_section(population, catalogue, inputs, labels, fold, seed) -> dict:
    from astrojax.data.generator.biochem import generate_networks
    from astrojax.data.generator.observe import hypothesised_biospheres, hypothesised_networks

    rows = np.flatnonzero(modellable(catalogue))
    start = time.perf_counter()
    hypothesised = hypothesised_networks(catalogue, seed, indices=rows)
    seconds = time.perf_counter() - start
    true = generate_networks(population, seed, indices=rows)
    here = {label: labels[label][rows] for label in LABELS}
    alive = hypothesised_biospheres(catalogue, seed)[rows] > 0
    nodes = np.array([n.num_metabolites + n.num_reactions for n in hypothesised])
    edges = np.array([len(n.coefficient) for n in hypothesised])
    return {
        "planets": len(rows),
        "prevalence": {k: float(v.mean()) for k, v in here.items()},
        "ms_per_planet": round(1e3 * seconds / len(rows), 3),
        "hypothesised_inhabited_share": float(alive.mean()),
        "nodes_lifeless": distribution(nodes[~alive]),
        "nodes_inhabited": distribution(nodes[alive]),
        "edges": distribution(edges),
        "hypothesised_networks": feature_report(network_features(hypothesised), here,
                                                fold[rows], seed),
        "old_networks_of_the_true_planet": feature_report(network_features(true), here,
                                                          fold[rows], seed),
        "catalogue_row_same_planets": {
            "best_single_input": best_by_label(score_all({k: v[rows] for k, v in inputs.items()},
                                                         here)),
            "all_gradient_boosting": all_inputs_boosted({k: v[rows] for k, v in inputs.items()},
                                                        here, seed, fold[rows])},
    }


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
    parser.add_argument("--threads", type=int, default=1,
                        help="OpenMP threads for the tree models (more than the free cores of a "
                             "shared machine makes them several times slower)")
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=args.threads):
        run(args)


def run(args) -> None:
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
    fold = folds(len(population), args.seed)
    notes = notes_section(population, catalogue, inputs, labels, fold, args.seed)
    networks = networks_section(population, catalogue, inputs, labels, fold, args.seed)
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
        "text": notes,
        "networks": networks,
        "seconds": round(time.perf_counter() - start, 1),
        "machine": "shared 2-core CPU",
        "threads": args.threads,
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
    print_modalities(result)
    for name, s in result["hidden_truth_controls"].items():
        print(f"| control: {name} | {s['habitable']['best']:.3f} | "
              f"{s['biosignature']['best']:.3f} |")


def print_modalities(result: dict) -> None:
    def pair(d: dict) -> str:
        return " | ".join(f"{d[lb]['auc'] if isinstance(d[lb], dict) else d[lb]:.3f}"
                          for lb in LABELS)

    text, nets = result["text"], result["networks"]
    for name in ("observing_notes", "old_descriptions_of_the_true_planet"):
        print(f"| {name}: best single word (out of fold) | "
              f"{pair(text[name]['best_single_word_out_of_fold'])} |")
        print(f"| {name}: bag-of-words logistic regression | "
              f"{pair(text[name]['bag_of_words_logistic_regression'])} |")
    read = text["observing_notes"]["numbers_read_back"]
    print(f"| observing notes: best number read back | {pair(read['best_single_input'])} |")
    print(f"| observing notes: numbers read back, gradient boosting | "
          f"{pair(read['all_gradient_boosting'])} |")
    for name in ("hypothesised_networks", "old_networks_of_the_true_planet",
                 "catalogue_row_same_planets"):
        print(f"| {name} ({nets['planets']} planets): best single feature | "
              f"{pair(nets[name]['best_single_input'])} |")
        print(f"| {name} ({nets['planets']} planets): gradient boosting | "
              f"{pair(nets[name]['all_gradient_boosting'])} |")


if __name__ == "__main__":
    main()
