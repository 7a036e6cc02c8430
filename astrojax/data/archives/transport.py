"""The pieces under the client: a netrc-free session, origins, Retry-After, error summaries."""

import email.utils
from datetime import UTC, datetime
from urllib.parse import urlsplit

import requests

from astrojax.data.archives.redaction import contains_secret, redact, redact_text
from astrojax.data.archives.validate import html_summary, looks_like_html


class Session(requests.Session):
    """A Session that never reads ``~/.netrc``: credentials come only from env or keyring.

    requests consults netrc when a request has no auth, and again on every redirect; a no-op
    session auth stops the first, :meth:`rebuild_auth` the second.
    """

    def __init__(self):
        super().__init__()
        self.auth = _no_auth

    def rebuild_auth(self, prepared_request, response):
        # requests strips only Authorization on a redirect to another host; strip every header
        # that carries a credential (X-Api-Key and the like) too.
        headers = prepared_request.headers
        if self.should_strip_auth(response.request.url, prepared_request.url):
            for name in [n for n, v in headers.items()
                         if n.lower() == "authorization" or contains_secret(v)]:
                del headers[name]


def _no_auth(request):
    return request


def origin(url: str) -> tuple[str, str | None, int | None]:
    """(scheme, host, port) with the default port filled in: credentials stay within one."""
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, parts.hostname, parts.port or default


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def describe(err: BaseException) -> str:
    """A redacted one-line summary of a requests/urllib3 exception (their text holds URLs)."""
    return redact_text(f"{type(err).__name__}: {err}")[:300]


def error_snippet(response: requests.Response, limit: int = 2048) -> str:
    """``": <start of the error body>"`` for a message (an HTML page gives its title)."""
    try:
        head = next(response.iter_content(limit), b"")[:limit]
    except requests.RequestException:
        return ""  # the status already says what failed; a broken error body adds nothing
    if not head.strip():
        return ""
    if looks_like_html(head, response.headers.get("Content-Type")):
        text = html_summary(head)
    else:
        text = " ".join(head.decode("utf-8", "replace").split())[:200]
    return f": {redact(text)}" if text else ""
