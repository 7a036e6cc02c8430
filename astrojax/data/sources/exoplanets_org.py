"""exoplanets.org (the Exoplanet Orbit Database): its frozen CSV of planets, with units.

The Exoplanet Orbit Database (Wright et al. 2011; Han et al. 2014) stopped being updated in
2018; what remains is a static file, ``http://exoplanets.org/csv-files/exoplanets.csv``, one row
per planet and several hundred upper-case columns. There is no query API, and astroquery does
not cover it, so the file is downloaded once through :meth:`HttpClient.download` (retries, an
HTML page in its place is refused) into the cache folder ``CACHE/exoplanets_org/files/`` and
reused from there, online or offline: a frozen file never needs fetching again. It is parsed
with astropy's CSV reader (empty fields become masked values).

Units are set on the key columns and their uncertainty columns (``XUPPER``, ``XLOWER`` and
``UX``, the symmetric one, carry the unit of ``X``), from the database's column documentation:

    NAME   planet name                      STAR, OTHERNAME     host and other names
    MSINI  minimum mass, Jupiter masses     MASS   true mass (transits, astrometry), M_Jup
    R      planet radius, Jupiter radii     A      semi-major axis, AU
    PER    orbital period, days             ECC    eccentricity (no unit)
    TEFF   stellar T_eff, K                 RSTAR, MSTAR  stellar radius, mass (solar units)
    DIST   distance, pc                     K      RV semi-amplitude, m/s
    I      inclination, degrees             TRANSIT  1 when the planet transits

Every other column is kept as read, without a unit.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import astropy.units as u
from astropy.io import ascii
from astropy.table import Table

from astrojax.data.sources.config import SourceConfig
from astrojax.data.sources.errors import ReplyValidationError
from astrojax.data.sources.http import HttpClient
from astrojax.data.sources.reply import Downloaded
from astrojax.data.sources.result import FetchResult

NAME = "exoplanets_org"
DEFAULT_BASE_URL = "http://exoplanets.org"
CSV_PATH = "csv-files/exoplanets.csv"
CSV_NAME = "exoplanets.csv"
TABLE_NAME = "exoplanets"

COLUMN_UNITS: dict[str, u.UnitBase] = {
    "MSINI": u.jupiterMass,
    "MASS": u.jupiterMass,
    "R": u.jupiterRad,
    "A": u.au,
    "PER": u.day,
    "TEFF": u.K,
    "RSTAR": u.solRad,
    "MSTAR": u.solMass,
    "DIST": u.pc,
    "K": u.m / u.s,
    "I": u.deg,
}
REQUIRED_COLUMNS = ("NAME", "MSINI", "A", "PER")


def exoplanets_org_client(config: SourceConfig) -> HttpClient:
    return config.client(NAME, DEFAULT_BASE_URL)


def download_csv(client: HttpClient, directory: Path, path: str = CSV_PATH) -> Downloaded:
    """The CSV in ``directory`` (downloaded once, then reused; offline only reused)."""
    return client.download(path, directory, CSV_NAME)


def read_csv(path: Path, *, url: str = "") -> Table:
    """Parses the database's CSV and sets the units of :data:`COLUMN_UNITS` and their errors.

    Raises :class:`ReplyValidationError` (source ``exoplanets_org``) when the file does not
    parse or lacks the columns that make it this database's file.
    """
    try:
        table = ascii.read(path, format="csv", guess=False)
    except Exception as err:  # astropy raises several types for a malformed file
        raise ReplyValidationError(NAME, url or str(path), f"{path.name} does not parse as "
                                   f"CSV: {err}", reason="parse") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in table.colnames]
    if missing:
        raise ReplyValidationError(NAME, url or str(path), f"{path.name} lacks the columns "
                                   f"{missing}: not the exoplanets.org CSV", reason="parse")
    for column, unit in COLUMN_UNITS.items():
        for name in (column, f"{column}UPPER", f"{column}LOWER", f"U{column}"):
            if name in table.colnames and table[name].dtype.kind in "iuf":
                table[name].unit = unit
    table.meta["description"] = ("Exoplanet Orbit Database (exoplanets.org), frozen since "
                                 "2018")
    return table


def fetch(config: SourceConfig, out_dir: Path, *, path: str = CSV_PATH) -> FetchResult:
    """Downloads (or reuses) the frozen CSV and saves it with the ``exoplanets`` table.

    Options:
    - ``path``: the file's path under the base URL (default ``csv-files/exoplanets.csv``;
      point ``base_urls["exoplanets_org"]`` at a mirror to fetch a copy kept elsewhere).

    ``out_dir`` receives ``exoplanets.csv`` (the file as downloaded) and ``exoplanets.ecsv``.
    """
    out = Path(out_dir)
    with exoplanets_org_client(config) as client:
        downloaded = download_csv(client, config.cache_directory() / NAME / "files", path)
        url = client.url_for(path)
    table = read_csv(downloaded.path, url=url)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(downloaded.path, out / CSV_NAME)
    result = FetchResult(NAME, tables={TABLE_NAME: table}, files=[Path(CSV_NAME)],
                         provenance=[downloaded.provenance])
    result.save(out)
    return result


__all__ = ["COLUMN_UNITS", "DEFAULT_BASE_URL", "NAME", "download_csv", "exoplanets_org_client",
           "fetch", "read_csv"]
