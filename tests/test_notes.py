"""Observing notes (generator/notes.py): written from the catalogue row alone, in a 256-byte
window, with the catalogue's own numbers."""

import dataclasses
import re

import numpy as np
import pytest

from astrojax.data.generator import generate_population
from astrojax.data.generator.notes import (
    MAX_NOTE_BYTES,
    NUMBER_RE,
    observing_notes,
    read_note,
    read_notes,
)
from astrojax.data.generator.observe import CATALOGUE_COLUMNS, observe_catalogue
from astrojax.data.generator.physics import BIOSPHERE_CLASSES, CLIMATE_REGIMES, GASES

N = 2100  # three blocks of planets, so prefix stability crosses block edges
STATED = ("star_teff_k", "orbital_period_days", "planet_radius_rearth", "planet_mass_mearth",
          "insolation_searth", "equilibrium_temperature_k", "eccentricity")
HIDDEN = ("water_fraction", "relative_humidity", "bond_albedo", "surface_pressure_bar",
          "greenhouse_tau", "surface_temperature_k", *(f"x_{g}" for g in GASES),
          "ozone_column_du", "liquid_water", "habitable", "biosphere", "biosignature",
          "climate_regime", "text_variant")
# Words about what an observer cannot know; none may appear in a note.
FORBIDDEN = ("habitab", "water", "ocean", "ice", "life", "living", "alive", "bio", "atmospher",
             "climate", "greenhouse", "surface", "gas", "oxyg", "ozone", "methan", "photosynth",
             "phototroph", "metabol", "signature", "O2", "O3", "CO2", "CH4", "H2O", "N2",
             *{w for name in BIOSPHERE_CLASSES + CLIMATE_REGIMES for w in name.split("_")}
             - {"none"})


@pytest.fixture(scope="module")
def population():
    return generate_population(N, seed=3)


@pytest.fixture(scope="module")
def catalogue(population):
    return observe_catalogue(population, seed=3)


@pytest.fixture(scope="module")
def notes(catalogue):
    return observing_notes(catalogue, seed=3)


def test_planet_i_depends_only_on_seed_and_i(catalogue, notes):
    assert observing_notes(catalogue, 3) == notes
    small = observe_catalogue(generate_population(1100, seed=3), seed=3)
    assert observing_notes(small, 3) == notes[:1100]
    assert observing_notes(catalogue, 3, indices=[2099, 5, 1024, -1]) == [
        notes[2099], notes[5], notes[1024], notes[-1]]
    # another seed words the same rows otherwise; the numbers stay the catalogue's
    other = observing_notes(catalogue, 4)
    assert np.mean([a != b for a, b in zip(other, notes, strict=True)]) > 0.5
    np.testing.assert_array_equal(read_notes(other)["star_teff_k"],
                                  read_notes(notes)["star_teff_k"])
    # the four templates and both ways of writing an error all occur
    assert len({note[:6] for note in notes}) >= 4
    assert any(" +/- " in n for n in notes) and any(re.search(r"\d\+/-\d", n) for n in notes)


def test_notes_hold_no_hidden_truth(population, catalogue, notes):
    for note in notes:
        lower = note.lower()
        for word in FORBIDDEN:
            found = (re.search(rf"\b{word}\b", note) if word[0].isupper()
                     else re.search(rf"\b{word}", lower))  # a word, not "photometry"
            assert not found, (word, note)
    # two worlds that differ only in what an observer cannot see get the same notes
    rng = np.random.default_rng(0)
    hidden = {name: rng.permutation(np.asarray(getattr(population, name))) for name in HIDDEN}
    other = observe_catalogue(dataclasses.replace(population, **hidden), seed=3)
    assert observing_notes(other, 3) == notes
    assert not np.array_equal(hidden["biosphere"], population.biosphere)


def test_every_number_is_the_catalogues_own(catalogue, notes):
    read = read_notes(notes)
    for column in STATED:
        value, error = catalogue.values[column], catalogue.errors[column]
        known = np.isfinite(value)
        assert np.array_equal(np.isfinite(read[column]), known), column
        # rounded to the error's second significant figure: within 5% of a sigma
        assert (np.abs(read[column] - value)[known] <= 0.051 * error[known] + 1e-12).all(), column
        assert (np.abs(read[f"{column}_err"] - error)[known] <= 0.051 * error[known]).all()
    assert np.array_equal(read["transiting"].astype(bool), catalogue.transiting)
    # and nothing else is a number: no true temperature, pressure or mixing ratio slips in
    for note, name in zip(notes, catalogue.name.tolist(), strict=True):
        rest = NUMBER_RE.sub("", note.replace(name, "")).replace("albedo 0.3", "")
        assert not re.search(r"\d", rest), note
    # what is not measured is said so
    no_mass = catalogue.transiting & ~catalogue.known("planet_mass_mearth")
    assert all("no mass measurement yet" in notes[i].lower() for i in np.flatnonzero(no_mass))


def test_notes_fit_the_text_window(catalogue, notes):
    sizes = np.array([len(note.encode("ascii")) for note in notes])  # ascii or it raises
    assert sizes.max() <= MAX_NOTE_BYTES and sizes.min() > 80
    # rows whose numbers need many digits fall back to the short templates, still in the window
    wide = {c: np.where(np.isfinite(v), v * 1e8 + 0.123456789, v)
            for c, v in catalogue.values.items()}
    tiny = {c: e * 1e-4 for c, e in catalogue.errors.items()}
    extreme = dataclasses.replace(catalogue, values=wide, errors=tiny)
    long_notes = observing_notes(extreme, 3, indices=np.arange(300))
    assert max(len(n.encode("ascii")) for n in long_notes) <= MAX_NOTE_BYTES
    assert any("+/-" not in n for n in long_notes)  # the values-only last resort was used
    assert all(np.isfinite(read_note(n)["orbital_period_days"]) for n in long_notes)


def test_bad_arguments_are_refused(catalogue):
    for seed in (-1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="seed must be a non-negative integer"):
            observing_notes(catalogue, seed)
    with pytest.raises(IndexError, match="planet index 5000 out of range"):
        observing_notes(catalogue, 3, indices=[0, 5000])
    with pytest.raises(TypeError, match="ObservedCatalogue"):
        observing_notes(generate_population(5), 3)
    assert set(CATALOGUE_COLUMNS) >= set(STATED)
