"""Ensembl genes, sequences and genomes through the Ensembl REST API (rest.ensembl.org).

REST through our :class:`HttpClient` (there is no astroquery module for Ensembl). Ensembl
Genomes' separate REST host is retired, so every division is read from the main service.
Requests ask for JSON with ``Content-Type: application/json`` and are spaced at Ensembl's
published limit (55,000 requests an hour, about 15 a second); when Ensembl still answers 429
with ``Retry-After`` the shared layer waits and retries.

Endpoints: ``/lookup/symbol/{species}/{symbol}`` (a gene by symbol), ``/sequence/id/{id}``
(the protein, CDS or cDNA of the gene's canonical transcript) and
``/info/genomes/taxonomy/{taxon}`` (the genomes beneath a taxonomy node).

Library use: ``lookup_symbol(client, "homo_sapiens", "BRAF")``, ``sequence(client, id, "cds")``,
``genomes_table(client, "Hominidae")``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from astropy.table import Column, Table

from astrojax.data.archives.config import SourceConfig
from astrojax.data.archives.errors import HTTPStatusError, SourceError
from astrojax.data.archives.http import HttpClient
from astrojax.data.archives.provenance import Provenance
from astrojax.data.archives.reply import Reply
from astrojax.data.archives.result import FetchResult
from astrojax.data.archives.validate import InvalidReply

NAME = "ensembl"
DEFAULT_BASE_URL = "https://rest.ensembl.org"
RATE_PER_SECOND = 15.0  # Ensembl REST allows 55,000 requests per hour
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
SEQUENCE_TYPES = ("none", "protein", "cds", "cdna")

# (column, JSON field, dtype, description)
GENE_COLUMNS = (
    ("symbol", "symbol", str, "symbol looked up"),
    ("id", "id", str, "Ensembl stable gene id"),
    ("version", "version", int, "stable id version"),
    ("display_name", "display_name", str, "gene name"),
    ("species", "species", str, "species (production name)"),
    ("biotype", "biotype", str, "gene biotype"),
    ("seq_region_name", "seq_region_name", str, "chromosome or scaffold"),
    ("start", "start", int, "start coordinate (1-based, bp)"),
    ("end", "end", int, "end coordinate (inclusive, bp)"),
    ("strand", "strand", int, "1 or -1"),
    ("assembly_name", "assembly_name", str, "genome assembly"),
    ("canonical_transcript", "canonical_transcript", str, "canonical transcript id.version"),
    ("description", "description", str, "gene description"),
)
GENOME_COLUMNS = (
    ("name", "name", str, "production name"),
    ("display_name", "display_name", str, "display name"),
    ("taxonomy_id", "taxonomy_id", int, "NCBI Taxonomy id of the genome"),
    ("species_taxonomy_id", "species_taxonomy_id", int, "NCBI Taxonomy id of the species"),
    ("strain", "strain", str, "strain"),
    ("division", "division", str, "Ensembl division"),
    ("assembly_name", "assembly_name", str, "assembly name"),
    ("assembly_accession", "assembly_accession", str, "INSDC assembly accession"),
    ("assembly_level", "assembly_level", str, "chromosome, scaffold, ..."),
    ("base_count", "base_count", int, "assembly length in base pairs (bp)"),
)
SEQUENCE_COLUMNS = (
    ("gene_id", "gene_id", str, "gene the sequence belongs to"),
    ("id", "id", str, "transcript or translation id"),
    ("molecule", "molecule", str, "dna or protein"),
    ("length", "length", int, "residues (bp for dna, amino acids for protein)"),
    ("desc", "desc", str, "location or description Ensembl gives"),
    ("sequence", "seq", str, "the sequence"),
)


def ensembl_client(config: SourceConfig) -> HttpClient:
    return config.client(NAME, DEFAULT_BASE_URL, rate_per_second=RATE_PER_SECOND)


def _table(columns, records: list[Mapping[str, Any]]) -> Table:
    table = Table()
    for name, field, dtype, description in columns:
        values = []
        for record in records:
            value = record.get(field)
            if dtype is int:
                value = int(value) if value not in (None, "") else -1
            else:
                value = "" if value is None else str(value)
            values.append(value)
        table[name] = Column(values, dtype=dtype, description=description)
    return table


def ensembl_check(reply: Reply) -> bool:
    """The client ``check``: an ``{"error": ...}`` document raises and is never cached."""
    document = reply.json()
    if isinstance(document, dict) and "error" in document:
        raise InvalidReply("service_error", f"Ensembl error: {document['error']}")
    return True


def _json_object(document: Any, url: str, kind: type) -> Any:
    if not isinstance(document, kind):
        raise SourceError(NAME, url, f"expected a JSON {kind.__name__}, got "
                                     f"{type(document).__name__}")
    return document


def lookup_symbol(client: HttpClient, species: str, symbol: str,
                  ) -> tuple[dict[str, Any], Provenance]:
    """The gene record for ``symbol`` in ``species`` (HTTPStatusError 400 if unknown)."""
    path = f"lookup/symbol/{quote(species)}/{quote(symbol)}"
    reply = client.get(path, expect="json", headers=JSON_HEADERS,
                       check=ensembl_check)
    record = _json_object(reply.json(), client.url_for(path), dict)
    return {"symbol": symbol, **record}, reply.provenance


def sequence(client: HttpClient, stable_id: str, kind: str = "protein",
             ) -> tuple[dict[str, Any], Provenance]:
    """The ``kind`` (protein, cds, cdna) sequence of a transcript; the version is dropped."""
    if kind not in SEQUENCE_TYPES[1:]:
        raise ValueError(f"{NAME}: sequence type must be one of {SEQUENCE_TYPES[1:]}, "
                         f"got {kind!r}")
    path = f"sequence/id/{quote(stable_id.split('.')[0])}"
    reply = client.get(path, {"type": kind}, expect="json", headers=JSON_HEADERS,
                       check=ensembl_check)
    record = _json_object(reply.json(), client.url_for(path), dict)
    if not isinstance(record.get("seq"), str):
        raise SourceError(NAME, client.url_for(path), "sequence reply has no 'seq' string")
    return {**record, "length": len(record["seq"])}, reply.provenance


def genomes_table(client: HttpClient, taxon: str) -> tuple[Table, Provenance]:
    """The genomes Ensembl holds beneath the taxonomy node ``taxon`` (name or id)."""
    path = f"info/genomes/taxonomy/{quote(taxon)}"
    reply = client.get(path, expect="json", headers=JSON_HEADERS,
                       check=ensembl_check)
    records = _json_object(reply.json(), client.url_for(path), list)
    return _table(GENOME_COLUMNS, [r for r in records if isinstance(r, dict)]), reply.provenance


def _write_fasta(path: Path, records: list[Mapping[str, Any]]) -> None:
    with path.open("w") as out:
        for record in records:
            out.write(f">{record['id']} {record.get('gene_id', '')} {record.get('desc') or ''}"
                      .rstrip() + "\n")
            seq = record["seq"]
            out.writelines(seq[i:i + 60] + "\n" for i in range(0, len(seq), 60))


def fetch(config: SourceConfig, out_dir: Path, *, species: str = "homo_sapiens",
          symbols: str = "", taxon: str = "", sequence_type: str = "protein") -> FetchResult:
    """Looks up genes and/or genomes in Ensembl and saves them under ``out_dir``.

    Options:
        species: species name or alias for the symbol look-ups (default ``homo_sapiens``).
        symbols: comma-separated gene symbols, e.g. ``"BRCA2,BRAF"`` (default none).
        taxon: a taxonomy node (name or NCBI id), e.g. ``"Hominidae"``: list its genomes
            (default none). At least one of ``symbols`` and ``taxon`` is required.
        sequence_type: ``protein`` (default), ``cds``, ``cdna`` or ``none``: the sequence of
            each gene's canonical transcript to fetch.

    Returns a :class:`FetchResult` with, as asked, the tables ``ensembl_genes`` (``symbol``,
    ``id``, ``version``, ``display_name``, ``species``, ``biotype``, ``seq_region_name``,
    ``start``/``end`` (bp), ``strand``, ``assembly_name``, ``canonical_transcript``,
    ``description``), ``ensembl_sequences`` (``gene_id``, ``id``, ``molecule``, ``length``,
    ``desc``, ``sequence``; also written as ``ensembl_sequences.fa``) and ``ensembl_genomes``
    (``name``, ``display_name``, ``taxonomy_id``, ``species_taxonomy_id``, ``strain``,
    ``division``, ``assembly_name``, ``assembly_accession``, ``assembly_level``,
    ``base_count`` (bp)). Unknown symbols are listed in ``skipped``.
    """
    wanted = [s.strip() for s in symbols.split(",") if s.strip()]
    if not wanted and not taxon.strip():
        raise ValueError(f"{NAME}: give symbols (comma list) and/or taxon")
    if sequence_type not in SEQUENCE_TYPES:
        raise ValueError(f"{NAME}: sequence_type must be one of {SEQUENCE_TYPES}, "
                         f"got {sequence_type!r}")
    out_dir = Path(out_dir)
    result = FetchResult(NAME)
    with ensembl_client(config) as client:
        genes, sequences = [], []
        for symbol in wanted:
            try:
                gene, provenance = lookup_symbol(client, species, symbol)
            except HTTPStatusError as err:
                # Ensembl's answer to an unknown symbol; a bad species (also 400) still fails.
                if err.status != 400 or "No valid lookup found" not in err.detail:
                    raise
                result.skipped.append(f"{species}/{symbol}: not found ({err.detail})")
                continue
            result.provenance.append(provenance)
            genes.append(gene)
            if sequence_type == "none":
                continue
            transcript = gene.get("canonical_transcript")
            if not transcript:
                result.skipped.append(f"{gene['id']}: no canonical transcript for a "
                                      f"{sequence_type} sequence")
                continue
            record, provenance = sequence(client, transcript, sequence_type)
            result.provenance.append(provenance)
            sequences.append({**record, "gene_id": gene["id"]})
        if wanted:
            result.tables["ensembl_genes"] = _table(GENE_COLUMNS, genes)
            result.tables["ensembl_genes"].meta["species"] = species
        if sequences:
            result.tables["ensembl_sequences"] = _table(SEQUENCE_COLUMNS, sequences)
            out_dir.mkdir(parents=True, exist_ok=True)
            _write_fasta(out_dir / "ensembl_sequences.fa", sequences)
            result.files.append(Path("ensembl_sequences.fa"))
        if taxon.strip():
            table, provenance = genomes_table(client, taxon.strip())
            table.meta["taxon"] = taxon.strip()
            result.tables["ensembl_genomes"] = table
            result.provenance.append(provenance)
            if not len(table):
                result.skipped.append(f"{taxon}: Ensembl holds no genomes beneath this taxon")
    result.save(out_dir)
    return result
