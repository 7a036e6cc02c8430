"""Keeps secrets out of text: a registry of secret values and the helpers that scrub them.

Every credential value read by :class:`~astrojax.data.archives.credentials.Credentials` (and any
token a source obtains at run time, through :func:`register_secret`) is registered here.
:func:`redact` then removes those values, in plain and URL-encoded form, from any string: error
messages, log records, provenance, cache metadata. URLs are also scrubbed by parameter name
(``api_key``, ``token``, S3 signatures, ...) and lose any ``user:password@`` part, which catches
secrets that were never registered (a presigned download link, a key typed into a URL).
"""

import base64
import logging
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

LOGGER_NAME = "astrojax.data.archives"
MASK = "***"

# Query parameters whose values are secret whatever their value (matched case-insensitively).
SECRET_PARAM_NAMES = frozenset({
    "api_key", "apikey", "api-key", "access_token", "token", "auth", "authorization",
    "password", "passwd", "secret", "client_secret", "signature", "sig",
    "x-amz-signature", "x-amz-credential", "x-amz-security-token",
})

_lock = threading.Lock()
_secrets: set[str] = set()
_forms: tuple[str, ...] = ()  # every registered value in every form, longest first


def register_secret(value: str) -> None:
    """Adds a value to the redaction registry (its URL-encoded forms are covered too)."""
    global _forms
    if not value:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        forms = {f for s in _secrets for f in (s, quote(s, safe=""), quote_plus(s))}
        _forms = tuple(sorted(forms, key=len, reverse=True))


def register_basic_auth(username: str, password: str) -> None:
    """Registers a login and the base64 form it takes in an ``Authorization: Basic`` header."""
    register_secret(username)
    register_secret(password)
    register_secret(base64.b64encode(f"{username}:{password}".encode()).decode())


def redact(text: str) -> str:
    """``text`` with every registered secret value replaced by ``***``."""
    for form in _forms:
        if form in text:
            text = text.replace(form, MASK)
    return text


def contains_secret(data: bytes | str) -> bool:
    """Whether any registered secret value occurs in ``data`` (checked before caching)."""
    if isinstance(data, bytes):
        return any(form.encode() in data for form in _forms)
    return any(form in data for form in _forms)


def redact_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of ``params`` with secret-named values masked and registered secrets redacted."""
    out: dict[str, Any] = {}
    for key, value in (params or {}).items():
        if key.lower() in SECRET_PARAM_NAMES:
            out[key] = MASK
        elif isinstance(value, list | tuple):
            out[key] = [redact(str(v)) for v in value]
        elif isinstance(value, str):
            out[key] = redact(value)
        else:
            out[key] = value
    return out


def redact_url(url: str) -> str:
    """``url`` without ``user:password@``, with secret-named query values masked, redacted."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in SECRET_PARAM_NAMES for k, _ in pairs):
            query = urlencode([(k, MASK if k.lower() in SECRET_PARAM_NAMES else v)
                               for k, v in pairs], safe="*")
    return redact(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))


def redact_text(text: str) -> str:
    """:func:`redact`, and :func:`redact_url` on every word of ``text`` that has a query."""
    text = redact(text)
    if "?" in text:
        text = " ".join(redact_url(w) if "?" in w else w for w in text.split(" "))
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a log record's message with secrets redacted (secret-named URL params too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_text(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


def install_log_redaction() -> None:
    """Puts a :class:`RedactingFilter` on our logger and on urllib3's, which logs request URLs.

    urllib3 writes ``"GET /path?api_key=... HTTP/1.1" 200`` at DEBUG level, so turning on debug
    logging would otherwise print a query-parameter key.
    """
    for name in (LOGGER_NAME, "urllib3.connectionpool"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())
