"""Archive clients: one module per source, on one careful HTTP layer (this package's API).

A source module builds one :class:`HttpClient` from a :class:`SourceConfig` and turns replies
into a typed result (an astropy Table, or a dataclass of arrays, with units where the source
gives them) carrying the reply's :class:`Provenance`::

    NCBI = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils"

    def ncbi_client(config: SourceConfig, credentials: Credentials | None = None) -> HttpClient:
        credentials = credentials or Credentials()
        rate = 10 if credentials.get("NCBI_API_KEY") else 3  # NCBI's published limits
        return config.client("ncbi", NCBI, auth=ApiKeyParam("NCBI_API_KEY", "api_key"),
                             credentials=credentials, rate_per_second=rate)

    reply = client.get("esearch.fcgi", {"db": "taxonomy", "term": "...", "retmode": "json"},
                       expect="json")
    reply.json(), reply.provenance.to_dict()

The layer
- :class:`HttpClient` ``(source, base_url, *, cache, offline, auth, credentials,
  rate_per_second | rate_limiter, timeout=(connect, read), max_attempts, backoff_base,
  backoff_cap, max_bytes, max_download_bytes, pool_size, sleep, rng, libraries, user_agent)``:
  ``get(path_or_url, params, *, expect, headers, content_types, use_cache, refresh, check,
  read_timeout, timeout_resends) -> Reply`` (``refresh``: ask the server even if cached, and
  store the new reply; ``check``: the source's own test, below; ``read_timeout`` and
  ``timeout_resends``: this request's read timeout and how often it is sent again after one),
  ``post(path_or_url, data, *, json_body, params, expect, ...) -> Reply``,
  ``download(path_or_url, directory, filename=None, *, params, max_bytes, overwrite,
  content_types) -> Downloaded`` (``max_bytes`` defaults to ``max_download_bytes``), and
  ``cached_reply``/``store_reply`` for a flow of several requests cached as one (async TAP).
  One pooled ``requests`` session per client; retries on connection errors, timeouts,
  cut-short bodies, 429 and 5xx with Retry-After (capped) or full-jitter backoff; no retry on
  other 4xx. See :mod:`.sending` for why the loop is ours.
- ``expect`` is one of ``json, csv, tsv, xml, votable, text, bytes``: every reply is checked
  (not an HTML page whatever its status or a byte-order mark before it, an accepted content
  type, parseable, complete, within ``max_bytes``) before it is returned or cached. A source
  adds ``check(reply) -> bool`` for error documents sent with status 200 (TAP
  ``QUERY_STATUS=ERROR``, MAST ``status: ERROR``, E-utilities errors): it raises
  ``InvalidReply("service_error", ...)``, or returns False for a valid but unfinished reply
  (MAST ``EXECUTING``); neither is cached. :class:`Reply` has ``body``, ``status``,
  ``content_type``, ``provenance``, ``headers`` (paging ``Link``, ``X-Total-Results``, ...;
  kept in the cache), ``json()``, ``text()`` and ``table()`` (astropy).
- :class:`ResponseCache` ``(directory, expiry_seconds, *, clock)``: on disk, keyed by the
  request and, when it carried credentials, their names and a salted HMAC of their values (a
  reply fetched with a token is never served without it); written atomically; never holds a
  secret. Offline, a client serves cached replies (expired ones too, with a warning) and raises
  :class:`OfflineCacheMiss` naming the request otherwise.
- :mod:`.tap`: TAP for NASA, KOA and ESO: error documents checked, OVERFLOW reported, sync with
  a 600 s read timeout and one re-send at most, or ``mode=async`` (a UWS job, polled).
- Credentials: :class:`Credentials` reads ``MAST_API_TOKEN``, ``NCBI_API_KEY``,
  ``ESO_USERNAME``/``ESO_PASSWORD``, ``ZOONIVERSE_USERNAME``/``ZOONIVERSE_PASSWORD`` from the
  environment or the keyring (service ``astrojax``), as :class:`Secret` values that never print
  or pickle. A client sends them through an ``auth``: :class:`ApiKeyParam`,
  :class:`TokenHeader` or :class:`BasicLogin`. A token obtained at run time (an ESO or
  Zooniverse login) must go through :func:`register_secret`. :func:`redact` and
  :func:`redact_url` scrub known secrets from any text; errors, logs (ours and urllib3's),
  provenance and cache metadata all pass through them.
- Errors: :class:`SourceError` (``source``, ``url`` redacted, ``method``, ``attempts``) and its
  subclasses :class:`HTTPStatusError` (``status``), :class:`CredentialError` (``status``,
  ``credential`` names), :class:`TransportError` (no reply; ``timed_out``),
  :class:`ReplyValidationError` (``reason``: html, content_type, parse, truncated, too_large,
  empty, service_error) and :class:`OfflineCacheMiss`.
- :class:`RateLimiter` ``(rate, *, burst, clock, sleep)``; clients of one host share one through
  ``rate_per_second``. :func:`sanitize_filename` makes an untrusted name safe.
- Sources built on astroquery do their own HTTP: they patch its base URLs (class attributes,
  see the stack notes), and build their record with ``Provenance.create(source, url, body,
  libraries=("astroquery",))``.
"""

from astrojax.data.archives.cache import CachedReply, CacheKey, ResponseCache
from astrojax.data.archives.config import SourceConfig, default_cache_dir
from astrojax.data.archives.credentials import (
    KNOWN_CREDENTIALS,
    ApiKeyParam,
    Auth,
    BasicLogin,
    Credentials,
    Secret,
    TokenHeader,
)
from astrojax.data.archives.errors import (
    CredentialError,
    HTTPStatusError,
    OfflineCacheMiss,
    ReplyValidationError,
    SourceError,
    TransportError,
)
from astrojax.data.archives.files import sanitize_filename
from astrojax.data.archives.http import HttpClient
from astrojax.data.archives.provenance import Provenance, client_string
from astrojax.data.archives.ratelimit import RateLimiter
from astrojax.data.archives.redaction import redact, redact_url, register_secret
from astrojax.data.archives.reply import Downloaded, Reply
from astrojax.data.archives.transport import parse_retry_after
from astrojax.data.archives.validate import EXPECTS

__all__ = [
    "EXPECTS", "KNOWN_CREDENTIALS", "ApiKeyParam", "Auth", "BasicLogin", "CacheKey",
    "CachedReply", "CredentialError", "Credentials", "Downloaded", "HTTPStatusError",
    "HttpClient", "OfflineCacheMiss", "Provenance", "RateLimiter", "Reply",
    "ReplyValidationError", "ResponseCache", "Secret", "SourceConfig", "SourceError",
    "TokenHeader", "TransportError", "client_string", "default_cache_dir", "parse_retry_after",
    "redact", "redact_url", "register_secret", "sanitize_filename",
]
