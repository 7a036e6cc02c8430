"""The causal world model against the generator's exact answers (issue 17).

The built-in population (8,192 planets, seed 0) and the one split (``planet_split`` with
``PlanetsConfig()``'s fractions: val 0.1, test 0.1, split seed 0). The structural causal model
(``astrojax.causal``: the generator's graph, one neural mechanism per variable) is fitted on
the train planets' 49 variables, once with additive and once with heteroscedastic Gaussian
noise; nothing is tuned on val or test. Then, for each named question
(``astrojax.causal.questions.QUESTIONS``):

- truth: the generator rerun under the intervention with the same random draws: the average
  effect over a fresh population (16,384 planets, seed 1) and on the test planets, and each
  test planet's exact counterfactual;
- the SCM: the average effect from ancestral sampling of the intervened model (16,384 fresh
  samples: it reads no test planet), and per-planet counterfactuals by abduction (the test
  planet's own values give its noise), action and prediction, averaged over 32 posterior
  draws of the discrete variables' noise;
- naive regressions that ignore the graph: the outcome regressed on all 48 other variables
  (categorical ones one-hot) on the train planets, by L2 logistic / ridge regression and by
  scikit-learn's HistGradientBoosting; the intervention is applied to the input column of each
  test planet and the prediction read off (for a continuous outcome the predicted change is
  added to the factual value);
- the rule "nothing changes" (each planet's counterfactual is its factual value).

The held-out log-likelihood of every mechanism is reported beside the marginal (a model with
no parents) as a check of the fit. A ``discovery`` key is left for the graph-discovery
benchmark (NOTEARS / PC against the true graph); this script keeps whatever is there.

    PYTHONPATH=$PWD nice python benchmarks/causal.py   # ~10 min, shared 2-core CPU

Writes benchmarks/results/causal.json and causal_effects.png and prints the README table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from astrojax.causal import generator_graph, variable_table
from astrojax.causal.mechanisms import SCMConfig
from astrojax.causal.questions import (
    QUESTIONS,
    effect_errors,
    report_units,
    scm_answers,
    true_answers,
    unit_of,
)
from astrojax.causal.scm import StructuralCausalModel
from astrojax.config import PlanetsConfig
from astrojax.data.generator import generate_population
from astrojax.data.generator.causal_graph import (
    VARIABLE_BY_NAME,
    VARIABLE_NAMES,
    from_model_scale,
    to_model_scale,
)
from astrojax.data.planets import planet_split

RESULTS = Path(__file__).parent / "results"
NOTES = {
    "what is fitted": "the SCM's mechanisms and the naive regressions see only the train "
                      "planets' factual (observational) variables; no interventional data",
    "ate_sampling": "E[y | do] - E[y] by ancestral sampling of the fitted model with fresh "
                    "noise: reads no test planet; compared with the population truth",
    "ate_counterfactual": "mean over test planets of the counterfactual minus the factual "
                          "outcome; compared with the truth on the same planets",
    "per-planet counterfactuals": "abduction reads each test planet's own factual values, "
                                  "the outcome included (a counterfactual is conditioned on "
                                  "what happened); a method that copies the factual outcome "
                                  "scores 0 on the planets whose outcome changes, so binary "
                                  "outcomes are scored there (accuracy_on_changed) as well as "
                                  "on all test planets, beside 'nothing changes'",
    "naive regressions": "the outcome on all other variables, near-copies of the label "
                         "included by design (e.g. abiotic_habitable for habitable): with "
                         "the descendants of the treatment held at their factual values "
                         "they can only see its direct effect",
    "units": "probability for binary outcomes, kelvin for temperatures, dex (log10) for "
             "mixing ratios",
}


# ----------------------------------------------------------------------------- naive regression
def design(table_bn: np.ndarray, outcome: str) -> np.ndarray:
    """Every variable but ``outcome`` as features; categorical ones one-hot."""
    columns = []
    for j, name in enumerate(VARIABLE_NAMES):
        if name == outcome:
            continue
        var = VARIABLE_BY_NAME[name]
        if var.kind == "categorical":
            columns.append(np.eye(var.num_classes)[table_bn[:, j].astype(int)])
        else:
            columns.append(table_bn[:, j:j + 1])
    return np.concatenate(columns, axis=1)


def intervene_on_columns(table_bn: np.ndarray, do) -> np.ndarray:
    """The table with the intervened columns changed and nothing else (what a regression that
    ignores the graph can do)."""
    out = table_bn.copy()
    for name, spec in do.items():
        j = VARIABLE_NAMES.index(name)
        raw = from_model_scale(name, table_bn[:, j])
        out[:, j] = to_model_scale(name, spec(raw))
    return out


def naive_counterfactuals(train_bn, test_bn, outcome: str, do) -> dict[str, np.ndarray]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    j = VARIABLE_NAMES.index(outcome)
    binary = VARIABLE_BY_NAME[outcome].kind == "binary"
    x_train, y_train = design(train_bn, outcome), train_bn[:, j]
    x_test = design(test_bn, outcome)
    x_do = design(intervene_on_columns(test_bn, do), outcome)
    factual = report_units(outcome, test_bn[:, j])
    models = {"linear": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)
                                      if binary else Ridge(alpha=1.0)),
              "boosting": (HistGradientBoostingClassifier if binary
                           else HistGradientBoostingRegressor)(random_state=0)}
    out = {}
    for name, model in models.items():
        model.fit(x_train, y_train.astype(int) if binary else y_train)
        if binary:
            out[name] = model.predict_proba(x_do)[:, 1]
        else:
            change = (report_units(outcome, model.predict(x_do))
                      - report_units(outcome, model.predict(x_test)))
            out[name] = factual + change
    return out


# ----------------------------------------------------------------------------- the benchmark
def mechanism_fit(scm: StructuralCausalModel, train_bn, test_bn) -> dict:
    """Held-out NLL per variable beside the marginal's (a Gaussian or class frequencies fitted
    on train, in the same standardised units)."""
    nll = scm.heldout_nll(test_bn)
    out = {}
    for j, name in enumerate(VARIABLE_NAMES):
        var = VARIABLE_BY_NAME[name]
        if var.kind == "continuous":
            mean, std = train_bn[:, j].mean(), max(train_bn[:, j].std(), 1e-6)
            z = (test_bn[:, j] - mean) / std
            marginal = float(np.mean(0.5 * z**2 + 0.5 * np.log(2 * np.pi)))
        else:
            freq = np.bincount(train_bn[:, j].astype(int), minlength=var.num_classes) + 1.0
            freq /= freq.sum()
            marginal = float(-np.mean(np.log(freq[test_bn[:, j].astype(int)])))
        out[name] = {"nll": round(nll[name], 4), "marginal_nll": round(marginal, 4),
                     "parents": len(scm.graph.parents[name])}
    return out


def run(args) -> dict:
    graph = generator_graph()
    population = generate_population(args.planets, args.seed)
    split = planet_split(population.name.astype(str), PlanetsConfig())
    table = variable_table(args.planets, args.seed).astype(np.float32)
    train_bn, test_bn = table[split.train], table[split.test]
    assert not set(split.train) & set(split.test)
    result = {"planets": args.planets, "seed": args.seed, "split": split.sizes(),
              "variables": len(graph), "edges": int(graph.adjacency().sum()),
              "truth_population": {"planets": args.truth_planets, "seed": args.seed + 1},
              "machine": "shared 2-core CPU", "notes": NOTES, "models": {}, "questions": {}}
    scms = {}
    for noise in ("additive", "heteroscedastic"):
        config = SCMConfig(noise=noise, steps=args.steps, hidden=args.hidden)
        start = time.time()
        scms[noise] = StructuralCausalModel.fit(graph, train_bn, config,
                                                log_every=max(args.steps // 10, 1))
        fit = mechanism_fit(scms[noise], train_bn, test_bn)
        result["models"][noise] = {
            "config": dataclasses.asdict(config),
            "fit_seconds": round(time.time() - start, 1), "loss_curve": scms[noise].losses,
            "heldout_nll": fit,
            "mean_nll": round(float(np.mean([v["nll"] for v in fit.values()])), 4),
            "mean_marginal_nll": round(float(np.mean([v["marginal_nll"]
                                                      for v in fit.values()])), 4)}
        print(f"{noise}: fitted in {time.time() - start:.0f} s, mean held-out NLL "
              f"{result['models'][noise]['mean_nll']} (marginal "
              f"{result['models'][noise]['mean_marginal_nll']})", flush=True)

    for q in QUESTIONS:
        start = time.time()
        truth = true_answers(q, args.planets, args.seed, split.test)
        truth_pop = true_answers(q, args.truth_planets, args.seed + 1)
        answers = {noise: scm_answers(scm, q, test_bn, args.samples, args.posterior)
                   for noise, scm in scms.items()}
        entry = {"text": q.text, "do": q.describe(), "outcomes": {}}
        for y in q.outcomes:
            binary = VARIABLE_BY_NAME[y].kind == "binary"
            t = truth[y]
            row = {"unit": unit_of(y),
                   "truth": {"ate_population": float(truth_pop[y]["counterfactual"].mean()
                                                     - truth_pop[y]["factual"].mean()),
                             "ate_test": float(t["counterfactual"].mean() - t["factual"].mean()),
                             "factual_mean_test": float(t["factual"].mean())}}
            for noise, answer in answers.items():
                errors = effect_errors(t, answer[y]["counterfactual"], binary)
                row[f"scm_{noise}"] = {
                    "ate_sampling": answer[y]["ate_sampling"],
                    "ate_sampling_error": answer[y]["ate_sampling"]
                    - row["truth"]["ate_population"],
                    "ate_counterfactual": errors.pop("ate"), **errors}
                row[f"scm_{noise}"]["ate_counterfactual_error"] = (
                    row[f"scm_{noise}"]["ate_counterfactual"] - row["truth"]["ate_test"])
            for name, cf in naive_counterfactuals(train_bn, test_bn, y, q.do).items():
                errors = effect_errors(t, cf, binary)
                row[f"naive_{name}"] = {"ate": errors["ate"],
                                        "ate_error": errors.pop("ate") - row["truth"]["ate_test"],
                                        **errors}
            row["nothing_changes"] = {k: v for k, v in effect_errors(
                t, t["factual"], binary).items() if k != "ate"}
            entry["outcomes"][y] = row
        result["questions"][q.name] = entry
        print(f"{q.name}: {time.time() - start:.0f} s", flush=True)
    return result


def readme_table(result: dict) -> str:
    """Binary outcomes: effects in probability, per-planet accuracy on the test planets whose
    outcome changes; continuous ones: effects in K or dex, per-planet median |error|."""
    lines = ["| question | outcome | true ATE: population / test | SCM additive: sampling / "
             "counterfactual | SCM heteroscedastic: sampling / counterfactual | naive linear / "
             "boosting | per-planet: SCM additive / heteroscedastic / naive boosting / nothing "
             "changes |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for q in result["questions"].values():
        for y, row in q["outcomes"].items():
            a, h = row["scm_additive"], row["scm_heteroscedastic"]
            nl, nb = row["naive_linear"], row["naive_boosting"]
            binary = row["unit"] == "probability"
            metric = "accuracy_on_changed" if binary else "median_abs_error"
            cells = [r[metric] for r in (a, h, nb, row["nothing_changes"])]
            per_planet = " / ".join("n/a" if v is None else f"{v:.3f}" for v in cells)
            changed = f", {row['nothing_changes']['num_changed']} change" if binary else ""
            lines.append(
                f"| {q['do']} | {y} ({row['unit']}) | {row['truth']['ate_population']:+.3f} / "
                f"{row['truth']['ate_test']:+.3f} | {a['ate_sampling']:+.3f} / "
                f"{a['ate_counterfactual']:+.3f} | {h['ate_sampling']:+.3f} / "
                f"{h['ate_counterfactual']:+.3f} | {nl['ate']:+.3f} / {nb['ate']:+.3f} | "
                f"{'accuracy' if binary else 'median abs. error'}{changed}: {per_planet} |")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(f"{qn}\n{y}", r) for qn, q in result["questions"].items()
            for y, r in q["outcomes"].items()]
    ncols = 6
    nrows = -(-len(rows) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.3 * ncols, 2.6 * nrows + 0.6))
    for ax in np.ravel(axes)[len(rows):]:
        ax.axis("off")
    series = [("truth", lambda r: r["truth"]["ate_test"], "k"),
              ("SCM additive (CF)", lambda r: r["scm_additive"]["ate_counterfactual"], "tab:blue"),
              ("SCM heterosc. (CF)", lambda r: r["scm_heteroscedastic"]["ate_counterfactual"],
               "tab:cyan"),
              ("naive linear", lambda r: r["naive_linear"]["ate"], "tab:orange"),
              ("naive boosting", lambda r: r["naive_boosting"]["ate"], "tab:red")]
    for ax, (label, r) in zip(np.ravel(axes), rows, strict=False):
        ax.bar(range(len(series)), [fn(r) for _, fn, _ in series],
               color=[c for _, _, c in series])
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(label, fontsize=7)
        ax.set_xticks([])
        ax.set_ylabel(r["unit"], fontsize=7)
        ax.tick_params(labelsize=6)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for _, _, c in series]
    fig.legend(handles, [s for s, _, _ in series], loc="lower center", ncol=len(series),
               fontsize=7)
    fig.suptitle("Average treatment effects on held-out planets: truth vs SCM vs naive "
                 "regression", fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--planets", type=int, default=8192)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--truth-planets", type=int, default=16384)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--samples", type=int, default=16384)
    parser.add_argument("--posterior", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="OpenMP threads for sklearn")
    parser.add_argument("--out", type=Path, default=RESULTS / "causal.json")
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw the PNG and the table from an existing --out")
    args = parser.parse_args()
    if args.plot_only:
        result = json.loads(args.out.read_text())
        plot(result, args.out.with_name("causal_effects.png"))
        print(readme_table(result))
        return
    from threadpoolctl import threadpool_limits

    start = time.time()
    with threadpool_limits(limits=args.threads):
        result = run(args)
    result["seconds"] = round(time.time() - start, 1)
    # The graph-discovery benchmark writes its own section under "discovery"; keep it.
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    result["discovery"] = previous.get("discovery")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    plot(result, args.out.with_name("causal_effects.png"))
    print(readme_table(result))


if __name__ == "__main__":
    main()
