"""The errors every archive client raises: each names the source and the (redacted) request."""

from astrojax.data.archives.redaction import redact, redact_url


class SourceError(Exception):
    """A request to an archive failed; the message names the source, the method and the URL.

    The URL is shown with credentials removed and every known secret value is redacted from the
    whole message, so the error can be logged and shown as it is.
    """

    def __init__(self, source: str, url: str, detail: str, *, method: str = "GET",
                 attempts: int | None = None):
        self.source = source
        self.url = redact_url(url)
        self.method = method
        self.attempts = attempts
        self.detail = redact(detail)
        tried = f"; {attempts} attempt{'s' if attempts != 1 else ''}" if attempts else ""
        super().__init__(f"{source}: {self.detail} ({method} {self.url}{tried})")

    def __reduce__(self):
        # Survives pickling (worker processes) although __init__ takes more than the message.
        return _restore, (type(self), self.args, self.__dict__)


def _restore(cls, args, state):
    error = Exception.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class HTTPStatusError(SourceError):
    """The server answered with an error status (after retries, for 429 and 5xx)."""

    def __init__(self, source: str, url: str, detail: str, *, status: int, method: str = "GET",
                 attempts: int | None = None):
        self.status = status
        super().__init__(source, url, detail, method=method, attempts=attempts)


class CredentialError(SourceError):
    """A credential is missing, or the server rejected the one sent (401/403)."""

    def __init__(self, source: str, url: str, detail: str, *, status: int | None = None,
                 credential: str | None = None, method: str = "GET",
                 attempts: int | None = None):
        self.status = status
        self.credential = credential
        super().__init__(source, url, detail, method=method, attempts=attempts)


class TransportError(SourceError):
    """No reply: the connection failed or timed out on every attempt.

    ``timed_out`` is True when the last attempt waited out the read timeout: the server got the
    request and may still be working on it.
    """

    def __init__(self, source: str, url: str, detail: str, *, method: str = "GET",
                 attempts: int | None = None, timed_out: bool = False):
        self.timed_out = timed_out
        super().__init__(source, url, detail, method=method, attempts=attempts)


class ReplyValidationError(SourceError):
    """A reply arrived but is not what was asked for.

    ``reason`` is one of ``REASONS``: an HTML page where data was expected (often with status
    200), a wrong content type, a body that does not parse, a body shorter than its
    Content-Length, a body over the size limit, an empty body, or a well-formed error document
    in which the service reports that the request failed (``service_error``: a TAP
    ``QUERY_STATUS=ERROR``, MAST ``status: ERROR``, an E-utilities error). None is cached.
    """

    REASONS = ("html", "content_type", "parse", "truncated", "too_large", "empty",
               "service_error")

    def __init__(self, source: str, url: str, detail: str, *, reason: str, method: str = "GET",
                 attempts: int | None = None):
        if reason not in self.REASONS:
            raise ValueError(f"reason must be one of {self.REASONS}, got {reason!r}")
        self.reason = reason
        super().__init__(source, url, detail, method=method, attempts=attempts)


class OfflineCacheMiss(SourceError):
    """Offline mode, and the request has no cached reply (the message names the request)."""
