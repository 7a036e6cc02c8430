"""Safe local file names for downloads, and atomic writes (temp file in place, then rename)."""

import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlsplit

MAX_NAME_BYTES = 200
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"|?*]')
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$", re.IGNORECASE)


def sanitize_filename(name: str) -> str:
    """A plain file name from an untrusted one (a URL path, a Content-Disposition, a catalogue).

    Keeps only the last path component (``/`` and ``\\`` both count), drops control and shell
    special characters, leading dots and spaces (so no ``..``, no hidden files), prefixes
    Windows device names, and shortens to 200 UTF-8 bytes keeping the extension. Raises
    ValueError when nothing usable is left.
    """
    text = unicodedata.normalize("NFC", name)
    text = re.split(r"[/\\]", text)[-1]
    text = _UNSAFE.sub("_", text).strip().lstrip(". ").rstrip(". ")
    if not text:
        raise ValueError(f"no usable file name in {name!r}")
    if _WINDOWS_RESERVED.match(text):
        text = "_" + text
    if len(text.encode()) > MAX_NAME_BYTES:
        stem, dot, ext = text.rpartition(".")
        ext = (dot + ext) if dot and len(ext.encode()) <= 16 else ""
        stem = text[: len(text) - len(ext)]
        while len((stem + ext).encode()) > MAX_NAME_BYTES:
            stem = stem[:-1]
        text = stem + ext
    return text


def filename_from_url(url: str) -> str | None:
    """The sanitised last path segment of ``url`` (percent-decoded), or None if there is none."""
    segment = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    try:
        return sanitize_filename(segment)
    except ValueError:
        return None


def safe_path(directory: Path, filename: str) -> Path:
    """``directory / sanitize_filename(filename)``, checked to stay inside ``directory``."""
    root = directory.resolve()
    target = root / sanitize_filename(filename)
    if target.parent != root:
        raise ValueError(f"file name {filename!r} would leave {root}")
    return target


def atomic_write(path: Path, chunks: Iterable[bytes]) -> int:
    """Writes ``chunks`` to a temp file beside ``path`` and renames it over ``path``.

    Returns the bytes written. A reader never sees a partial file; on any error (including an
    exception raised by the iterator) the temp file is removed and ``path`` is untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-", suffix=".tmp")
    written = 0
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
                written += len(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return written
