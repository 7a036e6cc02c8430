"""build_catalog and load_catalog on two hand-made fetch folders (nasa, exoplanets_org)."""

import json
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.table import Column, MaskedColumn, Table

from astrojax.data import generator
from astrojax.data.archives import Provenance
from astrojax.data.archives.catalog import (
    CatalogError,
    build_catalog,
    load_catalog,
    map_table,
    star_type_from_teff,
)
from astrojax.data.archives.result import FetchResult
from astrojax.data.generator import PlanetPopulation

NAN = np.nan


def nasa_pscomppars() -> Table:
    """pscomppars columns as the archive's TAP VOTable gives them (values after the archive)."""
    t = Table()
    t["pl_name"] = ["Kepler-22 b", "TRAPPIST-1 e", "HD 209458 b", "51 Peg b", "Bad-1 b", ""]
    t["hostname"] = ["Kepler-22", "TRAPPIST-1", "HD 209458", "51 Peg", "Bad-1", "Nameless"]
    t["st_teff"] = [5596.0, 2566.0, 6065.0, 5768.0, 5000.0, 5000.0] * u.K
    t["st_rad"] = [0.98, 0.119, 1.19, 1.15, 1.0, 1.0] * u.R_sun
    t["st_mass"] = [0.97, 0.0898, 1.23, 1.09, 1.0, 1.0] * u.M_sun
    t["st_lum"] = MaskedColumn([-0.1, -3.26, NAN, NAN, 0.0, 0.0], unit=u.dex(u.L_sun),
                               mask=[False, False, True, True, False, False])
    t["pl_orbsmax"] = [0.812, 0.02925, 0.04707, 0.0527, 1.0, 1.0] * u.au
    t["pl_orbper"] = [289.86, 6.099, 3.5247, 4.2308, 365.0, 365.0] * u.day
    t["pl_orbeccen"] = [NAN, 0.005, 0.0, 0.013, 0.0, 0.0]
    t["pl_rade"] = [2.38, 0.920, 15.6, NAN, 1.0, 1.0] * u.R_earth
    t["pl_radeerr1"] = [0.13, 0.013, 0.2, NAN, 0.1, 0.1] * u.R_earth
    t["pl_radeerr2"] = [-0.13, -0.012, -0.2, NAN, -0.1, -0.1] * u.R_earth
    t["pl_bmasse"] = [NAN, 0.692, 232.0, 146.0, 1.0, 1.0] * u.M_earth
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", u.UnitsWarning)  # the archive's own unit string
        t["pl_insol"] = Column([1.11, 0.66, NAN, NAN, 1.0, 1.0], unit="Earth Flux")
    t["pl_eqt"] = [279.0, 250.0, 1449.0, NAN, -50.0, 255.0] * u.K
    return t


def exoplanets_org_csv() -> Table:
    """exoplanets.org columns (Jupiter radii and masses, U<col> 1-sigma errors), no units:
    the frozen CSV carries none."""
    t = Table()
    t["NAME"] = ["HD 209458 b", "Kepler 22 b", "WASP-12 b", "WASP-12b"]
    t["STAR"] = ["HD 209458", "Kepler-22", "WASP-12", "WASP-12"]
    t["R"] = [1.38, 0.1, 1.79, 1.79]
    t["UR"] = [0.018, 0.01, 0.09, 0.09]
    t["MASS"] = [0.714, NAN, 1.40, 1.40]
    t["MSINI"] = [0.70, NAN, 1.38, 1.38]
    t["A"] = [0.0475, 0.85, 0.0229, 0.0229]
    t["PER"] = [3.5247, 289.86, 1.0914, 1.0914]
    t["ECC"] = [0.0, NAN, 0.0, 0.0]
    t["TEFF"] = [6065.0, 5518.0, 6300.0, 6300.0]
    t["RSTAR"] = [1.16, 0.98, 1.57, 1.57]
    t["MSTAR"] = [1.13, 0.97, 1.35, 1.35]
    return t


def save(source: str, tables: dict[str, Table], folder: Path) -> Path:
    prov = Provenance.create(source, f"https://example.org/{source}", b"recorded")
    FetchResult(source, tables, provenance=[prov], skipped=["item: not asked for"]).save(folder)
    return folder


@pytest.fixture
def fetched(tmp_path):
    return [save("nasa", {"pscomppars": nasa_pscomppars()}, tmp_path / "nasa"),
            save("exoplanets_org", {"exoplanets": exoplanets_org_csv()}, tmp_path / "eorg")]


def test_build_catalog_joins_both_archives_into_the_schema(fetched, tmp_path):
    build = build_catalog(fetched, tmp_path / "out")
    out = tmp_path / "out"
    for name in ("catalog.ecsv", "quarantine.ecsv", "quality_report.json", "quality_report.md"):
        assert (out / name).is_file(), name
    cat = build.catalog
    assert cat.colnames[:len(PlanetPopulation.column_names())] == \
        list(PlanetPopulation.column_names())
    names = list(cat["name"])
    # 6 nasa rows (1 out of range, 1 nameless) + 4 exoplanets.org rows (1 duplicate)
    assert names == ["Kepler-22 b", "TRAPPIST-1 e", "HD 209458 b", "51 Peg b", "WASP-12 b"]
    assert build.sources == ["nasa", "exoplanets_org"]
    row = {n: i for i, n in enumerate(names)}
    hd, wasp, peg = cat[row["HD 209458 b"]], cat[row["WASP-12 b"]], cat[row["51 Peg b"]]
    assert hd["source"] == "nasa+exoplanets_org" and wasp["source"] == "exoplanets_org"
    # WASP-12 b from exoplanets.org only: Jupiter units -> Earth units
    assert wasp["planet_radius_rearth"] == pytest.approx((1.79 * u.R_jup).to_value(u.R_earth))
    assert wasp["planet_mass_mearth"] == pytest.approx((1.40 * u.M_jup).to_value(u.M_earth))
    # log10 luminosity -> L_sun; the archive's "Earth Flux" insolation is kept as is
    trappist = cat[row["TRAPPIST-1 e"]]
    assert trappist["star_luminosity_lsun"] == pytest.approx(10**-3.26)
    assert trappist["insolation_searth"] == pytest.approx(0.66)
    # derived with the generator's physics where the archives are silent
    lum = generator.stellar_luminosity(1.19, 6065.0)
    assert hd["star_luminosity_lsun"] == pytest.approx(lum)
    assert hd["insolation_searth"] == pytest.approx(generator.insolation(lum, 0.04707))
    assert "star_luminosity_lsun" in hd["derived"] and "insolation_searth" in hd["derived"]
    s_peg = generator.insolation(generator.stellar_luminosity(1.15, 5768.0), 0.0527)
    assert peg["equilibrium_temperature_k"] == pytest.approx(
        generator.equilibrium_temperature(s_peg, 0.3))
    assert np.isnan(peg["planet_radius_rearth"]) and np.isnan(peg["surface_gravity_ms2"])
    assert hd["surface_gravity_ms2"] == pytest.approx(generator.surface_gravity(232.0, 15.6))
    assert list(cat["star_type"]) == [2, 0, 3, 2, 3]  # G, M, F, G, F
    assert (cat["biosphere"] == -1).all() and not cat["habitable_known"].any()
    assert np.isnan(cat["surface_pressure_bar"]).all()
    assert cat[row["Kepler-22 b"]]["flags"] == "crossmatch:planet_radius_rearth"
    assert "Kepler-22 b" in build.summary() or "5 planets kept" in build.summary()


def test_quarantine_keeps_every_rejected_row_with_its_reason(fetched, tmp_path):
    build = build_catalog(fetched, tmp_path / "out")
    quarantine = Table.read(tmp_path / "out" / "quarantine.ecsv")
    # HD 209458 b and Kepler-22 b are in both archives: 10 rows, 8 planets
    assert len(build.catalog) + len(quarantine) == 6 + 4 - 2
    for table in build.report.tables:
        assert table["rows_in"] == table["kept"] + table["quarantined"], table
    reasons = {(r["source"], int(r["source_row"])): r["reason"] for r in quarantine}
    assert reasons[("nasa", 4)].startswith("range: equilibrium_temperature_k=-50")
    assert reasons[("nasa", 5)] == "missing name"
    assert reasons[("exoplanets_org", 3)].startswith("duplicate: same planet as row 2")
    report = json.loads((tmp_path / "out" / "quality_report.json").read_text())
    assert report["rejected_by_reason"] == {"range": 1, "missing name": 1, "duplicate": 1}
    assert report["summary"]["planets"] == 5
    assert [d["name"] for d in report["disagreements"]] == ["Kepler-22 b"]


def test_load_catalog_gives_the_population_columns_and_masks(fetched, tmp_path):
    build_catalog(fetched, tmp_path / "out")
    catalog = load_catalog(tmp_path / "out")
    columns = catalog.columns()
    reference = generator.generate_population(2).columns()
    assert list(columns) == list(reference)
    for name, values in columns.items():
        assert values.shape == (5,), name
        assert values.dtype.kind == reference[name].dtype.kind, name
    assert catalog.known["planet_radius_rearth"].tolist() == [True, True, True, False, True]
    assert not catalog.known["surface_pressure_bar"].any()
    assert not catalog.known["biosphere"].any() and not catalog.known["liquid_water"].any()
    assert catalog.known["star_type"].all()
    assert catalog.table["planet_radius_rearth"].unit == u.R_earth


def test_ps_table_prefers_the_default_solution(tmp_path):
    ps = nasa_pscomppars()[:1]
    ps = Table(ps, copy=True)
    ps.add_row(ps[0])
    ps["pl_rade"][0] = 2.0
    ps["default_flag"] = [0, 1]
    build = build_catalog([save("nasa", {"ps": ps}, tmp_path / "n")], tmp_path / "out")
    assert build.catalog["planet_radius_rearth"][0] == pytest.approx(2.38)
    assert build.quarantine["reason"][0].startswith("duplicate")


def test_map_table_leaves_an_unconvertible_unit_for_quarantine(tmp_path):
    t = exoplanets_org_csv()[:2]
    t["R"].unit = u.kg
    build = build_catalog([save("exoplanets_org", {"x": t}, tmp_path / "e")], tmp_path / "out")
    assert len(build.catalog) == 0 or "planet_radius_rearth" not in build.catalog["derived"][0]
    assert all("unit: planet_radius_rearth has unit 'kg'" in r for r in build.quarantine["reason"])
    assert map_table("exoplanets_org", t)["planet_radius_rearth"].unit == u.kg


def test_star_types_and_errors(tmp_path):
    assert star_type_from_teff(np.array([2600.0, 4000.0, 5772.0, 6500.0, 9000.0, NAN,
                                         1500.0])).tolist() == [0, 1, 2, 3, -1, -1, -1]
    with pytest.raises(CatalogError, match="no planet tables"):
        build_catalog([save("ncbi", {"taxa": Table({"id": [1]})}, tmp_path / "n")],
                      tmp_path / "out")
    with pytest.raises(CatalogError, match="not a fetch output folder"):
        build_catalog([tmp_path / "nothing"], tmp_path / "out")


def test_a_catalogue_loads_into_the_planet_table_with_its_masks(fetched, tmp_path):
    from astrojax.data.planets import CatalogueSource, PlanetTable, split_planets

    build_catalog(fetched, tmp_path / "out")
    table = PlanetTable.from_catalog(tmp_path / "out")
    assert len(table) == 5 and table.seed is None
    assert "Kepler-22 b" in table.ids.tolist()
    values, known = table.column("planet_radius_rearth")
    assert known.tolist() == [True, True, True, False, True]
    # A catalogue row as a model reads it: unknown values are 0 beside a False mask, never NaN.
    rows = table.rows(["51 Peg b", "Kepler-22 b"])
    row = CatalogueSource(table, rows, ("planet_radius_rearth", "surface_pressure_bar"))[0]
    assert row["planet"] == rows[0]
    assert row["known"].tolist() == [False, False] and row["values"].tolist() == [0.0, 0.0]
    kepler = CatalogueSource(table, rows, ("planet_radius_rearth",))[1]
    assert kepler["known"].tolist() == [True]
    assert kepler["values"][0] == pytest.approx(values[rows[1]])
    # Catalogue planets split by the same rule as the built-in ones.
    split = split_planets(table.ids, 0.2, 0.2)
    assert sorted(np.concatenate([split.train, split.val, split.test]).tolist()) == list(range(5))
