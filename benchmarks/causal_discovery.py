"""Can the planet population's causal graph be learned from its table? NOTEARS against PC.

Two parts, each scored by structural Hamming distance (SHD; an added, missing or reversed edge
is one error, ``astrojax.causal.discovery_scores``), SHD between equivalence classes
(``shd_cpdag``: what observational data can decide at best), and edge precision and recall,
beside the trivial rule, the empty graph, whose SHD is the number of true edges:

1. **Synthetic linear-Gaussian SEMs** with known graphs, where NOTEARS' assumptions hold: the
   5-node chain + fork + collider of the tests and random Erdos-Renyi DAGs of 10 nodes and 20
   edges, 2,000 samples, equal noise variances, 3 seeds each. NOTEARS (linear) on the raw
   scale and standardised, PC (causal-learn, Fisher-z, alpha 0.01).
2. **The planets**: ``astrojax.causal.variable_table`` (the generator's 49 variables on their
   model scale: log10 quantities, 0/1 flags, class indices) for 2,048 planets, scored against
   ``true_adjacency()`` (140 edges). Many variables are exact functions of others (luminosity
   from radius and Teff, the period from Kepler's law, surface gravity from mass and radius),
   which makes correlation matrices singular and Fisher-z fail, so every column gets
   independent Gaussian measurement noise of 1% of its standard deviation (seeded). NOTEARS
   linear (standardised and on the model scale) and MLP (standardised), PC as above. Recall
   is also given per kind of child variable (continuous, binary, categorical).

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/causal_discovery.py

(22 minutes wall on a busy shared 2-core CPU, 6-7 of them this process's CPU time; NOTEARS-MLP
on the planets is 5 of those; ``--no-mlp`` skips it). OpenBLAS threads contending on a busy
machine made ``expm``'s LAPACK solve ~40x slower here; the script pins them to one unless told
otherwise.
Writes benchmarks/results/causal_discovery.json; ``--into benchmarks/results/causal.json`` also
puts the same result under that file's ``discovery`` key (``benchmarks/causal.py`` keeps it).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from astrojax.causal import VARIABLE_NAMES, true_adjacency, variable_kinds, variable_table  # noqa: E402,E501
from astrojax.causal.discovery import NotearsConfig, discovery_report  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "causal_discovery.json"
MIXED_EDGES = [(0, 1), (1, 2), (1, 3), (2, 4), (3, 4)]


def linear_sem(adjacency: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Linear-Gaussian SEM on a DAG in index order: weights 0.8-1.5 in magnitude with random
    signs, unit noise variances."""
    d = adjacency.shape[0]
    w = adjacency * rng.choice([-1.0, 1.0], (d, d)) * rng.uniform(0.8, 1.5, (d, d))
    x = np.zeros((n, d))
    for j in range(d):
        x[:, j] = x @ w[:, j] + rng.standard_normal(n)
    return x


def random_dag(d: int, edges: int, rng: np.random.Generator) -> np.ndarray:
    """Erdos-Renyi DAG: ``edges`` of the d(d-1)/2 forward pairs of the order 0..d-1."""
    pairs = np.stack(np.triu_indices(d, 1), axis=1)
    a = np.zeros((d, d), np.int64)
    for i, j in pairs[rng.choice(len(pairs), edges, replace=False)]:
        a[i, j] = 1
    return a


def _summary(method: dict) -> dict:
    keys = ("shd", "shd_cpdag", "skeleton_precision", "skeleton_recall", "directed_precision",
            "directed_recall", "seconds", "cpu_seconds")
    return {k: method[k] for k in keys}


def synthetic(seeds: int, samples: int) -> list[dict]:
    out = []
    configs = (NotearsConfig(standardise=False), NotearsConfig(standardise=True))
    for graph_name in ("chain+fork+collider (5 nodes)", "Erdos-Renyi (10 nodes, 20 edges)"):
        for seed in range(seeds):
            rng = np.random.default_rng([17, seed])
            if graph_name.startswith("chain"):
                true = np.zeros((5, 5), np.int64)
                true[tuple(zip(*MIXED_EDGES, strict=True))] = 1
            else:
                true = random_dag(10, 20, rng)
            x = linear_sem(true, samples, rng)
            names = [f"x{i}" for i in range(true.shape[0])]
            rep = discovery_report(x, names, true, configs=configs)
            rows = {k: _summary(m) if "shd" in m else m for k, m in rep["methods"].items()}
            out.append({"graph": graph_name, "seed": seed, "samples": samples,
                        "true_edges": int(true.sum()), "empty_graph_shd": rep["empty_graph_shd"],
                        "true_edges_unorientable": rep["true_edges_unorientable"],
                        "methods": rows})
            logging.info("synthetic %s seed %d: %s", graph_name, seed,
                         {k: v.get("shd") for k, v in rows.items()})
    return out


def recall_by_child_kind(method: dict, true: np.ndarray, names: list[str]) -> dict:
    """Of the true edges into each kind of variable, the share the method found (skeleton)."""
    kinds = variable_kinds()
    found = set()
    for edge in method["edges"]:
        a, arrow, b = edge.split(" ")
        found.add(frozenset((a, b)))
    out = {}
    for kind in ("continuous", "binary", "categorical"):
        into = [(names[i], names[j]) for i, j in zip(*np.nonzero(true), strict=True)
                if kinds[names[j]][0] == kind]
        hits = sum(frozenset(e) in found for e in into)
        out[kind] = {"true_edges": len(into),
                     "skeleton_recall": round(hits / len(into), 4) if into else None}
    return out


def planets(num_planets: int, noise: float, mlp: bool, save) -> dict:
    names = list(VARIABLE_NAMES)
    true = true_adjacency().astype(np.int64)
    x = variable_table(num_planets, seed=0)
    x = x + noise * x.std(axis=0) * np.random.default_rng([17, 1]).standard_normal(x.shape)
    # Standardised (the default) and on the model scale itself (log10 units, 0/1, class
    # indices: arbitrary scales, so the raw column is a check, not a recommendation).
    configs = [NotearsConfig(model="linear"), NotearsConfig(model="linear", standardise=False)]
    rep = discovery_report(x, names, true, configs=configs)
    rep["measurement_noise_fraction_of_std"] = noise
    rep["variable_kinds"] = {n: k for n, (k, _) in variable_kinds().items()}
    if mlp:  # the slow one last, with everything else already written
        save(_with_recall_by_kind(rep, true, names))
        mlp_rep = discovery_report(x, names, true, pc_alpha=None,
                                   configs=(NotearsConfig(model="mlp", lambda1=0.01),))
        rep["methods"].update(mlp_rep["methods"])
    return _with_recall_by_kind(rep, true, names)


def _with_recall_by_kind(rep: dict, true: np.ndarray, names: list[str]) -> dict:
    for method in rep["methods"].values():
        if "edges" in method:
            method["recall_by_child_kind"] = recall_by_child_kind(method, true, names)
    return rep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--planets", type=int, default=2048)
    parser.add_argument("--noise", type=float, default=0.01)
    parser.add_argument("--no-mlp", action="store_true", help="skip NOTEARS-MLP on the planets")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--into", type=Path, default=None,
                        help="also write the result under 'discovery' in this JSON file "
                             "(benchmarks/results/causal.json keeps that key for it)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    start = time.perf_counter()
    result = {
        "hardware": "shared 2-core CPU: seconds are wall clock including JAX compilation, "
                    "cpu_seconds this process's CPU time",
        "command": "OPENBLAS_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/causal_discovery.py",
    }

    def save(planet_report=None) -> None:
        if planet_report is not None:
            result["planets"] = planet_report
        result["seconds"] = round(time.perf_counter() - start, 1)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1, default=float) + "\n")

    result["synthetic"] = synthetic(args.seeds, args.samples)
    save()
    save(planets(args.planets, args.noise, mlp=not args.no_mlp, save=save))
    print(f"wrote {args.out} in {result['seconds']} s")
    if args.into is not None:
        joined = json.loads(args.into.read_text()) if args.into.exists() else {}
        joined["discovery"] = result
        args.into.write_text(json.dumps(joined, indent=1, default=float) + "\n")
        print(f"wrote it under 'discovery' in {args.into}")
    for name, m in result["planets"]["methods"].items():
        if "shd" in m:
            print(f"planets {name}: SHD {m['shd']} (empty graph "
                  f"{result['planets']['empty_graph_shd']}), skeleton P/R "
                  f"{m['skeleton_precision']}/{m['skeleton_recall']}, {m['seconds']} s")


if __name__ == "__main__":
    main()
