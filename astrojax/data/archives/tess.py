"""TESS observations, products, downloads and SPOC light curves of one TIC from MAST.

See :mod:`.mast` for the API and why it is called directly.
"""

from pathlib import Path

from astrojax.data.archives.config import SourceConfig
from astrojax.data.archives.mast import DEFAULT_BASE_URL, PAGESIZE, fetch_mast, read_lightcurve
from astrojax.data.archives.result import FetchResult

NAME = "tess"
MAX_LIGHTCURVES = 10
__all__ = ["DEFAULT_BASE_URL", "NAME", "fetch", "read_lightcurve"]


def fetch(config: SourceConfig, out_dir: Path, *, tic=None, target: str | None = None, ra=None,
          dec=None, radius=0.02, sector=None, dataproduct_type: str | None = None,
          product_type: str | None = "SCIENCE", subgroup: str | None = None,
          extension: str | None = None, download=None, pagesize=PAGESIZE) -> FetchResult:
    """TESS observations (``observations``), their files (``products``) and, for a TIC, its light
    curve (``lightcurve``: TIME [d, BTJD = BJD - 2457000], PDCSAP_FLUX and PDCSAP_FLUX_ERR
    [electron / s], QUALITY flags and SECTOR, from the SPOC ``_lc.fits`` files).

    Options (give ``tic``, ``target`` or ``ra``/``dec``):
      tic: a TIC id, e.g. 307210830. Selects that star's 2-minute SPOC light curves
        (productSubGroupDescription "LC"), downloads them and reads them into ``lightcurve``.
      target: a name MAST resolves to a position, e.g. "L 98-59" (observations and products).
      ra, dec: a position in degrees; radius: cone radius in degrees (default 0.02).
      sector: only this sector (CAOM sequence_number) (default: all).
      dataproduct_type: default "timeseries" with ``tic``, else any.
      product_type: productType of the files to download (default SCIENCE; "" for any).
      subgroup: productSubGroupDescription, e.g. "LC", "TP", "DVT" (default "LC" with ``tic``).
      extension: a filename ending, e.g. "_lc.fits" (default: any).
      download: how many selected files to download (default 10 with ``tic``, else 0).
      pagesize: rows per MAST page (default 50000).
    """
    with_tic = tic not in (None, "")
    reads = with_tic and (subgroup in (None, "", "LC"))
    if download in (None, ""):
        download = MAX_LIGHTCURVES if with_tic else 0
    result = fetch_mast(
        config, out_dir, source=NAME, collection="TESS", target=target, ra=ra, dec=dec,
        radius=radius, target_name=str(int(tic)) if with_tic else None,
        dataproduct_type=dataproduct_type or ("timeseries" if with_tic else None),
        product_type=product_type or None,
        subgroup=subgroup or ("LC" if with_tic else None), extension=extension,
        download=download, pagesize=pagesize, lightcurve_tic=int(tic) if reads else None,
        sequence_number=None if sector in (None, "") else int(sector))
    return result
