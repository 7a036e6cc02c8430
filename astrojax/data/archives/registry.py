"""The source registry: CLI name -> source module, imported only when that source is used."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType

# Each module exposes NAME, DEFAULT_BASE_URL and fetch(config, out_dir, **options) -> FetchResult.
SOURCES: dict[str, str] = {
    "nasa": "astrojax.data.archives.nasa_exoplanet_archive",
    "koa": "astrojax.data.archives.keck",
    **{name: f"astrojax.data.archives.{name}"
       for name in ("exoplanets_org", "planet_hunters", "jwst", "kepler", "tess", "eso",
                    "gemini", "subaru", "ncbi", "ensembl", "uniprot", "gtdb")},
}


class UnknownSourceError(ValueError):
    """A source name not in the registry, or a registered source whose module is unusable."""

    def __init__(self, message: str, source: str) -> None:
        super().__init__(message)
        self.source = source


def source_names() -> tuple[str, ...]:
    """Every registered source name, sorted."""
    return tuple(sorted(SOURCES))


def get_module(name: str) -> ModuleType:
    """The module of source ``name``; :class:`UnknownSourceError` names the source and why."""
    if name not in SOURCES:
        raise UnknownSourceError(f"unknown source {name!r}; expected one of: "
                                 f"{', '.join(source_names())}", source=name)
    path = SOURCES[name]
    try:
        module = importlib.import_module(path)
    except ModuleNotFoundError as err:
        if err.name == path:
            raise UnknownSourceError(f"source {name!r} is registered but its module {path} "
                                     f"is not available", source=name) from err
        raise UnknownSourceError(f"source {name!r} ({path}) needs the package {err.name!r}, "
                                 f"which is not installed", source=name) from err
    if getattr(module, "NAME", None) != name or not callable(getattr(module, "fetch", None)):
        raise UnknownSourceError(f"{path} does not define NAME = {name!r} and fetch(config, "
                                 f"out_dir, **options)", source=name)
    return module


def get_fetch(name: str) -> Callable:
    """``fetch(config, out_dir, **options) -> FetchResult`` of source ``name``."""
    return get_module(name).fetch
