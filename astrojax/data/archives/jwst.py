"""JWST observations, their products and selected downloads from MAST (see :mod:`.mast`)."""

from pathlib import Path

from astrojax.data.archives.config import SourceConfig
from astrojax.data.archives.mast import DEFAULT_BASE_URL, PAGESIZE, fetch_mast
from astrojax.data.archives.result import FetchResult

NAME = "jwst"
__all__ = ["DEFAULT_BASE_URL", "NAME", "fetch"]


def fetch(config: SourceConfig, out_dir: Path, *, target: str | None = None, ra=None, dec=None,
          radius=0.02, target_name: str | None = None, dataproduct_type: str | None = None,
          calib_level=None, product_type: str | None = "SCIENCE", extension: str | None = None,
          download=0, pagesize=PAGESIZE) -> FetchResult:
    """JWST observations (table ``observations``) and their files (table ``products``).

    Options (give ``target``, ``ra``/``dec`` or ``target_name``):
      target: a name MAST resolves to a position (``Mast.Name.Lookup``), e.g. "TRAPPIST-1".
      ra, dec: a position in degrees (instead of ``target``).
      radius: cone radius in degrees (default 0.02).
      target_name: the proposer's target name as recorded in CAOM (exact match, no cone).
      dataproduct_type: e.g. "spectrum", "image", "timeseries" (default: any).
      calib_level: CAOM calibration level 1-4 of observations and products (default: any).
      product_type: productType of the files to download, e.g. SCIENCE, AUXILIARY, PREVIEW
        (default SCIENCE; "" for any).
      extension: a filename ending to select, e.g. "_x1d.fits" (default: any).
      download: how many selected files to download into ``out_dir/products`` (default 0: list
        only; the rest are listed in ``skipped``).
      pagesize: rows per MAST page (default 50000).
    """
    return fetch_mast(config, out_dir, source=NAME, collection="JWST", target=target, ra=ra,
                      dec=dec, radius=radius, target_name=target_name,
                      dataproduct_type=dataproduct_type, calib_level=calib_level,
                      product_type=product_type or None, extension=extension,
                      download=download, pagesize=pagesize)
