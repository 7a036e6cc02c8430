"""ESO, KOA, Gemini and Subaru sources against recorded replies on 127.0.0.1 (no network)."""

import hashlib
import json
from pathlib import Path

import astropy.units as u
import pytest
from werkzeug import Response

from astrojax.data.archives import (
    CredentialError,
    ReplyValidationError,
    SourceConfig,
    eso,
    gemini,
    keck,
    redact,
    subaru,
)
from astrojax.data.archives.result import FetchResult

DATA = Path(__file__).parent / "data" / "sources" / "observatories"
FITS = b"SIMPLE  =                    T" + b" " * 50  # a FITS header card is enough here


@pytest.fixture(autouse=True)
def no_ambient_credentials(monkeypatch):
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    for name in ("ESO_USERNAME", "ESO_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


def _config(httpserver, tmp_path, name, **kwargs) -> SourceConfig:
    urls = {name: httpserver.url_for("/")}
    if name == "eso":
        urls.update({"eso-sso": httpserver.url_for("/sso/oidc/token"),
                     "eso-dataportal": httpserver.url_for("/")})
    return SourceConfig(base_urls=urls, cache_dir=str(tmp_path / "cache"), max_attempts=1,
                        **kwargs)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _serve_tap(httpserver, path: str, body: bytes, seen: list[dict]):
    def handler(request):
        seen.append(dict(request.args))
        return Response(body, content_type="application/x-votable+xml")
    httpserver.expect_request(path).respond_with_handler(handler)


# --- ESO ---------------------------------------------------------------------------------

ESO_BODY = (DATA / "eso_raw_sgra.xml").read_bytes()
PUBLIC_ID, PROPRIETARY_ID = "SINFO.2013-08-27T01:05:24.328", "ERIS.2026-09-14T23:58:11.102"


def test_eso_raw_query_downloads_public_files_and_skips_proprietary(httpserver, tmp_path):
    seen: list[dict] = []
    _serve_tap(httpserver, "/tap_obs/sync", ESO_BODY, seen)
    httpserver.expect_request(f"/dataPortal/file/{PUBLIC_ID}").respond_with_data(
        FITS, content_type="application/octet-stream")
    out = tmp_path / "out"
    result = eso.fetch(_config(httpserver, tmp_path, "eso"), out, target="SGR A",
                       ra="266.41683", dec="-29.00781", radius_deg="0.2", max_rows="4",
                       download="2")

    query = seen[0]["QUERY"]
    assert query.startswith("SELECT TOP 4 dp_id, object, target, ra, dec")
    assert "FROM dbo.raw" in query and "(object = 'SGR A' OR target = 'SGR A')" in query
    assert "CIRCLE('ICRS', 266.41683, -29.00781, 0.2)" in query and seen[0]["MAXREC"] == "4"
    table = result.tables["eso_raw"]
    assert len(table) == 4 and table["dp_id"][0] == PUBLIC_ID
    assert table["ra"].unit == u.deg and table["exposure"].unit == u.s
    assert table["access_estsize"].unit == u.kbyte
    assert table["ra"][0] == pytest.approx(266.41480694) and table["exposure"][1] == 600.0
    query_record = result.provenance[0]
    assert query_record.sha256 == _sha(ESO_BODY)
    assert query_record.url == httpserver.url_for("/tap_obs/sync")
    # the public frame is downloaded; the proprietary one is skipped, naming the credentials
    assert result.files == [Path("files") / "SINFO.2013-08-27T01_05_24.328"]
    assert (out / result.files[0]).read_bytes() == FITS
    assert result.provenance[1].sha256 == _sha(FITS)
    assert len(result.skipped) == 1 and result.skipped[0].startswith(PROPRIETARY_ID)
    assert "ESO_USERNAME and ESO_PASSWORD" in result.skipped[0]
    saved = FetchResult.load(out)
    assert saved.tables["eso_raw"]["ra"].unit == u.deg and saved.skipped == result.skipped


def test_eso_login_token_downloads_proprietary_file_and_stays_secret(httpserver, tmp_path,
                                                                      monkeypatch):
    monkeypatch.setenv("ESO_USERNAME", "observer-7731")
    monkeypatch.setenv("ESO_PASSWORD", "pw-Zq81-never-shown")
    token_reply = json.loads((DATA / "eso_oidc_token.json").read_text())
    token = token_reply["id_token"]
    _serve_tap(httpserver, "/tap_obs/sync", ESO_BODY, [])
    httpserver.expect_request("/sso/oidc/token", query_string={
        "response_type": "id_token token", "grant_type": "password", "client_id": "clientid",
        "username": "observer-7731", "password": "pw-Zq81-never-shown"},
    ).respond_with_json(token_reply)
    httpserver.expect_request(f"/dataPortal/file/{PUBLIC_ID}").respond_with_data(FITS)
    httpserver.expect_request(f"/dataPortal/file/{PROPRIETARY_ID}",
                              headers={"Authorization": f"Bearer {token}"}
                              ).respond_with_data(FITS + b"proprietary")
    out = tmp_path / "out"
    result = eso.fetch(_config(httpserver, tmp_path, "eso"), out, target="SGR A",
                       download="2")

    assert result.skipped == [] and len(result.files) == 2
    assert (out / result.files[1]).read_bytes() == FITS + b"proprietary"
    assert redact(f"x {token} y") == "x *** y"
    for path in [*out.rglob("*"), *(tmp_path / "cache").rglob("*")]:
        if path.is_file():
            text = path.read_bytes()
            assert token.encode() not in text and b"pw-Zq81" not in text, path
    login_record = next(p for p in result.provenance if "sso" in p.url)
    assert login_record.params["password"] == "***" and "observer-7731" not in str(login_record)


def test_eso_login_refused_names_credentials_not_values(httpserver, tmp_path, monkeypatch):
    monkeypatch.setenv("ESO_USERNAME", "observer-7731")
    monkeypatch.setenv("ESO_PASSWORD", "pw-Zq81-never-shown")
    _serve_tap(httpserver, "/tap_obs/sync", ESO_BODY, [])
    httpserver.expect_request("/sso/oidc/token").respond_with_json(
        {"error": "invalid_grant"}, status=401)
    with pytest.raises(CredentialError) as caught:
        eso.fetch(_config(httpserver, tmp_path, "eso"), tmp_path / "out", target="SGR A",
                  download="2")
    message = str(caught.value)
    assert "eso:" in message and "ESO_USERNAME and ESO_PASSWORD" in message
    assert "pw-Zq81" not in message and "observer-7731" not in message


def test_eso_tap_error_document_with_status_200(httpserver, tmp_path):
    _serve_tap(httpserver, "/tap_obs/sync", (DATA / "eso_tap_error.xml").read_bytes(), [])
    with pytest.raises(ReplyValidationError, match="instrumnet' does not exist") as caught:
        eso.fetch(_config(httpserver, tmp_path, "eso"), tmp_path / "out", instrument="MUSE")
    assert caught.value.source == "eso" and caught.value.url.endswith("/tap_obs/sync")


def test_eso_reduced_query_and_option_errors(httpserver, tmp_path):
    seen: list[dict] = []
    _serve_tap(httpserver, "/tap_obs/sync", ESO_BODY, seen)
    eso.fetch(_config(httpserver, tmp_path, "eso"), tmp_path / "out", product="reduced",
              instrument="muse", ra="10", dec="-5")
    assert "FROM ivoa.ObsCore" in seen[0]["QUERY"]
    assert "instrument_name = 'MUSE'" in seen[0]["QUERY"]
    assert "INTERSECTS(s_region, CIRCLE('ICRS', 10.0, -5.0, 0.1)) = 1" in seen[0]["QUERY"]
    config = _config(httpserver, tmp_path, "eso")
    with pytest.raises(ValueError, match="at least one of"):
        eso.fetch(config, tmp_path / "o")
    with pytest.raises(ValueError, match="ra and dec go together"):
        eso.fetch(config, tmp_path / "o", ra="10")
    with pytest.raises(ValueError, match="dec must be in"):
        eso.fetch(config, tmp_path / "o", ra="10", dec="95")
    with pytest.raises(ValueError, match="unknown option"):
        eso.fetch(config, tmp_path / "o", instrumnet="MUSE")


def test_eso_offline_second_fetch_from_cache(httpserver, tmp_path):
    _serve_tap(httpserver, "/tap_obs/sync", ESO_BODY, [])
    first = eso.fetch(_config(httpserver, tmp_path, "eso"), tmp_path / "a", instrument="SINFONI")
    httpserver.clear()
    again = eso.fetch(_config(httpserver, tmp_path, "eso", offline=True), tmp_path / "b",
                      instrument="SINFONI")
    assert again.provenance[0].cache_hit and again.provenance[0].sha256 == _sha(ESO_BODY)
    assert list(again.tables["eso_raw"]["dp_id"]) == list(first.tables["eso_raw"]["dp_id"])


# --- KOA ---------------------------------------------------------------------------------

KOA_BODY = (DATA / "koa_hires_hd189733.xml").read_bytes()


def test_koa_hires_query_end_to_end(httpserver, tmp_path):
    seen: list[dict] = []
    _serve_tap(httpserver, "/sync", KOA_BODY, seen)
    out = tmp_path / "out"
    result = keck.fetch(_config(httpserver, tmp_path, "koa"), out, instrument="HIRES",
                        ra="300.18", dec="22.71", radius_deg="0.05",
                        date="2019-07-14..2019-07-16")
    query = seen[0]["QUERY"]
    assert "FROM koa_hires" in query and "CIRCLE('ICRS', 300.18, 22.71, 0.05)" in query
    assert "date_obs BETWEEN '2019-07-14' AND '2019-07-16'" in query
    table = result.tables["koa_hires"]
    assert list(table["koaid"]) == ["HI.20190715.31050.fits", "HI.20190715.31711.fits",
                                    "HI.20190715.32389.fits"]
    assert table["ra"].unit == u.deg and table["elaptime"].unit == u.s  # fallback unit
    assert table["elaptime"][0] == 600.0 and table["targname"][2] == "ThAr"
    assert result.provenance[0].sha256 == _sha(KOA_BODY)
    assert result.provenance[0].url == httpserver.url_for("/sync")
    assert FetchResult.load(out).tables["koa_hires"]["elaptime"].unit == u.s


def test_koa_tap_error_and_bad_options(httpserver, tmp_path):
    _serve_tap(httpserver, "/sync", (DATA / "koa_tap_error.xml").read_bytes(), [])
    config = _config(httpserver, tmp_path, "koa")
    with pytest.raises(ReplyValidationError,
                       match="koa: the TAP service rejected the query: ADQL parse error") as err:
        keck.fetch(config, tmp_path / "out", date="2019-07-15")
    assert err.value.reason == "service_error"
    assert not list((tmp_path / "cache").rglob("*.body"))  # an error document is never cached
    with pytest.raises(ValueError, match="instrument must be one of"):
        keck.fetch(config, tmp_path / "out", instrument="hires; DROP", date="2019-07-15")
    with pytest.raises(ValueError, match="date must be YYYY-MM-DD"):
        keck.fetch(config, tmp_path / "out", date="15/07/2019")


def test_koa_offline_second_fetch_from_cache(httpserver, tmp_path):
    _serve_tap(httpserver, "/sync", KOA_BODY, [])
    keck.fetch(_config(httpserver, tmp_path, "koa"), tmp_path / "a", target="HD 189733")
    httpserver.clear()
    again = keck.fetch(_config(httpserver, tmp_path, "koa", offline=True), tmp_path / "b",
                       target="HD 189733")
    assert again.provenance[0].cache_hit and len(again.tables["koa_hires"]) == 3


# --- Gemini ------------------------------------------------------------------------------

GEMINI_BODY = (DATA / "gemini_m101.json").read_bytes()
GEMINI_PATH = "/jsonsummary/canonical/NotFail/GMOS-N/object=M101"


def test_gemini_summary_end_to_end(httpserver, tmp_path):
    httpserver.expect_request(GEMINI_PATH).respond_with_data(GEMINI_BODY,
                                                             content_type="application/json")
    out = tmp_path / "out"
    result = gemini.fetch(_config(httpserver, tmp_path, "gemini"), out, instrument="GMOS-N",
                          object="M101")
    table = result.tables["gemini_files"]
    assert len(table) == 10 and table["filename"][0] == "mrgN20070221S0137_add.fits.bz2"
    assert table["exposure_time"].unit == u.s and table["ra"].unit == u.deg
    assert table["central_wavelength"].unit == u.micron and table["data_size"].unit == u.byte
    assert table["exposure_time"][0] == pytest.approx(119.9986)
    assert table["dec"][0] == pytest.approx(54.34877772501)
    assert table["central_wavelength"].mask[0] and table["central_wavelength"][8] == 0.45
    assert result.provenance[0].url == httpserver.url_for(GEMINI_PATH)
    assert result.provenance[0].sha256 == _sha(GEMINI_BODY)
    loaded = FetchResult.load(out).tables["gemini_files"]
    assert loaded["ra"].unit == u.deg and loaded["ut_datetime"][0] == "2007-02-21 15:49:30"


def test_gemini_error_object_empty_list_and_bad_selection(httpserver, tmp_path):
    config = _config(httpserver, tmp_path, "gemini")
    httpserver.expect_request("/jsonsummary/canonical/NotFail/20991231").respond_with_json([])
    empty = gemini.fetch(config, tmp_path / "e", date="2099-12-31").tables["gemini_files"]
    assert len(empty) == 0 and empty["exposure_time"].unit == u.s
    httpserver.expect_request("/jsonsummary/canonical/NotFail/GN-2007A-Q-72").respond_with_json(
        {"error": "Too many results"})
    with pytest.raises(ReplyValidationError, match="expected a JSON list") as caught:
        gemini.fetch(config, tmp_path / "x", program_id="GN-2007A-Q-72")
    assert caught.value.source == "gemini" and caught.value.reason == "service_error"
    assert len(list((tmp_path / "cache").rglob("*.body"))) == 1  # the empty list, not the error
    with pytest.raises(ValueError, match="lists only its 500 newest files"):
        gemini.fetch(config, tmp_path / "x")
    with pytest.raises(ValueError, match="must not contain '/'"):
        gemini.fetch(config, tmp_path / "x", object="M101/../../admin")


def test_gemini_offline_second_fetch_from_cache(httpserver, tmp_path):
    httpserver.expect_request(GEMINI_PATH).respond_with_data(GEMINI_BODY,
                                                             content_type="application/json")
    gemini.fetch(_config(httpserver, tmp_path, "gemini"), tmp_path / "a", instrument="GMOS-N",
                 object="M101")
    httpserver.clear()
    again = gemini.fetch(_config(httpserver, tmp_path, "gemini", offline=True), tmp_path / "b",
                         instrument="GMOS-N", object="M101")
    assert again.provenance[0].cache_hit and len(again.tables["gemini_files"]) == 10


def _summaries(n: int, flagged: bool) -> list[dict]:
    """n jsonsummary rows; the archive flags the last one on every open search."""
    one = json.loads(GEMINI_BODY)[0]
    rows = [{**one, "filename": f"N20190101S{i:04d}.fits"} for i in range(n)]
    if flagged and rows:
        rows[-1]["results_truncated"] = True
    return rows


@pytest.mark.parametrize("selection,path,rows,flagged,cut", [
    # open search (no date, no program id): the archive stops at 500 and flags every reply
    ({"instrument": "GMOS-N"}, "GMOS-N", 500, True, 500),
    ({"instrument": "GMOS-N"}, "GMOS-N", 499, True, None),  # flagged, yet complete
    ({"object": "M101"}, "object=M101", 500, False, 500),  # at the limit without the flag
    # closed search (a date range): the archive stops at 2,000 and never flags
    ({"date": "20190101-20190131"}, "20190101-20190131", 2000, False, 2000),
    ({"date": "20190101-20190131"}, "20190101-20190131", 1999, False, None),
    ({"program_id": "GN-2019A-Q-101"}, "GN-2019A-Q-101", 500, False, None),
])
def test_gemini_truncation_in_provenance_and_skipped(httpserver, tmp_path, selection, path,
                                                     rows, flagged, cut):
    httpserver.expect_request(f"/jsonsummary/canonical/NotFail/{path}").respond_with_json(
        _summaries(rows, flagged))
    out = tmp_path / "out"
    result = gemini.fetch(_config(httpserver, tmp_path, "gemini"), out, **selection)
    table = result.tables["gemini_files"]
    record = result.provenance[0]
    assert len(table) == rows and table.meta["truncated"] is (cut is not None)
    assert "results_truncated" not in table.colnames
    if cut is None:
        assert record.truncated is None and result.skipped == []
        return
    assert f"at most {cut} files" in record.truncated and "date=YYYYMMDD-YYYYMMDD" in \
        record.truncated
    assert ("add a date range" if cut == 500 else "split the date range") in record.truncated
    assert result.skipped == [f"gemini_files files after the first {cut}: {record.truncated}"]
    saved = json.loads((out / "provenance.json").read_text())[0]
    assert saved["truncated"] == record.truncated
    assert FetchResult.load(out).tables["gemini_files"].meta["truncated"] is True


# --- Subaru (SMOKA export file) ------------------------------------------------------------

def test_subaru_reads_smoka_export(tmp_path):
    export = DATA / "smoka_export.csv"
    out = tmp_path / "out"
    result = subaru.fetch(SourceConfig(cache_dir=str(tmp_path / "cache")), out,
                          export=str(export))
    table = result.tables["subaru_frames"]
    assert list(table["frame_id"][:2]) == ["HSCA21356400", "HSCA21356600"]
    assert table["ra"].unit == u.deg and table["exptime"].unit == u.s
    assert table["ra"][0] == pytest.approx(346.62201, abs=1e-5)  # 23:06:29.283
    assert table["dec"][0] == pytest.approx(-5.04127, abs=1e-5)
    assert table["date_obs"][0] == "2019-03-05T13:42:07.215" and table["exptime"][2] == 600.0
    assert table["instrument"][3] == "MOIRCS" and table["object"][3] == "GJ 1214"
    assert "PROP-ID" in table.colnames
    record = result.provenance[0]
    assert record.source == "subaru" and record.url == export.resolve().as_uri()
    assert record.sha256 == _sha(export.read_bytes())
    assert FetchResult.load(out).tables["subaru_frames"]["dec"].unit == u.deg


def test_subaru_export_errors_name_file_and_column(tmp_path):
    bad = DATA / "smoka_export_missing_exptime.tsv"
    with pytest.raises(ValueError, match=r"smoka_export_missing_exptime.tsv: SMOKA export has "
                                         r"no EXPTIME column"):
        subaru.fetch(SourceConfig(), tmp_path / "out", export=str(bad))
    with pytest.raises(ValueError, match="no query API"):
        subaru.fetch(SourceConfig(), tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        subaru.fetch(SourceConfig(), tmp_path / "out", export=str(tmp_path / "nowhere.csv"))
