"""NASA Exoplanet Archive, exoplanets.org and Planet Hunters TESS against recorded replies.

Every reply is served by a real HTTP server on 127.0.0.1 (no network); the recordings under
tests/data/sources/exoplanets/ are written in each service's format (see the README there).
"""

import hashlib
import json
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest

from astrojax.data.archives import (
    OfflineCacheMiss,
    ReplyValidationError,
    SourceConfig,
    SourceError,
)
from astrojax.data.archives import exoplanets_org as eod
from astrojax.data.archives import nasa_exoplanet_archive as nea
from astrojax.data.archives import planet_hunters as pht
from astrojax.data.archives.result import FetchResult

DATA = Path(__file__).parent / "data" / "sources" / "exoplanets"
VOTABLE = "text/xml;content=x-votable"


def config_for(httpserver, tmp_path, name, offline=False) -> SourceConfig:
    return SourceConfig(base_urls={name: httpserver.url_for("/")},
                        cache_dir=str(tmp_path / "cache"), offline=offline, max_attempts=1)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- NASA Exoplanet Archive ----------------------------------------------------------------


def serve_tap(httpserver, recording: str, adql: str) -> bytes:
    body = (DATA / recording).read_bytes()
    httpserver.expect_request("/sync", query_string={"query": adql, "format": "votable"}
                              ).respond_with_data(body, content_type=VOTABLE)
    return body


def test_nasa_pscomppars_fetch_maps_archive_units(httpserver, tmp_path):
    body = serve_tap(httpserver, "nasa_pscomppars.vot", nea.build_query("pscomppars"))
    out = tmp_path / "out"
    result = nea.fetch(config_for(httpserver, tmp_path, nea.NAME), out)

    table = result.tables["pscomppars"]
    assert table.colnames == nea.default_columns("pscomppars")
    assert list(table["pl_name"]) == ["TRAPPIST-1 e", "Kepler-442 b", "Proxima Cen b"]
    expected = {"st_teff": u.K, "st_rad": u.solRad, "st_mass": u.solMass,
                "st_lum": u.dex(u.solLum), "pl_orbsmax": u.au, "pl_orbper": u.day,
                "pl_rade": u.earthRad, "pl_radeerr2": u.earthRad, "pl_bmasse": u.earthMass,
                "pl_eqt": u.K, "pl_insol": nea.EARTH_FLUX}
    for name, unit in expected.items():
        assert table[name].unit == unit, name
    assert table["pl_orbeccen"].unit is None
    trappist = table[0]
    assert trappist["pl_rade"] == pytest.approx(0.920)
    assert (trappist["pl_insol"] * table["pl_insol"].unit).to_value(u.W / u.m**2) == \
        pytest.approx(0.646 * 1361, rel=1e-3)
    assert table["st_lum"].quantity[0].physical.to_value(u.solLum) == pytest.approx(10**-3.2573)
    assert table["pl_orbeccen"].mask.tolist() == [False, True, False]  # empty TD -> masked

    [record] = result.provenance
    assert record.sha256 == sha256(body) and record.bytes == len(body)
    assert record.url == httpserver.url_for("/sync")
    assert record.params["query"].startswith("select pl_name,hostname,")
    assert result.skipped == []

    saved = FetchResult.load(out)
    assert saved.source == "nasa" and saved.tables["pscomppars"]["pl_eqt"].unit == u.K
    assert saved.tables["pscomppars"]["st_lum"].unit == u.dex(u.solLum)
    assert saved.provenance[0].sha256 == record.sha256


def test_nasa_ps_options_and_overflow_is_reported(httpserver, tmp_path):
    adql = nea.build_query("ps", where="hostname = 'TRAPPIST-1'", max_rows=2)
    assert adql.startswith("select top 2 ") and adql.endswith(" where hostname = 'TRAPPIST-1'")
    serve_tap(httpserver, "nasa_ps_overflow.vot", adql)
    result = nea.fetch(config_for(httpserver, tmp_path, nea.NAME), tmp_path / "out",
                       table="ps", where="hostname = 'TRAPPIST-1'", max_rows="2")
    table = result.tables["ps"]
    assert list(table["default_flag"]) == [1, 0]
    assert list(table["pl_refname"]) == ["Agol et al. 2021", "Grimm et al. 2018"]
    assert table["pl_bmasse"].unit == u.earthMass
    assert table.meta["overflow"] is True
    assert len(result.skipped) == 1 and "OVERFLOW" in result.skipped[0]


def test_nasa_tap_error_document_with_status_200_raises(httpserver, tmp_path):
    adql = nea.build_query("pscomppars", columns=["pl_name", "pl_radius"])
    serve_tap(httpserver, "nasa_tap_error.vot", adql)
    with pytest.raises(SourceError) as caught:
        nea.fetch(config_for(httpserver, tmp_path, nea.NAME), tmp_path / "out",
                  columns="pl_name, pl_radius")
    message = str(caught.value)
    assert message.startswith("nasa: the TAP service rejected the query")
    assert "PL_RADIUS" in message and "/sync" in message
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_nasa_second_fetch_offline_comes_from_cache(httpserver, tmp_path):
    body = serve_tap(httpserver, "nasa_pscomppars.vot", nea.build_query("pscomppars"))
    nea.fetch(config_for(httpserver, tmp_path, nea.NAME), tmp_path / "online")
    httpserver.clear()
    result = nea.fetch(config_for(httpserver, tmp_path, nea.NAME, offline=True),
                       tmp_path / "offline")
    assert len(httpserver.log) == 0
    assert result.provenance[0].cache_hit and result.provenance[0].sha256 == sha256(body)
    assert result.tables["pscomppars"]["pl_rade"].unit == u.earthRad
    with pytest.raises(OfflineCacheMiss, match="^nasa: offline"):
        nea.fetch(config_for(httpserver, tmp_path, nea.NAME, offline=True), tmp_path / "x",
                  table="ps")


def test_archive_unit_takes_archive_and_vounit_spellings():
    same = {"Earth Radius": "earthRad", "Earth Mass": "earthMass", "au": "AU", "days": "day",
            "Solar Radius": "solRad", "Solar mass": "solMass", "log(Solar)": "log10(solLum)"}
    for archive, vounit in same.items():
        assert nea.archive_unit(archive) == nea.archive_unit(vounit) is not None, archive
    assert nea.archive_unit("log(Solar)") == u.dex(u.solLum)
    earth_flux = (1 * nea.archive_unit("Earth Flux")).to_value(u.W / u.m**2)
    assert earth_flux == pytest.approx(1361, rel=1e-3)
    assert nea.archive_unit("km/s") == u.km / u.s
    assert nea.archive_unit("parsecs of doom") is None
    assert nea.archive_unit(None) is None and nea.archive_unit("--") is None
    with pytest.raises(ValueError, match="table must be one of"):
        nea.build_query("exoplanets")


# --- exoplanets.org ------------------------------------------------------------------------


def test_exoplanets_org_fetch_downloads_frozen_csv_with_units(httpserver, tmp_path):
    body = (DATA / "exoplanets_org.csv").read_bytes()
    httpserver.expect_request("/csv-files/exoplanets.csv").respond_with_data(
        body, content_type="text/csv")
    out = tmp_path / "out"
    result = eod.fetch(config_for(httpserver, tmp_path, eod.NAME), out)

    table = result.tables["exoplanets"]
    assert list(table["NAME"]) == ["51 Peg b", "HD 209458 b", "GJ 436 b", "Kepler-22 b"]
    expected = {"R": u.jupiterRad, "UR": u.jupiterRad, "MASS": u.jupiterMass,
                "MSINI": u.jupiterMass, "MSINIUPPER": u.jupiterMass, "A": u.au,
                "ALOWER": u.au, "PER": u.day, "TEFF": u.K, "RSTAR": u.solRad,
                "MSTAR": u.solMass, "DIST": u.pc, "K": u.m / u.s}
    for name, unit in expected.items():
        assert table[name].unit == unit, name
    assert table["ECC"].unit is None and table["FIRSTREF"].unit is None
    hd209458 = table[1]
    assert hd209458["R"] == pytest.approx(1.359) and hd209458["PER"] == pytest.approx(3.52474859)
    assert (table["R"].quantity[1]).to_value(u.earthRad) == pytest.approx(15.2, rel=0.01)
    assert table["MASS"].mask.tolist() == [True, False, False, True]
    assert table["FIRSTREF"][2] == "Butler, Vogt, Marcy et al. 2004"  # quoted comma

    [record] = result.provenance
    assert record.sha256 == sha256(body) and record.url == httpserver.url_for(
        "/csv-files/exoplanets.csv")
    assert result.files == [Path("exoplanets.csv")]
    assert (out / "exoplanets.csv").read_bytes() == body
    saved = FetchResult.load(out)
    assert saved.tables["exoplanets"]["R"].unit == u.jupiterRad
    assert json.loads((out / "manifest.json").read_text())["files"] == ["exoplanets.csv"]


def test_exoplanets_org_html_page_in_place_of_csv_is_refused(httpserver, tmp_path):
    httpserver.expect_request("/csv-files/exoplanets.csv").respond_with_data(
        "<html><head><title>Exoplanet Orbit Database retired</title></head></html>",
        content_type="text/html")
    with pytest.raises(ReplyValidationError) as caught:
        eod.fetch(config_for(httpserver, tmp_path, eod.NAME), tmp_path / "out")
    assert caught.value.reason == "html"
    assert str(caught.value).startswith("exoplanets_org: ")
    assert "retired" in str(caught.value)
    assert not (tmp_path / "out" / "exoplanets.csv").exists()


def test_exoplanets_org_csv_without_its_columns_is_refused(tmp_path):
    path = tmp_path / "exoplanets.csv"
    path.write_text("pl_name,pl_rade\nTRAPPIST-1 e,0.92\n")
    with pytest.raises(ReplyValidationError, match="not the exoplanets.org CSV"):
        eod.read_csv(path)


def test_exoplanets_org_second_fetch_offline_reuses_the_file(httpserver, tmp_path):
    body = (DATA / "exoplanets_org.csv").read_bytes()
    httpserver.expect_request("/csv-files/exoplanets.csv").respond_with_data(
        body, content_type="text/csv")
    eod.fetch(config_for(httpserver, tmp_path, eod.NAME), tmp_path / "online")
    httpserver.clear()
    result = eod.fetch(config_for(httpserver, tmp_path, eod.NAME, offline=True),
                       tmp_path / "offline")
    assert len(httpserver.log) == 0
    assert result.provenance[0].cache_hit and result.provenance[0].sha256 == sha256(body)
    assert (tmp_path / "offline" / "exoplanets.csv").read_bytes() == body


def test_exoplanets_org_needs_a_mirror_unless_a_copy_is_cached(httpserver, tmp_path):
    no_mirror = SourceConfig(cache_dir=str(tmp_path / "cache"), max_attempts=1)
    with pytest.raises(eod.MirrorRequired, match="exoplanets.org is retired") as caught:
        eod.fetch(no_mirror, tmp_path / "out")
    assert "--base-url" in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(OfflineCacheMiss, match="has not been downloaded yet"):
        eod.fetch(SourceConfig(cache_dir=str(tmp_path / "cache"), offline=True), tmp_path / "o")
    body = (DATA / "exoplanets_org.csv").read_bytes()
    httpserver.expect_request("/mirror/csv-files/exoplanets.csv").respond_with_data(
        body, content_type="text/csv")
    mirror = SourceConfig(base_urls={eod.NAME: httpserver.url_for("/mirror/")},
                          cache_dir=str(tmp_path / "cache"), max_attempts=1)
    eod.fetch(mirror, tmp_path / "first")
    reused = eod.fetch(no_mirror, tmp_path / "again")  # the frozen file, from the cache folder
    assert reused.provenance[0].cache_hit and len(httpserver.log) == 1
    assert reused.provenance[0].url == httpserver.url_for("/mirror/csv-files/exoplanets.csv")
    assert len(reused.tables["exoplanets"]) == 4


# --- Planet Hunters TESS (Zooniverse Panoptes) --------------------------------------------


@pytest.fixture(autouse=True)
def fast_zooniverse(monkeypatch):
    """The 2 requests/s Zooniverse limit would only slow these tests down (a limiter per rate)."""
    monkeypatch.setattr(pht, "RATE_PER_SECOND", 1000.0)


def serve_subject_pages(httpserver, project="7929", page_size="2"):
    bodies = []
    for page in (1, 2):
        body = (DATA / f"panoptes_subjects_page{page}.json").read_bytes()
        httpserver.expect_request(
            "/subjects", headers={"Accept": pht.HEADERS["Accept"]},
            query_string={"project_id": project, "page_size": page_size, "page": str(page)},
        ).respond_with_data(body, content_type="application/vnd.api+json; charset=utf-8")
        bodies.append(body)
    return bodies


def test_planet_hunters_fetch_follows_next_page(httpserver, tmp_path):
    bodies = serve_subject_pages(httpserver)
    out = tmp_path / "out"
    result = pht.fetch(config_for(httpserver, tmp_path, pht.NAME), out, page_size="2")

    table = result.tables["subjects"]
    assert list(table["subject_id"]) == [31407451, 31407452, 31407990]
    assert table["tic_id"].tolist() == [268644785, 38846515, None]  # a simulation: no TIC
    assert list(table["sector"]) == [5, 5, 5]
    assert table["locations"][0].startswith("https://panoptes-uploads.zooniverse.org/")
    assert set(table["location_types"]) == {"image/png"}
    assert list(table["subject_set_ids"]) == ["72011", "72011", "72012"]
    assert json.loads(table["metadata"][0])["#Tmag"] == "10.44"
    assert table.meta["pages_fetched"] == 2 and table.meta["page_count"] == 2

    assert [p.sha256 for p in result.provenance] == [sha256(b) for b in bodies]
    assert [p.params["page"] for p in result.provenance] == [1, 2]
    assert result.skipped == [pht.EXPORT_SKIPPED]
    saved = FetchResult.load(out)
    assert np.ma.is_masked(saved.tables["subjects"]["tic_id"][2])
    assert len(saved.provenance) == 2


def test_planet_hunters_max_pages_lists_what_was_left(httpserver, tmp_path):
    serve_subject_pages(httpserver)
    result = pht.fetch(config_for(httpserver, tmp_path, pht.NAME), tmp_path / "out",
                       page_size=2, max_pages=1)
    assert len(result.tables["subjects"]) == 2 and len(httpserver.log) == 1
    assert result.skipped[0] == "subjects pages 2 of 2 and later: max_pages=1 reached"


def test_planet_hunters_error_document_with_status_200_raises(httpserver, tmp_path):
    httpserver.expect_request("/subjects").respond_with_data(
        (DATA / "panoptes_error.json").read_bytes(), content_type="application/vnd.api+json")
    with pytest.raises(SourceError) as caught:
        pht.fetch(config_for(httpserver, tmp_path, pht.NAME), tmp_path / "out",
                  project_id="7929x")
    assert str(caught.value).startswith("planet_hunters: Panoptes answered with an error: "
                                        "Could not find project with id='7929x'")


def test_planet_hunters_second_fetch_offline_comes_from_cache(httpserver, tmp_path):
    serve_subject_pages(httpserver)
    pht.fetch(config_for(httpserver, tmp_path, pht.NAME), tmp_path / "online", page_size=2)
    httpserver.clear()
    result = pht.fetch(config_for(httpserver, tmp_path, pht.NAME, offline=True),
                       tmp_path / "offline", page_size=2)
    assert len(httpserver.log) == 0 and len(result.tables["subjects"]) == 3
    assert all(p.cache_hit for p in result.provenance)
