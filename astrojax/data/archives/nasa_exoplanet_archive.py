"""NASA Exoplanet Archive: planets and host stars from the ``pscomppars`` and ``ps`` TAP tables.

REST, not astroquery: ``NasaExoplanetArchive.query_criteria`` sends TAP queries through pyvo's
own session, so it would bypass our retries, cache, offline mode and provenance, and its unit
fixes (``UNIT_MAPPER``) are private. The archive's TAP service (nexsciTAP) is one documented GET
(``TAP/sync?query=ADQL&format=votable``), so we send it through :class:`HttpClient` and parse
the VOTable with astropy. The service answers a bad query with a VOTable whose QUERY_STATUS is
ERROR and status 200; :func:`~astrojax.data.archives.tap.check_votable` raises it before the
client caches anything. A sync query waits up to ``SourceConfig.tap_read_timeout`` (600 s, as
astroquery) and is sent again at most once after timing out; ``mode=async`` runs it as a UWS job
at ``TAP/async`` instead (the archive supports both; see :mod:`.tap`).

Tables (https://exoplanetarchive.ipac.caltech.edu/docs/API_PS_columns.html):
- ``pscomppars``: one row per confirmed planet, each parameter taken from whichever solution
  has it (the default here);
- ``ps``: every published solution, one row each; ``default_flag = 1`` marks the archive's
  chosen one, ``pl_refname`` its reference.

The default columns are those :class:`~astrojax.data.generator.PlanetPopulation` needs (see
:data:`POPULATION_COLUMNS`) with their ``*err1`` (upper) and ``*err2`` (lower, negative)
uncertainties, plus ``pl_name``, ``hostname``, ``discoverymethod`` and ``disc_facility``.

Units: the archive labels VOTable fields with its own strings ("days", "au", "Earth Radius",
"Earth Mass", "Earth Flux", "K", "Solar Radius", "Solar mass", "log(Solar)"), which astropy
reads wrongly or not at all ("Earth Radius" parses as the product of two unknown units), so
each column's unit is set from the raw FIELD attribute through :data:`UNIT_MAP`, which also
takes the VOUnit spellings (earthRad, earthMass, AU, day, solRad, solMass, log10(solLum)):

    days, day, d                  -> day          Earth Radius, earthRad, Rearth -> earthRad
    au, AU                        -> AU           Earth Mass, earthMass, Mearth  -> earthMass
    K, kelvin                     -> K            Solar Radius, solRad, Rsun     -> solRad
    Solar mass, solMass, Msun     -> solMass      log(Solar), log10(solLum)      -> dex(solLum)
    Earth Flux, Searth            -> L_sun / (4 pi AU^2)  (Earth's insolation, 1361 W m^-2)

A unit string not in the map is tried as VOUnit; failing that the column gets no unit and its
raw string is kept in ``table.meta["unmapped_units"]``.
"""

from __future__ import annotations

import logging
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import astropy.units as u
from astropy.table import Table

from astrojax.data.archives.config import SourceConfig
from astrojax.data.archives.http import HttpClient
from astrojax.data.archives.options import int_option
from astrojax.data.archives.provenance import Provenance
from astrojax.data.archives.redaction import LOGGER_NAME
from astrojax.data.archives.result import FetchResult
from astrojax.data.archives.tap import SYNC, TapSettings, mark_overflow, run_query

log = logging.getLogger(LOGGER_NAME)

NAME = "nasa"
DEFAULT_BASE_URL = "https://exoplanetarchive.ipac.caltech.edu/TAP"
TABLES = ("pscomppars", "ps")

# Archive column -> PlanetPopulation field it feeds. pl_bmasse is the "best" mass: the true
# mass where measured, else M sin i.
POPULATION_COLUMNS = {
    "st_teff": "star_teff_k",
    "st_rad": "star_radius_rsun",
    "st_mass": "star_mass_msun",
    "st_lum": "star_luminosity_lsun",  # log10(L/Lsun) in the archive
    "pl_orbsmax": "semi_major_axis_au",
    "pl_orbper": "orbital_period_days",
    "pl_orbeccen": "eccentricity",
    "pl_rade": "planet_radius_rearth",
    "pl_bmasse": "planet_mass_mearth",
    "pl_insol": "insolation_searth",
    "pl_eqt": "equilibrium_temperature_k",
}
IDENTITY_COLUMNS = ("pl_name", "hostname", "discoverymethod", "disc_facility")
PS_ONLY_COLUMNS = ("default_flag", "pl_refname")


def default_columns(table: str = "pscomppars") -> list[str]:
    """The identity columns, then each population parameter with its err1/err2 columns."""
    columns = list(IDENTITY_COLUMNS)
    for name in POPULATION_COLUMNS:
        columns += [name, f"{name}err1", f"{name}err2"]
    if table == "ps":
        columns += PS_ONLY_COLUMNS
    return columns


EARTH_FLUX = u.L_sun / (4 * math.pi * u.au**2)
_UNIT_SPELLINGS: dict[u.UnitBase, tuple[str, ...]] = {
    u.day: ("days", "day", "d"),
    u.hour: ("hours", "hour", "hrs", "h"),
    u.au: ("au",),
    u.pc: ("pc", "parsec"),
    u.earthRad: ("earth radius", "earthrad", "rearth", "r_earth"),
    u.jupiterRad: ("jupiter radius", "jupiterrad", "rjup", "rjupiter"),
    u.earthMass: ("earth mass", "earthmass", "mearth", "m_e"),
    u.jupiterMass: ("jupiter mass", "jupitermass", "mjup", "mjupiter", "m_j"),
    EARTH_FLUX: ("earth flux", "searth", "fearth"),
    u.K: ("k", "kelvin"),
    u.solRad: ("solar radius", "solrad", "rsun", "r_sun"),
    u.solMass: ("solar mass", "solmass", "msun"),
    u.dex(u.solLum): ("log(solar)", "log10(sollum)", "log(lsun)", "loglsun", "[sollum]"),
    u.dex(u.cm / u.s**2): ("log10(cm/s**2)", "log(cm/s**2)", "dexincgs"),
    u.deg: ("deg", "degrees"),
    u.mas: ("mas",),
    u.g / u.cm**3: ("g/cm**3",),
    u.mag: ("mag", "mags"),
    u.Gyr: ("gyr",),
    u.km / u.s: ("km/s",),
    u.m / u.s: ("m/s",),
}
UNIT_MAP: dict[str, u.UnitBase] = {
    spelling: unit for unit, spellings in _UNIT_SPELLINGS.items() for spelling in spellings}


def archive_unit(text: str | None) -> u.UnitBase | None:
    """The astropy unit for one of the archive's unit strings; None for none or unknown."""
    if text is None or not text.strip() or text.strip() == "--":
        return None
    key = text.strip().lower()
    if key in UNIT_MAP:
        return UNIT_MAP[key]
    try:
        return u.Unit(text.strip(), format="vounit")
    except ValueError:
        return None


def nasa_client(config: SourceConfig) -> HttpClient:
    return config.client(NAME, DEFAULT_BASE_URL)


def build_query(table: str = "pscomppars", *, columns: list[str] | None = None,
                where: str | None = None, max_rows: int | None = None) -> str:
    """The ADQL for one of :data:`TABLES` (``select [top N] COLUMNS from TABLE [where ...]``)."""
    if table not in TABLES:
        raise ValueError(f"{NAME}: table must be one of {TABLES}, got {table!r}")
    if max_rows is not None and max_rows < 1:
        raise ValueError(f"{NAME}: max_rows must be >= 1, got {max_rows}")
    select = ",".join(columns or default_columns(table))
    top = f"top {max_rows} " if max_rows else ""
    clause = f" where {where}" if where and where.strip() else ""
    return f"select {top}{select} from {table}{clause}"


def query_tap(client: HttpClient, adql: str, tap: TapSettings = SYNC) -> Table:
    """Runs one ADQL query (sync or, with ``tap.mode="async"``, as a job); returns the table
    with archive units mapped.

    A TAP error document (status 200 or not) raises
    :class:`~astrojax.data.archives.ReplyValidationError` (reason ``service_error``) with the
    service's message. ``table.meta["overflow"]`` is True when the service cut the result at its
    row limit; ``meta["query"]`` holds the ADQL, ``meta["provenance"]`` the request's record.
    """
    reply = run_query(client, "", {"query": adql, "format": "votable"}, tap)
    root = ET.fromstring(reply.body)
    table = reply.table()
    unmapped = {}
    for name, raw in _field_units(root).items():
        if name not in table.colnames:
            continue
        unit = archive_unit(raw)
        if raw and unit is None:
            unmapped[name] = raw
        table[name].unit = unit
    if unmapped:
        log.warning("%s: no astropy unit for %s", NAME, unmapped)
        table.meta["unmapped_units"] = unmapped
    table.meta["query"] = adql
    reply = mark_overflow(table, reply, "the ADQL's top, else the archive's own")
    table.meta["provenance"] = reply.provenance.to_dict()
    return table


def query_pscomppars(client: HttpClient, *, where: str | None = None,
                     columns: list[str] | None = None, max_rows: int | None = None,
                     tap: TapSettings = SYNC) -> Table:
    """One row per confirmed planet (composite parameters)."""
    return query_tap(client, build_query("pscomppars", columns=columns, where=where,
                                         max_rows=max_rows), tap)


def query_ps(client: HttpClient, *, where: str | None = None, columns: list[str] | None = None,
             max_rows: int | None = None, tap: TapSettings = SYNC) -> Table:
    """Every published solution (``where="default_flag = 1"`` keeps the archive's choice)."""
    return query_tap(client, build_query("ps", columns=columns, where=where,
                                         max_rows=max_rows), tap)


def fetch(config: SourceConfig, out_dir: Path, *, table: str = "pscomppars",
          where: str | None = None, columns: str | None = None,
          max_rows: int | str | None = None, mode: str = "sync") -> FetchResult:
    """Queries the archive and saves one table named after it under ``out_dir``.

    Options:
    - ``table``: ``pscomppars`` (one row per planet, default) or ``ps`` (all solutions);
    - ``where``: an ADQL condition, e.g. ``"pl_rade < 2 and st_teff < 4000"`` (default none);
    - ``columns``: a comma-separated column list (default :func:`default_columns`);
    - ``max_rows``: at most this many rows (ADQL ``top``; default all);
    - ``mode``: ``sync`` (default) or ``async``: the query runs as a job on the archive, polled
      until done, for queries that outlast the sync read timeout (``tap_read_timeout``).
    """
    rows = int_option("max_rows", max_rows, 1) if max_rows not in (None, "") else None
    names = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    adql = build_query(table, columns=names, where=where, max_rows=rows)
    tap = TapSettings.create(config, NAME, mode)
    with nasa_client(config) as client:
        result_table = query_tap(client, adql, tap)
    result = FetchResult(NAME, tables={table: result_table},
                         provenance=[_provenance_of(result_table)])
    if result_table.meta["overflow"]:
        result.skipped.append(f"{table} rows after {len(result_table)}: the TAP service "
                              "stopped at its row limit (QUERY_STATUS OVERFLOW)")
    result.save(out_dir)
    return result


def _provenance_of(table: Table) -> Provenance:
    return Provenance.from_dict(table.meta["provenance"])


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _field_units(root: ET.Element) -> dict[str, str | None]:
    return {e.get("name"): e.get("unit") for e in root.iter() if _local(e.tag) == "FIELD"}


__all__ = ["DEFAULT_BASE_URL", "NAME", "POPULATION_COLUMNS", "TABLES", "UNIT_MAP",
           "archive_unit", "build_query", "default_columns", "fetch", "nasa_client",
           "query_ps", "query_pscomppars", "query_tap"]
