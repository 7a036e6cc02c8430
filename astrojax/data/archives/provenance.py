"""Provenance: where a piece of archive data came from, when, and exactly which bytes."""

import dataclasses
import datetime
import hashlib
import json
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any

from astrojax.data.archives.redaction import redact, redact_params, redact_url


def package_version(name: str) -> str:
    """The installed version of a distribution, or ``"unknown"`` when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def client_string(libraries: Sequence[str] = ("requests",)) -> str:
    """``"astrojax 0.1.0; requests 2.34.2"``, with one ``name version`` per library named."""
    names = ["astrojax", *[lib for lib in libraries if lib != "astrojax"]]
    return "; ".join(f"{name} {package_version(name)}" for name in names)


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _redact_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """A request body for the record: nested values too lose any registered secret."""
    return redact_params(json.loads(redact(json.dumps(dict(data), default=str))))


@dataclasses.dataclass(frozen=True)
class Provenance:
    """One request's record: source, redacted URL and query, UTC time, size and sha256 of the body.

    ``client`` names astrojax and the library that talked to the server (``requests``, or
    ``astroquery`` for sources built on it). ``cache_hit`` is True when the body came from the
    on-disk cache; ``time_utc`` is then the time it was first fetched. ``credential`` names the
    credentials sent (never their values). ``truncated`` says why the reply may hold fewer rows
    than the query matched (a service's row limit: a TAP OVERFLOW, Gemini's 500/2,000 files),
    or is None when it is complete.
    """

    source: str
    url: str
    method: str
    params: dict[str, Any]
    time_utc: str
    bytes: int
    sha256: str
    client: str
    status: int | None = None
    content_type: str | None = None
    cache_hit: bool = False
    data: dict[str, Any] | None = None  # a POST body (form fields or JSON), redacted
    final_url: str | None = None
    credential: tuple[str, ...] = ()
    truncated: str | None = None

    @classmethod
    def create(cls, source: str, url: str, body: bytes | None = None, *, method: str = "GET",
               params: Mapping[str, Any] | None = None, data: Mapping[str, Any] | None = None,
               libraries: Sequence[str] = ("requests",), nbytes: int | None = None,
               sha256: str | None = None, **fields: Any) -> "Provenance":
        """A record for data fetched now; URLs, params and data are redacted here.

        Give either ``body`` or, for data streamed to disk, ``nbytes`` and ``sha256``.
        """
        if body is not None:
            nbytes, sha256 = len(body), hashlib.sha256(body).hexdigest()
        if nbytes is None or sha256 is None:
            raise ValueError("Provenance.create needs body, or nbytes and sha256")
        if fields.get("final_url"):
            fields["final_url"] = redact_url(fields["final_url"])
        return cls(source=source, url=redact_url(url), method=method,
                   params=redact_params(params), time_utc=utc_now(), bytes=nbytes,
                   sha256=sha256, client=client_string(libraries),
                   data=None if data is None else _redact_data(data), **fields)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["credential"] = list(self.credential)
        return out

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> "Provenance":
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in record.items() if k in known}
        values["credential"] = tuple(values.get("credential", ()))
        return cls(**values)
