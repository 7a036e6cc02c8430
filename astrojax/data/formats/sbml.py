"""Read genome-scale metabolic models from SBML files into :class:`MetabolicNetwork`.

Parsing is done by python-libsbml (``.xml`` and ``.xml.gz``). Species become metabolites and
reactions become reactions, with stoichiometry from each reaction's reactants (negative) and
products (positive). A metabolite's formula and charge come from the FBC package
(``fbc:chemicalFormula``, ``fbc:charge``), or from ``FORMULA:``/``CHARGE:`` lines in the
species' notes, as older COBRA models write them. Compartments are matched by id and name
against ``COMPARTMENT_ALIASES``. Ids are kept exactly as in the file (BiGG models prefix them
with ``M_`` and ``R_``, which cobrapy strips). Models shipped inside installed packages (cobra's
E. coli core "textbook", iJO1366, ...) are found by :func:`packaged_model_path`.
"""

from __future__ import annotations

import bisect
import importlib.util
import math
import pathlib
import re
import warnings

import libsbml
import numpy as np

from astrojax.data.metabolic import (
    COMPARTMENT_ALIASES,
    COMPARTMENTS,
    ELEMENTS,
    MetabolicNetwork,
    NetworkError,
    element_counts,
)

PACKAGED_MODELS = {"cobra": ("textbook", "iJO1366", "salmonella", "mini_cobra")}
BOUNDARY_REACTION_PREFIXES = ("EX_", "DM_", "SK_")
_NOTES_FIELD = re.compile(r"^\s*(FORMULA|CHARGE)\s*:\s*(.*?)\s*$", re.IGNORECASE)


def packaged_model_path(name: str) -> pathlib.Path:
    """Path of a model shipped in an installed package, e.g. ``"cobra:textbook"``; no download.

    The package is located with ``importlib.util.find_spec`` rather than imported (importing
    cobra takes seconds). Raises ``FileNotFoundError`` listing the available models.
    """
    available = ", ".join(f"{package}:{model}" for package, models in PACKAGED_MODELS.items()
                          for model in models)
    package, _, model = name.partition(":")
    if package not in PACKAGED_MODELS or model not in PACKAGED_MODELS[package]:
        raise FileNotFoundError(f"unknown packaged SBML model {name!r}; available: {available}")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"packaged SBML model {name!r} needs the {package!r} package, "
                                f"which is not installed (pip install {package}); "
                                f"available once installed: {available}")
    data_dir = pathlib.Path(next(iter(spec.submodule_search_locations))) / "data"
    for candidate in (data_dir / f"{model}.xml.gz", data_dir / f"{model}.xml"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"packaged SBML model {name!r}: neither {model}.xml.gz nor "
                            f"{model}.xml is in {data_dir} (is {package!r} installed in full?)")


def resolve_sbml_path(spec: str) -> pathlib.Path:
    """``"cobra:NAME"`` -> the packaged model; anything else -> an existing file path."""
    if spec.partition(":")[0] in PACKAGED_MODELS:
        return packaged_model_path(spec)
    path = pathlib.Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"SBML file {spec!r} does not exist")
    return path


def read_sbml(path: str | pathlib.Path) -> MetabolicNetwork:
    """Read one SBML model (``.xml`` or ``.xml.gz``) into a :class:`MetabolicNetwork`.

    Reads what cobrapy reads. Raises ``FileNotFoundError`` for a missing file and
    :class:`NetworkError`, naming the file and the species or reaction, for unreadable XML, a
    document without a model, a libsbml error in a species, reaction or species reference (a
    malformed id or stoichiometry), or a reaction that refers to a species the model does not
    define. libsbml errors elsewhere (gene products whose ids break SId syntax, as in many
    published yeast models, notes, units, FBC bounds) only warn: they do not enter the graph.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SBML file {str(path)!r} does not exist")
    document = libsbml.readSBMLFromFile(str(path))
    _triage_errors(path, document)
    model = document.getModel()
    if model is None:
        raise NetworkError(f"{path}: the SBML document has no <model>")

    species = list(model.getListOfSpecies())
    metabolite_index = {s.getId(): i for i, s in enumerate(species)}
    counts = np.zeros((len(species), len(ELEMENTS)), np.float32)
    formula_known = np.zeros(len(species), bool)
    charge = np.zeros(len(species), np.float32)
    compartment = np.zeros(len(species), np.int32)
    for i, s in enumerate(species):
        formula, species_charge = _formula_and_charge(s)
        composition = element_counts(formula)
        if composition is not None:
            counts[i], formula_known[i] = composition, True
        charge[i] = species_charge
        compartment[i] = _compartment_index(path, model, s)

    reactions = list(model.getListOfReactions())
    reversible = np.zeros(len(reactions), bool)
    reaction_boundary = np.zeros(len(reactions), bool)
    stoich_metabolite, stoich_reaction, coefficient = [], [], []
    for j, reaction in enumerate(reactions):
        reversible[j] = reaction.getReversible()
        reaction_boundary[j] = _is_boundary_reaction(reaction)
        for sign, references in ((-1.0, reaction.getListOfReactants()),
                                 (1.0, reaction.getListOfProducts())):
            for reference in references:
                species_id = reference.getSpecies()
                if species_id not in metabolite_index:
                    raise NetworkError(f"{path}: reaction {reaction.getId()!r} refers to species "
                                       f"{species_id!r}, which the model does not define")
                amount = _stoichiometry(path, reaction, reference)
                stoich_metabolite.append(metabolite_index[species_id])
                stoich_reaction.append(j)
                coefficient.append(sign * amount)

    return MetabolicNetwork(
        name=path.name,
        metabolite_ids=tuple(s.getId() for s in species),
        element_counts=counts,
        formula_known=formula_known,
        charge=charge,
        compartment=compartment,
        metabolite_boundary=np.array([s.getBoundaryCondition() for s in species], bool),
        reaction_ids=tuple(r.getId() for r in reactions),
        reversible=reversible,
        reaction_boundary=reaction_boundary,
        stoich_metabolite=np.array(stoich_metabolite, np.int32),
        stoich_reaction=np.array(stoich_reaction, np.int32),
        coefficient=np.array(coefficient, np.float32),
    )


def _triage_errors(path: pathlib.Path, document: libsbml.SBMLDocument) -> None:
    """Refuse the libsbml errors that touch species, reactions or stoichiometry; warn about the
    rest, which cobrapy ignores (gene products whose ids break SId syntax, notes, units, ...).

    libsbml gives an error's line and column but not its element, so each error is placed at
    the last element that starts at or before it (and on a line before the next element
    starts). Errors of kinds that never change the graph (FBC attributes, notes, annotations,
    units, SBO terms, metaids) are tolerated wherever they are: a formula that breaks the FBC
    grammar (salmonella.xml.gz, shipped with cobra, has "C2970H5292N202O1896P4charge297") only
    loses its composition, which element_counts reports as unknown. Without a model (unreadable
    XML) every error is fatal.
    """
    errors = [document.getError(i) for i in range(document.getNumErrors())
              if document.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR]
    model = document.getModel()
    if errors and model is None:
        raise NetworkError(f"{path}: libsbml reports {len(errors)} error(s); first, at line "
                           f"{errors[0].getLine()}: {_message(errors[0])}")
    if not errors:
        return
    positions = _element_positions(model)
    refused, formulas, tolerated = [], [], []
    for error in errors:
        if error.getErrorId() == libsbml.FbcSpeciesFormulaMustBeString:
            formulas.append(error)
            continue
        element = None if _never_structural(error) else _element_at(positions, error)
        if element is not None and _is_structural(element):
            refused.append((error, element))
        elif element is None and error.getCategory() == libsbml.LIBSBML_CAT_XML \
                and not _never_structural(error):
            refused.append((error, None))
        else:
            tolerated.append((error, element))
    if refused:
        error, element = refused[0]
        where = f"{_describe(element)}, line {error.getLine()}" if element is not None \
            else f"line {error.getLine()}"
        more = f" (and {len(refused) - 1} more such error(s))" if len(refused) > 1 else ""
        raise NetworkError(f"{path}: {where}: {_message(error)}{more}")
    if formulas:
        warnings.warn(f"{path}: {len(formulas)} species have a chemical formula libsbml "
                      f"rejects (first at line {formulas[0].getLine()}); their composition is "
                      f"read as unknown", stacklevel=3)
    if tolerated:
        error, element = tolerated[0]
        where = f"{_describe(element)}, " if element is not None else ""
        warnings.warn(f"{path}: ignored {len(tolerated)} libsbml error(s) outside species, "
                      f"reactions and stoichiometry, as cobrapy does; first ({where}line "
                      f"{error.getLine()}): {_message(error)}", stacklevel=3)


# Core validation rules about metaids, SBO terms, annotations, units and notes (libsbml ids
# 10220-10221, 10307-10309, 10311, 10313, 104xx, 105xx, 107xx, 108xx): none changes which
# species a reaction uses or in what amounts.
_NEVER_STRUCTURAL_RULES = (range(10220, 10222), range(10307, 10310), range(10311, 10312),
                           range(10313, 10314), range(10400, 10600), range(10700, 10900))
_STRUCTURAL_TYPES = (libsbml.SBML_SPECIES, libsbml.SBML_REACTION, libsbml.SBML_SPECIES_REFERENCE)


# FBC's rules (formulas, charges, flux bounds, objectives, gene products and associations) are
# numbered 2,000,000 + rule; libsbml leaves getPackage() empty for some of them.
_FBC_ERROR_IDS = range(2_000_000, 2_100_000)


def _never_structural(error: libsbml.SBMLError) -> bool:
    """FBC errors and the harmless core rules."""
    return any(error.getErrorId() in rule for rule in (_FBC_ERROR_IDS, *_NEVER_STRUCTURAL_RULES))


def _element_positions(model: libsbml.Model) -> list[tuple[int, int, libsbml.SBase]]:
    elements = [model, *model.getListOfAllElements()]
    return sorted(((e.getLine(), e.getColumn(), e) for e in elements), key=lambda p: p[:2])


def _element_at(positions, error: libsbml.SBMLError) -> libsbml.SBase | None:
    """The last element starting at or before the error, if the error lies before the next
    element's line (or, after the last element, on that element's own line)."""
    line, column = error.getLine(), error.getColumn()
    starts = [p[:2] for p in positions]
    at = bisect.bisect_right(starts, (line, column)) - 1
    if at < 0:
        return None
    end_line = positions[at + 1][0] if at + 1 < len(positions) else positions[at][0]
    return positions[at][2] if line <= end_line else None


def _is_structural(element: libsbml.SBase) -> bool:
    code = element.getTypeCode()
    if code == libsbml.SBML_LIST_OF:
        code = element.getItemTypeCode()
    return code in _STRUCTURAL_TYPES


def _describe(element: libsbml.SBase) -> str:
    """``species 'X'``, ``reaction 'R'``, ``reaction 'R', reference to species 'X'``, ..."""
    code = element.getTypeCode()
    if code == libsbml.SBML_SPECIES_REFERENCE:
        reaction = element.getParentSBMLObject().getParentSBMLObject()
        return f"reaction {reaction.getId()!r}, reference to species {element.getSpecies()!r}"
    if code == libsbml.SBML_LIST_OF and element.getParentSBMLObject() is not None:
        parent = element.getParentSBMLObject()
        return f"{element.getElementName()} of {_describe(parent)}"
    name = element.getElementName()
    return f"{name} {element.getIdAttribute()!r}" if element.isSetIdAttribute() else name


def _message(error: libsbml.SBMLError) -> str:
    """libsbml's message on one line, without its reference to the specification."""
    lines = [line.strip() for line in error.getMessage().splitlines()]
    return " ".join(line for line in lines if line and not line.startswith("Reference:"))


def _formula_and_charge(species: libsbml.Species) -> tuple[str | None, float]:
    """FBC formula and charge, each falling back to the species' notes; charge 0 if unknown."""
    fbc = species.getPlugin("fbc")
    formula = fbc.getChemicalFormula() if fbc is not None else ""
    charge = float(fbc.getCharge()) if fbc is not None and fbc.isSetCharge() else None
    if not formula or charge is None:
        notes = _notes_fields(species)
        formula = formula or notes.get("FORMULA")
        if charge is None:
            charge = _parse_charge(notes.get("CHARGE"))
    return formula or None, charge if charge is not None else 0.0


def _notes_fields(species: libsbml.Species) -> dict[str, str]:
    """``KEY: value`` lines (FORMULA, CHARGE) from the text of a species' notes."""
    fields: dict[str, str] = {}
    pending = [species.getNotes()] if species.isSetNotes() else []
    while pending:
        node = pending.pop()
        if node.isText():
            for line in node.getCharacters().splitlines():
                match = _NOTES_FIELD.match(line)
                if match:
                    fields.setdefault(match.group(1).upper(), match.group(2))
        pending.extend(node.getChild(i) for i in range(node.getNumChildren()))
    return fields


def _parse_charge(text: str | None) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _compartment_index(path: pathlib.Path, model: libsbml.Model,
                       species: libsbml.Species) -> int:
    compartment_id = species.getCompartment()
    compartment = model.getCompartment(compartment_id)
    if compartment is None:
        raise NetworkError(f"{path}: species {species.getId()!r} is in compartment "
                           f"{compartment_id!r}, which the model does not define")
    for key in (compartment_id, compartment.getName()):
        if key.lower() in COMPARTMENT_ALIASES:
            return COMPARTMENTS.index(COMPARTMENT_ALIASES[key.lower()])
    return COMPARTMENTS.index("other")


def _is_boundary_reaction(reaction: libsbml.Reaction) -> bool:
    """Exchange, demand and sink reactions: one-sided, or named so by BiGG convention."""
    if reaction.getNumReactants() == 0 or reaction.getNumProducts() == 0:
        return True
    reaction_id = reaction.getId()
    bigg_id = reaction_id[2:] if reaction_id.startswith("R_") else reaction_id
    return bigg_id.startswith(BOUNDARY_REACTION_PREFIXES)


def _stoichiometry(path: pathlib.Path, reaction: libsbml.Reaction,
                   reference: libsbml.SpeciesReference) -> float:
    """The reference's stoichiometry, 1 when unset; an error for zero or non-finite values."""
    if not reference.isSetStoichiometry():
        return 1.0
    amount = reference.getStoichiometry()
    if not math.isfinite(amount) or amount == 0:
        raise NetworkError(f"{path}: reaction {reaction.getId()!r} has stoichiometry {amount} "
                           f"for species {reference.getSpecies()!r}")
    return float(amount)
