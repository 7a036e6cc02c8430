"""ESO Science Archive: raw and reduced observation metadata over TAP, optional downloads.

REST, not astroquery: astroquery 0.4.11's ``astroquery.eso`` still scrapes the WDB HTML query
forms (``archive.eso.org/wdb/wdb/eso/...``), which ESO has deprecated in favour of its TAP
service; only later astroquery releases moved to TAP. ESO's TAP (``tap_obs/sync``) is a plain
IVOA endpoint, so we send ADQL through our :class:`HttpClient` (retries, cache, validation) and
read the VOTable with astropy, which keeps the units the service declares (``deg``, ``s``,
``kbyte``). A query error comes back as a VOTable with ``QUERY_STATUS=ERROR`` and is never
cached; long queries can run as asynchronous jobs (``mode=async``, ``tap_obs/async``); see
:mod:`.tap`.

Tables: ``dbo.raw`` (every raw frame, ``product="raw"``) and ``ivoa.ObsCore`` (Phase 3 reduced
products, ``product="reduced"``). Metadata is public. Files come from the data portal
(``dataportal.eso.org/dataPortal/file/DP_ID``): public ones without login, proprietary ones
(release date in the future) with ESO's documented token login: ``ESO_USERNAME`` and
``ESO_PASSWORD`` are exchanged at ``www.eso.org/sso/oidc/token`` (``grant_type=password``,
``client_id=clientid``) for an ID token, which is registered for redaction the moment it
arrives and sent as ``Authorization: Bearer`` to the data portal only. The login reply is never
cached. As in ESO's own example script, the login is a GET over HTTPS with the
credentials as query parameters; both are registered secrets and ``password`` is a
secret-named parameter, so neither reaches an error, a log or the provenance. Without the
credentials, proprietary files are listed in ``skipped``.

Base URL names (``SourceConfig.base_urls``): ``eso`` (TAP), ``eso-sso`` (login),
``eso-dataportal`` (downloads).
"""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path
from typing import Any

import astropy.units as u
from astropy.table import Table

from astrojax.data.archives.config import SourceConfig
from astrojax.data.archives.credentials import Credentials, TokenHeader
from astrojax.data.archives.errors import (
    CredentialError,
    HTTPStatusError,
    SourceError,
)
from astrojax.data.archives.files import sanitize_filename
from astrojax.data.archives.http import HttpClient
from astrojax.data.archives.options import int_option, position
from astrojax.data.archives.provenance import Provenance
from astrojax.data.archives.redaction import register_secret
from astrojax.data.archives.reply import Reply
from astrojax.data.archives.result import FetchResult
from astrojax.data.archives.tap import SYNC, TapSettings, adql_string, cone, set_units, tap_query

NAME = "eso"
DEFAULT_BASE_URL = "https://archive.eso.org"
SSO_URL = "https://www.eso.org/sso/oidc/token"
DATAPORTAL_URL = "https://dataportal.eso.org"
TAP_SERVICE = "tap_obs"

RAW_COLUMNS = ("dp_id", "object", "target", "ra", "dec", "instrument", "date_obs", "exposure",
               "filter_path", "dp_cat", "dp_type", "dp_tech", "prog_id", "release_date",
               "access_estsize")
REDUCED_COLUMNS = ("dp_id", "target_name", "s_ra", "s_dec", "instrument_name", "t_min",
                   "t_exptime", "dataproduct_type", "obs_collection", "proposal_id",
                   "obs_release_date", "em_min", "em_max", "calib_level")
# Units from ESO's TAP_SCHEMA, applied where a reply leaves a column without (or with an
# unreadable) unit.
UNITS = {"ra": u.deg, "dec": u.deg, "s_ra": u.deg, "s_dec": u.deg, "exposure": u.s,
         "t_exptime": u.s, "access_estsize": u.kbyte, "em_min": u.m, "em_max": u.m,
         "t_min": u.d}
PRODUCTS = {"raw": ("dbo.raw", RAW_COLUMNS, "ra", "dec", "instrument", "release_date"),
            "reduced": ("ivoa.ObsCore", REDUCED_COLUMNS, "s_ra", "s_dec", "instrument_name",
                        "obs_release_date")}


# --- ESO -------------------------------------------------------------------------------------

def query_eso(client: HttpClient, *, product: str = "raw", instrument: str | None = None,
              target: str | None = None, ra: float | None = None, dec: float | None = None,
              radius_deg: float = 0.1, max_rows: int = 1000,
              tap: TapSettings = SYNC) -> tuple[Table, Reply]:
    """ESO TAP: frames (``raw``) or Phase 3 products (``reduced``) matching the criteria.

    ``instrument`` is ESO's upper-case name (``SINFONI``, ``MUSE``); ``target`` matches the
    OBJECT header or OB target name exactly (raw) or ``target_name`` (reduced).
    """
    if product not in PRODUCTS:
        raise ValueError(f"{NAME}: option product must be one of {sorted(PRODUCTS)}, "
                         f"got {product!r}")
    table_name, columns, ra_col, dec_col, inst_col, _ = PRODUCTS[product]
    where = []
    if instrument:
        where.append(f"{inst_col} = {adql_string(instrument.upper())}")
    if target:
        where.append(f"(object = {adql_string(target)} OR target = {adql_string(target)})"
                     if product == "raw" else f"target_name = {adql_string(target)}")
    if ra is not None and dec is not None:
        where.append(f"INTERSECTS(s_region, CIRCLE('ICRS', {ra!r}, {dec!r}, {radius_deg!r}))"
                     " = 1" if product == "reduced" else cone(ra_col, dec_col, ra, dec,
                                                               radius_deg))
    if not where:
        raise ValueError(f"{NAME}: give at least one of the options instrument, target, ra/dec")
    adql = (f"SELECT TOP {max_rows} {', '.join(columns)} FROM {table_name} "
            f"WHERE {' AND '.join(where)}")
    table, reply = tap_query(client, TAP_SERVICE, adql, max_rows, tap)
    return set_units(table, UNITS), reply


def login(config: SourceConfig, credentials: Credentials) -> tuple[str, Provenance]:
    """ESO's token login: the ID token (registered as a secret) and the request's record."""
    url = config.base_url("eso-sso", SSO_URL)
    user = credentials.require("ESO_USERNAME", NAME, url)
    password = credentials.require("ESO_PASSWORD", NAME, url)
    with HttpClient(NAME, url, cache=None, timeout=(config.connect_timeout,
                                                    config.read_timeout),
                    max_attempts=config.max_attempts) as client:
        try:
            reply = client.get("", {"response_type": "id_token token",
                                    "grant_type": "password", "client_id": "clientid",
                                    "username": user.reveal(), "password": password.reveal()},
                               expect="json", use_cache=False)
        except HTTPStatusError as err:
            if err.status in (400, 401, 403):
                raise CredentialError(NAME, url, f"login refused ({err.status}): check "
                                      "ESO_USERNAME and ESO_PASSWORD", status=err.status,
                                      credential="ESO_USERNAME and ESO_PASSWORD") from None
            raise
    body = reply.json()
    for key in ("id_token", "access_token"):  # before anything can print or log the reply
        if isinstance(body, dict) and isinstance(body.get(key), str):
            register_secret(body[key])
    token = body.get("id_token") if isinstance(body, dict) else None
    if not token:
        raise CredentialError(NAME, url, "login reply holds no id_token",
                              credential="ESO_USERNAME and ESO_PASSWORD")
    return token, reply.provenance


def _is_proprietary(release: Any, today: str) -> bool:
    text = str(release or "")[:10]
    return bool(text) and text > today


def download_files(config: SourceConfig, table: Table, product: str, count: int,
                   directory: Path, credentials: Credentials,
                   result: FetchResult) -> None:
    """Downloads the first ``count`` rows' files into ``directory``; records what it skips."""
    release_col = PRODUCTS[product][5]
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    rows = list(table[:count])
    closed = [r for r in rows if _is_proprietary(r[release_col], today)]
    portal = config.base_url("eso-dataportal", DATAPORTAL_URL)
    token = None
    if closed and not config.offline:
        if credentials.get("ESO_USERNAME") and credentials.get("ESO_PASSWORD"):
            token, record = login(config, credentials)
            result.provenance.append(record)
    portal_config = dataclasses.replace(config, base_urls={**config.base_urls, NAME: portal})
    public_client = portal_config.client(NAME, portal)
    private_client = None
    if token is not None:
        private_client = portal_config.client(
            NAME, portal, auth=TokenHeader("ESO_TOKEN", required=True),
            credentials=Credentials({"ESO_TOKEN": token}, keyring_service=None))
    for row in rows:
        dp_id = str(row["dp_id"])
        proprietary = _is_proprietary(row[release_col], today)
        client = private_client if proprietary else public_client
        if client is None and proprietary and config.offline:
            client = public_client  # offline: only a file already on disk can be served
        if client is None:
            result.skipped.append(f"{dp_id}: proprietary until {str(row[release_col])[:10]}; "
                                  "set ESO_USERNAME and ESO_PASSWORD to download it")
            continue
        try:
            got = client.download(f"dataPortal/file/{dp_id}", directory,
                                  sanitize_filename(dp_id))
        except SourceError as err:
            result.skipped.append(f"{dp_id}: {err}")
            continue
        result.files.append(got.path.relative_to(directory.parent))
        result.provenance.append(got.provenance)


def fetch(config: SourceConfig, out_dir: Path, **options: Any) -> FetchResult:
    """Queries ESO's archive and saves the table (``eso_raw`` or ``eso_reduced``).

    Options (strings from the command line are converted):

    - ``product``: ``raw`` (``dbo.raw``, default) or ``reduced`` (``ivoa.ObsCore``).
    - ``instrument``: ESO instrument name, e.g. ``SINFONI``; default none.
    - ``target``: object / target name, exact match; default none.
    - ``ra``, ``dec``: cone centre in degrees (ICRS); default none.
    - ``radius_deg``: cone radius in degrees; default 0.1.
    - ``max_rows``: row limit sent as TOP and MAXREC; default 1000.
    - ``download``: number of files (first rows) to download into ``out_dir/files``; default 0.
      Proprietary files need ``ESO_USERNAME``/``ESO_PASSWORD``, else they are skipped.
    - ``mode``: ``sync`` (default) or ``async`` (a UWS job, polled; for long queries).

    At least one of instrument, target or ra/dec is required.
    """
    known = {"product", "instrument", "target", "ra", "dec", "radius_deg", "max_rows",
             "download", "mode"}
    unknown = set(options) - known
    if unknown:
        raise ValueError(f"{NAME}: unknown option(s) {sorted(unknown)}; known: {sorted(known)}")
    product = str(options.get("product", "raw"))
    cone_ = position(options.get("ra"), options.get("dec"), options.get("radius_deg", 0.1),
                     NAME)
    max_rows = int_option("max_rows", options.get("max_rows", 1000), 1)
    download = int_option("download", options.get("download", 0), 0)
    tap = TapSettings.create(config, NAME, options.get("mode"))
    out = Path(out_dir)
    credentials = Credentials()
    with config.client(NAME, DEFAULT_BASE_URL) as client:
        ra, dec, radius = cone_ if cone_ else (None, None, 0.1)
        table, reply = query_eso(client, product=product, instrument=options.get("instrument"),
                                 target=options.get("target"), ra=ra, dec=dec,
                                 radius_deg=radius, max_rows=max_rows, tap=tap)
    result = FetchResult(NAME, tables={f"eso_{product}": table}, provenance=[reply.provenance])
    if table.meta.get("overflow"):
        result.skipped.append(f"rows beyond {max_rows}: the query hit max_rows; raise it or "
                              "narrow the search")
    if download:
        download_files(config, table, product, download, out / "files", credentials, result)
    result.save(out)
    return result
