"""Sender: one request sent with retries, backoff, the rate limit and size limits.

Why our own retry loop rather than urllib3's ``Retry``: ``Retry`` honours Retry-After without a
cap, cannot take an injected sleep or a seeded jitter, does not retry a body that times out or
is cut short while it streams, and ends in ``MaxRetryError``, whose text holds the raw URL (and
so a query-parameter key) but not the last status. Here the adapter makes one attempt
(``max_retries=0``) and :meth:`Sender.send` decides:

- connection errors, timeouts (connect, or read while headers or body stream) and bodies cut
  short of their Content-Length are retried; so are 429 and every 5xx;
- the wait is the server's Retry-After (seconds or an HTTP date) capped at ``backoff_cap``, else
  full-jitter exponential backoff: uniform(0, min(cap, base * 2**(attempt - 1)));
- other 4xx are not retried; 401/403 after sending a credential is a CredentialError;
- the final error names the source, the method, the URL without secrets, the attempts and the
  last status or failure. Errors never chain the underlying requests exception (its text can
  hold the raw URL); they carry a redacted summary of it instead.

Every attempt waits on the per-host rate limiter first. POST requests are retried like GETs:
every request this layer sends is a read-only query (TAP, MAST's invoke API).

A read timeout is different from a refused connection: the server got the request and may still
be running it (a TAP query holds the connection until its database is done), so re-sending it
runs the query again. ``timeout_resends`` caps how often a request that timed out is sent again
(TAP sends once more at most); connection failures and 429/5xx keep the full ``max_attempts``.
"""

import functools
import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests
import urllib3

from astrojax.data.archives.credentials import AuthParts
from astrojax.data.archives.errors import (
    CredentialError,
    HTTPStatusError,
    ReplyValidationError,
    SourceError,
    TransportError,
)
from astrojax.data.archives.ratelimit import RateLimiter
from astrojax.data.archives.redaction import LOGGER_NAME, redact_url
from astrojax.data.archives.transport import describe, error_snippet, parse_retry_after
from astrojax.data.archives.validate import InvalidReply

log = logging.getLogger(LOGGER_NAME)
CHUNK_BYTES = 1 << 16


@dataclass(frozen=True)
class Sent:
    response: requests.Response
    value: Any
    attempts: int
    credentials: tuple[str, ...]


class Interrupted(Exception):
    """The body stopped before its end (cut short, timed out): worth another attempt."""

    def __init__(self, truncated: bool, detail: str, timed_out: bool = False):
        super().__init__(detail)
        self.truncated = truncated
        self.detail = detail
        self.timed_out = timed_out


class Sender:
    """Sends requests for the client of ``source`` on its ``session`` (one attempt per adapter
    call; the retries are here). ``consume`` turns a 2xx response into what the caller wants
    (the body in memory, a file on disk) and may raise :class:`InvalidReply` (not retried) or
    :class:`Interrupted` (retried)."""

    def __init__(self, source: str, session: requests.Session, *,
                 limiter: RateLimiter | None, timeout: tuple[float, float], max_attempts: int,
                 backoff_base: float, backoff_cap: float, sleep: Callable[[float], None],
                 rng: random.Random):
        self.source = source
        self.session = session
        self._limiter = limiter
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._sleep = sleep
        self._rng = rng

    def send(self, method: str, url: str, params, data, json_body, headers,
                 consume: Callable[[requests.Response], Any], parts: AuthParts, *,
                 read_timeout: float | None = None,
                 timeout_resends: int | None = None) -> Sent:
        """Sends with retries; returns the response and what ``consume`` made of its body."""
        send_params = {**(params or {}), **parts.params}
        send_headers = {**(headers or {}), **parts.headers}
        timeout = self.timeout if read_timeout is None else (self.timeout[0], read_timeout)
        timeouts = 0  # read timeouts so far: each means the server ran the request
        for attempt in range(1, self.max_attempts + 1):
            if self._limiter is not None:
                self._limiter.acquire()
            retry_after, timed_out = None, False
            try:
                response = self.session.request(
                    method, url, params=send_params, data=data, json=json_body,
                    headers=send_headers, stream=True, timeout=timeout)
            except requests.exceptions.SSLError as err:
                raise TransportError(self.source, url, f"TLS failed: {describe(err)}",
                                     method=method, attempts=attempt) from None
            except (requests.ConnectionError, requests.Timeout) as err:
                timed_out = isinstance(err, requests.ReadTimeout)
                what = "timed out" if isinstance(err, requests.Timeout) else "connection failed"
                failure = functools.partial(TransportError, self.source, url,
                                            f"{what}: {describe(err)}", method=method,
                                            timed_out=timed_out)
            except requests.RequestException as err:  # too many redirects, a bad header, ...
                raise SourceError(self.source, url, describe(err), method=method,
                                  attempts=attempt) from None
            else:
                with response:
                    status = response.status_code
                    if status == 429 or status >= 500:
                        retry_after = parse_retry_after(response.headers.get("Retry-After"))
                        failure = functools.partial(
                            HTTPStatusError, self.source, url,
                            f"{status} {response.reason}{error_snippet(response)}", status=status,
                            method=method)
                    elif status >= 400:
                        raise self._client_error(response, parts, method, url, attempt)
                    elif not 200 <= status < 300:
                        raise HTTPStatusError(self.source, url, f"unexpected status {status}",
                                              status=status, method=method, attempts=attempt)
                    else:
                        try:
                            value = consume(response)
                            return Sent(response, value, attempt, parts.names)
                        except InvalidReply as err:
                            raise ReplyValidationError(self.source, url, err.detail,
                                                       reason=err.reason, method=method,
                                                       attempts=attempt) from None
                        except Interrupted as err:
                            timed_out = err.timed_out
                            failure = (functools.partial(ReplyValidationError, self.source,
                                                         url, err.detail, reason="truncated",
                                                         method=method)
                                       if err.truncated else
                                       functools.partial(TransportError, self.source, url,
                                                         err.detail, method=method,
                                                         timed_out=timed_out))
            timeouts += timed_out
            if timed_out and timeout_resends is not None and timeouts > timeout_resends:
                raise TransportError(
                    self.source, url, f"no reply within the read timeout of {timeout[1]:g} s, "
                    f"{timeouts} time(s); not sent again, since the server runs the request "
                    f"anew each time", method=method, attempts=attempt, timed_out=True)
            if attempt == self.max_attempts:
                raise failure(attempts=attempt)
            wait = (min(retry_after, self.backoff_cap) if retry_after is not None else
                    self._rng.uniform(0, min(self.backoff_cap,
                                             self.backoff_base * 2 ** (attempt - 1))))
            log.warning("%s: %s; retrying in %.2f s (attempt %d of %d, %s %s)", self.source,
                        failure(attempts=attempt).detail, wait, attempt + 1, self.max_attempts,
                        method, redact_url(url))
            self._sleep(wait)
        raise AssertionError("unreachable")

    def _client_error(self, response: requests.Response, parts: AuthParts, method: str,
                      url: str, attempt: int) -> SourceError:
        status = response.status_code
        detail = f"{status} {response.reason}{error_snippet(response)}"
        if status in (401, 403) and parts.names:
            names = " and ".join(parts.names)
            return CredentialError(self.source, url, f"{detail}; the server rejected {names}: "
                                   f"check the environment variable(s) or keyring entry",
                                   status=status, credential=names, method=method,
                                   attempts=attempt)
        return HTTPStatusError(self.source, url, detail, status=status, method=method,
                               attempts=attempt)

    def stream(self, response: requests.Response, limit: int,
                setting: str = "max_bytes") -> Iterator[bytes]:
        """The body in chunks, checked against ``limit`` (named by ``setting`` in the error)
        and its Content-Length."""
        declared = response.headers.get("Content-Length", "")
        declared_n = int(declared) if declared.isdigit() else None
        if declared_n is not None and declared_n > limit:
            raise InvalidReply("too_large", f"body is {declared_n} bytes, over the limit of "
                                            f"{limit} bytes ({setting})")
        received = 0
        try:
            for chunk in response.iter_content(CHUNK_BYTES):
                received += len(chunk)
                if received > limit:
                    raise InvalidReply("too_large", f"body passed the limit of {limit} bytes "
                                                    f"({setting})")
                yield chunk
        except (requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError) as err:
            raise Interrupted(True, f"body cut short after {received} bytes"
                                     f"{f' of {declared_n}' if declared_n else ''}: "
                                     f"{describe(err)}") from None
        except (requests.ConnectionError, requests.Timeout) as err:
            # requests reports a read timeout while streaming as a ConnectionError around
            # urllib3's ReadTimeoutError.
            timed_out = isinstance(err, requests.Timeout) or any(
                isinstance(a, urllib3.exceptions.ReadTimeoutError) for a in err.args)
            raise Interrupted(False, f"body timed out or failed after {received} bytes: "
                                      f"{describe(err)}", timed_out=timed_out) from None
        identity = response.headers.get("Content-Encoding", "identity") == "identity"
        if declared_n is not None and identity and received < declared_n:
            raise Interrupted(True, f"body cut short: {received} of {declared_n} bytes")

    def read_body(self, response: requests.Response, limit: int, setting: str) -> bytes:
        return b"".join(self.stream(response, limit, setting))
