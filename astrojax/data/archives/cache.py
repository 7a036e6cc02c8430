"""An on-disk cache of archive replies, keyed by the request, with expiry and no secrets in it.

Layout: ``DIR/SOURCE/ab/abcdef....body`` (the reply body) beside ``....json`` (status, content
type, time stored, the request without secrets, provenance, the body's sha256). Both are written
atomically, the body first, so an entry exists exactly when its metadata does. A body whose
sha256 no longer matches is treated as missing.

The key is the sha256 of (source, method, URL, sorted query parameters, sha256 of the request
body) and, for a request that carried a credential, the credential's names and a salted HMAC of
its values. Why the credential is in the key: MAST and ESO answer a request differently with a
token (exclusive-access rows, proprietary files) than without, so a reply fetched with one must
not be served to a later run without it, nor to a run with another account's token. Why an HMAC
and not the value: the key (a file name) and the metadata must never hold a secret; the salt is
32 random bytes made once per cache folder (``credential-salt``, mode 600), so the same token
gives different keys in different caches and no precomputed table reverses them. The metadata
records only the credential names. An entry whose recorded credential names differ from the
key's (written by an older astrojax that left credentials out of the key) is ignored.

Any registered secret value that reaches a URL or parameter is redacted before hashing, and an
entry whose metadata or body would contain one is not written at all.
"""

import dataclasses
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from astrojax.data.archives.files import atomic_write, sanitize_filename
from astrojax.data.archives.provenance import Provenance
from astrojax.data.archives.redaction import (
    LOGGER_NAME,
    contains_secret,
    redact,
    redact_params,
    redact_url,
)

log = logging.getLogger(LOGGER_NAME)
SALT_FILE = "credential-salt"


def _canonical_params(params: Mapping[str, Any] | None) -> tuple[tuple[str, str], ...]:
    pairs = []
    for key, value in (params or {}).items():
        values = value if isinstance(value, list | tuple) else [value]
        pairs += [(str(key), redact(str(v))) for v in values if v is not None]
    return tuple(sorted(pairs))


@dataclasses.dataclass(frozen=True)
class CacheKey:
    """A request as the cache sees it: parameters sorted, credentials only as names and an HMAC.

    ``credential`` names the credentials the request carried; ``credential_hmac`` is
    :meth:`ResponseCache.credential_hmac` of their values (never the values themselves).
    """

    source: str
    method: str
    url: str
    params: tuple[tuple[str, str], ...]
    body_sha256: str | None
    credential: tuple[str, ...] = ()
    credential_hmac: str | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def create(cls, source: str, method: str, url: str,
               params: Mapping[str, Any] | None = None, body: bytes | None = None, *,
               credential: tuple[str, ...] = (),
               credential_hmac: str | None = None) -> "CacheKey":
        parts = urlsplit(url)
        bare = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path,
                           parts.query, ""))
        return cls(source=source, method=method.upper(), url=redact(bare),
                   params=_canonical_params(params),
                   body_sha256=hashlib.sha256(body).hexdigest() if body else None,
                   credential=tuple(credential), credential_hmac=credential_hmac)

    @property
    def digest(self) -> str:
        record: list[Any] = [self.source, self.method, self.url, self.params, self.body_sha256]
        if self.credential:  # uncredentialed keys stay what they were before credentials counted
            record += [list(self.credential), self.credential_hmac]
        return hashlib.sha256(json.dumps(record).encode()).hexdigest()

    def describe(self) -> str:
        """The request for people: ``GET https://host/path?a=1&b=2`` (secret names masked)."""
        shown = redact_params(dict(self.params))
        query = "&".join(f"{k}={v}" for k, v in shown.items())
        extra = f" (body sha256 {self.body_sha256[:12]})" if self.body_sha256 else ""
        extra += f" (with {' and '.join(self.credential)})" if self.credential else ""
        url = redact_url(self.url)
        return f"{self.method} {url}{('&' if '?' in url else '?') + query if query else ''}{extra}"


@dataclasses.dataclass(frozen=True)
class CachedReply:
    body: bytes
    status: int
    content_type: str | None
    provenance: Provenance
    stored_at: float
    expired: bool
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


class ResponseCache:
    """Replies on disk under ``directory``; an entry older than ``expiry_seconds`` is expired.

    ``expiry_seconds=None`` keeps entries forever. ``clock`` (seconds since the epoch) is
    injectable for tests. Offline behaviour lives in the client: it asks with
    ``allow_expired=True`` and raises :class:`~astrojax.data.archives.errors.OfflineCacheMiss`.
    """

    def __init__(self, directory: str | Path, expiry_seconds: float | None = 7 * 86400, *,
                 clock: Callable[[], float] = time.time):
        self.directory = Path(directory).expanduser()
        self.expiry_seconds = expiry_seconds
        self._clock = clock

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.directory)!r}, expiry_seconds={self.expiry_seconds})"

    def credential_hmac(self, values: Sequence[str]) -> str:
        """HMAC-SHA256 of credential values under this cache's salt (the key's credential part)."""
        message = "\0".join(values).encode()
        return hmac.new(self._salt(), message, hashlib.sha256).hexdigest()

    def _salt(self) -> bytes:
        path = self.directory / SALT_FILE
        try:
            salt = path.read_bytes()
        except FileNotFoundError:
            self.directory.mkdir(parents=True, exist_ok=True)
            temp = path.with_name(f"{SALT_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
            descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(secrets.token_bytes(32))
            try:  # a link never replaces: two processes making a salt at once agree on one
                os.link(temp, path)
            except FileExistsError:
                pass
            finally:
                temp.unlink()
            salt = path.read_bytes()
        if len(salt) != 32:
            raise OSError(f"{path}: not a credential salt (expected 32 bytes, got {len(salt)}); "
                          "delete it to make a new one")
        return salt

    def _paths(self, key: CacheKey) -> tuple[Path, Path]:
        digest = key.digest
        folder = self.directory / sanitize_filename(key.source) / digest[:2]
        return folder / f"{digest}.body", folder / f"{digest}.json"

    def get(self, key: CacheKey, *, allow_expired: bool = False) -> CachedReply | None:
        """The cached reply for ``key``; None if missing, corrupt, or expired (unless allowed)."""
        body_path, meta_path = self._paths(key)
        try:
            meta = json.loads(meta_path.read_text())
            body = body_path.read_bytes()
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            log.warning("%s: unreadable cache entry %s (%s); ignoring it", key.source, meta_path,
                        err)
            return None
        if hashlib.sha256(body).hexdigest() != meta.get("body_sha256"):
            log.warning("%s: cache entry %s does not match its checksum; ignoring it",
                        key.source, body_path)
            return None
        recorded = tuple(meta.get("provenance", {}).get("credential", ()))
        if recorded != key.credential:  # stored by an astrojax whose key left credentials out
            return None
        stored_at = float(meta["stored_at"])
        expired = (self.expiry_seconds is not None
                   and self._clock() - stored_at > self.expiry_seconds)
        if expired and not allow_expired:
            return None
        provenance = dataclasses.replace(Provenance.from_dict(meta["provenance"]),
                                         cache_hit=True)
        return CachedReply(body=body, status=int(meta["status"]),
                           content_type=meta.get("content_type"), provenance=provenance,
                           stored_at=stored_at, expired=expired,
                           headers=dict(meta.get("headers", {})))

    def delete(self, key: CacheKey) -> None:
        """Removes an entry (metadata first, so a half-removed entry is simply missing)."""
        body_path, meta_path = self._paths(key)
        meta_path.unlink(missing_ok=True)
        body_path.unlink(missing_ok=True)

    def put(self, key: CacheKey, body: bytes, *, status: int, content_type: str | None,
            provenance: Provenance, headers: dict[str, str] | None = None) -> bool:
        """Stores a reply; returns False (and stores nothing) if it would hold a secret."""
        meta = {
            "request": key.describe(),
            "status": status,
            "content_type": content_type,
            "headers": dict(headers or {}),
            "stored_at": self._clock(),
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "provenance": provenance.to_dict(),
        }
        text = json.dumps(meta, indent=1, sort_keys=True)
        if contains_secret(text) or contains_secret(body):
            log.warning("%s: not caching %s: the reply contains a credential", key.source,
                        key.describe())
            return False
        body_path, meta_path = self._paths(key)
        atomic_write(body_path, [body])
        atomic_write(meta_path, [text.encode()])
        return True
