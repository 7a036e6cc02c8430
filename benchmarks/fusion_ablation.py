"""The fusion model's modality ablation, missing-modality curve and scarce-label study.

    python benchmarks/fusion_ablation.py                         # every part
    python benchmarks/fusion_ablation.py --parts all single      # some parts
    python benchmarks/fusion_ablation.py --parts labels --steps 100   # quick

Every run is ``configs/fusion.py`` trained through the train loop, changed in one field; each
is scored with its trained model's probabilities on the val planets (and, once, on test), on
all of them and on those that have each modality. Parts (results kept in the file per part):

- ``all``: the config as is (every modality), plus the **missing-modality curve**: the same
  trained model with each modality hidden for a share (0, 25, 50, 75, 100%) of the planets that
  have it, one modality at a time and all but the catalogue row together (no retraining: the
  model trained with modality dropout meets missing inputs as it would in use);
- ``single``: one run per modality alone (``data.modalities``);
- ``leave_one_out``: one run per modality left out;
- ``labels``: 1% and 10% of the train planets keep their labels (``data.label_fraction``):
  trained from scratch, against fine-tuned from a contrastive pretraining on every train
  planet without labels (``model.contrastive_weight``, ``model.init``), beside gradient-boosted
  trees and logistic regression on the catalogue row fitted on the same labelled planets.

Beside every run: the conservative habitable zone and gradient-boosted trees on the catalogue
row (all train labels), on the same planets. Writes ``benchmarks/results/fusion_ablation.json``
and ``fusion_ablation.png`` (AUC per run, and the missing-modality curve). Wall times are those
of the machine that ran it (recorded in the file).
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
BINARY = ("habitable", "biosignature")
SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)
LABEL_FRACTIONS = (0.01, 0.1)
PARTS = ("all", "single", "leave_one_out", "labels")


def base_config(steps: int | None):
    cfg = runpy.run_path(str(ROOT / "configs" / "fusion.py"))["get_config"]()
    if steps:
        cfg.train.steps = steps
        cfg.train.eval_every = cfg.train.checkpoint_every = steps
    return cfg


def train(cfg, workdir: Path):
    """Trains ``cfg`` in ``workdir`` -> ``(task, model with the trained weights, result,
    seconds)``."""
    import jax
    from flax import nnx

    from astrojax.tasks import get_task
    from astrojax.train.loop import train_and_evaluate
    from astrojax.train.step import build_model

    start = time.perf_counter()
    result = train_and_evaluate(cfg, workdir)
    seconds = time.perf_counter() - start
    task = get_task(cfg)
    model = build_model(task, cfg.train.seed)
    nnx.update(model, jax.device_get(result.state.params))
    return task, model, result, seconds


_FORWARD: dict[int, tuple] = {}


def predictions(task, model, split: str, hide: dict[str, float] | None = None, seed: int = 0):
    """Probabilities of the binary labels on ``split``'s scored planets, their labels and
    which modalities each planet has; ``hide`` hides each named modality for that share of the
    planets that have it."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    if id(model) not in _FORWARD:  # one compilation per trained model, not per call
        graphdef, params = nnx.split(model)
        forward = jax.jit(lambda p, b, k: nnx.merge(graphdef, p)(b, k))
        _FORWARD[id(model)] = (model, forward, params)  # the reference keeps the id unique
    _, forward, params = _FORWARD[id(model)]
    rng = np.random.default_rng(seed)
    out = {f"p/{n}": [] for n in BINARY} | {n: [] for n in BINARY} | {"planet": []}
    for batch in task.eval_data(0, 1, split):
        b = len(batch["planet"])
        keep = {name: jnp.asarray(rng.random(b) >= (hide or {}).get(name, 0.0))
                for name in model.modalities() if name != "row"}  # one pytree: one compile
        outputs = forward(params, {k: jnp.asarray(v) for k, v in batch.items()}, keep)
        for name in BINARY:
            out[f"p/{name}"].append(np.asarray(jax.nn.sigmoid(outputs[f"logits/{name}"])))
            out[name].append(batch[name])
        out["planet"].append(batch["planet"])
    return {k: np.concatenate(v) for k, v in out.items()}


def report(task, pred: dict) -> dict:
    """AUC, AP, accuracy and ECE per binary label on all scored planets, and the AUCs on the
    planets that have each modality."""
    from astrojax.evaluators.metrics import binary_report

    out = {name: binary_report(pred[name], pred[f"p/{name}"]) for name in BINARY}
    by = {}
    for modality, has in task.masks.items():
        if modality == "catalogue" or modality not in task.cfg.data.modalities:
            continue
        rows = has[pred["planet"]]
        by[modality] = {"planets": int(rows.sum()),
                        **{name: binary_report(pred[name][rows], pred[f"p/{name}"][rows])["auc"]
                           for name in BINARY}}
    out["by_modality"] = by
    return out


def baselines(task, rows_by_split: dict[str, np.ndarray], labelled: np.ndarray | None = None
              ) -> dict:
    """The habitable zone, and trees and logistic regression on the catalogue row fitted on the
    (labelled) train planets, scored on the given planets."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    from astrojax.evaluators.catalogue_baselines import habitable_zone_margin
    from astrojax.evaluators.metrics import binary_report, roc_auc

    a = task.arrays
    values, known = task._row
    trees_x = np.where(known, values, np.nan)
    linear_x = np.concatenate([a["row_values"], a["row_known"]], axis=1)
    train = task.split.train if labelled is None else task.split.train[labelled[task.split.train]]
    teff = np.where(task.catalogue.known("star_teff_k"), task.catalogue.values["star_teff_k"],
                    np.nan)
    flux = np.where(task.catalogue.known("insolation_searth"),
                    task.catalogue.values["insolation_searth"], np.nan)
    margin = habitable_zone_margin(teff, flux)
    margin = np.where(np.isfinite(margin), margin, np.nanmin(margin) - 1.0)
    out = {}
    for split, rows in rows_by_split.items():
        part = {}
        for name in BINARY:
            y = task.labels[name].astype(int)
            pos = y[rows] > 0
            entry = {"habitable_zone_auc": roc_auc(margin[rows][pos], margin[rows][~pos])}
            if len(np.unique(y[train])) == 2:
                trees = HistGradientBoostingClassifier(random_state=0).fit(trees_x[train],
                                                                           y[train])
                entry["row_trees"] = binary_report(
                    y[rows], trees.predict_proba(trees_x[rows])[:, 1])
                logistic = LogisticRegression(max_iter=2000).fit(linear_x[train], y[train])
                entry["row_logistic"] = binary_report(
                    y[rows], logistic.predict_proba(linear_x[rows])[:, 1])
            part[name] = entry
        out[split] = part
    return out


def scored(cfg, workdir: Path, name: str) -> tuple[dict, object, object]:
    print(f"--- {name}", flush=True)
    task, model, result, seconds = train(cfg, workdir)
    entry = {"wall_seconds": round(seconds, 1), "steps": result.step,
             "modalities": list(cfg.data.modalities),
             **{split: report(task, predictions(task, model, split)) for split in ("val", "test")}}
    print(json.dumps({split: {n: round(entry[split][n]["auc"], 3) for n in BINARY}
                      for split in ("val", "test")}), flush=True)
    return entry, task, model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="*", default=list(PARTS), choices=PARTS)
    parser.add_argument("--steps", type=int, default=None, help="default: the config's")
    parser.add_argument("--output", default=str(RESULTS / "fusion_ablation.json"))
    parser.add_argument("--tables", action="store_true",
                        help="only print the README tables from the results file")
    parser.add_argument("--merge-from", default=None,
                        help="only copy the parts of this results file (parts run in another "
                             "process) into --output, redraw the PNG and print the tables")
    args = parser.parse_args(argv)
    if args.merge_from:
        out = json.loads(Path(args.output).read_text())
        other = json.loads(Path(args.merge_from).read_text())
        out.update({part: other[part] for part in PARTS if part in other})
        Path(args.output).write_text(json.dumps(out, indent=1) + "\n")
        plot(out)
        args.tables = True
    if args.tables:
        print(tables(json.loads(Path(args.output).read_text())))
        return 0
    import jax

    path = Path(args.output)
    out = json.loads(path.read_text()) if path.exists() else {}
    out.update({"backend": jax.default_backend(), "config": "configs/fusion.py",
                "machine": f"{os.cpu_count()}-core CPU, shared with other jobs"})
    base = base_config(args.steps)
    modalities = tuple(base.data.modalities)

    def save() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=1) + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for part in args.parts:
            PART_RUNNERS[part](out, base, modalities, tmp, args.steps, save)
    save()
    plot(out)
    return 0


def run_all(out, base, modalities, tmp, steps, save) -> None:
    entry, task, model = scored(base, tmp / "all", "all modalities")
    rows = {split: task._scored_rows(split) for split in ("val", "test")}
    out["baselines"] = baselines(task, rows)
    curve = {}
    for split in ("val", "test"):
        curve[split] = {}
        hidden = [m for m in model.modalities() if m != "row"]
        for m in [*hidden, "all but the catalogue"]:
            names = hidden if m == "all but the catalogue" else [m]
            curve[split][m] = [
                {"share": s, **{n: report(task, predictions(
                    task, model, split, {x: s for x in names}))[n]["auc"]
                    for n in BINARY}} for s in SHARES]
    out["all"] = {**entry, "missing_curve": curve}
    save()


def run_single(out, base, modalities, tmp, steps, save) -> None:
    out["single"] = out.get("single", {})
    for m in modalities:
        cfg = base_config(steps)
        cfg.data.modalities = (m,)
        out["single"][m] = scored(cfg, tmp / f"single-{m}", f"{m} alone")[0]
        save()


def run_leave_one_out(out, base, modalities, tmp, steps, save) -> None:
    out["leave_one_out"] = out.get("leave_one_out", {})
    for m in modalities:
        cfg = base_config(steps)
        cfg.data.modalities = tuple(x for x in modalities if x != m)
        out["leave_one_out"][m] = scored(cfg, tmp / f"without-{m}", f"without {m}")[0]
        save()


def run_labels(out, base, modalities, tmp, steps, save) -> None:
    pre = base_config(steps)
    pre.model.contrastive_weight, pre.data.label_fraction = 1.0, 0.0
    start = time.perf_counter()
    from astrojax.train.loop import train_and_evaluate

    pretrained = train_and_evaluate(pre, tmp / "pretrain")
    labels = {"pretraining": {
        "wall_seconds": round(time.perf_counter() - start, 1), "steps": pretrained.step,
        "final_train_losses": {k: v for k, v in pretrained.train.items() if "contrastive" in k},
        "contrastive_weight": 1.0}}
    for fraction in LABEL_FRACTIONS:
        entry = {}
        for mode in ("scratch", "pretrained"):
            cfg = base_config(steps)
            cfg.data.label_fraction = fraction
            if mode == "pretrained":
                cfg.model.init = str(tmp / "pretrain")
            entry[mode], task, _ = scored(cfg, tmp / f"labels-{fraction}-{mode}",
                                          f"{fraction:.0%} labels, {mode}")
        rows = {split: task._scored_rows(split) for split in ("val", "test")}
        entry["baselines"] = baselines(task, rows, task.labelled)
        entry["labelled_train_planets"] = int(task.labelled[task.split.train].sum())
        labels[f"{fraction:g}"] = entry
        out["labels"] = labels
        save()


PART_RUNNERS = {"all": run_all, "single": run_single, "leave_one_out": run_leave_one_out,
                "labels": run_labels}


def tables(out: dict) -> str:
    """The README's tables (val / test AUC) from a results file."""
    def auc(entry, name):
        return f"{entry['val'][name]['auc']:.3f} / {entry['test'][name]['auc']:.3f}"

    def tree(part, name, key="row_trees"):
        got = [part.get(split, {}).get(name, {}).get(key, {}).get("auc") for split in
               ("val", "test")]
        return " / ".join("–" if g is None else f"{g:.3f}" for g in got)

    def on_planets_with(entry, modality):
        """val AUCs (habitable / biosignature) and count of the planets that have it."""
        got = (entry or {}).get("val", {}).get("by_modality", {}).get(modality)
        if got is None:
            return "–", ""
        return f"{got['habitable']:.3f} / {got['biosignature']:.3f}", str(got["planets"])

    lines = ["| run (val / test AUC) | habitable | biosignature | val planets with the modality | "
             "its model on them | the all-modality model on them | minutes |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    runs = {"all modalities": (out.get("all"), None)}
    runs.update({f"{m} alone": (e, m) for m, e in out.get("single", {}).items()})
    runs.update({f"all but {m}": (e, None) for m, e in out.get("leave_one_out", {}).items()})
    for name, (entry, alone) in runs.items():
        if not entry:
            continue
        own, n = on_planets_with(entry, alone) if alone else ("–", "")
        full, _ = on_planets_with(out.get("all"), alone) if alone else ("–", "")
        lines.append(f"| {name} | {auc(entry, 'habitable')} | {auc(entry, 'biosignature')} | "
                     f"{n or '–'} | {own} | {full} | {entry['wall_seconds'] / 60:.1f} |")
    base = out.get("baselines", {})
    if base:
        lines.append(f"| trees on the catalogue row | {tree(base, 'habitable')} | "
                     f"{tree(base, 'biosignature')} | | | | |")
        hz = [" / ".join(f"{base[s][n]['habitable_zone_auc']:.3f}" for s in ("val", "test"))
              for n in BINARY]
        lines.append(f"| conservative habitable zone (margin) | {hz[0]} | {hz[1]} | | | | |")
    curve = out.get("all", {}).get("missing_curve", {})
    if curve:
        lines += ["", "| hidden from a share of the planets that have it (val AUC habitable / "
                  "biosignature) | " + " | ".join(f"{s:.0%}" for s in SHARES) + " |",
                  "| --- |" + " --- |" * len(SHARES)]
        for m, points in curve["val"].items():
            lines.append(f"| {m} | " + " | ".join(
                f"{p['habitable']:.3f} / {p['biosignature']:.3f}" for p in points) + " |")
    labels = out.get("labels", {})
    if labels:
        lines += ["", "| labelled train planets (val / test AUC) | habitable | biosignature |",
                  "| --- | --- | --- |"]
        for fraction, entry in labels.items():
            if fraction == "pretraining":
                continue
            n = entry["labelled_train_planets"]
            for mode in ("scratch", "pretrained"):
                lines.append(f"| {float(fraction):.0%} ({n}), fusion {mode} | "
                             f"{auc(entry[mode], 'habitable')} | "
                             f"{auc(entry[mode], 'biosignature')} |")
            b = entry["baselines"]
            for key, what in (("row_trees", "trees"), ("row_logistic", "logistic regression")):
                lines.append(f"| {float(fraction):.0%} ({n}), {what} on the row | "
                             f"{tree(b, 'habitable', key)} | {tree(b, 'biosignature', key)} |")
    return "\n".join(lines)


def plot(out: dict) -> None:
    """AUC (val) of every run beside the row's trees, and the missing-modality curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    runs = {}
    if "all" in out:
        runs["all"] = out["all"]
    runs.update({f"only {m}": e for m, e in out.get("single", {}).items()})
    runs.update({f"without {m}": e for m, e in out.get("leave_one_out", {}).items()})
    for ax, name in zip(axes[:2], BINARY, strict=True):
        labels = list(runs)
        ax.barh(labels, [runs[r]["val"][name]["auc"] for r in labels], color="C0")
        trees = out.get("baselines", {}).get("val", {}).get(name, {}).get("row_trees", {})
        if trees:
            ax.axvline(trees["auc"], color="C3", ls="--", label="trees on the catalogue row")
            ax.legend(loc="lower right")
        ax.set(title=f"{name}: val AUC", xlim=(0.4, 1.0))
        ax.invert_yaxis()
    ax = axes[2]
    for m, points in out.get("all", {}).get("missing_curve", {}).get("val", {}).items():
        ax.plot([p["share"] for p in points], [p["biosignature"] for p in points], "o-", label=m)
    ax.set(title="biosignature val AUC, trained model", xlabel="share of planets missing it",
           ylabel="AUC")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "fusion_ablation.png", dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
