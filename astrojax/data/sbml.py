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
# libsbml flags formulas that break the FBC grammar (salmonella.xml.gz, shipped with cobra, has
# "C2970H5292N202O1896P4charge297"). Such a formula only loses its composition, which
# element_counts already reports as unknown, so the rest of the model is still read.
_TOLERATED_ERROR_IDS = {libsbml.FbcSpeciesFormulaMustBeString}
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

    Raises ``FileNotFoundError`` for a missing file and :class:`NetworkError`, naming the file
    (and the reaction or species), for anything libsbml rejects, a document without a model,
    or a reaction that refers to a species the model does not define.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SBML file {str(path)!r} does not exist")
    document = libsbml.readSBMLFromFile(str(path))
    _raise_on_errors(path, document)
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


def _raise_on_errors(path: pathlib.Path, document: libsbml.SBMLDocument) -> None:
    serious = [document.getError(i) for i in range(document.getNumErrors())
               if document.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR]
    fatal = [e for e in serious if e.getErrorId() not in _TOLERATED_ERROR_IDS]
    if fatal:
        first = fatal[0]
        raise NetworkError(f"{path}: libsbml reports {len(fatal)} error(s); first, at line "
                           f"{first.getLine()}: {first.getMessage().strip()}")
    if serious:
        first = serious[0]
        warnings.warn(f"{path}: {len(serious)} species have a chemical formula libsbml "
                      f"rejects (first at line {first.getLine()}); their composition is "
                      f"read as unknown", stacklevel=3)


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
