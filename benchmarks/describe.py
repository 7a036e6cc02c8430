"""Describing a planet: what the planet-conditioned language model's descriptions get right.

    PYTHONPATH=$PWD nice python benchmarks/describe.py   # see the README for the time

Trains, in ``--root`` (default runs/describe-benchmark; a workdir that already holds its final
checkpoint is reused, not retrained, and the training time kept in its ``wall_seconds.txt`` is
reported):

1. ``fusion-cs``: configs/fusion.py on the catalogue row and the spectra (the recorded catalogue
   + spectrum model of fusion_run.json);
2. ``quickstart``: configs/quickstart.py, the language model both describers start from;
3. ``prefix``: configs/describe.py, the fusion model's planet embedding (frozen) -> projector
   -> 4 soft-prompt vectors -> the quickstart's language model, fine-tuned on the descriptions;
4. ``no-prefix``: the same with ``prefix_tokens=0``: the same language model trained the same
   way (same steps, batches and seed) with nothing about the planet.

Then each describer writes (``astrojax.models.generate`` with the prefix as its soft prompt,
from BOS to EOS; greedily, and once sampled at temperature 1, which guesses in proportion to
what the model believes) the description of every test planet of the full eval batches, and
``read_description`` reads the facts it states: climate regime, biosphere, habitable yes/no,
biosignature detectable yes/no, and the host star's type (a control: the catalogue row gives it
away, through the observed Teff, so a describer that reads its prefix must get it right). A fact
the text does not state, states in words the templates never use, or states twice differently
is unparseable and counts as wrong. Beside them, on the same planets, fitted on the train
planets: the majority class per fact; the fusion model's own heads (the classes it was trained
for); gradient-boosted trees (scikit-learn's defaults) on the catalogue row; and for the star
type the closed-form rule (the generator's Teff ranges applied to the observed Teff).

Writes benchmarks/results/describe.json (accuracy, balanced accuracy and the unparseable share
per fact and model, the runs' teacher-forced losses beside the n-gram baselines, example
descriptions, the times) and prints the README table. Timings are those of the machine that ran
it (a shared 2-core CPU for the recorded file).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import runpy
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# the star type's closed-form rule: the generator's Teff range of each type (sampling.py)
STAR_TEFF_EDGES_K = (3900.0, 5300.0, 6000.0)
# the surface temperature as each template states it (generator/text.py)
SURFACE_TEMPERATURE = re.compile(r"(?:surface is at|averages|surface temperature is|"
                                 r"Surface temperature:) (\d+) K")


def config(name: str):
    return runpy.run_path(str(ROOT / "configs" / f"{name}.py"))["get_config"]()


def train(cfg, workdir: Path) -> dict:
    """Trains (or finds trained) ``cfg`` in ``workdir``; its final metrics and wall time."""
    from astrojax.train.checkpoint import Checkpointer
    from astrojax.train.loop import train_and_evaluate

    folder = workdir / "checkpoints"
    done = False
    if folder.is_dir():
        checkpointer = Checkpointer(folder, max_to_keep=10, async_save=False)
        done = checkpointer.latest_step() == cfg.train.steps
        checkpointer.close()
    start = time.perf_counter()
    result = train_and_evaluate(cfg, workdir)
    print(f"{workdir.name}: {'found trained' if done else 'trained'} in "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    timing = workdir / "wall_seconds.txt"  # the training time, kept for a later invocation
    if not done:
        timing.write_text(f"{result.wall_seconds:.1f}\n")
    return {"workdir": str(workdir), "steps": result.step, "trained_here": not done,
            "wall_seconds": float(timing.read_text()) if timing.exists() else None,
            "val": {k.removeprefix("eval/"): v for k, v in result.eval.items()},
            "test": {k.removeprefix("test/"): v for k, v in result.test.items()}}


def held_out_batches(workdir: Path, planets: int):
    """The describe run's model, its task (rebuilt to serve every full test batch) and those
    batches, joined into batches of about ``planets`` planets (every entry is per planet or per
    packing group, so consecutive batches concatenate): generation then takes a few long
    batches rather than many short ones."""
    from astrojax.tasks import get_task
    from astrojax.train.restore import load_trained

    trained = load_trained(workdir, task="describe")
    cfg = trained.config
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, eval_batches=10**6))
    task = get_task(cfg)
    batches = task.eval_data(0, 1, "test")
    per = max(1, planets // cfg.train.global_batch_size)
    joined = [{k: np.concatenate([b[k] for b in batches[i:i + per]]) for k in batches[0]}
              for i in range(0, len(batches), per)]
    return trained.model, task, joined


def scores(truth: np.ndarray, said: np.ndarray, classes: int) -> dict:
    """Accuracy, balanced accuracy (the mean recall over the classes present) and the share of
    unparseable statements (``said`` -1), which count as wrong."""
    right = said == truth
    present = [c for c in range(classes) if (truth == c).any()]
    return {"accuracy": float(right.mean()),
            "balanced_accuracy": float(np.mean([right[truth == c].mean() for c in present])),
            "unparseable": float((said < 0).mean()), "count": int(len(truth))}


def regime_consistency(texts: list[str], regimes: np.ndarray) -> dict:
    """How often a written description's climate regime is the one its own stated surface
    temperature implies (``physics.climate_regime``), over the texts that state both: the
    templates state the temperature first, so a describer's regime follows from the number it
    wrote."""
    from astrojax.data.generator import climate_regime

    stated = []
    for text in texts:
        found = {int(t) for t in SURFACE_TEMPERATURE.findall(text)}
        stated.append(found.pop() if len(found) == 1 else -1)
    stated = np.array(stated)
    both = (stated >= 0) & (regimes >= 0)
    implied = climate_regime(stated[both].astype(float))
    return {"consistent": float((implied == regimes[both]).mean()) if both.any() else None,
            "count": int(both.sum())}


def shuffled_prefix_loss(model, batches) -> dict:
    """The prefix model's test loss (nats per byte) with each planet's own prefix and with the
    prefix of the next planet in its batch: how much of what it writes depends on the planet."""
    import jax.numpy as jnp
    from flax import nnx

    from astrojax.models.describe import prefixed_next_token_stats

    @nnx.jit
    def stats(model, batch, shift):
        prefix = jnp.roll(model.prefix(batch), shift, axis=0)
        logits = model.lm(batch["description"], prefix_bpd=prefix)
        return prefixed_next_token_stats(logits, batch["description"],
                                         batch["description_mask"])

    out = {}
    for name, shift in (("own_prefix", 0), ("another_planets_prefix", 1)):
        sums = [stats(model, {k: jnp.asarray(v) for k, v in b.items()}, shift) for b in batches]
        out[name] = float(sum(x["nll_sum"] for x in sums) / sum(x["count"] for x in sums))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(ROOT / "runs" / "describe-benchmark"))
    parser.add_argument("--steps", type=int, default=None,
                        help="describe steps (default: configs/describe.py's)")
    parser.add_argument("--output", default=str(RESULTS / "describe.json"))
    parser.add_argument("--threads", type=int, default=1, help="OpenMP threads for sklearn")
    parser.add_argument("--generation-batch", type=int, default=64,
                        help="planets per generate call")
    args = parser.parse_args(argv)
    start = time.perf_counter()

    import jax
    import jax.numpy as jnp
    from flax import nnx
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    from astrojax.config import to_dict
    from astrojax.data.generator import BIOSPHERE_CLASSES, CLIMATE_REGIMES, STAR_TYPES
    from astrojax.data.generator.text import DESCRIPTION_FACTS, read_description
    from astrojax.data.planets import PlanetTable
    from astrojax.evaluators.catalogue_baselines import catalogue_row_features
    from astrojax.train.restore import load_trained

    root = Path(args.root)
    runs, times = {}, {}
    fusion_cfg = config("fusion")
    fusion_cfg.data.modalities = ("catalogue", "spectrum")
    runs["fusion-cs"] = train(fusion_cfg, root / "fusion-cs")
    runs["quickstart"] = train(config("quickstart"), root / "quickstart")
    for name, prefix in (("prefix", None), ("no-prefix", 0)):
        cfg = config("describe")
        cfg.model.fusion_init, cfg.model.lm_init = str(root / "fusion-cs"), str(root / "quickstart")
        if prefix is not None:
            cfg.model.prefix_tokens = prefix
        if args.steps:
            cfg.train.steps = args.steps
            cfg.train.eval_every = cfg.train.checkpoint_every = args.steps
        runs[name] = {**train(cfg, root / name), "config_values": to_dict(cfg)}
    times["training_seconds"] = time.perf_counter() - start

    classes = {"climate_regime": len(CLIMATE_REGIMES), "biosphere": len(BIOSPHERE_CLASSES),
               "habitable": 2, "biosignature": 2, "star_type": len(STAR_TYPES)}
    results, examples, planets, heads, consistency = {}, {}, None, {}, {}
    fusion = load_trained(root / "fusion-cs", task="fusion").model
    fusion_forward = nnx.jit(lambda m, b: m(b))
    for name in ("prefix", "no-prefix"):
        model, task, batches = held_out_batches(root / name, args.generation_batch)
        rows = np.concatenate([b["planet"] for b in batches])
        population = task.table.population
        truth = {f: np.asarray(getattr(population, f), np.int64)[rows] for f in DESCRIPTION_FACTS}
        if planets is None:
            planets, split, table = rows, task.split, task.table
        assert np.array_equal(rows, planets), "both describers must be scored on one set"
        true_texts = list(task.descriptions["texts"][rows])
        for how, kwargs in (("greedy", {}),
                            ("sampled", {"temperature": 1.0, "rng": jax.random.key(0)})):
            tick = time.perf_counter()
            texts = [t for batch in batches for t in task.write_descriptions(model, batch,
                                                                             **kwargs)]
            times[f"generation_seconds/{name}/{how}"] = time.perf_counter() - tick
            said = np.array([[-1 if f is None else f for f in read_description(t).values()]
                             for t in texts])
            key = name if how == "greedy" else f"{name}/sampled"
            results[key] = {f: scores(truth[f], said[:, i], classes[f])
                            for i, f in enumerate(DESCRIPTION_FACTS)}
            consistency[key] = regime_consistency(texts, said[:, DESCRIPTION_FACTS.index(
                "climate_regime")])
            examples[key] = [{"planet": str(table.ids[r]), "written": w, "true": t}
                             for r, w, t in list(zip(rows, texts, true_texts, strict=True))[:3]]
        if name == "prefix":
            prefix_use = shuffled_prefix_loss(model, batches)
            consistency["true descriptions"] = regime_consistency(  # the reference: rounding
                true_texts, truth["climate_regime"])  # at the regime bounds
    for batch in batches:  # the fusion model's own heads on the same planets
        out = fusion_forward(fusion, {k: jnp.asarray(v) for k, v in batch.items()})
        for label, k in fusion.classes:
            logits = np.asarray(out[f"logits/{label}"])
            heads.setdefault(label, []).append((logits > 0).astype(int) if k == 2
                                               else logits.argmax(-1))
    results["fusion_heads"] = {label: scores(truth[label], np.concatenate(pred), classes[label])
                               for label, pred in heads.items() if label in DESCRIPTION_FACTS}

    # the baselines on the same planets, fitted on the train planets
    full = {f: np.asarray(getattr(table.population, f), np.int64) for f in DESCRIPTION_FACTS}
    observed = PlanetTable.observed(len(table), table.seed)
    x, _ = catalogue_row_features(observed)
    results["majority"], results["trees_on_row"] = {}, {}
    with threadpool_limits(limits=args.threads):
        for f in DESCRIPTION_FACTS:
            y = full[f]
            majority = np.bincount(y[split.train], minlength=classes[f]).argmax()
            results["majority"][f] = {"class": int(majority), **scores(
                y[planets], np.full(len(planets), majority), classes[f])}
            trees = HistGradientBoostingClassifier(random_state=0).fit(x[split.train],
                                                                        y[split.train])
            results["trees_on_row"][f] = scores(y[planets], trees.predict(x[planets]),
                                                classes[f])
    teff, known = observed.column("star_teff_k")
    rule = np.where(np.asarray(known, bool), np.searchsorted(STAR_TEFF_EDGES_K, teff), -1)
    results["teff_rule"] = {"star_type": scores(full["star_type"][planets], rule[planets],
                                                len(STAR_TYPES))}

    out = {"backend": jax.default_backend(), "machine": f"{os.cpu_count()}-core CPU, shared",
           "test_planets": int(len(planets)), "facts": list(DESCRIPTION_FACTS),
           "decoding": "from BOS to EOS: greedy, and sampled at temperature 1 (one draw, "
                       "key 0)", "accuracy": results,
           "regime_consistency": consistency, "prefix_use": prefix_use,
           "runs": {k: {kk: vv for kk, vv in v.items() if kk != "config_values"}
                    for k, v in runs.items()},
           "describe_config": runs["prefix"]["config_values"], "examples": examples,
           "seconds": {**times, "total": time.perf_counter() - start}}
    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print_table(out)
    return 0


def print_table(out: dict) -> None:
    acc = out["accuracy"]
    rows = (("prefix", "LM with the planet prefix, greedy"),
            ("no-prefix", "same LM, no prefix, greedy"),
            ("prefix/sampled", "LM with the planet prefix, sampled (T = 1)"),
            ("no-prefix/sampled", "same LM, no prefix, sampled (T = 1)"),
            ("majority", "majority class (train)"), ("fusion_heads", "fusion model's own heads"),
            ("trees_on_row", "gradient-boosted trees on the catalogue row"),
            ("teff_rule", "star type from the observed Teff (closed form)"))
    facts = out["facts"]
    print(f"| test accuracy (balanced), {out['test_planets']} planets | " + " | ".join(facts)
          + " |")
    print("| --- |" + " --- |" * len(facts))
    for key, label in rows:
        cells = []
        for f in facts:
            s = acc.get(key, {}).get(f)
            cells.append("–" if s is None else
                         f"{s['accuracy']:.3f} ({s['balanced_accuracy']:.3f})")
        print(f"| {label} | " + " | ".join(cells) + " |")
    print("prefix use (test loss, own / another planet's prefix):", out["prefix_use"])
    print("regime consistent with the stated surface temperature:", out["regime_consistency"])
    for key in ("prefix", "no-prefix", "prefix/sampled", "no-prefix/sampled"):
        print(f"unparseable ({key}): " + ", ".join(
            f"{f} {acc[key][f]['unparseable']:.3f}" for f in facts))


if __name__ == "__main__":
    raise SystemExit(main())
