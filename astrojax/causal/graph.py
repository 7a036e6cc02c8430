"""A causal graph: named nodes, their parents, the adjacency matrix and a topological order;
a graph with a cycle is refused with an error that names the cycle.

:func:`generator_graph` is the built-in population's own graph
(``astrojax.data.generator.causal_graph``), and :func:`variable_table` its variables drawn by
the generator, optionally under interventions: the ground truth that learned mechanisms and
discovered graphs are scored against.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from astrojax.data.generator.causal_graph import (
    VARIABLE_BY_NAME,
    VARIABLE_NAMES,
    VARIABLES,
    to_model_scale,
)
from astrojax.data.generator.sampling import simulate_variables


class CycleError(ValueError):
    """A graph with a directed cycle; the message names it (``a -> b -> a``)."""


@dataclasses.dataclass(frozen=True)
class CausalGraph:
    """A DAG: ``nodes`` in declaration order and ``parents[node]`` (each a tuple of nodes)."""

    nodes: tuple[str, ...]
    parents: Mapping[str, tuple[str, ...]]

    def __post_init__(self) -> None:
        nodes = tuple(self.nodes)
        if len(set(nodes)) != len(nodes):
            repeated = sorted({n for n in nodes if nodes.count(n) > 1})
            raise ValueError(f"causal graph: repeated node(s) {', '.join(repeated)}")
        extra = sorted(set(self.parents) - set(nodes))
        if extra:
            raise ValueError(f"causal graph: parents given for unknown node(s) {', '.join(extra)}")
        parents = {n: tuple(self.parents.get(n, ())) for n in nodes}
        for node, pa in parents.items():
            unknown = [p for p in pa if p not in parents]
            if unknown:
                raise ValueError(f"causal graph: {node}'s parent {unknown[0]!r} is not a node")
            if len(set(pa)) != len(pa):
                raise ValueError(f"causal graph: {node} lists a parent twice: {pa}")
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "parents", parents)
        cycle = find_cycle(self.adjacency())
        if cycle:
            names = [nodes[i] for i in (*cycle, cycle[0])]
            raise CycleError(f"causal graph has a cycle: {' -> '.join(names)}")

    @classmethod
    def from_adjacency(cls, nodes: Sequence[str], adjacency) -> CausalGraph:
        """From ``adjacency[i, j] != 0`` meaning ``nodes[i] -> nodes[j]``."""
        a = np.asarray(adjacency)
        if a.shape != (len(nodes), len(nodes)):
            raise ValueError(f"adjacency of shape {a.shape} for {len(nodes)} nodes")
        return cls(tuple(nodes), {n: tuple(nodes[i] for i in np.flatnonzero(a[:, j]))
                                  for j, n in enumerate(nodes)})

    def __len__(self) -> int:
        return len(self.nodes)

    def index(self, node: str) -> int:
        if node not in self.parents:
            raise KeyError(f"no node {node!r} in the causal graph (nodes: {', '.join(self.nodes)})")
        return self.nodes.index(node)

    def adjacency(self) -> np.ndarray:
        """``[n, n]`` int8, ``A[i, j] = 1`` for the edge ``nodes[i] -> nodes[j]``."""
        a = np.zeros((len(self), len(self)), np.int8)
        for j, node in enumerate(self.nodes):
            for p in self.parents[node]:
                a[self.nodes.index(p), j] = 1
        return a

    def edges(self) -> list[tuple[str, str]]:
        return [(p, n) for n in self.nodes for p in self.parents[n]]

    def children(self, node: str) -> tuple[str, ...]:
        self.index(node)
        return tuple(n for n in self.nodes if node in self.parents[n])

    def topological_order(self) -> tuple[str, ...]:
        """Every node after its parents; ties kept in declaration order."""
        done: list[str] = []
        placed: set[str] = set()
        while len(done) < len(self):
            for n in self.nodes:
                if n not in placed and all(p in placed for p in self.parents[n]):
                    done.append(n)
                    placed.add(n)
                    break
        return tuple(done)

    def descendants(self, nodes: str | Sequence[str]) -> set[str]:
        """Every node reachable from ``nodes`` (not including them unless on a path)."""
        frontier = [nodes] if isinstance(nodes, str) else list(nodes)
        for n in frontier:
            self.index(n)
        seen: set[str] = set()
        while frontier:
            for child in self.children(frontier.pop()):
                if child not in seen:
                    seen.add(child)
                    frontier.append(child)
        return seen

    def ancestors(self, node: str) -> set[str]:
        self.index(node)
        seen: set[str] = set()
        frontier = [node]
        while frontier:
            for p in self.parents[frontier.pop()]:
                if p not in seen:
                    seen.add(p)
                    frontier.append(p)
        return seen


def find_cycle(adjacency, pdag: bool = False) -> list[int] | None:
    """One directed cycle ``[v0, v1, ..., vk]`` (edges v0->v1->...->vk->v0), or None for a
    DAG. Every nonzero entry is an edge, so ``A[i, j] = A[j, i] = 1`` is the 2-cycle
    ``i -> j -> i``; with ``pdag=True`` such a pair is an undirected edge and ignored."""
    a = np.asarray(adjacency) != 0
    directed = a & ~a.T if pdag else a
    d = directed.shape[0]
    state = [0] * d  # 0 unvisited, 1 on the stack, 2 done
    for root in range(d):
        if state[root]:
            continue
        path, iters = [root], [iter(np.flatnonzero(directed[root]).tolist())]
        state[root] = 1
        while path:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
            elif state[nxt] == 1:
                return path[path.index(nxt):]
            elif state[nxt] == 0:
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(np.flatnonzero(directed[nxt]).tolist()))
    return None


def generator_graph() -> CausalGraph:
    """The built-in population's causal graph, from its declaration beside the physics."""
    return CausalGraph(VARIABLE_NAMES, {v.name: v.parents for v in VARIABLES})


def true_adjacency() -> np.ndarray:
    """``[n, n]`` 0/1 (int8) adjacency of :func:`generator_graph`, rows/columns in
    ``VARIABLE_NAMES`` order."""
    return generator_graph().adjacency()


def variable_table(num_planets: int, seed: int = 0, do: Mapping | None = None,
                   rows: Sequence[int] | None = None, model_scale: bool = True) -> np.ndarray:
    """``[planets, variables]`` float64 of the graph's variables (columns in
    ``VARIABLE_NAMES`` order) for the population ``(num_planets, seed)`` under ``do``, for the
    planets ``rows`` (default: all). ``model_scale``: each variable on its declared scale
    (log10 for positive quantities; binary 0/1; classes as indices); otherwise raw units."""
    values = simulate_variables(num_planets, seed, do)
    columns = [to_model_scale(n, v) if model_scale else np.asarray(v, np.float64)
               for n, v in values.items()]
    table = np.stack(columns, axis=1)
    return table if rows is None else table[np.asarray(rows)]


def variable_kinds() -> dict[str, tuple[str, int]]:
    """Each variable's ``(kind, num_classes)``: continuous (0), binary (2), categorical (K)."""
    return {n: (VARIABLE_BY_NAME[n].kind, VARIABLE_BY_NAME[n].num_classes)
            for n in VARIABLE_NAMES}
