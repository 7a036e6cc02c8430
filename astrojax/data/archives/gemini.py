"""Gemini Observatory Archive: file summaries from the JSON API (``/jsonsummary/...``).

REST, not astroquery: ``astroquery.gemini`` builds the same ``jsonsummary`` URL but turns every
value into a string (no numbers, no units), does its own HTTP without our retries and cache, and
copies its server into a module-level URL helper at import time (a test server must patch it).
The API is one GET whose selection is path segments (``canonical/NotFail/GMOS-N/20070221/
object=M101``, see archive.gemini.edu/help/api.html), so we build the path, validate each
segment, and type the JSON list ourselves with the documented units: ``exposure_time`` in s,
``ra``/``dec`` in deg, ``central_wavelength`` in micron, ``data_size`` in bytes.

Truncation. The archive cuts every search at a row limit (its FitsStorage server,
``list_headers``): 500 files for an *open* search, 2,000 for a *closed* one, where closed means
the selection holds a date or date range, a program, observation or data-label id, or a file
name (here: the ``date`` or ``program_id`` option). It flags only some of these cuts: on an
open search it adds ``"results_truncated": true`` to the last row of *every* reply, cut or not,
and a closed search cut at 2,000 carries no flag at all. So the flag alone proves nothing;
:func:`truncation` treats a reply as cut when it holds as many rows as the limit for its kind
of search (500 when open or flagged, else 2,000). A cut is reported in ``table.meta``
(``truncated``, ``row_limit``), in the reply's provenance (``truncated``) and in the fetch's
``skipped`` list, with how to narrow the search: add a ``date`` (a range like
``20190101-20190131``, which also raises the limit to 2,000) or a ``program_id``, and split a
long date range into shorter ones. The archive sorts an open search newest first and a closed
one oldest first, so a cut drops the oldest or the newest files respectively.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import astropy.units as u
import numpy as np
from astropy.table import MaskedColumn, Table

from astrojax.data.archives.config import SourceConfig
from astrojax.data.archives.http import HttpClient
from astrojax.data.archives.reply import Reply
from astrojax.data.archives.result import FetchResult
from astrojax.data.archives.validate import InvalidReply

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
OPEN_ROW_LIMIT = 500  # FitsStorage fits_open_result_limit
CLOSED_ROW_LIMIT = 2000  # FitsStorage fits_closed_result_limit
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
                         "program_id (with none, the archive lists only its 500 newest files)")
    return "/".join(segments)


def row_limit(rows: list[dict[str, Any]], *, closed: bool) -> int:
    """The archive's row limit for this reply: 2,000 for a ``closed`` selection (a date or
    program id), else 500; a ``results_truncated`` flag means the archive saw an open search."""
    flagged = any(row.get("results_truncated") for row in rows)
    return OPEN_ROW_LIMIT if flagged or not closed else CLOSED_ROW_LIMIT


def truncation(rows: list[dict[str, Any]], *, closed: bool) -> str | None:
    """Why the archive may have cut this reply short, or None when it holds every match.

    A reply is cut when it holds as many rows as its :func:`row_limit`; the archive's own
    ``results_truncated`` flag only says the search was open (see the module docstring).
    """
    limit = row_limit(rows, closed=closed)
    if len(rows) < limit:
        return None
    if limit == OPEN_ROW_LIMIT:  # the archive sorts an open search newest first
        return (f"the archive returns at most {limit} files for a search without a date or "
                f"program id (the newest {limit}) and returned {limit}, so more may match; add "
                "a date range (date=YYYYMMDD-YYYYMMDD) or a program_id, which narrows the "
                f"search and raises the limit to {CLOSED_ROW_LIMIT}")
    return (f"the archive returns at most {limit} files for a search with a date or program "
            f"id (the oldest {limit}) and returned {limit}, so more may match; split the date "
            "range (date=YYYYMMDD-YYYYMMDD) into shorter ones or add instrument/object")


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


def summary_check(reply: Reply) -> bool:
    """The client ``check``: anything but a JSON list of file summaries (an error object)
    raises and is never cached."""
    rows = reply.json()
    if isinstance(rows, list) and all(isinstance(r, dict) for r in rows):
        return True
    what = f"an object with keys {sorted(rows)[:5]}" if isinstance(rows, dict) else \
        type(rows).__name__
    raise InvalidReply("service_error" if isinstance(rows, dict) and "error" in rows else "parse",
                       f"expected a JSON list of file summaries, got {what}")


def query_gemini(client: HttpClient, **selection: Any) -> tuple[Table, Reply]:
    """One jsonsummary request (``selection`` as for :func:`selection_path`).

    When the archive may have cut the list short, ``table.meta["truncated"]`` is True and the
    returned reply's provenance says why (:func:`truncation`).
    """
    path = selection_path(**selection)
    reply = client.get(path, expect="json", check=summary_check)
    rows = reply.json()
    table = summary_table(rows)
    closed = bool(selection.get("date") or selection.get("program_id"))
    cut = truncation(rows, closed=closed)
    table.meta.update(selection=path, truncated=cut is not None,
                      row_limit=row_limit(rows, closed=closed))
    if cut is not None:
        reply = dataclasses.replace(reply, provenance=dataclasses.replace(reply.provenance,
                                                                          truncated=cut))
    return table, reply


def fetch(config: SourceConfig, out_dir: Path, **options: Any) -> FetchResult:
    """Queries the Gemini archive and saves the table ``gemini_files``.

    Options (at least one of the first four):

    - ``instrument``: e.g. ``GMOS-N``, ``GMOS-S``, ``NIRI``, ``F2``, ``GNIRS``; default none.
    - ``object``: target name as entered in the Phase II (``*`` wildcards allowed); default none.
    - ``date``: ``YYYYMMDD``, ``YYYY-MM-DD`` or ``YYYYMMDD-YYYYMMDD`` (UT); default none.
    - ``program_id``: e.g. ``GN-2007A-Q-72``; default none.
    - ``qa``: QA selection, one of ``QA_STATES``; default ``NotFail``.

    Only canonical files (the current version of each) are listed. The archive returns at most
    500 files for a search without a date or program id and 2,000 with one; a reply that hits
    the limit is reported in ``skipped`` and the provenance (narrow the search with a date
    range or program_id, or split the range).
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
    if reply.provenance.truncated:
        result.skipped.append(f"gemini_files files after the first {len(table)}: "
                              f"{reply.provenance.truncated}")
    result.save(out_dir)
    return result
