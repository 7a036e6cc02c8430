"""What predict reads and draws: a ``build-catalog`` folder's planets with their published
errors and its quarantined rows, the Monte Carlo draws within those errors (derived columns
derived again), and spectrum files matched to planets by name. The rules are in
:mod:`astrojax.predict`'s docstring."""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from pathlib import Path

import numpy as np
from astropy.table import Column, MaskedColumn, Table

from astrojax.data.archives.catalog import (
    MEASURED,
    QUARANTINE_FILE,
    derive_missing,
    load_catalog,
)
from astrojax.data.archives.quality import normalize_name
from astrojax.data.formats.spectra import read_spectrum, resample
from astrojax.data.generator.observe import CATALOGUE_COLUMNS

SPECTRUM_SUFFIXES = (".ecsv", ".txt", ".csv", ".dat")


class PredictError(ValueError):
    """Input predict cannot use; the message is one line naming the file or folder."""


@dataclasses.dataclass
class Catalogue:
    """A catalogue's planets as predict reads them (one entry per planet, in file order)."""

    names: list[str]
    values: dict[str, np.ndarray]  # CATALOGUE_COLUMNS, NaN where unknown
    errors: dict[str, np.ndarray]  # MEASURED, NaN where none
    derived: list[set[str]]
    flags: list[str]
    quarantine: Table


def read_catalogue(path: Path) -> Catalogue:
    """The catalogue in ``path`` (a ``build-catalog`` folder or its ``catalog.ecsv``) and
    the quarantined rows beside it; CatalogError names a missing or broken file."""
    catalog = load_catalog(path)  # CatalogError names the file
    table, columns = catalog.table, catalog.columns()
    values = {c: np.where(catalog.known[c], np.asarray(columns[c], np.float64), np.nan)
              for c in CATALOGUE_COLUMNS}
    errors = {}
    for c in MEASURED:
        column = table[f"{c}_err"] if f"{c}_err" in table.colnames else None
        if isinstance(column, MaskedColumn):
            column = column.filled(np.nan)
        errors[c] = np.full(len(table), np.nan) if column is None else \
            np.asarray(column, np.float64)
    text = {}
    for name in ("derived", "flags"):  # ECSV reads an empty string back as masked
        column = table[name] if name in table.colnames else Column([""] * len(table))
        if isinstance(column, MaskedColumn):
            column = column.filled("")
        text[name] = [str(v) for v in column]
    folder = path if path.is_dir() else path.parent
    quarantine = Table(names=("name", "source", "table", "reason"), dtype=(str,) * 4)
    if (folder / QUARANTINE_FILE).is_file():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # units astropy does not know (archive strings)
            quarantine = Table.read(folder / QUARANTINE_FILE, format="ascii.ecsv")
        for name in ("name", "source", "table", "reason"):  # a row rejected for no name
            if name in quarantine.colnames and isinstance(quarantine[name], MaskedColumn):
                quarantine[name] = quarantine[name].filled("")
    return Catalogue([str(n) for n in catalog.population.name], values, errors,
                      [set(filter(None, d.split(","))) for d in text["derived"]],
                      text["flags"], quarantine)


def _planet_seed(seed: int, name: str) -> list[int]:
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return [seed, int.from_bytes(digest, "little")]


def perturbed_columns(cat: Catalogue, samples: int, seed: int
                      ) -> tuple[dict[str, np.ndarray], list[list[str]]]:
    """Every CATALOGUE_COLUMN as ``[planets, 1 + samples]``: draw 0 the published row, then
    ``samples`` draws within the published errors (the module docstring), derived columns
    derived again; and per planet the columns drawn."""
    n, draws = len(cat.names), 1 + samples
    z = np.stack([np.random.default_rng(_planet_seed(seed, name)).standard_normal(
        (samples, len(MEASURED))) for name in cat.names]) if n else \
        np.zeros((0, samples, len(MEASURED)))
    out, drawn = {}, [[] for _ in range(n)]
    for j, c in enumerate(MEASURED):
        x, s = cat.values[c][:, None], cat.errors[c][:, None]
        derived = np.array([c in d for d in cat.derived], bool)[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            ok = np.isfinite(x) & np.isfinite(s) & (s > 0) & ~derived
            if c == "eccentricity":
                draw = np.minimum(np.abs(x + s * z[:, :, j]), 0.99)
            else:
                ok &= x > 0
                draw = x * np.exp(s / x * z[:, :, j])
        for i in np.flatnonzero(ok[:, 0]):
            drawn[i].append(c)
        published = np.where(derived, np.nan, x)  # derived again below, from each draw
        out[c] = np.concatenate([published, np.where(ok, draw, published)], axis=1)
    table = Table({c: out[c].reshape(-1) for c in MEASURED})
    with np.errstate(all="ignore"):
        derive_missing(table)
    return {c: np.asarray(table[c], np.float64).reshape(n, draws)
            for c in CATALOGUE_COLUMNS}, drawn


def read_spectra(folder: Path, cat: Catalogue, grid) -> tuple[dict[int, tuple], list[str]]:
    """``{planet row: (depth, sigma, known, file name)}`` on ``grid``, and warnings."""
    row_of = {normalize_name(name): i for i, name in enumerate(cat.names)}
    quarantined = {normalize_name(n) for n in cat.quarantine["name"]} - set(row_of)
    found, unmatched, notes = {}, [], []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in SPECTRUM_SUFFIXES):
        key = normalize_name(path.stem)
        if key not in row_of:
            unmatched.append(path.name + (" (quarantined)" if key in quarantined else ""))
            continue
        row = row_of[key]
        if row in found:
            raise PredictError(f"{found[row][3]} and {path.name} in {folder} both name planet "
                               f"{cat.names[row]!r}; keep one")
        depth, sigma, known = resample(read_spectrum(path), grid)  # SpectrumFileError: names it
        if not known.any():
            notes.append(f"{path.name} covers no bin of the model's grid ({grid.name}, "
                         f"{grid.wavelength_um[0]:.2f}-{grid.wavelength_um[-1]:.2f} um): "
                         f"{cat.names[row]} is predicted without a spectrum")
            continue
        if known.mean() < 0.9:  # the model was trained on spectra covering its whole grid
            notes.append(f"{path.name} covers {known.sum()} of the {len(known)} bins of the "
                         f"model's grid ({grid.name}); the model was trained on complete "
                         "spectra")
        found[row] = (depth, sigma, known, path.name)
    if unmatched:
        notes.insert(0, f"{len(unmatched)} spectrum file(s) in {folder} name no planet the "
                        f"catalogue predicts: {', '.join(unmatched)}")
    return found, notes
