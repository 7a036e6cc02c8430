"""What a client returns: a checked reply in memory, or a downloaded file, with provenance."""

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astrojax.data.archives.provenance import Provenance
from astrojax.data.archives.validate import decode


@dataclass(frozen=True)
class Reply:
    """A validated reply: the body, its status and content type, and its provenance."""

    body: bytes = field(repr=False)
    status: int
    content_type: str | None
    provenance: Provenance
    expect: str
    parsed: Any = field(default=None, repr=False, compare=False)  # the JSON, for expect="json"
    # The response headers a caller may need (``KEPT_HEADERS``: paging links, totals), also
    # kept in the cache so an offline rerun can page too.
    headers: dict[str, str] = field(default_factory=dict, compare=False)

    def json(self) -> Any:
        return self.parsed if self.expect == "json" else json.loads(self.text())

    def text(self) -> str:
        return decode(self.body, self.content_type)

    def table(self):
        """An astropy Table of a csv, tsv or votable reply, with provenance in ``meta``."""
        from astropy.io import ascii
        from astropy.io.votable import parse_single_table

        if self.expect == "votable":
            table = parse_single_table(io.BytesIO(self.body)).to_table()
        elif self.expect in ("csv", "tsv"):
            table = ascii.read(self.text(), format="csv" if self.expect == "csv" else "tab",
                               comment="#")
        else:
            raise ValueError(f"table() needs a csv, tsv or votable reply, not {self.expect!r}")
        table.meta["provenance"] = self.provenance.to_dict()
        return table


@dataclass(frozen=True)
class Downloaded:
    """A file on disk and its provenance (also saved beside it as ``NAME.provenance.json``)."""

    path: Path
    provenance: Provenance
