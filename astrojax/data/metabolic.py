"""Metabolic networks: one schema for real (SBML) and synthetic networks, and their graph encoding.

A network is bipartite: metabolites and reactions are both nodes, and each stoichiometric entry
links a metabolite to a reaction (substrate -> reaction -> product). We keep the bipartite form
rather than projecting onto metabolites because the projection turns every currency metabolite
(h2o, atp, h+) into a clique over all reactions that touch it, hiding the reactions' own
properties (reversibility, exchange) that the model should see; the bipartite graph has one
edge per stoichiometric entry, so its size grows linearly with the model file.

:func:`to_graph` turns a :class:`MetabolicNetwork` into a ``jraph.GraphsTuple`` with fixed-width
node and edge features (``NODE_FEATURES``, ``EDGE_FEATURES``); both the SBML reader and the
synthetic generator produce :class:`MetabolicNetwork`, so every model trains on either.
"""

from __future__ import annotations

import dataclasses
import re

import jraph
import numpy as np

ELEMENTS = ("C", "H", "N", "O", "P", "S", "other")
COMPARTMENTS = ("cytosol", "extracellular", "periplasm", "other")
# SBML compartment ids seen in BiGG/cobra models and what we map them to.
COMPARTMENT_ALIASES = {"c": "cytosol", "cytosol": "cytosol", "cytoplasm": "cytosol",
                       "e": "extracellular", "extracellular": "extracellular",
                       "p": "periplasm", "periplasm": "periplasm"}

NODE_FEATURES = (
    "is_metabolite", "is_reaction",
    *(f"log1p_{e}" for e in ELEMENTS),
    "charge", "formula_known",
    *(f"compartment_{c}" for c in COMPARTMENTS),
    "reversible", "boundary",
)
EDGE_FEATURES = ("substrate", "product", "log1p_stoichiometry", "reverse", "reversible")
NUM_NODE_FEATURES, NUM_EDGE_FEATURES = len(NODE_FEATURES), len(EDGE_FEATURES)

_FORMULA_TOKEN = re.compile(r"([A-Z][a-z]?)(\d*)")


class NetworkError(ValueError):
    """A network is malformed; the message names the network (file or planet) and the entry."""


def element_counts(formula: str | None) -> np.ndarray | None:
    """Counts of ``ELEMENTS`` in a chemical formula such as ``C6H12O6``; None if unknown.

    Elements outside C, H, N, O, P, S (Fe, Mg, R groups of generic formulas, ...) add to
    ``other``. A formula that is not a plain element sequence (empty, with brackets or charges)
    counts as unknown rather than being half-parsed.
    """
    if not formula:
        return None
    tokens = _FORMULA_TOKEN.findall(formula)
    if "".join(symbol + digits for symbol, digits in tokens) != formula:
        return None
    counts = np.zeros(len(ELEMENTS), np.float32)
    for symbol, digits in tokens:
        slot = ELEMENTS.index(symbol) if symbol in ELEMENTS[:-1] else len(ELEMENTS) - 1
        counts[slot] += int(digits) if digits else 1
    return counts


@dataclasses.dataclass(frozen=True, eq=False)
class MetabolicNetwork:
    """A metabolic network as arrays. ``name`` says where it came from (a file, a planet).

    Metabolite arrays have length M, reaction arrays length R, and the stoichiometry is a
    sparse matrix in coordinate form (length S): ``coefficient < 0`` consumes metabolite
    ``stoich_metabolite`` in reaction ``stoich_reaction``, ``> 0`` produces it.
    """

    name: str
    metabolite_ids: tuple[str, ...]
    element_counts: np.ndarray  # [M, len(ELEMENTS)] float32, zeros where the formula is unknown
    formula_known: np.ndarray  # [M] bool
    charge: np.ndarray  # [M] float32
    compartment: np.ndarray  # [M] int32 index into COMPARTMENTS
    metabolite_boundary: np.ndarray  # [M] bool: a boundary condition (source or sink)
    reaction_ids: tuple[str, ...]
    reversible: np.ndarray  # [R] bool
    reaction_boundary: np.ndarray  # [R] bool: exchange/sink/demand reactions
    stoich_metabolite: np.ndarray  # [S] int32
    stoich_reaction: np.ndarray  # [S] int32
    coefficient: np.ndarray  # [S] float32, non-zero

    def __post_init__(self) -> None:
        m, r = len(self.metabolite_ids), len(self.reaction_ids)
        shapes = {"element_counts": (m, len(ELEMENTS)), "formula_known": (m,), "charge": (m,),
                  "compartment": (m,), "metabolite_boundary": (m,), "reversible": (r,),
                  "reaction_boundary": (r,)}
        for field, shape in shapes.items():
            if np.shape(getattr(self, field)) != shape:
                raise NetworkError(f"{self.name}: {field} has shape "
                                   f"{np.shape(getattr(self, field))}, expected {shape}")
        s = len(self.coefficient)
        for field in ("stoich_metabolite", "stoich_reaction"):
            if np.shape(getattr(self, field)) != (s,):
                raise NetworkError(f"{self.name}: {field} has shape "
                                   f"{np.shape(getattr(self, field))}, expected ({s},)")
        _check_index(self.name, "metabolite", self.stoich_metabolite, m, self.stoich_reaction)
        _check_index(self.name, "reaction", self.stoich_reaction, r, self.stoich_reaction)
        if np.any(self.coefficient == 0):
            entry = int(np.flatnonzero(self.coefficient == 0)[0])
            raise NetworkError(f"{self.name}: stoichiometric entry {entry} has coefficient 0")

    @property
    def num_metabolites(self) -> int:
        return len(self.metabolite_ids)

    @property
    def num_reactions(self) -> int:
        return len(self.reaction_ids)


def _check_index(name: str, kind: str, index: np.ndarray, size: int, reaction: np.ndarray):
    bad = np.flatnonzero((index < 0) | (index >= size))
    if bad.size:
        i = int(bad[0])
        raise NetworkError(f"{name}: stoichiometric entry {i} (reaction index "
                           f"{int(reaction[i])}) refers to {kind} {int(index[i])}, out of range "
                           f"for {size} {kind}s")


def node_features(net: MetabolicNetwork) -> np.ndarray:
    """``[M + R, NUM_NODE_FEATURES]`` float32: metabolites first, then reactions."""
    m, r = net.num_metabolites, net.num_reactions
    x = np.zeros((m + r, NUM_NODE_FEATURES), np.float32)
    col = {name: i for i, name in enumerate(NODE_FEATURES)}
    x[:m, col["is_metabolite"]] = 1.0
    x[m:, col["is_reaction"]] = 1.0
    first = col[f"log1p_{ELEMENTS[0]}"]
    x[:m, first:first + len(ELEMENTS)] = np.log1p(net.element_counts)
    x[:m, col["charge"]] = np.clip(net.charge, -4, 4) / 4.0
    x[:m, col["formula_known"]] = net.formula_known
    x[np.arange(m), col[f"compartment_{COMPARTMENTS[0]}"] + net.compartment] = 1.0
    x[:m, col["boundary"]] = net.metabolite_boundary
    x[m:, col["reversible"]] = net.reversible
    x[m:, col["boundary"]] = net.reaction_boundary
    return x


def to_graph(net: MetabolicNetwork) -> jraph.GraphsTuple:
    """The network as one directed jraph graph with messages flowing both ways.

    Node ``i < M`` is metabolite ``i`` and node ``M + j`` reaction ``j``. Each stoichiometric
    entry gives two edges: along the reaction arrow (substrate -> reaction or reaction ->
    product) and against it (``reverse`` = 1), so every node attends to all its neighbours.
    """
    m = net.num_metabolites
    met, rxn = net.stoich_metabolite.astype(np.int32), net.stoich_reaction.astype(np.int32) + m
    substrate = net.coefficient < 0
    along_s = np.where(substrate, met, rxn)
    along_r = np.where(substrate, rxn, met)
    e = np.zeros((len(met), NUM_EDGE_FEATURES), np.float32)
    e[:, 0], e[:, 1] = substrate, ~substrate
    e[:, 2] = np.log1p(np.abs(net.coefficient))
    e[:, 4] = net.reversible[net.stoich_reaction]
    reverse = e.copy()
    reverse[:, 3] = 1.0
    return jraph.GraphsTuple(
        nodes=node_features(net), edges=np.concatenate([e, reverse]),
        senders=np.concatenate([along_s, along_r]), receivers=np.concatenate([along_r, along_s]),
        n_node=np.array([m + net.num_reactions], np.int32),
        n_edge=np.array([2 * len(met)], np.int32), globals=None)
