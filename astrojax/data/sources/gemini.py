"""Gemini Observatory Archive: file summaries from the JSON API (``/jsonsummary/...``).

REST, not astroquery: ``astroquery.gemini`` builds the same ``jsonsummary`` URL but turns every
value into a string (no numbers, no units), does its own HTTP without our retries and cache, and
copies its server into a module-level URL helper at import time (a test server must patch it).
The API is one GET whose selection is path segments (``canonical/NotFail/GMOS-N/20070221/
object=M101``, see archive.gemini.edu/help/api.html), so we build the path, validate each
segment, and type the JSON list ourselves with the documented units: ``exposure_time`` in s,
``ra``/``dec`` in deg, ``central_wavelength`` in micron, ``data_size`` in bytes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import astropy.units as u
import numpy as np
from astropy.table import MaskedColumn, Table

from astrojax.data.sources.config import SourceConfig
from astrojax.data.sources.errors import ReplyValidationError
from astrojax.data.sources.http import HttpClient
from astrojax.data.sources.reply import Reply
from astrojax.data.sources.result import FetchResult

NAME = "gemini"
DEFAULT_BASE_URL = "https://archive.gemini.edu"

# (column, kind, unit): the jsonsummary fields we keep, typed.
SCHEMA: tuple[tuple[str, str, u.UnitBase | None], ...] = (
    ("filename", "str", None), ("data_label", "str", None), ("observation_id", "str", None),
    ("program_id", "str", None), ("object", "str", None), ("instrument", "str", None),
    ("telescope", "str", None), ("ut_datetime", "str", None),
    ("exposure_time", "float", u.s), ("ra", "float", u.deg), ("dec", "float", u.deg),
    ("airmass", "float", None), ("filter_name", "str", None),
    ("wavelength_band", "str", None), ("central_wavelength", "float", u.micron),
    ("disperser", "str", None), ("mode", "str", None), ("observation_class", "str", None),
    ("observation_type", "str", None), ("qa_state", "str", None), ("reduction", "str", None),
    ("release", "str", None), ("data_size", "int", u.byte), ("data_md5", "str", None),
)
QA_STATES = ("NotFail", "AnyQA", "Pass", "Lucky", "Win", "Usable", "UndefinedQA", "Fail")
_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_DATE = re.compile(r"^\d{8}(-\d{8})?$")


def selection_path(*, instrument: str | None = None, object_name: str | None = None,
                   date: str | None = None, program_id: str | None = None,
                   qa: str = "NotFail") -> str:
    """``jsonsummary/canonical/QA/...``: each selection a checked, URL-quoted path segment."""
    if qa not in QA_STATES:
        raise ValueError(f"{NAME}: option qa must be one of {', '.join(QA_STATES)}, got {qa!r}")
    segments = ["jsonsummary", "canonical", qa]
    for option, value in (("instrument", instrument), ("program_id", program_id)):
        if value:
            if not _TOKEN.match(value):
                raise ValueError(f"{NAME}: option {option} must be letters, digits and -_.+, "
                                 f"got {value!r}")
            segments.append(value)
    if date:
        date = date.replace("-", "") if re.match(r"^\d{4}-\d{2}-\d{2}$", date) else date
        if not _DATE.match(date):
            raise ValueError(f"{NAME}: option date must be YYYYMMDD or YYYYMMDD-YYYYMMDD, "
                             f"got {date!r}")
        segments.append(date)
    if object_name:
        if "/" in object_name:
            raise ValueError(f"{NAME}: option object must not contain '/', got {object_name!r}")
        segments.append("object=" + quote(object_name, safe=""))
    if len(segments) == 3:
        raise ValueError(f"{NAME}: give at least one of the options instrument, object, date, "
                         "program_id (the archive refuses open searches)")
    return "/".join(segments)


def summary_table(rows: list[dict[str, Any]]) -> Table:
    """The jsonsummary rows as a typed Table (missing or null values masked)."""
    table = Table()
    for name, kind, unit in SCHEMA:
        values = [row.get(name) for row in rows]
        mask = [v is None for v in values]
        if kind == "float":
            data = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
        elif kind == "int":
            data = np.array([0 if v is None else int(v) for v in values], dtype=np.int64)
        else:
            data = np.array(["" if v is None else str(v) for v in values], dtype=str)
        table[name] = MaskedColumn(data, mask=mask, unit=unit)
    return table


def query_gemini(client: HttpClient, **selection: Any) -> tuple[Table, Reply]:
    """One jsonsummary request (``selection`` as for :func:`selection_path`)."""
    path = selection_path(**selection)
    reply = client.get(path, expect="json")
    rows = reply.json()
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        what = f"an object with keys {sorted(rows)[:5]}" if isinstance(rows, dict) else \
            type(rows).__name__
        raise ReplyValidationError(NAME, client.url_for(path), "expected a JSON list of file "
                                   f"summaries, got {what}", reason="parse")
    table = summary_table(rows)
    table.meta["selection"] = path
    return table, reply


def fetch(config: SourceConfig, out_dir: Path, **options: Any) -> FetchResult:
    """Queries the Gemini archive and saves the table ``gemini_files``.

    Options (at least one of the first four):

    - ``instrument``: e.g. ``GMOS-N``, ``GMOS-S``, ``NIRI``, ``F2``, ``GNIRS``; default none.
    - ``object``: target name as entered in the Phase II (``*`` wildcards allowed); default none.
    - ``date``: ``YYYYMMDD``, ``YYYY-MM-DD`` or ``YYYYMMDD-YYYYMMDD`` (UT); default none.
    - ``program_id``: e.g. ``GN-2007A-Q-72``; default none.
    - ``qa``: QA selection, one of ``QA_STATES``; default ``NotFail``.

    Only canonical files (the current version of each) are listed.
    """
    known = {"instrument", "object", "date", "program_id", "qa"}
    unknown = set(options) - known
    if unknown:
        raise ValueError(f"{NAME}: unknown option(s) {sorted(unknown)}; known: {sorted(known)}")
    with config.client(NAME, DEFAULT_BASE_URL) as client:
        table, reply = query_gemini(
            client, instrument=options.get("instrument"), object_name=options.get("object"),
            date=None if options.get("date") is None else str(options["date"]),
            program_id=options.get("program_id"), qa=str(options.get("qa", "NotFail")))
    result = FetchResult(NAME, tables={"gemini_files": table}, provenance=[reply.provenance])
    result.save(out_dir)
    return result
