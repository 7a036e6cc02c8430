"""SourceConfig: the settings every archive client takes (base URLs, cache, offline, limits)."""

import dataclasses
import os
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from astrojax.config import ConfigError
from astrojax.data.archives.cache import ResponseCache
from astrojax.data.archives.http import HttpClient


def default_cache_dir() -> Path:
    """``$ASTROJAX_CACHE/sources``, else ``~/.cache/astrojax/sources``."""
    root = os.environ.get("ASTROJAX_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "astrojax") / "sources"


@dataclasses.dataclass
class SourceConfig:
    """Shared settings for the archive clients (typed, validated like the run config).

    ``base_urls`` maps a source name to a URL that replaces its default (a mirror, or a test
    server on 127.0.0.1). ``cache_dir=""`` means :func:`default_cache_dir`. With ``offline``
    every reply must come from the cache.

    ``max_bytes`` bounds a reply held in memory; ``max_download_bytes`` a file streamed to disk
    (GTDB metadata and MAST products run to hundreds of MB or more). ``tap_read_timeout`` is the
    read timeout of a synchronous TAP query, which holds the connection until the database is
    done (astroquery's NASA archive client waits 600 s); ``tap_wait_seconds`` is how long an
    asynchronous TAP job (``mode=async``) is polled before it is aborted.
    """

    base_urls: dict[str, str] = dataclasses.field(default_factory=dict)
    cache_dir: str = ""
    expiry_seconds: float = 7 * 86400.0
    offline: bool = False
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_attempts: int = 4
    max_bytes: int = 256 * 2**20
    max_download_bytes: int = 16 * 2**30
    tap_read_timeout: float = 600.0
    tap_wait_seconds: float = 3600.0

    KEY: ClassVar[str] = "data.sources"  # where it sits in the run config, for error messages

    def validate(self) -> "SourceConfig":
        for name, url in self.base_urls.items():
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(f"{self.KEY}.base_urls.{name}",
                                  f"must be an http(s) URL, got {url!r}")
        positive = {"expiry_seconds": self.expiry_seconds, "connect_timeout":
                    self.connect_timeout, "read_timeout": self.read_timeout,
                    "max_attempts": self.max_attempts, "max_bytes": self.max_bytes,
                    "max_download_bytes": self.max_download_bytes,
                    "tap_read_timeout": self.tap_read_timeout,
                    "tap_wait_seconds": self.tap_wait_seconds}
        for name, value in positive.items():
            if not value > 0:
                raise ConfigError(f"{self.KEY}.{name}", f"must be > 0, got {value!r}")
        return self

    def base_url(self, source: str, default: str) -> str:
        return self.base_urls.get(source, default)

    def cache_directory(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()

    def make_cache(self) -> ResponseCache:
        return ResponseCache(self.cache_directory(), self.expiry_seconds)

    def client(self, source: str, default_base_url: str, **overrides: Any) -> HttpClient:
        """An :class:`HttpClient` for ``source`` with these settings (``overrides`` win).

        Source modules pass what is theirs: ``auth``, ``rate_per_second``, ``libraries``.
        """
        self.validate()
        settings: dict[str, Any] = dict(
            cache=self.make_cache(), offline=self.offline,
            timeout=(self.connect_timeout, self.read_timeout),
            max_attempts=self.max_attempts, max_bytes=self.max_bytes,
            max_download_bytes=self.max_download_bytes)
        settings.update(overrides)
        return HttpClient(source, self.base_url(source, default_base_url), **settings)
