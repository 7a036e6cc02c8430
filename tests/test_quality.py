"""The quality checks on small hand-made astropy tables with units."""

import json

import astropy.units as u
import numpy as np
import pytest
from astropy.table import MaskedColumn, Table

from astrojax.data.archives.quality import (
    QualityConfig,
    QualityReport,
    QuantityRange,
    check_table,
    cross_match,
    error_of,
    normalize_name,
    outliers,
    parse_unit,
    robust_z,
)

NAN = np.nan


def planets() -> Table:
    t = Table()
    t["name"] = ["Kepler-22 b", "TRAPPIST-1 e", "Hot-1 b", "Cold-1 b", "", "KEPLER 22B"]
    t["pl_eqt"] = [279.0, 250.0, 6000.0, -5.0, 300.0, 279.0] * u.K
    t["st_teff"] = [5596.0, 2566.0, 6000.0, 1000.0, 5000.0, 5596.0] * u.K
    t["pl_orbeccen"] = [0.0, 0.005, 1.2, 0.1, 0.1, 0.0]
    t["pl_rade"] = MaskedColumn([2.38, 0.92, NAN, 1.0, 1.0, 2.38], unit=u.R_earth,
                                mask=[False, False, False, True, False, False])
    return t


def test_range_and_name_checks_quarantine_rows_with_reasons():
    check = check_table(planets(), table_name="ps")
    assert check.rows_in == len(check.kept) + len(check.quarantine) == 6
    assert list(check.kept["name"]) == ["Kepler-22 b", "TRAPPIST-1 e"]
    reasons = dict(zip(check.quarantine["source_row"], check.quarantine["reason"], strict=True))
    assert reasons[2] == ("range: pl_eqt=6000 outside (0, 5000] K; "
                          "range: pl_orbeccen=1.2 outside [0, 1)")
    assert reasons[3] == ("range: pl_eqt=-5 outside (0, 5000] K; "
                          "range: st_teff=1000 outside [2000, 50000] K")
    assert reasons[4] == "missing name"
    assert reasons[5] == "duplicate: same planet as row 0 (KEPLER 22B)"
    assert list(check.kept["source_row"]) == [0, 1]


def test_units_are_converted_before_the_range_check_and_unconvertible_units_rejected():
    t = Table({"name": ["a", "b"], "pl_rade": [6371.0, 1e9] * u.km,
               "st_teff": [5000.0, 6000.0] * u.kg})
    check = check_table(t)
    assert len(check.kept) == 0
    reasons = list(check.quarantine["reason"])
    assert reasons[0] == "unit: st_teff has unit 'kg', not convertible to K"
    assert reasons[1].startswith("range: pl_rade=156787 outside (0, 50] earthRad; unit:")
    unknown = Table({"name": ["a"], "pl_eqt": [300.0]})
    unknown["pl_eqt"].unit = u.Unit("furlongs of heat", parse_strict="silent")
    assert check_table(unknown).quarantine["reason"][0].startswith("unit: pl_eqt has unit")


def test_a_unitless_dimensioned_column_is_assumed_in_the_range_unit_and_flagged():
    check = check_table(Table({"name": ["a"], "pl_eqt": [300.0], "pl_orbeccen": [0.1]}))
    assert len(check.kept) == 1
    assert [(f.kind, f.column) for f in check.flags] == [("unit_assumed", "pl_eqt")]


def test_jupiter_radii_convert_to_earth_radii():
    assert parse_unit("Jupiter Radius").to(parse_unit("earthRad")) == pytest.approx(11.209, 1e-3)
    assert parse_unit("Earth Flux").to(u.W / u.m**2) == pytest.approx(1361.0, rel=2e-3)
    assert parse_unit("log(Solar)") == u.dex(u.L_sun) and parse_unit("") is None
    t = Table({"name": ["a"], "R": [1.0] * u.R_jup, "UR": [0.1] * u.R_jup})
    assert error_of(t, "R")[0] == pytest.approx(0.1)
    assert check_table(t).kept["R"].quantity.to_value(u.R_earth)[0] == pytest.approx(11.209,
                                                                                     1e-3)


def test_completeness_against_per_column_and_default_thresholds():
    t = Table({"name": list("abcd"), "pl_rade": [1.0, NAN, 2.0, 3.0] * u.R_earth,
               "pl_eqt": [NAN, NAN, NAN, 300.0] * u.K})
    check = check_table(t, QualityConfig(min_completeness={"pl_rade": 0.9}))
    by_column = {c.column: c for c in check.completeness}
    assert by_column["pl_rade"].fraction == 0.75 and not by_column["pl_rade"].ok
    assert by_column["pl_eqt"].fraction == 0.25 and not by_column["pl_eqt"].ok
    lenient = check_table(t, QualityConfig(default_min_completeness=0.2))
    assert all(c.ok for c in lenient.completeness)
    assert len(check.kept) == 4  # completeness is a soft check


def test_ph_range_for_biology_tables_without_names():
    t = Table({"organism": ["a", "b", "c"], "optimum_ph": [7.0, 15.0, -1.0]})
    check = check_table(t, name_column=None)
    assert list(check.kept["organism"]) == ["a"]
    assert check.quarantine["reason"][0] == "range: optimum_ph=15 outside [0, 14]"


def test_outliers_are_flagged_not_rejected():
    teff = [5000.0, 5100.0, 5200.0, 4900.0, 5050.0, 5150.0, 4950.0, 5000.0, 30000.0]
    t = Table({"name": [f"p{i}" for i in range(9)], "st_teff": teff * u.K})
    check = check_table(t)
    assert len(check.kept) == 9
    found = [f for f in check.flags if f.kind == "outlier"]
    assert [(f.column, f.row, f.name) for f in found] == [("st_teff", 8, "p8")]
    assert outliers(t[:8]) == []
    assert np.isnan(robust_z(np.ones(5))).all()


def test_cross_match_uses_stated_errors_then_a_relative_tolerance():
    nasa = Table({"name": ["Kepler-22 b", "HD 209458 b", "WASP-12 b"],
                  "planet_radius_rearth": [2.38, 15.6, 20.0] * u.R_earth,
                  "planet_radius_rearth_err": [0.13, 0.2, NAN] * u.R_earth})
    eorg = Table({"name": ["kepler 22b", "HD-209458 b", "WASP-12 b"],
                  "planet_radius_rearth": [0.1, 1.38, 1.5] * u.R_jup,
                  "planet_radius_rearth_err": [0.01, 0.018, 0.1] * u.R_jup})
    found = cross_match({"nasa": nasa, "eorg": eorg})
    assert [(d.name, d.test) for d in found] == [("Kepler-22 b", "errors"),
                                                 ("WASP-12 b", "relative")]
    assert found[0].value_b == pytest.approx(0.1 * 11.209, 1e-3)
    assert found[0].score == pytest.approx(abs(2.38 - 1.1209) / np.hypot(0.13, 0.11209), 1e-3)
    assert cross_match({"nasa": nasa, "eorg": eorg},
                       QualityConfig(crossmatch_sigma=10.0, crossmatch_rel_tol=0.5)) == []


def test_report_json_and_markdown_name_the_columns():
    check = check_table(planets(), table_name="nasa/ps")
    report = QualityReport.from_checks([check], [], QualityConfig(), {"planets": 2})
    data = json.loads(report.to_json())
    assert data["rejected_by_reason"] == {"range": 2, "missing name": 1, "duplicate": 1}
    assert data["tables"] == [{"table": "nasa/ps", "rows_in": 6, "kept": 2, "quarantined": 4}]
    markdown = report.to_markdown()
    for column in ("pl_eqt", "st_teff", "pl_orbeccen", "pl_rade"):
        assert f"| nasa/ps | {column} |" in markdown
    assert "- range: 2" in markdown and "## Cross-match disagreements" in markdown


def test_config_is_validated_and_names_are_normalized():
    with pytest.raises(ValueError, match="default_min_completeness"):
        QualityConfig(default_min_completeness=1.5)
    with pytest.raises(ValueError, match="without a range"):
        QualityConfig(quantities={"x": "wavelength"})
    cfg = QualityConfig(ranges={"ph": QuantityRange(4.0, 9.0)}, quantities={"ph": "ph"})
    assert check_table(Table({"ph": [3.0, 5.0]}), cfg, name_column=None).kept["ph"][0] == 5.0
    assert normalize_name("TRAPPIST-1 e") == normalize_name("trappist_1e") == "trappist1e"
