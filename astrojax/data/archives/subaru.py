"""Subaru (SMOKA): reads a result list exported by hand from the SMOKA web search.

SMOKA (smoka.nao.ac.jp), the Subaru and Kiso/Okayama archive, has no query API: searches run
through its HTML forms, and data requests are confirmed by e-mail. Scraping those forms would
break silently whenever the pages change, so there is no client here. Instead the user runs the
search in a browser, saves the result list (CSV or tab-separated text), and this module reads
that file: no network, provenance with the file's ``file://`` URL and sha256.

Columns: the list shows Subaru FITS keywords. We require a frame id, object, RA, Dec, date,
exposure time, filter and instrument, accepting the keyword spelling (``FRAMEID``, ``OBJECT``,
``RA2000``, ``DEC2000``, ``DATE-OBS``, ``EXPTIME``, ``FILTER01``, ``INSTRUME``) or the plain
spelling (``Frame ID``, ``RA``, ``Dec``, ``Date``, ``Exptime``, ``Filter``, ``Instrument``),
case-insensitively; ``UT-STR`` (exposure start, UT) is joined to the date when present. RA/Dec
may be sexagesimal (hours/degrees) or decimal degrees. The result has RA/Dec in deg and the
exposure in s; other columns are kept as they are.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle
from astropy.table import Column, Table

from astrojax.data.archives.config import SourceConfig
from astrojax.data.archives.provenance import Provenance
from astrojax.data.archives.result import FetchResult

NAME = "subaru"
DEFAULT_BASE_URL = "https://smoka.nao.ac.jp"  # the web search; never requested by this module

# Our column -> accepted header spellings (compared case-insensitively, spaces/underscores
# and hyphens ignored).
REQUIRED = {
    "frame_id": ("FRAMEID", "Frame ID"),
    "object": ("OBJECT",),
    "ra": ("RA2000", "RA"),
    "dec": ("DEC2000", "DEC"),
    "date_obs": ("DATE-OBS", "Date"),
    "exptime": ("EXPTIME", "Exposure"),
    "filter": ("FILTER01", "FILTER", "Filter/Grism"),
    "instrument": ("INSTRUME", "Instrument"),
}
OPTIONAL = {"ut_start": ("UT-STR", "UT")}


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-/]", "", name).lower()


def _find_columns(header: list[str], path: Path) -> dict[str, str]:
    by_norm = {_norm(h): h for h in header}
    found: dict[str, str] = {}
    for ours, spellings in {**REQUIRED, **OPTIONAL}.items():
        match = next((by_norm[_norm(s)] for s in spellings if _norm(s) in by_norm), None)
        if match is not None:
            found[ours] = match
        elif ours in REQUIRED:
            raise ValueError(f"{path}: SMOKA export has no {spellings[0]} column (also accepted:"
                             f" {', '.join(spellings[1:]) or 'none'}); its columns are "
                             f"{', '.join(header)}")
    return found


def _angle(text: str, hours: bool, path: Path, row: int, column: str) -> float:
    try:
        if ":" in text or " " in text.strip():
            return Angle(text, unit=u.hourangle if hours else u.deg).deg
        return float(text)
    except ValueError:
        raise ValueError(f"{path}: row {row}, column {column}: not an angle: {text!r}") from None


def read_export(path: str | Path) -> tuple[Table, bytes]:
    """The export as a Table with units, and the file's bytes (for provenance)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such SMOKA export file")
    body = path.read_bytes()
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text: {err}") from None
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not lines:
        raise ValueError(f"{path}: SMOKA export is empty")
    delimiter = "\t" if lines[0].count("\t") > lines[0].count(",") else ","
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter))
    header = [h.strip() for h in rows[0]]
    cols = _find_columns(header, path)
    data = rows[1:]
    for number, row in enumerate(data, start=1):
        if len(row) != len(header):
            raise ValueError(f"{path}: row {number} has {len(row)} fields, the header "
                             f"{len(header)}")
    index = {name: header.index(col) for name, col in cols.items()}

    def values(name: str) -> list[str]:
        return [row[index[name]].strip() for row in data]

    table = Table()
    table["frame_id"] = Column(values("frame_id"), dtype=str)
    table["object"] = Column(values("object"), dtype=str)
    table["ra"] = Column([_angle(v, True, path, i, cols["ra"])
                          for i, v in enumerate(values("ra"), 1)], unit=u.deg, dtype=float)
    table["dec"] = Column([_angle(v, False, path, i, cols["dec"])
                           for i, v in enumerate(values("dec"), 1)], unit=u.deg, dtype=float)
    dates = values("date_obs")
    if "ut_start" in index:
        dates = [f"{d}T{t}" if t else d for d, t in zip(dates, values("ut_start"), strict=True)]
    table["date_obs"] = Column(dates, dtype=str)
    try:
        exptime = [float(v) for v in values("exptime")]
    except ValueError as err:
        raise ValueError(f"{path}: column {cols['exptime']}: {err}") from None
    table["exptime"] = Column(np.array(exptime, dtype=float), unit=u.s)
    table["filter"] = Column(values("filter"), dtype=str)
    table["instrument"] = Column(values("instrument"), dtype=str)
    used = set(cols.values())
    for position, name in enumerate(header):
        if name not in used and name not in table.colnames:
            table[name] = Column([row[position].strip() for row in data], dtype=str)
    return table, body


def fetch(config: SourceConfig, out_dir: Path, **options: Any) -> FetchResult:
    """Reads a SMOKA export and saves it as the table ``subaru_frames`` (no network).

    Options:

    - ``export`` (required): path of the result list saved from the SMOKA web search (CSV or
      tab-separated).

    ``config`` is accepted for the common signature; nothing in it is used.
    """
    unknown = set(options) - {"export"}
    if unknown:
        raise ValueError(f"{NAME}: unknown option(s) {sorted(unknown)}; known: ['export']")
    if not options.get("export"):
        raise ValueError(f"{NAME}: SMOKA has no query API; save the search result list from "
                         "smoka.nao.ac.jp and pass it as the option export=PATH")
    path = Path(options["export"]).expanduser().resolve()
    table, body = read_export(path)
    record = Provenance.create(NAME, path.as_uri(), body, method="READ",
                               libraries=("astropy",), content_type="text/csv")
    result = FetchResult(NAME, tables={"subaru_frames": table}, provenance=[record])
    result.save(out_dir)
    return result
