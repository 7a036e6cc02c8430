"""MAST (JWST, Kepler/K2, TESS): observation queries, product lists, downloads, TESS light curves.

MAST's API is called directly through our :class:`HttpClient`, not through
``astroquery.mast.Observations``, because in astroquery 0.4.11:

- its portal layer (``PortalAPI._request``) does its own HTTP on a plain session: no retries on
  5xx/429, no Retry-After, ``raise_for_status`` errors that hold the raw URL, no cache we control;
  replacing that means overriding its private ``_request``;
- every filtered query first POSTs to a second endpoint (``columnsconfig``) to learn the column
  types, and name resolution goes to a third host hard-coded in ``astroquery.mast.utils``
  (``mastresolver.stsci.edu``), so a test server must patch class attributes copied at import time
  (``MAST_REQUEST_URL``, ``COLUMNS_CONFIG_URL``, ``MAST_DOWNLOAD_URL``) and a module function.

The documented API is small (https://mast.stsci.edu/api/v0/): a POST to ``api/v0/invoke`` with a
form field ``request`` holding JSON ``{"service", "params", "format", "pagesize", "page"}``; the
reply is ``{"status", "msg", "fields": [{"name", "type"}], "data": [...], "paging": {...}}``.
Services used: ``Mast.Name.Lookup`` (name -> position), ``Mast.Caom.Filtered`` and
``Mast.Caom.Filtered.Position`` (observations), ``Mast.Caom.Products`` (files of observations);
files come from ``api/v0.1/Download/file?uri=mast:...``. MAST reports a failed service call
inside an HTTP 200 reply (``status: ERROR`` and a ``msg``); a reply with status ``EXECUTING``
is not finished and is asked again. Both are judged by :func:`invoke_check`, which the client
runs before caching: an error is raised and never cached (a transient failure is not replayed
from the cache), an EXECUTING reply is returned but not stored, and only a COMPLETE reply is
cached.

``MAST_API_TOKEN`` (for exclusive-access data) is sent as ``Authorization: token ...`` only when it
is set, and only to the MAST host. A 401/403 is a :class:`CredentialError` naming MAST_API_TOKEN.
A reply fetched with the token is cached under a key of its own (the token's name and a salted
HMAC of it, see :mod:`.cache`): MAST answers with exclusive-access rows only to the token's
owner, so a later run without it, or with another token, never gets them from the cache.

Units follow MAST's CAOM field documentation (https://mast.stsci.edu/api/v0/_c_a_o_mfields.html):
positions in deg, times in MJD (d), exposure in s, wavelengths in nm, product sizes in bytes.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.table import MaskedColumn, Table, vstack

from astrojax.data.archives.config import SourceConfig
from astrojax.data.archives.credentials import TokenHeader
from astrojax.data.archives.errors import CredentialError, HTTPStatusError, SourceError
from astrojax.data.archives.files import sanitize_filename
from astrojax.data.archives.http import HttpClient
from astrojax.data.archives.options import float_option, int_option
from astrojax.data.archives.provenance import Provenance
from astrojax.data.archives.result import FetchResult
from astrojax.data.archives.validate import InvalidReply

DEFAULT_BASE_URL = "https://mast.stsci.edu"
INVOKE = "api/v0/invoke"
DOWNLOAD = "api/v0.1/Download/file"
TOKEN = "MAST_API_TOKEN"
PAGESIZE = 50000  # astroquery's default page size for the MAST portal
OBSIDS_PER_REQUEST = 50
POLLS = 10  # EXECUTING replies re-asked at most this many times
poll_sleep = time.sleep  # the wait between polls (tests replace it)

OBSERVATION_UNITS = {"s_ra": u.deg, "s_dec": u.deg, "t_min": u.d, "t_max": u.d,
                     "t_exptime": u.s, "em_min": u.nm, "em_max": u.nm, "t_obs_release": u.d}
OBSERVATION_DESCRIPTIONS = {"t_min": "start time (MJD)", "t_max": "end time (MJD)",
                            "t_obs_release": "public release date (MJD)"}
PRODUCT_UNITS = {"size": u.byte}
LIGHTCURVE_COLUMNS = ("TIME", "PDCSAP_FLUX", "PDCSAP_FLUX_ERR", "QUALITY")
# SPOC's TUNIT spellings that are not FITS units.
SPOC_UNITS = {"e-/s": u.electron / u.s, "e-": u.electron, "pixels": u.pix, "pixel": u.pix}


def mast_client(config: SourceConfig, source: str) -> HttpClient:
    """A client for MAST under the CLI name ``source``; sends MAST_API_TOKEN when it is set."""
    return config.client(source, DEFAULT_BASE_URL, auth=TokenHeader(TOKEN, prefix="token "))


# --- the invoke API -------------------------------------------------------------------------

def _credential_error(client: HttpClient, err: HTTPStatusError) -> SourceError:
    if err.status not in (401, 403) or isinstance(err, CredentialError):
        return err
    return CredentialError(client.source, err.url, f"{err.detail}; exclusive-access data need "
                           f"the credential {TOKEN}: set the environment variable {TOKEN} or run "
                           f"`keyring set astrojax {TOKEN}`", status=err.status, credential=TOKEN,
                           method=err.method, attempts=err.attempts)


def invoke_check(service: str):
    """The client ``check`` for one service's replies: ERROR raises (never cached), EXECUTING is
    valid but not final (returned, not cached), anything else is final."""

    def check(reply) -> bool:
        body = reply.json()
        if not isinstance(body, dict):
            raise InvalidReply("parse", f"{service}: expected a JSON object, got "
                                        f"{type(body).__name__}")
        status = body.get("status")
        if status == "ERROR":
            raise InvalidReply("service_error", f"{service} failed: "
                                                f"{body.get('msg') or 'MAST returned ERROR'}")
        return status != "EXECUTING"

    return check


def invoke(client: HttpClient, service: str, params: dict[str, Any], *, pagesize: int = PAGESIZE,
           page: int = 1, sleep: Callable[[float], None] | None = None
           ) -> tuple[dict, Provenance]:
    """One page of a MAST service's JSON reply (status COMPLETE) and its provenance.

    A reply with status ERROR (MAST sends it with HTTP 200) raises
    :class:`~astrojax.data.archives.ReplyValidationError` (reason ``service_error``) with MAST's
    message; EXECUTING is asked again after a growing wait, at most ``POLLS`` times.
    """
    request = json.dumps({"service": service, "params": params, "format": "json",
                          "pagesize": pagesize, "page": page}, sort_keys=True)
    form = {"request": request}
    check = invoke_check(service)
    for poll in range(POLLS + 1):
        try:
            reply = client.post(INVOKE, form, expect="json", check=check)
        except HTTPStatusError as err:
            raise _credential_error(client, err) from None
        if reply.json().get("status") != "EXECUTING":
            return reply.json(), reply.provenance
        (sleep or poll_sleep)(min(2.0 ** poll, 10.0))
    raise SourceError(client.source, client.url_for(INVOKE),
                      f"{service} still EXECUTING after {POLLS} polls", method="POST")


def invoke_table(client: HttpClient, service: str, params: dict[str, Any], *,
                 pagesize: int = PAGESIZE, units: dict[str, u.UnitBase] | None = None,
                 sleep: Callable[[float], None] | None = None) -> Table:
    """Every page of a MAST service as one Table (units set from ``units``).

    ``table.meta["provenance"]`` lists one record per page.
    """
    tables, records, page, pages = [], [], 1, 1
    while page <= pages:
        body, provenance = invoke(client, service, params, pagesize=pagesize, page=page,
                                  sleep=sleep)
        tables.append(json_table(body, units))
        records.append(provenance.to_dict())
        pages = int((body.get("paging") or {}).get("pagesFiltered") or 1)
        page += 1
    table = tables[0] if len(tables) == 1 else vstack(tables, metadata_conflicts="silent")
    table.meta["provenance"] = records
    return table


def json_table(body: dict, units: dict[str, u.UnitBase] | None = None) -> Table:
    """A MAST JSON reply (``fields`` + ``data`` rows) as a Table; nulls are masked."""
    fields = body.get("fields") or []
    rows = body.get("data") or []
    table = Table()
    for field in fields:
        name, kind = field["name"], field.get("type", "string")
        if name == "_selected_":  # the portal's UI selection flag
            continue
        values = [row.get(name) for row in rows]
        mask = np.array([v is None for v in values], dtype=bool)
        if kind in ("float", "double"):
            data = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
        elif kind in ("int", "long", "short"):
            data = np.array([0 if v is None else int(v) for v in values], dtype=np.int64)
        elif kind == "boolean":
            data = np.array([bool(v) for v in values], dtype=bool)
        else:
            data = np.array(["" if v is None else str(v) for v in values], dtype=str)
        table[name] = MaskedColumn(data, name=name, mask=mask,
                                   unit=(units or {}).get(name))
    return table


# --- observations and products ---------------------------------------------------------------

def resolve(client: HttpClient, name: str) -> tuple[float, float, Provenance]:
    """A target name's ra and dec in degrees (``Mast.Name.Lookup``) and the reply's provenance."""
    body, provenance = invoke(client, "Mast.Name.Lookup", {"input": name, "format": "json"})
    found = body.get("resolvedCoordinate") or []
    if not found:
        raise SourceError(client.source, client.url_for(INVOKE),
                          f"MAST could not resolve the target name {name!r}", method="POST")
    return float(found[0]["ra"]), float(found[0]["decl"]), provenance


def _filters(criteria: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, value in criteria.items():
        if value is None:
            continue
        if isinstance(value, tuple):  # (min, max): a continuous column
            values = [{"min": value[0], "max": value[1]}]
        else:
            values = list(value) if isinstance(value, (list, set)) else [value]
        out.append({"paramName": name, "values": values})
    return out


def query_observations(client: HttpClient, *, ra: float | None = None, dec: float | None = None,
                       radius_deg: float = 0.02, pagesize: int = PAGESIZE,
                       **criteria: Any) -> Table:
    """CAOM observations matching ``criteria`` (column -> value, list, or (min, max)).

    With ``ra``/``dec`` the search is a cone of ``radius_deg`` (``Mast.Caom.Filtered.Position``).
    Example: ``query_observations(c, obs_collection="TESS", target_name="307210830")``.
    """
    params: dict[str, Any] = {"columns": "*", "filters": _filters(criteria)}
    service = "Mast.Caom.Filtered"
    if ra is not None and dec is not None:
        service = "Mast.Caom.Filtered.Position"
        params["position"] = f"{ra}, {dec}, {radius_deg}"
    elif not params["filters"]:
        raise ValueError(f"{client.source}: give a position or at least one filter")
    table = invoke_table(client, service, params, pagesize=pagesize, units=OBSERVATION_UNITS)
    for name, text in OBSERVATION_DESCRIPTIONS.items():
        if name in table.colnames:
            table[name].description = text
    return table


def query_products(client: HttpClient, obsids: Iterable[str], *,
                   pagesize: int = PAGESIZE) -> Table:
    """The files of the given observations (``obsid`` values), ``Mast.Caom.Products``."""
    obsids = [str(o) for o in obsids]
    tables, records = [], []
    for start in range(0, len(obsids), OBSIDS_PER_REQUEST):
        chunk = ",".join(obsids[start:start + OBSIDS_PER_REQUEST])
        table = invoke_table(client, "Mast.Caom.Products", {"obsid": chunk}, pagesize=pagesize,
                             units=PRODUCT_UNITS)
        records.extend(table.meta.pop("provenance"))
        tables.append(table)
    if not tables:
        return Table()
    table = tables[0] if len(tables) == 1 else vstack(tables, metadata_conflicts="silent")
    table.meta["provenance"] = records
    return table


def filter_products(products: Table, *, product_type: str | None = None,
                    subgroup: str | None = None, extension: str | None = None,
                    calib_level: int | None = None) -> Table:
    """The rows whose productType, productSubGroupDescription, filename end or calib_level match
    (case-insensitive; None means any)."""
    keep = np.ones(len(products), dtype=bool)
    for column, wanted in (("productType", product_type),
                           ("productSubGroupDescription", subgroup)):
        if wanted is not None and column in products.colnames:
            keep &= np.char.upper(np.asarray(products[column].filled(""), dtype=str)) == \
                wanted.upper()
    if extension is not None:
        names = np.char.lower(np.asarray(products["productFilename"].filled(""), dtype=str))
        keep &= np.char.endswith(names, extension.lower())
    if calib_level is not None and "calib_level" in products.colnames:
        keep &= np.asarray(products["calib_level"].filled(-1)) == int(calib_level)
    return products[keep]


def download_products(client: HttpClient, products: Table, directory: Path, *,
                      limit: int | None = None) -> tuple[list[Path], list[Provenance], list[str]]:
    """Downloads ``products`` rows (at most ``limit``) into ``directory``.

    Returns the paths, their provenance and the skipped rows as ``"filename: reason"``.
    """
    paths, records, skipped = [], [], []
    for number, row in enumerate(products):
        name = str(row["productFilename"])
        if limit is not None and number >= limit:
            skipped.append(f"{name}: over the download limit of {limit} files")
            continue
        try:
            got = client.download(DOWNLOAD, directory, sanitize_filename(name),
                                  params={"uri": str(row["dataURI"])})
        except HTTPStatusError as err:
            raise _credential_error(client, err) from None
        paths.append(got.path)
        records.append(got.provenance)
    return paths, records, skipped


# --- TESS light curves -----------------------------------------------------------------------

def fits_unit(text: str | None) -> u.UnitBase | None:
    """An astropy unit for a SPOC TUNIT string; None when it names no physical unit."""
    if not text:
        return None
    text = text.strip()
    if text in SPOC_UNITS:
        return SPOC_UNITS[text]
    if re.fullmatch(r"B[T]?JD\s*-\s*\d+(\.\d*)?(,\s*days?)?", text):  # an offset Julian date
        return u.d
    try:
        return u.Unit(text, format="fits")
    except ValueError:
        return None


def read_lightcurve(path: str | Path,
                    columns: Sequence[str] = LIGHTCURVE_COLUMNS) -> Table:
    """A SPOC light-curve FITS file's ``LIGHTCURVE`` table with units from its TUNITn cards.

    ``meta`` keeps TICID, SECTOR, the time reference (BJDREFI + BJDREFF, TIMESYS) and each
    column's original TUNIT string (``meta["tunit"]``).
    """
    with fits.open(path, memmap=False) as hdul:
        primary, hdu = hdul[0].header, hdul["LIGHTCURVE"]
        header, data = hdu.header, hdu.data
        table = Table()
        tunits = {}
        for index, name in enumerate(hdu.columns.names, start=1):
            if name not in columns:
                continue
            tunit = header.get(f"TUNIT{index}")
            tunits[name] = tunit
            table[name] = np.asarray(data[name]).astype(data[name].dtype.newbyteorder("="))
            table[name].unit = fits_unit(tunit)
            if tunit and table[name].unit is None:
                table[name].description = tunit
        missing = [c for c in columns if c not in table.colnames]
        if missing:
            raise ValueError(f"{path}: no column(s) {', '.join(missing)} in LIGHTCURVE")
        if "TIME" in tunits:
            table["TIME"].description = (f"{tunits['TIME']} (BJD - "
                                         f"{header.get('BJDREFI', 0) + header.get('BJDREFF', 0)})")
        table.meta.update({"TICID": primary.get("TICID", header.get("TICID")),
                           "SECTOR": primary.get("SECTOR"),
                           "BJDREF": header.get("BJDREFI", 0) + header.get("BJDREFF", 0.0),
                           "TIMESYS": header.get("TIMESYS"), "tunit": tunits,
                           "file": Path(path).name})
    return table


def stack_lightcurves(tables: Sequence[Table]) -> Table:
    """Light curves of several sectors as one Table with a SECTOR column, ordered by time."""
    parts = []
    for table in tables:
        part = table.copy()
        part["SECTOR"] = np.full(len(part), int(table.meta.get("SECTOR") or -1), dtype=np.int16)
        parts.append(part)
    stacked = vstack(parts, metadata_conflicts="silent")
    stacked.sort("TIME")
    first = tables[0].meta
    stacked.meta = {"TICID": first.get("TICID"), "BJDREF": first.get("BJDREF"),
                    "TIMESYS": first.get("TIMESYS"), "tunit": first.get("tunit"),
                    "sectors": sorted(int(t.meta.get("SECTOR") or -1) for t in tables),
                    "files": [t.meta.get("file") for t in tables]}
    return stacked


def _lightcurves_of(tic: int, paths: Sequence[Path], out_dir: Path,
                   skipped: list[str]) -> list[Table]:
    tables = []
    for path in paths:
        table = read_lightcurve(path)
        if table.meta.get("TICID") is not None and int(table.meta["TICID"]) != int(tic):
            skipped.append(f"{path.relative_to(out_dir)}: light curve of TIC "
                           f"{table.meta['TICID']}, not {tic}")
            continue
        tables.append(table)
    return tables


# --- the shared fetch ------------------------------------------------------------------------

def _optional_float(name: str, value: Any) -> float | None:
    return None if value in (None, "") else float_option(name, value, -360.0, 360.0)


def fetch_mast(config: SourceConfig, out_dir: Path, *, source: str, collection: str,
               target: str | None = None, ra: Any = None, dec: Any = None,
               radius: Any = 0.02, target_name: str | None = None,
               dataproduct_type: str | None = None, calib_level: Any = None,
               product_type: str | None = "SCIENCE", subgroup: str | None = None,
               extension: str | None = None, download: Any = 0, pagesize: Any = PAGESIZE,
               lightcurve_tic: int | None = None, **criteria: Any) -> FetchResult:
    """What the three MAST sources share: observations, their products, selected downloads.

    ``criteria`` are further CAOM filters (column -> value); with ``lightcurve_tic`` the
    downloaded files are read as SPOC light curves of that TIC into the table ``lightcurve``.
    """
    out_dir = Path(out_dir)
    ra_deg, dec_deg = _optional_float("ra", ra), _optional_float("dec", dec)
    if (ra_deg is None) != (dec_deg is None):
        raise ValueError(f"{source}: give both ra and dec, or neither")
    result = FetchResult(source)
    with mast_client(config, source) as client:
        if target and ra_deg is None:
            ra_deg, dec_deg, resolved = resolve(client, target)
            result.provenance.append(resolved)
        if ra_deg is None and not target_name:
            raise ValueError(f"{source}: give a target name, ra/dec or a catalogue id")
        level = None if calib_level in (None, "") else int_option("calib_level", calib_level, 0)
        observations = query_observations(
            client, ra=ra_deg, dec=dec_deg, radius_deg=float_option("radius", radius, 1e-9, 180.0),
            pagesize=int_option("pagesize", pagesize, 1),
            obs_collection=collection, target_name=target_name,
            dataproduct_type=dataproduct_type,
            calib_level=level, **criteria)
        result.provenance += [Provenance.from_dict(r)
                              for r in observations.meta.pop("provenance")]
        result.tables["observations"] = observations
        if len(observations) == 0:
            result.skipped.append(f"observations: none in {collection} match the query")
            result.save(out_dir)
            return result
        products = query_products(client, observations["obsid"],
                                  pagesize=int_option("pagesize", pagesize, 1))
        result.provenance += [Provenance.from_dict(r) for r in products.meta.pop("provenance")]
        result.tables["products"] = products
        chosen = filter_products(products, product_type=product_type, subgroup=subgroup,
                                 extension=extension, calib_level=level)
        limit = int_option("download", download, 0)
        if limit > 0 and len(chosen):
            paths, records, skipped = download_products(client, chosen, out_dir / "products",
                                                         limit=limit)
            result.files += [p.relative_to(out_dir) for p in paths]
            result.provenance += records
            result.skipped += skipped
            if lightcurve_tic is not None:
                tables = _lightcurves_of(lightcurve_tic, paths, out_dir, result.skipped)
                if tables:
                    result.tables["lightcurve"] = stack_lightcurves(tables)
        elif len(chosen):
            result.skipped += [f"{name}: not downloaded (download=0)"
                               for name in chosen["productFilename"]]
        else:
            result.skipped.append("products: none match the product filters")
    result.save(out_dir)
    return result
