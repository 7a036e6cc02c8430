"""Tests for the SBML reader on cobra's shipped models and on small hand-written files."""

import gzip
import importlib.util
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from astrojax.data.formats.sbml import packaged_model_path, read_sbml, resolve_sbml_path
from astrojax.data.linkpred import unique_pairs
from astrojax.data.metabolic import (
    COMPARTMENTS,
    ELEMENTS,
    MetabolicNetwork,
    NetworkError,
    to_graph,
)

needs_cobra = pytest.mark.skipif(importlib.util.find_spec("cobra") is None,
                                 reason="cobra (a dev dependency) ships the SBML models")
SBML_CORE = "{http://www.sbml.org/sbml/level3/version1/core}"

_HEADER = """<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version1/core" level="3" version="1"
      xmlns:fbc="http://www.sbml.org/sbml/level3/version1/fbc/version2" fbc:required="false">
  <model id="hand_written" fbc:strict="false">
    <listOfCompartments>
      <compartment id="c0" name="Cytoplasm" constant="true"/>
      <compartment id="x" name="somewhere else" constant="true"/>
    </listOfCompartments>
    <listOfSpecies>
      <species id="a" compartment="c0" hasOnlySubstanceUnits="false" boundaryCondition="false"
               constant="false" fbc:chemicalFormula="C2H6O" fbc:charge="-1"/>
      <species id="b" compartment="x" hasOnlySubstanceUnits="false" boundaryCondition="true"
               constant="false">
        <notes><body xmlns="http://www.w3.org/1999/xhtml">
          <p>FORMULA: C6H12O6</p><p>CHARGE: 2</p>
        </body></notes>
      </species>
    </listOfSpecies>
    <listOfReactions>
"""
_FOOTER = """    </listOfReactions>
  </model>
</sbml>
"""
_GOOD_REACTIONS = """
      <reaction id="CONVERT" reversible="true" fast="false">
        <listOfReactants><speciesReference species="a" constant="true"/></listOfReactants>
        <listOfProducts>
          <speciesReference species="b" stoichiometry="2.5" constant="true"/>
        </listOfProducts>
      </reaction>
      <reaction id="DM_b" reversible="false" fast="false">
        <listOfReactants>
          <speciesReference species="b" stoichiometry="1" constant="true"/>
        </listOfReactants>
      </reaction>
"""


@pytest.fixture(scope="module")
def textbook_path():
    if importlib.util.find_spec("cobra") is None:
        pytest.skip("cobra (a dev dependency) ships the SBML models")
    return packaged_model_path("cobra:textbook")


@pytest.fixture(scope="module")
def textbook(textbook_path):
    return read_sbml(textbook_path)


def test_textbook_counts_match_the_file(textbook_path, textbook):
    with gzip.open(textbook_path) as f:
        root = ET.parse(f).getroot()
    species = root.iter(f"{SBML_CORE}species")
    reactions = list(root.iter(f"{SBML_CORE}reaction"))
    references = list(root.iter(f"{SBML_CORE}speciesReference"))
    assert textbook.num_metabolites == len(list(species)) == 72
    assert textbook.num_reactions == len(reactions) == 95
    assert len(textbook.coefficient) == len(references)
    assert textbook.name == "textbook.xml.gz"
    reversible_in_file = sum(r.get("reversible") == "true" for r in reactions)
    assert int(textbook.reversible.sum()) == reversible_in_file


def test_textbook_known_metabolite_and_reactions(textbook):
    glucose = textbook.metabolite_ids.index("M_glc__D_e")
    expected = np.zeros(len(ELEMENTS))
    expected[[ELEMENTS.index("C"), ELEMENTS.index("H"), ELEMENTS.index("O")]] = 6, 12, 6
    np.testing.assert_array_equal(textbook.element_counts[glucose], expected)
    assert textbook.formula_known[glucose] and textbook.charge[glucose] == 0
    assert COMPARTMENTS[textbook.compartment[glucose]] == "extracellular"
    atp = textbook.metabolite_ids.index("M_atp_c")
    assert textbook.charge[atp] == -4 and COMPARTMENTS[textbook.compartment[atp]] == "cytosol"

    reaction = {rid: j for j, rid in enumerate(textbook.reaction_ids)}
    assert textbook.reversible[reaction["R_PGI"]]
    assert not textbook.reversible[reaction["R_PFK"]]
    assert textbook.reaction_boundary[reaction["R_EX_glc__D_e"]]
    assert not textbook.reaction_boundary[reaction["R_PGI"]]
    assert not textbook.reaction_boundary[reaction["R_Biomass_Ecoli_core"]]
    # PFK: atp_c + f6p_c -> adp_c + fdp_c + h_c
    in_pfk = textbook.stoich_reaction == reaction["R_PFK"]
    stoichiometry = {textbook.metabolite_ids[m]: c for m, c in
                     zip(textbook.stoich_metabolite[in_pfk], textbook.coefficient[in_pfk],
                         strict=True)}
    assert stoichiometry == {"M_atp_c": -1, "M_f6p_c": -1, "M_adp_c": 1, "M_fdp_c": 1,
                             "M_h_c": 1}


def test_textbook_graph_has_two_edges_per_entry(textbook):
    graph = to_graph(textbook)
    num_nodes = textbook.num_metabolites + textbook.num_reactions
    assert int(graph.n_edge[0]) == len(graph.senders) == 2 * len(textbook.coefficient)
    for index in (graph.senders, graph.receivers):
        assert index.min() >= 0 and index.max() < num_nodes
    assert graph.nodes.shape[0] == num_nodes


def test_hand_written_model_reads_fbc_notes_and_defaults(tmp_path):
    path = tmp_path / "hand.xml"
    path.write_text(_HEADER + _GOOD_REACTIONS + _FOOTER)
    net = read_sbml(path)
    assert net.metabolite_ids == ("a", "b") and net.reaction_ids == ("CONVERT", "DM_b")
    # FBC for "a"; the notes for "b", which has no FBC attributes.
    assert net.element_counts[0, ELEMENTS.index("C")] == 2 and net.charge[0] == -1
    assert net.element_counts[1, ELEMENTS.index("C")] == 6 and net.charge[1] == 2
    assert [COMPARTMENTS[i] for i in net.compartment] == ["cytosol", "other"]
    np.testing.assert_array_equal(net.metabolite_boundary, [False, True])
    np.testing.assert_array_equal(net.reversible, [True, False])
    np.testing.assert_array_equal(net.reaction_boundary, [False, True])
    np.testing.assert_array_equal(net.stoich_metabolite, [0, 1, 1])
    np.testing.assert_array_equal(net.stoich_reaction, [0, 0, 1])
    np.testing.assert_array_equal(net.coefficient, [-1.0, 2.5, -1.0])  # unset stoichiometry: 1


def test_reaction_with_undefined_species_names_reaction(tmp_path):
    path = tmp_path / "ghost.xml"
    ghost = _GOOD_REACTIONS.replace('<speciesReference species="b" stoichiometry="2.5"',
                                    '<speciesReference species="ghost" stoichiometry="2.5"')
    path.write_text(_HEADER + ghost + _FOOTER)
    with pytest.raises(NetworkError, match=r"ghost\.xml.*'CONVERT'.*'ghost'"):
        read_sbml(path)


def _textbook_with_yeast_gene_id(tmp_path):
    """E. coli core with gene b1241 renamed to a yeast-style id that breaks SId syntax."""
    with gzip.open(packaged_model_path("cobra:textbook"), "rt") as f:
        text = f.read()
    assert text.count('"G_b1241"') == 3  # the gene product and two references to it
    path = tmp_path / "yeast_gene_ids.xml"
    path.write_text(text.replace('"G_b1241"', '"G_YER060W-A"'))
    return path


@needs_cobra
def test_gene_product_ids_breaking_sid_syntax_only_warn(tmp_path, textbook):
    path = _textbook_with_yeast_gene_id(tmp_path)
    with pytest.warns(UserWarning, match=r"yeast_gene_ids\.xml: ignored 3 libsbml error\(s\) "
                                         r"outside species, reactions and stoichiometry.*"
                                         r"G_YER060W-A"):
        net = read_sbml(path)
    assert net.metabolite_ids == textbook.metabolite_ids
    assert net.reaction_ids == textbook.reaction_ids
    for field in ("stoich_metabolite", "stoich_reaction", "coefficient", "element_counts",
                  "charge", "compartment", "reversible"):
        np.testing.assert_array_equal(getattr(net, field), getattr(textbook, field))


@needs_cobra
@pytest.mark.slow
def test_cobrapy_reads_the_same_yeast_style_model(tmp_path):
    cobra_sbml = pytest.importorskip("cobra.io")
    path = _textbook_with_yeast_gene_id(tmp_path)
    with pytest.warns(UserWarning):
        net = read_sbml(path)
    model = cobra_sbml.read_sbml_model(str(path))
    assert "YER060W-A" in {g.id for g in model.genes}
    assert len(model.metabolites) == net.num_metabolites
    assert len(model.reactions) == net.num_reactions
    assert sum(len(r.metabolites) for r in model.reactions) == len(unique_pairs(net))


def test_species_id_breaking_sid_syntax_is_refused_naming_it(tmp_path):
    path = tmp_path / "bad_species.xml"
    path.write_text((_HEADER + _GOOD_REACTIONS + _FOOTER).replace('"b"', '"b-1"'))
    with pytest.raises(NetworkError, match=r"bad_species\.xml: species 'b-1', line \d+: .*SId"):
        read_sbml(path)


def test_malformed_stoichiometry_is_refused_naming_reaction_and_species(tmp_path):
    path = tmp_path / "bad_amount.xml"
    path.write_text(_HEADER + _GOOD_REACTIONS.replace('stoichiometry="2.5"',
                                                      'stoichiometry="two"') + _FOOTER)
    with pytest.raises(NetworkError, match=r"bad_amount\.xml: reaction 'CONVERT', reference to "
                                           r"species 'b', line \d+: .*stoichiometry"):
        read_sbml(path)


def test_notes_error_in_a_species_only_warns(tmp_path):
    path = tmp_path / "notes.xml"
    notes = '<body xmlns="http://www.w3.org/1999/xhtml">'
    path.write_text((_HEADER + _GOOD_REACTIONS + _FOOTER).replace(notes, "<body>"))
    with pytest.warns(UserWarning, match=r"notes\.xml: ignored 1 libsbml error.*XHTML"):
        net = read_sbml(path)
    assert net.metabolite_ids == ("a", "b") and len(net.coefficient) == 3


@needs_cobra
def test_truncated_file_raises_naming_file_and_libsbml_error(tmp_path):
    with gzip.open(packaged_model_path("cobra:textbook")) as f:
        head = f.read(5000)
    path = tmp_path / "truncated.xml"
    path.write_bytes(head)
    with pytest.raises(NetworkError, match=r"truncated\.xml: libsbml reports .*Unclosed XML"):
        read_sbml(path)


@pytest.mark.parametrize("content", ["this is not xml", ""])
def test_garbled_file_raises_naming_file(tmp_path, content):
    path = tmp_path / "garbled.xml"
    path.write_text(content)
    with pytest.raises(NetworkError, match=r"garbled\.xml.*not well-formed"):
        read_sbml(path)


def test_document_without_model_raises(tmp_path):
    path = tmp_path / "empty_model.xml"
    path.write_text('<?xml version="1.0" encoding="UTF-8"?>\n<sbml xmlns='
                    '"http://www.sbml.org/sbml/level3/version2/core" level="3" version="2"/>')
    with pytest.raises(NetworkError, match=r"empty_model\.xml.*no <model>"):
        read_sbml(path)


def test_missing_file_raises_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_model.xml"):
        read_sbml(tmp_path / "no_such_model.xml")
    with pytest.raises(FileNotFoundError, match="no_such_model.xml"):
        resolve_sbml_path(str(tmp_path / "no_such_model.xml"))


def test_unknown_packaged_model_lists_available():
    with pytest.raises(FileNotFoundError, match="cobra:textbook.*cobra:iJO1366"):
        resolve_sbml_path("cobra:ecoli_supreme")


@needs_cobra
def test_resolve_packaged_and_plain_paths(textbook_path):
    assert resolve_sbml_path("cobra:textbook") == textbook_path
    assert resolve_sbml_path(str(textbook_path)) == textbook_path
    assert packaged_model_path("cobra:mini_cobra").name == "mini_cobra.xml"


@needs_cobra
@pytest.mark.slow
@pytest.mark.filterwarnings("error")
def test_iJO1366_reads_without_warnings():
    net = read_sbml(packaged_model_path("cobra:iJO1366"))
    assert (net.num_metabolites, net.num_reactions, len(net.coefficient)) == (1805, 2583, 10183)
    assert np.bincount(net.compartment, minlength=len(COMPARTMENTS))[
        COMPARTMENTS.index("periplasm")] > 0


@needs_cobra
@pytest.mark.slow
def test_salmonella_formulas_libsbml_rejects_are_unknown():
    with pytest.warns(UserWarning, match="3 species have a chemical formula libsbml rejects"):
        net = read_sbml(packaged_model_path("cobra:salmonella"))
    lps = net.metabolite_ids.index("M_LPS30_VL_p")  # "C2970H5292N202O1896P4charge297"
    assert not net.formula_known[lps] and net.charge[lps] == -9


def _hand_network(stoich_metabolite):
    return MetabolicNetwork(
        name="hand", metabolite_ids=("a", "b"), element_counts=np.zeros((2, len(ELEMENTS))),
        formula_known=np.zeros(2, bool), charge=np.zeros(2), compartment=np.zeros(2, np.int32),
        metabolite_boundary=np.zeros(2, bool), reaction_ids=("R1", "R2"),
        reversible=np.zeros(2, bool), reaction_boundary=np.zeros(2, bool),
        stoich_metabolite=np.array(stoich_metabolite, np.int32),
        stoich_reaction=np.array([0, 0, 1], np.int32), coefficient=np.array([-1.0, 1.0, 1.0]))


def test_network_rejects_out_of_range_metabolite():
    _hand_network([0, 1, 1])  # valid
    with pytest.raises(NetworkError, match=r"hand: stoichiometric entry 2 \(reaction index 1\) "
                                           r"refers to metabolite 5, out of range for 2"):
        _hand_network([0, 1, 5])
