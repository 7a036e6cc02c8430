"""The planet table, the one split by planet id, and the per-modality sources."""

import numpy as np
import pytest

from astrojax.config import PlanetsConfig
from astrojax.data.generator import describe_planet
from astrojax.data.generator.biochem import generate_networks
from astrojax.data.planets import (
    GraphSource,
    JointSource,
    PlanetTable,
    TextSource,
    planet_split,
    split_planets,
    split_position,
)


@pytest.fixture(scope="module")
def table():
    return PlanetTable.synthetic(300, seed=0)


def test_every_planet_is_in_exactly_one_split(table):
    split = split_planets(table.ids, 0.1, 0.2)
    rows = np.concatenate([split.train, split.val, split.test])
    assert sorted(rows.tolist()) == list(range(len(table)))
    assert all(np.all(np.diff(split[name]) > 0) for name in ("train", "val", "test"))


def test_the_split_does_not_move_when_the_population_grows(table):
    small = split_planets(table.ids[:100], 0.1, 0.1)
    large = split_planets(PlanetTable.synthetic(1000).ids, 0.1, 0.1)
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(small[name], large[name][large[name] < 100])


def test_the_split_depends_on_the_ids_and_seed_only(table):
    a, b = split_planets(table.ids, 0.1, 0.1), split_planets(table.ids, 0.1, 0.1)
    np.testing.assert_array_equal(a.val, b.val)
    other = split_planets(table.ids, 0.1, 0.1, seed=1)
    assert not np.array_equal(a.val, other.val)
    # a reordered table splits the same planets the same way
    order = np.random.default_rng(0).permutation(len(table))
    shuffled = split_planets(table.ids[order], 0.1, 0.1)
    assert set(table.ids[order][shuffled.val]) == set(table.ids[a.val])


def test_fractions_are_expected_shares_and_raising_one_only_moves_planets_into_it():
    ids = [f"planet-{i}" for i in range(20_000)]
    split = split_planets(ids, 0.1, 0.2)
    sizes = split.sizes()
    assert abs(sizes["val"] / 20_000 - 0.1) < 0.01 and abs(sizes["test"] / 20_000 - 0.2) < 0.01
    more_test = split_planets(ids, 0.1, 0.3)
    assert set(split.test) <= set(more_test.test)
    assert set(more_test.val) <= set(split.val) | set(split.train)
    u = split_position(ids[:1000])
    assert 0.0 <= u.min() and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.05


def test_bad_fractions_and_empty_splits_are_refused(table):
    with pytest.raises(ValueError, match="sum to less than 1"):
        split_planets(table.ids, 0.6, 0.5)
    with pytest.raises(ValueError, match="the val split of 3 planets is empty.*planets.val"):
        planet_split(table.ids[:3], PlanetsConfig(val_fraction=0.01, test_fraction=0.01))


def test_a_table_refuses_repeated_ids(table):
    with pytest.raises(ValueError, match="unique; repeated: ASTRO-0-000000 b"):
        PlanetTable(np.array([table.ids[0]] * len(table)), table.population, table.known,
                    "test table")
    with pytest.raises(KeyError, match="no planet 'nowhere'"):
        table.rows(["nowhere"])
    with pytest.raises(KeyError, match="no column 'mass'"):
        table.column("mass")


def test_sources_are_keyed_by_planet_and_join(table):
    rows = np.array([7, 3, 250])
    text = TextSource(table, rows)
    assert len(text) == 3 and text[1]["planet"] == 3
    assert text[2]["text"] == describe_planet(table.population[250],
                                              table.population.text_variant[250])
    assert text.texts() == [text[i]["text"] for i in range(3)]
    graphs = GraphSource(table, rows)
    expected = generate_networks(table.population, 0, indices=rows)
    assert graphs[0]["network"].reaction_ids == expected[0].reaction_ids
    assert [n.reaction_ids for n in graphs.networks()] == [n.reaction_ids for n in expected]
    joint = JointSource(text, graphs)[2]
    assert joint["planet"] == 250 and "text" in joint and "network" in joint
    with pytest.raises(ValueError, match="other planets"):
        JointSource(text, GraphSource(table, rows[:2]))
    with pytest.raises(ValueError, match="keys"):
        JointSource(text, TextSource(table, rows))[0]


def test_every_task_trains_and_evaluates_on_the_same_planets():
    """The language model, the graph VAE and the datacube task read the same split."""
    from astrojax.config import Config
    from astrojax.tasks import get_task

    planets = PlanetsConfig(num_planets=200)
    lm = get_task(Config(task="lm", planets=planets))
    graph = get_task(Config(task="graph_vae", planets=planets))
    np.testing.assert_array_equal(lm.split.val, graph.split.val)
    descriptions = lm.table.population.descriptions()
    assert lm.texts("val") == [descriptions[r] for r in lm.split.val]
    assert lm.texts("test") == [descriptions[r] for r in lm.split.test]
