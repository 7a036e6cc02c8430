"""NCBI, Ensembl, UniProt and GTDB clients against recorded replies served on 127.0.0.1."""

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import astropy.units as u
import pytest
from sources_testing import FakeClock
from werkzeug import Request, Response

from astrojax.data.archives import (
    Credentials,
    HTTPStatusError,
    OfflineCacheMiss,
    RateLimiter,
    SourceConfig,
    SourceError,
    ensembl,
    gtdb,
    ncbi,
    uniprot,
)
from astrojax.data.archives import http as http_module
from astrojax.data.archives.result import FetchResult

DATA = Path(__file__).parent / "data" / "sources" / "biology"


@pytest.fixture
def limiters(monkeypatch):
    """Per-host limiters on a fake clock (no real waiting); returns the rates asked for."""
    made: dict[float, FakeClock] = {}

    def shared_limiter(host: str, rate: float) -> RateLimiter:
        clock = made.setdefault(rate, FakeClock())
        return RateLimiter(rate, clock=clock, sleep=clock.sleep)

    monkeypatch.setattr(http_module, "shared_limiter", shared_limiter)
    return made


def no_keyring(**environ) -> Credentials:
    return Credentials(environ=environ, keyring_service=None)


def config_for(name: str, httpserver, tmp_path, **overrides) -> SourceConfig:
    return SourceConfig(base_urls={name: httpserver.url_for("/")},
                        cache_dir=str(tmp_path / "cache"), **overrides)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- NCBI -----------------------------------------------------------------------------------

def serve_ncbi(httpserver, seen: list[dict]):
    def esearch(request: Request) -> Response:
        seen.append(dict(request.args))
        return Response((DATA / "ncbi" / "esearch.json").read_bytes(),
                        content_type="application/json; charset=UTF-8")

    def paged(kind: str, suffix: str, content_type: str):
        def handler(request: Request) -> Response:
            seen.append(dict(request.args))
            page = 1 + int(request.args["retstart"]) // 2  # the recordings hold two per page
            return Response((DATA / "ncbi" / f"{kind}_page{page}.{suffix}").read_bytes(),
                            content_type=content_type)
        return handler

    httpserver.expect_request("/esearch.fcgi").respond_with_handler(esearch)
    httpserver.expect_request("/esummary.fcgi").respond_with_handler(
        paged("esummary", "json", "application/json; charset=UTF-8"))
    httpserver.expect_request("/efetch.fcgi").respond_with_handler(
        paged("efetch", "gb", "text/plain; charset=UTF-8"))


def test_ncbi_fetch_pages_summaries_and_genbank(httpserver, tmp_path, limiters):
    seen: list[dict] = []
    serve_ncbi(httpserver, seen)
    config = config_for("ncbi", httpserver, tmp_path)
    out = tmp_path / "out"
    result = ncbi.fetch(config, out, term="Archaea[Organism] AND complete genome", retmax=2,
                        genbank="yes", email="someone@example.org",
                        credentials=no_keyring())
    table = result.tables["ncbi_nuccore"]
    assert list(table["accession"]) == ["NC_000909.1", "NC_003552.1", "NC_002607.1"]
    assert list(table["length"]) == [1664970, 5751492, 2014239]
    assert list(table["taxid"]) == [243232, 188937, 64091]
    assert table["organism"][0] == "Methanocaldococcus jannaschii DSM 2661"
    assert table["create_date"][0] == "2000-03-06"
    assert "base pairs" in table["length"].description
    # esearch, two esummary pages, two efetch pages; etiquette and history on every request
    assert [r.url.rsplit("/", 1)[1] for r in result.provenance] == [
        "esearch.fcgi", "esummary.fcgi", "esummary.fcgi", "efetch.fcgi", "efetch.fcgi"]
    assert all(args["tool"] == "astrojax" and args["email"] == "someone@example.org"
               for args in seen)
    assert seen[0]["usehistory"] == "y"
    assert {args.get("WebEnv") for args in seen[1:]} == {"MCID_674f1a2b9c0d7e3f1a2b3c4d"}
    assert "api_key" not in seen[0]
    assert result.provenance[0].sha256 == sha256(DATA / "ncbi" / "esearch.json")
    assert result.provenance[0].url == httpserver.url_for("/esearch.fcgi")
    assert [str(f) for f in result.files] == [
        "genbank/NC_000909.1.gb", "genbank/NC_003552.1.gb", "genbank/NC_002607.1.gb"]
    assert (out / "genbank" / "NC_002607.1.gb").read_text().startswith("LOCUS       NC_002607")
    saved = FetchResult.load(out)
    assert list(saved.tables["ncbi_nuccore"]["accession"]) == list(table["accession"])
    assert limiters.keys() == {3.0}  # no API key: NCBI's 3 requests per second


def test_ncbi_rate_follows_the_api_key(httpserver, tmp_path, limiters):
    seen: list[dict] = []
    serve_ncbi(httpserver, seen)
    config = config_for("ncbi", httpserver, tmp_path)
    ncbi.fetch(config, tmp_path / "out", term="Archaea", retmax=2,
               credentials=no_keyring(NCBI_API_KEY="k3y-abcdef0123456789"))
    assert limiters.keys() == {10.0}
    assert limiters[10.0].sleeps == pytest.approx([0.1, 0.1])  # three requests, 1/10 s apart
    assert all(args["api_key"] == "k3y-abcdef0123456789" for args in seen)
    provenance = (tmp_path / "out" / "provenance.json").read_text()
    assert "k3y-abcdef0123456789" not in provenance
    assert json.loads(provenance)[0]["credential"] == ["NCBI_API_KEY"]
    ncbi.fetch(config_for("ncbi", httpserver, tmp_path / "b"), tmp_path / "out2",
               term="Archaea", retmax=2, credentials=no_keyring())
    assert limiters[3.0].sleeps == pytest.approx([1 / 3, 1 / 3])


def test_ncbi_error_document_with_status_200(httpserver, tmp_path, limiters):
    httpserver.expect_request("/esearch.fcgi").respond_with_data(
        (DATA / "ncbi" / "esearch_error.json").read_bytes(), content_type="application/json")
    with pytest.raises(SourceError, match=r"ncbi: E-utilities error: Invalid query") as err:
        ncbi.fetch(config_for("ncbi", httpserver, tmp_path), tmp_path / "out", term="((x",
                   credentials=no_keyring())
    assert "esearch.fcgi" in str(err.value)


def test_ncbi_offline_rerun_is_served_from_cache(httpserver, tmp_path, limiters):
    serve_ncbi(httpserver, [])
    config = config_for("ncbi", httpserver, tmp_path)
    first = ncbi.fetch(config, tmp_path / "a", term="Archaea", retmax=2,
                       credentials=no_keyring())
    httpserver.clear()
    offline = config_for("ncbi", httpserver, tmp_path, offline=True)
    again = ncbi.fetch(offline, tmp_path / "b", term="Archaea", retmax=2,
                       credentials=no_keyring())
    assert all(p.cache_hit for p in again.provenance)
    assert list(again.tables["ncbi_nuccore"]["accession"]) == list(
        first.tables["ncbi_nuccore"]["accession"])
    with pytest.raises(OfflineCacheMiss, match="ncbi"):
        ncbi.fetch(offline, tmp_path / "c", term="Bacteria", credentials=no_keyring())


# --- Ensembl --------------------------------------------------------------------------------

def ensembl_reply(name: str, status: int = 200) -> Response:
    return Response((DATA / "ensembl" / name).read_bytes(), status=status,
                    content_type="application/json")


def serve_ensembl(httpserver):
    for symbol in ("BRAF", "BRCA2"):
        httpserver.expect_request(f"/lookup/symbol/homo_sapiens/{symbol}").respond_with_response(
            ensembl_reply(f"lookup_{symbol}.json"))
    httpserver.expect_request("/lookup/symbol/homo_sapiens/NOTAGENE").respond_with_response(
        ensembl_reply("lookup_unknown.json", status=400))
    for transcript in ("ENST00000646891", "ENST00000380152"):
        httpserver.expect_request(f"/sequence/id/{transcript}",
                                  query_string={"type": "protein"}).respond_with_response(
            ensembl_reply(f"sequence_{transcript}.json"))
    httpserver.expect_request("/info/genomes/taxonomy/Hominidae").respond_with_response(
        ensembl_reply("genomes_Hominidae.json"))


def test_ensembl_fetch_genes_sequences_and_genomes(httpserver, tmp_path, limiters):
    serve_ensembl(httpserver)
    out = tmp_path / "out"
    result = ensembl.fetch(config_for("ensembl", httpserver, tmp_path), out,
                           symbols="BRAF, BRCA2,NOTAGENE", taxon="Hominidae")
    genes = result.tables["ensembl_genes"]
    assert list(genes["id"]) == ["ENSG00000157764", "ENSG00000139618"]
    assert list(genes["start"]) == [140719327, 32315086]
    assert list(genes["strand"]) == [-1, 1]
    assert genes["canonical_transcript"][0] == "ENST00000646891.2"
    sequences = result.tables["ensembl_sequences"]
    assert list(sequences["gene_id"]) == ["ENSG00000157764", "ENSG00000139618"]
    assert sequences["length"][0] == len(sequences["sequence"][0])
    assert sequences["sequence"][0].startswith("MAALSGGGGG")
    genomes = result.tables["ensembl_genomes"]
    assert list(genomes["name"]) == ["homo_sapiens", "pan_troglodytes", "gorilla_gorilla"]
    assert genomes["base_count"][0] == 3099750718
    assert genomes["strain"][0] == ""
    assert len(result.skipped) == 1 and "NOTAGENE: not found" in result.skipped[0]
    assert "No valid lookup found" in result.skipped[0]
    requests = [entry[0] for entry in httpserver.log]
    assert all(r.headers["Content-Type"] == "application/json" for r in requests)
    assert result.provenance[0].url == httpserver.url_for("/lookup/symbol/homo_sapiens/BRAF")
    assert result.provenance[0].sha256 == sha256(DATA / "ensembl" / "lookup_BRAF.json")
    fasta = (out / "ensembl_sequences.fa").read_text().splitlines()
    assert fasta[0].startswith(">ENSP00000493543 ENSG00000157764")
    assert max(len(line) for line in fasta[1:]) == 60
    assert result.files == [Path("ensembl_sequences.fa")]
    assert set(FetchResult.load(out).tables) == {"ensembl_genes", "ensembl_sequences",
                                                  "ensembl_genomes"}
    assert limiters.keys() == {ensembl.RATE_PER_SECOND}


def test_ensembl_429_with_retry_after_then_success(httpserver, tmp_path, limiters):
    httpserver.expect_oneshot_request("/info/genomes/taxonomy/Hominidae").respond_with_response(
        Response(b'{"error": "You have exceeded the limit of 15 requests per second"}',
                 status=429, headers={"Retry-After": "0"}, content_type="application/json"))
    serve_ensembl(httpserver)
    result = ensembl.fetch(config_for("ensembl", httpserver, tmp_path), tmp_path / "out",
                           taxon="Hominidae")
    assert len(result.tables["ensembl_genomes"]) == 3
    assert len(httpserver.log) == 2 and httpserver.log[0][1].status_code == 429


def test_ensembl_offline_rerun_is_served_from_cache(httpserver, tmp_path, limiters):
    serve_ensembl(httpserver)
    config = config_for("ensembl", httpserver, tmp_path)
    ensembl.fetch(config, tmp_path / "a", symbols="BRAF")
    httpserver.clear()
    again = ensembl.fetch(config_for("ensembl", httpserver, tmp_path, offline=True),
                          tmp_path / "b", symbols="BRAF")
    assert all(p.cache_hit for p in again.provenance)
    assert again.tables["ensembl_sequences"]["id"][0] == "ENSP00000493543"


# --- UniProt --------------------------------------------------------------------------------

CURSOR_2 = "1mkycb2xwxbouekyujc9uwzldqlqdhctnkmeuhkc"
CURSOR_3 = "2ghd8w0f3vk4pqz1mv8bqw7yx0rj3kz5t9a2c4e6"
CURSORS = {None: (1, CURSOR_2), CURSOR_2: (2, CURSOR_3), CURSOR_3: (3, None)}  # cursor: page


def serve_uniprot(httpserver, seen: list[dict]):
    """Three recorded pages; each Link header points back at this server, as UniProt's does."""

    def handler(request: Request) -> Response:
        seen.append(dict(request.args))
        page, cursor = CURSORS[request.args.get("cursor")]
        headers = {"X-Total-Results": "5"}
        if cursor:
            query = (f"fields={request.args['fields']}&format=tsv&query="
                     f"{request.args['query']}&cursor={cursor}&size=2").replace(" ", "%20")
            headers["Link"] = f'<{httpserver.url_for("/uniprotkb/search")}?{query}>; rel="next"'
        return Response((DATA / "uniprot" / f"search_page{page}.tsv").read_bytes(),
                        headers=headers, content_type="text/plain;format=tsv")

    httpserver.expect_request("/uniprotkb/search").respond_with_handler(handler)


def test_uniprot_fetch_follows_link_headers(httpserver, tmp_path):
    seen: list[dict] = []
    serve_uniprot(httpserver, seen)
    out = tmp_path / "out"
    query = "organism_id:243232 AND reviewed:true"
    result = uniprot.fetch(config_for("uniprot", httpserver, tmp_path), out, query=query)
    table = result.tables["uniprot_entries"]
    assert table.colnames == ["accession", "id", "reviewed", "protein_name", "gene_names",
                              "organism", "organism_id", "length", "mass", "ec"]
    assert list(table["accession"]) == ["Q58256", "Q58257", "Q57703", "Q58650", "Q57926"]
    assert [args.get("cursor") for args in seen] == list(CURSORS)
    assert seen[0]["size"] == "500" and seen[0]["query"] == query
    assert table["mass"].unit == u.Da and table["mass"][0] == 61240.0
    assert list(table["length"]) == [552, 435, 395, 572, 219]
    assert table["ec"][2] == "1.2.7.1; 1.2.7.7" and table["ec"][4] == ""
    assert table["reviewed"].dtype == bool and all(table["reviewed"])
    assert table["organism_id"][0] == 243232
    assert [p.sha256 for p in result.provenance] == [
        sha256(DATA / "uniprot" / f"search_page{n}.tsv") for n in (1, 2, 3)]
    assert result.provenance[0].url == httpserver.url_for("/uniprotkb/search")
    assert result.skipped == []
    saved = FetchResult.load(out).tables["uniprot_entries"]
    assert saved["mass"].unit == u.Da and list(saved["accession"]) == list(table["accession"])


def test_uniprot_max_entries_stops_paging(httpserver, tmp_path):
    seen: list[dict] = []
    serve_uniprot(httpserver, seen)
    result = uniprot.fetch(config_for("uniprot", httpserver, tmp_path), tmp_path / "out",
                           query="organism_id:243232", max_entries="3")
    assert len(result.tables["uniprot_entries"]) == 3 and len(seen) == 2
    assert result.skipped == ["organism_id:243232: 2 of 5 entries beyond max_entries=3"]


def test_uniprot_bad_query_names_the_message(httpserver, tmp_path):
    httpserver.expect_request("/uniprotkb/search").respond_with_data(
        (DATA / "uniprot" / "search_error.json").read_bytes(), status=400,
        content_type="application/json")
    with pytest.raises(HTTPStatusError, match=r"uniprot: 400 .*not a valid search field"):
        uniprot.fetch(config_for("uniprot", httpserver, tmp_path), tmp_path / "out",
                      query="organismus:human")


def test_uniprot_offline_rerun_pages_through_the_cache(httpserver, tmp_path):
    serve_uniprot(httpserver, [])
    uniprot.fetch(config_for("uniprot", httpserver, tmp_path), tmp_path / "a", query="x")
    httpserver.clear()
    again = uniprot.fetch(config_for("uniprot", httpserver, tmp_path, offline=True),
                          tmp_path / "b", query="x")
    assert len(again.tables["uniprot_entries"]) == 5 and len(again.provenance) == 3
    assert all(p.cache_hit for p in again.provenance)


# --- GTDB -----------------------------------------------------------------------------------

def serve_gtdb_file(httpserver, path: str, recording: str):
    httpserver.expect_request(path).respond_with_data(
        (DATA / "gtdb" / recording).read_bytes(), content_type="application/gzip")


def test_gtdb_fetch_taxonomy_and_metadata(httpserver, tmp_path):
    serve_gtdb_file(httpserver, "/release220/220.0/bac120_taxonomy_r220.tsv.gz",
                    "bac120_taxonomy_r220.tsv.gz")
    serve_gtdb_file(httpserver, "/release220/220.0/bac120_metadata_r220.tsv.gz",
                    "bac120_metadata_r220.tsv.gz")
    out = tmp_path / "out"
    result = gtdb.fetch(config_for("gtdb", httpserver, tmp_path), out,
                        release="release220/220.0", metadata="yes")
    taxonomy = result.tables["gtdb_bac120_taxonomy"]
    assert taxonomy.colnames == ["accession", "ncbi_accession", *gtdb.RANKS]
    assert taxonomy["accession"][0] == "RS_GCF_000005845.2"
    assert taxonomy["ncbi_accession"][2] == "GCA_000011385.1"
    assert taxonomy["phylum"][3] == "Deinococcota"
    assert taxonomy["species"][0] == "Escherichia coli"
    meta = result.tables["gtdb_bac120_metadata"]
    assert meta.colnames == list(gtdb.DEFAULT_METADATA_COLUMNS)
    assert meta["gc_percentage"].unit == u.percent and meta["gc_percentage"][0] == 50.79
    assert meta["checkm2_contamination"].unit == u.percent
    assert list(meta["genome_size"]) == [4641652, 4215606, 2742269, 3284156]
    assert "base pairs" in meta["genome_size"].description
    assert list(meta["gtdb_representative"]) == [True, True, False, True]
    assert meta["ncbi_taxid"][3] == 243230
    assert meta["ncbi_organism_name"][1] == "Bacillus subtilis subsp. subtilis str. 168"
    assert result.skipped == []
    assert [str(f) for f in result.files] == ["raw/bac120_taxonomy_r220.tsv.gz",
                                              "raw/bac120_metadata_r220.tsv.gz"]
    assert result.provenance[1].sha256 == sha256(DATA / "gtdb" / "bac120_metadata_r220.tsv.gz")
    assert result.provenance[1].url == httpserver.url_for(
        "/release220/220.0/bac120_metadata_r220.tsv.gz")
    saved = FetchResult.load(out).tables["gtdb_bac120_metadata"]
    assert saved["gc_percentage"].unit == u.percent


def test_gtdb_metadata_columns_and_missing_values(tmp_path):
    table, missing = gtdb.parse_metadata(DATA / "gtdb" / "bac120_metadata_r220.tsv.gz",
                                         ["ssu_count", "ncbi_isolation_source", "not_a_column"])
    assert table.colnames == ["accession", "ssu_count", "ncbi_isolation_source"]
    assert table["ssu_count"][2] == -1 and table["ncbi_isolation_source"][0] == ""
    assert missing == ["not_a_column"]
    everything, _ = gtdb.parse_metadata(DATA / "gtdb" / "bac120_metadata_r220.tsv.gz")
    assert len(everything.colnames) == 32


def test_gtdb_rejects_a_malformed_taxonomy_file(httpserver, tmp_path):
    serve_gtdb_file(httpserver, "/latest/bac120_taxonomy.tsv.gz", "bad_taxonomy.tsv.gz")
    with pytest.raises(ValueError, match=r"bac120_taxonomy.tsv.gz: line 2: not a seven-rank"):
        gtdb.fetch(config_for("gtdb", httpserver, tmp_path), tmp_path / "out")
    with pytest.raises(ValueError, match="release must be 'latest' or like"):
        gtdb.fetch(config_for("gtdb", httpserver, tmp_path), tmp_path / "out", release="r220")


def test_gtdb_missing_release_names_the_url(httpserver, tmp_path):
    httpserver.expect_request("/release999/999.0/ar53_taxonomy_r999.tsv.gz").respond_with_data(
        "Not Found", status=404, content_type="text/plain")
    with pytest.raises(HTTPStatusError, match=r"gtdb: 404 .*ar53_taxonomy_r999.tsv.gz"):
        gtdb.fetch(config_for("gtdb", httpserver, tmp_path), tmp_path / "out",
                   release="release999/999.0", domain="ar53")


def test_gtdb_offline_rerun_uses_the_downloaded_file(httpserver, tmp_path):
    serve_gtdb_file(httpserver, "/latest/ar53_taxonomy.tsv.gz", "ar53_taxonomy.tsv.gz")
    out = tmp_path / "out"
    gtdb.fetch(config_for("gtdb", httpserver, tmp_path), out, domain="ar53")
    httpserver.clear()
    again = gtdb.fetch(config_for("gtdb", httpserver, tmp_path, offline=True), out,
                       domain="ar53")
    assert again.provenance[0].cache_hit
    assert list(again.tables["gtdb_ar53_taxonomy"]["genus"]) == ["Methanocaldococcus",
                                                                 "Halobacterium"]
    with pytest.raises(OfflineCacheMiss, match="gtdb"):
        gtdb.fetch(config_for("gtdb", httpserver, tmp_path, offline=True), tmp_path / "new",
                   domain="ar53")


def test_ncbi_esummary_error_once_then_the_answer(httpserver, tmp_path, limiters):
    """E-utilities sends 'database not available' with status 200; it must not be cached."""
    busy = json.dumps({"header": {"type": "esummary", "version": "0.3"},
                       "result": {"ERROR": "Database is not available, try again later"}})
    replies = [busy.encode()] + [(DATA / "ncbi" / f"esummary_page{page}.json").read_bytes()
                                 for page in (1, 2)]
    httpserver.expect_request("/esearch.fcgi").respond_with_data(
        (DATA / "ncbi" / "esearch.json").read_bytes(), content_type="application/json")
    httpserver.expect_request("/esummary.fcgi").respond_with_handler(
        lambda request: Response(replies.pop(0), content_type="application/json"))
    config = config_for("ncbi", httpserver, tmp_path)
    with pytest.raises(SourceError, match="E-utilities error: Database is not available") as err:
        ncbi.fetch(config, tmp_path / "a", term="Archaea", retmax=2, credentials=no_keyring())
    assert err.value.reason == "service_error"
    cached = b"".join(p.read_bytes() for p in (tmp_path / "cache").rglob("*.body"))
    assert b"Database is not available" not in cached
    result = ncbi.fetch(config, tmp_path / "b", term="Archaea", retmax=2,
                        credentials=no_keyring())
    assert len(result.tables["ncbi_nuccore"]) == 3


def test_ncbi_efetch_error_text_is_not_cached(httpserver, tmp_path, limiters):
    httpserver.expect_request("/esearch.fcgi").respond_with_data(
        (DATA / "ncbi" / "esearch.json").read_bytes(), content_type="application/json")
    httpserver.expect_request("/esummary.fcgi").respond_with_data(
        (DATA / "ncbi" / "esummary_page1.json").read_bytes(), content_type="application/json")
    httpserver.expect_request("/efetch.fcgi").respond_with_data(
        "Error: Unable to obtain query #1\n", content_type="text/plain")
    with pytest.raises(SourceError, match="efetch did not return GenBank records"):
        ncbi.fetch(config_for("ncbi", httpserver, tmp_path), tmp_path / "a", term="Archaea",
                   retmax=3, max_records=2, genbank="yes", credentials=no_keyring())
    cached = b"".join(p.read_bytes() for p in (tmp_path / "cache").rglob("*.body"))
    assert b"Unable to obtain query" not in cached


def test_gtdb_release_207_reads_metadata_from_its_tar_gz(httpserver, tmp_path):
    """r207 publishes bac120_metadata_r207.tar.gz (holding bac120_metadata_r207.tsv), while its
    taxonomy and later releases' metadata are .tsv.gz."""
    tsv = gzip.decompress((DATA / "gtdb" / "bac120_metadata_r220.tsv.gz").read_bytes())
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        member = tarfile.TarInfo("bac120_metadata_r207.tsv")
        member.size = len(tsv)
        tar.addfile(member, io.BytesIO(tsv))
    httpserver.expect_request("/release207/207.0/bac120_taxonomy_r207.tsv.gz").respond_with_data(
        (DATA / "gtdb" / "bac120_taxonomy_r220.tsv.gz").read_bytes(),
        content_type="application/gzip")
    httpserver.expect_request("/release207/207.0/bac120_metadata_r207.tar.gz").respond_with_data(
        archive.getvalue(), content_type="application/x-gzip")
    out = tmp_path / "out"
    result = gtdb.fetch(config_for("gtdb", httpserver, tmp_path), out,
                        release="release207/207.0", metadata="yes")
    meta = result.tables["gtdb_bac120_metadata"]
    expected, _ = gtdb.parse_metadata(DATA / "gtdb" / "bac120_metadata_r220.tsv.gz")
    assert meta.colnames == list(gtdb.DEFAULT_METADATA_COLUMNS)
    assert list(meta["accession"]) == list(expected["accession"])
    assert list(meta["genome_size"]) == list(expected["genome_size"])
    assert meta["gc_percentage"].unit == u.percent
    assert [str(f) for f in result.files] == ["raw/bac120_taxonomy_r207.tsv.gz",
                                              "raw/bac120_metadata_r207.tar.gz"]
    assert gtdb.release_file("release214/214.1", "ar53", "metadata") == \
        "release214/214.1/ar53_metadata_r214.tsv.gz"
    with pytest.raises(ValueError, match="release 202 is not supported"):
        gtdb.release_file("release202/202.0", "bac120", "metadata")


def test_gtdb_tar_gz_without_one_tsv_is_refused(tmp_path):
    path = tmp_path / "ar53_metadata_r207.tar.gz"
    with tarfile.open(path, mode="w:gz") as tar:
        for name in ("a.tsv", "b.tsv"):
            member = tarfile.TarInfo(name)
            member.size = 2
            tar.addfile(member, io.BytesIO(b"x\n"))
    with pytest.raises(ValueError, match=r"expected one \.tsv file inside, found \['a.tsv', "):
        gtdb.parse_metadata(path)
