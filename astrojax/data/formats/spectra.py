"""Read observed transmission spectra (text or ECSV) and resample them onto a model's grid.

A spectrum file has one row per wavelength bin and columns, found by name (case-insensitive;
``ROLES`` lists the names each role accepts):

* **wavelength** (the bin centre): um unless declared (``um``, ``nm``, ``Angstrom``, ...);
  undeclared values outside 0.1-100 are refused as probably nm or Angstrom. It may be left
  out when the bin edges are given (the centres are then their midpoints);
* **depth**: the transit depth (Rp/Rs)^2 as a fraction, in ppm or in percent;
* **error**: its 1-sigma error, in the depth's unit unless declared; or two columns of upper and
  lower errors (``err_up``/``err_low``, ``depth_err_pos``/``depth_err_neg``, ...), averaged;
* optionally the bins: full widths (``bin_width``), half widths (``half_width``,
  ``wavelength_err``) or edges (``wavelength_min``/``wavelength_max``, ...). Without them a
  bin reaches halfway to its neighbours (the first and last mirror their inner half).

Units come from the file (an ECSV column's ``unit``, read by astropy; in a text header a
suffix ``_ppm``, ``_um``, ... or ``(ppm)`` / ``[ppm]`` after the name), else from the caller
(``depth_unit=``, ``wavelength_unit=``), else they are detected: depths all below 0.1 are
fractions, all above 10 are ppm, anything else is refused until declared (percent is never
guessed: 0.05 could be either; declare it). :attr:`ObservedSpectrum.depth_unit` and
``unit_origin`` say what was used.

A text file has ``#`` comment lines, then a header line naming the columns (or the header as
the last comment line before the data), then whitespace- or comma-separated rows. Every
problem is a :class:`SpectrumFileError`, one line naming the file and the column or line:
a missing column, a non-number, non-increasing wavelengths, a negative or zero error, an
unknown unit.

:func:`resample` bins a spectrum onto a grid (the generator's
:class:`~astrojax.data.generator.spectra.SpectralGrid`, or centres and widths): each grid bin
is the inverse-variance weighted mean of the data bins overlapping it, each weighted also by
the share of it inside the grid bin (w_i = f_i / sigma_i^2), with the error of that weighted
mean, sqrt(sum w_i^2 sigma_i^2) / sum w_i (= 1 / sqrt(sum 1 / sigma_i^2) when every data bin
lies wholly inside). A data bin wider than a grid bin gives each grid bin it covers its value
and error, so neighbouring grid bins' errors are then correlated. A grid bin less than
``min_coverage`` covered by data has depth NaN and ``known`` False.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path

import numpy as np

ROLES = {
    "wavelength": ("wavelength", "wave", "wl", "lambda", "lam", "wavelength_center",
                   "wavelength_centre", "wavelength_mid"),
    "depth": ("depth", "transit_depth", "td", "rp_rs2", "rprs2", "(rp/rs)^2", "rp/rs^2"),
    "error": ("error", "err", "sigma", "uncertainty", "depth_err", "depth_error",
              "depth_uncertainty", "depth_sigma", "transit_depth_err", "transit_depth_error",
              "e_depth", "td_err"),
    "error_up": ("err_up", "error_up", "err_plus", "error_plus", "err_pos", "depth_err_up",
                 "depth_err_pos", "depth_err_plus", "depth_error_upper", "err_upper",
                 "transit_depth_err_up", "transit_depth_err_pos"),
    "error_low": ("err_low", "error_low", "err_minus", "error_minus", "err_neg",
                  "depth_err_low", "depth_err_neg", "depth_err_minus", "depth_error_lower",
                  "err_lower", "transit_depth_err_low", "transit_depth_err_neg"),
    "width": ("bin_width", "width", "wavelength_width", "delta_wavelength", "dwave",
              "bin_size"),
    "half_width": ("half_width", "bin_half_width", "wavelength_err", "wavelength_error",
                   "wave_err", "wavelength_half_width"),
    "lower": ("wavelength_min", "wavelength_low", "wavelength_lower", "wave_min", "wave_low",
              "wave_lo", "lambda_min", "bin_start", "wavelength_start"),
    "upper": ("wavelength_max", "wavelength_high", "wavelength_upper", "wave_max", "wave_high",
              "wave_hi", "lambda_max", "bin_end", "wavelength_end"),
}
DEPTH_UNITS = {"": 1.0, "fraction": 1.0, "frac": 1.0, "ppm": 1e-6, "%": 1e-2, "percent": 1e-2,
               "pct": 1e-2}
_WAVELENGTH_UM = {"um": 1.0, "micron": 1.0, "microns": 1.0, "micrometer": 1.0,
                  "\u00b5m": 1.0, "\u03bcm": 1.0, "nm": 1e-3, "angstrom": 1e-4, "aa": 1e-4,
                  "a": 1e-4, "m": 1e6, "cm": 1e4}
_SUFFIX_UNITS = ("ppm", "percent", "pct", "frac", "fraction", "um", "micron", "microns", "nm",
                 "angstrom", "aa")
_UNIT_IN_NAME = re.compile(r"^(.*?)\s*[\(\[]\s*([^\)\]]*)\s*[\)\]]\s*$")


class SpectrumFileError(ValueError):
    """A spectrum file that cannot be read as one; the message names the file and the place."""


@dataclasses.dataclass(frozen=True, eq=False)
class ObservedSpectrum:
    """A spectrum as read: bins in um, depth and error as fractions."""

    path: str
    wavelength_um: np.ndarray
    lower_um: np.ndarray
    upper_um: np.ndarray
    depth: np.ndarray
    sigma: np.ndarray
    depth_unit: str  # the file's depth unit: fraction, ppm or percent
    unit_origin: str  # where it came from: file, argument or detected

    def __len__(self) -> int:
        return len(self.wavelength_um)


# ------------------------------------------------------------------------------ reading
def _split_unit(raw: str) -> tuple[str, str | None]:
    """``"depth (ppm)"`` -> ``("depth", "ppm")``; ``"depth_ppm"`` -> ``("depth", "ppm")``."""
    name = raw.strip().lower()
    match = _UNIT_IN_NAME.match(name)
    if match:
        return match.group(1).strip().replace(" ", "_"), match.group(2).strip()
    name = name.replace(" ", "_")
    for unit in _SUFFIX_UNITS:
        if name.endswith("_" + unit) and len(name) > len(unit) + 1:
            return name[: -len(unit) - 1], unit
    return name, None


def _read_text(path: Path) -> tuple[list[str], dict[str, np.ndarray], np.ndarray]:
    """Raw column names, columns as float arrays, and each row's line number."""
    lines = path.read_text().splitlines()
    header, last_comment, rows, numbers = None, None, [], []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        if text.startswith("#"):
            if header is None:
                last_comment = text.lstrip("#").strip()
            continue
        if header is None:
            if _numeric_row(text):
                if not last_comment:
                    raise SpectrumFileError(f"{path}: no header line naming the columns "
                                            f"before the data (line {number})")
                header = last_comment
            else:
                header = text
                continue
        rows.append(text)
        numbers.append(number)
    if header is None or not rows:
        raise SpectrumFileError(f"{path}: no data rows")
    comma = "," in header
    names = [n.strip() for n in (header.split(",") if comma else header.split())]
    values = np.empty((len(rows), len(names)))
    for r, (text, number) in enumerate(zip(rows, numbers, strict=True)):
        fields = [f.strip() for f in (text.split(",") if comma else text.split())]
        if len(fields) != len(names):
            raise SpectrumFileError(f"{path} line {number}: {len(fields)} fields, the header "
                                    f"names {len(names)} columns")
        for c, field in enumerate(fields):
            try:
                values[r, c] = float(field)
            except ValueError:
                raise SpectrumFileError(f"{path} line {number}: column {names[c]!r} has "
                                        f"{field!r}, not a number") from None
    return names, {n: values[:, c] for c, n in enumerate(names)}, np.array(numbers)


def _numeric_row(text: str) -> bool:
    try:
        [float(f) for f in text.replace(",", " ").split()]
    except ValueError:
        return False
    return True


def _read_ecsv(path: Path) -> tuple[list[str], dict, np.ndarray, dict[str, str | None]]:
    from astropy.table import Table
    from astropy.units import UnitsWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnitsWarning)  # ppm: read as an unrecognised unit
            table = Table.read(path, format="ascii.ecsv")
    except Exception as e:  # astropy's errors vary by problem; the message is what matters
        raise SpectrumFileError(f"{path}: not a readable ECSV table "
                                f"({type(e).__name__}: {str(e).splitlines()[0]})") from None
    lines = path.read_text().splitlines()
    data_lines = [i + 1 for i, line in enumerate(lines)
                  if line.strip() and not line.lstrip().startswith("#")][1:]  # after the names
    names = list(table.colnames)
    columns, units = {}, {}
    for name in names:
        column = table[name]
        try:
            columns[name] = np.asarray(column, np.float64)
        except (TypeError, ValueError):
            raise SpectrumFileError(f"{path}: column {name!r} is not numeric") from None
        units[name] = None if column.unit is None else column.unit.to_string()
    return names, columns, np.array(data_lines[: len(table)]), units


def _find(path, names: list[str], role: str, required: bool) -> str | None:
    for raw in names:
        if _split_unit(raw)[0] in ROLES[role]:
            return raw
    if required:
        raise SpectrumFileError(f"{path}: no {role} column (looked for "
                                f"{', '.join(ROLES[role][:6])}, ...); the columns are "
                                f"{', '.join(names)}")
    return None


def _depth_scale(path, column: str, unit: str) -> float:
    key = unit.strip().lower()
    if key not in DEPTH_UNITS:
        raise SpectrumFileError(f"{path}: unknown unit {unit!r} of column {column!r} (depth "
                                f"units: ppm, percent, fraction)")
    return DEPTH_UNITS[key]


def _wavelength_scale(path, column: str, unit: str) -> float:
    key = unit.strip().lower()
    if key not in _WAVELENGTH_UM:
        raise SpectrumFileError(f"{path}: unknown unit {unit!r} of column {column!r} "
                                f"(wavelength units: um, nm, Angstrom, ...)")
    return _WAVELENGTH_UM[key]


def read_spectrum(path: str | Path, depth_unit: str | None = None,
                  wavelength_unit: str | None = None) -> ObservedSpectrum:
    """A transmission spectrum from a text or ECSV file (see the module's docstring); the
    units a file declares win over ``depth_unit`` / ``wavelength_unit``."""
    path = Path(path)
    if not path.is_file():
        raise SpectrumFileError(f"{path}: no such file")
    is_ecsv = path.suffix.lower() == ".ecsv" or path.read_text()[:7] == "# %ECSV"
    if is_ecsv:
        names, columns, line_of, units = _read_ecsv(path)
    else:
        names, columns, line_of = _read_text(path)
        units = {}
    unit_of = {n: units.get(n) if units.get(n) is not None else _split_unit(n)[1] for n in names}
    col = {role: _find(path, names, role, role == "depth") for role in ROLES}
    if col["wavelength"] is None and not (col["lower"] and col["upper"]):
        _find(path, names, "wavelength", True)  # raises, naming what it looked for
    if col["error"] is None and not (col["error_up"] and col["error_low"]):
        _find(path, names, "error", True)  # raises, naming what it looked for
    for name in names:
        bad = np.flatnonzero(~np.isfinite(columns[name]))
        if name in col.values() and bad.size:
            raise SpectrumFileError(f"{path} line {line_of[bad[0]]}: column {name!r} is "
                                    f"{columns[name][bad[0]]}")

    # the depth's unit: the file's, else the caller's, else detected
    depth = columns[col["depth"]]
    if unit_of[col["depth"]] is not None:
        scale, origin, unit = _depth_scale(path, col["depth"], unit_of[col["depth"]]), "file", \
            unit_of[col["depth"]]
    elif depth_unit is not None:
        scale, origin, unit = _depth_scale(path, "depth_unit=", depth_unit), "argument", depth_unit
    elif np.all(np.abs(depth) < 0.1):  # Rp / Rs < 0.32: any planet's depth as a fraction
        scale, origin, unit = 1.0, "detected", "fraction"
    elif np.all(depth > 10.0):
        scale, origin, unit = 1e-6, "detected", "ppm"
    else:
        raise SpectrumFileError(f"{path}: cannot tell the unit of column {col['depth']!r} "
                                f"(values {depth.min():g}..{depth.max():g}); declare it in the "
                                "file or with depth_unit= (fraction, ppm or percent)")
    unit = {"": "fraction", "frac": "fraction", "%": "percent", "pct": "percent"}.get(
        unit.strip().lower(), unit.strip().lower())

    def error_column(name: str, signed: bool = False) -> np.ndarray:
        values = np.abs(columns[name]) if signed else columns[name]  # lower errors: -30 or 30
        negative = np.flatnonzero(values <= 0)
        if negative.size:
            raise SpectrumFileError(f"{path} line {line_of[negative[0]]}: error "
                                    f"{values[negative[0]]:g} in column {name!r} is not "
                                    "positive")
        own = unit_of[name]
        return values * (scale if own is None else _depth_scale(path, name, own))

    sigma = (error_column(col["error"]) if col["error"] is not None else
             0.5 * (error_column(col["error_up"]) + error_column(col["error_low"], True)))

    # wavelengths, in um
    def wavelength_column(name: str) -> np.ndarray:
        values = columns[name]
        unit_here = unit_of[name] if unit_of[name] is not None else wavelength_unit
        if unit_here is not None:
            return values * _wavelength_scale(path, name, unit_here)
        if values.min() < 0.1 or values.max() > 100.0:
            raise SpectrumFileError(f"{path}: column {name!r} runs {values.min():g}.."
                                    f"{values.max():g}: nm or Angstrom? Declare the unit in "
                                    "the file or with wavelength_unit=")
        return values

    if col["wavelength"] is not None:
        wavelength = wavelength_column(col["wavelength"])
    else:  # bin edges only: the centres are their midpoints
        wavelength = 0.5 * (wavelength_column(col["lower"]) + wavelength_column(col["upper"]))
    step = np.flatnonzero(np.diff(wavelength) <= 0)
    if step.size:
        i = step[0]
        raise SpectrumFileError(f"{path} line {line_of[i + 1]}: wavelength "
                                f"{wavelength[i + 1]:g} um does not increase (line "
                                f"{line_of[i]}: {wavelength[i]:g} um)")
    if col["lower"] and col["upper"]:
        lower, upper = wavelength_column(col["lower"]), wavelength_column(col["upper"])
    elif col["width"] or col["half_width"]:
        half = (0.5 * wavelength_column(col["width"]) if col["width"]
                else wavelength_column(col["half_width"]))
        lower, upper = wavelength - half, wavelength + half
    else:
        mid = 0.5 * (wavelength[1:] + wavelength[:-1])
        first = wavelength[0] - (mid[0] - wavelength[0]) if len(mid) else wavelength[0] * 0.995
        last = wavelength[-1] + (wavelength[-1] - mid[-1]) if len(mid) else wavelength[0] * 1.005
        lower, upper = np.concatenate([[first], mid]), np.concatenate([mid, [last]])
    empty = np.flatnonzero(~((lower <= wavelength) & (wavelength <= upper) & (lower < upper)))
    if empty.size:
        i = empty[0]
        raise SpectrumFileError(f"{path} line {line_of[i]}: bin {lower[i]:g}..{upper[i]:g} um "
                                f"does not hold its wavelength {wavelength[i]:g} um")
    return ObservedSpectrum(str(path), wavelength, lower, upper, depth * scale, sigma, unit,
                            origin)


# ------------------------------------------------------------------------------ resampling
def resample(spectrum: ObservedSpectrum, grid, min_coverage: float = 0.5
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(depth, sigma, known)`` on ``grid`` (a SpectralGrid, or ``(centres_um, widths_um)``):
    inverse-variance weighted means of the overlapping data bins with their errors (see the
    module's docstring); bins less than ``min_coverage`` covered are NaN and not known."""
    if hasattr(grid, "wavelength_um"):
        centres, widths = grid.wavelength_um, grid.width_um
    else:
        centres, widths = (np.asarray(a, np.float64) for a in grid)
    lo, hi = centres - 0.5 * widths, centres + 0.5 * widths
    overlap = np.clip(np.minimum(spectrum.upper_um[:, None], hi[None, :])
                      - np.maximum(spectrum.lower_um[:, None], lo[None, :]), 0.0, None)
    share = overlap / (spectrum.upper_um - spectrum.lower_um)[:, None]  # of each data bin
    weight = share / spectrum.sigma[:, None] ** 2
    total = weight.sum(axis=0)
    coverage = overlap.sum(axis=0) / widths
    known = (coverage >= min_coverage) & (total > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        depth = (weight * spectrum.depth[:, None]).sum(axis=0) / total
        sigma = np.sqrt((weight**2 * spectrum.sigma[:, None] ** 2).sum(axis=0)) / total
    return np.where(known, depth, np.nan), np.where(known, sigma, np.nan), known
