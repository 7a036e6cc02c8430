"""TAP (IVOA Table Access Protocol) queries shared by the archive clients: ADQL quoting, cones,
synchronous queries with error documents and overflow detected, documented units filled in."""

from __future__ import annotations

import io

import astropy.units as u
from astropy.io.votable import parse
from astropy.table import Table

from astrojax.data.sources.errors import ReplyValidationError
from astrojax.data.sources.http import HttpClient
from astrojax.data.sources.reply import Reply


def adql_string(value: str) -> str:
    """An ADQL string literal (single quotes doubled)."""
    return "'" + str(value).replace("'", "''") + "'"


def cone(ra_col: str, dec_col: str, ra: float, dec: float, radius_deg: float) -> str:
    return (f"CONTAINS(POINT('ICRS', {ra_col}, {dec_col}), "
            f"CIRCLE('ICRS', {ra!r}, {dec!r}, {radius_deg!r})) = 1")


def tap_sync(client: HttpClient, path: str, adql: str, max_rows: int) -> tuple[Table, Reply]:
    """Runs ADQL on a TAP ``sync`` endpoint; returns the VOTable as a Table and the reply.

    A TAP error document (``QUERY_STATUS=ERROR``, often with status 200) is a
    :class:`ReplyValidationError` carrying the service's message. ``table.meta["overflow"]`` is
    True when the service stopped at ``max_rows`` (``QUERY_STATUS=OVERFLOW``).
    """
    params = {"REQUEST": "doQuery", "LANG": "ADQL", "FORMAT": "votable", "MAXREC": max_rows,
              "QUERY": adql}
    reply = client.get(path, params, expect="votable")
    url = client.url_for(path)
    try:
        votable = parse(io.BytesIO(reply.body), verify="ignore")
    except Exception as err:  # astropy raises many types for a malformed VOTable
        raise ReplyValidationError(client.source, url, f"unreadable VOTable: {err}",
                                   reason="parse") from None
    status, message = "OK", ""
    for resource in votable.resources:
        for info in resource.infos:
            if info.name == "QUERY_STATUS":
                status, message = info.value, (info.content or "").strip()
    if status == "ERROR":
        raise ReplyValidationError(client.source, url, f"TAP query failed: {message or status}",
                                   reason="parse")
    tables = list(votable.iter_tables())
    if not tables:
        raise ReplyValidationError(client.source, url, "TAP reply holds no table",
                                   reason="parse")
    table = tables[0].to_table()
    table.meta["overflow"] = status == "OVERFLOW"
    table.meta["query"] = adql
    return table, reply


def set_units(table: Table, units: dict[str, u.UnitBase]) -> Table:
    """Gives each named column its documented unit where the reply gave none or a bad one."""
    for name, unit in units.items():
        if name in table.colnames:
            current = table[name].unit
            if current is None or isinstance(current, u.UnrecognizedUnit):
                table[name].unit = unit
    return table
