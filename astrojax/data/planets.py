"""The planet is the unit: the planet table, its one train / val / test split, and the
per-modality sources keyed by planet.

- :class:`PlanetTable`: one row per planet, from the built-in population (as it is, or as a
  catalogue would publish it: ``observed``) or a fetched catalogue, in one schema (the
  generator's columns) with a known mask per column (a catalogue lacks
  atmospheres, climate and life; the population knows everything). Row ``i`` of a table is
  planet ``ids[i]``.
- :func:`split_planets`: the one split. A planet's split is a hash of its id and a seed, so it
  never changes when the population grows, when a modality is added, or on another machine;
  fractions are expected shares (a population of 4,096 gets 400-420 val planets at 0.1).
- Sources: Grain random-access sources over chosen rows, one per modality, each element
  ``{"planet": row, ...}`` so that a task can join modalities by planet (:class:`JointSource`).
  :class:`TextSource` (descriptions), :class:`GraphSource` (metabolic networks),
  :class:`SpectrumSource` (transmission spectra), :class:`CatalogueSource` (a row of catalogue
  parameters with its known mask), and the cube source
  :class:`astrojax.data.pipeline.CubeSource` (a cube store's sample ``i`` is planet row ``i``:
  the built-in store holds the population in order).

Tasks compose these: a task builds the table, splits it, and reads its modalities' sources for
the rows of each split. Nothing here depends on the models or the train package.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from astrojax.data.generator import PlanetPopulation, generate_population

SPLITS = ("train", "val", "test")


# ----------------------------------------------------------------------------------- the table
@dataclasses.dataclass(frozen=True, eq=False)
class PlanetTable:
    """Planets as rows: ``ids`` (unique strings), the ``population`` columns and a ``known`` mask
    per column. ``origin`` says where the rows come from (for messages and checkpoints)."""

    ids: np.ndarray
    population: PlanetPopulation
    known: dict[str, np.ndarray]
    origin: str
    seed: int | None = None  # the generator's seed, for a synthetic table

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.population):
            raise ValueError(f"{self.origin}: {len(self.ids)} ids for {len(self.population)} "
                             "planets")
        if len(set(self.ids.tolist())) != len(self.ids):
            values, counts = np.unique(self.ids, return_counts=True)
            raise ValueError(f"{self.origin}: planet ids must be unique; repeated: "
                             f"{', '.join(map(str, values[counts > 1][:5]))}")

    @classmethod
    def synthetic(cls, num_planets: int, seed: int = 0) -> PlanetTable:
        """The built-in population: every column known; ids are the planets' names."""
        population = generate_population(num_planets, seed)
        known = {name: np.ones(len(population), bool) for name in population.column_names()}
        return cls(population.name.astype(str), population, known,
                   f"built-in population (seed {seed}, {num_planets} planets)", seed)

    @classmethod
    def observed(cls, num_planets: int, seed: int = 0, model=None) -> PlanetTable:
        """The built-in population as an archive would publish it
        (``generator.observe.observe_catalogue`` with ``model``, a ``CatalogueModel``): measured
        values with gaps, masked like ``from_catalog``'s; nothing of atmospheres, climate or
        life. Ids are the planets' names, so the split is the built-in table's. ``seed`` is
        left None: generated modalities come from ``PlanetTable.synthetic``."""
        from astrojax.data.generator.observe import CatalogueModel, observe_catalogue

        catalogue = observe_catalogue(generate_population(num_planets, seed), seed,
                                      CatalogueModel() if model is None else model)
        population, known = catalogue.as_population()
        return cls(population.name.astype(str), population, known,
                   f"observed catalogue of the built-in population (seed {seed}, "
                   f"{num_planets} planets)")

    @classmethod
    def from_catalog(cls, path: str | Path) -> PlanetTable:
        """A catalogue written by ``python -m astrojax.data build-catalog`` (its folder or its
        ``catalog.ecsv``): measured values, NaN / -1 where unknown, masks from the file."""
        from astrojax.data.archives.catalog import load_catalog  # astropy: only when asked

        catalog = load_catalog(path)
        return cls(catalog.population.name.astype(str), catalog.population, catalog.known,
                   f"catalogue {path}")

    def __len__(self) -> int:
        return len(self.ids)

    @functools.cached_property
    def row_of(self) -> dict[str, int]:
        """Planet id -> row."""
        return {planet: i for i, planet in enumerate(self.ids.tolist())}

    def rows(self, ids: Sequence[str]) -> np.ndarray:
        """The rows of planets ``ids``; KeyError naming the first unknown id."""
        missing = [planet for planet in ids if planet not in self.row_of]
        if missing:
            raise KeyError(f"{self.origin} has no planet {missing[0]!r}")
        return np.array([self.row_of[planet] for planet in ids], np.int64)

    def column(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(values, known)`` of one column; KeyError listing the columns if unknown."""
        columns = self.population.columns()
        if name not in columns:
            raise KeyError(f"no column {name!r}; the table has {', '.join(columns)}")
        return columns[name], self.known[name]


def sample_ids(num_samples: int) -> np.ndarray:
    """Ids of a cube store's samples that name no planets (``sample-000000``, ...)."""
    return np.array([f"sample-{i:06d}" for i in range(num_samples)])


# ----------------------------------------------------------------------------------- the split
def split_position(ids: Sequence[str], seed: int = 0) -> np.ndarray:
    """A uniform number in [0, 1) per id: the first 8 bytes of BLAKE2b(seed, id). Depends on
    nothing else, so it is the same in every process, on every machine, in every release."""
    out = np.empty(len(ids), np.float64)
    for i, planet in enumerate(ids):
        digest = hashlib.blake2b(f"{seed}\x00{planet}".encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "little") / 2.0**64
    return out


@dataclasses.dataclass(frozen=True)
class PlanetSplit:
    """Rows of a table in each split, each sorted ascending."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in SPLITS:
            raise KeyError(f"no split {name!r}; the splits are {', '.join(SPLITS)}")
        return getattr(self, name)

    def sizes(self) -> dict[str, int]:
        return {name: len(self[name]) for name in SPLITS}


def split_planets(ids: Sequence[str], val_fraction: float, test_fraction: float,
                  seed: int = 0) -> PlanetSplit:
    """The one train / val / test split by planet id: a planet is test if its
    :func:`split_position` is below ``test_fraction``, val if below ``test_fraction +
    val_fraction``, train otherwise. Raising a fraction only moves planets into that split."""
    if not (0.0 <= val_fraction and 0.0 <= test_fraction and val_fraction + test_fraction < 1.0):
        raise ValueError(f"val_fraction={val_fraction} and test_fraction={test_fraction} must "
                         "be >= 0 and sum to less than 1")
    position = split_position(ids, seed)
    test = position < test_fraction
    val = ~test & (position < test_fraction + val_fraction)
    return PlanetSplit(train=np.flatnonzero(~test & ~val), val=np.flatnonzero(val),
                       test=np.flatnonzero(test))


def planet_split(table_ids: Sequence[str], planets_config) -> PlanetSplit:
    """:func:`split_planets` with a :class:`astrojax.config.PlanetsConfig`'s fractions and seed;
    ValueError (naming the config keys) if a split is left empty."""
    c = planets_config
    split = split_planets(table_ids, c.val_fraction, c.test_fraction, c.split_seed)
    for name, fraction in (("train", None), ("val", c.val_fraction),
                           ("test", c.test_fraction)):
        if len(split[name]) == 0 and fraction != 0.0:
            raise ValueError(f"the {name} split of {len(table_ids)} planets is empty "
                             f"(planets.val_fraction={c.val_fraction}, planets.test_fraction="
                             f"{c.test_fraction}): use more planets or larger fractions")
    return split


# ----------------------------------------------------------------------------------- sources
class PlanetSource(abc.ABC):
    """A Grain random-access source over ``rows`` of a table: element ``i`` is
    ``{"planet": rows[i], **self.read(rows[i])}``. Subclasses define :meth:`read`."""

    def __init__(self, rows: Sequence[int]):
        self.rows = np.asarray(rows, np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        row = int(self.rows[i])
        return {"planet": np.int32(row), **self.read(row)}

    @abc.abstractmethod
    def read(self, row: int) -> dict:
        """The modality's arrays of table row ``row``."""


class _GeneratedSource(PlanetSource):
    """A modality the generator draws for the built-in population (a catalogue row has none)."""

    what = "this modality"

    def __init__(self, table: PlanetTable, rows: Sequence[int]):
        if table.seed is None:
            raise ValueError(f"{table.origin}: {self.what} exist for the built-in population "
                             "only")
        super().__init__(rows)
        self.table = table


class TextSource(_GeneratedSource):
    """A planet's description (``{"text": str}``)."""

    what = "descriptions"

    def read(self, row: int) -> dict:
        from astrojax.data.generator import describe_planet

        record = self.table.population[row]
        return {"text": describe_planet(record, record["text_variant"])}

    def texts(self) -> list[str]:
        """All the source's texts, in order."""
        return [self.read(int(row))["text"] for row in self.rows]


class GraphSource(_GeneratedSource):
    """A planet's metabolic network (``{"network": MetabolicNetwork}``) from the generator's
    biochemistry (random stream 2, seeded like the population)."""

    what = "metabolic networks"

    def read(self, row: int) -> dict:
        from astrojax.data.generator.biochem import planet_network

        return {"network": planet_network(self.table.population, row, self.table.seed)}

    def networks(self) -> list:
        """All the source's networks, in order, generated together (faster than one by one)."""
        from astrojax.data.generator.biochem import generate_networks

        return generate_networks(self.table.population, self.table.seed, indices=self.rows)


class SpectrumSource(_GeneratedSource):
    """A planet's transmission spectrum, ``{"depth": [bins] float32, "sigma": [bins] float32,
    "known": [bins] bool}``: transit depths (fractions) on ``instrument``'s grid after
    ``n_transits`` (one number or one per row) from the generator
    (:mod:`astrojax.data.generator.spectra`, random stream 4, seeded like the population), one
    noise draw (``realisation``) or none (``noise=False``). Generated together at
    construction; every bin is known (a real spectrum resampled onto the grid may lack some).
    ``wavelength_um`` holds the bin centres."""

    what = "transmission spectra"

    def __init__(self, table: PlanetTable, rows: Sequence[int], instrument="nirspec_prism",
                 n_transits=1, noise: bool = True, realisation: int = 0):
        super().__init__(table, rows)
        from astrojax.data.generator.spectra import planet_spectra

        depth, sigma, self.wavelength_um = planet_spectra(
            table.population, instrument, n_transits, table.seed, self.rows, noise, realisation)
        self.depth, self.sigma = depth.astype(np.float32), sigma.astype(np.float32)
        self._position = {int(row): i for i, row in enumerate(self.rows)}

    def read(self, row: int) -> dict:
        i = self._position[row]
        return {"depth": self.depth[i], "sigma": self.sigma[i],
                "known": np.ones(self.depth.shape[1], bool)}


class CatalogueSource(PlanetSource):
    """A row of catalogue parameters: ``{"values": [C] float32, "known": [C] bool}`` for the
    float columns ``columns``, unknown values set to 0 so a model reads the mask, never NaN."""

    def __init__(self, table: PlanetTable, rows: Sequence[int], columns: Sequence[str]):
        super().__init__(rows)
        pairs = [table.column(name) for name in columns]
        self.columns = tuple(columns)
        self.values = np.stack([np.asarray(v, np.float64) for v, _ in pairs], axis=1)
        self.known = np.stack([k & np.isfinite(np.asarray(v, np.float64)) for v, k in pairs],
                              axis=1)

    def read(self, row: int) -> dict:
        known = self.known[row]
        return {"values": np.where(known, self.values[row], 0.0).astype(np.float32),
                "known": known.copy()}


class JointSource(PlanetSource):
    """Several modality sources over the same rows, joined by planet: a planet's element merges
    theirs (their keys must not collide)."""

    def __init__(self, *sources: PlanetSource):
        if not sources:
            raise ValueError("JointSource needs at least one source")
        for source in sources[1:]:
            if not np.array_equal(source.rows, sources[0].rows):
                raise ValueError(f"{type(source).__name__} covers other planets than "
                                 f"{type(sources[0]).__name__}; join sources over the same rows")
        super().__init__(sources[0].rows)
        self.sources = sources

    def read(self, row: int) -> dict:
        out: dict = {}
        for source in self.sources:
            element = source.read(row)
            clash = set(element) & set(out)
            if clash:
                raise ValueError(f"sources disagree on keys {sorted(clash)}")
            out.update(element)
        return out
