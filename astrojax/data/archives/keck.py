"""Keck Observatory Archive (KOA): public frame metadata per instrument over TAP.

REST, not astroquery: astroquery 0.4.11 has no KOA module (``astroquery.ipac`` holds IRSA, NED
and NExScI, not KOA), and KOA's documented programmatic interface besides its PyKOA package is
an IVOA TAP service (``koa.ipac.caltech.edu/TAP/sync``), one table per instrument
(``koa_hires``, ``koa_nirspec``, ...). We send ADQL through our :class:`HttpClient` and read
the VOTable with astropy; ``ra``/``dec`` are set to degrees and ``elaptime`` to seconds where
the reply gives no readable unit (KOA's column documentation). KOA runs nexsciTAP, like the
NASA Exoplanet Archive: errors come inside 200 replies and are never cached, and long queries
can run as asynchronous jobs (``mode=async``, ``TAP/async``); see :mod:`.tap`.

Only public metadata is queried. Proprietary KOA data needs a KOA account and a session cookie
(PyKOA's login), which the credential layer does not hold: downloads are not offered.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

import astropy.units as u
from astropy.table import Table

from astrojax.data.archives.config import SourceConfig
from astrojax.data.archives.http import HttpClient
from astrojax.data.archives.options import int_option, position
from astrojax.data.archives.reply import Reply
from astrojax.data.archives.result import FetchResult
from astrojax.data.archives.tap import SYNC, TapSettings, adql_string, cone, set_units, tap_query

NAME = "koa"
DEFAULT_BASE_URL = "https://koa.ipac.caltech.edu/TAP"

# KOA's instrument tables (koa_<name>); the name goes into the ADQL, so only these are allowed.
INSTRUMENTS = ("deimos", "esi", "hires", "kcwi", "kpf", "lris", "lws", "mosfire", "nirc",
               "nirc2", "nires", "nirspec", "osiris")
COLUMNS = ("koaid", "instrume", "targname", "ra", "dec", "date_obs", "ut", "elaptime",
           "koaimtyp", "progid", "semid", "airmass", "filehand")
UNITS = {"ra": u.deg, "dec": u.deg, "elaptime": u.s}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_dates(value: str) -> tuple[str, str]:
    """``YYYY-MM-DD`` or ``YYYY-MM-DD..YYYY-MM-DD`` as (first, last) night, inclusive."""
    first, _, last = str(value).partition("..")
    last = last or first
    for day in (first, last):
        if not _DATE.match(day):
            raise ValueError(f"{NAME}: option date must be YYYY-MM-DD or "
                             f"YYYY-MM-DD..YYYY-MM-DD, got {value!r}")
        try:
            datetime.date.fromisoformat(day)
        except ValueError:
            raise ValueError(f"{NAME}: option date holds an impossible day {day!r}") from None
    if last < first:
        raise ValueError(f"{NAME}: option date range ends before it starts: {value!r}")
    return first, last


def query_koa(client: HttpClient, instrument: str, *, ra: float | None = None,
              dec: float | None = None, radius_deg: float = 0.1,
              dates: tuple[str, str] | None = None, target: str | None = None,
              max_rows: int = 1000, tap: TapSettings = SYNC) -> tuple[Table, Reply]:
    """Frames of one instrument matching a cone, a night range and/or a target name."""
    instrument = instrument.lower()
    if instrument not in INSTRUMENTS:
        raise ValueError(f"{NAME}: option instrument must be one of {', '.join(INSTRUMENTS)}, "
                         f"got {instrument!r}")
    where = []
    if ra is not None and dec is not None:
        where.append(cone("ra", "dec", ra, dec, radius_deg))
    if dates is not None:
        where.append(f"date_obs BETWEEN {adql_string(dates[0])} AND {adql_string(dates[1])}")
    if target:
        where.append(f"targname = {adql_string(target)}")
    if not where:
        raise ValueError(f"{NAME}: give at least one of the options ra/dec, date, target")
    adql = (f"SELECT TOP {max_rows} {', '.join(COLUMNS)} FROM koa_{instrument} "
            f"WHERE {' AND '.join(where)} ORDER BY date_obs")
    table, reply = tap_query(client, "", adql, max_rows, tap)
    return set_units(table, UNITS), reply


def fetch(config: SourceConfig, out_dir: Path, **options: Any) -> FetchResult:
    """Queries KOA and saves the table ``koa_<instrument>``.

    Options:

    - ``instrument``: KOA instrument (``hires``, ``nirspec``, ... see ``INSTRUMENTS``); default
      ``hires``.
    - ``ra``, ``dec``: cone centre in degrees; default none. ``radius_deg``: default 0.1.
    - ``date``: night ``YYYY-MM-DD`` or range ``YYYY-MM-DD..YYYY-MM-DD`` (UT, inclusive);
      default none.
    - ``target``: target name as in the TARGNAME header, exact; default none.
    - ``max_rows``: row limit (TOP and MAXREC); default 1000.
    - ``mode``: ``sync`` (default) or ``async`` (a UWS job, polled; for long queries).

    At least one of ra/dec, date or target is required.
    """
    known = {"instrument", "ra", "dec", "radius_deg", "date", "target", "max_rows", "mode"}
    unknown = set(options) - known
    if unknown:
        raise ValueError(f"{NAME}: unknown option(s) {sorted(unknown)}; known: {sorted(known)}")
    instrument = str(options.get("instrument", "hires")).lower()
    cone_ = position(options.get("ra"), options.get("dec"), options.get("radius_deg", 0.1),
                     NAME)
    dates = parse_dates(options["date"]) if options.get("date") else None
    max_rows = int_option("max_rows", options.get("max_rows", 1000), 1)
    tap = TapSettings.create(config, NAME, options.get("mode"))
    ra, dec, radius = cone_ if cone_ else (None, None, 0.1)
    with config.client(NAME, DEFAULT_BASE_URL) as client:
        table, reply = query_koa(client, instrument, ra=ra, dec=dec, radius_deg=radius,
                                 dates=dates, target=options.get("target"), max_rows=max_rows,
                                 tap=tap)
    result = FetchResult(NAME, tables={f"koa_{instrument}": table},
                         provenance=[reply.provenance])
    if table.meta.get("overflow"):
        result.skipped.append(f"rows beyond {max_rows}: the query hit max_rows; raise it or "
                              "narrow the search")
    result.save(out_dir)
    return result
