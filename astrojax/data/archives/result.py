"""What a fetch returns and leaves on disk: tables with units, downloaded files, provenance.

Every source module's ``fetch(config, out_dir, **options)`` returns a :class:`FetchResult` and
saves it under ``out_dir`` (``result.save(out_dir)``): each table as ECSV (which keeps units,
dtypes and metadata), ``provenance.json`` (one record per request) and ``manifest.json`` (the
source, the tables, the files, and what was skipped and why). ``build-catalog`` reads these
folders back with :meth:`FetchResult.load`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from astropy.table import Table

from astrojax.data.archives.provenance import Provenance

MANIFEST = "manifest.json"
PROVENANCE = "provenance.json"


@dataclasses.dataclass
class FetchResult:
    """One source's haul: named tables, downloaded files (relative to the output folder),
    provenance of every request, and what was skipped (``"item: reason"``)."""

    source: str
    tables: dict[str, Table] = dataclasses.field(default_factory=dict)
    files: list[Path] = dataclasses.field(default_factory=list)
    provenance: list[Provenance] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)

    def save(self, out_dir: str | Path) -> Path:
        """Writes the tables, provenance and manifest into ``out_dir`` (created if needed)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, table in self.tables.items():
            table = table.copy(copy_data=False)
            table.meta.pop("provenance", None)  # kept once, in provenance.json
            table.write(out / f"{name}.ecsv", format="ascii.ecsv", overwrite=True)
        (out / PROVENANCE).write_text(
            json.dumps([p.to_dict() for p in self.provenance], indent=2) + "\n")
        manifest = {"source": self.source, "tables": sorted(self.tables),
                    "files": [str(f) for f in self.files], "skipped": self.skipped}
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        return out

    @classmethod
    def load(cls, out_dir: str | Path) -> FetchResult:
        """A saved result; ``FileNotFoundError``/``ValueError`` name the folder or file."""
        out = Path(out_dir)
        manifest_path = out / MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{out} holds no {MANIFEST}: not a fetch output folder")
        try:
            manifest = json.loads(manifest_path.read_text())
            records = json.loads((out / PROVENANCE).read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"{out}: unreadable fetch metadata: {err}") from err
        tables = {}
        for name in manifest["tables"]:
            path = out / f"{name}.ecsv"
            try:
                tables[name] = Table.read(path, format="ascii.ecsv")
            except Exception as err:  # astropy raises many types for a damaged file
                raise ValueError(f"{path}: cannot read table: {err}") from err
        return cls(source=manifest["source"], tables=tables,
                   files=[Path(f) for f in manifest["files"]],
                   provenance=[Provenance.from_dict(r) for r in records],
                   skipped=list(manifest["skipped"]))
