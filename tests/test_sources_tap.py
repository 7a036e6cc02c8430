"""TAP as the NASA Exoplanet Archive and KOA (nexsciTAP) serve it: error documents with status
200, slow synchronous queries, and asynchronous (UWS) jobs, on 127.0.0.1 (no network).

The async server below follows nexsciTAP's documented behaviour (its tap_architecture notes): a
POST to TAP/async answers 303 to the job, TAP/async/JOB/phase answers the phase as text, the job
document lists the result under <uws:results> with an href into /workspace/, and a failed job
carries <uws:errorSummary><uws:message>.
"""

from pathlib import Path

import astropy.units as u
import pytest
from sources_testing import RawServer
from werkzeug import Request, Response

from astrojax.data.archives import (
    OfflineCacheMiss,
    ReplyValidationError,
    SourceConfig,
    TransportError,
    keck,
    tap,
)
from astrojax.data.archives import nasa_exoplanet_archive as nea

DATA = Path(__file__).parent / "data" / "sources"
GOOD = (DATA / "exoplanets" / "nasa_pscomppars.vot").read_bytes()
ERROR = (DATA / "exoplanets" / "nasa_tap_error.vot").read_bytes()
VOTABLE = "text/xml;content=x-votable"
JOB = "tap_4pxj0j5c"


def config_for(url: str, tmp_path, **kwargs) -> SourceConfig:
    kwargs.setdefault("max_attempts", 1)
    return SourceConfig(base_urls={"nasa": url, "koa": url}, cache_dir=str(tmp_path / "cache"),
                        **kwargs)


def cached_bodies(tmp_path) -> list[bytes]:
    return [p.read_bytes() for p in (tmp_path / "cache").rglob("*.body")]


@pytest.fixture
def polls(monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(tap, "poll_sleep", waits.append)
    return waits


# --- error documents ----------------------------------------------------------------------

@pytest.mark.parametrize("source", ["nasa", "koa"])
def test_error_document_once_then_the_answer(httpserver, tmp_path, source):
    """A transient error ("database busy") must not be replayed from the cache."""
    busy = ERROR.replace(b"PL_RADIUS", b"database busy, try again")
    httpserver.expect_ordered_request("/sync").respond_with_data(busy, content_type=VOTABLE)
    httpserver.expect_ordered_request("/sync").respond_with_data(GOOD, content_type=VOTABLE)
    config = config_for(httpserver.url_for("/"), tmp_path)

    def fetch(out, **kwargs):
        if source == "nasa":
            return nea.fetch(kwargs.pop("config", config), tmp_path / out, **kwargs)
        return keck.fetch(kwargs.pop("config", config), tmp_path / out, target="HD 189733",
                          **kwargs)

    with pytest.raises(ReplyValidationError, match="database busy") as err:
        fetch("first")
    assert err.value.reason == "service_error" and str(err.value).startswith(
        f"{source}: the TAP service rejected the query")
    assert cached_bodies(tmp_path) == []
    second = fetch("second")
    assert len(second.tables[next(iter(second.tables))]) == 3
    assert cached_bodies(tmp_path) == [GOOD]
    offline = fetch("offline", config=config_for(httpserver.url_for("/"), tmp_path,
                                                 offline=True))
    assert offline.provenance[0].cache_hit and len(httpserver.log) == 2


# --- slow synchronous queries -------------------------------------------------------------

def test_sync_query_that_times_out_is_sent_again_only_once(tmp_path):
    server = RawServer(None)  # reads the query, never answers (a query still running)
    try:
        config = config_for(server.url, tmp_path, tap_read_timeout=0.3, max_attempts=4)
        with pytest.raises(TransportError) as err:
            nea.fetch(config, tmp_path / "out")
    finally:
        server.close()
    message = str(err.value)
    assert server.connections == 2, "a timed-out query was re-sent more than once"
    assert err.value.timed_out and "0.3 s" in message and "mode=async" in message
    assert all(b"GET /sync?query=select" in r for r in server.requests)


def test_sync_read_timeout_is_the_tap_setting(httpserver, tmp_path, monkeypatch):
    seen = []
    real = nea.HttpClient.request

    def spy(self, method, path, **kwargs):
        seen.append((kwargs.get("read_timeout"), kwargs.get("timeout_resends")))
        return real(self, method, path, **kwargs)

    monkeypatch.setattr(nea.HttpClient, "request", spy)
    httpserver.expect_request("/sync").respond_with_data(GOOD, content_type=VOTABLE)
    nea.fetch(config_for(httpserver.url_for("/"), tmp_path), tmp_path / "out")
    assert seen == [(600.0, 1)] and SourceConfig().tap_read_timeout == 600.0


# --- asynchronous jobs --------------------------------------------------------------------

class FakeUWS:
    """TAP/async of nexsciTAP: 303 to the job, text phases, results under /workspace/."""

    def __init__(self, httpserver, phases: list[str], error: str = ""):
        self.httpserver = httpserver
        self.phases = list(phases)
        self.error = error
        self.created: list[dict] = []
        self.phase_posts: list[str] = []
        job = f"/async/{JOB}"
        httpserver.expect_request("/async", method="POST").respond_with_handler(self.create)
        httpserver.expect_request(f"{job}/phase", method="GET").respond_with_handler(self.phase)
        httpserver.expect_request(f"{job}/phase", method="POST").respond_with_handler(
            self.set_phase)
        httpserver.expect_request(job, method="GET").respond_with_handler(self.job)
        httpserver.expect_request(f"/workspace/TAP/{JOB}/result.xml").respond_with_data(
            GOOD, content_type=VOTABLE)

    def create(self, request: Request) -> Response:
        self.created.append(dict(request.form))
        return Response(status=303, headers={"Location": self.httpserver.url_for(
            f"/async/{JOB}")})

    def phase(self, request: Request) -> Response:
        current = self.phases.pop(0) if len(self.phases) > 1 else self.phases[0]
        return Response(current, content_type="text/plain")

    def set_phase(self, request: Request) -> Response:
        self.phase_posts.append(request.form["PHASE"])
        return Response(status=303, headers={"Location": self.httpserver.url_for(
            f"/async/{JOB}")})

    def job(self, request: Request) -> Response:
        phase = self.phases[0]
        body = [f'<uws:job xmlns:uws="http://www.ivoa.net/xml/UWS/v1.0" '
                f'xmlns:xlink="http://www.w3.org/1999/xlink"><uws:jobId>{JOB}</uws:jobId>'
                f"<uws:phase>{phase}</uws:phase>"]
        if phase == "COMPLETED":
            href = self.httpserver.url_for(f"/workspace/TAP/{JOB}/result.xml")
            body.append(f'<uws:results><uws:result id="result" xlink:type="simple" '
                        f'xlink:href="{href}"/></uws:results>')
        if phase == "ERROR":
            body.append(f'<uws:errorSummary type="transient" hasDetail="true"><uws:message>'
                        f"{self.error}</uws:message></uws:errorSummary>")
        return Response("".join(body) + "</uws:job>", content_type="text/xml")


def test_async_job_polled_until_completed_then_cached_under_the_query(httpserver, tmp_path,
                                                                      polls):
    uws = FakeUWS(httpserver, ["EXECUTING", "EXECUTING", "COMPLETED"])
    config = config_for(httpserver.url_for("/"), tmp_path)
    result = nea.fetch(config, tmp_path / "out", mode="async")

    table = result.tables["pscomppars"]
    assert list(table["pl_name"]) == ["TRAPPIST-1 e", "Kepler-442 b", "Proxima Cen b"]
    assert table["pl_rade"].unit == u.earthRad
    [created] = uws.created
    assert created["PHASE"] == "RUN" and created["format"] == "votable"
    assert created["query"] == nea.build_query("pscomppars")
    assert polls == [1.0, 2.0, 4.0]  # growing waits between phase polls
    [record] = result.provenance
    assert record.method == "POST" and record.url == httpserver.url_for("/async")
    assert record.data["query"] == created["query"] and "PHASE" not in record.data
    assert record.final_url == httpserver.url_for(f"/workspace/TAP/{JOB}/result.xml")
    assert cached_bodies(tmp_path) == [GOOD]

    requests_before = len(httpserver.log)
    again = nea.fetch(config, tmp_path / "again", mode="async")  # no second job
    offline = nea.fetch(config_for(httpserver.url_for("/"), tmp_path, offline=True),
                        tmp_path / "offline", mode="async")
    assert len(httpserver.log) == requests_before and len(uws.created) == 1
    assert again.provenance[0].cache_hit and offline.provenance[0].cache_hit
    with pytest.raises(OfflineCacheMiss, match="POST .*/async"):
        nea.fetch(config_for(httpserver.url_for("/"), tmp_path, offline=True),
                  tmp_path / "x", mode="async", table="ps")


def test_async_job_that_ends_in_error_surfaces_its_message(httpserver, tmp_path, polls):
    message = "ERROR: column pl_radius does not exist in table pscomppars"
    FakeUWS(httpserver, ["QUEUED", "ERROR"], error=message)
    with pytest.raises(ReplyValidationError) as err:
        nea.fetch(config_for(httpserver.url_for("/"), tmp_path), tmp_path / "out",
                  mode="async", columns="pl_name,pl_radius")
    text = str(err.value)
    assert err.value.reason == "service_error"
    assert text.startswith(f"nasa: TAP job {JOB} ended in ERROR: {message}")
    assert f"/async/{JOB}" in text
    assert cached_bodies(tmp_path) == [] and polls == [1.0, 2.0]


def test_async_job_that_outlasts_the_wait_is_aborted(httpserver, tmp_path, polls):
    uws = FakeUWS(httpserver, ["EXECUTING"])
    config = config_for(httpserver.url_for("/"), tmp_path, tap_wait_seconds=5)
    with pytest.raises(TransportError, match=f"TAP job {JOB} still EXECUTING after 7 s") as err:
        nea.fetch(config, tmp_path / "out", mode="async")
    assert err.value.timed_out and polls == [1.0, 2.0, 4.0]
    assert uws.phase_posts == ["ABORT"]


def test_async_job_left_pending_is_started(httpserver, tmp_path, polls):
    uws = FakeUWS(httpserver, ["PENDING", "COMPLETED"])
    result = nea.fetch(config_for(httpserver.url_for("/"), tmp_path), tmp_path / "out",
                       mode="async")
    assert uws.phase_posts == ["RUN"] and len(result.tables["pscomppars"]) == 3


def test_mode_option_is_checked():
    with pytest.raises(ValueError, match="nasa: option mode must be sync or async"):
        nea.fetch(SourceConfig(), Path("unused"), mode="later")
