"""Kepler and K2 observations, their products and selected downloads from MAST (:mod:`.mast`)."""

from pathlib import Path

from astrojax.data.archives.config import SourceConfig
from astrojax.data.archives.mast import DEFAULT_BASE_URL, PAGESIZE, fetch_mast
from astrojax.data.archives.result import FetchResult

NAME = "kepler"
MISSIONS = {"kepler": ("Kepler", "kplr"), "k2": ("K2", "ktwo")}  # CAOM collection, name prefix
__all__ = ["DEFAULT_BASE_URL", "MISSIONS", "NAME", "fetch", "target_name_for"]


def target_name_for(mission: str, target_id: int | str) -> str:
    """CAOM's target_name of a KIC (Kepler) or EPIC (K2) id: ``kplr011904151``."""
    return f"{MISSIONS[mission.lower()][1]}{int(target_id):09d}"


def fetch(config: SourceConfig, out_dir: Path, *, mission: str = "Kepler",
          target_id=None, target: str | None = None, ra=None, dec=None, radius=0.02,
          dataproduct_type: str | None = None, product_type: str | None = "SCIENCE",
          subgroup: str | None = None, extension: str | None = None, download=0,
          pagesize=PAGESIZE) -> FetchResult:
    """Kepler or K2 observations (table ``observations``) and their files (table ``products``).

    Options (give ``target_id``, ``target`` or ``ra``/``dec``):
      mission: "Kepler" or "K2" (default Kepler).
      target_id: a KIC id (Kepler) or EPIC id (K2), e.g. 11904151.
      target: a name MAST resolves to a position, e.g. "Kepler-10".
      ra, dec: a position in degrees; radius: cone radius in degrees (default 0.02).
      dataproduct_type: e.g. "timeseries", "image" (default: any).
      product_type: productType of the files to download (default SCIENCE; "" for any).
      subgroup: productSubGroupDescription, e.g. "LLC" (long cadence light curve), "SLC", "TPF"
        (default: any).
      extension: a filename ending, e.g. "_llc.fits" (default: any).
      download: how many selected files to download into ``out_dir/products`` (default 0).
      pagesize: rows per MAST page (default 50000).
    """
    key = str(mission).lower()
    if key not in MISSIONS:
        raise ValueError(f"{NAME}: mission must be one of Kepler, K2; got {mission!r}")
    collection = MISSIONS[key][0]
    name = target_name_for(key, target_id) if target_id not in (None, "") else None
    return fetch_mast(config, out_dir, source=NAME, collection=collection, target=target,
                      ra=ra, dec=dec, radius=radius, target_name=name,
                      dataproduct_type=dataproduct_type, product_type=product_type or None,
                      subgroup=subgroup, extension=extension, download=download,
                      pagesize=pagesize)
