"""UniProtKB protein entries through the UniProt REST API (rest.uniprot.org), as a table.

REST through our :class:`HttpClient` (astroquery has no UniProt module). ``/uniprotkb/search``
answers ``format=tsv`` pages of up to 500 entries; the next page is the URL in the reply's
``Link: <...>; rel="next"`` header (an opaque cursor), followed until it is absent or
``max_entries`` rows are in hand. ``X-Total-Results`` gives the total.

Both headers come from :attr:`Reply.headers`, which the response cache keeps, so an offline
rerun pages through cached replies too.

Library use: ``search(client, "organism_id:2242 AND reviewed:true", max_entries=100)``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import astropy.units as u
from astropy.table import Column, Table

from astrojax.data.archives.config import SourceConfig
from astrojax.data.archives.errors import ReplyValidationError, SourceError
from astrojax.data.archives.http import HttpClient
from astrojax.data.archives.provenance import Provenance
from astrojax.data.archives.reply import Reply
from astrojax.data.archives.result import FetchResult
from astrojax.data.archives.validate import CONTENT_TYPES

NAME = "uniprot"
DEFAULT_BASE_URL = "https://rest.uniprot.org"
PAGE_SIZE = 500  # the service's maximum page size
DEFAULT_FIELDS = ("accession,id,reviewed,protein_name,gene_names,organism_name,organism_id,"
                  "length,mass,ec")
# TSV header label -> (column, dtype, unit, description)
KNOWN_COLUMNS: dict[str, tuple[str, type, Any, str]] = {
    "Entry": ("accession", str, None, "UniProtKB accession"),
    "Entry Name": ("id", str, None, "UniProtKB entry name"),
    "Reviewed": ("reviewed", bool, None, "True for Swiss-Prot (reviewed) entries"),
    "Protein names": ("protein_name", str, None, "recommended and alternative names"),
    "Gene Names": ("gene_names", str, None, "gene names, space separated"),
    "Organism": ("organism", str, None, "source organism"),
    "Organism (ID)": ("organism_id", int, None, "NCBI Taxonomy id of the organism"),
    "Length": ("length", int, None, "sequence length in amino acids"),
    "Mass": ("mass", float, u.Da, "molecular mass"),
    "EC number": ("ec", str, None, "EC numbers, '; ' separated"),
}
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


def uniprot_client(config: SourceConfig) -> HttpClient:
    return config.client(NAME, DEFAULT_BASE_URL)


def next_link(header: str | None) -> str | None:
    """The ``rel="next"`` URL of a Link header, or None."""
    match = _NEXT.search(header or "")
    return match.group(1) if match else None


def _column_name(label: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", label.lower()).strip("_") or "column"


def _convert(value: str, dtype: type) -> Any:
    value = value.strip()
    if dtype is bool:
        return value.lower() == "reviewed"
    if dtype is int:
        return int(value) if value else -1
    if dtype is float:
        return float(value.replace(",", "")) if value else float("nan")
    return value


def parse_tsv(text: str) -> tuple[list[str], list[list[str]]]:
    """The header labels and rows of one TSV page."""
    rows = [row for row in csv.reader(io.StringIO(text, newline=""), delimiter="\t") if row]
    return (rows[0], rows[1:]) if rows else ([], [])


def entries_table(labels: list[str], rows: list[list[str]]) -> Table:
    """UniProt TSV rows as a table: known columns renamed, typed and given units."""
    table = Table()
    for index, label in enumerate(labels):
        name, dtype, unit, description = KNOWN_COLUMNS.get(
            label, (_column_name(label), str, None, label))
        values = [_convert(row[index], dtype) for row in rows]
        table[name] = Column(values, dtype=dtype, unit=unit, description=description)
    return table


def _page(client: HttpClient, url: str, params: Mapping[str, Any] | None
          ) -> tuple[Reply | None, str | None, int | None]:
    """One page, its next link and the total (from the reply's headers, which the cache keeps,
    so an offline rerun pages too). No page (None) when the server says
    ``X-Total-Results: 0`` with an empty body; any other empty body is an error."""
    # expect="text" lets an empty body through to be judged here, with TSV content types.
    reply = client.get(url, params, expect="text", content_types=CONTENT_TYPES["tsv"])
    total = reply.headers.get("X-Total-Results")
    if not reply.body.strip():
        if total == "0":
            return None, None, 0
        raise ReplyValidationError(NAME, reply.provenance.url, "expected tsv but the body is "
                                   "empty", reason="empty")
    return reply, next_link(reply.headers.get("Link")), int(total) if total else None


def search(client: HttpClient, query: str, *, fields: str = DEFAULT_FIELDS,
           max_entries: int = 10_000) -> tuple[Table, list[Provenance], int | None]:
    """UniProtKB entries matching ``query``; returns the table, provenance and the total."""
    url: str | None = "uniprotkb/search"
    params: dict[str, Any] | None = {"query": query, "format": "tsv", "fields": fields,
                                     "size": min(PAGE_SIZE, max_entries)}
    labels: list[str] = []
    rows: list[list[str]] = []
    provenance: list[Provenance] = []
    total = None
    while url and len(rows) < max_entries:
        reply, url, count = _page(client, url, params)
        params = None  # the next link carries the whole query
        total = count if count is not None else total
        if reply is None:
            break
        provenance.append(reply.provenance)
        page_labels, page_rows = parse_tsv(reply.text())
        if labels and page_labels != labels:
            raise SourceError(NAME, reply.provenance.url, "a later page has different "
                              f"columns: {page_labels} after {labels}")
        labels = page_labels
        rows += page_rows
    table = entries_table(labels, rows[:max_entries])
    table.meta.update({"query": query, "total": total})
    return table, provenance, total


def fetch(config: SourceConfig, out_dir: Path, *, query: str = "",
          fields: str = DEFAULT_FIELDS, max_entries: int | str = 10_000) -> FetchResult:
    """Searches UniProtKB and saves the entries as the table ``uniprot_entries``.

    Options:
        query: a UniProtKB query, e.g. ``"organism_id:2242 AND reviewed:true"`` (required).
        fields: comma-separated return fields (default
            ``accession,id,reviewed,protein_name,gene_names,organism_name,organism_id,length,
            mass,ec``).
        max_entries: stop after this many entries (default 10000); the rest go to ``skipped``.

    The table's columns, for the default fields: ``accession``, ``id``, ``reviewed`` (bool),
    ``protein_name``, ``gene_names``, ``organism``, ``organism_id``, ``length`` (amino acids),
    ``mass`` (Da), ``ec``. Other fields keep UniProt's header, snake_cased, as strings.
    """
    if not query.strip():
        raise ValueError(f"{NAME}: option query is required (a UniProtKB query)")
    max_entries = int(max_entries)
    if max_entries < 1:
        raise ValueError(f"{NAME}: max_entries must be >= 1, got {max_entries}")
    result = FetchResult(NAME)
    with uniprot_client(config) as client:
        table, provenance, total = search(client, query, fields=fields,
                                          max_entries=max_entries)
    result.tables["uniprot_entries"] = table
    result.provenance += provenance
    if not len(table):
        result.skipped.append(f"{query}: no UniProtKB entries match")
    elif total is not None and total > len(table):
        result.skipped.append(f"{query}: {total - len(table)} of {total} entries beyond "
                              f"max_entries={max_entries}")
    result.save(out_dir)
    return result
