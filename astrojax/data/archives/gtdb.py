"""GTDB (Genome Taxonomy Database) release files: taxonomy and genome metadata as tables.

GTDB publishes each release as static files (no query API), so this source downloads them
through our :class:`HttpClient`'s streaming ``download`` (the metadata files are hundreds of
MB) into ``out_dir/raw`` and parses the gzip TSVs locally. A file already downloaded with its
provenance record is reused, online or offline.

File names follow the server's layout from release 207 on (the first with the ``ar53``
archaeal marker set): ``latest/bac120_taxonomy.tsv.gz`` for the current release,
``release220/220.0/bac120_taxonomy_r220.tsv.gz`` for a fixed one (likewise ``ar53_*`` for
archaea and ``*_metadata*`` for genome metadata). One exception: release 207 publishes its
metadata as a tar archive, ``release207/207.0/bac120_metadata_r207.tar.gz`` holding
``bac120_metadata_r207.tsv``, while its taxonomy and every later release's files are gzip TSVs
(release 214's files sit in ``release214/214.1/``). :func:`release_file` asks for the file that
exists, and :func:`parse_metadata` reads the TSV inside the tar archive without unpacking it.

Library use: ``parse_taxonomy(path)``, ``parse_metadata(path, columns)``.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import re
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import astropy.units as u
import numpy as np
import pandas as pd
from astropy.table import Column, Table

from astrojax.data.archives.config import SourceConfig
from astrojax.data.archives.http import HttpClient
from astrojax.data.archives.options import yes_no
from astrojax.data.archives.result import FetchResult

NAME = "gtdb"
DEFAULT_BASE_URL = "https://data.gtdb.ecogenomic.org/releases/"
DOMAINS = ("bac120", "ar53")
RANKS = ("domain", "phylum", "class", "order", "family", "genus", "species")
_PREFIXES = tuple(f"{r[0]}__" for r in RANKS)  # d__, p__, c__, o__, f__, g__, s__
_RELEASE = re.compile(r"^release(\d+)/(\d+)\.\d+$")
FIRST_RELEASE = 207  # ar53 and this file layout start here
TAR_METADATA_RELEASES = (207,)  # metadata as {domain}_metadata_r207.tar.gz

DEFAULT_METADATA_COLUMNS = (
    "accession", "gtdb_taxonomy", "gtdb_representative", "gtdb_genome_representative",
    "genome_size", "gc_percentage", "checkm2_completeness", "checkm2_contamination",
    "checkm_completeness", "checkm_contamination", "contig_count", "n50_contigs",
    "coding_density", "protein_count", "mimag_high_quality", "ncbi_taxid",
    "ncbi_organism_name", "ncbi_assembly_level", "ncbi_genome_category")
PERCENT_COLUMNS = {"gc_percentage", "checkm_completeness", "checkm_contamination",
                   "checkm2_completeness", "checkm2_contamination", "checkm_strain_heterogeneity",
                   "coding_density"}
BASE_PAIR_COLUMNS = {"genome_size", "n50_contigs", "n50_scaffolds", "longest_contig",
                     "longest_scaffold", "mean_contig_length", "mean_scaffold_length",
                     "coding_bases", "gc_count", "ambiguous_bases", "total_gap_length",
                     "ncbi_total_length", "ncbi_ungapped_length", "ncbi_contig_n50",
                     "ncbi_scaffold_n50", "ssu_length"}
INTEGER_COLUMNS = BASE_PAIR_COLUMNS | {
    "contig_count", "scaffold_count", "protein_count", "ssu_count", "trna_count",
    "trna_aa_count", "ncbi_taxid", "ncbi_species_taxid", "checkm_marker_count",
    "l50_contigs", "l50_scaffolds", "ncbi_translation_table"}
BOOLEAN_COLUMNS = {"gtdb_representative", "mimag_high_quality", "mimag_medium_quality",
                   "mimag_low_quality", "gtdb_type_species_of_genus"}


def gtdb_client(config: SourceConfig) -> HttpClient:
    return config.client(NAME, DEFAULT_BASE_URL)


def release_file(release: str, domain: str, kind: str) -> str:
    """The path under the releases folder, e.g. ``release220/220.0/ar53_metadata_r220.tsv.gz``
    (``release207/207.0/ar53_metadata_r207.tar.gz`` for release 207's metadata)."""
    if domain not in DOMAINS:
        raise ValueError(f"{NAME}: domain must be one of {DOMAINS}, got {domain!r}")
    if release == "latest":
        return f"latest/{domain}_{kind}.tsv.gz"
    match = _RELEASE.match(release)
    if not match or match.group(1) != match.group(2):
        raise ValueError(f"{NAME}: release must be 'latest' or like 'release220/220.0', "
                         f"got {release!r}")
    number = int(match.group(1))
    if number < FIRST_RELEASE:
        raise ValueError(f"{NAME}: release {number} is not supported: releases before "
                         f"{FIRST_RELEASE} use other marker sets and file names")
    suffix = "tar.gz" if kind == "metadata" and number in TAR_METADATA_RELEASES else "tsv.gz"
    return f"{release}/{domain}_{kind}_r{number}.{suffix}"


def split_taxonomy(lineage: str) -> list[str]:
    """``d__Bacteria;p__...;s__Escherichia coli`` as seven names without prefixes."""
    parts = [p.strip() for p in lineage.split(";")]
    if len(parts) != len(RANKS) or any(not p.startswith(prefix)
                                       for p, prefix in zip(parts, _PREFIXES, strict=True)):
        raise ValueError(f"not a seven-rank GTDB taxonomy string: {lineage!r}")
    return [p[3:] for p in parts]


def _ncbi_accession(accession: str) -> str:
    """GTDB's ``RS_GCF_...``/``GB_GCA_...`` ids without the RefSeq/GenBank prefix."""
    return accession[3:] if accession[:3] in ("RS_", "GB_") else accession


def parse_taxonomy(path: str | Path) -> Table:
    """A ``*_taxonomy*.tsv.gz`` file (accession TAB lineage, no header) as a table."""
    path = Path(path)
    accessions: list[str] = []
    ranks: list[list[str]] = []
    with gzip.open(path, "rt", newline="") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if not row:
                continue
            if len(row) != 2:
                raise ValueError(f"{path}: line {number} has {len(row)} fields, expected "
                                 "accession and taxonomy")
            try:
                ranks.append(split_taxonomy(row[1]))
            except ValueError as err:
                raise ValueError(f"{path}: line {number}: {err}") from None
            accessions.append(row[0])
    table = Table()
    table["accession"] = Column(accessions, dtype=str, description="GTDB genome id")
    table["ncbi_accession"] = Column([_ncbi_accession(a) for a in accessions], dtype=str,
                                     description="NCBI assembly accession")
    by_rank = list(zip(*ranks, strict=True)) if ranks else [()] * len(RANKS)
    for rank, values in zip(RANKS, by_rank, strict=True):
        table[rank] = Column(list(values), dtype=str, description=f"GTDB {rank}")
    return table


@contextlib.contextmanager
def _open_metadata(path: Path) -> Iterator[IO[bytes]]:
    """The metadata TSV of a ``.tsv.gz`` file, or of the one ``.tsv`` inside a ``.tar.gz``."""
    if not path.name.endswith((".tar.gz", ".tgz")):
        with gzip.open(path, "rb") as handle:
            yield handle
        return
    try:
        archive = tarfile.open(path, "r:gz")
    except (tarfile.TarError, OSError) as err:
        raise ValueError(f"{path}: not a tar.gz archive: {err}") from None
    with archive:
        members = [m for m in archive.getmembers() if m.isfile() and m.name.endswith(".tsv")]
        if len(members) != 1:
            raise ValueError(f"{path}: expected one .tsv file inside, found "
                             f"{[m.name for m in members] or 'none'}")
        handle = archive.extractfile(members[0])
        with handle:
            yield handle


def parse_metadata(path: str | Path, columns: Sequence[str] | None = None,
                   ) -> tuple[Table, list[str]]:
    """A ``*_metadata*.tsv.gz`` file (or release 207's ``*.tar.gz``) as a table of ``columns``
    (None: all), typed, with units.

    GTDB writes ``none`` for missing values and ``t``/``f`` for flags: numbers become NaN (or
    -1 for integer columns), flags booleans. Returns the table and the columns asked for that
    the file does not have.
    """
    path = Path(path)
    with _open_metadata(path) as handle:
        header = pd.read_csv(handle, sep="\t", nrows=0).columns
    wanted = list(header) if columns is None else list(dict.fromkeys(["accession", *columns]))
    missing = [c for c in wanted if c not in header]
    if "accession" in missing:
        raise ValueError(f"{path}: no 'accession' column: not a GTDB metadata file")
    present = [c for c in wanted if c in header]
    with _open_metadata(path) as handle:
        frame = pd.read_csv(handle, sep="\t", usecols=present, dtype=str,
                            keep_default_na=False)
    table = Table()
    for name in present:
        text = frame[name].to_numpy(dtype=str)
        if name in BOOLEAN_COLUMNS:
            column = Column(text == "t", description="GTDB flag (t/f)")
        elif name in INTEGER_COLUMNS or name in PERCENT_COLUMNS:
            values = pd.to_numeric(frame[name].replace("none", np.nan), errors="coerce")
            if name in INTEGER_COLUMNS:
                column = Column(values.fillna(-1).astype(np.int64).to_numpy(),
                                description="-1 where GTDB gives none")
            else:
                column = Column(values.to_numpy(dtype=float), unit=u.percent,
                                description="percent; NaN where GTDB gives none")
            if name in BASE_PAIR_COLUMNS:
                column.description = "base pairs (bp); -1 where GTDB gives none"
        else:
            column = Column(np.where(text == "none", "", text), dtype=str)
        table[name] = column
    return table, missing




def fetch(config: SourceConfig, out_dir: Path, *, release: str = "latest",
          domain: str = "bac120", metadata: str = "no", columns: str = "") -> FetchResult:
    """Downloads a GTDB release's taxonomy (and metadata) file and saves them as tables.

    Options:
        release: ``latest`` (default) or a release folder like ``release220/220.0``
            (release 207 onwards; ``release207/207.0`` reads its metadata from the tar.gz
            GTDB publishes for that release).
        domain: ``bac120`` (bacteria, default) or ``ar53`` (archaea).
        metadata: ``yes`` to also download and parse the genome metadata (large: hundreds of
            MB for bacteria); default ``no``.
        columns: comma-separated metadata columns to keep, or ``all`` (default: accession,
            taxonomy, representative flags, genome size, GC, CheckM/CheckM2 quality, contig
            count, N50, coding density, protein count, MIMAG high quality, NCBI taxid, organism,
            assembly level, genome category).

    Returns a :class:`FetchResult` with ``gtdb_<domain>_taxonomy`` (``accession``,
    ``ncbi_accession``, ``domain``, ``phylum``, ``class``, ``order``, ``family``, ``genus``,
    ``species``) and, with metadata, ``gtdb_<domain>_metadata`` (percentages such as
    ``gc_percentage`` and the CheckM scores in percent; lengths such as ``genome_size`` in
    base pairs, described as such: astropy has no base-pair unit). The downloaded files are
    listed in ``files`` (under ``raw/``).
    """
    want_metadata = yes_no(NAME, "metadata", metadata)
    chosen = (None if columns.strip().lower() == "all" else
              [c.strip() for c in columns.split(",") if c.strip()] or
              list(DEFAULT_METADATA_COLUMNS))
    kinds = ["taxonomy", *(["metadata"] if want_metadata else [])]
    paths = {kind: release_file(release, domain, kind) for kind in kinds}  # validates first
    out_dir = Path(out_dir)
    result = FetchResult(NAME)
    with gtdb_client(config) as client:
        for kind, path in paths.items():
            downloaded = client.download(path, out_dir / "raw")
            result.provenance.append(downloaded.provenance)
            result.files.append(downloaded.path.relative_to(out_dir))
            if kind == "taxonomy":
                table = parse_taxonomy(downloaded.path)
            else:
                table, missing = parse_metadata(downloaded.path, chosen)
                result.skipped += [f"{c}: not a column of {path}" for c in missing]
            table.meta.update({"release": release, "domain": domain, "file": path})
            result.tables[f"gtdb_{domain}_{kind}"] = table
    result.save(out_dir)
    return result
