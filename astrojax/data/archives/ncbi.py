"""NCBI Entrez (GenBank nucleotide and taxonomy records) through the E-utilities REST API.

REST through our :class:`HttpClient`, not Biopython (which is not a dependency): we follow the
etiquette Biopython's ``Bio.Entrez`` enforces with our own client. Every request carries
``tool=astrojax`` and, when given, ``email`` (the ``email`` option or ``$NCBI_EMAIL``), and waits
on the shared per-host :class:`RateLimiter` at NCBI's published limits: 3 requests per second,
10 with an API key (``NCBI_API_KEY`` from the environment or keyring, sent as ``api_key``
through :class:`ApiKeyParam`, never cached or recorded).

The flow is the one NCBI documents for large result sets: ``esearch.fcgi`` with
``usehistory=y`` puts the matching UIDs on the history server and returns ``WebEnv`` and
``query_key``; ``esummary.fcgi`` (JSON document summaries) and, optionally, ``efetch.fcgi``
(``rettype=gb`` GenBank flat files) then read it in pages of ``retmax``. Online, the search is
always sent afresh (a cached ``WebEnv`` may have expired on NCBI's side) and its reply is stored,
so an offline rerun replays the search and every page from the cache.

E-utilities report many failures inside an HTTP 200 reply: ``{"error": ...}``, an ``ERROR`` field
in ``esearchresult``/``result``, esummary's ``{"esummaryresult": ["..."]}``, or plain text in
place of GenBank records. Each request passes a check (:func:`eutils_check`,
:func:`genbank_check`) that the client runs before caching, so such a reply is raised as a
``service_error`` and never stored (a transient "database is not available" is not replayed).

Library use: ``history = esearch(client, "nuccore", term)``, ``summaries(client, history)``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from astropy.table import Column, Table

from astrojax.data.archives.config import SourceConfig
from astrojax.data.archives.credentials import ApiKeyParam, Credentials
from astrojax.data.archives.errors import SourceError
from astrojax.data.archives.files import sanitize_filename
from astrojax.data.archives.http import HttpClient
from astrojax.data.archives.options import int_option, yes_no
from astrojax.data.archives.provenance import Provenance
from astrojax.data.archives.reply import Reply
from astrojax.data.archives.result import FetchResult
from astrojax.data.archives.validate import InvalidReply

NAME = "ncbi"
DEFAULT_BASE_URL = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"
TOOL = "astrojax"
API_KEY = "NCBI_API_KEY"
RATE_WITHOUT_KEY = 3.0  # requests per second, NCBI's published limits
RATE_WITH_KEY = 10.0
DATABASES = ("nuccore", "taxonomy")

# (our column, esummary field, description) per database; dates are turned into ISO strings.
_COLUMNS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "nuccore": (
        ("accession", "accessionversion", "accession.version"),
        ("uid", "uid", "NCBI UID (GI number)"),
        ("title", "title", "record definition line"),
        ("organism", "organism", "source organism"),
        ("taxid", "taxid", "NCBI Taxonomy id of the organism"),
        ("length", "slen", "sequence length in base pairs (bp)"),
        ("moltype", "moltype", "molecule type (dna, rna, ...)"),
        ("topology", "topology", "linear or circular"),
        ("sourcedb", "sourcedb", "insd (GenBank/ENA/DDBJ) or refseq"),
        ("create_date", "createdate", "date the record was created (ISO)"),
        ("update_date", "updatedate", "date the record was last updated (ISO)"),
    ),
    "taxonomy": (
        ("taxid", "taxid", "NCBI Taxonomy id"),
        ("scientific_name", "scientificname", "scientific name"),
        ("common_name", "commonname", "common name"),
        ("rank", "rank", "taxonomic rank"),
        ("division", "division", "taxonomic division"),
        ("genbank_division", "genbankdivision", "GenBank division"),
        ("status", "status", "active, merged or deleted"),
        ("modification_date", "modificationdate", "date the node was last changed (ISO)"),
    ),
}
_INT_FIELDS = {"uid", "taxid", "slen"}
_DATE_FIELDS = {"createdate", "updatedate", "modificationdate"}


@dataclasses.dataclass(frozen=True)
class History:
    """A search stored on NCBI's history server: what ``esummary``/``efetch`` page through."""

    db: str
    term: str
    count: int
    webenv: str
    query_key: str
    provenance: Provenance


def request_rate(credentials: Credentials) -> float:
    """NCBI's limit for this user: 10 requests/s with an API key, 3 without."""
    return RATE_WITH_KEY if credentials.get(API_KEY) else RATE_WITHOUT_KEY


def ncbi_client(config: SourceConfig, credentials: Credentials | None = None) -> HttpClient:
    """A client at NCBI's rate for these credentials, sending the API key when there is one."""
    credentials = credentials or Credentials()
    return config.client(NAME, DEFAULT_BASE_URL, auth=ApiKeyParam(API_KEY, "api_key"),
                         credentials=credentials, rate_per_second=request_rate(credentials))


def _etiquette(email: str | None) -> dict[str, str]:
    return {"tool": TOOL, **({"email": email} if email else {})}


def _fresh_get(client: HttpClient, path: str, params: Mapping[str, Any], check) -> Reply:
    """GET past the cache but store the reply, so offline reruns replay it (WebEnv expires)."""
    return client.get(path, params, expect="json", refresh=True, check=check)


def _error_text(document: Any, result_key: str) -> str | None:
    """The error an E-utilities JSON reply reports, or None when it is a result."""
    if not isinstance(document, dict):
        return f"expected a JSON object, got {type(document).__name__}"
    if "error" in document:  # e.g. {"error": "API rate limit exceeded", ...}
        return str(document["error"])
    part = document.get(result_key)
    if isinstance(part, list):  # esummary's error form: {"esummaryresult": ["Invalid uid"]}
        return "; ".join(map(str, part))
    if not isinstance(part, dict):
        return f"reply has no {result_key!r} object"
    if part.get("ERROR"):
        return str(part["ERROR"])
    return None


def eutils_check(result_key: str):
    """The client ``check`` for an E-utilities JSON reply whose result sits at ``result_key``."""

    def check(reply: Reply) -> bool:
        error = _error_text(reply.json(), result_key)
        if error is not None:
            raise InvalidReply("service_error", f"E-utilities error: {error}")
        return True

    return check


def genbank_check(reply: Reply) -> bool:
    """The client ``check`` for efetch ``rettype=gb``: the text must be GenBank records."""
    try:
        split_genbank(reply.text())
    except ValueError as err:  # an error message in place of records
        raise InvalidReply("service_error",
                           f"efetch did not return GenBank records: {err}") from None
    return True


def esearch(client: HttpClient, db: str, term: str, *, email: str | None = None) -> History:
    """Runs ``term`` against ``db`` and keeps the UIDs on the history server."""
    if db not in DATABASES:
        raise ValueError(f"{NAME}: db must be one of {DATABASES}, got {db!r}")
    params = {"db": db, "term": term, "usehistory": "y", "retmax": 0, "retmode": "json",
              **_etiquette(email)}
    reply = _fresh_get(client, "esearch.fcgi", params, eutils_check("esearchresult"))
    result = reply.json()["esearchresult"]
    count = int(result.get("count", 0))
    if count and not (result.get("webenv") and result.get("querykey")):
        raise SourceError(NAME, client.url_for("esearch.fcgi"),
                          "esearch found records but returned no WebEnv/query_key")
    return History(db, term, count, result.get("webenv", ""), str(result.get("querykey", "")),
                   reply.provenance)


def _history_params(history: History, start: int, size: int, email: str | None,
                    **extra: Any) -> dict[str, Any]:
    return {"db": history.db, "WebEnv": history.webenv, "query_key": history.query_key,
            "retstart": start, "retmax": size, **extra, **_etiquette(email)}


def _iso_date(value: Any) -> str:
    """NCBI's ``2020/01/13`` or ``2018/05/09 00:00`` as ``2020-01-13``."""
    text = str(value or "").strip()
    match = re.match(r"(\d{4})/(\d{2})/(\d{2})", text)
    return "-".join(match.groups()) if match else text


def _value(field: str, record: Mapping[str, Any]) -> Any:
    raw = record.get(field)
    if field in _INT_FIELDS:
        try:
            return int(raw)
        except (TypeError, ValueError):
            return -1
    if field in _DATE_FIELDS:
        return _iso_date(raw)
    return "" if raw is None else str(raw)


def summary_table(db: str, records: list[Mapping[str, Any]]) -> Table:
    """An esummary document list as a table (``length`` in base pairs, dates as ISO strings)."""
    table = Table()
    for name, field, description in _COLUMNS[db]:
        values = [_value(field, record) for record in records]
        table[name] = Column(values, dtype=int if field in _INT_FIELDS else str,
                             description=description)
    table.meta["ncbi_db"] = db
    return table


def summaries(client: HttpClient, history: History, *, retmax: int = 200,
              max_records: int | None = None, email: str | None = None,
              ) -> tuple[Table, list[Provenance]]:
    """Document summaries of the stored search, paged by ``retmax``, up to ``max_records``."""
    total = history.count if max_records is None else min(history.count, max_records)
    records: list[Mapping[str, Any]] = []
    provenance = []
    for start in range(0, total, retmax):
        size = min(retmax, total - start)
        reply = client.get("esummary.fcgi", _history_params(history, start, size, email,
                                                             retmode="json", version="2.0"),
                           expect="json", check=eutils_check("result"))
        provenance.append(reply.provenance)
        result = reply.json()["result"]
        for uid in result.get("uids", []):
            record = result.get(str(uid))
            if isinstance(record, dict) and not record.get("error"):
                records.append(record)
    return summary_table(history.db, records), provenance


_VERSION = re.compile(r"^VERSION\s+(\S+)", re.MULTILINE)
_ACCESSION = re.compile(r"^ACCESSION\s+(\S+)", re.MULTILINE)


def split_genbank(text: str) -> list[tuple[str, str]]:
    """(accession.version, record text) for each ``LOCUS ... //`` record of a flat file."""
    records = []
    for chunk in re.split(r"^//[ \t]*\n?", text, flags=re.MULTILINE):
        chunk = chunk.strip("\n")
        if not chunk.strip():
            continue
        if not chunk.startswith("LOCUS"):
            raise ValueError(f"not a GenBank record: {chunk[:80]!r}")
        match = _VERSION.search(chunk) or _ACCESSION.search(chunk)
        name = match.group(1) if match else chunk.split()[1]
        records.append((name, chunk + "\n//\n"))
    return records


def fetch_genbank(client: HttpClient, history: History, directory: Path, *, retmax: int = 200,
                  max_records: int | None = None, email: str | None = None,
                  ) -> tuple[list[Path], list[Provenance]]:
    """GenBank flat files (``efetch rettype=gb``) of a nuccore search, one file per record."""
    if history.db != "nuccore":
        raise ValueError(f"{NAME}: GenBank files come from db=nuccore, not {history.db!r}")
    total = history.count if max_records is None else min(history.count, max_records)
    directory.mkdir(parents=True, exist_ok=True)
    paths, provenance = [], []
    for start in range(0, total, retmax):
        size = min(retmax, total - start)
        reply = client.get("efetch.fcgi", _history_params(history, start, size, email,
                                                           rettype="gb", retmode="text"),
                           expect="text", check=genbank_check)
        provenance.append(reply.provenance)
        for accession, text in split_genbank(reply.text()):
            path = directory / sanitize_filename(f"{accession}.gb")
            path.write_text(text)
            paths.append(path)
    return paths, provenance


def fetch(config: SourceConfig, out_dir: Path, *, term: str = "", db: str = "nuccore",
          retmax: int | str = 200, max_records: int | str = 1000, genbank: str = "no",
          email: str = "", credentials: Credentials | None = None) -> FetchResult:
    """Searches NCBI and saves the summaries (and optionally GenBank files) under ``out_dir``.

    Options:
        term: the Entrez query, e.g. ``"Methanocaldococcus[Organism] AND complete genome"``
            (required).
        db: ``nuccore`` (GenBank/RefSeq nucleotide records, the default) or ``taxonomy``.
        retmax: records per esummary/efetch request (default 200).
        max_records: at most this many records (default 1000); the rest go to ``skipped``.
        genbank: ``yes`` to also save each record's GenBank flat file as
            ``genbank/ACCESSION.gb`` (nuccore only; default ``no``).
        email: your address for NCBI's etiquette (default ``$NCBI_EMAIL``; sent only if set).
        credentials: (library use) where ``NCBI_API_KEY`` is read from; default the
            environment, then the keyring.

    Returns a :class:`FetchResult` with the table ``ncbi_<db>``: for nuccore ``accession``,
    ``uid``, ``title``, ``organism``, ``taxid``, ``length`` (base pairs), ``moltype``,
    ``topology``, ``sourcedb``, ``create_date``, ``update_date``; for taxonomy ``taxid``,
    ``scientific_name``, ``common_name``, ``rank``, ``division``, ``genbank_division``,
    ``status``, ``modification_date``. Dates are ISO strings.
    """
    if not term.strip():
        raise ValueError(f"{NAME}: option term is required (an Entrez query)")
    retmax, max_records = int_option("retmax", retmax, 1), int_option("max_records", max_records, 1)
    want_genbank = yes_no(NAME, "genbank", genbank)
    if want_genbank and db != "nuccore":
        raise ValueError(f"{NAME}: genbank=yes needs db=nuccore, got db={db!r}")
    email = email or os.environ.get("NCBI_EMAIL", "")
    out_dir = Path(out_dir)
    result = FetchResult(NAME)
    with ncbi_client(config, credentials) as client:
        history = esearch(client, db, term, email=email or None)
        result.provenance.append(history.provenance)
        if history.count == 0:
            result.skipped.append(f"{term}: no {db} records match")
        elif history.count > max_records:
            result.skipped.append(f"{term}: {history.count - max_records} of {history.count} "
                                  f"records beyond max_records={max_records}")
        table, provenance = summaries(client, history, retmax=retmax, max_records=max_records,
                                      email=email or None)
        result.provenance += provenance
        table.meta.update({"term": term, "count": history.count})
        result.tables[f"ncbi_{db}"] = table
        if want_genbank and history.count:
            paths, provenance = fetch_genbank(client, history, out_dir / "genbank",
                                              retmax=retmax, max_records=max_records,
                                              email=email or None)
            result.provenance += provenance
            result.files += [p.relative_to(out_dir) for p in paths]
    result.save(out_dir)
    return result
