"""Observing notes: what an observer would write about a planet from its published catalogue row.

The text modality of the observed planets (``generator/text.py``'s descriptions state the true
atmosphere and biosphere, so they cannot be shown to a model that must not see the answer).
A note is written from an ``ObservedCatalogue`` row and nothing else: the discovery method
(transit or radial velocity), the host's type and Teff with its error, the period, the radius
or, for radial-velocity planets, M sin i, with their errors, the insolation and T_eq as the
archives derive them (Bond albedo 0.3), the eccentricity where it is published, and what is
not measured ("no mass measurement yet"). Nothing of the atmosphere, water, life or climate is
known to an observer, so no note says any of it; the notes of two planets with the same
catalogue row differ only in wording.

**Numbers** are the catalogue's own: a value is rounded to the decimal of its error's second
significant figure, as observers quote them (``4523 +/- 92 K``, ``12.3456 +/- 0.0012 d``);
:func:`read_note` reads them back. **Wording**: four templates (a log line, prose, key=value,
a follow-up note), two ways to write an error and synonyms, drawn per planet on random stream
``STREAM`` (planet ``i`` depends only on ``(seed, i)``: ``block_rng`` blocks as in
sampling.py; a new draw goes at the end of ``_UNIFORMS``). **Length**: at most
``MAX_NOTE_BYTES`` bytes of plain ASCII (the fusion text encoder reads a fixed 256-byte
window); a note that would be longer is written in the key=value template instead (about 2%
of the built-in planets' notes), and, were that too long, without errors, values to 4
significant figures (at most about 200 bytes whatever the row holds).
"""

from __future__ import annotations

import math
import re

import numpy as np

from astrojax.data.generator.observe import ObservedCatalogue, check_seed
from astrojax.data.generator.physics import ASSUMED_BOND_ALBEDO, STAR_TYPES
from astrojax.data.generator.sampling import BLOCK_SIZE, block_rng

STREAM = 6  # sampling.py 0-1, biochem 2, climate 3, spectra 4, observe 5
MAX_NOTE_BYTES = 256
_UNIFORMS = ("template", "error_style", "wording", "unknowns")
_TEMPLATES = 4
_COMPACT = 2  # the key=value template, the shortest: the fallback for long notes
_ALBEDO = f"{ASSUMED_BOND_ALBEDO:.1f}"


def _decimals(error: float) -> int:
    """Decimals that keep two significant figures of ``error`` (0 to 6)."""
    if not (error > 0 and math.isfinite(error)):
        return 2
    return min(max(1 - math.floor(math.log10(error)), 0), 6)


def _pm(value: float, error: float, style: int) -> str:
    d = _decimals(error)
    return f"{value:.{d}f}{(' +/- ', '+/-')[style]}{error:.{d}f}"


def _draws(seed: int, planet_index: np.ndarray) -> np.ndarray:
    """``[len(_UNIFORMS), n]`` uniforms of stream STREAM for each planet index."""
    block_of = planet_index // BLOCK_SIZE
    u = np.empty((len(_UNIFORMS), len(planet_index)))
    for block in np.unique(block_of):
        uniforms = block_rng(seed, int(block), STREAM).random((len(_UNIFORMS), BLOCK_SIZE))
        here = np.flatnonzero(block_of == block)
        u[:, here] = uniforms[:, planet_index[here] % BLOCK_SIZE]
    return u


def _article(star_type: str) -> str:
    return "an" if star_type in ("M", "F") else "a"


def _row(catalogue: ObservedCatalogue, i: int) -> dict:
    """One planet's published facts, as Python scalars (NaN where not published)."""
    r = {c: (float(catalogue.values[c][i]), float(catalogue.errors[c][i]))
         for c in catalogue.values}
    r["name"] = str(catalogue.name[i])
    r["transiting"] = bool(catalogue.transiting[i])
    star = int(catalogue.star_type[i])
    r["star"] = STAR_TYPES[star] if star >= 0 else None
    return r


def _note(r: dict, template: int, style: int, wording: int, unknowns: int,
          errors: bool = True) -> str:
    """The note of one planet (``r`` from :func:`_row`) in one template and wording; without
    ``errors``, values alone to 4 significant figures (the last resort for length)."""

    def pm(column: str) -> str | None:
        value, error = r[column]
        if not math.isfinite(value):
            return None
        return _pm(value, error, style) if errors else f"{value:.4g}"

    teff, period, radius = pm("star_teff_k"), pm("orbital_period_days"), pm("planet_radius_rearth")
    mass, s, teq, ecc = (pm(c) for c in ("planet_mass_mearth", "insolation_searth",
                                          "equilibrium_temperature_k", "eccentricity"))
    transit, star = r["transiting"], r["star"]
    why_no_radius = "stellar radius unknown" if transit else "not transiting"
    say_unknown = unknowns == 1
    if template == 0:  # a log line
        method = ("transit", "transiting")[wording] if transit else ("radial-velocity", "RV")[
            wording]
        host = f"{_article(star)} {star} dwarf" if star else "a star of unknown type"
        text = f"{r['name']}: {method} planet around {host}, "
        text += f"Teff {teff} K. " if teff else "Teff not measured. "
        text += f"P = {period} d. "
        text += f"Rp = {radius} R_earth. " if radius else f"No radius ({why_no_radius}). "
        if mass:
            text += f"{'Mp' if transit else 'M sin i'} = {mass} M_earth. "
        else:
            text += "No mass measurement yet. "
        text += (f"S = {s} S_earth, Teq = {teq} K (albedo {_ALBEDO}). " if s
                 else "S and Teq not derived (host incomplete). ")
        text += f"e = {ecc}." if ecc else ("e not measured." if say_unknown else "")
    elif template == 1:  # prose
        method = ("Transit", "Photometric")[wording] if transit else ("Radial-velocity",
                                                                       "Doppler")[wording]
        host = f"{_article(star)} {star} dwarf" if star else "a star of unknown type"
        text = f"{method} detection around {host} ("
        text += f"Teff {teff} K): " if teff else "Teff not measured): "
        text += f"period {period} d, "
        text += (f"radius {radius} R_earth; " if radius else
                 ("no radius without a stellar radius; " if transit else "no radius as it does "
                  "not transit; "))
        if mass:
            text += f"{'mass' if transit else 'minimum mass'} {mass} M_earth. "
        else:
            text += "no mass measurement yet. "
        text += (f"Insolation {s} x Earth's, T_eq {teq} K for albedo {_ALBEDO}. "
                 if s else "Insolation unknown: the host is not fully characterised. ")
        text += f"Eccentricity {ecc}." if ecc else ("Eccentricity not measured." if say_unknown
                                                    else "")
    elif template == 2:  # key=value
        parts = [f"method={'transit' if transit else 'RV'}", f"star={star or 'n/a'}",
                 f"Teff={teff} K" if teff else "Teff=n/a", f"P={period} d",
                 f"Rp={radius} Re" if radius else f"Rp=n/a ({why_no_radius})"]
        if mass:
            parts.append(f"{'Mp' if transit else 'Msini'}={mass} Me")
        else:
            parts.append("Mp=n/a (no mass measurement yet)")
        parts += [f"S={s} Se", f"Teq={teq} K"] if s else ["S=n/a", "Teq=n/a"]
        if ecc or say_unknown:
            parts.append(f"e={ecc}" if ecc else "e=n/a")
        text = "; ".join(parts)
    else:  # a follow-up note
        method = ("transit", "photometry")[wording] if transit else ("RV", "Doppler")[wording]
        text = f"{r['name']}, follow-up ({method}). Host: "
        text += f"{star} dwarf" if star else "unknown type"
        text += f", Teff {teff} K. " if teff else ", Teff not measured. "
        text += f"P = {period} d" + (f", e = {ecc}. " if ecc else ". ")
        text += f"Rp = {radius} R_earth. " if radius else f"Size unknown ({why_no_radius}). "
        if mass:
            text += f"{'Mass' if transit else 'M sin i'}: {mass} M_earth. "
        else:
            text += "No mass measurement yet. "
        text += (f"S = {s} S_earth, Teq = {teq} K (albedo {_ALBEDO})."
                 if s else "Flux not derived.")
    return text.strip()


def observing_notes(catalogue: ObservedCatalogue, seed: int, indices=None) -> list[str]:
    """The observing notes of the planets at ``indices`` of ``catalogue`` (default: all), in
    that order; plain ASCII, at most MAX_NOTE_BYTES bytes each. Planet ``i``'s note depends
    only on its catalogue row and ``(seed, catalogue.planet_index[i])``, so a small
    population's notes are the prefix of a larger one's."""
    if not isinstance(catalogue, ObservedCatalogue):
        raise TypeError(f"catalogue must be an ObservedCatalogue, got {type(catalogue).__name__}")
    seed = check_seed(seed)
    rows = catalogue.rows(indices)
    u = _draws(seed, catalogue.planet_index[rows])
    template = np.minimum((u[0] * _TEMPLATES).astype(int), _TEMPLATES - 1)
    style, wording, unknowns = ((u[k] < 0.5).astype(int) for k in (1, 2, 3))
    notes = []
    for k, i in enumerate(rows.tolist()):
        r = _row(catalogue, i)
        text = _note(r, int(template[k]), int(style[k]), int(wording[k]), int(unknowns[k]))
        if len(text) > MAX_NOTE_BYTES:  # the shortest template, errors written the short way
            text = _note(r, _COMPACT, 0, int(wording[k]), int(unknowns[k]))
        if len(text) > MAX_NOTE_BYTES:  # never for the built-in planets; bounded for any row
            text = _note(r, _COMPACT, 0, int(wording[k]), int(unknowns[k]), errors=False)
        notes.append(text)
    return notes


# ------------------------------------------------------------------------------ reading back
_VALUE = r"(-?\d+(?:\.\d+)?(?:e[+-]?\d+)?)"
_ERROR = r" ?\+/- ?(\d+(?:\.\d+)?)"
_READ = {  # quantity -> the phrases that introduce its number, in every template
    "star_teff_k": r"\bTeff[ =]",
    "orbital_period_days": r"(?:\bP ?= ?|\bperiod )",
    "planet_radius_rearth": r"(?:\bRp ?= ?|\bradius )",
    "planet_mass_mearth": r"(?:\bMp ?= ?|\bM sin i(?: = |: )|\bMsini=|\bMass: |\bmass )",
    "insolation_searth": r"(?:\bS ?= ?|\bInsolation )",
    "equilibrium_temperature_k": r"(?:\bTeq ?= ?|\bT_eq )",
    "eccentricity": r"(?:\be ?= ?|\bEccentricity )",
}
_READ_RE = {q: re.compile(f"{prefix}{_VALUE}(?:{_ERROR})?") for q, prefix in _READ.items()}
_RV_RE = re.compile(r"\b(?:radial-velocity|Radial-velocity|RV|Doppler)\b")
NUMBER_RE = re.compile(_VALUE + _ERROR)  # a value with its error, as notes write them


def read_note(note: str) -> dict[str, float]:
    """The numbers a reader takes from a note: for each catalogue column a note can state
    (``_READ``), its value and 1-sigma error (``"<column>"``, ``"<column>_err"``; NaN where the
    note does not state them), and ``transiting`` (1.0 for a transit, 0.0 for a radial-velocity
    discovery)."""
    out = {}
    for column, pattern in _READ_RE.items():
        match = pattern.search(note)
        value = float(match[1]) if match else math.nan
        error = float(match[2]) if match and match[2] else math.nan
        out[column], out[f"{column}_err"] = value, error
    out["transiting"] = 0.0 if _RV_RE.search(note) else 1.0
    return out


def read_notes(notes: list[str]) -> dict[str, np.ndarray]:
    """:func:`read_note` of each note, as one float64 array per key."""
    read = [read_note(note) for note in notes]
    return {key: np.array([r[key] for r in read], np.float64) for key in read_note("")}


__all__ = ["MAX_NOTE_BYTES", "NUMBER_RE", "STREAM", "observing_notes", "read_note", "read_notes"]
