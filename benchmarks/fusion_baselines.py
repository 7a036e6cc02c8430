"""The bars the fusion model is judged against (issue 13, section 4), on the one split.

The built-in population (``PlanetsConfig()``: 4,096 planets, seed 0) as an observer has it:
the catalogue rows (``PlanetTable.observed``: values with gaps, known masks), the modality
masks (``modality_masks`` defaults: a spectrum for 30% of transiting planets) and, for the
planets whose mask says so, a noisy NIRSpec PRISM spectrum after 3 transits (``planet_spectra``,
realisation 0). Every baseline is fitted on the train planets of the one split
(``planet_split``: val 0.1, test 0.1, split seed 0) and scored on val and on test separately:

- habitable and biosignature (AUC, AP, accuracy at 0.5, ECE over 15 confidence bins, from
  ``astrojax.evaluators.metrics``): the conservative habitable zone (Kopparapu et al. 2014) on
  the observed Teff and insolation, inside / outside and its graded margin (rules, not
  probabilities: AUC and AP only, plus the yes/no call's accuracy); the best single catalogue
  input (chosen on train: the binned rule of ``catalogue_baselines``, a probability per bin,
  and the best threshold, AUC and AP only); scikit-learn's HistGradientBoostingClassifier on
  the catalogue row (``catalogue_row_features``: values, NaN where unknown, and known masks),
  the main bar; the same on the row plus the spectrum (NaN where none); L2 logistic regression
  on the spectrum alone (planets with one, penalty by 5-fold CV on train); the base rate;
- biosphere class (4) and climate regime (5): accuracy and balanced accuracy of the trees on
  the row and on row + spectrum, beside the majority class;
- the retrieval targets (true log10 mixing ratios, log10 surface pressure): R² of
  HistGradientBoostingRegressor on the row and on row + spectrum, beside the train mean;
- the spectrum-dependent ones again with a spectrum for every transiting planet and for none,
  and a curve of the trees' AUC against the share of transiting planets with a spectrum
  (0, 0.3, 0.6, 1.0): refitted at each share, and fitted once at 0.3 (as a model trained on
  the default masks meets fewer or more spectra);
- a control: noiseless spectra for every transiting planet, to show the models can use a
  spectrum that carries the signal.

The spectrum enters as its median depth and each bin's depth minus that median (ppm): a tree
splits one feature at a time and cannot subtract bins, and the continuum level alone is only
(Rp/R*)^2. Nothing is tuned on val or test: the trees' settings are chosen among three
(GBM_CANDIDATES: scikit-learn's defaults, early stopping, smaller slower trees) by 5-fold
cross-validated log loss on the train planets' rows (the defaults overfit: their probabilities
are the worst calibrated), and the row trees with the defaults are reported beside them.

    PYTHONPATH=$PWD nice python benchmarks/fusion_baselines.py   # ~5 min, shared 2-core CPU

Writes benchmarks/results/fusion_baselines.json and fusion_baselines_reliability.png and
prints the README tables. scikit-learn's OpenMP runs on one thread (``--threads``): on this
shared, loaded 2-core machine two threads made one fit 60x slower (157 s against 2.6 s).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from astrojax.config import PlanetsConfig
from astrojax.data.generator import generate_population
from astrojax.data.generator.observe import (
    CLASS_LABELS,
    RETRIEVAL_TARGETS,
    modality_masks,
    observe_catalogue,
    planet_labels,
)
from astrojax.data.generator.spectra import planet_spectra
from astrojax.data.planets import SPLITS, PlanetTable, planet_split
from astrojax.evaluators.catalogue_baselines import (
    best_single_input_rule,
    catalogue_row_features,
    conservative_habitable_zone,
    habitable_zone_margin,
    score_auc,
)
from astrojax.evaluators.metrics import (
    accuracy_score,
    average_precision,
    binary_report,
    r2_score,
)

RESULTS = Path(__file__).parent / "results"
BINARY = ("habitable", "biosignature")
CLASSES = ("biosphere", "climate_regime")
HELD_OUT = ("val", "test")
INSTRUMENT, TRANSITS = "nirspec_prism", 3
DEFAULT_RATE = 0.3
RATES = (0.0, 0.3, 0.6, 1.0)
SCENARIOS = {"none": 0.0, "default_0.3": DEFAULT_RATE, "every_transiting": 1.0}
RELIABILITY_BINS = 10
# The trees' settings to choose from, by cross-validation on train planets (choose_gbm):
# scikit-learn's defaults, the defaults with early stopping on 10% of the fitting planets, and
# smaller, slower trees.
GBM_CANDIDATES = {
    "defaults": {},
    "early_stopping": {"early_stopping": True},
    "small_slow": {"learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 40},
}


@dataclasses.dataclass
class Data:
    """Everything the baselines read: row features, spectrum features of every planet (NaN
    rows are applied per scenario), masks, labels and the split."""

    row: np.ndarray
    row_names: tuple[str, ...]
    spectrum: np.ndarray          # [n, 1 + bins] for every planet, noisy
    spectrum_clean: np.ndarray    # the same, noiseless (the control)
    transiting: np.ndarray
    catalogue: object
    labels: dict
    split: object
    teff: np.ndarray
    insolation: np.ndarray
    gbm: dict = dataclasses.field(default_factory=dict)  # the trees' parameters (choose_gbm)


def spectrum_features(depth: np.ndarray) -> np.ndarray:
    """[n, 1 + bins] (ppm): the median depth, then each bin minus it."""
    median = np.median(depth, axis=1, keepdims=True)
    return 1e6 * np.hstack([median, depth - median])


def load(config: PlanetsConfig) -> Data:
    population = generate_population(config.num_planets, config.seed)
    catalogue = observe_catalogue(population, config.seed)
    table = PlanetTable.observed(config.num_planets, config.seed)
    assert np.array_equal(table.ids, catalogue.name.astype(str))
    row, names = catalogue_row_features(table)
    depth, _, _ = planet_spectra(population, INSTRUMENT, TRANSITS, config.seed)
    clean, _, _ = planet_spectra(population, INSTRUMENT, TRANSITS, config.seed, noise=False)
    return Data(row=row, row_names=names, spectrum=spectrum_features(depth),
                spectrum_clean=spectrum_features(clean), transiting=catalogue.transiting,
                catalogue=catalogue, labels=planet_labels(population),
                split=planet_split(table.ids, config),
                teff=table.column("star_teff_k")[0].astype(np.float64),
                insolation=table.column("insolation_searth")[0].astype(np.float64))


def spectrum_mask(data: Data, rate: float) -> np.ndarray:
    return modality_masks(data.catalogue, spectrum=rate)["spectrum"]


def with_spectrum(data: Data, has: np.ndarray, clean: bool = False,
                  for_fitting: bool = True) -> np.ndarray:
    """The row and the spectrum's features (NaN where ``has`` is False). For fitting, the row
    alone when no planet has a spectrum (all-NaN columns carry nothing, and scikit-learn's
    binning fails on them)."""
    if for_fitting and not has.any():
        return data.row
    spectrum = data.spectrum_clean if clean else data.spectrum
    return np.hstack([data.row, np.where(has[:, None], spectrum, np.nan)])


# ---------------------------------------------------------------------------------- models
def gbm_classifier(data: Data, params: dict | None = None):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(**(data.gbm if params is None else params))


def gbm_regressor(data: Data):
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(**data.gbm)


def choose_gbm(data: Data, seed: int) -> tuple[str, dict]:
    """The GBM_CANDIDATES entry with the lowest 5-fold cross-validated log loss on the train
    planets' catalogue rows, summed over both binary labels, and the table of that choice. Val
    and test are not looked at."""
    from sklearn.metrics import log_loss
    from sklearn.model_selection import StratifiedKFold

    train, table = data.split.train, {}
    x = data.row[train]
    for name, candidate in GBM_CANDIDATES.items():
        params = {**candidate, "random_state": seed}
        table[name] = {}
        for label in BINARY:
            y = data.labels[label][train]
            p = np.empty(len(y))
            for fit, held in StratifiedKFold(5, shuffle=True, random_state=seed).split(x, y):
                p[held] = gbm_classifier(data, params).fit(x[fit], y[fit]).predict_proba(
                    x[held])[:, 1]
            table[name][label] = {"log_loss": float(log_loss(y, p)), **binary_report(y, p)}
    best = min(table, key=lambda n: sum(table[n][lb]["log_loss"] for lb in BINARY))
    return best, table


def spectrum_logistic():
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegressionCV(
        Cs=np.logspace(-4, 2, 13), cv=5, scoring="neg_log_loss", max_iter=5000,
        l1_ratios=(0.0,), use_legacy_attributes=False))  # plain L2, scikit-learn 1.9's spelling


def held_out_probs(model, x: np.ndarray, y: np.ndarray, split, rows=None) -> dict:
    """Fit on the train rows (within ``rows``, all by default); P(label) on val and test."""
    keep = np.ones(len(x), bool) if rows is None else rows
    train = split.train[keep[split.train]]
    model.fit(x[train], y[train])
    return {s: model.predict_proba(x[split[s][keep[split[s]]]])[:, 1] for s in HELD_OUT}


# -------------------------------------------------------------------------- binary labels
def rank_report(labels: np.ndarray, scores: np.ndarray, yes_no: bool = False) -> dict:
    """AUC and AP of a rule's scores (not probabilities); a yes/no rule's accuracy too."""
    y = labels.astype(bool)
    out = {"auc": score_auc(scores, y), "ap": average_precision(scores[y], scores[~y]),
           "accuracy": float(np.mean((scores > 0.5) == y)) if yes_no else None, "ece": None,
           "count": int(len(y))}
    return out


def bootstrap_auc_se(labels: np.ndarray, probs: np.ndarray, seed: int,
                     resamples: int = 1000) -> float:
    """The standard deviation of the AUC over bootstrap resamples of the planets: how far a
    model must clear this AUC on one split before the difference means anything."""
    rng = np.random.default_rng(seed)
    y, aucs = labels.astype(bool), []
    for _ in range(resamples):
        i = rng.integers(0, len(y), len(y))
        if y[i].any() and not y[i].all():
            aucs.append(score_auc(probs[i], y[i]))
    return float(np.std(aucs))


def threshold_rule(row: np.ndarray, names, y: np.ndarray) -> tuple[str, float, bool, float]:
    """The (input, direction, unknowns high?) whose threshold ranks train planets best."""
    best = None
    for j, name in enumerate(names):
        for sign in (1.0, -1.0):
            for unknown_high in (False, True):
                auc = score_auc(ranked(row[:, j], sign, unknown_high), y)
                if best is None or auc > best[3]:
                    best = (name, sign, unknown_high, auc)
    return best


def ranked(x: np.ndarray, sign: float, unknown_high: bool) -> np.ndarray:
    known = np.isfinite(x)
    s = sign * np.where(known, x, 0.0)
    if not known.any():
        return np.zeros(len(x))
    fill = s[known].max() + 1.0 if unknown_high else s[known].min() - 1.0
    return np.where(known, s, fill)


def catalogue_binary(data: Data, seed: int) -> tuple[dict, dict, dict]:
    """Baselines that do not depend on spectra: {split: {label: {baseline: report}}}, the
    probabilities for the reliability diagram, and what was chosen on train."""
    split, out, probs, chosen = data.split, {s: {} for s in HELD_OUT}, {}, {}
    for label in BINARY:
        y = data.labels[label]
        ytr = y[split.train]
        name, rule, train_auc = best_single_input_rule(
            {n: data.row[split.train, j] for j, n in enumerate(data.row_names)}, ytr, seed=seed)
        t_name, t_sign, t_high, t_auc = threshold_rule(data.row[split.train], data.row_names,
                                                       ytr)
        chosen[label] = {"binned_rule": {"input": name, "train_out_of_fold_auc": train_auc},
                         "threshold_rule": {"input": t_name, "train_auc": t_auc,
                                            "direction": "higher" if t_sign > 0 else "lower",
                                            "unknown_ranked": "high" if t_high else "low"}}
        gbm = held_out_probs(gbm_classifier(data), data.row, y, split)
        defaults = held_out_probs(gbm_classifier(data, {"random_state": seed}), data.row, y,
                                  split)
        t_column = data.row[:, data.row_names.index(t_name)]
        b_column = data.row[:, data.row_names.index(name)]
        for s in HELD_OUT:
            rows, ys = split[s], y[split[s]]
            margin = habitable_zone_margin(data.teff[rows], data.insolation[rows])
            margin = np.where(np.isfinite(margin), margin, np.nanmin(margin) - 1.0)
            inside = conservative_habitable_zone(data.teff[rows], data.insolation[rows])
            p_rule = rule(b_column[rows])
            out[s][label] = {
                "habitable_zone_inside": rank_report(ys, inside.astype(np.float64), True),
                "habitable_zone_margin": rank_report(ys, margin),
                "best_single_input_binned": {"input": name, **binary_report(ys, p_rule)},
                "best_single_input_threshold": {
                    "input": t_name, **rank_report(ys, ranked(t_column[rows], t_sign, t_high))},
                "gbm_row": {**binary_report(ys, gbm[s]),
                            "auc_bootstrap_se": bootstrap_auc_se(ys, gbm[s], seed)},
                "gbm_row_sklearn_defaults": binary_report(ys, defaults[s]),
                "base_rate": binary_report(ys, np.full(len(rows), ytr.mean()))}
            probs[(s, label)] = {"gbm_row": gbm[s], f"best single input ({name})": p_rule}
    return out, probs, chosen


def spectrum_binary(data: Data, rate: float, clean: bool = False) -> tuple:
    """Spectrum-dependent baselines at one spectrum rate: row + spectrum trees on all held-out
    planets; on the held-out planets with a spectrum, those trees, the row trees, logistic
    regression on the spectrum alone and the base rate."""
    split, has = data.split, spectrum_mask(data, rate)
    x = with_spectrum(data, has, clean)
    out, probs, chosen_c = {s: {} for s in HELD_OUT}, {}, {}
    for label in BINARY:
        y = data.labels[label]
        both = held_out_probs(gbm_classifier(data), x, y, split)
        row = held_out_probs(gbm_classifier(data), data.row, y, split)
        have_spectra = has[split.train].sum() >= 20 and y[split.train][has[split.train]].any()
        if have_spectra:
            model = spectrum_logistic()
            spec = held_out_probs(model, data.spectrum_clean if clean else data.spectrum, y,
                                  split, rows=has)
            chosen_c[label] = float(np.ravel(model[-1].C_)[0])
        for s in HELD_OUT:
            rows = split[s]
            ys, on = y[rows], has[rows]
            out[s][label] = {"gbm_row_spectrum": binary_report(ys, both[s])}
            if have_spectra:
                out[s][label]["planets_with_a_spectrum"] = {
                    "count": int(on.sum()), "prevalence": float(ys[on].mean()),
                    "gbm_row": binary_report(ys[on], row[s][on]),
                    "gbm_row_spectrum": binary_report(ys[on], both[s][on]),
                    "logistic_spectrum": binary_report(ys[on], spec[s]),
                    "base_rate": binary_report(ys[on], np.full(on.sum(),
                                               y[split.train][has[split.train]].mean()))}
            probs[(s, label)] = both[s]
    return out, probs, {"logistic_C": chosen_c, "train_with_spectrum": int(has[split.train].sum())}


# -------------------------------------------------------------------- classes, retrieval
def class_baselines(data: Data, x_by_name: dict) -> dict:
    split, out = data.split, {s: {} for s in HELD_OUT}
    for label in CLASSES:
        y, k = data.labels[label], CLASS_LABELS[label]
        majority = np.bincount(y[split.train], minlength=k).argmax()
        fitted = {}
        for name, x in x_by_name.items():
            model = gbm_classifier(data).fit(x[split.train], y[split.train])
            fitted[name] = {s: model.predict(x[split[s]]) for s in HELD_OUT}
        for s in HELD_OUT:
            ys = y[split[s]]
            out[s][label] = {"majority_class": {"class": int(majority), **accuracy_score(
                ys, np.full(len(ys), majority), k)}}
            for name in x_by_name:
                out[s][label][name] = accuracy_score(ys, fitted[name][s], k)
    return out


def retrieval_baselines(data: Data, x_by_name: dict, has: np.ndarray) -> dict:
    """R² per target on all held-out planets, and on those with a spectrum (``has``)."""
    split = data.split
    out = {s: {"train_mean": {}, **{n: {} for n in x_by_name}} for s in HELD_OUT}
    sub = {s: {"train_mean": {}, **{n: {} for n in x_by_name}} for s in HELD_OUT}
    for target in RETRIEVAL_TARGETS:
        y = data.labels[target]
        mean = y[split.train].mean()
        preds = {}
        for name, x in x_by_name.items():
            model = gbm_regressor(data).fit(x[split.train], y[split.train])
            preds[name] = {s: model.predict(x[split[s]]) for s in HELD_OUT}
        for s in HELD_OUT:
            ys = y[split[s]]
            on = has[split[s]]
            out[s]["train_mean"][target] = r2_score(ys, np.full(len(ys), mean))
            sub[s]["train_mean"][target] = r2_score(ys[on], np.full(on.sum(), mean))
            for name in x_by_name:
                out[s][name][target] = r2_score(ys, preds[name][s])
                sub[s][name][target] = r2_score(ys[on], preds[name][s][on])
    for table in (out, sub):
        for s in HELD_OUT:
            for r2 in table[s].values():
                r2["mean"] = float(np.mean([r2[t] for t in RETRIEVAL_TARGETS]))
    return {"all_held_out": out, "planets_with_a_spectrum": sub}


def share_curve(data: Data) -> dict:
    """Trees' AUC on row + spectrum against the share of transiting planets with a spectrum:
    refitted at each share, and fitted once at the default share."""
    split = data.split
    fixed = {}
    x_default = with_spectrum(data, spectrum_mask(data, DEFAULT_RATE))
    for label in BINARY:
        fixed[label] = gbm_classifier(data).fit(x_default[split.train],
                                                data.labels[label][split.train])
    out = {"rates": list(RATES), "held_out_share_with_spectrum": {s: [] for s in HELD_OUT},
           "refit": {s: {lb: [] for lb in BINARY} for s in HELD_OUT},
           f"fitted_at_{DEFAULT_RATE}": {s: {lb: [] for lb in BINARY} for s in HELD_OUT}}
    for rate in RATES:
        has = spectrum_mask(data, rate)
        x, x_all = with_spectrum(data, has), with_spectrum(data, has, for_fitting=False)
        for label in BINARY:
            y = data.labels[label]
            refit = held_out_probs(gbm_classifier(data), x, y, split)
            for s in HELD_OUT:
                ys = y[split[s]]
                out["refit"][s][label].append(binary_report(ys, refit[s])["auc"])
                p = fixed[label].predict_proba(x_all[split[s]])[:, 1]
                out[f"fitted_at_{DEFAULT_RATE}"][s][label].append(binary_report(ys, p)["auc"])
        for s in HELD_OUT:
            out["held_out_share_with_spectrum"][s].append(float(has[split[s]].mean()))
    return out


# ------------------------------------------------------------------------------- report
def reliability_png(path: Path, probs: dict, labels: dict, split) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(9, 8), sharex=True, sharey=True)
    edges = np.linspace(0, 1, RELIABILITY_BINS + 1)
    for i, s in enumerate(HELD_OUT):
        for j, label in enumerate(BINARY):
            ax = axes[i, j]
            y = labels[label][split[s]].astype(float)
            ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls="--")
            for name, p in probs[(s, label)].items():
                b = np.clip(np.digitize(p, edges) - 1, 0, RELIABILITY_BINS - 1)
                n = np.bincount(b, minlength=RELIABILITY_BINS)
                m = n > 0
                mean_p = np.bincount(b, p, RELIABILITY_BINS)[m] / n[m]
                rate = np.bincount(b, y, RELIABILITY_BINS)[m] / n[m]
                ece = binary_report(y, p)["ece"]
                line, = ax.plot(mean_p, rate, "-", lw=1, label=f"{name} (ECE {ece:.3f})")
                ax.scatter(mean_p, rate, s=8 + 120 * n[m] / n.sum(), color=line.get_color())
            ax.set_title(f"{label}, {s} ({len(y)} planets, {y.mean():.0%} positive)",
                         fontsize=9)
            ax.legend(fontsize=7, loc="upper left")
            if i == 1:
                ax.set_xlabel("predicted probability (10 bins; marker area: planets)")
            if j == 0:
                ax.set_ylabel("observed frequency")
    fig.suptitle("Reliability of the fusion baselines (fitted on train planets)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def print_tables(r: dict) -> None:
    binary, spec = r["binary"]["catalogue"], r["binary"]["spectrum"]
    rows = [("conservative HZ, inside / outside", lambda s, lb: binary[s][lb][
        "habitable_zone_inside"]),
        ("conservative HZ, margin", lambda s, lb: binary[s][lb]["habitable_zone_margin"]),
        ("best single input, binned rule", lambda s, lb: binary[s][lb][
            "best_single_input_binned"]),
        ("best single input, threshold", lambda s, lb: binary[s][lb][
            "best_single_input_threshold"]),
        ("**GBM, catalogue row**", lambda s, lb: binary[s][lb]["gbm_row"]),
        ("GBM, catalogue row, scikit-learn defaults", lambda s, lb: binary[s][lb][
            "gbm_row_sklearn_defaults"])]
    for name in SCENARIOS:
        rows.append((f"GBM, row + spectrum ({name})",
                     lambda s, lb, n=name: spec[n][s][lb]["gbm_row_spectrum"]))
    rows.append(("base rate", lambda s, lb: binary[s][lb]["base_rate"]))
    print("| baseline | habitable AUC | AP | accuracy | ECE | biosignature AUC | AP | accuracy "
          "| ECE |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, get in rows:
        cells = [" / ".join(fmt(get(s, lb)[m]) for s in HELD_OUT) for lb in BINARY
                 for m in ("auc", "ap", "accuracy", "ece")]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nplanets with a spectrum (val / test):")
    print("| share | planets | baseline | habitable AUC | biosignature AUC |")
    print("|---|---|---|---|---|")
    for name in ("default_0.3", "every_transiting"):
        for base in ("gbm_row", "gbm_row_spectrum", "logistic_spectrum", "base_rate"):
            n = "/".join(str(spec[name][s]["habitable"]["planets_with_a_spectrum"]["count"])
                         for s in HELD_OUT)
            cells = [" / ".join(fmt(spec[name][s][lb]["planets_with_a_spectrum"][base]["auc"])
                                for s in HELD_OUT) for lb in BINARY]
            print(f"| {name} | {n} | {base} | " + " | ".join(cells) + " |")
    print("\nbootstrap standard error of the row trees' AUC (val / test): " + "; ".join(
        f"{lb} " + " / ".join(fmt(binary[s][lb]["gbm_row"]["auc_bootstrap_se"])
                              for s in HELD_OUT) for lb in BINARY))
    print("\nclasses (val / test), accuracy ; balanced accuracy:")
    for label in CLASSES:
        for base in r["classes"][HELD_OUT[0]][label]:
            cells = " | ".join(" / ".join(fmt(r["classes"][s][label][base][m])
                                          for s in HELD_OUT)
                               for m in ("accuracy", "balanced_accuracy"))
            print(f"| {label} | {base} | {cells} |")
    print("\nretrieval R² mean over targets (val / test):")
    for scenario, groups in r["retrieval"].items():
        for group, table in groups.items():
            for base in table["val"]:
                print(f"| {scenario} | {group} | {base} | "
                      + " / ".join(fmt(table[s][base]["mean"]) for s in HELD_OUT) + " |")
    print("\nspectrum share curve, GBM row + spectrum AUC (val / test):")
    print("| share of transiting planets with a spectrum | habitable, refitted | biosignature, "
          f"refitted | habitable, fitted at {DEFAULT_RATE} | biosignature, fitted at "
          f"{DEFAULT_RATE} |")
    print("|---|---|---|---|---|")
    c = r["spectrum_share_curve"]
    for i, rate in enumerate(c["rates"]):
        print(f"| {rate} | " + " | ".join(" / ".join(fmt(c["refit"][s][lb][i]) for s in HELD_OUT)
                                          for lb in BINARY) + " | "
              + " | ".join(" / ".join(fmt(c[f"fitted_at_{DEFAULT_RATE}"][s][lb][i])
                                      for s in HELD_OUT) for lb in BINARY) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="the models' random_state")
    parser.add_argument("--num-planets", type=int, default=PlanetsConfig().num_planets,
                        help="a smaller population for a quick check (the split stays)")
    parser.add_argument("--threads", type=int, default=1, help="OpenMP threads for sklearn")
    parser.add_argument("--out", type=Path, default=RESULTS / "fusion_baselines.json")
    args = parser.parse_args()
    import sklearn
    from threadpoolctl import threadpool_limits

    config = dataclasses.replace(PlanetsConfig(), num_planets=args.num_planets)
    timings, start = {}, time.perf_counter()

    def lap(name: str) -> None:
        timings[name] = round(time.perf_counter() - start - sum(timings.values()), 1)
        print(f"{name}: {timings[name]} s", flush=True)

    with threadpool_limits(limits=args.threads):
        data = load(config)
        lap("data")
        gbm_choice, gbm_cv = choose_gbm(data, args.seed)
        data.gbm = {**GBM_CANDIDATES[gbm_choice], "random_state": args.seed}
        lap("choose_gbm")
        catalogue, probs, chosen = catalogue_binary(data, args.seed)
        lap("catalogue_binary")
        spectrum, spectrum_chosen = {}, {}
        for name, rate in SCENARIOS.items():
            spectrum[name], p, spectrum_chosen[name] = spectrum_binary(data, rate)
            if rate == DEFAULT_RATE:
                for key, value in p.items():
                    probs[key][f"gbm_row_spectrum ({DEFAULT_RATE})"] = value
        lap("spectrum_binary")
        classes, retrieval = {s: {} for s in HELD_OUT}, {}
        x_by = {"gbm_row": data.row}
        for name, rate in SCENARIOS.items():
            if rate > 0:
                x_by[f"gbm_row_spectrum ({name})"] = with_spectrum(data, spectrum_mask(data,
                                                                                       rate))
        classes = class_baselines(data, x_by)
        lap("classes")
        for name in ("default_0.3", "every_transiting"):
            retrieval[name] = retrieval_baselines(
                data, {"gbm_row": data.row,
                       "gbm_row_spectrum": x_by[f"gbm_row_spectrum ({name})"]},
                spectrum_mask(data, SCENARIOS[name]))
        lap("retrieval")
        curve = share_curve(data)
        lap("share_curve")
        control, _, control_chosen = spectrum_binary(data, 1.0, clean=True)
        has_all = spectrum_mask(data, 1.0)
        control_retrieval = retrieval_baselines(
            data, {"gbm_row_spectrum": with_spectrum(data, has_all, clean=True)}, has_all)
        lap("noiseless_control")
        png = args.out.with_name(args.out.stem + "_reliability.png")
        png.parent.mkdir(parents=True, exist_ok=True)
        reliability_png(png, probs, data.labels, data.split)
        lap("plot")

    split = data.split
    result = {
        "setup": {
            "population": {"num_planets": config.num_planets, "seed": config.seed,
                           "catalogue": "observe_catalogue(population, seed) defaults "
                                        "(random stream 5)",
                           "row_features": list(data.row_names)},
            "split": {"val_fraction": config.val_fraction,
                      "test_fraction": config.test_fraction, "split_seed": config.split_seed,
                      "sizes": split.sizes()},
            "prevalence": {s: {lb: float(data.labels[lb][split[s]].mean()) for lb in BINARY}
                           for s in SPLITS},
            "spectra": {"instrument": INSTRUMENT, "n_transits": TRANSITS, "noise": True,
                        "realisation": 0, "seed": config.seed, "features": "median depth and "
                        "each bin minus it, ppm; NaN where the planet has no spectrum"},
            "spectrum_share": {name: {"rate_of_transiting": rate, **{
                s: float(spectrum_mask(data, rate)[split[s]].mean()) for s in SPLITS}}
                for name, rate in SCENARIOS.items()},
            "transiting_share": float(data.transiting.mean()),
            "models": {"gbm": "sklearn HistGradientBoostingClassifier / Regressor with the "
                              "candidate of lowest 5-fold CV log loss on train rows",
                       "gbm_candidates": GBM_CANDIDATES, "gbm_chosen": gbm_choice,
                       "gbm_train_cv": gbm_cv,
                       "gbm_params": {k: v for k, v in gbm_classifier(data).get_params()
                                      .items() if isinstance(v, int | float | str | type(None))},
                       "logistic_spectrum": "StandardScaler + LogisticRegressionCV(Cs=logspace("
                                            "-4, 2, 13), cv=5, neg_log_loss), train planets "
                                            "with a spectrum",
                       "binned_rule": "32 quantile bins + an unknown bin, chosen by out-of-fold "
                                      "AUC on train (fold seed 0), fitted on all train",
                       "ece": "15 confidence bins (Guo et al. 2017), metrics.calibration_sums",
                       "accuracy": "the likelier label, 1 from p >= 0.5"},
            "chosen_on_train": chosen, "spectrum_models": spectrum_chosen},
        "binary": {"catalogue": catalogue, "spectrum": spectrum,
                   "note": "habitable_zone_* are rules, not probabilities: AUC and AP only "
                           "(and the yes/no call's accuracy); ECE is meaningless for them. The "
                           "threshold rule ranks, so AUC and AP only."},
        "classes": classes,
        "retrieval": retrieval,
        "spectrum_share_curve": curve,
        "noiseless_control_every_transiting": {"binary": control,
                                               "retrieval": control_retrieval,
                                               "models": control_chosen},
        "timings_s": timings, "seconds": round(time.perf_counter() - start, 1),
        "machine": "shared 2-core CPU", "threads": args.threads,
        "scikit_learn": sklearn.__version__,
        "command": "PYTHONPATH=$PWD nice python benchmarks/fusion_baselines.py",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print_tables(result)
    print(f"wrote {args.out} and {png} ({result['seconds']} s, shared 2-core CPU)")


if __name__ == "__main__":
    main()
