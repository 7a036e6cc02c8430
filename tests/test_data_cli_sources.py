"""The data CLI's fetch and build-catalog subcommands, in subprocesses, and the registry."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from astropy.table import Table
from test_catalog import exoplanets_org_csv, nasa_pscomppars, save

from astrojax.data.archives import registry

ROOT = Path(__file__).resolve().parents[1]

FAKE_SOURCE = '''
"""A stand-in source module for the CLI tests."""
from astropy.table import Table
from astrojax.data.archives import Provenance, SourceError
from astrojax.data.archives.result import FetchResult

NAME = "fake"
DEFAULT_BASE_URL = "https://fake.example.org/"


def fetch(config, out_dir, *, rows=2, fail=""):
    """rows: rows to return (int); fail: when set, fail as the server would."""
    base = config.base_url(NAME, DEFAULT_BASE_URL)
    if fail:
        raise SourceError(NAME, base + "q?token=abc", "server said:\\n  " + fail)
    result = FetchResult(NAME, {"stars": Table({"x": list(range(rows))})},
                         provenance=[Provenance.create(NAME, base, b"x")],
                         skipped=["spectra: not public yet"])
    result.save(out_dir)
    return result
'''


def run_cli(*args: str, fake_dir: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    if fake_dir is None:
        command = [sys.executable, "-m", "astrojax.data", *args]
    else:  # registers the stand-in module under the name "fake", then runs the CLI
        code = textwrap.dedent(f"""
            import sys
            sys.path.insert(0, {str(fake_dir)!r})
            from astrojax.data.archives import registry
            registry.SOURCES["fake"] = "fakesource"
            from astrojax.data.__main__ import run
            sys.argv = ["astrojax.data", *{list(args)!r}]
            run()
        """)
        command = [sys.executable, "-c", code]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def fake_dir(tmp_path):
    (tmp_path / "fakesource.py").write_text(FAKE_SOURCE)
    return tmp_path


def test_fetch_with_an_unknown_source_names_the_sources():
    one_line_error(run_cli("fetch", "nasaa", "--out", "/tmp/never-written"),
                   "unknown source 'nasaa'", "exoplanets_org", "gtdb", "nasa")


def test_fetch_runs_the_source_and_prints_a_summary(fake_dir, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("fetch", "fake", "--out", str(out), "--option", "rows=3",
                   "--base-url", "http://127.0.0.1:9/", "--cache", str(tmp_path / "c"),
                   fake_dir=fake_dir)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{out}: fake 1 table(s) (stars 3 rows), 0 file(s), 1 skipped")
    assert "skipped: spectra: not public yet" in proc.stderr
    assert len(Table.read(out / "stars.ecsv")) == 3
    assert "127.0.0.1:9" in (out / "provenance.json").read_text()


def test_fetch_errors_are_one_line(fake_dir, tmp_path):
    out = str(tmp_path / "out")
    line = one_line_error(run_cli("fetch", "fake", "--out", out, "--option", "fail=boom",
                                  fake_dir=fake_dir), "fake: server said: boom")
    assert "abc" not in line  # the token in the URL is redacted by SourceError
    one_line_error(run_cli("fetch", "fake", "--out", out, "--option", "colour=red",
                           fake_dir=fake_dir), "unknown option 'colour'", "rows, fail")
    one_line_error(run_cli("fetch", "fake", "--out", out, "--base-url", "ftp://x",
                           fake_dir=fake_dir), "--base-url", "ftp://x")
    one_line_error(run_cli("fetch", "fake", "--out", out, "--store", "s", fake_dir=fake_dir),
                   "--store belongs to build-cubes, ingest-netcdf, not fetch")


def test_build_catalog_writes_the_files_and_a_summary(tmp_path):
    nasa = save("nasa", {"pscomppars": nasa_pscomppars()}, tmp_path / "nasa")
    eorg = save("exoplanets_org", {"exoplanets": exoplanets_org_csv()}, tmp_path / "eorg")
    out = tmp_path / "catalog"
    proc = run_cli("build-catalog", "--from", f"{nasa},{eorg}", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{out}: 5 planets kept, 3 rows rejected (quarantine.ecsv), "
                               f"1 planets flagged, 1 cross-match disagreements, sources: "
                               f"nasa, exoplanets_org")
    for name in ("catalog.ecsv", "quarantine.ecsv", "quality_report.json", "quality_report.md"):
        assert (out / name).is_file(), name


def test_build_catalog_errors_are_one_line(tmp_path):
    one_line_error(run_cli("build-catalog", "--out", str(tmp_path)), "needs --from")
    one_line_error(run_cli("build-catalog", "--from", str(tmp_path / "nope"), "--out",
                           str(tmp_path)), "nope", "not a fetch output folder")
    one_line_error(run_cli("build-cubes", "--from", "x", "--config", "configs/quickstart.py"),
                   "--from belongs to build-catalog, not build-cubes")


def test_registry_names_a_missing_module(monkeypatch):
    assert len(registry.source_names()) == 14 and "exoplanets_org" in registry.source_names()
    monkeypatch.setitem(registry.SOURCES, "ghost", "astrojax.data.archives.no_such_module")
    with pytest.raises(registry.UnknownSourceError, match="'ghost' is registered but"):
        registry.get_fetch("ghost")
    with pytest.raises(registry.UnknownSourceError, match="unknown source 'x'"):
        registry.get_fetch("x")


def test_real_catalogue_from_recorded_archive_replies(httpserver, tmp_path):
    """The worked example of the README, end to end through the CLI, against recorded replies
    of the NASA Exoplanet Archive and exoplanets.org served on 127.0.0.1."""
    data = ROOT / "tests" / "data" / "sources" / "exoplanets"
    httpserver.expect_request("/TAP/sync").respond_with_data(
        (data / "nasa_pscomppars.vot").read_bytes(), content_type="text/xml")
    httpserver.expect_request("/csv-files/exoplanets.csv").respond_with_data(
        (data / "exoplanets_org.csv").read_bytes(), content_type="text/csv")
    cache = str(tmp_path / "cache")
    nasa = run_cli("fetch", "nasa", "--out", str(tmp_path / "nasa"), "--cache", cache,
                   "--base-url", httpserver.url_for("/TAP"))
    assert nasa.returncode == 0, nasa.stderr
    org = run_cli("fetch", "exoplanets_org", "--out", str(tmp_path / "org"), "--cache", cache,
                  "--base-url", httpserver.url_for("/"))
    assert org.returncode == 0, org.stderr
    built = run_cli("build-catalog", "--from", f"{tmp_path / 'nasa'},{tmp_path / 'org'}",
                    "--out", str(tmp_path / "catalog"))
    assert built.returncode == 0, built.stderr
    catalog = Table.read(tmp_path / "catalog" / "catalog.ecsv", format="ascii.ecsv")
    names = set(catalog["name"])
    assert {"TRAPPIST-1 e", "Kepler-442 b", "Proxima Cen b"} <= names
    assert "51 Peg b" in names  # only exoplanets.org has it
    for name in ("quarantine.ecsv", "quality_report.json", "quality_report.md"):
        assert (tmp_path / "catalog" / name).is_file()


def test_exoplanets_org_without_a_mirror_is_one_line_and_exit_2(tmp_path):
    proc = run_cli("fetch", "exoplanets_org", "--out", str(tmp_path / "out"), "--cache",
                   str(tmp_path / "cache"))
    one_line_error(proc, "exoplanets_org: exoplanets.org is retired", "--base-url",
                   "nasa source")
    assert not (tmp_path / "out").exists()


def test_fetch_summary_marks_a_table_the_archive_cut(httpserver, tmp_path):
    rows = [{"filename": f"N20190101S{i:04d}.fits", "exposure_time": 60.0} for i in range(500)]
    rows[-1]["results_truncated"] = True  # what archive.gemini.edu adds to an open search
    httpserver.expect_request("/jsonsummary/canonical/NotFail/GMOS-N").respond_with_json(rows)
    out = tmp_path / "out"
    proc = run_cli("fetch", "gemini", "--out", str(out), "--cache", str(tmp_path / "cache"),
                   "--base-url", httpserver.url_for("/"), "--option", "instrument=GMOS-N")
    assert proc.returncode == 0, proc.stderr
    assert f"{out}: gemini 1 table(s) (gemini_files 500 rows [truncated]), 0 file(s), " \
           "1 skipped" in proc.stdout
    assert "skipped: gemini_files files after the first 500: the archive returns at most 500 " \
           "files" in proc.stderr


def test_an_option_of_the_wrong_type_is_named(tmp_path):
    proc = run_cli("fetch", "nasa", "--out", str(tmp_path / "out"), "--offline", "--cache",
                   str(tmp_path / "cache"), "--option", "max_rows=abc")
    one_line_error(proc, "nasa: option max_rows must be an integer, got 'abc'")
