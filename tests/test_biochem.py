"""Synthetic biochemical networks: validity, determinism, agreement with the planet."""

import numpy as np
import pytest

from astrojax.data import generator as syn
from astrojax.data.generator import biochem
from astrojax.data.metabolic import COMPARTMENTS, ELEMENTS, to_graph

NUM = 256
NONE, METHANOGENIC, ANOXYGENIC, OXYGENIC = range(4)
BIOLOGICAL_REACTIONS = {r for m in biochem.BIOLOGICAL_MODULES for r in biochem.module_reactions(m)}


@pytest.fixture(scope="module")
def pop() -> syn.PlanetPopulation:
    return syn.generate_population(NUM, seed=0)


@pytest.fixture(scope="module")
def nets(pop):
    return biochem.generate_networks(pop, seed=0)


def _nodes(nets) -> np.ndarray:
    return np.array([n.num_metabolites + n.num_reactions for n in nets])


def _same(a, b) -> bool:
    return (a.name == b.name and a.metabolite_ids == b.metabolite_ids
            and a.reaction_ids == b.reaction_ids
            and all(np.array_equal(getattr(a, f), getattr(b, f))
                    for f in ("element_counts", "charge", "compartment", "reversible",
                              "reaction_boundary", "stoich_metabolite", "stoich_reaction",
                              "coefficient")))


def _produces(net, metabolite: str) -> bool:
    """True if a non-exchange reaction of ``net`` has ``metabolite`` as a product."""
    if metabolite not in net.metabolite_ids:
        return False
    m = net.metabolite_ids.index(metabolite)
    made = (net.stoich_metabolite == m) & (net.coefficient > 0)
    return bool(np.any(~net.reaction_boundary[net.stoich_reaction[made]]))


# ------------------------------------------------------------------ library and validity
def test_library_reactions_are_balanced():
    lib = biochem.library_network()
    for r, rid in enumerate(lib.reaction_ids):
        if lib.reaction_boundary[r]:
            continue
        entries = lib.stoich_reaction == r
        met, coef = lib.stoich_metabolite[entries], lib.coefficient[entries]
        elements = (lib.element_counts[met] * coef[:, None]).sum(axis=0)
        assert np.allclose(elements, 0), (rid, dict(zip(ELEMENTS, elements, strict=True)))
        assert np.isclose((lib.charge[met] * coef).sum(), 0), rid
    suffixes = {i.rpartition("_")[2] for i in lib.metabolite_ids}
    assert suffixes == {"c", "e", "p"}


def test_networks_are_valid_graphs(pop, nets):
    assert [n.name for n in nets] == list(pop.name)
    for net in nets:
        g = to_graph(net)
        n_node = net.num_metabolites + net.num_reactions
        assert g.n_node[0] == n_node == len(g.nodes)
        assert g.senders.min() >= 0 and g.senders.max() < n_node
        assert g.receivers.min() >= 0 and g.receivers.max() < n_node
        assert len(set(net.metabolite_ids)) == net.num_metabolites
        # every node is connected: each metabolite and each reaction has an entry
        assert set(net.stoich_metabolite.tolist()) == set(range(net.num_metabolites))
        assert set(net.stoich_reaction.tolist()) == set(range(net.num_reactions))


# ------------------------------------------------------------------ determinism
def test_small_population_networks_are_a_prefix(pop, nets):
    small = biochem.generate_networks(syn.generate_population(64, seed=0), seed=0)
    assert all(_same(a, b) for a, b in zip(small, nets[:64], strict=True))


def test_same_seed_same_networks_other_seed_differs(pop, nets):
    again = biochem.generate_networks(pop, seed=0)
    assert all(_same(a, b) for a, b in zip(again, nets, strict=True))
    assert _same(biochem.planet_network(pop, 7, seed=0), nets[7])
    picked = biochem.generate_networks(pop, seed=0, indices=[5, 2])
    assert _same(picked[0], nets[5]) and _same(picked[1], nets[2])
    other = biochem.generate_networks(pop, seed=1)
    differ = sum(a.reaction_ids != b.reaction_ids for a, b in zip(other, nets, strict=True))
    assert differ > NUM // 4


def test_bad_arguments(pop):
    with pytest.raises(ValueError, match="seed"):
        biochem.generate_networks(pop, seed=-1)
    with pytest.raises(IndexError, match="out of range"):
        biochem.planet_network(pop, NUM, seed=0)
    with pytest.raises(ValueError, match="unknown module"):
        biochem.module_reactions("photosynthesis")


# ------------------------------------------------------------------ agreement with the planet
def test_biosphere_modules_follow_the_class(pop, nets):
    # Annotation coverage (biochem.COVERAGE_RANGE) hides some cellular reactions, hallmarks
    # included, but a hallmark never appears outside its class and is seen on most planets.
    hallmark_seen = {METHANOGENIC: [], ANOXYGENIC: [], OXYGENIC: []}
    for life, net in zip(pop.biosphere, nets, strict=True):
        reactions = set(net.reaction_ids)
        if life == NONE:
            assert not reactions & BIOLOGICAL_REACTIONS, net.name
            assert set(net.compartment.tolist()) == {COMPARTMENTS.index("extracellular")}
        if life != OXYGENIC:
            assert "PSII" not in reactions, net.name
        if life == OXYGENIC:
            hallmark_seen[life].append("PSII" in reactions and _produces(net, "o2_c"))
        if life == METHANOGENIC:
            hallmark_seen[life].append("MCR" in reactions and _produces(net, "ch4_c"))
        if life == ANOXYGENIC:
            hallmark_seen[life].append(bool({"RC1", "RC2"} & reactions))
    assert {NONE, METHANOGENIC, ANOXYGENIC, OXYGENIC} <= set(pop.biosphere.tolist())
    for life, seen in hallmark_seen.items():
        assert 0.5 < np.mean(seen) < 1.0, (life, np.mean(seen))


def test_exchanges_follow_the_atmosphere(pop, nets):
    has_air = pop.surface_pressure_bar >= syn.AIRLESS_PRESSURE_BAR
    for g in syn.GASES:
        present = has_air & (getattr(pop, f"x_{g}") > biochem.GAS_THRESHOLD)
        exchanged = np.array([f"EX_{g}_e" in n.reaction_ids for n in nets])
        np.testing.assert_array_equal(exchanged, present, err_msg=g)
    assert (~has_air).any() and (has_air & (pop.x_h2 < biochem.GAS_THRESHOLD)).any()


def test_sizes_lie_in_documented_ranges(pop, nets):
    nodes = _nodes(nets)
    life = pop.biosphere > 0
    # the module docstring's ranges: lifeless 8-75 nodes, inhabited 40-200
    assert nodes[~life].min() >= 8 and nodes[~life].max() <= 75
    assert nodes[life].min() >= 40 and nodes[life].max() <= 200
    assert 15 <= np.median(nodes[~life]) <= 35 and 85 <= np.median(nodes[life]) <= 130
    airless = pop.surface_pressure_bar < syn.AIRLESS_PRESSURE_BAR
    assert nodes[airless].max() < np.median(nodes[~airless & ~life])
    ranges = [(nodes[pop.biosphere == k].min(), nodes[pop.biosphere == k].max())
              for k in (METHANOGENIC, ANOXYGENIC, OXYGENIC)]
    for i, (low_a, high_a) in enumerate(ranges):  # no class is told apart by its size alone
        for low_b, high_b in ranges[i + 1:]:
            assert low_a < high_b and low_b < high_a
    for k in range(4):  # planets of one class differ
        assert len({nets[i].reaction_ids for i in np.flatnonzero(pop.biosphere == k)}) > 1


def test_composition_statistics_differ_between_classes(pop, nets):
    life = pop.biosphere
    reaction_fraction = np.array([n.num_reactions / (n.num_metabolites + n.num_reactions)
                                  for n in nets])
    p, s = ELEMENTS.index("P"), ELEMENTS.index("S")
    phosphorus = np.array([(n.element_counts[:, p] > 0).sum() for n in nets])
    cytosolic_sulfur = np.array([((n.element_counts[:, s] > 0) & (n.compartment == 0)).sum()
                                 for n in nets])

    def mean(x, k):
        return x[life == k].mean()

    # methanogens run on many S-bearing carriers (CoM, CoB, CoA); oxygenic cells on fewer,
    # and they carry more reactions per metabolite (Calvin cycle, TCA, respiration)
    assert mean(cytosolic_sulfur, METHANOGENIC) > mean(cytosolic_sulfur, OXYGENIC) + 1
    assert mean(reaction_fraction, OXYGENIC) > mean(reaction_fraction, METHANOGENIC) + 0.01
    assert min(mean(phosphorus, k) for k in (1, 2, 3)) > 5 * mean(phosphorus, NONE)
