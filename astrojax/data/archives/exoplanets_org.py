"""exoplanets.org (the Exoplanet Orbit Database): its frozen CSV of planets, with units.

The Exoplanet Orbit Database (Wright et al. 2011; Han et al. 2014) stopped being updated in
2018 and its website has since been retired: ``http://exoplanets.org/csv-files/exoplanets.csv``
no longer serves the file, and astroquery deprecated its ``exoplanet_orbit_database`` module in
0.4.7 for that reason (pointing users to the NASA Exoplanet Archive). So this source has no
default address: it needs a mirror of the CSV (one row per planet, several hundred upper-case
columns), given as ``--base-url URL`` or ``SourceConfig.base_urls["exoplanets_org"]``, and says
so in one line when none is given. The file is downloaded once through
:meth:`HttpClient.download` (retries, an HTML page in its place is refused) into the cache
folder ``CACHE/exoplanets_org/files/`` and reused from there, online or offline and with or
without a mirror: a frozen file never needs fetching again. It is parsed with astropy's CSV
reader (empty fields become masked values). For current planets use the ``nasa`` source.

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

import dataclasses
import shutil
from pathlib import Path

import astropy.units as u
from astropy.io import ascii
from astropy.table import Table

from astrojax.data.archives.config import SourceConfig
from astrojax.data.archives.errors import ReplyValidationError
from astrojax.data.archives.http import HttpClient
from astrojax.data.archives.reply import Downloaded
from astrojax.data.archives.result import FetchResult

NAME = "exoplanets_org"
DEFAULT_BASE_URL = None  # retired: a mirror must be given
RETIRED_URL = "http://exoplanets.org"
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


class MirrorRequired(ValueError):
    """exoplanets.org is retired and no mirror was given."""


MIRROR_REQUIRED = (f"{NAME}: exoplanets.org is retired (frozen since 2018, its site no longer "
                   "serves the CSV); give a mirror of csv-files/exoplanets.csv with --base-url "
                   f"URL (or data.sources.base_urls.{NAME}), or use the nasa source")


def exoplanets_org_client(config: SourceConfig) -> HttpClient:
    """A client for the configured mirror; :class:`MirrorRequired` when there is none (the
    client then could only reach the retired site). Offline, no mirror is needed."""
    mirror = config.base_urls.get(NAME)
    if not mirror and not config.offline:
        raise MirrorRequired(MIRROR_REQUIRED)
    return config.client(NAME, mirror or RETIRED_URL)


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
    - ``path``: the file's path under the mirror (default ``csv-files/exoplanets.csv``).

    The mirror is ``base_urls["exoplanets_org"]`` (``--base-url``); without one, only a copy
    already in the cache folder is used, else :class:`MirrorRequired` says what to give.
    ``out_dir`` receives ``exoplanets.csv`` (the file as downloaded) and ``exoplanets.ecsv``.
    """
    out = Path(out_dir)
    folder = config.cache_directory() / NAME / "files"
    reuse_only = not config.base_urls.get(NAME) and _downloaded(folder)
    client_config = dataclasses.replace(config, offline=True) if reuse_only else config
    with exoplanets_org_client(client_config) as client:
        downloaded = download_csv(client, folder, path)
        url = downloaded.provenance.url
    table = read_csv(downloaded.path, url=url)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(downloaded.path, out / CSV_NAME)
    result = FetchResult(NAME, tables={TABLE_NAME: table}, files=[Path(CSV_NAME)],
                         provenance=[downloaded.provenance])
    result.save(out)
    return result


def _downloaded(folder: Path) -> bool:
    """Whether a copy of the CSV (with its provenance record) is already in the cache folder."""
    return (folder / CSV_NAME).is_file() and (folder / f"{CSV_NAME}.provenance.json").is_file()


__all__ = ["COLUMN_UNITS", "DEFAULT_BASE_URL", "NAME", "MirrorRequired", "download_csv",
           "exoplanets_org_client", "fetch", "read_csv"]
