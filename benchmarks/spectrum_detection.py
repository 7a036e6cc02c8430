"""The detection curve: how well a trained spectrum encoder tells biosignatures, habitability and
each detectable molecule against the number of JWST transits (1, 3, 10, 30).

    PYTHONPATH=$PWD nice python benchmarks/spectrum_detection.py             # 9 runs
    PYTHONPATH=$PWD python benchmarks/spectrum_detection.py --steps 50 --transits 1 30  # quick
    PYTHONPATH=$PWD python benchmarks/spectrum_detection.py --plot-only   # redraw from the JSON

configs/fusion.py's model, heads and training (600 steps), with every transiting planet given
a NIRSpec PRISM spectrum (``data.spectrum_rate=1``) and the per-molecule presence heads of the
molecules a spectrum ever shows (``present_M``: detectable against the instrument's floor,
``observe.presence_labels``; O2, O3 and N2O never are on PRISM in this population) added to
``model.classes``. Per transit count, trained through ``train_and_evaluate``:

- ``spectrum``: the spectrum alone (``data.modalities=("spectrum",)``);
- ``catalogue+spectrum``: the catalogue row and the spectrum;
- and once ``catalogue``: the row alone (its spectra are never read).

Every number is scored on the val (and test) planets that have a spectrum (the transiting
ones, where every presence label is known), from the trained model's probabilities
(``binary_report``: AUC, AP, ECE over 15 bins). Beside them, on the same planets, fitted on the
train planets (with a spectrum, for the spectrum baselines):

- ``logistic_noiseless`` (the ceiling: L2 logistic regression on every bin of the noiseless
  spectrum, ``spectra.logistic_all_bins``) and ``best_bin_noiseless`` (the best single-bin
  threshold rule chosen on train, ``spectra.best_single_band``), both independent of transits;
- ``logistic_bins`` and ``best_bin``: the same on the noisy spectra the models read;
- ``gbm_row``: gradient-boosted trees on the catalogue row (``fusion_baselines``: the setting
  that benchmark chose by cross-validation on train, read from fusion_baselines.json).

Writes benchmarks/results/spectrum_detection.json and spectrum_detection.png (AUC against
transits, one panel per label; ceilings dashed) and prints the README table.
"""

from __future__ import annotations

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
TRANSITS = (1, 3, 10, 30)
LABELS = ("biosignature", "habitable")
HELD_OUT = ("val", "test")
TRANSIT_FREE = ("catalogue only (fusion)", "GBM, catalogue row", "ceiling: logistic, noiseless",
                "best single bin, noiseless")  # lines that do not depend on the transits
MIN_POSITIVES = 3  # a presence label is scored where val has at least this many detections


def trained_probabilities(cfg, result, task, rows: np.ndarray) -> dict[str, np.ndarray]:
    """P(label) of the trained model for the planets ``rows``, per binary class label."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from astrojax.train.step import build_model

    model = build_model(task, cfg.train.seed)
    nnx.update(model, jax.device_get(result.state.params))
    forward = nnx.jit(lambda m, b: m(b))
    names = [n for n, k in task.model_config.classes if k == 2]
    out = {n: [] for n in names}
    for start in range(0, len(rows), 256):
        chunk = rows[start:start + 256]
        batch = {k: jnp.asarray(v[chunk]) for k, v in task.arrays.items()}
        logits = forward(model, batch)
        for n in names:
            out[n].append(np.asarray(jax.nn.sigmoid(logits[f"logits/{n}"])))
    return {n: np.concatenate(v) for n, v in out.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="default: the config's (600)")
    parser.add_argument("--transits", type=int, nargs="+", default=list(TRANSITS))
    parser.add_argument("--output", type=Path, default=RESULTS / "spectrum_detection.json")
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw the PNG and reprint the table from --output's JSON")
    args = parser.parse_args(argv)
    if args.plot_only:
        result = json.loads(args.output.read_text())
        plot(result, args.output.with_suffix(".png"))
        print_table(result)
        return 0

    import jax
    from fusion_baselines import GBM_CANDIDATES, gbm_classifier, held_out_probs
    from spectra import best_single_band, logistic_all_bins
    from threadpoolctl import threadpool_limits

    from astrojax.config import to_dict
    from astrojax.data.generator.observe import PRESENCE_LABELS
    from astrojax.data.generator.spectra import planet_spectra, spectral_grid
    from astrojax.data.planets import PlanetTable
    from astrojax.evaluators import catalogue_row_features
    from astrojax.evaluators.metrics import binary_report
    from astrojax.tasks import get_task
    from astrojax.train.loop import train_and_evaluate

    start_all = time.perf_counter()

    def config(modalities, n_transits, classes):
        cfg = runpy.run_path(str(ROOT / "configs" / "fusion.py"))["get_config"]()
        if args.steps:
            cfg.train.steps = args.steps
            cfg.train.eval_every = cfg.train.checkpoint_every = args.steps
        cfg.data.modalities = modalities
        cfg.data.spectrum_rate = 1.0
        cfg.data.n_transits = n_transits
        cfg.model.classes = classes
        return cfg

    # The planets, labels and split, from a task with every presence head (its labels do not
    # depend on the number of transits or the modalities).
    probe = get_task(config(("catalogue", "spectrum"), 1, tuple(
        (n, 2) for n in (*LABELS, *PRESENCE_LABELS))))
    split, labels, has = probe.split, probe.labels, probe.masks["spectrum"]
    rows = {s: split[s][has[split[s]]] for s in ("train", *HELD_OUT)}
    assert all(labels[f"{n}_known"][rows[s]].all() for n in PRESENCE_LABELS for s in rows)
    molecules = tuple(n for n in PRESENCE_LABELS
                      if labels[n][rows["train"]].sum() >= MIN_POSITIVES
                      and labels[n][rows["val"]].sum() >= MIN_POSITIVES)
    targets = (*LABELS, *molecules)
    base = config(("catalogue",), 1, ())
    classes = tuple((n, 2) for n in targets) + tuple(
        c for c in base.model.classes if c[0] not in targets)
    scored = {s: {n: {"planets": int(len(rows[s])), "positives": int(labels[n][rows[s]].sum())}
                  for n in targets} for s in HELD_OUT}
    print(f"scored planets (val / test): {len(rows['val'])} / {len(rows['test'])}; "
          f"labels: {', '.join(targets)}", flush=True)

    def report(probs: dict[str, np.ndarray]) -> dict:
        return {s: {n: binary_report(labels[n][rows[s]], probs[s][n]) for n in targets}
                for s in HELD_OUT}

    def run(modalities, n_transits) -> dict:
        cfg = config(modalities, n_transits, classes)
        task = get_task(cfg)
        assert np.array_equal(task.masks["spectrum"], has)
        with tempfile.TemporaryDirectory() as workdir:
            start = time.perf_counter()
            result = train_and_evaluate(cfg, Path(workdir))
            wall = time.perf_counter() - start
        probs = {s: trained_probabilities(cfg, result, task, rows[s]) for s in HELD_OUT}
        out = {"steps": result.step, "wall_seconds": round(wall, 1),
               "compile_seconds": result.compile_seconds, **report(probs),
               "loop_eval_all_val_planets": {k.removeprefix("eval/"): v
                                             for k, v in result.eval.items()
                                             if k.startswith("eval/auc/")}}
        print(f"{'+'.join(modalities)}, {n_transits} transits: " + ", ".join(
            f"{n} {out['val'][n]['auc']:.3f}" for n in targets) + f" ({wall:.0f} s)",
              flush=True)
        return out

    # ---- baselines on the same planets
    fusion_baselines = json.loads((RESULTS / "fusion_baselines.json").read_text())
    gbm_choice = fusion_baselines["setup"]["models"]["gbm_chosen"]
    population, seed = probe.table.population, probe.cfg.planets.seed
    grid = spectral_grid(probe.cfg.data.instrument)
    baselines: dict = {"gbm_row": {}, "logistic_noiseless": {}, "best_bin_noiseless": {},
                       "logistic_bins": {}, "best_bin": {}}

    def spectrum_baselines(depth) -> tuple[dict, dict]:
        logistic, best = {}, {}
        for s in HELD_OUT:
            logistic[s], best[s] = {}, {}
            for n in targets:
                y = labels[n].astype(int)
                logistic[s][n] = {"auc": logistic_all_bins(depth, y, rows["train"], rows[s])}
                rule = best_single_band(depth, y, rows["train"], rows[s], grid.wavelength_um)
                best[s][n] = {"auc": rule["held_out_auc"], "wavelength_um": rule["wavelength_um"],
                              "family": rule["family"], "direction": rule["direction"]}
        return logistic, best

    with threadpool_limits(limits=1):  # see fusion_baselines.py: threads were 60x slower here
        start = time.perf_counter()
        # The row as published (PlanetTable.observed), not the task's table of true values.
        observed = PlanetTable.observed(probe.cfg.planets.num_planets, seed)
        assert np.array_equal(observed.ids, probe.table.ids)
        row, _ = catalogue_row_features(observed)
        params = {**GBM_CANDIDATES[gbm_choice], "random_state": 0}
        gbm = {n: held_out_probs(gbm_classifier(None, params), row, labels[n].astype(int),
                                 split) for n in targets}
        baselines["gbm_row"] = {s: {n: binary_report(labels[n][rows[s]],
                                                     gbm[n][s][has[split[s]]])
                                    for n in targets} for s in HELD_OUT}
        clean = planet_spectra(population, grid, seed=seed, noise=False)[0]
        baselines["logistic_noiseless"], baselines["best_bin_noiseless"] = \
            spectrum_baselines(clean)
        for t in args.transits:
            depth = planet_spectra(population, grid, t, seed)[0]
            baselines["logistic_bins"][str(t)], baselines["best_bin"][str(t)] = \
                spectrum_baselines(depth)
        baseline_seconds = round(time.perf_counter() - start, 1)
    print(f"baselines: {baseline_seconds} s", flush=True)

    runs = {"catalogue": run(("catalogue",), args.transits[0])}
    for t in args.transits:
        runs[f"spectrum/{t}"] = run(("spectrum",), t)
        runs[f"catalogue+spectrum/{t}"] = run(("catalogue", "spectrum"), t)

    out = {
        "setup": {
            "config": "configs/fusion.py with data.spectrum_rate=1, data.n_transits=T, "
                      "data.modalities as named, model.classes as below",
            "classes": [list(c) for c in classes], "scored_labels": list(targets),
            "presence_labels_left_out": [n for n in PRESENCE_LABELS if n not in molecules],
            "presence_label": "detectable against the instrument's systematic floor "
                              "(spectrum_labels(...).present, SNR >= 5 with as many transits "
                              "as it takes): independent of the transit count",
            "instrument": probe.cfg.data.instrument, "transits": args.transits,
            "scored_planets": "val / test planets with a spectrum (= the transiting ones)",
            "scored": scored, "gbm_chosen": gbm_choice,
            "config_values": to_dict(config(("catalogue", "spectrum"), 1, classes))},
        "runs": runs, "baselines": baselines, "baseline_seconds": baseline_seconds,
        "backend": jax.default_backend(),
        "machine": f"shared {os.cpu_count()}-core CPU",
        "seconds": round(time.perf_counter() - start_all, 1),
        "command": "PYTHONPATH=$PWD nice python benchmarks/spectrum_detection.py"
                   + (f" --steps {args.steps}" if args.steps else "")
                   + ("" if tuple(args.transits) == TRANSITS else
                      " --transits " + " ".join(map(str, args.transits))),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=1) + "\n")
    plot(out, args.output.with_suffix(".png"))
    print_table(out)
    print(f"wrote {args.output} ({out['seconds']} s, shared {os.cpu_count()}-core CPU)")
    return 0


def curves(r: dict, split: str = "val") -> dict[str, dict[str, list]]:
    """Per label, AUC against transits: {line name: [AUC per transit count]}."""
    transits, out = r["setup"]["transits"], {}
    b, runs = r["baselines"], r["runs"]
    for n in r["setup"]["scored_labels"]:
        out[n] = {
            "spectrum encoder": [runs[f"spectrum/{t}"][split][n]["auc"] for t in transits],
            "catalogue + spectrum": [runs[f"catalogue+spectrum/{t}"][split][n]["auc"]
                                     for t in transits],
            "catalogue only (fusion)": [runs["catalogue"][split][n]["auc"]] * len(transits),
            "GBM, catalogue row": [b["gbm_row"][split][n]["auc"]] * len(transits),
            "logistic, all bins": [b["logistic_bins"][str(t)][split][n]["auc"]
                                   for t in transits],
            "best single bin": [b["best_bin"][str(t)][split][n]["auc"] for t in transits],
            "ceiling: logistic, noiseless": [b["logistic_noiseless"][split][n]["auc"]]
            * len(transits),
            "best single bin, noiseless": [b["best_bin_noiseless"][split][n]["auc"]]
            * len(transits)}
    return out


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    transits, data = r["setup"]["transits"], curves(r)
    styles = {"spectrum encoder": dict(color="tab:blue", marker="o"),
              "catalogue + spectrum": dict(color="tab:red", marker="s"),
              "catalogue only (fusion)": dict(color="tab:red", ls=":"),
              "GBM, catalogue row": dict(color="tab:green", ls=":"),
              "logistic, all bins": dict(color="tab:purple", marker="^", lw=1),
              "best single bin": dict(color="tab:orange", marker="v", lw=1),
              "ceiling: logistic, noiseless": dict(color="tab:purple", ls="--"),
              "best single bin, noiseless": dict(color="tab:orange", ls="--")}
    cols = 3
    rows = -(-len(data) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    lowest = min(min(aucs) for lines in data.values() for aucs in lines.values())
    for ax, (label, lines) in zip(axes.flat, data.items(), strict=False):
        for name, aucs in lines.items():
            ax.plot(transits, aucs, label=name, **styles[name])
        ax.axhline(0.5, color="0.8", lw=0.8)
        n = r["setup"]["scored"]["val"][label]
        ax.set(xscale="log", title=f"{label} (val: {n['positives']} of {n['planets']})",
               xlabel="transits", ylabel="AUC", ylim=(min(0.35, lowest - 0.03), 1.0))
        ax.set_xticks(transits, [str(t) for t in transits])
    for ax in axes.flat[len(data):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6.5, loc="lower left")
    fig.suptitle("Detection curve: val planets with a NIRSpec PRISM spectrum "
                 "(dashed: noiseless-spectrum rules)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def print_table(r: dict) -> None:
    transits = r["setup"]["transits"]
    for split in HELD_OUT:
        print(f"\n{split} AUC on planets with a spectrum, by transits "
              f"({', '.join(map(str, transits))}):")
        print("| label (positives / planets) | model | " + " | ".join(map(str, transits))
              + " |")
        print("|---|---|" + "---|" * len(transits))
        for label, lines in curves(r, split).items():
            n = r["setup"]["scored"][split][label]
            for name, aucs in lines.items():
                cells = ([f"{aucs[0]:.3f} (any)"] + [""] * (len(aucs) - 1)
                         if name in TRANSIT_FREE else [f"{a:.3f}" for a in aucs])
                print(f"| {label} ({n['positives']}/{n['planets']}) | {name} | "
                      + " | ".join(cells) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
