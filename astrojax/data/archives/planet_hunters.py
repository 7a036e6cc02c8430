"""Planet Hunters TESS (Zooniverse): a project's subjects (light-curve images) from Panoptes.

Zooniverse's Panoptes API (``https://www.zooniverse.org/api``) is JSON:API and needs the header
``Accept: application/vnd.api+json; version=1``. Listing subjects is public:
``GET /subjects?project_id=ID&page_size=N&page=P`` answers ``{"subjects": [...], "links":
{...}, "meta": {"subjects": {"page", "page_count", "count", "next_page", ...}}}``, and we
follow ``meta.subjects.next_page`` until it is null or ``max_pages`` is reached. astroquery does
not cover Zooniverse, and the official ``panoptes-client`` would bypass our cache, retries and
provenance, so this is plain REST through :class:`HttpClient`.

Each subject becomes one row: ``subject_id``, ``tic_id`` and ``sector`` (read from metadata keys
that spell them, ignoring case, spaces, underscores and Zooniverse's hidden-field prefixes
``#``/``!``: "!TIC ID", "TIC_ID", "#sector", ...; masked where absent), ``locations`` (the
media URLs, space separated) with ``location_types`` (their MIME types), ``subject_set_ids``,
``metadata`` (all of it, as JSON) and ``created_at``.

Not done: the classification exports (``/projects/ID/classifications_export``) need a project
collaborator's OAuth login (``ZOONIVERSE_USERNAME``/``ZOONIVERSE_PASSWORD`` through Panoptes'
sign-in flow); :func:`fetch` lists them in ``skipped``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import MaskedColumn, Table

from astrojax.data.archives.config import SourceConfig
from astrojax.data.archives.errors import ReplyValidationError
from astrojax.data.archives.http import HttpClient
from astrojax.data.archives.provenance import Provenance
from astrojax.data.archives.result import FetchResult
from astrojax.data.archives.validate import InvalidReply

NAME = "planet_hunters"
DEFAULT_BASE_URL = "https://www.zooniverse.org/api"
PLANET_HUNTERS_TESS = "7929"
HEADERS = {"Accept": "application/vnd.api+json; version=1",
           "Content-Type": "application/json"}
RATE_PER_SECOND = 2.0  # Zooniverse publishes no limit; stay gentle
MAX_PAGE_SIZE = 100
EXPORT_SKIPPED = ("classifications export: needs a Zooniverse collaborator login "
                  "(ZOONIVERSE_USERNAME/ZOONIVERSE_PASSWORD, Panoptes OAuth); not implemented")

_TIC_KEYS = {"ticid", "tic"}
_SECTOR_KEYS = {"sector", "tesssector"}


@dataclasses.dataclass
class SubjectListing:
    """The subjects read, one Provenance per page, and how far paging went."""

    table: Table
    provenance: list[Provenance]
    pages_fetched: int
    page_count: int | None
    more_pages: bool


def planet_hunters_client(config: SourceConfig) -> HttpClient:
    return config.client(NAME, DEFAULT_BASE_URL, rate_per_second=RATE_PER_SECOND)


def list_subjects(client: HttpClient, project_id: str = PLANET_HUNTERS_TESS, *,
                  page_size: int = MAX_PAGE_SIZE, max_pages: int = 10) -> SubjectListing:
    """Pages through ``/subjects?project_id=...`` (at most ``max_pages`` pages)."""
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"{NAME}: page_size must be 1..{MAX_PAGE_SIZE}, got {page_size}")
    if max_pages < 1:
        raise ValueError(f"{NAME}: max_pages must be >= 1, got {max_pages}")
    rows: list[dict[str, Any]] = []
    records: list[Provenance] = []
    page: int | None = 1
    page_count = None
    while page is not None and len(records) < max_pages:
        params = {"project_id": project_id, "page_size": page_size, "page": page}
        reply = client.get("subjects", params, expect="json", headers=HEADERS,
                           check=panoptes_check)
        url = client.url_for("subjects")
        document = reply.json()
        subjects, meta = _subjects_page(document, url)
        rows += [_subject_row(subject, url) for subject in subjects]
        records.append(reply.provenance)
        page_count = meta.get("page_count", page_count)
        next_page = meta.get("next_page")
        page = int(next_page) if next_page is not None else None
    table = _subjects_table(rows)
    table.meta.update(project_id=str(project_id), pages_fetched=len(records),
                      page_count=page_count)
    return SubjectListing(table, records, len(records), page_count, page is not None)


def fetch(config: SourceConfig, out_dir: Path, *, project_id: str = PLANET_HUNTERS_TESS,
          page_size: int | str = MAX_PAGE_SIZE, max_pages: int | str = 10) -> FetchResult:
    """Lists a project's subjects and saves them as the ``subjects`` table.

    Options:
    - ``project_id``: the Zooniverse project (default ``7929``, Planet Hunters TESS);
    - ``page_size``: subjects per request, 1..100 (default 100);
    - ``max_pages``: stop after this many pages (default 10); the rest is listed in
      ``skipped``.
    """
    with planet_hunters_client(config) as client:
        listing = list_subjects(client, str(project_id), page_size=int(page_size),
                                max_pages=int(max_pages))
    result = FetchResult(NAME, tables={"subjects": listing.table},
                         provenance=listing.provenance)
    if listing.more_pages:
        total = f" of {listing.page_count}" if listing.page_count else ""
        result.skipped.append(f"subjects pages {listing.pages_fetched + 1}{total} and later: "
                              f"max_pages={max_pages} reached")
    result.skipped.append(EXPORT_SKIPPED)
    result.save(out_dir)
    return result


def panoptes_check(reply) -> bool:
    """The client ``check``: a JSON:API error document (Panoptes may send it with status 200)
    raises and is never cached."""
    document = reply.json()
    if isinstance(document, Mapping) and document.get("errors"):
        errors = document["errors"]
        messages = [e.get("message", str(e)) if isinstance(e, Mapping) else str(e)
                    for e in (errors if isinstance(errors, list) else [errors])]
        raise InvalidReply("service_error",
                           "Panoptes answered with an error: " + "; ".join(messages))
    return True


def _subjects_page(document: Any, url: str) -> tuple[list[Mapping], Mapping]:
    """The subjects and paging meta of one reply (error documents were refused by the check)."""
    if not isinstance(document, Mapping) or not isinstance(document.get("subjects"), list):
        raise ReplyValidationError(NAME, url, "not a Panoptes subjects document (no "
                                   "'subjects' list)", reason="parse")
    meta = document.get("meta", {}).get("subjects", {})
    return document["subjects"], meta if isinstance(meta, Mapping) else {}


def _normalized(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lstrip("#!").lower())


def _first_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    match = re.search(r"\d+", str(value)) if value is not None else None
    return int(match.group()) if match else None


def _metadata_int(metadata: Mapping[str, Any], keys: set[str]) -> int | None:
    for key, value in metadata.items():
        if _normalized(key) in keys:
            return _first_int(value)
    return None


def _subject_row(subject: Mapping[str, Any], url: str) -> dict[str, Any]:
    if "id" not in subject:
        raise ReplyValidationError(NAME, url, "a subject without an id", reason="parse")
    metadata = subject.get("metadata") or {}
    locations = [(mime, href) for location in subject.get("locations") or []
                 for mime, href in location.items()]
    links = subject.get("links") or {}
    return {
        "subject_id": int(subject["id"]),
        "tic_id": _metadata_int(metadata, _TIC_KEYS),
        "sector": _metadata_int(metadata, _SECTOR_KEYS),
        "locations": " ".join(href for _, href in locations),
        "location_types": " ".join(mime for mime, _ in locations),
        "subject_set_ids": " ".join(str(s) for s in links.get("subject_sets") or []),
        "metadata": json.dumps(metadata, sort_keys=True),
        "created_at": subject.get("created_at") or "",
    }


def _subjects_table(rows: list[dict[str, Any]]) -> Table:
    table = Table()
    table["subject_id"] = np.array([r["subject_id"] for r in rows], dtype=np.int64)
    for name in ("tic_id", "sector"):
        values = [r[name] for r in rows]
        table[name] = MaskedColumn([v if v is not None else 0 for v in values],
                                   mask=[v is None for v in values], dtype=np.int64)
    for name in ("locations", "location_types", "subject_set_ids", "metadata", "created_at"):
        table[name] = np.array([r[name] for r in rows], dtype=str)
    return table


__all__ = ["DEFAULT_BASE_URL", "NAME", "PLANET_HUNTERS_TESS", "SubjectListing", "fetch",
           "list_subjects", "planet_hunters_client"]
