"""MAST sources (jwst, kepler, tess) against recorded replies served on 127.0.0.1 (no network).

Recordings in tests/data/sources/mast: caom.json, products.json and resolver.json are real MAST
replies shipped in astroquery's wheel (astroquery/mast/tests/data; HST rows, the format every
mission shares); tess_observations.json and tess_products.json are written in the same format
for TIC 307210830 (L 98-59); the light-curve FITS files are written here with astropy, with SPOC's
column names and TUNIT cards.
"""

import hashlib
import json
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from werkzeug import Request, Response

from astrojax.data.archives import (
    CredentialError,
    SourceConfig,
    SourceError,
    jwst,
    kepler,
    mast,
    tess,
)
from astrojax.data.archives.result import FetchResult

DATA = Path(__file__).parent / "data" / "sources" / "mast"
TIC = 307210830
TOKEN_VALUE = "mast-token-5b1f0c9e7a"


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch):
    monkeypatch.delenv("MAST_API_TOKEN", raising=False)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")


class FakeMast:
    """Serves ``api/v0/invoke`` by service name and ``Download/file`` by uri; logs requests."""

    def __init__(self, httpserver, replies: dict[str, bytes | list[bytes]],
                 files: dict[str, bytes] | None = None, file_status: int = 200):
        self.replies = {k: v if isinstance(v, list) else [v] for k, v in replies.items()}
        self.files = files or {}
        self.file_status = file_status
        self.requests: list[dict] = []
        self.auth: list[str | None] = []
        httpserver.expect_request("/api/v0/invoke", method="POST").respond_with_handler(
            self.invoke)
        httpserver.expect_request("/api/v0.1/Download/file").respond_with_handler(self.download)

    def invoke(self, request: Request) -> Response:
        body = json.loads(request.form["request"])
        self.requests.append(body)
        self.auth.append(request.headers.get("Authorization"))
        queue = self.replies[body["service"]]
        reply = queue.pop(0) if len(queue) > 1 else queue[0]
        return Response(reply, content_type="application/json")

    def download(self, request: Request) -> Response:
        self.auth.append(request.headers.get("Authorization"))
        if self.file_status != 200:
            return Response("Unauthorized", status=self.file_status, content_type="text/plain")
        return Response(self.files[request.args["uri"]], content_type="application/fits")


def recording(name: str) -> bytes:
    return (DATA / name).read_bytes()


def config_for(httpserver, tmp_path, **kw) -> SourceConfig:
    base = httpserver.url_for("/")
    return SourceConfig(base_urls={"jwst": base, "kepler": base, "tess": base},
                        cache_dir=str(tmp_path / "cache"), max_attempts=1, **kw)


def write_spoc_lightcurve(path: Path, sector: int, tic: int = TIC, n: int = 5) -> bytes:
    """A tiny SPOC-style light curve: real column names, TUNITs and time keywords."""
    start = {2: 1354.1, 5: 1437.98}[sector]
    primary = fits.PrimaryHDU()
    primary.header.update({"TELESCOP": "TESS", "OBJECT": f"TIC {tic}", "TICID": tic,
                           "SECTOR": sector, "CAMERA": 4, "CCD": 3})
    cols = [
        fits.Column("TIME", "D", unit="BJD - 2457000, days",
                    array=start + np.arange(n) * 2 / 1440),
        fits.Column("TIMECORR", "E", unit="d", array=np.full(n, 1e-4)),
        fits.Column("CADENCENO", "J", array=np.arange(n) + 1000 * sector),
        fits.Column("SAP_FLUX", "E", unit="e-/s", array=np.full(n, 30000.0)),
        fits.Column("PDCSAP_FLUX", "E", unit="e-/s",
                    array=np.array([31000.5, 31001.0, np.nan, 30999.5, 31000.0][:n])),
        fits.Column("PDCSAP_FLUX_ERR", "E", unit="e-/s", array=np.full(n, 12.5)),
        fits.Column("QUALITY", "J", array=np.array([0, 0, 128, 0, 1024][:n])),
    ]
    table = fits.BinTableHDU.from_columns(cols, name="LIGHTCURVE")
    table.header.update({"TIMEREF": "SOLARSYSTEM", "TIMESYS": "TDB", "BJDREFI": 2457000,
                         "BJDREFF": 0.0, "TIMEUNIT": "d", "TELAPSE": n * 2 / 1440})
    fits.HDUList([primary, table]).writeto(path)
    return path.read_bytes()


def test_jwst_fetch_resolves_name_lists_products_and_downloads(httpserver, tmp_path):
    c0m = b"SIMPLE  =                    T" + b" " * 50
    server = FakeMast(httpserver, {
        "Mast.Name.Lookup": recording("resolver.json"),
        "Mast.Caom.Filtered.Position": recording("caom.json"),
        "Mast.Caom.Products": recording("products.json")},
        files={"mast:HST/product/u9o40504m_c0m.fits": c0m})
    out = tmp_path / "out"
    result = jwst.fetch(config_for(httpserver, tmp_path), out, target="TIC 307210830",
                        radius="0.05", product_type="SCIENCE", extension="m.fits", download="1")

    services = [r["service"] for r in server.requests]
    assert services == ["Mast.Name.Lookup", "Mast.Caom.Filtered.Position", "Mast.Caom.Products"]
    query = server.requests[1]
    assert query["params"]["position"] == "124.531756290083, -68.3129998725044, 0.05"
    assert {"paramName": "obs_collection", "values": ["JWST"]} in query["params"]["filters"]
    assert server.auth == [None] * 4  # no token set: no Authorization header

    obs = result.tables["observations"]
    assert len(obs) == 19 and obs["obs_id"][0] == "U27XCS01T"
    assert obs["s_ra"].unit == u.deg and obs["t_min"].unit == u.d and obs["em_min"].unit == u.nm
    assert obs["t_exptime"].unit == u.s and obs["calib_level"][0] == 3
    assert obs["dataURL"].mask[0]  # a JSON null
    assert "_selected_" not in obs.colnames
    products = result.tables["products"]
    assert len(products) == 22 and products["size"].unit == u.byte
    assert result.files == [Path("products/u9o40504m_c0m.fits")]
    assert (out / result.files[0]).read_bytes() == c0m
    assert result.skipped == [f"u9o40504m_{k}.fits: over the download limit of 1 files"
                              for k in ("c1m", "d0m")]  # SCIENCE files ending in m.fits

    records = {p.sha256: p for p in result.provenance}
    caom = records[hashlib.sha256(recording("caom.json")).hexdigest()]
    assert caom.url == httpserver.url_for("/api/v0/invoke") and caom.method == "POST"
    assert "Mast.Caom.Filtered.Position" in caom.data["request"]
    download = records[hashlib.sha256(c0m).hexdigest()]
    assert download.params == {"uri": "mast:HST/product/u9o40504m_c0m.fits"}

    saved = FetchResult.load(out)
    assert saved.tables["observations"]["s_dec"].unit == u.deg
    assert len(saved.provenance) == 4 and saved.source == "jwst"


def test_tess_light_curves_of_one_tic_then_offline(httpserver, tmp_path, monkeypatch):
    files = {}
    for sector, name in ((2, "tess2018234235059-s0002-0000000307210830-0121-s_lc.fits"),
                         (5, "tess2018319095959-s0005-0000000307210830-0125-s_lc.fits")):
        files[f"mast:TESS/product/{name}"] = write_spoc_lightcurve(tmp_path / name, sector)
    executing = json.dumps({"status": "EXECUTING", "msg": "", "data": [], "fields": []}).encode()
    server = FakeMast(httpserver, {
        "Mast.Caom.Filtered": [executing, recording("tess_observations.json")],
        "Mast.Caom.Products": recording("tess_products.json")}, files=files)
    waits = []
    monkeypatch.setattr(mast, "poll_sleep", waits.append)
    out = tmp_path / "out"
    result = tess.fetch(config_for(httpserver, tmp_path), out, tic=str(TIC))

    assert waits == [1.0]  # one EXECUTING reply, polled once
    filters = {f["paramName"]: f["values"] for f in server.requests[0]["params"]["filters"]}
    assert filters == {"obs_collection": ["TESS"], "target_name": [str(TIC)],
                       "dataproduct_type": ["timeseries"]}
    lc = result.tables["lightcurve"]
    assert lc.colnames == ["TIME", "PDCSAP_FLUX", "PDCSAP_FLUX_ERR", "QUALITY", "SECTOR"]
    assert lc["TIME"].unit == u.d and lc["PDCSAP_FLUX"].unit == u.electron / u.s
    assert lc["PDCSAP_FLUX_ERR"].unit == u.electron / u.s and lc["QUALITY"].unit is None
    assert len(lc) == 10 and list(lc["SECTOR"]) == [2] * 5 + [5] * 5
    assert lc["TIME"][0] == pytest.approx(1354.1) and np.isnan(lc["PDCSAP_FLUX"][2])
    assert list(lc["QUALITY"][:5]) == [0, 0, 128, 0, 1024]
    assert lc.meta["TICID"] == TIC and lc.meta["BJDREF"] == 2457000
    assert lc.meta["tunit"]["TIME"] == "BJD - 2457000, days"
    assert sorted(str(f) for f in result.files) == sorted(
        f"products/{uri.split('/')[-1]}" for uri in files)  # only the LC files, not TP/DVT
    saved = FetchResult.load(out).tables["lightcurve"]
    assert saved["PDCSAP_FLUX"].unit == u.electron / u.s and saved.meta["sectors"] == [2, 5]
    shas = {p.sha256 for p in result.provenance}
    assert {hashlib.sha256(b).hexdigest() for b in files.values()} <= shas

    offline = config_for(httpserver, tmp_path, offline=True)
    again = tess.fetch(offline, out, tic=TIC)
    assert len(server.requests) == 3  # EXECUTING, COMPLETE, products: nothing new offline
    assert all(p.cache_hit for p in again.provenance)
    np.testing.assert_array_equal(again.tables["lightcurve"]["TIME"], lc["TIME"])


def test_mast_error_status_inside_200_reply(httpserver, tmp_path):
    error = {"status": "ERROR", "msg": "Incorrect PARAM value: obs_colection", "data": []}
    FakeMast(httpserver, {"Mast.Caom.Filtered": json.dumps(error).encode()})
    with pytest.raises(SourceError) as caught:
        tess.fetch(config_for(httpserver, tmp_path), tmp_path / "out", tic=TIC)
    text = str(caught.value)
    assert text.startswith("tess: Mast.Caom.Filtered failed: Incorrect PARAM value")
    assert "api/v0/invoke" in text


def test_token_sent_and_401_names_it_without_its_value(httpserver, tmp_path, monkeypatch):
    monkeypatch.setenv("MAST_API_TOKEN", TOKEN_VALUE)
    server = FakeMast(httpserver, {"Mast.Caom.Filtered": recording("tess_observations.json"),
                                   "Mast.Caom.Products": recording("tess_products.json")},
                      file_status=401)
    with pytest.raises(CredentialError) as caught:
        tess.fetch(config_for(httpserver, tmp_path), tmp_path / "out", tic=TIC)
    assert server.auth[0] == f"token {TOKEN_VALUE}"
    assert caught.value.credential == "MAST_API_TOKEN" and caught.value.status == 401
    assert "MAST_API_TOKEN" in str(caught.value) and TOKEN_VALUE not in str(caught.value)


def test_401_without_token_asks_for_it(httpserver, tmp_path):
    FakeMast(httpserver, {"Mast.Caom.Filtered": recording("tess_observations.json"),
                          "Mast.Caom.Products": recording("tess_products.json")},
             file_status=401)
    with pytest.raises(CredentialError, match="need the credential MAST_API_TOKEN"):
        tess.fetch(config_for(httpserver, tmp_path), tmp_path / "out", tic=TIC)


def test_kepler_k2_epic_filter_and_empty_result(httpserver, tmp_path):
    empty = {"status": "COMPLETE", "msg": "", "data": [],
             "fields": json.loads(recording("caom.json"))["fields"],
             "paging": {"page": 1, "pageSize": 50000, "pagesFiltered": 0, "rows": 0,
                        "rowsFiltered": 0, "rowsTotal": 0}}
    server = FakeMast(httpserver, {"Mast.Caom.Filtered": json.dumps(empty).encode()})
    out = tmp_path / "out"
    result = kepler.fetch(config_for(httpserver, tmp_path), out, mission="K2",
                          target_id="201367065")
    filters = {f["paramName"]: f["values"] for f in server.requests[0]["params"]["filters"]}
    assert filters == {"obs_collection": ["K2"], "target_name": ["ktwo201367065"]}
    assert len(result.tables["observations"]) == 0 and "products" not in result.tables
    assert result.skipped == ["observations: none in K2 match the query"]
    assert (out / "manifest.json").exists()
    assert kepler.target_name_for("Kepler", 11904151) == "kplr011904151"
    with pytest.raises(ValueError, match="mission must be one of Kepler, K2"):
        kepler.fetch(config_for(httpserver, tmp_path), out, mission="TESS", target_id=1)


def test_fits_unit_spellings():
    assert mast.fits_unit("BJD - 2457000, days") == u.d
    assert mast.fits_unit("BJD - 2454833") == u.d  # Kepler's spelling
    assert mast.fits_unit("e-/s") == u.electron / u.s
    assert mast.fits_unit("pixels") == u.pix and mast.fits_unit("") is None


def test_mast_error_once_then_the_answer_is_not_replayed_from_the_cache(httpserver, tmp_path):
    busy = json.dumps({"status": "ERROR", "msg": "Database timeout, try again later",
                       "data": []}).encode()
    server = FakeMast(httpserver, {
        "Mast.Caom.Filtered": [busy, recording("tess_observations.json")],
        "Mast.Caom.Products": recording("tess_products.json")})
    with pytest.raises(SourceError, match="Mast.Caom.Filtered failed: Database timeout") as err:
        tess.fetch(config_for(httpserver, tmp_path), tmp_path / "first", tic=TIC, download=0)
    assert err.value.reason == "service_error"
    assert not list((tmp_path / "cache").rglob("*.body"))
    result = tess.fetch(config_for(httpserver, tmp_path), tmp_path / "second", tic=TIC,
                        download=0)
    assert len(result.tables["observations"]) > 0
    cached = b"".join(p.read_bytes() for p in (tmp_path / "cache").rglob("*.body"))
    assert b'"ERROR"' not in cached
    again = tess.fetch(config_for(httpserver, tmp_path, offline=True), tmp_path / "third",
                       tic=TIC, download=0)
    assert again.provenance[0].cache_hit and len(server.requests) == 3


def test_token_and_no_token_replies_are_cached_apart(httpserver, tmp_path, monkeypatch):
    server = FakeMast(httpserver, {"Mast.Caom.Filtered": recording("tess_observations.json"),
                                   "Mast.Caom.Products": recording("tess_products.json")})
    monkeypatch.setenv("MAST_API_TOKEN", TOKEN_VALUE)
    tess.fetch(config_for(httpserver, tmp_path), tmp_path / "with", tic=TIC, download=0)
    monkeypatch.delenv("MAST_API_TOKEN")
    plain = tess.fetch(config_for(httpserver, tmp_path), tmp_path / "without", tic=TIC,
                       download=0)
    assert not any(p.cache_hit for p in plain.provenance)  # asked MAST again, without the token
    assert server.auth == [f"token {TOKEN_VALUE}"] * 2 + [None] * 2
    on_disk = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not any(TOKEN_VALUE.encode() in p.read_bytes() for p in on_disk)
