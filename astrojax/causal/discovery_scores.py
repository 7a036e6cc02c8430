"""Scoring a learned causal graph against the true one: SHD, edge precision and recall.

Graphs are square 0/1 matrices over the same variables. A DAG has ``A[i, j] = 1`` for the edge
``i -> j``. A PDAG (a CPDAG from the PC algorithm, or the equivalence class of a DAG from
``cpdag_of``) writes a directed edge the same way and an undirected edge ``i -- j`` as
``A[i, j] = A[j, i] = 1``: no method that sees only observational data can orient it.

**Structural Hamming distance** (Tsamardinos et al. 2006, the convention of the NOTEARS paper's
successors and of the Causal Discovery Toolbox with ``double_for_anticausal=False``): every
unordered pair of variables whose edge differs between the two graphs counts one error, the
edge being one of "none", "i -> j", "j -> i", "i -- j". An edge added, an edge deleted, an edge
reversed, and an edge left undirected (or wrongly directed where the other graph leaves it
undirected) are each one error; a reversal is never counted twice.

Scoring a CPDAG against the true DAG therefore charges one error for each undirected edge,
even one the data cannot orient; ``cpdag_of(true)`` gives the fair target, the best any method
reading observational data alone can reach, and reports carry both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from astrojax.causal.graph import find_cycle

__all__ = ["as_graph", "cpdag_of", "edge_errors", "edge_precision_recall", "find_cycle",
           "structural_hamming_distance"]


def as_graph(adjacency, name: str = "adjacency") -> np.ndarray:
    """``adjacency`` as a square 0/1 int matrix with an empty diagonal, or one clear error."""
    a = np.asarray(adjacency)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"{name}: expected a square [d, d] matrix, got shape {a.shape}")
    if not np.all(np.isin(a, (0, 1))):
        raise ValueError(f"{name}: entries must be 0 or 1 (A[i, j] = 1 for the edge i -> j)")
    a = a.astype(np.int64)
    if np.any(np.diag(a)):
        raise ValueError(f"{name}: a variable cannot cause itself (nonzero diagonal at "
                         f"{np.flatnonzero(np.diag(a)).tolist()})")
    return a


def _pair_marks(a: np.ndarray) -> np.ndarray:
    """Per ordered pair (i < j): 0 none, 1 i -> j, 2 j -> i, 3 undirected."""
    return a + 2 * a.T


def _check_pair(learned, true) -> tuple[np.ndarray, np.ndarray]:
    learned, true = as_graph(learned, "learned"), as_graph(true, "true")
    if learned.shape != true.shape:
        raise ValueError(f"learned graph has {learned.shape[0]} variables, true graph "
                         f"{true.shape[0]}")
    return learned, true


def structural_hamming_distance(learned, true) -> int:
    """Unordered pairs whose edge (none, either direction, undirected) differs; see the module
    docstring for the convention (a reversal is one error)."""
    learned, true = _check_pair(learned, true)
    upper = np.triu(np.ones_like(learned, dtype=bool), k=1)
    return int(np.sum((_pair_marks(learned) != _pair_marks(true)) & upper))


def edge_errors(learned, true, names: Sequence[str] | None = None) -> dict[str, list[str]]:
    """The pairs behind the SHD, by kind, written ``"a -> b"`` / ``"a -- b"`` with the learned
    edge: ``extra`` (learned, absent in truth), ``missing`` (true edge, learned none; written
    with the true edge), ``reversed``, ``unoriented`` (learned undirected, truly directed) and
    ``overoriented`` (learned directed, undirected in ``true``, which happens when ``true`` is
    a CPDAG). The lists' total length is ``structural_hamming_distance(learned, true)``."""
    learned, true = _check_pair(learned, true)
    d = learned.shape[0]
    names = [str(i) for i in range(d)] if names is None else list(names)
    if len(names) != d:
        raise ValueError(f"names: {len(names)} names for {d} variables")
    lm, tm = _pair_marks(learned), _pair_marks(true)

    def show(mark: int, i: int, j: int) -> str:
        return {1: f"{names[i]} -> {names[j]}", 2: f"{names[j]} -> {names[i]}",
                3: f"{names[i]} -- {names[j]}"}[mark]

    out: dict[str, list[str]] = {k: [] for k in ("extra", "missing", "reversed", "unoriented",
                                                 "overoriented")}
    for i in range(d):
        for j in range(i + 1, d):
            lk, tk = int(lm[i, j]), int(tm[i, j])
            if lk == tk:
                continue
            if tk == 0:
                out["extra"].append(show(lk, i, j))
            elif lk == 0:
                out["missing"].append(show(tk, i, j))
            elif lk == 3:
                out["unoriented"].append(show(lk, i, j))
            elif tk == 3:
                out["overoriented"].append(show(lk, i, j))
            else:
                out["reversed"].append(show(lk, i, j))
    return out


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


def edge_precision_recall(learned, true) -> dict[str, float]:
    """Precision and recall of the skeleton (edges as unordered pairs) and of directed edges.

    A learned directed edge is a directed true positive when the true graph has that edge in
    that direction. A learned undirected edge claims no direction: it counts in the skeleton
    scores but is neither a directed prediction (precision's denominator) nor a directed hit,
    so it lowers directed recall only. A ratio with a zero denominator is NaN."""
    learned, true = _check_pair(learned, true)
    lskel, tskel = np.triu(learned | learned.T, 1), np.triu(true | true.T, 1)
    ldir, tdir = learned * (1 - learned.T), true * (1 - true.T)
    skel_hit, dir_hit = int(np.sum(lskel & tskel)), int(np.sum(ldir & tdir))
    return {
        "skeleton_precision": _ratio(skel_hit, int(lskel.sum())),
        "skeleton_recall": _ratio(skel_hit, int(tskel.sum())),
        "directed_precision": _ratio(dir_hit, int(ldir.sum())),
        "directed_recall": _ratio(dir_hit, int(tdir.sum())),
    }




def cpdag_of(dag) -> np.ndarray:
    """The CPDAG (Markov equivalence class) of a DAG: its skeleton, the edges of its
    v-structures directed, then Meek's rules 1-3 until nothing changes (Meek 1995; rule 4 is
    never needed when starting from a DAG's v-structures)."""
    g = as_graph(dag, "dag")
    if find_cycle(g) is not None:
        raise ValueError(f"dag: has a directed cycle through variables {find_cycle(g)}")
    d = g.shape[0]
    adj = (g | g.T).astype(bool)
    p = adj.astype(np.int64)  # all undirected to start
    for c in range(d):
        parents = np.flatnonzero(g[:, c])
        for x in range(len(parents)):
            for y in range(x + 1, len(parents)):
                a, b = parents[x], parents[y]
                if not adj[a, b]:
                    p[c, a] = p[c, b] = 0
    changed = True
    while changed:
        changed = False
        directed = (p == 1) & (p.T == 0)
        undirected = (p == 1) & (p.T == 1)
        for i in range(d):
            for j in range(d):
                if not undirected[i, j]:
                    continue
                into_i = np.flatnonzero(directed[:, i])
                rule1 = any(not adj[k, j] for k in into_i if k != j)
                rule2 = bool(np.any(directed[i, :] & directed[:, j]))
                both = np.flatnonzero(undirected[i, :] & directed[:, j])
                rule3 = any(not adj[k, m] for x, k in enumerate(both) for m in both[x + 1:])
                if rule1 or rule2 or rule3:
                    p[j, i] = 0
                    changed = True
                    directed[i, j], undirected[i, j], undirected[j, i] = True, False, False
    return p
