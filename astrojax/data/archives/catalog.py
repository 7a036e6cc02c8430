"""The planet catalogue: archive fetches joined into the synthetic population's schema.

``build_catalog(dirs, out_dir)`` reads fetch folders (``FetchResult.save`` output), maps the
planet tables of ``nasa`` (``pscomppars``/``ps`` columns) and ``exoplanets_org`` to the columns
of :class:`astrojax.data.generator.PlanetPopulation` in its units (astropy conversions: Jupiter
radii/masses to Earth's, log10 L_sun to L_sun, ...), runs
:mod:`astrojax.data.archives.quality`, joins one row per planet and derives what the archives
leave out with the generator's own physics.
It writes into ``out_dir``:

- ``catalog.ecsv``: one row per planet, the schema's columns in schema order, then
  ``<bool>_known`` masks, ``host_name``, ``source`` (archives that list the planet, joined by
  ``+``), ``derived`` (columns computed here rather than measured), ``flags`` (soft findings)
  and ``<col>_err`` (1-sigma, symmetric) for measured columns;
- ``quarantine.ecsv``: every rejected row, mapped to schema columns, with ``source``, ``table``,
  ``source_row`` (its row in that fetched table file) and ``reason``;
- ``quality_report.json`` and ``quality_report.md``.

Missing values (the archives know nothing of atmospheres, climate or life): float columns are
NaN; integer columns (``star_type``, ``biosphere``, ``climate_regime``) are -1; boolean
columns (``liquid_water``, ``habitable``, ``biosignature``) are False with a ``<col>_known``
column that is False. :func:`load_catalog` returns the arrays under ``PlanetPopulation``'s
names plus a ``known`` mask per column, so a model trains on either and masks what is unknown.

Join and derivation rules: values come from the first table that has one, in the order nasa
``pscomppars``, nasa ``ps``, exoplanets_org (``ps`` rows with ``default_flag = 1`` first, later
rows of a planet are quarantined as duplicates). Then, where missing: L = R^2 (Teff/5772)^4,
a from Kepler's third law (P, M_star) and P from (a, M_star), S = L / a^2, T_eq from S with a
Bond albedo of 0.3 (``bond_albedo`` itself stays NaN: unknown), g = 9.81 M / R^2 (always
computed), star type from Teff (M < 3900 K <= K < 5300 K <= G < 6000 K <= F < 7500 K, else -1).
Planet mass is not estimated from radius. ``text_variant`` is the planet's index.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import Column, MaskedColumn, Table, vstack

from astrojax.data import generator
from astrojax.data.archives.quality import (
    S_EARTH,
    QualityConfig,
    QualityReport,
    TableCheck,
    check_table,
    cross_match,
    error_of,
    float_values,
    missing_mask,
    normalize_name,
    parse_unit,
)
from astrojax.data.archives.result import FetchResult
from astrojax.data.generator import PlanetPopulation
from astrojax.data.generator.physics import (  # noqa: F401  (STAR_TYPE_UPPER_TEFF_K: re-exported)
    ASSUMED_BOND_ALBEDO,
    STAR_TYPE_UPPER_TEFF_K,
    star_type_from_teff,
)

CATALOG_FILE, QUARANTINE_FILE = "catalog.ecsv", "quarantine.ecsv"
REPORT_JSON, REPORT_MD = "quality_report.json", "quality_report.md"

# Schema column -> its unit (absent: dimensionless or not a measured quantity).
SCHEMA_UNITS: dict[str, u.UnitBase] = {
    "star_teff_k": u.K, "star_radius_rsun": u.R_sun, "star_mass_msun": u.M_sun,
    "star_luminosity_lsun": u.L_sun, "semi_major_axis_au": u.au,
    "orbital_period_days": u.day, "planet_radius_rearth": u.R_earth,
    "planet_mass_mearth": u.M_earth, "surface_gravity_ms2": u.m / u.s**2,
    "insolation_searth": S_EARTH, "equilibrium_temperature_k": u.K,
    "surface_pressure_bar": u.bar, "surface_temperature_k": u.K,
}


@dataclasses.dataclass(frozen=True)
class ArchiveMap:
    """How one archive's planet table maps to the schema: ``columns`` gives, per schema
    column, the archive columns to take it from (the first with a value, row by row) and the
    unit assumed when the table carries none."""

    name_column: str
    host_column: str
    columns: dict[str, tuple[tuple[str, ...], str]]
    table_order: tuple[str, ...] = ()


ARCHIVES: dict[str, ArchiveMap] = {
    "nasa": ArchiveMap("pl_name", "hostname", {
        "star_teff_k": (("st_teff",), "K"), "star_radius_rsun": (("st_rad",), "solRad"),
        "star_mass_msun": (("st_mass",), "solMass"),
        "star_luminosity_lsun": (("st_lum",), "dex(solLum)"),
        "semi_major_axis_au": (("pl_orbsmax",), "AU"),
        "orbital_period_days": (("pl_orbper",), "d"),
        "eccentricity": (("pl_orbeccen",), ""),
        "planet_radius_rearth": (("pl_rade",), "earthRad"),
        "planet_mass_mearth": (("pl_bmasse",), "earthMass"),
        "insolation_searth": (("pl_insol",), "Searth"),
        "equilibrium_temperature_k": (("pl_eqt",), "K"),
    }, table_order=("pscomppars", "ps")),
    "exoplanets_org": ArchiveMap("NAME", "STAR", {
        "star_teff_k": (("TEFF",), "K"), "star_radius_rsun": (("RSTAR",), "solRad"),
        "star_mass_msun": (("MSTAR",), "solMass"), "semi_major_axis_au": (("A",), "AU"),
        "orbital_period_days": (("PER",), "d"), "eccentricity": (("ECC",), ""),
        "planet_radius_rearth": (("R",), "jupiterRad"),
        "planet_mass_mearth": (("MASS", "MSINI"), "jupiterMass"),
    }),
}
MEASURED = tuple(dict.fromkeys(c for m in ARCHIVES.values() for c in m.columns))
DERIVABLE = ("star_luminosity_lsun", "semi_major_axis_au", "orbital_period_days",
             "insolation_searth", "equilibrium_temperature_k", "surface_gravity_ms2")


class CatalogError(ValueError):
    """A catalogue cannot be built from the folders given (the message names them)."""


def _column(table: Table, name: str) -> Column | None:
    for col in table.colnames:
        if col.lower() == name.lower():
            return table[col]
    return None


def _convert(values: np.ndarray, errors: np.ndarray | None, unit: u.UnitBase | None,
             target: u.UnitBase | None) -> tuple[np.ndarray, np.ndarray | None, object]:
    """Values (and errors) in ``target``; the unit left on the column is ``target``, or the
    source unit when it does not convert (the quality unit check then quarantines the rows)."""
    if target is None:
        return values, errors, unit
    if unit is None:
        unit = target
    if isinstance(unit, u.FunctionUnitBase) or "dex" in str(unit):  # log10 luminosity
        try:
            linear = (values * unit).physical.to_value(target)
        except (u.UnitsError, AttributeError, TypeError, ValueError):
            return values, errors, unit
        return linear, None if errors is None else linear * np.log(10.0) * errors, target
    try:
        scale = unit.to(target)
    except (u.UnitsError, ValueError, TypeError):
        return values, errors, unit
    if abs(scale - 1.0) < 1e-5:  # the same unit, its scale rounded when ECSV wrote it
        scale = 1.0
    return values * scale, None if errors is None else errors * scale, target


def map_table(source: str, table: Table) -> Table:
    """An archive planet table as schema columns in schema units, row for row, with ``name``,
    ``host_name`` and ``<col>_err``."""
    spec = ARCHIVES[source]
    names = _column(table, spec.name_column)
    if names is None:
        raise CatalogError(f"{source}: planet table has no {spec.name_column!r} column")
    missing = missing_mask(names)
    out = Table()
    out["name"] = Column([("" if m else str(v)).strip() for v, m in zip(names, missing,
                                                                        strict=True)], dtype=str)
    host = _column(table, spec.host_column)
    out["host_name"] = Column([str(v) for v in host] if host is not None else [""] * len(table),
                              dtype=str)
    for target, (candidates, assumed) in spec.columns.items():
        values = np.full(len(table), np.nan)
        errors = np.full(len(table), np.nan)
        unit_out = SCHEMA_UNITS.get(target)
        found = False
        for raw in candidates:
            col = _column(table, raw)
            if col is None:
                continue
            found = True
            raw_errors = error_of(table, col.name)
            unit = parse_unit(col.unit) or parse_unit(assumed)
            vals, errs, unit_out = _convert(float_values(col), raw_errors, unit,
                                            SCHEMA_UNITS.get(target))
            take = ~np.isfinite(values) & np.isfinite(vals)
            values[take] = vals[take]
            if errs is not None:
                errors[take] = errs[take]
        if found:
            out[target] = Column(values, unit=unit_out)
            out[f"{target}_err"] = Column(errors, unit=unit_out)
    return out


def _planet_tables(result: FetchResult) -> tuple[list[tuple[str, Table]], list[str]]:
    spec = ARCHIVES.get(result.source)
    if spec is None:
        return [], [f"{result.source}: no planet tables (the catalogue joins "
                    f"{', '.join(ARCHIVES)})"]
    chosen, skipped = [], []
    order = {name: i for i, name in enumerate(spec.table_order)}
    for name in sorted(result.tables, key=lambda n: (order.get(n, len(order)), n)):
        table = result.tables[name]
        if _column(table, spec.name_column) is None:
            skipped.append(f"{result.source}/{name}: no {spec.name_column!r} column")
            continue
        flag = _column(table, "default_flag")
        if flag is not None:  # the ps table: the archive's default solution of a planet first
            table = table[np.argsort(-np.nan_to_num(float_values(flag)), kind="stable")]
        chosen.append((f"{result.source}/{name}", table))
    return chosen, skipped


def _merge(tables: list[tuple[str, Table]]) -> Table:
    keys: dict[str, int] = {}
    rows: list[dict] = []
    for label, table in tables:
        for i in range(len(table)):
            key = normalize_name(table["name"][i])
            if key not in keys:
                keys[key] = len(rows)
                rows.append({"name": str(table["name"][i]), "host_name": "", "source": []})
            row = rows[keys[key]]
            source = label.split("/")[0]
            if source not in row["source"]:
                row["source"].append(source)
            if not row["host_name"]:
                row["host_name"] = str(table["host_name"][i])
            for col in MEASURED:
                if col in table.colnames and not np.isfinite(row.get(col, np.nan)):
                    value = float(table[col][i])
                    if np.isfinite(value):
                        row[col], row[f"{col}_err"] = value, float(table[f"{col}_err"][i])
    merged = Table()
    merged["name"] = Column([r["name"] for r in rows], dtype=str)
    merged["host_name"] = Column([r["host_name"] for r in rows], dtype=str)
    merged["source"] = Column(["+".join(r["source"]) for r in rows], dtype=str)
    for col in MEASURED:
        merged[col] = Column([r.get(col, np.nan) for r in rows], dtype=np.float64,
                             unit=SCHEMA_UNITS.get(col))
    for col in MEASURED:
        merged[f"{col}_err"] = Column([r.get(f"{col}_err", np.nan) for r in rows],
                                      dtype=np.float64, unit=SCHEMA_UNITS.get(col))
    return merged


def derive_missing(merged: Table) -> None:
    """Fills, in place, what the archives left out of ``merged`` (MEASURED columns, NaN where
    unpublished) by the module docstring's rules, and adds ``derived``: per row the columns
    computed here. Surface gravity is always computed."""
    derived: list[list[str]] = [[] for _ in range(len(merged))]

    def fill(col: str, values: np.ndarray) -> None:
        current = np.asarray(merged[col], dtype=np.float64)
        take = ~np.isfinite(current) & np.isfinite(values)
        current[take] = values[take]
        merged[col] = Column(current, unit=SCHEMA_UNITS.get(col))
        for i in np.flatnonzero(take):
            derived[i].append(col)

    def v(col: str) -> np.ndarray:
        return np.asarray(merged[col], dtype=np.float64)

    with np.errstate(all="ignore"):
        fill("star_luminosity_lsun",
             generator.stellar_luminosity(v("star_radius_rsun"), v("star_teff_k")))
        fill("semi_major_axis_au",
             (v("orbital_period_days") / 365.25) ** (2.0 / 3.0) * v("star_mass_msun") ** (1 / 3))
        fill("orbital_period_days",
             generator.orbital_period_days(v("semi_major_axis_au"), v("star_mass_msun")))
        fill("insolation_searth",
             generator.insolation(v("star_luminosity_lsun"), v("semi_major_axis_au")))
        fill("equilibrium_temperature_k",
             generator.equilibrium_temperature(v("insolation_searth"), ASSUMED_BOND_ALBEDO))
        merged["surface_gravity_ms2"] = Column(np.full(len(merged), np.nan), unit=u.m / u.s**2)
        fill("surface_gravity_ms2",
             generator.surface_gravity(v("planet_mass_mearth"), v("planet_radius_rearth")))
    merged["derived"] = Column([",".join(d) for d in derived], dtype=str)


def _schema_table(merged: Table) -> Table:
    n = len(merged)
    out = Table()
    for name in PlanetPopulation.column_names():
        if name == "planet_index":
            out[name] = np.arange(n, dtype=np.int64)
        elif name == "text_variant":
            out[name] = np.arange(n, dtype=np.int64)
        elif name == "name":
            out[name] = merged["name"]
        elif name == "star_type":
            out[name] = star_type_from_teff(merged["star_teff_k"]).astype(np.int64)
        elif name in ("biosphere", "climate_regime"):
            out[name] = np.full(n, -1, dtype=np.int64)
        elif name in ("liquid_water", "habitable", "biosignature"):
            out[name] = np.zeros(n, dtype=bool)
        elif name in merged.colnames:
            out[name] = Column(merged[name], unit=SCHEMA_UNITS.get(name))
        else:
            out[name] = Column(np.full(n, np.nan), unit=SCHEMA_UNITS.get(name))
    for name in ("liquid_water", "habitable", "biosignature"):
        out[f"{name}_known"] = np.zeros(n, dtype=bool)
    for name in ("host_name", "source", "derived"):
        out[name] = merged[name]
    out["flags"] = Column([""] * n, dtype=str)
    for name in MEASURED:
        out[f"{name}_err"] = merged[f"{name}_err"]
    return out


def _quarantine_rows(check: TableCheck, label: str) -> Table:
    rows = check.quarantine.copy()
    for col in rows.colnames:
        if col in SCHEMA_UNITS and rows[col].unit != SCHEMA_UNITS[col]:
            rows[col].unit = None  # a unit that would not convert: the reason names it
    source, _, table = label.partition("/")
    sources = [source] * len(rows)
    if "source" in rows.colnames:  # joined rows: they name their archives, have no one row
        sources = [str(s) for s in rows["source"]]
        rows.remove_column("source")
        rows["source_row"] = np.full(len(rows), -1, dtype=np.int64)
    rows.add_column(Column(sources, dtype=str), name="source", index=0)
    rows.add_column(Column([table] * len(rows), dtype=str), name="table", index=1)
    return rows


@dataclasses.dataclass
class CatalogBuild:
    """What ``build_catalog`` made: the tables, the report, the files and what it skipped."""

    out_dir: Path
    catalog: Table
    quarantine: Table
    report: QualityReport
    sources: list[str]
    skipped: list[str]

    @property
    def flagged(self) -> int:
        return int(sum(bool(f) for f in self.catalog["flags"]))

    def summary(self) -> str:
        return (f"{self.out_dir}: {len(self.catalog)} planets kept, {len(self.quarantine)} rows "
                f"rejected (quarantine.ecsv), {self.flagged} planets flagged, "
                f"{len(self.report.disagreements)} cross-match disagreements, sources: "
                f"{', '.join(self.sources) or 'none'}"
                + (f", {len(self.skipped)} skipped" if self.skipped else ""))


def build_catalog(dirs: Sequence[str | Path], out_dir: str | Path,
                  config: QualityConfig | None = None, *, progress: bool = False) -> CatalogBuild:
    """Joins the planet tables of the fetch folders ``dirs`` into ``out_dir`` (see the module
    docstring); ``config`` holds the quality thresholds."""
    from tqdm.auto import tqdm

    config = config or QualityConfig()
    tables, skipped, sources = [], [], []
    for folder in dirs:
        try:
            result = FetchResult.load(folder)
        except (FileNotFoundError, ValueError) as err:
            raise CatalogError(str(err)) from err
        chosen, passed = _planet_tables(result)
        tables += chosen
        skipped += passed + [f"{result.source}: {s}" for s in result.skipped]
        if chosen and result.source not in sources:
            sources.append(result.source)
    if not tables:
        raise CatalogError(f"no planet tables (from {', '.join(ARCHIVES)}) in "
                           f"{', '.join(map(str, dirs)) or 'no folders'}")
    checks, kept = [], []
    for label, table in tqdm(tables, desc="catalog", unit="table", disable=not progress):
        mapped = map_table(label.split("/")[0], table)
        check = check_table(mapped, config, table_name=label, name_column="name",
                            columns=[c for c in MEASURED if c in mapped.colnames])
        checks.append(check)
        kept.append((label, check.kept))
    disagreements = cross_match(dict(kept), config, columns=MEASURED)
    merged = _merge(kept)
    derive_missing(merged)
    final = check_table(merged, config, table_name="catalog", name_column="name",
                        columns=[*MEASURED, "surface_gravity_ms2"])
    checks.append(final)
    catalog = _schema_table(final.kept)
    _attach_flags(catalog, final, disagreements)
    quarantine = _stack([_quarantine_rows(c, c.table if c is not final else "catalog/merged")
                         for c in checks])
    summary = {"planets": len(catalog), "rejected_rows": len(quarantine),
               "flagged_planets": int(sum(bool(f) for f in catalog["flags"])),
               "sources": ", ".join(sources)}
    report = QualityReport.from_checks(checks, disagreements, config, summary)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", u.UnitsWarning)
        catalog.write(out / CATALOG_FILE, format="ascii.ecsv", overwrite=True)
        quarantine.write(out / QUARANTINE_FILE, format="ascii.ecsv", overwrite=True)
    (out / REPORT_JSON).write_text(report.to_json())
    (out / REPORT_MD).write_text(report.to_markdown())
    return CatalogBuild(out, catalog, quarantine, report, sources, skipped)


def _attach_flags(catalog: Table, final: TableCheck, disagreements) -> None:
    notes: dict[str, list[str]] = {}
    for flag in final.flags:
        if flag.row is not None:
            notes.setdefault(normalize_name(flag.name), []).append(f"{flag.kind}:{flag.column}")
    for d in disagreements:
        notes.setdefault(normalize_name(d.name), []).append(f"crossmatch:{d.column}")
    catalog["flags"] = Column([",".join(dict.fromkeys(notes.get(normalize_name(n), [])))
                               for n in catalog["name"]], dtype=str)


def _stack(parts: list[Table]) -> Table:
    parts = [p for p in parts if len(p)]
    if not parts:
        return Table({"source": np.array([], dtype=str), "table": np.array([], dtype=str),
                      "source_row": np.array([], dtype=np.int64),
                      "name": np.array([], dtype=str), "reason": np.array([], dtype=str)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # differing column metadata across archives
        stacked = vstack(parts, join_type="outer", metadata_conflicts="silent")
    return stacked


@dataclasses.dataclass
class PlanetCatalog:
    """A loaded catalogue: ``population`` has ``PlanetPopulation``'s columns (missing values as
    in the module docstring), ``known`` a mask per column, ``table`` every column written."""

    population: PlanetPopulation
    known: dict[str, np.ndarray]
    table: Table

    def columns(self) -> dict[str, np.ndarray]:
        return self.population.columns()

    def __len__(self) -> int:
        return len(self.population)


def load_catalog(path: str | Path) -> PlanetCatalog:
    """The catalogue in ``path`` (a ``build_catalog`` folder or its ``catalog.ecsv``)."""
    path = Path(path)
    file = path / CATALOG_FILE if path.is_dir() else path
    if not file.is_file():
        raise CatalogError(f"{file}: no catalogue there (run build-catalog first)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", u.UnitsWarning)
        table = Table.read(file, format="ascii.ecsv")
    arrays, known = {}, {}
    for name in PlanetPopulation.column_names():
        if name not in table.colnames:
            raise CatalogError(f"{file}: column {name!r} missing; not a catalogue file")
        column = table[name]
        if isinstance(column, MaskedColumn):
            fill = np.nan if column.dtype.kind == "f" else -1 if column.dtype.kind == "i" else 0
            column = column.filled(fill)
        values = np.asarray(column)
        if name == "name":
            values = values.astype(str)
            known[name] = np.char.str_len(values) > 0
        elif values.dtype.kind == "f":
            known[name] = np.isfinite(values)
        elif values.dtype.kind == "b":
            known[name] = np.asarray(table[f"{name}_known"], dtype=bool)
        elif name in ("planet_index", "text_variant"):
            known[name] = np.ones(len(values), dtype=bool)
        else:
            known[name] = values >= 0
        arrays[name] = values
    return PlanetCatalog(PlanetPopulation(**arrays), known, table)
