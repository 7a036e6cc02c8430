"""The shared archive HTTP layer against real HTTP servers on 127.0.0.1 (no network)."""

import datetime
import email.utils
import hashlib
import json
import logging
import pickle
import random
import secrets
import threading
import traceback

import pytest
from sources_testing import FakeClock, RawServer
from werkzeug import Request, Response

from astrojax.data.archives import (
    ApiKeyParam,
    BasicLogin,
    CacheKey,
    CredentialError,
    Credentials,
    HttpClient,
    HTTPStatusError,
    OfflineCacheMiss,
    Provenance,
    RateLimiter,
    ReplyValidationError,
    ResponseCache,
    SourceConfig,
    TokenHeader,
    TransportError,
    parse_retry_after,
    redact,
    redact_url,
    sanitize_filename,
)
from astrojax.data.archives.validate import InvalidReply

SOURCE = "testarchive"


@pytest.fixture
def raw_server():
    servers = []

    def start(reply: bytes | None) -> RawServer:
        servers.append(RawServer(reply))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def make_client(httpserver, tmp_path, sleeps):
    def make(base_url=None, **kwargs) -> HttpClient:
        settings = dict(cache=ResponseCache(tmp_path / "cache"), sleep=sleeps.append,
                        rng=random.Random(0), timeout=(2.0, 2.0),
                        credentials=Credentials({}, keyring_service=None))
        settings.update(kwargs)
        return HttpClient(SOURCE, base_url or httpserver.url_for("/api/"), **settings)

    return make


def _files_text(directory) -> bytes:
    return b"".join(p.read_bytes() for p in directory.rglob("*") if p.is_file())


# --- success and provenance -------------------------------------------------------------

def test_get_json_with_key_gives_redacted_provenance(httpserver, make_client, tmp_path):
    key = "k-" + secrets.token_hex(8)
    httpserver.expect_request("/api/search", query_string={"term": "mars", "api_key": key}
                              ).respond_with_json({"ids": [1, 2, 3]})
    credentials = Credentials({"NCBI_API_KEY": key}, keyring_service=None)
    client = make_client(auth=ApiKeyParam("NCBI_API_KEY", "api_key"), credentials=credentials)
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)

    reply = client.get("search", {"term": "mars"})

    assert reply.json() == {"ids": [1, 2, 3]}
    prov = reply.provenance
    assert prov.sha256 == hashlib.sha256(reply.body).hexdigest()
    assert prov.bytes == len(reply.body) > 0
    assert before <= datetime.datetime.fromisoformat(prov.time_utc)
    assert prov.url == httpserver.url_for("/api/search")
    assert prov.params == {"term": "mars"} and prov.credential == ("NCBI_API_KEY",)
    assert prov.source == SOURCE and prov.method == "GET" and not prov.cache_hit
    assert prov.client.startswith("astrojax ") and "requests " in prov.client
    assert key not in json.dumps(prov.to_dict())
    assert Provenance.from_dict(prov.to_dict()) == prov
    assert key.encode() not in _files_text(tmp_path / "cache")


def test_csv_reply_checked_and_read_as_table(httpserver, make_client):
    httpserver.expect_request("/api/t.csv").respond_with_data(
        "# a comment\nname,mass\nb,1.5\nc,2.0\n", content_type="text/csv")
    httpserver.expect_request("/api/bad.csv").respond_with_data(
        "name,mass\nb,1.5\nc\n", content_type="text/csv")
    client = make_client()
    table = client.get("t.csv", expect="csv").table()
    assert list(table["mass"]) == [1.5, 2.0]
    assert table.meta["provenance"]["source"] == SOURCE
    with pytest.raises(ReplyValidationError, match="data row 2 has 1 fields") as err:
        client.get("bad.csv", expect="csv")
    assert err.value.reason == "parse"


# --- retries ------------------------------------------------------------------------------

@pytest.mark.parametrize("retry_after,cap,waited", [
    ("2", 30.0, 2.0),
    ("120", 5.0, 5.0),  # capped
])
def test_429_honours_retry_after_then_succeeds(httpserver, make_client, sleeps, retry_after, cap,
                                               waited):
    httpserver.expect_ordered_request("/api/q").respond_with_data(
        "slow down", status=429, headers={"Retry-After": retry_after})
    httpserver.expect_ordered_request("/api/q").respond_with_json({"ok": True})
    reply = make_client(backoff_cap=cap).get("q")
    assert reply.json() == {"ok": True}
    assert sleeps == [waited]
    assert len(httpserver.log) == 2


def test_retry_after_as_http_date():
    now = datetime.datetime(2026, 11, 1, 12, 0, 0, tzinfo=datetime.UTC)
    later = email.utils.format_datetime(now + datetime.timedelta(seconds=7), usegmt=True)
    assert parse_retry_after(later, now) == 7.0
    assert parse_retry_after("not a date", now) is None


def test_503_three_times_is_a_clear_error(httpserver, make_client, sleeps):
    httpserver.expect_request("/api/q").respond_with_data("down for maintenance", status=503)
    with pytest.raises(HTTPStatusError) as err:
        make_client(max_attempts=3, backoff_base=0.5).get("q", {"x": "1"})
    message = str(err.value)
    assert err.value.status == 503 and err.value.attempts == 3
    assert SOURCE in message and httpserver.url_for("/api/q") in message
    assert "3 attempts" in message and "503" in message and "maintenance" in message
    assert len(httpserver.log) == 3
    assert len(sleeps) == 2 and 0 <= sleeps[0] <= 0.5 and 0 <= sleeps[1] <= 1.0


def test_404_is_not_retried(httpserver, make_client, sleeps):
    httpserver.expect_request("/api/nothing").respond_with_data("no such table", status=404)
    with pytest.raises(HTTPStatusError) as err:
        make_client().get("nothing")
    assert err.value.status == 404 and err.value.attempts == 1
    assert len(httpserver.log) == 1 and sleeps == []


def test_read_timeout_retried_then_error(raw_server, make_client, sleeps):
    server = raw_server(None)
    client = make_client(server.url, timeout=(1.0, 0.2), max_attempts=2)
    with pytest.raises(TransportError, match="timed out") as err:
        client.get("slow")
    assert err.value.attempts == 2 and server.connections == 2 and len(sleeps) == 1
    assert SOURCE in str(err.value) and "/slow" in str(err.value)
    assert err.value.__cause__ is None


def test_truncated_body_retried_then_error(raw_server, make_client, sleeps, tmp_path):
    server = raw_server(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: 100\r\nConnection: close\r\n\r\n{\"a\": 1")
    with pytest.raises(ReplyValidationError, match="cut short") as err:
        make_client(server.url, max_attempts=2).get("data")
    assert err.value.reason == "truncated" and err.value.attempts == 2
    assert server.connections == 2 and len(sleeps) == 1
    assert not list((tmp_path / "cache").rglob("*.body"))


# --- validation ---------------------------------------------------------------------------

@pytest.mark.parametrize("content_type", ["text/html", "application/json"])
def test_html_on_200_is_an_error(httpserver, make_client, tmp_path, content_type):
    page = ("<!DOCTYPE html>\n<html><head><title>Archive under maintenance</title></head>"
            "<body>back soon</body></html>")
    httpserver.expect_request("/api/q").respond_with_data(page, content_type=content_type)
    with pytest.raises(ReplyValidationError) as err:
        make_client().get("q", expect="json")
    message = str(err.value)
    assert err.value.reason == "html"
    assert SOURCE in message and httpserver.url_for("/api/q") in message
    assert "Archive under maintenance" in message
    assert not list((tmp_path / "cache").rglob("*.body"))


def test_wrong_content_type_and_bad_votable(httpserver, make_client):
    httpserver.expect_request("/api/img").respond_with_data(b"\x89PNG", content_type="image/png")
    httpserver.expect_request("/api/vo").respond_with_data("<RESOURCE/>", content_type="text/xml")
    client = make_client()
    with pytest.raises(ReplyValidationError, match="image/png") as err:
        client.get("img", expect="csv")
    assert err.value.reason == "content_type"
    with pytest.raises(ReplyValidationError, match="XML root is <RESOURCE>"):
        client.get("vo", expect="votable")


@pytest.mark.parametrize("chunked", [False, True])
def test_size_limit(httpserver, make_client, tmp_path, chunked):
    body = b"x" * 5000

    def big(request: Request) -> Response:  # a generator body is sent chunked, no length
        return Response((body[i:i + 500] for i in range(0, 5000, 500)) if chunked else body,
                        content_type="application/octet-stream")

    httpserver.expect_request("/api/big").respond_with_handler(big)
    client = make_client(max_bytes=1000)
    with pytest.raises(ReplyValidationError, match="limit") as err:
        client.get("big", expect="bytes")
    assert err.value.reason == "too_large"
    folder = tmp_path / "downloads"
    with pytest.raises(ReplyValidationError, match="limit"):
        client.download("big", folder, max_bytes=1000)
    assert list(folder.iterdir()) == []  # no partial file, no temp file left


# --- credentials --------------------------------------------------------------------------

@pytest.mark.parametrize("auth", [
    TokenHeader("MAST_API_TOKEN", prefix="token "),
    ApiKeyParam("MAST_API_TOKEN", "token"),
])
def test_401_with_bad_token_never_shows_the_token(httpserver, make_client, tmp_path, caplog,
                                                  auth):
    token = "tok-" + secrets.token_hex(12)

    def echo_401(request: Request) -> Response:  # a server that echoes what it was sent
        sent = request.headers.get("Authorization", "") + request.args.get("token", "")
        return Response(f"invalid credential {sent}", status=401)

    httpserver.expect_request("/api/ok").respond_with_json({"fine": 1})
    httpserver.expect_request("/api/private").respond_with_handler(echo_401)
    credentials = Credentials({"MAST_API_TOKEN": token}, keyring_service=None)
    client = make_client(auth=auth, credentials=credentials)
    caplog.set_level(logging.DEBUG)

    client.get("ok")  # fills the cache with a request that carried the token
    with pytest.raises(CredentialError) as err:
        client.get("private")

    assert err.value.status == 401 and err.value.credential == "MAST_API_TOKEN"
    assert SOURCE in str(err.value) and "/api/private" in str(err.value)
    shown = str(err.value) + repr(err.value.args) + "".join(traceback.format_exception(err.value))
    assert token not in shown and "invalid credential" in shown
    client_logs = [r.getMessage() for r in caplog.records
                   if not r.name.startswith("werkzeug")]  # the test server logs what it got
    assert any("/api/ok" in m for m in client_logs)  # urllib3 did log the URL, at DEBUG
    assert not any(token in m for m in client_logs)
    assert token.encode() not in _files_text(tmp_path / "cache")
    assert token not in repr(client) + repr(credentials) + repr(credentials.get("MAST_API_TOKEN"))


def test_credentials_only_go_to_the_base_url_origin(httpserver, make_client, raw_server):
    token = "tok-" + secrets.token_hex(12)
    other = raw_server(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")
    httpserver.expect_request("/api/q").respond_with_json({})
    credentials = Credentials({"MAST_API_TOKEN": token}, keyring_service=None)
    for auth in (TokenHeader("MAST_API_TOKEN", header="X-Api-Key", prefix=""),
                 ApiKeyParam("MAST_API_TOKEN", "key")):
        client = make_client(auth=auth, credentials=credentials)
        client.get("q", use_cache=False)
        client.get(other.url + "elsewhere", use_cache=False)  # another port: another origin
    sent = [(r.headers.get("X-Api-Key"), r.args.get("key")) for r, _ in httpserver.log]
    assert sent == [(token, None), (None, token)]
    assert len(other.requests) == 2 and not any(token.encode() in r for r in other.requests)


def test_missing_required_credential_fails_before_any_request(httpserver, make_client):
    client = make_client(auth=BasicLogin("ESO_USERNAME", "ESO_PASSWORD"))
    with pytest.raises(CredentialError, match="set the environment variable ESO_USERNAME"):
        client.get("archive")
    assert httpserver.log == []


def test_errors_survive_pickling():
    error = HTTPStatusError(SOURCE, "https://h/x?api_key=abc", "503 down", status=503,
                            attempts=3)
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.status, copy.attempts) == (str(error), 503, 3)
    assert "abc" not in str(copy)


def test_secret_values_are_redacted_and_never_pickled():
    secret = Credentials({"NCBI_API_KEY": "s3cr3t/+key"}, keyring_service=None).get(
        "NCBI_API_KEY")
    assert "s3cr3t" not in repr(secret) + str(secret)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(secret)
    assert redact("key s3cr3t/+key and s3cr3t%2F%2Bkey") == "key *** and ***"
    assert redact_url("https://me:pw@host/x?X-Amz-Signature=abc&a=1") == \
        "https://host/x?X-Amz-Signature=***&a=1"


def test_keyring_is_the_fallback_and_a_missing_keyring_is_no_credential(monkeypatch):
    import keyring
    import keyring.errors

    def fake_get_password(service, name):
        if name == "ZOONIVERSE_PASSWORD":
            raise keyring.errors.NoKeyringError("no backend")
        return {("astrojax", "MAST_API_TOKEN"): "from-keyring"}.get((service, name))

    monkeypatch.setattr(keyring, "get_password", fake_get_password)
    credentials = Credentials({"NCBI_API_KEY": "from-env"})
    assert credentials.get("NCBI_API_KEY").reveal() == "from-env"
    assert credentials.get("MAST_API_TOKEN").reveal() == "from-keyring"
    assert credentials.get("ZOONIVERSE_PASSWORD") is None
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(credentials)


def test_netrc_is_never_used(httpserver, make_client, tmp_path, monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password hunter2\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    httpserver.expect_request("/api/q").respond_with_json({})
    make_client().get("q")
    assert "Authorization" not in httpserver.log[0][0].headers


# --- rate limit ---------------------------------------------------------------------------

def test_rate_limiter_spaces_requests():
    clock = FakeClock()
    limiter = RateLimiter(3, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(4):
        limiter.acquire()
        times.append(clock.now - 1000.0)
    assert times == pytest.approx([0, 1 / 3, 2 / 3, 1])
    burst = RateLimiter(10, burst=3, clock=clock, sleep=clock.sleep)
    clock.now += 100
    assert [burst.acquire() for _ in range(4)] == pytest.approx([0, 0, 0, 0.1])


def test_rate_limiter_is_thread_safe():
    clock = FakeClock()
    limiter = RateLimiter(4, clock=clock, sleep=lambda s: None)  # frozen clock: waits add up
    waits = []
    threads = [threading.Thread(target=lambda: waits.append(limiter.acquire())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(waits) == pytest.approx([i / 4 for i in range(8)])


def test_client_waits_on_its_limiter(httpserver, make_client):
    clock = FakeClock()
    httpserver.expect_request("/api/q").respond_with_json({})
    client = make_client(rate_limiter=RateLimiter(2, clock=clock, sleep=clock.sleep))
    for i in range(3):
        client.get("q", {"i": i})
    assert clock.sleeps == pytest.approx([0.5, 0.5])


# --- cache and offline --------------------------------------------------------------------


def test_paging_headers_are_kept_and_cached(httpserver, make_client):
    link = '<https://example.org/next?cursor=2>; rel="next"'
    httpserver.expect_request("/api/page").respond_with_json(
        {"n": 1}, headers={"Link": link, "X-Total-Results": "7", "Set-Cookie": "s=1"})
    online = make_client().get("page")
    assert online.headers == {"Link": link, "X-Total-Results": "7"}
    offline = make_client(offline=True).get("page")
    assert offline.provenance.cache_hit and offline.headers == online.headers


def test_refresh_asks_the_server_and_replaces_the_cached_reply(httpserver, make_client):
    httpserver.expect_ordered_request("/api/job").respond_with_json({"status": "EXECUTING"})
    httpserver.expect_ordered_request("/api/job").respond_with_json({"status": "COMPLETE"})
    client = make_client()
    assert client.get("job").json()["status"] == "EXECUTING"
    assert client.get("job").provenance.cache_hit  # served from the cache, no request
    assert client.get("job", refresh=True).json()["status"] == "COMPLETE"
    assert make_client(offline=True).get("job").json()["status"] == "COMPLETE"

def test_offline_serves_from_cache_without_the_server(httpserver, make_client):
    httpserver.expect_request("/api/q").respond_with_json({"n": 1})
    online = make_client().get("q", {"b": 2, "a": 1})
    offline = make_client(offline=True).get("q", {"a": 1, "b": 2})
    assert offline.json() == {"n": 1} and offline.provenance.cache_hit
    assert offline.provenance.sha256 == online.provenance.sha256
    assert len(httpserver.log) == 1


def test_offline_miss_names_the_request(httpserver, make_client):
    with pytest.raises(OfflineCacheMiss) as err:
        make_client(offline=True).get("missing", {"target": "TRAPPIST-1 e"})
    message = str(err.value)
    assert "GET" in message and "/api/missing" in message and "target=TRAPPIST-1 e" in message
    assert SOURCE in message and httpserver.log == []


def test_cache_expiry(httpserver, make_client, tmp_path, caplog):
    clock = FakeClock()
    cache = ResponseCache(tmp_path / "cache", expiry_seconds=60, clock=clock)
    httpserver.expect_request("/api/q").respond_with_json({})
    client = make_client(cache=cache)
    client.get("q")
    assert client.get("q").provenance.cache_hit and len(httpserver.log) == 1
    clock.now += 61
    stale = make_client(cache=cache, offline=True).get("q")  # offline: expired beats nothing
    assert stale.provenance.cache_hit and "expired" in caplog.text
    assert not client.get("q").provenance.cache_hit and len(httpserver.log) == 2


def test_post_queries_are_cached_by_body(httpserver, make_client):
    httpserver.expect_request("/api/sync", method="POST").respond_with_data(
        "a,b\n1,2\n", content_type="text/csv")
    client = make_client()
    query = {"QUERY": "select * from ps", "FORMAT": "csv"}
    first = client.post("sync", query, expect="csv")
    assert first.provenance.data == query and first.provenance.method == "POST"
    assert client.post("sync", dict(reversed(query.items())), expect="csv").provenance.cache_hit
    assert not client.post("sync", {**query, "MAXREC": "5"}, expect="csv").provenance.cache_hit
    assert len(httpserver.log) == 2


def test_config_builds_clients_with_overridden_base_url(httpserver, tmp_path):
    config = SourceConfig(base_urls={SOURCE: httpserver.url_for("/mirror/")},
                          cache_dir=str(tmp_path / "c"), max_attempts=1)
    httpserver.expect_request("/mirror/q").respond_with_json({"m": 1})
    client = config.client(SOURCE, "https://archive.invalid/api/",
                           credentials=Credentials({}, keyring_service=None))
    assert client.get("q").json() == {"m": 1}
    assert list((tmp_path / "c" / SOURCE).rglob("*.json"))
    with pytest.raises(ValueError, match="config.data.sources.base_urls.x"):
        SourceConfig(base_urls={"x": "ftp://mirror"}).validate()


# --- downloads ----------------------------------------------------------------------------

@pytest.mark.parametrize("path,filename", [
    ("/api/files/cube.fits", "../../etc/passwd"),
    ("/api/files/..%2F..%2Fetc%2Fpasswd", None),
])
def test_download_stays_inside_its_directory(httpserver, make_client, tmp_path, path, filename):
    content = b"SIMPLE  =                    T" + bytes(range(256))
    httpserver.expect_request(path.replace("%2F", "/")).respond_with_data(
        content, content_type="application/fits")
    httpserver.expect_request(path).respond_with_data(content, content_type="application/fits")
    folder = tmp_path / "downloads"
    client = make_client()

    got = client.download(httpserver.url_for(path), folder, filename)

    assert got.path == (folder / "passwd").resolve() and got.path.read_bytes() == content
    assert got.provenance.sha256 == hashlib.sha256(content).hexdigest()
    assert sorted(p.name for p in folder.iterdir()) == ["passwd", "passwd.provenance.json"]
    again = make_client(offline=True).download(httpserver.url_for(path), folder, filename)
    assert again.provenance.cache_hit and len(httpserver.log) == 1


@pytest.mark.parametrize("name,safe", [
    ("../../etc/passwd", "passwd"),
    ("/abs/path/data.csv", "data.csv"),
    ("..\\..\\win.ini", "win.ini"),
    ("a\x00b\nc.txt", "a_b_c.txt"),
    (".hidden", "hidden"),
    ("NUL.txt", "_NUL.txt"),
    ("x" * 300 + ".fits", "x" * 195 + ".fits"),
])
def test_sanitize_filename(name, safe):
    assert sanitize_filename(name) == safe


@pytest.mark.parametrize("name", ["..", "/", "", " . "])
def test_sanitize_filename_rejects_nothing_left(name):
    with pytest.raises(ValueError, match="no usable file name"):
        sanitize_filename(name)


# --- what may be cached -------------------------------------------------------------------

def _no_error(reply) -> bool:
    """A source check: status ERROR is an error document, status RUNNING is unfinished."""
    status = reply.json().get("status")
    if status == "ERROR":
        raise InvalidReply("service_error", f"the service failed: {reply.json()['msg']}")
    return status != "RUNNING"


def test_error_document_is_never_cached_and_the_next_fetch_gets_the_answer(
        httpserver, make_client, tmp_path):
    httpserver.expect_ordered_request("/api/q").respond_with_json(
        {"status": "ERROR", "msg": "database busy"})
    httpserver.expect_ordered_request("/api/q").respond_with_json({"status": "OK", "rows": [1]})
    client = make_client()
    with pytest.raises(ReplyValidationError, match="the service failed: database busy") as err:
        client.get("q", check=_no_error)
    assert err.value.reason == "service_error" and SOURCE in str(err.value)
    assert not list((tmp_path / "cache").rglob("*.body"))
    assert client.get("q", check=_no_error).json() == {"status": "OK", "rows": [1]}
    again = make_client(offline=True).get("q", check=_no_error)
    assert again.provenance.cache_hit and again.json()["rows"] == [1]
    assert len(httpserver.log) == 2


def test_unfinished_reply_is_returned_but_not_cached(httpserver, make_client, tmp_path):
    httpserver.expect_ordered_request("/api/job").respond_with_json({"status": "RUNNING"})
    httpserver.expect_ordered_request("/api/job").respond_with_json({"status": "DONE"})
    client = make_client()
    assert client.get("job", check=_no_error).json()["status"] == "RUNNING"
    assert not list((tmp_path / "cache").rglob("*.body"))
    assert client.get("job", check=_no_error).json()["status"] == "DONE"
    assert client.get("job", check=_no_error).provenance.cache_hit


def test_error_document_in_an_old_cache_is_dropped_and_fetched_again(httpserver, make_client,
                                                                     tmp_path, caplog):
    httpserver.expect_ordered_request("/api/q").respond_with_json(
        {"status": "ERROR", "msg": "database busy"})
    httpserver.expect_ordered_request("/api/q").respond_with_json({"status": "OK"})
    client = make_client()
    client.get("q")  # no check: an older astrojax stored the error document
    with pytest.raises(ReplyValidationError, match="database busy"):
        make_client(offline=True).get("q", check=_no_error)  # offline: the error is all there is
    assert client.get("q", check=_no_error).json() == {"status": "OK"}
    assert "error document" in caplog.text and len(httpserver.log) == 2
    assert make_client(offline=True).get("q", check=_no_error).json() == {"status": "OK"}


def test_credentialed_and_plain_replies_never_share_a_cache_entry(httpserver, make_client,
                                                                  tmp_path):
    token, other = "tok-" + secrets.token_hex(12), "tok-" + secrets.token_hex(12)

    def by_token(request: Request) -> Response:  # what an archive with exclusive-access rows does
        sent = request.headers.get("Authorization", "")
        rows = ["public", "exclusive"] if sent == f"token {token}" else ["public"]
        return Response(json.dumps({"rows": rows}), content_type="application/json")

    httpserver.expect_request("/api/obs").respond_with_handler(by_token)
    auth = TokenHeader("MAST_API_TOKEN", prefix="token ")

    def client_with(value=None, **kwargs):
        environ = {"MAST_API_TOKEN": value} if value else {}
        return make_client(auth=auth, credentials=Credentials(environ, keyring_service=None),
                           **kwargs)

    assert client_with(token).get("obs").json()["rows"] == ["public", "exclusive"]
    plain = client_with().get("obs")
    assert plain.json()["rows"] == ["public"] and not plain.provenance.cache_hit
    assert client_with(other).get("obs").json()["rows"] == ["public"]  # another account
    assert len(httpserver.log) == 3
    mine = client_with(token, offline=True).get("obs")
    assert mine.provenance.cache_hit and mine.json()["rows"] == ["public", "exclusive"]
    assert mine.provenance.credential == ("MAST_API_TOKEN",)
    assert client_with(offline=True).get("obs").json()["rows"] == ["public"]
    stored = list((tmp_path / "cache").rglob("*"))
    assert len([p for p in stored if p.suffix == ".body"]) == 3
    everything = b"".join(p.read_bytes() for p in stored if p.is_file()) + \
        "".join(str(p) for p in stored).encode()
    assert token.encode() not in everything and other.encode() not in everything
    salt = tmp_path / "cache" / "credential-salt"
    assert salt.stat().st_mode & 0o777 == 0o600 and len(salt.read_bytes()) == 32


def test_entry_stored_with_a_credential_under_a_plain_key_is_ignored(httpserver, make_client,
                                                                     tmp_path):
    """An older astrojax keyed credentialed replies like plain ones; such entries are skipped."""
    cache = ResponseCache(tmp_path / "cache")
    url = httpserver.url_for("/api/obs")
    key = CacheKey.create(SOURCE, "GET", url)
    record = Provenance.create(SOURCE, url, b'{"rows": ["exclusive"]}',
                               credential=("MAST_API_TOKEN",))
    cache.put(key, b'{"rows": ["exclusive"]}', status=200, content_type="application/json",
              provenance=record)
    httpserver.expect_request("/api/obs").respond_with_json({"rows": ["public"]})
    assert make_client(cache=cache).get("obs").json() == {"rows": ["public"]}


# --- limits and odd bodies ----------------------------------------------------------------

def test_download_honours_the_configured_limit(httpserver, tmp_path):
    httpserver.expect_request("/files/big.fits").respond_with_data(
        b"SIMPLE  =                    T" + bytes(5000), content_type="application/fits")
    config = SourceConfig(base_urls={SOURCE: httpserver.url_for("/")},
                          cache_dir=str(tmp_path / "c"), max_download_bytes=1000, max_attempts=1)
    client = config.client(SOURCE, "https://archive.invalid/",
                           credentials=Credentials({}, keyring_service=None))
    with pytest.raises(ReplyValidationError) as err:
        client.download("files/big.fits", tmp_path / "files")
    message = str(err.value)
    assert err.value.reason == "too_large" and message.startswith(f"{SOURCE}: ")
    assert "limit of 1000 bytes (max_download_bytes)" in message
    assert list((tmp_path / "files").iterdir()) == []
    assert client.download("files/big.fits", tmp_path / "files", max_bytes=10_000).path.is_file()
    with pytest.raises(ValueError, match="config.data.sources.max_download_bytes"):
        SourceConfig(max_download_bytes=0).validate()


def test_html_page_behind_a_byte_order_mark_is_recognised(httpserver, make_client, tmp_path):
    page = "\ufeff<!DOCTYPE html><html><head><title>Service unavailable</title></head></html>"
    httpserver.expect_request("/api/q").respond_with_data(page.encode(),
                                                          content_type="application/json")
    httpserver.expect_request("/api/f.csv").respond_with_data(
        page.encode(), content_type="application/octet-stream")
    httpserver.expect_request("/api/ok.json").respond_with_data(
        "\ufeff".encode() + b'{"a": 1}', content_type="application/json")
    client = make_client()
    with pytest.raises(ReplyValidationError, match="Service unavailable") as err:
        client.get("q")
    assert err.value.reason == "html"
    with pytest.raises(ReplyValidationError, match="Service unavailable"):
        client.download("f.csv", tmp_path / "files")
    assert client.get("ok.json").json() == {"a": 1}  # a BOM before JSON is allowed (RFC 8259)


def test_a_read_timeout_is_sent_again_at_most_as_often_as_allowed(raw_server, make_client,
                                                                   sleeps):
    server = raw_server(None)
    client = make_client(server.url, timeout=(1.0, 5.0), max_attempts=4)
    with pytest.raises(TransportError, match="not sent again") as err:
        client.get("sync", {"QUERY": "select * from ps"}, read_timeout=0.2, timeout_resends=1)
    assert err.value.timed_out and err.value.attempts == 2
    assert server.connections == 2 and len(sleeps) == 1
    assert "0.2 s" in str(err.value)
