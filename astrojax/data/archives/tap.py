"""TAP (IVOA Table Access Protocol) queries shared by the archive clients (NASA, KOA, ESO).

What the services do, and so what this module does:

- **Errors inside a 200 reply.** A TAP service reports a failed query in the VOTable itself
  (``<INFO name="QUERY_STATUS" value="ERROR">message</INFO>``); nexsciTAP (NASA, KOA) and ESO
  send it with status 200. :func:`check_votable` is passed to the client as its ``check``, so
  such a reply is raised as a ``service_error`` and never cached: a transient "database busy"
  is not replayed for a week. ``QUERY_STATUS=OVERFLOW`` (the service stopped at MAXREC) is not
  an error; it is reported in ``table.meta`` and the provenance's ``truncated``.
- **Slow synchronous queries.** A sync query holds the connection until the database is done
  (nexsciTAP's own notes: HTTP requests time out after about five minutes while queries can
  run for days). So a sync query waits ``SourceConfig.tap_read_timeout`` (600 s, as
  astroquery's NASA archive client) and, having timed out, is sent once more at most: every
  send runs the query again on the server. The error then advises ``mode=async``.
- **Asynchronous queries** (UWS, IVOA TAP 1.1 section 2.2): POST the query with ``PHASE=RUN``
  to ``{service}/async``; the service answers 303 to the job's URL. Poll ``{job}/phase`` (text)
  with waits growing from 1 s to 30 s until ``COMPLETED``, ``ERROR`` or ``ABORTED``, for at
  most ``SourceConfig.tap_wait_seconds`` (then the job is sent ``PHASE=ABORT``). On ``ERROR`` the
  job document's ``errorSummary`` message is raised. On ``COMPLETED`` the result is read from
  the href the job document lists under ``<uws:results>`` (nexsciTAP points into its
  ``/workspace/``), else from ``{job}/results/result``. The result is cached under the query
  (``POST {service}/async`` with its parameters), not the job, so a rerun or an offline run
  reuses it without a new job.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin
from xml.parsers import expat

import astropy.units as u
from astropy.io.votable import parse
from astropy.table import Table

from astrojax.data.archives.config import SourceConfig
from astrojax.data.archives.errors import (
    ReplyValidationError,
    SourceError,
    TransportError,
)
from astrojax.data.archives.http import HttpClient
from astrojax.data.archives.redaction import LOGGER_NAME, redact_params, redact_url
from astrojax.data.archives.reply import Reply
from astrojax.data.archives.validate import InvalidReply

MODES = ("sync", "async")
FIRST_POLL_SECONDS = 1.0
MAX_POLL_SECONDS = 30.0
FINISHED = ("COMPLETED", "ERROR", "ABORTED", "ARCHIVED")
poll_sleep = time.sleep  # the wait between phase polls (tests replace it)
log = logging.getLogger(LOGGER_NAME)
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"


def adql_string(value: str) -> str:
    """An ADQL string literal (single quotes doubled)."""
    return "'" + str(value).replace("'", "''") + "'"


def cone(ra_col: str, dec_col: str, ra: float, dec: float, radius_deg: float) -> str:
    return (f"CONTAINS(POINT('ICRS', {ra_col}, {dec_col}), "
            f"CIRCLE('ICRS', {ra!r}, {dec!r}, {radius_deg!r})) = 1")


@dataclasses.dataclass(frozen=True)
class TapSettings:
    """How a TAP query is run: ``mode`` (``sync`` or ``async``), the sync read timeout and the
    longest wait for an async job (both from :class:`SourceConfig`)."""

    mode: str = "sync"
    read_timeout: float = 600.0
    wait_seconds: float = 3600.0

    @classmethod
    def create(cls, config: SourceConfig, source: str, mode: Any = None) -> TapSettings:
        """Settings from ``config`` and the ``mode`` option (a ValueError names the source)."""
        text = str(mode or "sync").strip().lower()
        if text not in MODES:
            raise ValueError(f"{source}: option mode must be sync or async, got {mode!r}")
        return cls(text, config.tap_read_timeout, config.tap_wait_seconds)


SYNC = TapSettings()  # the default: a synchronous query with the default timeout


# --- VOTable status ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class VOTableStatus:
    """QUERY_STATUS of a TAP reply (the last one wins: OVERFLOW follows the table)."""

    status: str | None
    message: str
    has_table: bool


def votable_status(body: bytes) -> VOTableStatus:
    """Reads QUERY_STATUS and whether a TABLE is present, streaming (no tree is built)."""
    parser = expat.ParserCreate(namespace_separator=" ")
    found = {"status": None, "message": [], "table": False, "in_status": False}

    def start(name, attrs):
        local = name.rpartition(" ")[2]
        if local == "TABLE":
            found["table"] = True
        elif local == "INFO" and attrs.get("name") == "QUERY_STATUS":
            found.update(status=(attrs.get("value") or "").upper(), message=[],
                         in_status=True)

    def end(name):
        if name.rpartition(" ")[2] == "INFO":
            found["in_status"] = False

    def text(data):
        if found["in_status"]:
            found["message"].append(data)

    parser.StartElementHandler, parser.EndElementHandler = start, end
    parser.CharacterDataHandler = text
    try:
        parser.Parse(body, True)
    except expat.ExpatError as err:
        raise InvalidReply("parse", f"the TAP reply is not well-formed XML: {err}") from None
    return VOTableStatus(found["status"], " ".join("".join(found["message"]).split()),
                         found["table"])


def check_votable(reply: Reply) -> bool:
    """The client ``check`` for TAP replies: an error document or a reply without a table
    raises (and so is never cached)."""
    state = votable_status(reply.body)
    if state.status == "ERROR":
        raise InvalidReply("service_error", "the TAP service rejected the query: "
                                            f"{state.message or 'no message'}")
    if not state.has_table:
        raise InvalidReply("parse", "the TAP reply holds no table (QUERY_STATUS "
                                    f"{state.status or 'missing'})")
    return True


# --- sync and async -------------------------------------------------------------------------

def run_query(client: HttpClient, service: str, params: Mapping[str, Any],
              settings: TapSettings = SYNC) -> Reply:
    """The checked VOTable reply of a TAP query.

    ``service`` is the TAP root relative to the client's base URL (``""`` when the base URL is
    the root, ``"tap_obs"`` for ESO); ``params`` are the query's (QUERY/FORMAT/..., in the
    spelling the service documents).
    """
    if settings.mode == "sync":
        try:
            return client.get(_join(service, "sync"), params, expect="votable",
                              check=check_votable, read_timeout=settings.read_timeout,
                              timeout_resends=1)
        except TransportError as err:
            if not err.timed_out:
                raise
            raise TransportError(client.source, err.url, f"{err.detail}; for a long query use "
                                 "the option mode=async (or narrow the query)",
                                 method=err.method, attempts=err.attempts,
                                 timed_out=True) from None
    if settings.mode == "async":
        return _run_async(client, service, dict(params), settings)
    raise ValueError(f"{client.source}: mode must be one of {MODES}, got {settings.mode!r}")


@dataclasses.dataclass(frozen=True)
class _Job:
    job_id: str
    phase: str
    error: str
    results: dict[str, str]


def _uws_job(client: HttpClient, url: str, body: bytes) -> _Job:
    try:
        root = ET.fromstring(body)
    except ET.ParseError as err:
        raise ReplyValidationError(client.source, url, f"the UWS job document does not parse: "
                                   f"{err}", reason="parse") from None
    values: dict[str, str] = {}
    results: dict[str, str] = {}
    error = ""
    for element in root.iter():
        local = element.tag.rpartition("}")[2]
        if local in ("jobId", "phase") and local not in values:
            values[local] = (element.text or "").strip()
        elif local == "result" and element.get(_XLINK_HREF):
            results[element.get("id", "")] = element.get(_XLINK_HREF)
        elif local == "errorSummary":
            error = " ".join("".join(element.itertext()).split())
    if not values.get("jobId"):
        raise ReplyValidationError(client.source, url, "the async TAP reply holds no UWS jobId",
                                   reason="parse")
    return _Job(values["jobId"], values.get("phase", "").upper(), error, results)


def _phase(client: HttpClient, url: str) -> str:
    """GET ``{job}/phase``: the phase as text (UWS), or inside a job document (some services)."""
    reply = client.get(url, expect="text", use_cache=False)
    text = reply.text().strip()
    if text.startswith("<"):
        return _uws_job(client, url, reply.body).phase
    return text.upper()


def _run_async(client: HttpClient, service: str, params: dict[str, Any],
               settings: TapSettings) -> Reply:
    async_path = _join(service, "async")
    cached = client.cached_reply("POST", async_path, data=params, expect="votable",
                                 check=check_votable)
    if cached is not None:
        return cached
    created = client.post(async_path, {**params, "PHASE": "RUN"}, expect="xml",
                          use_cache=False, read_timeout=settings.read_timeout,
                          timeout_resends=1)
    job = _uws_job(client, client.url_for(async_path), created.body)
    job_url = created.provenance.final_url or client.url_for(f"{async_path}/{job.job_id}")
    phase, waited, wait, restarted = job.phase, 0.0, FIRST_POLL_SECONDS, False
    while phase not in FINISHED:
        if phase == "PENDING" and not restarted:  # a service that ignored PHASE=RUN on create
            client.post(f"{job_url}/phase", {"PHASE": "RUN"}, expect="text", use_cache=False)
            restarted = True
        if waited >= settings.wait_seconds:
            aborted = "it was aborted"
            try:  # be kind to the server; the timeout is the error either way
                client.post(f"{job_url}/phase", {"PHASE": "ABORT"}, expect="text",
                            use_cache=False)
            except SourceError as err:
                log.warning("%s: could not abort TAP job %s: %s", client.source, job.job_id, err)
                aborted = "aborting it failed"
            raise TransportError(client.source, job_url, f"TAP job {job.job_id} still {phase} "
                                 f"after {waited:g} s (tap_wait_seconds); {aborted}",
                                 timed_out=True)
        poll_sleep(wait)
        waited += wait
        wait = min(2 * wait, MAX_POLL_SECONDS)
        phase = _phase(client, f"{job_url}/phase")
    job = _uws_job(client, job_url, client.get(job_url, expect="xml", use_cache=False).body)
    if phase == "ERROR":
        raise ReplyValidationError(client.source, job_url, f"TAP job {job.job_id} ended in "
                                   f"ERROR: {job.error or 'no message'}", reason="service_error")
    if phase != "COMPLETED":
        raise SourceError(client.source, job_url, f"TAP job {job.job_id} ended {phase}")
    href = urljoin(job_url.rstrip("/") + "/", job.results.get("result")
                   or next(iter(job.results.values()), "results/result"))
    result = client.get(href, expect="votable", use_cache=False, check=check_votable)
    record = dataclasses.replace(result.provenance, method="POST",
                                 url=redact_url(client.url_for(async_path)), params={},
                                 data=redact_params(params), final_url=redact_url(href))
    reply = dataclasses.replace(result, provenance=record)
    client.store_reply("POST", async_path, reply, data=params)
    return reply


def _join(service: str, endpoint: str) -> str:
    return f"{service.strip('/')}/{endpoint}" if service.strip("/") else endpoint


# --- the standard query ---------------------------------------------------------------------

def tap_query(client: HttpClient, service: str, adql: str, max_rows: int,
              settings: TapSettings = SYNC) -> tuple[Table, Reply]:
    """Runs ADQL (standard TAP parameters, MAXREC = ``max_rows``); returns the first table of
    the VOTable and the reply.

    ``table.meta["overflow"]`` (and ``["truncated"]``) is True when the service stopped at
    ``max_rows`` (``QUERY_STATUS=OVERFLOW``); the reply's provenance then says so too.
    """
    params = {"REQUEST": "doQuery", "LANG": "ADQL", "FORMAT": "votable", "MAXREC": max_rows,
              "QUERY": adql}
    reply = run_query(client, service, params, settings)
    url = client.url_for(_join(service, settings.mode))
    try:
        votable = parse(io.BytesIO(reply.body), verify="ignore")
    except Exception as err:  # astropy raises many types for a malformed VOTable
        raise ReplyValidationError(client.source, url, f"unreadable VOTable: {err}",
                                   reason="parse") from None
    table = next(votable.iter_tables()).to_table()
    table.meta["query"] = adql
    reply = mark_overflow(table, reply, f"MAXREC={max_rows}")
    return table, reply


def mark_overflow(table: Table, reply: Reply, limit: str) -> Reply:
    """Sets ``table.meta["overflow"]``/``["truncated"]`` from QUERY_STATUS; on OVERFLOW returns
    the reply with its provenance's ``truncated`` filled in."""
    overflow = votable_status(reply.body).status == "OVERFLOW"
    table.meta["overflow"] = table.meta["truncated"] = overflow
    if not overflow:
        return reply
    note = (f"QUERY_STATUS=OVERFLOW: the TAP service stopped at its row limit ({limit}) after "
            f"{len(table)} rows")
    return dataclasses.replace(reply, provenance=dataclasses.replace(reply.provenance,
                                                                     truncated=note))


def set_units(table: Table, units: dict[str, u.UnitBase]) -> Table:
    """Gives each named column its documented unit where the reply gave none or a bad one."""
    for name, unit in units.items():
        if name in table.colnames:
            current = table[name].unit
            if current is None or isinstance(current, u.UnrecognizedUnit):
                table[name].unit = unit
    return table


__all__ = ["MODES", "SYNC", "TapSettings", "VOTableStatus", "adql_string", "check_votable", "cone",
           "mark_overflow", "run_query", "set_units", "tap_query", "votable_status"]
