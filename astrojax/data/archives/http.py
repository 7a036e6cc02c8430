"""HttpClient: the one way source modules talk to an archive (pool, retries, checks, cache).

Sending (retries, backoff, rate limits, read timeouts, streaming within a size limit) is
:class:`~astrojax.data.archives.sending.Sender`'s job; see :mod:`.sending` for why the loop is
our own. This module decides what is asked, checked and cached.

What is cached, and under which key:

- a source may pass ``check(reply) -> bool``: it raises :class:`InvalidReply` (reason
  ``service_error``) for an error document the service sent with status 200, and returns False
  for a reply that is valid but not final (MAST's ``EXECUTING``). Only a reply that passed every
  check and is final is stored, so a transient "database busy" is never replayed from the cache;
  a cached reply is checked again when read, and one that fails (stored by an older astrojax) is
  dropped and fetched anew;
- the key holds the credential names and a salted HMAC of their values (see :mod:`.cache`), so a
  reply fetched with a token is never served to a run without it.
"""

import functools
import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from requests.adapters import HTTPAdapter

from astrojax.data.archives.cache import CacheKey, ResponseCache
from astrojax.data.archives.credentials import Auth, AuthParts, Credentials
from astrojax.data.archives.errors import (
    CredentialError,
    OfflineCacheMiss,
    ReplyValidationError,
)
from astrojax.data.archives.files import atomic_write, filename_from_url, safe_path
from astrojax.data.archives.provenance import Provenance, package_version
from astrojax.data.archives.ratelimit import RateLimiter, shared_limiter
from astrojax.data.archives.redaction import LOGGER_NAME, install_log_redaction, redact_url
from astrojax.data.archives.reply import Downloaded, Reply
from astrojax.data.archives.sending import Sender
from astrojax.data.archives.transport import Session, origin
from astrojax.data.archives.validate import InvalidReply, check_body

# check(reply) -> bool: raises InvalidReply for an error document; False: valid, not final.
ReplyCheck = Callable[[Reply], bool]

# Response headers a Reply keeps (and the cache stores): paging and result counts.
KEPT_HEADERS = ("Link", "X-Total-Results", "ETag", "Last-Modified")
log = logging.getLogger(LOGGER_NAME)
install_log_redaction()


class HttpClient:
    """A client for one source: a pooled session, retries, rate limit, validation, cache.

    ``base_url`` is where relative paths resolve (override it for mirrors and tests); absolute
    http(s) URLs are accepted too (download hosts) and share the pool, limiter and retries.
    ``libraries`` names what talks to the server for the provenance ``client`` field.
    ``max_bytes`` bounds a reply held in memory, ``max_download_bytes`` a file that
    :meth:`download` streams to disk.
    """

    def __init__(self, source: str, base_url: str, *, cache: ResponseCache | None = None,
                 offline: bool = False, auth: Auth | None = None,
                 credentials: Credentials | None = None, rate_per_second: float | None = None,
                 rate_limiter: RateLimiter | None = None,
                 timeout: tuple[float, float] = (10.0, 60.0), max_attempts: int = 4,
                 backoff_base: float = 0.5, backoff_cap: float = 30.0,
                 max_bytes: int = 256 * 2**20, max_download_bytes: int = 16 * 2**30,
                 pool_size: int = 4,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None,
                 libraries: Sequence[str] = ("requests",), user_agent: str | None = None):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{source}: base_url must be an http(s) URL, got {base_url!r}")
        if offline and cache is None:
            raise ValueError(f"{source}: offline mode needs a cache to serve from")
        if (max_attempts < 1 or max_bytes < 1 or max_download_bytes < 1 or backoff_cap < 0
                or backoff_base < 0):
            raise ValueError(f"{source}: max_attempts, max_bytes and max_download_bytes must be "
                             ">= 1 and the backoff times >= 0")
        self.source = source
        self.base_url = base_url
        self.cache = cache
        self.offline = offline
        self.auth = auth
        self.credentials = credentials or Credentials()
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_download_bytes = max_download_bytes
        self.libraries = tuple(libraries)
        limiter = rate_limiter or (shared_limiter(parts.hostname, rate_per_second)
                                   if rate_per_second else None)
        self.session = Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers["User-Agent"] = user_agent or (
            f"astrojax/{package_version('astrojax')} python-requests/{requests.__version__}")
        self._sender = Sender(source, self.session, limiter=limiter, timeout=timeout,
                              max_attempts=max_attempts, backoff_base=backoff_base,
                              backoff_cap=backoff_cap, sleep=sleep, rng=rng or random.Random())

    def __repr__(self) -> str:
        return f"HttpClient({self.source!r}, {redact_url(self.base_url)!r})"

    def __enter__(self) -> "HttpClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    def url_for(self, path_or_url: str) -> str:
        """An absolute http(s) URL as given, else ``base_url`` joined with the path."""
        scheme = urlsplit(path_or_url).scheme
        if scheme in ("http", "https"):
            return path_or_url
        if scheme:
            raise ValueError(f"{self.source}: only http(s) URLs are fetched, got "
                             f"{redact_url(path_or_url)!r}")
        if not path_or_url:
            return self.base_url
        return self.base_url.rstrip("/") + "/" + path_or_url.lstrip("/")

    # --- public requests ----------------------------------------------------------------

    def get(self, path_or_url: str, params: Mapping[str, Any] | None = None, *,
            expect: str = "json", **options: Any) -> Reply:
        """GET a reply and check it is ``expect`` (json, csv, tsv, xml, votable, text, bytes).

        ``options`` are :meth:`request`'s: headers, content_types, use_cache, refresh, check,
        read_timeout, timeout_resends.
        """
        return self.request("GET", path_or_url, params=params, expect=expect, **options)

    def post(self, path_or_url: str, data: Mapping[str, Any] | str | bytes | None = None, *,
             json_body: Any = None, params: Mapping[str, Any] | None = None,
             expect: str = "json", **options: Any) -> Reply:
        """POST form ``data`` or a ``json_body`` (a read-only query: cached and retried)."""
        return self.request("POST", path_or_url, params=params, data=data, json_body=json_body,
                            expect=expect, **options)

    def request(self, method: str, path_or_url: str, *, params: Mapping[str, Any] | None = None,
                data: Mapping[str, Any] | str | bytes | None = None, json_body: Any = None,
                expect: str = "json", headers: Mapping[str, str] | None = None,
                content_types: tuple[str, ...] | None = None, use_cache: bool = True,
                refresh: bool = False, check: ReplyCheck | None = None,
                read_timeout: float | None = None,
                timeout_resends: int | None = None) -> Reply:
        """One request: from the cache if there, else sent (with retries), checked, cached.

        ``refresh``: ask the server even if cached, and store the new reply. ``check``: the
        source's own test of the reply (see the module docstring), run before anything is cached
        and again on a cached reply. ``read_timeout`` replaces the client's for this request;
        ``timeout_resends`` caps how many times it is sent again after a read timeout.
        """
        method = method.upper()
        url = self.url_for(path_or_url)
        parts = self._auth_parts(url, method)
        key = self._cache_key(method, url, params, _body_bytes(data, json_body), parts) \
            if use_cache else None
        if key is not None and not (refresh and not self.offline):
            cached = self._from_cache(key, expect, content_types, check, method, url)
            if cached is not None:
                return cached
        if self.offline:
            raise self._offline_miss(key, method, url)
        consume = functools.partial(self._sender.read_body, limit=self.max_bytes,
                                    setting="max_bytes")
        sent = self._sender.send(method, url, params, data, json_body, headers, consume, parts,
                             read_timeout=read_timeout, timeout_resends=timeout_resends)
        response, body = sent.response, sent.value
        content_type = response.headers.get("Content-Type")
        parsed = self._check(body, content_type, expect, content_types, method, url,
                             sent.attempts)
        provenance = Provenance.create(
            self.source, url, body, method=method, params=params,
            data=_data_record(data, json_body), libraries=self.libraries,
            status=response.status_code, content_type=content_type,
            final_url=response.url if response.history else None,
            credential=sent.credentials)
        kept = {name: response.headers[name] for name in KEPT_HEADERS
                if name in response.headers}
        reply = Reply(body, response.status_code, content_type, provenance, expect, parsed,
                      headers=kept)
        final = self._run_check(check, reply, method, url, sent.attempts)
        if key is not None and final:
            self._store(key, reply)
        return reply

    def cached_reply(self, method: str, path_or_url: str, *,
                     params: Mapping[str, Any] | None = None,
                     data: Mapping[str, Any] | str | bytes | None = None, expect: str = "json",
                     content_types: tuple[str, ...] | None = None,
                     check: ReplyCheck | None = None) -> Reply | None:
        """The cached reply to this request, checked, or None; offline, a miss raises
        :class:`OfflineCacheMiss`. For flows of several requests cached as one (async TAP)."""
        method = method.upper()
        url = self.url_for(path_or_url)
        parts = self._auth_parts(url, method)
        key = self._cache_key(method, url, params, _body_bytes(data, None), parts)
        reply = None if key is None else self._from_cache(key, expect, content_types, check,
                                                          method, url)
        if reply is None and self.offline:
            raise self._offline_miss(key, method, url)
        return reply

    def store_reply(self, method: str, path_or_url: str, reply: Reply, *,
                    params: Mapping[str, Any] | None = None,
                    data: Mapping[str, Any] | str | bytes | None = None) -> None:
        """Caches ``reply`` (already checked) as the answer to this request."""
        method = method.upper()
        url = self.url_for(path_or_url)
        key = self._cache_key(method, url, params, _body_bytes(data, None),
                              self._auth_parts(url, method))
        if key is not None:
            self._store(key, reply)

    # --- the cache ----------------------------------------------------------------------

    def _cache_key(self, method: str, url: str, params, body: bytes | None,
                   parts: AuthParts) -> CacheKey | None:
        if self.cache is None:
            return None
        sent = [*parts.params.values(), *parts.headers.values()]
        return CacheKey.create(self.source, method, url, params, body, credential=parts.names,
                               credential_hmac=self.cache.credential_hmac(sent)
                               if parts.names else None)

    def _from_cache(self, key: CacheKey, expect: str, content_types, check, method: str,
                    url: str) -> Reply | None:
        cached = self.cache.get(key, allow_expired=self.offline)
        if cached is None:
            return None
        if cached.expired:
            log.warning("%s: offline: serving an expired cached reply for %s", self.source,
                        key.describe())
        parsed = self._check(cached.body, cached.content_type, expect, content_types, method,
                             url, None)
        reply = Reply(cached.body, cached.status, cached.content_type, cached.provenance,
                      expect, parsed, headers=cached.headers)
        if check is None:
            return reply
        try:
            final = check(reply)
        except InvalidReply as err:
            if self.offline:
                raise ReplyValidationError(self.source, url, f"{err.detail} (the cached reply)",
                                           reason=err.reason, method=method) from None
            log.warning("%s: the cached reply for %s is an error document (%s); dropping it "
                        "and asking the server", self.source, key.describe(), err.detail)
            self.cache.delete(key)
            return None
        return reply if final or self.offline else None

    def _store(self, key: CacheKey, reply: Reply) -> None:
        self.cache.put(key, reply.body, status=reply.status, content_type=reply.content_type,
                       provenance=reply.provenance, headers=reply.headers)

    def _offline_miss(self, key: CacheKey | None, method: str, url: str) -> OfflineCacheMiss:
        request = key.describe() if key else f"{method} {redact_url(url)}"
        return OfflineCacheMiss(self.source, url, f"offline, and no cached reply for "
                                f"{request} in {self.cache.directory}", method=method)

    def _run_check(self, check, reply: Reply, method: str, url: str, attempts: int) -> bool:
        if check is None:
            return True
        try:
            return bool(check(reply))
        except InvalidReply as err:
            raise ReplyValidationError(self.source, url, err.detail, reason=err.reason,
                                       method=method, attempts=attempts) from None

    def download(self, path_or_url: str, directory: str | Path, filename: str | None = None, *,
                 params: Mapping[str, Any] | None = None, max_bytes: int | None = None,
                 overwrite: bool = False,
                 content_types: tuple[str, ...] | None = None) -> Downloaded:
        """Streams a file into ``directory`` (temp file, then rename) and returns its path.

        The name is ``filename`` or the URL's last path segment, sanitised (never leaves
        ``directory``). A file already there with its provenance record is reused unless
        ``overwrite``; offline, only such a file is served. A file over ``max_bytes`` (default
        the client's ``max_download_bytes``) is refused, and nothing is left on disk.
        """
        limit, setting = ((max_bytes, "max_bytes") if max_bytes is not None else
                          (self.max_download_bytes, "max_download_bytes"))
        url = self.url_for(path_or_url)
        name = filename if filename is not None else (
            filename_from_url(url)
            or "download-" + hashlib.sha256(redact_url(url).encode()).hexdigest()[:12])
        folder = Path(directory).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        target = safe_path(folder, name)
        record = target.with_name(target.name + ".provenance.json")
        if target.exists() and record.exists() and (self.offline or not overwrite):
            provenance = Provenance.from_dict(json.loads(record.read_text()))
            if target.stat().st_size == provenance.bytes:  # else: changed since; fetch again
                return Downloaded(target, replace(provenance, cache_hit=True))
        if self.offline:
            raise OfflineCacheMiss(self.source, url, f"offline, and {target} has not been "
                                   "downloaded yet")

        def consume(response: requests.Response) -> tuple[int, str]:
            digest = hashlib.sha256()
            content_type = response.headers.get("Content-Type")

            def checked() -> Iterator[bytes]:
                chunk = None
                for number, chunk in enumerate(self._sender.stream(response, limit, setting)):
                    if number == 0:  # an HTML error page or a wrong type shows in the first chunk
                        check_body(chunk, content_type, "bytes", content_types)
                    digest.update(chunk)
                    yield chunk
                if chunk is None:
                    raise InvalidReply("empty", "expected a file but the body is empty")

            return atomic_write(target, checked()), digest.hexdigest()

        sent = self._sender.send("GET", url, params, None, None, None, consume,
                             self._auth_parts(url, "GET"))
        written, sha256 = sent.value
        provenance = Provenance.create(
            self.source, url, nbytes=written, sha256=sha256, params=params,
            libraries=self.libraries, status=sent.response.status_code,
            content_type=sent.response.headers.get("Content-Type"),
            final_url=sent.response.url if sent.response.history else None,
            credential=sent.credentials)
        atomic_write(record, [json.dumps(provenance.to_dict(), indent=1).encode()])
        return Downloaded(target, provenance)

    def _auth_parts(self, url: str, method: str) -> AuthParts:
        """The credential for ``url``: only sent to the base URL's origin, never elsewhere."""
        if self.auth is None or origin(url) != origin(self.base_url):
            return AuthParts()
        try:
            return self.auth.apply(self.credentials, self.source, url) or AuthParts()
        except CredentialError as err:
            raise CredentialError(self.source, url, err.detail, credential=err.credential,
                                  method=method) from None

    def _check(self, body: bytes, content_type: str | None, expect: str,
               content_types: tuple[str, ...] | None, method: str, url: str,
               attempts: int | None) -> Any:
        try:
            return check_body(body, content_type, expect, content_types)
        except InvalidReply as err:
            raise ReplyValidationError(self.source, url, err.detail, reason=err.reason,
                                       method=method, attempts=attempts) from None


def _body_bytes(data, json_body) -> bytes | None:
    if json_body is not None:
        return json.dumps(json_body, sort_keys=True, default=str).encode()
    if isinstance(data, Mapping):
        return urlencode(sorted((str(k), str(v)) for k, v in data.items())).encode()
    if isinstance(data, str):
        return data.encode()
    return data


def _data_record(data, json_body) -> dict[str, Any] | None:
    if json_body is not None:
        return json_body if isinstance(json_body, dict) else {"json": json_body}
    if isinstance(data, Mapping):
        return dict(data)
    if data:
        return {"body_sha256": hashlib.sha256(_body_bytes(data, None)).hexdigest()}
    return None
