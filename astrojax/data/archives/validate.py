"""Checks that a reply body is what was asked for: not an HTML page, right type, parseable.

Archives answer failures in many ways besides an error status: a maintenance page with status
200, a JSON error object in place of a CSV, a body cut short. Every reply the client returns has
passed :func:`check_body` for the kind of data the caller expected.

Some services go further and report a failed query inside a well-formed reply with status 200:
a TAP VOTable with ``QUERY_STATUS=ERROR``, a MAST JSON ``status: ERROR``, an E-utilities
``ERROR`` field. Those are recognised by a check of the source's own, which the client runs
before it caches anything (``HttpClient.request(check=...)``) and which raises
:class:`InvalidReply` with the reason ``service_error``.
"""

import csv
import io
import json
import re
from typing import Any
from xml.parsers import expat

EXPECTS = ("json", "csv", "tsv", "xml", "votable", "text", "bytes")

# Content types accepted for each expected kind; a missing Content-Type is accepted and the body
# decides. Servers often label data text/plain or application/octet-stream, so those pass where
# the body can still be checked.
CONTENT_TYPES: dict[str, tuple[str, ...]] = {
    "json": ("application/json", "text/json", "+json", "text/plain", "application/javascript"),
    "csv": ("text/csv", "application/csv", "text/comma-separated-values", "text/plain",
            "application/octet-stream"),
    "tsv": ("text/tab-separated-values", "text/tsv", "text/csv", "text/plain",
            "application/octet-stream"),
    "xml": ("xml",),
    "votable": ("xml", "votable"),
    "text": ("text/", "application/json", "xml"),
    "bytes": ("",),
}
_HTML_TYPES = ("text/html", "application/xhtml+xml")
# An error page is often written by an editor or a framework that puts a UTF-8 byte-order mark
# first (Windows tools, some Java servers); the mark must not hide the page.
_HTML_HEAD = re.compile(rb"^(?:\xef\xbb\xbf)?\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*"
                        rb"(<!doctype\s+html|<html)", re.IGNORECASE | re.DOTALL)
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class InvalidReply(ValueError):
    """Raised by :func:`check_body`; the client turns it into ReplyValidationError."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def charset(content_type: str | None, default: str = "utf-8") -> str:
    match = re.search(r"charset=\"?([\w.:-]+)", content_type or "", re.IGNORECASE)
    return match.group(1) if match else default


def looks_like_html(body: bytes, content_type: str | None) -> bool:
    return media_type(content_type) in _HTML_TYPES or bool(_HTML_HEAD.match(body[:2048]))


def html_summary(body: bytes) -> str:
    """The page title (or the first words of the page), for error messages."""
    match = _TITLE.search(body[:8192])
    text = match.group(1) if match else re.sub(rb"<[^>]+>", b" ", body[:2048])
    words = " ".join(text.decode("utf-8", "replace").split())
    return words[:120]


def decode(body: bytes, content_type: str | None) -> str:
    """The body as text; a UTF-8 byte-order mark is dropped (RFC 8259 lets a JSON reader skip
    it, and csv/tsv readers would otherwise glue it to the first column name)."""
    name = charset(content_type)
    if name.lower().replace("_", "-") in ("utf-8", "utf8"):
        name = "utf-8-sig"
    try:
        return body.decode(name)
    except (UnicodeDecodeError, LookupError) as err:
        raise InvalidReply("parse", f"body is not valid {charset(content_type)} text: "
                                    f"{err}") from None


def check_body(body: bytes, content_type: str | None, expect: str,
               content_types: tuple[str, ...] | None = None) -> Any:
    """Checks ``body`` against ``expect``; returns the parsed JSON for ``"json"``, else None.

    ``content_types`` replaces the accepted list (substrings of the media type) for sources
    whose server labels its data oddly.
    """
    if expect not in EXPECTS:
        raise ValueError(f"expect must be one of {EXPECTS}, got {expect!r}")
    if looks_like_html(body, content_type):
        raise InvalidReply("html", f"expected {expect} but the server sent an HTML page "
                                   f"({html_summary(body)!r})")
    media = media_type(content_type)
    accepted = content_types if content_types is not None else CONTENT_TYPES[expect]
    if media and not any(a in media for a in accepted):
        raise InvalidReply("content_type", f"expected {expect} but the content type is "
                                           f"{content_type!r}")
    if not body:
        if expect == "text":
            return None
        raise InvalidReply("empty", f"expected {expect} but the body is empty")
    if expect == "json":
        try:
            return json.loads(decode(body, content_type))
        except json.JSONDecodeError as err:
            raise InvalidReply("parse", f"body is not valid JSON: {err}") from None
    if expect in ("csv", "tsv"):
        _check_table(decode(body, content_type), "," if expect == "csv" else "\t", expect)
    elif expect in ("xml", "votable"):
        root = _check_xml(body)
        if expect == "votable" and root.rpartition(" ")[2] != "VOTABLE":
            raise InvalidReply("parse", f"expected a VOTable but the XML root is <{root}>")
    elif expect == "text":
        decode(body, content_type)
    return None


def _check_table(text: str, delimiter: str, expect: str) -> None:
    lines = (line for line in io.StringIO(text, newline="") if not line.startswith("#"))
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        if not header or header == [""]:
            raise InvalidReply("parse", f"{expect} body has no header row")
        for number, row in enumerate(reader, start=1):
            if row and len(row) != len(header):
                raise InvalidReply("parse", f"{expect} data row {number} has {len(row)} "
                                            f"fields but the header has {len(header)}")
    except csv.Error as err:
        raise InvalidReply("parse", f"{expect} body does not parse: {err}") from None


def _check_xml(body: bytes) -> str:
    """Parses the whole document (expat, no tree built); returns the root element's name."""
    parser = expat.ParserCreate(namespace_separator=" ")
    roots: list[str] = []

    def start(name, attrs):
        if not roots:
            roots.append(name)

    parser.StartElementHandler = start
    try:
        parser.Parse(body, True)
    except expat.ExpatError as err:
        raise InvalidReply("parse", f"body is not well-formed XML: {err}") from None
    return roots[0] if roots else ""
