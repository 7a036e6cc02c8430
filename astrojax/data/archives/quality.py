"""Table-level data quality: completeness, range and unit checks, duplicates, cross-match, outliers.

Pure functions on astropy tables (no network, no files). Two kinds of check:

- hard: a value outside its quantity's physical range, a column whose unit cannot be converted
  to the quantity's unit, a missing planet name, a second row for the same planet. Such rows go
  to the quarantine table with a ``reason``; nothing is dropped silently
  (``rows in == kept + quarantined``).
- soft: a column less complete than its threshold, a robust outlier (MAD z-score), the same
  planet from two archives disagreeing beyond the stated errors, a dimensioned column without a
  unit (its quantity's unit is assumed). These are flags in the :class:`QualityReport`.

Which quantity a column holds comes from ``QualityConfig.quantities`` (column name -> quantity
key, case-insensitive); the defaults know the planet schema of ``astrojax.data.generator``, the
NASA Exoplanet Archive (``pl_*``/``st_*``) and exoplanets.org (``TEFF``, ``R``, ...) names,
and ``ph`` for biology tables. Errors beside a column are found as ``<col>_err`` (symmetric),
``<col>err1``/``<col>err2`` (NASA: upper, lower) or ``U<col>`` (exoplanets.org).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import astropy.units as u
import numpy as np
from astropy.table import Column, MaskedColumn, Table

# Earth's insolation, as astroquery's NASA archive module defines it (L_sun / 4 pi au^2).
S_EARTH = u.def_unit("Searth", u.L_sun / (4 * np.pi * u.au**2),
                     doc="Stellar flux received by Earth")

# Unit strings archives write that astropy does not parse (after astroquery's UNIT_MAPPER).
UNIT_ALIASES: dict[str, u.UnitBase] = {
    "earth radius": u.R_earth, "r_earth": u.R_earth, "rearth": u.R_earth,
    "jupiter radius": u.R_jup, "rjupiter": u.R_jup, "rjup": u.R_jup,
    "earth mass": u.M_earth, "mearth": u.M_earth, "m_e": u.M_earth,
    "jupiter mass": u.M_jup, "mjupiter": u.M_jup, "m_j": u.M_jup, "mjup": u.M_jup,
    "solar radius": u.R_sun, "solarradius": u.R_sun, "r_sun": u.R_sun, "rstar": u.R_sun,
    "solar mass": u.M_sun, "msun": u.M_sun,
    "earth flux": S_EARTH, "searth": S_EARTH, "fearth": S_EARTH,
    "day": u.day, "days": u.day, "kelvin": u.K, "degrees": u.deg, "hours": u.hour,
    "log(solar)": u.dex(u.L_sun), "log10(solar)": u.dex(u.L_sun), "log(lsun)": u.dex(u.L_sun),
    "loglsun": u.dex(u.L_sun),
}


def parse_unit(unit: Any) -> u.UnitBase | None:
    """An astropy unit from a unit, a string (archive aliases included) or None; an unknown
    string gives an ``UnrecognizedUnit`` (which converts to nothing)."""
    if unit is None or (isinstance(unit, str) and unit.strip() in ("", "--")):
        return None
    if isinstance(unit, u.UnrecognizedUnit):
        unit = str(unit)
    if isinstance(unit, str):
        alias = UNIT_ALIASES.get(unit.strip().lower())
        if alias is not None:
            return alias
        return u.Unit(unit, parse_strict="silent")
    return unit


@dataclasses.dataclass(frozen=True)
class QuantityRange:
    """The physically allowed values of a quantity, in ``unit`` ("" for dimensionless)."""

    low: float
    high: float
    unit: str = ""
    low_inclusive: bool = True
    high_inclusive: bool = True

    def astropy_unit(self) -> u.UnitBase:
        return parse_unit(self.unit) or u.dimensionless_unscaled

    def text(self) -> str:
        lo, hi = "[" if self.low_inclusive else "(", "]" if self.high_inclusive else ")"
        return f"{lo}{self.low:g}, {self.high:g}{hi}{' ' + self.unit if self.unit else ''}"

    def allows(self, values: np.ndarray) -> np.ndarray:
        low = values >= self.low if self.low_inclusive else values > self.low
        high = values <= self.high if self.high_inclusive else values < self.high
        return low & high


DEFAULT_RANGES: dict[str, QuantityRange] = {
    "planet_temperature": QuantityRange(0.0, 5000.0, "K", low_inclusive=False),
    "star_temperature": QuantityRange(2000.0, 50000.0, "K"),
    "planet_radius": QuantityRange(0.0, 50.0, "earthRad", low_inclusive=False),
    "planet_mass": QuantityRange(0.0, 80.0, "jupiterMass", low_inclusive=False),
    "star_radius": QuantityRange(0.0, 2000.0, "solRad", low_inclusive=False),
    "star_mass": QuantityRange(0.0, 150.0, "solMass", low_inclusive=False),
    "star_luminosity": QuantityRange(0.0, 1e7, "solLum", low_inclusive=False),
    "semi_major_axis": QuantityRange(0.0, 1e5, "AU", low_inclusive=False),
    "orbital_period": QuantityRange(0.0, 1e9, "d", low_inclusive=False),
    "eccentricity": QuantityRange(0.0, 1.0, "", high_inclusive=False),
    "insolation": QuantityRange(0.0, 1e6, "Searth", low_inclusive=False),
    "surface_gravity": QuantityRange(0.0, 1e5, "m / s2", low_inclusive=False),
    "pressure": QuantityRange(0.0, 1e5, "bar"),
    "fraction": QuantityRange(0.0, 1.0, ""),
    "ph": QuantityRange(0.0, 14.0, ""),
}

_SCHEMA_QUANTITIES = {
    "star_teff_k": "star_temperature", "star_radius_rsun": "star_radius",
    "star_mass_msun": "star_mass", "star_luminosity_lsun": "star_luminosity",
    "semi_major_axis_au": "semi_major_axis", "orbital_period_days": "orbital_period",
    "eccentricity": "eccentricity", "planet_radius_rearth": "planet_radius",
    "planet_mass_mearth": "planet_mass", "surface_gravity_ms2": "surface_gravity",
    "insolation_searth": "insolation", "water_fraction": "fraction",
    "relative_humidity": "fraction", "bond_albedo": "fraction",
    "equilibrium_temperature_k": "planet_temperature", "surface_pressure_bar": "pressure",
    "surface_temperature_k": "planet_temperature",
    **{f"x_{gas}": "fraction" for gas in ("n2", "o2", "co2", "ch4", "h2o", "h2")},
}
_NASA_QUANTITIES = {
    "st_teff": "star_temperature", "st_rad": "star_radius", "st_mass": "star_mass",
    "pl_orbsmax": "semi_major_axis", "pl_orbper": "orbital_period",
    "pl_orbeccen": "eccentricity", "pl_rade": "planet_radius", "pl_radj": "planet_radius",
    "pl_bmasse": "planet_mass", "pl_bmassj": "planet_mass", "pl_insol": "insolation",
    "pl_eqt": "planet_temperature",
}
_EXOPLANETS_ORG_QUANTITIES = {
    "teff": "star_temperature", "rstar": "star_radius", "mstar": "star_mass",
    "a": "semi_major_axis", "per": "orbital_period", "ecc": "eccentricity",
    "r": "planet_radius", "mass": "planet_mass", "msini": "planet_mass",
}
DEFAULT_QUANTITIES: dict[str, str] = {
    **_SCHEMA_QUANTITIES, **_NASA_QUANTITIES, **_EXOPLANETS_ORG_QUANTITIES,
    "ph": "ph", "optimum_ph": "ph", "growth_ph": "ph",
}
# Quantities spanning decades: outliers are judged on log10 of the (positive) values.
LOG_QUANTITIES = frozenset({"planet_radius", "planet_mass", "star_luminosity", "semi_major_axis",
                            "orbital_period", "insolation", "star_radius", "star_mass",
                            "surface_gravity", "pressure"})


@dataclasses.dataclass
class QualityConfig:
    """Thresholds of every check (all configurable).

    ``min_completeness`` per column (fraction of rows with a value), else
    ``default_min_completeness``; ``ranges`` per quantity key and ``quantities`` (column ->
    quantity key) for the range and unit checks; ``crossmatch_sigma`` is k in
    ``|a - b| > k sqrt(ea^2 + eb^2)``, ``crossmatch_rel_tol`` the relative tolerance used when
    either side states no error; ``outlier_z`` the robust z-score (0.6745 |x - median| / MAD)
    above which a value is flagged (3.5 after Iglewicz & Hoaglin), judged on at least
    ``outlier_min_rows`` values.
    """

    min_completeness: dict[str, float] = dataclasses.field(default_factory=dict)
    default_min_completeness: float = 0.5
    ranges: dict[str, QuantityRange] = dataclasses.field(
        default_factory=lambda: dict(DEFAULT_RANGES))
    quantities: dict[str, str] = dataclasses.field(
        default_factory=lambda: dict(DEFAULT_QUANTITIES))
    crossmatch_sigma: float = 3.0
    crossmatch_rel_tol: float = 0.1
    outlier_z: float = 3.5
    outlier_min_rows: int = 8
    quarantine_duplicates: bool = True

    def __post_init__(self) -> None:
        unknown = sorted(set(self.quantities.values()) - set(self.ranges))
        if unknown:
            raise ValueError(f"QualityConfig.quantities name quantities without a range: "
                             f"{unknown}; known: {sorted(self.ranges)}")
        for key, value in {"default_min_completeness": self.default_min_completeness,
                           **{f"min_completeness.{k}": v
                              for k, v in self.min_completeness.items()}}.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"QualityConfig.{key}: must be in [0, 1], got {value!r}")
        for key in ("crossmatch_sigma", "crossmatch_rel_tol", "outlier_z"):
            if not getattr(self, key) > 0:
                raise ValueError(f"QualityConfig.{key}: must be > 0, got {getattr(self, key)!r}")

    def quantity_of(self, column: str) -> str | None:
        lowered = {k.lower(): v for k, v in self.quantities.items()}
        return lowered.get(column.lower())

    def threshold(self, column: str) -> float:
        return self.min_completeness.get(column, self.default_min_completeness)


def normalize_name(name: Any) -> str:
    """A planet name for matching: lower case, without spaces, hyphens and underscores."""
    return re.sub(r"[\s\-_]+", "", str(name)).lower()


def missing_mask(column: Column) -> np.ndarray:
    """True where a value is absent: masked, NaN, or an empty string."""
    mask = np.zeros(len(column), dtype=bool)
    if isinstance(column, MaskedColumn):
        mask |= np.asarray(column.mask, dtype=bool)
    data = np.asarray(column)
    if data.dtype.kind == "f":
        mask |= ~np.isfinite(data)
    elif data.dtype.kind in "US":
        mask |= np.char.strip(data.astype(str)) == ""
    elif data.dtype.kind == "O":
        mask |= np.array([v is None or str(v).strip() == "" for v in data], dtype=bool)
    return mask


def float_values(column: Column) -> np.ndarray:
    """The column as float64 with NaN where a value is missing or not a number."""
    data = column.filled(np.nan) if isinstance(column, MaskedColumn) and column.dtype.kind == "f" \
        else np.asarray(column)
    try:
        values = np.asarray(data, dtype=np.float64).copy()
    except (TypeError, ValueError):
        values = np.array([_to_float(v) for v in data], dtype=np.float64)
    values[missing_mask(column)] = np.nan
    return values


def _to_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def error_of(table: Table, column: str) -> np.ndarray | None:
    """The 1-sigma error stated beside ``column`` (symmetric; the mean of |upper| and |lower|
    when asymmetric), in the column's unit; None when the table states none."""
    names = {n.lower(): n for n in table.colnames}
    pairs = [(f"{column}_err",), (f"{column}err1", f"{column}err2"), (f"u{column}",)]
    for pair in pairs:
        found = [names.get(p.lower()) for p in pair]
        if all(found):
            errors = [np.abs(_in_unit(table[f], table[column].unit)) for f in found]
            return errors[0] if len(errors) == 1 else (errors[0] + errors[1]) / 2.0
    return None


def _scale(unit: Any, target: Any) -> float:
    src, dst = parse_unit(unit), parse_unit(target)
    if src is None or dst is None or src == dst:
        return 1.0
    try:
        return float(src.to(dst))
    except (u.UnitsError, ValueError, TypeError):
        return 1.0


def _in_unit(column: Column, unit: Any) -> np.ndarray:
    values = float_values(column)
    src, dst = parse_unit(column.unit), parse_unit(unit)
    if src is not None and dst is not None and src != dst:
        try:
            return (values * src).to_value(dst)
        except u.UnitsError:
            return values
    return values


@dataclasses.dataclass(frozen=True)
class Flag:
    """A soft finding: ``kind`` is completeness, outlier, unit_assumed or crossmatch."""

    kind: str
    table: str
    column: str
    detail: str
    row: int | None = None
    name: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Completeness:
    table: str
    column: str
    present: int
    total: int
    threshold: float

    @property
    def fraction(self) -> float:
        return self.present / self.total if self.total else 0.0

    @property
    def ok(self) -> bool:
        return self.fraction >= self.threshold

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "fraction": self.fraction, "ok": self.ok}


@dataclasses.dataclass
class TableCheck:
    """One table's outcome: rows kept, rows quarantined (``source_row``, ``reason``), flags."""

    table: str
    rows_in: int
    kept: Table
    quarantine: Table
    completeness: list[Completeness]
    flags: list[Flag]

    def summary(self) -> dict:
        return {"table": self.table, "rows_in": self.rows_in, "kept": len(self.kept),
                "quarantined": len(self.quarantine)}


def _unit_problem(column: Column, quantity: QuantityRange) -> str | None:
    unit = parse_unit(column.unit)
    want = quantity.astropy_unit()
    if unit is None:
        return None
    try:
        unit.to(want)
    except (u.UnitsError, ValueError, TypeError):
        return f"{column.name} has unit {str(column.unit)!r}, not convertible to " \
               f"{quantity.unit or 'dimensionless'}"
    return None


def check_table(table: Table, config: QualityConfig | None = None, *, table_name: str = "table",
                name_column: str | None = "name",
                columns: Sequence[str] | None = None) -> TableCheck:
    """Runs the table-level checks; ``columns`` limits the completeness and outlier checks
    (default: every column but the name and error columns). Rows keep their order; a
    ``source_row`` column (the input row index) is added to kept and quarantined rows alike."""
    config = config or QualityConfig()
    n = len(table)
    reasons: list[list[str]] = [[] for _ in range(n)]
    flags: list[Flag] = []
    if name_column is not None:
        if name_column not in table.colnames:
            raise ValueError(f"{table_name}: no name column {name_column!r} among "
                             f"{table.colnames}")
        for i in np.flatnonzero(missing_mask(table[name_column])):
            reasons[i].append("missing name")
    for col in table.colnames:
        key = config.quantity_of(col)
        if key is None:
            continue
        quantity = config.ranges[key]
        values = float_values(table[col])
        present = np.isfinite(values)
        problem = _unit_problem(table[col], quantity)
        if problem is not None:
            for i in np.flatnonzero(present):
                reasons[i].append(f"unit: {problem}")
            continue
        if parse_unit(table[col].unit) is None and quantity.unit:
            flags.append(Flag("unit_assumed", table_name, col,
                              f"no unit given; assumed {quantity.unit}"))
        scaled = _in_unit(table[col], quantity.astropy_unit()) if quantity.unit else values
        bad = present & ~quantity.allows(np.where(present, scaled, 0.0))
        for i in np.flatnonzero(bad):
            reasons[i].append(f"range: {col}={scaled[i]:g} outside {quantity.text()}")
    if name_column is not None and config.quarantine_duplicates:
        first: dict[str, int] = {}
        for i, name in enumerate(table[name_column]):
            if reasons[i]:
                continue
            key = normalize_name(name)
            if key in first:
                reasons[i].append(f"duplicate: same planet as row {first[key]} ({name})")
            else:
                first[key] = i
    rejected = np.array([bool(r) for r in reasons], dtype=bool)
    indexed = table.copy()
    indexed["source_row"] = np.arange(n, dtype=np.int64)
    kept, quarantine = indexed[~rejected], indexed[rejected]
    quarantine["reason"] = Column(["; ".join(r) for r in reasons if r], dtype=str) \
        if rejected.any() else Column(np.array([], dtype=str))
    checked = [c for c in (columns if columns is not None else table.colnames)
               if c in table.colnames and c not in (name_column, "source_row")
               and not _is_error_column(table, c)]
    completeness = [Completeness(table_name, c, int(n - missing_mask(table[c]).sum()), n,
                                 config.threshold(c)) for c in checked]
    for entry in completeness:
        if not entry.ok:
            flags.append(Flag("completeness", table_name, entry.column,
                              f"{entry.fraction:.0%} complete, below {entry.threshold:.0%}"))
    flags.extend(outliers(kept, config, table_name=table_name, name_column=name_column,
                          columns=checked))
    return TableCheck(table_name, n, kept, quarantine, completeness, flags)


def _is_error_column(table: Table, column: str) -> bool:
    lowered = column.lower()
    others = {c.lower() for c in table.colnames}
    return (lowered.endswith("_err") and lowered[:-4] in others
            or lowered[-4:] in ("err1", "err2") and lowered[:-4] in others
            or lowered.startswith("u") and lowered[1:] in others)


def robust_z(values: np.ndarray) -> np.ndarray:
    """0.6745 (x - median) / MAD over the finite values; NaN where undefined (MAD = 0)."""
    finite = np.isfinite(values)
    z = np.full(values.shape, np.nan)
    if not finite.any():
        return z
    median = np.median(values[finite])
    mad = np.median(np.abs(values[finite] - median))
    if mad > 0:
        z[finite] = 0.6745 * (values[finite] - median) / mad
    return z


def outliers(table: Table, config: QualityConfig | None = None, *, table_name: str = "table",
             name_column: str | None = "name",
             columns: Sequence[str] | None = None) -> list[Flag]:
    """Flags values whose robust z-score exceeds ``config.outlier_z`` (log10 for quantities
    spanning decades); columns with fewer than ``outlier_min_rows`` values are not judged."""
    config = config or QualityConfig()
    flags = []
    for col in columns if columns is not None else table.colnames:
        if col == name_column or col not in table.colnames or table[col].dtype.kind not in "fiu":
            continue
        values = float_values(table[col])
        if np.isfinite(values).sum() < config.outlier_min_rows:
            continue
        log = config.quantity_of(col) in LOG_QUANTITIES
        if log:
            values = np.where(values > 0, np.log10(np.where(values > 0, values, 1.0)), np.nan)
        z = robust_z(values)
        for i in np.flatnonzero(np.abs(np.nan_to_num(z)) > config.outlier_z):
            name = str(table[name_column][i]) if name_column in table.colnames else ""
            flags.append(Flag("outlier", table_name, col,
                              f"value {float_values(table[col])[i]:g} has robust z "
                              f"{z[i]:+.1f}{' (log10)' if log else ''}", row=i, name=name))
    return flags


@dataclasses.dataclass(frozen=True)
class Disagreement:
    """The same planet, two archives, one quantity, values apart beyond the test's bound."""

    name: str
    column: str
    table_a: str
    value_a: float
    error_a: float | None
    table_b: str
    value_b: float
    error_b: float | None
    test: str  # "errors": |a-b| > k sqrt(ea^2+eb^2); "relative": |a-b| > tol max(|a|, |b|)
    score: float  # |a-b| / sqrt(ea^2+eb^2), or |a-b| / max(|a|, |b|)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def cross_match(tables: Mapping[str, Table], config: QualityConfig | None = None, *,
                name_column: str = "name",
                columns: Sequence[str] | None = None) -> list[Disagreement]:
    """Compares every pair of tables on the planets they share (by :func:`normalize_name`) and
    the columns they share (in the first table's unit); returns the disagreements."""
    config = config or QualityConfig()
    found = []
    names = list(tables)
    for ia, name_a in enumerate(names):
        for name_b in names[ia + 1:]:
            a, b = tables[name_a], tables[name_b]
            index_b = {normalize_name(v): j for j, v in enumerate(b[name_column])}
            shared = [c for c in (columns or a.colnames) if c in a.colnames and c in b.colnames
                      and c != name_column and a[c].dtype.kind in "fiu"
                      and b[c].dtype.kind in "fiu" and not _is_error_column(a, c)]
            for col in shared:
                va, vb = float_values(a[col]), _in_unit(b[col], a[col].unit)
                ea, eb = error_of(a, col), error_of(b, col)
                if eb is not None:
                    eb = eb * _scale(b[col].unit, a[col].unit)
                for i, planet in enumerate(a[name_column]):
                    j = index_b.get(normalize_name(planet))
                    if j is None or not (np.isfinite(va[i]) and np.isfinite(vb[j])):
                        continue
                    diff = abs(va[i] - vb[j])
                    err_a = float(ea[i]) if ea is not None and np.isfinite(ea[i]) else None
                    err_b = float(eb[j]) if eb is not None and np.isfinite(eb[j]) else None
                    if err_a is not None and err_b is not None and (err_a or err_b):
                        score, test = diff / math.hypot(err_a, err_b), "errors"
                        bad = score > config.crossmatch_sigma
                    else:
                        scale = max(abs(va[i]), abs(vb[j]))
                        score, test = (diff / scale if scale else 0.0), "relative"
                        bad = score > config.crossmatch_rel_tol
                    if bad:
                        found.append(Disagreement(str(planet), col, name_a, float(va[i]), err_a,
                                                  name_b, float(vb[j]), err_b, test, score))
    return found


def _reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0].strip()


@dataclasses.dataclass
class QualityReport:
    """One build's quality outcome: per-table counts and completeness, quarantine reasons,
    flags, cross-match disagreements, and the thresholds used."""

    tables: list[dict]
    completeness: list[Completeness]
    rejected_by_reason: dict[str, int]
    flags: list[Flag]
    disagreements: list[Disagreement]
    config: QualityConfig
    summary: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_checks(cls, checks: Sequence[TableCheck], disagreements: Sequence[Disagreement],
                    config: QualityConfig, summary: dict | None = None) -> QualityReport:
        reasons: Counter[str] = Counter()
        for check in checks:
            for reason in check.quarantine["reason"] if len(check.quarantine) else []:
                for kind in {_reason_kind(part) for part in str(reason).split("; ")}:
                    reasons[kind] += 1  # rows per kind of reason
        return cls([c.summary() for c in checks],
                   [e for c in checks for e in c.completeness], dict(reasons),
                   [f for c in checks for f in c.flags], list(disagreements), config,
                   dict(summary or {}))

    def to_dict(self) -> dict:
        cfg = dataclasses.asdict(self.config)
        return {"summary": self.summary, "tables": self.tables,
                "completeness": [c.to_dict() for c in self.completeness],
                "rejected_by_reason": self.rejected_by_reason,
                "flags": [f.to_dict() for f in self.flags],
                "disagreements": [d.to_dict() for d in self.disagreements],
                "config": cfg}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str) + "\n"

    def to_markdown(self) -> str:
        lines = ["# Data quality report", ""]
        if self.summary:
            lines += [f"- **{k}**: {v}" for k, v in self.summary.items()] + [""]
        lines += ["## Tables", "", "| table | rows in | kept | quarantined |", "|---|---|---|---|"]
        lines += [f"| {t['table']} | {t['rows_in']} | {t['kept']} | {t['quarantined']} |"
                  for t in self.tables]
        lines += ["", "## Completeness", "", "| table | column | complete | threshold | ok |",
                  "|---|---|---|---|---|"]
        lines += [f"| {c.table} | {c.column} | {c.fraction:.0%} ({c.present}/{c.total}) | "
                  f"{c.threshold:.0%} | {'yes' if c.ok else '**no**'} |"
                  for c in self.completeness]
        lines += ["", "## Quarantined rows by reason", ""]
        lines += ([f"- {k}: {v}" for k, v in sorted(self.rejected_by_reason.items())]
                  or ["- none"])
        lines += ["", "## Cross-match disagreements", ""]
        if self.disagreements:
            lines += ["| planet | column | value A | value B | test | score |",
                      "|---|---|---|---|---|---|"]
            lines += [f"| {d.name} | {d.column} | {d.table_a}: {_pm(d.value_a, d.error_a)} | "
                      f"{d.table_b}: {_pm(d.value_b, d.error_b)} | {d.test} | {d.score:.2f} |"
                      for d in self.disagreements]
        else:
            lines.append("- none")
        soft = [f for f in self.flags if f.kind != "completeness"]
        lines += ["", "## Flags (kept, not rejected)", ""]
        lines += [f"- {f.kind} in {f.table}.{f.column}"
                  f"{f' row {f.row} ({f.name})' if f.row is not None else ''}: {f.detail}"
                  for f in soft] or ["- none"]
        return "\n".join(lines) + "\n"


def _pm(value: float, error: float | None) -> str:
    return f"{value:.4g}" + (f" ± {error:.2g}" if error is not None else "")
