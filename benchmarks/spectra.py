"""The spectrum modality's data: generation throughput, example spectra, and what a single band
gives away about the labels.

    python benchmarks/spectra.py                    # 4,096 planets (about a minute on 2 cores)
    python benchmarks/spectra.py --num-planets 1024 # quick

Writes benchmarks/results/spectra.json and spectra.png. Reports:

* throughput: planets per second of ``planet_spectra`` (noisy, NIRSpec PRISM; and PRISM +
  MIRI LRS) and of ``spectrum_labels``, the best of 3 runs;
* the example planets of spectra.png (an Earth-like oxygenic planet, a methanogenic one, an
  H2-rich sub-Neptune, an airless rock, each around an M dwarf): noiseless, 1 and 10 transits
  on NIRSpec PRISM + MIRI LRS. Each is the most favourable of its kind, the one whose features
  stand out most after 10 transits, so the picture shows what the model can produce; the
  median planet's features are far below its noise (``median_feature_ppm_noiseless`` against
  ``median_sigma_ppm_1_transit``);
* leakage: for biosignature and habitable, the best single-bin threshold rule on NIRSpec PRISM
  spectra, noiseless and after 1, 3, 10 and 30 transits. Three families of one-number scores
  per bin: the depth itself, the depth above the spectrum's own minimum (a band depth), and that
  band depth over the minimum (in units of the baseline (Rp/Rs)^2); each may point either
  way. The bin, family and direction are chosen on the train planets (the one split by planet
  id) and scored (ROC AUC) on the held-out (val + test) planets; the in-sample best is given
  too. Beside them, L2 logistic regression on all bins (standardised, scikit-learn, fitted on
  train), to show how far one bin is from the whole spectrum. The same again on the quarter
  of planets an observer would pick (the top 25% by Kempton et al.'s transmission
  spectroscopy metric), noiseless and after 3 and 10 transits;
* per-molecule presence rates (detectable against the floor; after 1 and 10 transits) and an
  Earth twin's effective heights, a reference for the model's band strengths.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TRANSITS = (1, 3, 10, 30)


def auc_columns(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """ROC AUC of every column of ``scores`` [n, k] (Mann-Whitney, ties half)."""
    from scipy.stats import rankdata

    ranks = rankdata(scores, axis=0)
    pos = labels.astype(bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return (ranks[pos].sum(axis=0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def single_band_scores(depth: np.ndarray) -> dict[str, np.ndarray]:
    floor = depth.min(axis=1, keepdims=True)
    return {"depth": depth, "band_depth": depth - floor, "band_depth_over_baseline":
            (depth - floor) / floor}


def best_single_band(depth, labels, train, held_out, wavelength) -> dict:
    """The bin / family / direction with the best train AUC, scored on held-out planets."""
    best = None
    for family, scores in single_band_scores(depth).items():
        auc_train = auc_columns(scores[train], labels[train])
        strength = np.maximum(auc_train, 1 - auc_train)
        k = int(np.argmax(strength))
        if best is None or strength[k] > best[0]:
            best = (strength[k], family, k, 1.0 if auc_train[k] >= 0.5 else -1.0)
    _, family, k, sign = best
    from astrojax.evaluators.metrics import roc_auc

    score = sign * single_band_scores(depth)[family][:, k]
    held = labels[held_out].astype(bool)
    in_sample = max(float(np.max(np.maximum(a, 1 - a))) for a in
                    (auc_columns(s, labels) for s in single_band_scores(depth).values()))
    return {"held_out_auc": roc_auc(score[held_out][held], score[held_out][~held]),
            "train_auc": float(best[0]), "family": family,
            "wavelength_um": round(float(wavelength[k]), 4),
            "direction": "higher" if sign > 0 else "lower", "in_sample_best_auc": in_sample}


def logistic_all_bins(depth, labels, train, held_out) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from astrojax.evaluators.metrics import roc_auc

    scores = single_band_scores(depth)
    x = np.hstack([scores["depth"], scores["band_depth_over_baseline"]])
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    model.fit(x[train], labels[train])
    p = model.predict_proba(x[held_out])[:, 1]
    held = labels[held_out].astype(bool)
    return roc_auc(p[held], p[~held])


def examples(population, inputs, grid_name) -> dict[str, int]:
    """Per kind, the planet whose features stand out most after 10 transits (see the
    docstring); the airless rock is the one with the brightest host."""
    from astrojax.data.generator.spectra import model_depth, noise_sigma

    depth = model_depth(inputs, grid_name)
    snr = np.sqrt((((depth - depth.min(axis=1, keepdims=True))
                    / noise_sigma(inputs, grid_name, 10)) ** 2).sum(axis=1))
    snr = np.where(inputs.airless, -inputs.j_mag, snr)
    r = population.planet_radius_rearth
    clear = (inputs.cloud_top_bar == inputs.surface_pressure_bar) & ~inputs.airless
    m_dwarf = population.star_type == 0
    earth_size = (r > 0.8) & (r < 1.3)
    kinds = {
        "Earth-like, oxygenic biosphere": (population.biosphere == 3) & earth_size & clear,
        "methanogenic biosphere": (population.biosphere == 1) & earth_size & clear,
        "H2-rich sub-Neptune": (r > 1.6) & clear,
        "airless rock": inputs.airless,
    }
    return {kind: int(np.flatnonzero(rows & m_dwarf)[np.argmax(snr[rows & m_dwarf])])
            for kind, rows in kinds.items()}


def earth_twin_heights() -> dict[str, float]:
    from astrojax.data.generator.spectra import SPECIES, SpectrumInputs, model_depth, spectral_grid

    below = {"n2": 0.78, "o2": 0.21, "co2": 4e-4, "ch4": 1.8e-6, "h2o": 1e-2, "n2o": 3.3e-7,
             "co": 1e-7}
    above = dict(below, h2o=4e-6, o3=4e-6)
    one = np.ones(1)
    twin = SpectrumInputs(
        planet_radius_rearth=one, star_radius_rsun=one, star_teff_k=5772 * one,
        gravity_ms2=9.81 * one, temperature_k=255 * one, surface_pressure_bar=one,
        cloud_top_bar=one, x=np.array([[below.get(s, 0.0) for s in SPECIES]]),
        x_above=np.array([[above.get(s, 0.0) for s in SPECIES]]), trap_bar=0.1 * one,
        distance_pc=10 * one, transit_hours=13 * one, star_radius_over_a=one / 215.0)
    grid = spectral_grid("nirspec_prism+miri_lrs")
    z_km = (np.sqrt(model_depth(twin, grid)[0]) * 6.957e8 - 6.371e6) / 1e3
    at = {"minimum": float(z_km.min())}
    for label, wl in (("O3 0.6 um", 0.6), ("O2 0.76 um", 0.76), ("window 1.06 um", 1.06),
                      ("H2O 1.4 um", 1.4), ("window 1.6 um", 1.6), ("CO2 2.7 um", 2.7),
                      ("CH4 3.3 um", 3.3), ("CO2 4.3 um", 4.3), ("H2O 6.3 um", 6.3),
                      ("CH4 7.7 um", 7.7), ("O3 9.6 um", 9.6), ("window 11 um", 11.0)):
        at[label] = round(float(z_km[np.argmin(abs(grid.wavelength_um - wl))]), 1)
    return at


def plot(path, population, chosen, grid_name) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from astrojax.data.generator.spectra import planet_spectra

    rows = list(chosen.values())
    clean, _, wavelength = planet_spectra(population, grid_name, indices=rows, noise=False)
    noisy = {n: planet_spectra(population, grid_name, n, indices=rows) for n in (1, 10)}
    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 2.6 * len(rows)), sharex=True)
    bands = {"O3": 0.6, "O2": 0.76, "H2O": 1.4, "H2O ": 1.9, "CO2": 2.7, "CH4": 3.3,
             "CO2 ": 4.3, "H2O  ": 6.3, "CH4 ": 7.7, "O3 ": 9.6}
    for i, (ax, (kind, row)) in enumerate(zip(axes, chosen.items(), strict=True)):
        depth, sigma, _ = noisy[1]
        ax.plot(wavelength, depth[i] * 1e6, ".", ms=3, color="0.65", label="1 transit")
        depth, sigma, _ = noisy[10]
        ax.errorbar(wavelength, depth[i] * 1e6, sigma[i] * 1e6, fmt=".", ms=3,
                    color="tab:blue", elinewidth=0.6, label="10 transits")
        ax.plot(wavelength, clean[i] * 1e6, color="k", lw=1.2, label="noiseless")
        lo, hi = clean[i].min() * 1e6, clean[i].max() * 1e6
        pad = max(hi - lo, 3 * float(np.median(noisy[10][1][i])) * 1e6)
        ax.set_ylim(lo - 0.6 * pad, hi + 0.6 * pad)
        for name, wl in bands.items():
            if wl < wavelength.max():
                ax.axvline(wl, color="tab:red", lw=0.4, alpha=0.4)
                ax.text(wl, hi + 0.45 * pad, name.strip(), fontsize=7, ha="center",
                        color="tab:red")
        r = population.planet_radius_rearth[row]
        ax.set_title(f"{kind}: {population.name[row]}, {r:.2f} R_earth, "
                     f"T_eq {population.equilibrium_temperature_k[row]:.0f} K", fontsize=9)
        ax.set_ylabel("depth (ppm)")
        if i == 0:
            ax.legend(fontsize=7, ncol=3, loc="lower right")
    axes[-1].set_xscale("log")
    ticks = [0.6, 0.8, 1, 1.5, 2, 3, 4, 5, 7, 10]
    axes[-1].set_xticks([t for t in ticks if t <= wavelength.max() * 1.01])
    axes[-1].set_xticklabels([f"{t:g}" for t in ticks if t <= wavelength.max() * 1.01])
    axes[-1].set_xlabel(f"wavelength (um), {grid_name}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-planets", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "spectra.json"))
    args = parser.parse_args()

    from astrojax.data.generator import generate_population
    from astrojax.data.generator.spectra import (
        MOLECULES,
        planet_spectra,
        spectral_grid,
        spectrum_inputs,
        spectrum_labels,
        transmission_metric,
    )
    from astrojax.data.planets import split_planets

    population = generate_population(args.num_planets, args.seed)
    n = len(population)

    def best_of_3(fn) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    throughput = {
        "planet_spectra nirspec_prism": n / best_of_3(lambda: planet_spectra(population)),
        "planet_spectra nirspec_prism+miri_lrs": n / best_of_3(
            lambda: planet_spectra(population, "nirspec_prism+miri_lrs")),
        "spectrum_labels nirspec_prism": n / best_of_3(lambda: spectrum_labels(population)),
    }
    throughput = {k: round(v) for k, v in throughput.items()}

    split = split_planets(population.name.astype(str), 0.1, 0.1)
    train, held_out = split.train, np.sort(np.concatenate([split.val, split.test]))
    grid = spectral_grid("nirspec_prism")
    labels = {"biosignature": population.biosignature.astype(int),
              "habitable": population.habitable.astype(int)}
    leakage = {name: {} for name in labels}
    for condition in ("noiseless", *(f"{t}_transit{'s' * (t > 1)}" for t in TRANSITS)):
        if condition == "noiseless":
            depth = planet_spectra(population, grid, noise=False)[0]
        else:
            depth = planet_spectra(population, grid, int(condition.split("_")[0]))[0]
        for name, y in labels.items():
            leakage[name][condition] = {
                "best_single_bin": best_single_band(depth, y, train, held_out,
                                                    grid.wavelength_um),
                "logistic_all_bins_held_out_auc": logistic_all_bins(depth, y, train, held_out)}

    # The planets an observer would choose: the top quarter by the transmission spectroscopy
    # metric (Kempton et al. 2018), computed from catalogue quantities and the host's J.
    tsm = transmission_metric(population, args.seed)
    favourable = tsm >= np.quantile(tsm, 0.75)
    fav_train, fav_held = train[favourable[train]], held_out[favourable[held_out]]
    favoured = {name: {} for name in labels}
    for condition, n_transits in (("noiseless", None), ("3_transits", 3), ("10_transits", 10)):
        depth = planet_spectra(population, grid, n_transits or 1,
                               noise=n_transits is not None)[0]
        for name, y in labels.items():
            favoured[name][condition] = {
                "best_single_bin": best_single_band(depth, y, fav_train, fav_held,
                                                    grid.wavelength_um),
                "logistic_all_bins_held_out_auc": logistic_all_bins(depth, y, fav_train,
                                                                    fav_held)}

    presence = {}
    for key, n_transits in (("floor_only", None), ("1_transit", 1), ("10_transits", 10)):
        present = spectrum_labels(population, grid, args.seed, n_transits=n_transits).present
        presence[key] = dict(zip(MOLECULES, np.round(present.mean(axis=0), 4).tolist(),
                                 strict=True))

    inputs = spectrum_inputs(population, args.seed)
    chosen = examples(population, inputs, "nirspec_prism+miri_lrs")
    plot(RESULTS / "spectra.png", population, chosen, "nirspec_prism+miri_lrs")
    _, sigma1, _ = planet_spectra(population, grid, 1, noise=False)
    out = {
        "num_planets": n, "seed": args.seed, "instrument": "nirspec_prism",
        "bins": {name: len(spectral_grid(name)) for name in
                 ("nirspec_prism", "niriss_soss", "miri_lrs")},
        "throughput_planets_per_s": throughput,
        "median_sigma_ppm_1_transit": round(float(np.median(sigma1) * 1e6), 1),
        "median_feature_ppm_noiseless": round(float(np.median(np.ptp(
            planet_spectra(population, grid, noise=False)[0], axis=1)) * 1e6), 2),
        "label_rates": {k: round(float(v.mean()), 4) for k, v in labels.items()},
        "split": {"train": len(train), "held_out": len(held_out)},
        "leakage": leakage,
        "top_quarter_by_tsm": {"train": len(fav_train), "held_out": len(fav_held),
                               "label_rates": {k: round(float(v[favourable].mean()), 4)
                                               for k, v in labels.items()},
                               "leakage": favoured},
        "presence_rate": presence,
        "examples": {kind: str(population.name[row]) for kind, row in chosen.items()},
        "earth_twin_effective_height_km": earth_twin_heights(),
        "machine": f"shared {os.cpu_count()}-core CPU ({platform.machine()})",
    }
    os.makedirs(RESULTS, exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
