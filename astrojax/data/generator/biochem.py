"""Synthetic biochemical networks: one compound/reaction graph per planet, following its chemistry.

A planet's network is its environment's abiotic chemistry (compartment ``extracellular``:
starlight, an exchange reaction for each gas above ``GAS_THRESHOLD`` unless the planet is
airless, those gases' photochemistry, carbonate, iron, sulfur and serpentinisation chemistry
where there is water or volcanism, prebiotic chemistry on lifeless planets with liquid water)
plus, with a biosphere, cells (``cytosol``, ``periplasm``) running a shared core metabolism, the
modules of its class (``BIOLOGICAL_MODULES``), consortia that match its gases (methanogens
beside phototrophs where CH4 is made) and random side pathways. Optional reactions are kept with
a probability that grows with their gas's abundance (abiotic) or with warm, wet conditions
(biological). Last, each cellular reaction is seen only with the planet's annotation coverage
(``COVERAGE_RANGE``), as genome annotations miss pathways, so even a class's hallmark reaction
is sometimes absent. Planet ``i``'s network depends only on ``(seed, i)`` (random stream
``STREAM``). Over 4,096 planets, lifeless networks have 8-75 nodes (median 24) and inhabited
ones 40-200 (median 92), counting metabolites and reactions.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from astrojax.data.generator.physics import (
    AIRLESS_PRESSURE_BAR,
    BIOSPHERE_CLASSES,
    GASES,
)
from astrojax.data.generator.population import PlanetPopulation
from astrojax.data.metabolic import (
    COMPARTMENT_ALIASES,
    COMPARTMENTS,
    ELEMENTS,
    MetabolicNetwork,
    element_counts,
)

STREAM = 2  # this modality's random stream: sampling.py uses 0-1 (see block_rng)
GAS_THRESHOLD = 1e-6  # mixing ratio above which a gas has an exchange reaction
COVERAGE_RANGE = (0.45, 0.95)  # fraction of cellular reactions an annotation recovers

# id -> (formula, charge). BiGG ids and charges at pH 7.2 where BiGG has them; the C1 carriers
# of methanogenesis follow MetaNetX/ChEBI up to protonation (they only feed element counts).
_COMPOUNDS = {
    # gases, ions, radicals and minerals ("photon" has no formula)
    "n2": ("N2", 0), "o2": ("O2", 0), "co2": ("CO2", 0), "ch4": ("CH4", 0), "h2o": ("H2O", 0),
    "h2": ("H2", 0), "h": ("H", 1), "photon": (None, 0), "hco3": ("CHO3", -1),
    "co3": ("CO3", -2), "co": ("CO", 0), "o3": ("O3", 0), "orad": ("O", 0), "ohrad": ("HO", 0),
    "hrad": ("H", 0), "ch3rad": ("CH3", 0), "c2h6": ("C2H6", 0), "ch2o": ("CH2O", 0),
    "hcn": ("CHN", 0), "no": ("NO", 0), "no2": ("NO2", -1), "h2o2": ("H2O2", 0),
    "o2s": ("O2", -1), "h2s": ("H2S", 0), "so2": ("O2S", 0), "so3": ("O3S", -2),
    "so4": ("O4S", -2), "s": ("S", 0), "fe2": ("Fe", 2), "fe3": ("Fe", 3),
    "feoh3": ("FeH3O3", 0), "fayalite": ("Fe2O4Si", 0), "magnetite": ("Fe3O4", 0),
    "sio2": ("O2Si", 0), "wollastonite": ("CaO3Si", 0), "calcite": ("CCaO3", 0),
    "apatite": ("Ca5HO13P3", 0), "ca2": ("Ca", 2), "na1": ("Na", 1), "nh4": ("H4N", 1),
    "pi": ("HO4P", -2), "ppi": ("HO7P2", -3),
    # small organics: prebiotic products and fermentation acids
    "for": ("CHO2", -1), "ac": ("C2H3O2", -1), "gcald": ("C2H4O2", 0), "gly": ("C2H5NO2", 0),
    "frmd": ("CH3NO", 0), "glygly": ("C4H8N2O3", 0), "ade": ("C5H5N5", 0),
    "glyald": ("C3H6O3", 0), "rib__D": ("C5H10O5", 0), "pyr": ("C3H3O3", -1),
    "lac__L": ("C3H5O3", -1),
    # energy and redox carriers
    "atp": ("C10H12N5O13P3", -4), "adp": ("C10H12N5O10P2", -3), "amp": ("C10H12N5O7P", -2),
    "nad": ("C21H26N7O14P2", -1), "nadh": ("C21H27N7O14P2", -2),
    "nadp": ("C21H25N7O17P3", -3), "nadph": ("C21H26N7O17P3", -4),
    "coa": ("C21H32N7O16P3S", -4), "accoa": ("C23H34N7O17P3S", -4),
    "succoa": ("C25H35N7O19P3S", -5), "fdxox": ("Fe8S8X", 0), "fdxrd": ("Fe8S8X", -2),
    "q8": ("C49H74O4", 0), "q8h2": ("C49H76O4", 0), "mqn8": ("C51H72O2", 0),
    "mql8": ("C51H74O2", 0), "pq": ("C53H80O2", 0), "pqh2": ("C53H82O2", 0),
    "pccu2p": ("CuX", 2), "pccu1p": ("CuX", 1), "ficytc": ("C42H44FeN8O8S2", 1),
    "focytc": ("C42H44FeN8O8S2", 0),
    # central metabolism
    "g6p": ("C6H11O9P", -2), "f6p": ("C6H11O9P", -2), "fdp": ("C6H10O12P2", -4),
    "g3p": ("C3H5O6P", -2), "dhap": ("C3H5O6P", -2), "13dpg": ("C3H4O10P2", -4),
    "3pg": ("C3H4O7P", -3), "2pg": ("C3H4O7P", -3), "pep": ("C3H2O6P", -3),
    "oaa": ("C4H2O5", -2), "mal__L": ("C4H4O5", -2), "fum": ("C4H2O4", -2),
    "succ": ("C4H4O4", -2), "akg": ("C5H4O5", -2), "cit": ("C6H5O7", -3),
    "icit": ("C6H5O7", -3), "actp": ("C2H3O5P", -2), "rb15bp": ("C5H8O11P2", -4),
    "ru5p__D": ("C5H9O8P", -2), "r5p": ("C5H9O8P", -2), "xu5p__D": ("C5H9O8P", -2),
    "s7p": ("C7H13O10P", -2), "s17bp": ("C7H12O13P2", -4), "e4p": ("C4H7O7P", -2),
    "2pglyc": ("C2H2O6P", -3), "glyclt": ("C2H3O3", -1), "g1p": ("C6H11O9P", -2),
    "adpglc": ("C16H23N5O15P2", -2), "glycogen": ("C6H10O5", 0), "6pgl": ("C6H9O9P", -2),
    "6pgc": ("C6H10O10P", -3), "prpp": ("C5H8O14P3", -5), "aps": ("C10H12N5O10PS", -2),
    "glu__L": ("C5H8NO4", -1), "gln__L": ("C5H10N2O3", 0), "ala__L": ("C3H7NO2", 0),
    "asp__L": ("C4H6NO4", -1), "3php": ("C3H2O7P", -3), "pser__L": ("C3H6NO6P", -2),
    "ser__L": ("C3H7NO3", 0), "acser": ("C5H9NO4", 0), "cys__L": ("C3H7NO2S", 0),
    # methanogenesis: methanofuran, H4MPT and its C1 adducts, F420, coenzymes M and B
    "mfr": ("C34H38N4O15", -4), "formmfr": ("C35H38N4O16", -4), "h4mpt": ("C30H41N6O16P", -4),
    "fmh4mpt": ("C31H41N6O17P", -4), "mnh4mpt": ("C31H40N6O16P", -3),
    "mlh4mpt": ("C31H41N6O16P", -4), "mh4mpt": ("C31H43N6O16P", -4),
    "f420": ("C29H31N5O18P", -5), "f420h2": ("C29H33N5O18P", -5), "com": ("C2H5O3S2", -1),
    "mcom": ("C3H7O3S2", -1), "cob": ("C11H20NO7PS", -2), "hsfd": ("C13H23NO10PS3", -3),
    "mphen": ("C37H50N2O", 0), "mphenh2": ("C37H52N2O", 0),
}

# Modules: the environment (abiotic, every planet) and the biological ones (life only).
_ENV_MODULES = ("light", "airless", "carbon", "co2_photo", "water", "oxygen", "methane",
                "hydrogen", "nitrogen", "serpentinisation", "sulfur", "iron", "prebiotic")
BIOLOGICAL_MODULES = ("core", "hydrogenotrophic", "acetoclastic", "anox_h2s", "anox_h2",
                      "anox_fe", "anox_rc1_rtca", "anox_rc2", "calvin", "oxygenic", "tca",
                      "respiration", "glycogen", "serine", "nitrogen_fixation", "ammonium",
                      "fermentation", "pentose")
MODULES = _ENV_MODULES + BIOLOGICAL_MODULES
# Planet-level conditions a reaction may require (all of them), besides its module being on.
_FLAGS = (*GASES, "water", "ch4_rich", "volcanic")

# (id, equation, modules, keep probability, required flags, driver of the probability).
# "<=>" is reversible, "-->" not; one empty side makes a boundary (exchange, sink) reaction.
# The driver scales an optional reaction's probability: a gas's abundance, or "bio" (warm, wet).
_REACTIONS = (
    ("EX_photon_e", "photon_e <=>", "light", 1, "", ""),
    ("SK_h_e", "h_e <=>", "airless", 1, "", ""),  # solar-wind protons implanted in regolith
    ("FAYDISS", "fayalite_e + 4 h_e --> 2 fe2_e + sio2_e + 2 h2o_e", "airless iron", 1, "", ""),
    ("FE2PHOT", "2 fe2_e + 2 h_e + 2 photon_e --> 2 fe3_e + h2_e", "airless iron", 0.4, "", ""),
    ("FE3PREC", "fe3_e + 3 h2o_e --> feoh3_e + 3 h_e", "iron", 0.5, "water", ""),
    ("APATITE", "apatite_e + 4 h_e --> 5 ca2_e + h2o_e + 3 pi_e", "iron", 0.5, "water", ""),
    ("FE2OX", "4 fe2_e + o2_e + 4 h_e --> 4 fe3_e + 2 h2o_e", "iron", 0.6, "o2", "o2"),
    ("H2OPHOT", "h2o_e + photon_e --> ohrad_e + hrad_e", "airless water", 0.9, "", "h2o"),
    ("SK_hrad_e", "hrad_e -->", "airless water", 0.4, "", ""),  # hydrogen escape to space
    ("EX_h2o_e", "h2o_e <=>", "water", 1, "h2o", ""),
    ("HRECOMB", "2 hrad_e --> h2_e", "water", 0.3, "", "h2o"),
    ("H2O2F", "2 ohrad_e --> h2o2_e", "water", 0.3, "", "h2o"),
    ("H2O2D", "2 h2o2_e --> 2 h2o_e + o2_e", "water", 0.3, "o2", "o2"),
    ("EX_co2_e", "co2_e <=>", "carbon", 1, "co2", ""),
    ("CO2HYD", "co2_e + h2o_e <=> hco3_e + h_e", "carbon", 0.8, "water", "co2"),
    ("HCO3DISS", "hco3_e <=> co3_e + h_e", "carbon", 0.3, "water", "co2"),
    ("WEATHER", "wollastonite_e + co2_e --> calcite_e + sio2_e", "carbon", 0.4, "water", "co2"),
    ("CALDISS", "calcite_e + h_e <=> ca2_e + hco3_e", "carbon", 0.2, "water", ""),
    ("CO2PHOT", "co2_e + photon_e --> co_e + orad_e", "co2_photo", 0.7, "", "co2"),
    ("COOX", "co_e + ohrad_e --> co2_e + hrad_e", "co2_photo", 0.5, "h2o", "h2o"),
    ("CORECOMB", "co_e + orad_e --> co2_e", "co2_photo", 0.2, "", ""),
    ("EX_o2_e", "o2_e <=>", "oxygen", 1, "o2", ""),
    ("O2PHOT", "o2_e + photon_e --> 2 orad_e", "oxygen", 0.7, "", "o2"),
    ("O3F", "o2_e + orad_e --> o3_e", "oxygen", 0.8, "", "o2"),
    ("O3PHOT", "o3_e + photon_e --> o2_e + orad_e", "oxygen", 0.5, "", "o2"),
    ("ORECOMB", "2 orad_e --> o2_e", "oxygen", 0.3, "", "o2"),
    ("EX_ch4_e", "ch4_e <=>", "methane", 1, "ch4", ""),
    ("CH4OX", "ch4_e + ohrad_e --> ch3rad_e + h2o_e", "methane", 0.7, "h2o", "ch4"),
    ("CH4PHOT", "ch4_e + photon_e --> ch3rad_e + hrad_e", "methane", 0.4, "", "ch4"),
    ("C2H6F", "2 ch3rad_e --> c2h6_e", "methane", 0.8, "ch4_rich", "ch4"),
    ("CH2OF", "ch3rad_e + orad_e --> ch2o_e + hrad_e", "methane", 0.3, "co2", "ch4"),
    ("EX_h2_e", "h2_e <=>", "hydrogen", 1, "h2", ""),
    ("H2OX", "h2_e + ohrad_e --> h2o_e + hrad_e", "hydrogen", 0.6, "h2o", "h2"),
    ("EX_n2_e", "n2_e <=>", "nitrogen", 1, "n2", ""),
    ("LIGHTNO", "n2_e + o2_e --> 2 no_e", "nitrogen", 0.3, "o2", "o2"),
    ("LIGHTCO", "n2_e + 2 co2_e --> 2 no_e + 2 co_e", "nitrogen", 0.2, "co2", "co2"),
    ("NODEP", "4 no_e + o2_e + 2 h2o_e --> 4 no2_e + 4 h_e", "nitrogen", 0.3, "o2 water", ""),
    ("SERP", "3 fayalite_e + 2 h2o_e --> 2 magnetite_e + 3 sio2_e + 2 h2_e",
     "serpentinisation", 1, "", ""),
    ("FORABIO", "co2_e + h2_e <=> for_e + h_e", "serpentinisation", 0.3, "", ""),
    ("SABATIER", "co2_e + 4 h2_e --> ch4_e + 2 h2o_e", "serpentinisation", 0.3, "", ""),
    ("SK_h2s_e", "h2s_e <=>", "sulfur", 1, "", ""),  # volcanic outgassing
    ("SK_so2_e", "so2_e <=>", "sulfur", 0.5, "", ""),
    ("CLAUS", "2 h2s_e + so2_e --> 3 s_e + 2 h2o_e", "sulfur", 0.4, "", ""),
    ("SO2HYD", "so2_e + h2o_e <=> so3_e + 2 h_e", "sulfur", 0.4, "water", ""),
    ("SO3OX", "2 so3_e + o2_e --> 2 so4_e", "sulfur", 0.5, "o2 water", "o2"),
    ("HCNF", "2 ch4_e + n2_e --> 2 hcn_e + 3 h2_e", "prebiotic", 0.8, "ch4 n2", ""),
    ("HCNCO", "2 co_e + 3 h2_e + n2_e --> 2 h2o_e + 2 hcn_e", "prebiotic", 0.6, "co2 n2", ""),
    ("CH2OABIO", "co2_e + 2 h2_e --> ch2o_e + h2o_e", "prebiotic", 0.7, "", ""),
    ("FORMOSE", "2 ch2o_e --> gcald_e", "prebiotic", 0.7, "", ""),
    ("STRECKER", "hcn_e + ch2o_e + h2o_e --> gly_e", "prebiotic", 0.7, "n2", ""),
    ("GLYGLY", "2 gly_e --> glygly_e + h2o_e", "prebiotic", 0.5, "n2", ""),
    ("ACABIO", "2 co2_e + 4 h2_e --> ac_e + h_e + 2 h2o_e", "prebiotic", 0.6, "", ""),
    ("PYRABIO", "3 co2_e + 5 h2_e --> pyr_e + h_e + 3 h2o_e", "prebiotic", 0.5, "", ""),
    ("FRMDF", "hcn_e + h2o_e --> frmd_e", "prebiotic", 0.6, "n2", ""),
    ("ADEF", "5 hcn_e --> ade_e", "prebiotic", 0.5, "n2", ""),
    ("GLYALDF", "ch2o_e + gcald_e --> glyald_e", "prebiotic", 0.6, "", ""),
    ("RIBF", "gcald_e + glyald_e --> rib__D_e", "prebiotic", 0.5, "", ""),
    ("NH4ABIO", "2 h_e + 3 h2_e + n2_e --> 2 nh4_e", "prebiotic", 0.5, "n2", ""),
    ("ALAABIO", "h2_e + nh4_e + pyr_e --> ala__L_e + h2o_e", "prebiotic", 0.5, "n2", ""),
    # ---- biology: core metabolism shared by every biosphere
    ("H2Ot", "h2o_e <=> h2o_c", "core", 1, "", ""),
    ("CO2t", "co2_e <=> co2_c", "core", 1, "", ""),
    ("EX_pi_e", "pi_e <=>", "core", 0.8, "", ""),
    ("PIt2r", "pi_e + h_e <=> pi_c + h_c", "core", 0.8, "", ""),
    ("ATPS4r", "adp_c + pi_c + 4 h_e <=> atp_c + h2o_c + 3 h_c", "core", 1, "", ""),
    ("ADK1", "amp_c + atp_c <=> 2 adp_c", "core", 0.4, "", "bio"),
    ("PPA", "ppi_c + h2o_c --> 2 pi_c + h_c", "core", 0.5, "", "bio"),
    ("PGI", "g6p_c <=> f6p_c", "core", 0.4, "", "bio"),
    ("PFK", "f6p_c + atp_c --> fdp_c + adp_c + h_c", "core", 0.35, "", "bio"),
    ("FBA", "fdp_c <=> dhap_c + g3p_c", "core calvin", 0.5, "", "bio"),
    ("TPI", "dhap_c <=> g3p_c", "core calvin", 0.6, "", "bio"),
    ("GAPD", "g3p_c + nad_c + pi_c <=> 13dpg_c + h_c + nadh_c", "core calvin", 0.8, "", "bio"),
    ("PGK", "3pg_c + atp_c <=> 13dpg_c + adp_c", "core calvin", 0.8, "", "bio"),
    ("PGM", "2pg_c <=> 3pg_c", "core", 0.6, "", "bio"),
    ("ENO", "2pg_c <=> h2o_c + pep_c", "core", 0.6, "", "bio"),
    ("PYK", "adp_c + h_c + pep_c --> atp_c + pyr_c", "core", 0.5, "", "bio"),
    ("PPS", "atp_c + h2o_c + pyr_c --> amp_c + 2 h_c + pep_c + pi_c", "core", 0.4, "", "bio"),
    ("HCO3E", "co2_c + h2o_c <=> h_c + hco3_c", "core", 0.5, "", "bio"),
    ("PC", "atp_c + hco3_c + pyr_c --> adp_c + h_c + oaa_c + pi_c", "core", 0.4, "", "bio"),
    ("MDH", "mal__L_c + nad_c <=> h_c + nadh_c + oaa_c", "core tca anox_rc1_rtca", 0.5, "", "bio"),
    ("FUM", "fum_c + h2o_c <=> mal__L_c", "core tca anox_rc1_rtca", 0.5, "", "bio"),
    ("SUCOAS", "atp_c + coa_c + succ_c <=> adp_c + pi_c + succoa_c", "tca anox_rc1_rtca", 0.9,
     "", "bio"),
    ("GLUDy", "akg_c + h_c + nadph_c + nh4_c <=> glu__L_c + h2o_c + nadp_c", "core", 0.6, "",
     "bio"),
    ("GLNS", "atp_c + glu__L_c + nh4_c --> adp_c + gln__L_c + h_c + pi_c", "core", 0.5, "",
     "bio"),
    ("ALATA_L", "akg_c + ala__L_c <=> glu__L_c + pyr_c", "core", 0.4, "", "bio"),
    ("ASPTA", "akg_c + asp__L_c <=> glu__L_c + oaa_c", "core", 0.4, "", "bio"),
    ("POR", "coa_c + fdxox_c + pyr_c <=> accoa_c + co2_c + fdxrd_c + h_c",
     "hydrogenotrophic acetoclastic anox_rc1_rtca anox_rc2", 0.85, "", "bio"),
    # ---- hydrogenotrophic methanogenesis: CO2 + 4 H2 -> CH4 + 2 H2O via MFR, H4MPT and CoM
    ("H2t", "h2_e <=> h2_c", "hydrogenotrophic anox_h2", 1, "", ""),
    ("CH4t", "ch4_c <=> ch4_e", "hydrogenotrophic acetoclastic", 1, "", ""),
    ("FMFD", "co2_c + fdxrd_c + 2 h_c + mfr_c --> formmfr_c + fdxox_c + h2o_c",
     "hydrogenotrophic", 1, "", ""),
    ("FTR", "formmfr_c + h4mpt_c <=> fmh4mpt_c + mfr_c", "hydrogenotrophic", 1, "", ""),
    ("MCH", "fmh4mpt_c + h_c <=> h2o_c + mnh4mpt_c", "hydrogenotrophic", 1, "", ""),
    ("MTD", "f420h2_c + mnh4mpt_c <=> f420_c + h_c + mlh4mpt_c", "hydrogenotrophic", 0.8, "",
     "bio"),
    ("HMD", "h2_c + mnh4mpt_c <=> h_c + mlh4mpt_c", "hydrogenotrophic", 0.3, "", "bio"),
    ("MER", "f420h2_c + mlh4mpt_c <=> f420_c + mh4mpt_c", "hydrogenotrophic", 1, "", ""),
    ("FRH", "f420_c + h2_c <=> f420h2_c", "hydrogenotrophic", 0.8, "", "bio"),
    ("MTR", "com_c + mh4mpt_c + 2 na1_c --> h4mpt_c + mcom_c + 2 na1_e",
     "hydrogenotrophic acetoclastic", 1, "", ""),
    ("MCR", "cob_c + mcom_c --> ch4_c + hsfd_c", "hydrogenotrophic acetoclastic", 1, "", ""),
    ("HDR", "fdxox_c + 2 h2_c + hsfd_c --> cob_c + com_c + fdxrd_c + 2 h_c",
     "hydrogenotrophic", 1, "", ""),
    ("ECH", "fdxox_c + h2_c --> fdxrd_c + 2 h_c", "hydrogenotrophic", 0.3, "", "bio"),
    ("ATPSNa", "adp_c + h_c + 4 na1_e + pi_c --> atp_c + h2o_c + 4 na1_c",
     "hydrogenotrophic acetoclastic", 0.4, "", "bio"),
    ("NAt3", "h_e + na1_c <=> h_c + na1_e", "hydrogenotrophic acetoclastic", 0.2, "", "bio"),
    ("CDH", "accoa_c + fdxox_c + h2o_c + h4mpt_c <=> co2_c + coa_c + fdxrd_c + 2 h_c + mh4mpt_c",
     "hydrogenotrophic acetoclastic", 0.5, "", "bio"),
    # ---- acetoclastic methanogenesis: acetate -> CH4 + CO2, methanophenazine-driven HdrDE
    ("EX_ac_e", "ac_e <=>", "acetoclastic", 1, "", ""),
    ("ACt2r", "ac_e + h_e <=> ac_c + h_c", "acetoclastic", 1, "", ""),
    ("ACKr", "ac_c + atp_c <=> actp_c + adp_c", "acetoclastic", 1, "", ""),
    ("PTAr", "accoa_c + pi_c <=> actp_c + coa_c", "acetoclastic", 1, "", ""),
    ("HDRDE", "hsfd_c + mphenh2_c --> cob_c + com_c + mphen_c", "acetoclastic", 1, "", ""),
    ("FPO", "fdxrd_c + 2 h_c + mphen_c --> fdxox_c + mphenh2_c", "acetoclastic", 0.7, "", "bio"),
    # ---- anoxygenic photosynthesis: electron donors into the menaquinone pool
    ("H2Spp", "h2s_e <=> h2s_p", "anox_h2s", 1, "", ""),
    ("SQR", "h2s_p + mqn8_c --> mql8_c + s_p", "anox_h2s", 1, "", ""),
    ("Sex", "s_p --> s_e", "anox_h2s", 0.5, "", "bio"),
    ("Spp", "s_p <=> s_c", "anox_h2s", 0.7, "", "bio"),
    ("DSRr", "3 h2o_c + 2 mqn8_c + s_c --> 2 h_c + 2 mql8_c + so3_c", "anox_h2s", 0.7, "", "bio"),
    ("APRr", "amp_c + 2 h_c + mqn8_c + so3_c --> aps_c + mql8_c", "anox_h2s", 0.5, "", "bio"),
    ("SATr", "aps_c + ppi_c --> atp_c + h_c + so4_c", "anox_h2s", 0.5, "", "bio"),
    ("SO4t", "so4_c --> so4_e", "anox_h2s", 0.5, "", "bio"),
    ("HYDQ", "h2_c + mqn8_c --> mql8_c", "anox_h2", 1, "", ""),
    ("PIOAB", "2 fe2_e + 2 h_c + mqn8_c --> 2 fe3_e + mql8_c", "anox_fe", 1, "", ""),
    ("FE3PRECb", "fe3_e + 3 h2o_e --> feoh3_e + 3 h_e", "anox_fe", 0.6, "", "bio"),
    # type I reaction centre (green sulfur bacteria) reduces ferredoxin; reverse TCA fixes CO2
    ("RC1", "fdxox_c + mql8_c + 2 photon_e --> fdxrd_c + 2 h_c + mqn8_c", "anox_rc1_rtca", 1,
     "", ""),
    ("FNRa", "fdxrd_c + h_c + nad_c --> fdxox_c + nadh_c", "anox_rc1_rtca", 0.8, "", "bio"),
    ("ACL", "atp_c + cit_c + coa_c --> accoa_c + adp_c + oaa_c + pi_c", "anox_rc1_rtca", 1, "",
     ""),
    ("ACONT", "cit_c <=> icit_c", "anox_rc1_rtca tca", 0.85, "", ""),
    ("ICDHyr", "icit_c + nadp_c <=> akg_c + co2_c + nadph_c", "anox_rc1_rtca tca", 0.85, "", ""),
    ("OOR", "akg_c + coa_c + fdxox_c <=> co2_c + fdxrd_c + h_c + succoa_c", "anox_rc1_rtca", 1,
     "", ""),
    ("FRD", "fum_c + mql8_c --> mqn8_c + succ_c", "anox_rc1_rtca", 1, "", ""),
    # type II reaction centre (purple bacteria): cyclic flow, reverse electron flow to NAD
    ("RC2", "2 focytc_c + 2 h_c + mqn8_c + 2 photon_e --> 2 ficytc_c + mql8_c", "anox_rc2", 1,
     "", ""),
    ("CYTBC1", "2 ficytc_c + mql8_c --> 2 focytc_c + 2 h_e + mqn8_c", "anox_rc2", 1, "", ""),
    ("NDHr", "mql8_c + nad_c --> h_c + mqn8_c + nadh_c", "anox_rc2", 0.8, "", "bio"),
    # ---- Calvin cycle (RuBisCO), shared by purple bacteria and oxygenic phototrophs
    ("RBPC", "co2_c + h2o_c + rb15bp_c --> 2 3pg_c + 2 h_c", "calvin", 1, "", ""),
    ("PRUK", "atp_c + ru5p__D_c --> adp_c + h_c + rb15bp_c", "calvin", 1, "", ""),
    ("FBP", "fdp_c + h2o_c --> f6p_c + pi_c", "calvin", 0.7, "", "bio"),
    ("TKT2", "f6p_c + g3p_c <=> e4p_c + xu5p__D_c", "calvin", 0.6, "", "bio"),
    ("FBA3", "s17bp_c <=> dhap_c + e4p_c", "calvin", 0.5, "", "bio"),
    ("SBP", "h2o_c + s17bp_c --> pi_c + s7p_c", "calvin", 0.5, "", "bio"),
    ("TKT1", "g3p_c + s7p_c <=> r5p_c + xu5p__D_c", "calvin", 0.6, "", "bio"),
    ("RPI", "r5p_c <=> ru5p__D_c", "calvin pentose", 0.6, "", "bio"),
    ("RPE", "xu5p__D_c <=> ru5p__D_c", "calvin", 0.6, "", "bio"),
    # ---- oxygenic photosynthesis: water splitting at photosystem II makes O2
    ("PSII", "2 h2o_c + 4 photon_e + 2 pq_c --> o2_c + 2 pqh2_c", "oxygenic", 1, "", ""),
    ("O2t", "o2_c <=> o2_e", "oxygenic respiration", 1, "", ""),
    ("CBFC", "2 pccu2p_c + pqh2_c --> 2 h_e + 2 pccu1p_c + pq_c", "oxygenic", 1, "", ""),
    ("PSI", "fdxox_c + 2 pccu1p_c + 2 photon_e --> fdxrd_c + 2 pccu2p_c", "oxygenic", 1, "", ""),
    ("FNOR", "fdxrd_c + h_c + nadp_c --> fdxox_c + nadph_c", "oxygenic", 1, "", ""),
    ("RBCh", "o2_c + rb15bp_c --> 2pglyc_c + 3pg_c + 2 h_c", "oxygenic", 0.5, "", "bio"),
    ("PGLP", "2pglyc_c + h2o_c --> glyclt_c + pi_c", "oxygenic", 0.4, "", "bio"),
    ("SPODM", "2 h_c + 2 o2s_c --> h2o2_c + o2_c", "oxygenic", 0.3, "", "bio"),
    ("CAT", "2 h2o2_c --> 2 h2o_c + o2_c", "oxygenic", 0.3, "", "bio"),
    # ---- oxidative TCA cycle and aerobic respiration
    ("PDH", "coa_c + nad_c + pyr_c --> accoa_c + co2_c + nadh_c", "tca", 1, "", ""),
    ("CS", "accoa_c + h2o_c + oaa_c --> cit_c + coa_c + h_c", "tca", 1, "", ""),
    ("AKGDH", "akg_c + coa_c + nad_c --> co2_c + nadh_c + succoa_c", "tca", 0.8, "", "bio"),
    ("SUCDi", "q8_c + succ_c --> fum_c + q8h2_c", "tca", 0.8, "", "bio"),
    ("NADH16", "5 h_c + nadh_c + q8_c --> 4 h_e + nad_c + q8h2_c", "respiration", 1, "", ""),
    ("CYO", "4 h_c + o2_c + 2 q8h2_c --> 2 h2o_c + 4 h_e + 2 q8_c", "respiration", 1, "", ""),
    # ---- side pathways, any biosphere
    ("PGMT", "g1p_c <=> g6p_c", "glycogen", 0.9, "", "bio"),
    ("GLGC", "atp_c + g1p_c + h_c --> adpglc_c + ppi_c", "glycogen", 1, "", ""),
    ("GLCS1", "adpglc_c --> adp_c + glycogen_c + h_c", "glycogen", 1, "", ""),
    ("PGCD", "3pg_c + nad_c --> 3php_c + h_c + nadh_c", "serine", 1, "", ""),
    ("PSERT", "3php_c + glu__L_c --> akg_c + pser__L_c", "serine", 1, "", ""),
    ("PSP_L", "h2o_c + pser__L_c --> pi_c + ser__L_c", "serine", 1, "", ""),
    ("SERAT", "accoa_c + ser__L_c <=> acser_c + coa_c", "serine", 0.7, "volcanic", "bio"),
    ("H2St", "h2s_e <=> h2s_c", "serine", 0.9, "volcanic", "bio"),
    ("CYSS", "acser_c + h2s_c --> ac_c + cys__L_c + h_c", "serine", 0.9, "volcanic", "bio"),
    ("N2t", "n2_e <=> n2_c", "nitrogen_fixation", 1, "n2", ""),
    ("NIT", "16 atp_c + 4 fdxrd_c + 16 h2o_c + n2_c --> 16 adp_c + 4 fdxox_c + h2_c + 6 h_c"
     " + 2 nh4_c + 16 pi_c", "nitrogen_fixation", 1, "n2", ""),
    ("EX_nh4_e", "nh4_e <=>", "ammonium", 1, "", ""),
    ("NH4t", "nh4_e <=> nh4_c", "ammonium", 1, "", ""),
    ("LDH_L", "lac__L_c + nad_c <=> h_c + nadh_c + pyr_c", "fermentation", 1, "", ""),
    ("L_LACt2r", "h_e + lac__L_e <=> h_c + lac__L_c", "fermentation", 1, "", ""),
    ("EX_lac__L_e", "lac__L_e <=>", "fermentation", 0.8, "", "bio"),
    ("G6PDH2r", "g6p_c + nadp_c <=> 6pgl_c + h_c + nadph_c", "pentose", 1, "", ""),
    ("PGL", "6pgl_c + h2o_c --> 6pgc_c + h_c", "pentose", 0.9, "", "bio"),
    ("GND", "6pgc_c + nadp_c --> co2_c + nadph_c + ru5p__D_c", "pentose", 0.9, "", "bio"),
    ("PRPPS", "atp_c + r5p_c --> amp_c + h_c + prpp_c", "pentose", 0.8, "", "bio"),
)

_DRIVERS = ("", "bio", *GASES)


@dataclasses.dataclass(frozen=True, eq=False)
class _Library:
    """Every compound and reaction as arrays, built once; a planet's network is a selection."""

    metabolite_ids: tuple[str, ...]
    element_counts: np.ndarray  # [M, len(ELEMENTS)]
    formula_known: np.ndarray  # [M]
    charge: np.ndarray  # [M]
    compartment: np.ndarray  # [M]
    reaction_ids: tuple[str, ...]
    reversible: np.ndarray  # [R]
    boundary: np.ndarray  # [R]
    entry_metabolite: np.ndarray  # [S], entries grouped by reaction in library order
    entry_reaction: np.ndarray  # [S]
    entry_coefficient: np.ndarray  # [S]
    member: np.ndarray  # [R, len(MODULES)] bool
    requires: np.ndarray  # [R, len(_FLAGS)] bool
    keep_probability: np.ndarray  # [R]
    driver: np.ndarray  # [R] index into _DRIVERS


def _parse_side(side: str, rid: str) -> list[tuple[float, str]]:
    terms = []
    for term in filter(None, (t.strip() for t in side.split(" + "))):
        parts = term.split()
        coef, met = (float(parts[0]), parts[1]) if len(parts) == 2 else (1.0, parts[0])
        base, _, comp = met.rpartition("_")
        if base not in _COMPOUNDS or comp not in COMPARTMENT_ALIASES:
            raise ValueError(f"reaction {rid}: unknown metabolite {met!r}")
        terms.append((coef, met))
    return terms


def _build_library() -> _Library:
    met_index: dict[str, int] = {}
    entries: list[tuple[int, int, float]] = []
    rids, reversible, boundary, probability, driver = [], [], [], [], []
    member = np.zeros((len(_REACTIONS), len(MODULES)), bool)
    requires = np.zeros((len(_REACTIONS), len(_FLAGS)), bool)
    for r, (rid, equation, modules, p, flags, drive) in enumerate(_REACTIONS):
        arrow = "<=>" if "<=>" in equation else "-->"
        left, right = equation.split(arrow)
        sides = _parse_side(left, rid), _parse_side(right, rid)
        if rid in rids or not (sides[0] or sides[1]) or not 0 < p <= 1:
            raise ValueError(f"reaction {rid}: duplicate id, empty equation or bad probability")
        for sign, side in ((-1.0, sides[0]), (1.0, sides[1])):
            for coef, met in side:
                entries.append((met_index.setdefault(met, len(met_index)), r, sign * coef))
        for name, names, table in ((modules, MODULES, member), (flags, _FLAGS, requires)):
            for key in name.split():
                if key not in names:
                    raise ValueError(f"reaction {rid}: unknown module or flag {key!r}")
                table[r, names.index(key)] = True
        if drive not in _DRIVERS:
            raise ValueError(f"reaction {rid}: unknown driver {drive!r}")
        rids.append(rid)
        reversible.append(arrow == "<=>")
        boundary.append(not (sides[0] and sides[1]))
        probability.append(float(p))
        driver.append(_DRIVERS.index(drive))
    met_ids = tuple(met_index)
    counts = np.zeros((len(met_ids), len(ELEMENTS)), np.float32)
    known, charge, compartment = (np.zeros(len(met_ids), t) for t in (bool, np.float32, np.int32))
    for m, met in enumerate(met_ids):
        base, _, comp = met.rpartition("_")
        formula, charge[m] = _COMPOUNDS[base]
        parsed = element_counts(formula)
        known[m] = parsed is not None
        counts[m] = parsed if parsed is not None else 0.0
        compartment[m] = COMPARTMENTS.index(COMPARTMENT_ALIASES[comp])
    met_e, rxn_e, coef_e = (np.array(c) for c in zip(*entries, strict=True))
    return _Library(met_ids, counts, known, charge, compartment, tuple(rids),
                    np.array(reversible), np.array(boundary), met_e.astype(np.int32),
                    rxn_e.astype(np.int32), coef_e.astype(np.float32), member, requires,
                    np.array(probability), np.array(driver))


_LIB = _build_library()
# Reactions that belong to biological modules only (not the environment's chemistry).
_CELLULAR = (_LIB.member[:, [MODULES.index(m) for m in BIOLOGICAL_MODULES]].any(axis=1)
             & ~_LIB.member[:, [MODULES.index(m) for m in _ENV_MODULES]].any(axis=1))


def module_reactions(module: str) -> tuple[str, ...]:
    """Ids of the reactions that ``module`` (one of ``MODULES``) can contribute."""
    if module not in MODULES:
        raise ValueError(f"unknown module {module!r}; expected one of {MODULES}")
    return tuple(np.array(_LIB.reaction_ids)[_LIB.member[:, MODULES.index(module)]])


def _select(keep: np.ndarray, name: str) -> MetabolicNetwork:
    """The library's reactions where ``keep``, with the metabolites they touch."""
    lib = _LIB
    entries = np.flatnonzero(keep[lib.entry_reaction])
    met = np.unique(lib.entry_metabolite[entries])
    rxn = np.flatnonzero(keep)
    met_pos = np.zeros(len(lib.metabolite_ids), np.int32)
    met_pos[met] = np.arange(len(met), dtype=np.int32)
    rxn_pos = np.cumsum(keep, dtype=np.int32) - 1
    return MetabolicNetwork(
        name=name, metabolite_ids=tuple(lib.metabolite_ids[j] for j in met.tolist()),
        element_counts=lib.element_counts[met], formula_known=lib.formula_known[met],
        charge=lib.charge[met], compartment=lib.compartment[met],
        metabolite_boundary=np.zeros(len(met), bool),  # sources and sinks are reactions
        reaction_ids=tuple(lib.reaction_ids[j] for j in rxn.tolist()),
        reversible=lib.reversible[rxn], reaction_boundary=lib.boundary[rxn],
        stoich_metabolite=met_pos[lib.entry_metabolite[entries]],
        stoich_reaction=rxn_pos[lib.entry_reaction[entries]],
        coefficient=lib.entry_coefficient[entries])


def library_network() -> MetabolicNetwork:
    """Every compound and reaction the generator knows, as one network (for inspection)."""
    return _select(np.ones(len(_LIB.reaction_ids), bool), "biochem library")


# ---------------------------------------------------------------- one planet
_COLUMNS = ("biosphere", "surface_pressure_bar", "surface_temperature_k", "water_fraction",
            "liquid_water", *(f"x_{g}" for g in GASES))
_NUM_CHOICES = 16  # uniforms per planet for module choices, drawn before the per-reaction ones
_METHANOGENIC, _ANOXYGENIC, _OXYGENIC = (BIOSPHERE_CLASSES.index(c) for c in (
    "methanogenic", "anoxygenic_photosynthesis", "oxygenic_photosynthesis"))


def _choices(p: dict, u: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Modules switched on, flags set and driver factors of one planet (``p``: its columns)."""
    life = int(p["biosphere"])
    airless = p["surface_pressure_bar"] < AIRLESS_PRESSURE_BAR
    gas = {g: bool(not airless and p[f"x_{g}"] > GAS_THRESHOLD) for g in GASES}
    water = bool(p["water_fraction"] > 0)
    # Warm, wet planets keep more optional biology (0 for dry or frozen, 1 near 300 K).
    diversity = p["water_fraction"] * math.exp(-(((p["surface_temperature_k"] - 300.0) / 40) ** 2))
    side = 0.05 + 0.25 * diversity
    anox, oxy = life == _ANOXYGENIC, life == _OXYGENIC
    # methanogens: the whole biosphere, or a consortium beside phototrophs that make CH4
    hydro = u[1] < {_METHANOGENIC: 0.85, _ANOXYGENIC: 0.3, _OXYGENIC: 0.15}.get(life, 0.0)
    aceto = life == _METHANOGENIC and (u[2] < 0.3 or not hydro)
    # Anoxygenic phototrophs' electron donor: H2S, H2 (likelier where the air has H2) or Fe2+.
    h2_weight = 0.45 if gas["h2"] else 0.25
    total = 0.7 + h2_weight
    donor = 0 if u[3] < 0.45 / total else (1 if u[3] < (0.45 + h2_weight) / total else 2)
    volcanic = not airless and (u[0] < 0.35 or (anox and donor == 0))
    rc1 = anox and u[6] < 0.5
    nfix = gas["n2"] and u[9] < side
    on = {"light": True, "airless": airless, "carbon": gas["co2"] or water,
          "co2_photo": gas["co2"], "water": gas["h2o"], "oxygen": gas["o2"],
          "methane": gas["ch4"], "hydrogen": gas["h2"], "nitrogen": gas["n2"],
          "iron": water or airless, "sulfur": volcanic,
          "serpentinisation": water and (u[4] < 0.4 or ((hydro or (anox and donor == 1))
                                                        and not gas["h2"])),
          "prebiotic": life == 0 and bool(p["liquid_water"]) and u[5] < 0.8,
          "core": True, "hydrogenotrophic": hydro, "acetoclastic": aceto,
          "anox_h2s": anox and donor == 0, "anox_h2": anox and donor == 1,
          "anox_fe": anox and donor == 2, "anox_rc1_rtca": rc1, "anox_rc2": anox and not rc1,
          "calvin": oxy or (anox and not rc1), "oxygenic": oxy, "tca": oxy, "respiration": oxy,
          "glycogen": u[7] < side, "serine": u[8] < side,
          "nitrogen_fixation": nfix, "ammonium": not nfix or u[10] < 0.5,
          "fermentation": u[11] < side * (0.5 if oxy else 1.0), "pentose": u[12] < side}
    modules = np.array([bool(on[m]) and (life > 0 or m in _ENV_MODULES) for m in MODULES])
    flags = dict(gas, water=water, ch4_rich=gas["ch4"] and p["x_ch4"] > 1e-4, volcanic=volcanic)
    # An optional abiotic reaction is likelier the more of its gas there is (x 0.2 at 1 ppm or
    # less, x 1 from 10%); an optional biological one the more diverse the biosphere.
    abundance = [min(0.2 + 0.16 * (math.log10(p[f"x_{g}"]) + 6.0), 1.0) if gas[g] else 0.2
                 for g in GASES]
    factors = np.array([1.0, 0.1 + 0.8 * diversity, *abundance])
    return modules, np.array([flags[f] for f in _FLAGS]), factors


def _planet(columns: dict[str, np.ndarray], i: int, planet_index: int, seed: int,
            name: str) -> MetabolicNetwork:
    lib = _LIB
    rng = np.random.default_rng(np.random.SeedSequence([seed, planet_index, STREAM]))
    u = rng.random(_NUM_CHOICES + len(lib.reaction_ids))
    modules, flags, factors = _choices({k: v[i].item() for k, v in columns.items()},
                                       u[:_NUM_CHOICES].tolist())
    probability = np.where(lib.keep_probability >= 1.0, 1.0,
                           lib.keep_probability * factors[lib.driver])
    keep = (lib.member[:, modules].any(axis=1) & ~lib.requires[:, ~flags].any(axis=1)
            & (u[_NUM_CHOICES:] < probability))
    # What an annotation recovers: each cellular reaction is seen with the planet's coverage,
    # as genome annotations miss pathways, so class markers are sometimes absent. Drawn after
    # the choices above, so it never shifts them.
    coverage = COVERAGE_RANGE[0] + (COVERAGE_RANGE[1] - COVERAGE_RANGE[0]) * u[13]
    seen = rng.random(len(lib.reaction_ids)) < np.where(_CELLULAR, coverage, 1.0)
    return _select(keep & seen, name)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def generate_networks(population: PlanetPopulation, seed: int,
                      indices=None) -> list[MetabolicNetwork]:
    """The networks of the planets at ``indices`` (default: all), in that order.

    Planet ``i``'s network depends only on ``(seed, population.planet_index[i])`` and its own
    columns, so a small population's networks are the prefix of a larger one's.
    """
    seed = _check_seed(seed)
    n = len(population)
    order = range(n) if indices is None else [int(i) for i in np.asarray(indices).reshape(-1)]
    bad = [i for i in order if not -n <= i < n]
    if bad:
        raise IndexError(f"planet index {bad[0]} out of range for a population of {n}")
    columns = {k: getattr(population, k) for k in _COLUMNS}
    return [_planet(columns, i, int(population.planet_index[i]), seed, str(population.name[i]))
            for i in order]


def planet_network(population: PlanetPopulation, i: int, seed: int) -> MetabolicNetwork:
    """The network of planet ``i`` of ``population`` (named after the planet)."""
    return generate_networks(population, seed, [i])[0]
