"""Named what-if questions about the population, with exact answers from the generator run under
the same intervention and the learned model's estimates of them.

Outcomes are reported in "report units": binary variables as probabilities (an effect is a
change in the fraction of planets), temperatures in kelvin, other continuous variables on their
model scale (log10 mixing ratios and pressures, so an effect is in dex).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from astrojax.causal.scm import StructuralCausalModel
from astrojax.data.generator.causal_graph import (
    VARIABLE_BY_NAME,
    VARIABLE_NAMES,
    Intervention,
    from_model_scale,
    scale,
    set_to,
    to_model_scale,
)
from astrojax.data.generator.sampling import simulate_variables


@dataclasses.dataclass(frozen=True)
class Question:
    """``do`` on the graph's variables and the outcomes whose change is asked for."""

    name: str
    text: str
    do: Mapping[str, Intervention]
    outcomes: tuple[str, ...]

    def describe(self) -> str:
        return ", ".join(f"do({k} {v.describe()})" for k, v in self.do.items())


QUESTIONS: tuple[Question, ...] = (
    Question("double_co2", "What if each planet's dry-air CO2 share were doubled?",
             {"dry_co2": scale(2.0)}, ("habitable", "surface_temperature_k")),
    Question("insolation_0.8", "What if each planet were moved to 0.8x its insolation?",
             {"insolation_searth": scale(0.8)}, ("habitable", "surface_temperature_k")),
    Question("remove_biosphere", "What if no biosphere persisted anywhere?",
             {"biosphere": set_to(0)}, ("x_o2", "x_ch4", "biosignature")),
    Question("m_dwarf_host", "What if every planet orbited an M dwarf (same insolation)?",
             {"star_type": set_to(0)}, ("x_o2", "biosignature")),
    Question("double_pressure", "What if each planet's dry surface pressure were doubled?",
             {"dry_pressure_bar": scale(2.0)}, ("habitable", "surface_temperature_k")),
)
QUESTION_BY_NAME = {q.name: q for q in QUESTIONS}


def report_units(name: str, model_scale_values) -> np.ndarray:
    """Model-scale values of ``name`` in report units (kelvin for temperatures)."""
    values = np.asarray(model_scale_values, np.float64)
    return from_model_scale(name, values) if name.endswith("_k") else values


def unit_of(name: str) -> str:
    var = VARIABLE_BY_NAME[name]
    if var.kind != "continuous":
        return "probability"
    if name.endswith("_k"):
        return "K"
    return "dex" if var.scale == "log10" else "linear"


def true_answers(question: Question, num_planets: int, seed: int,
                 rows: Sequence[int] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Per outcome, each planet's factual and counterfactual value (report units) from the
    generator with the same draws, for ``rows`` of the population (default: all)."""
    natural = simulate_variables(num_planets, seed)
    intervened = simulate_variables(num_planets, seed, question.do)
    rows = slice(None) if rows is None else np.asarray(rows)
    return {y: {"factual": report_units(y, to_model_scale(y, natural[y][rows])),
                "counterfactual": report_units(y, to_model_scale(y, intervened[y][rows]))}
            for y in question.outcomes}


def scm_answers(scm: StructuralCausalModel, question: Question, table_bn: np.ndarray,
                num_samples: int = 16384, num_posterior: int = 32, seed: int = 0) -> dict:
    """The model's answers: per outcome the average effect from ancestral sampling of the
    intervened model (``ate_sampling``, ``num_samples`` fresh planets, none of ``table_bn``'s
    values used) and each planet's counterfactual expectation (``counterfactual``, averaged
    over ``num_posterior`` posterior noise draws) for the planets of ``table_bn``."""
    sampled = scm.sample(num_samples, seed=seed)
    sampled_do = scm.sample(num_samples, question.do, seed=seed)
    cf = scm.counterfactual(table_bn, question.do, num_posterior, seed)
    out = {}
    for y in question.outcomes:
        j = VARIABLE_NAMES.index(y)
        out[y] = {"ate_sampling": float(report_units(y, sampled_do[:, j]).mean()
                                        - report_units(y, sampled[:, j]).mean()),
                  "counterfactual": report_units(y, cf[:, :, j]).mean(0)}
    return out


def effect_errors(truth: dict, estimate_counterfactual: np.ndarray, binary: bool) -> dict:
    """How well per-planet counterfactuals match the truth: the estimated average effect on
    these planets, and per-planet accuracy (binary: thresholded at 0.5, overall and on the
    planets whose outcome changes) or RMSE and median absolute error (continuous), beside the
    rule "nothing changes"."""
    factual, true_cf = truth["factual"], truth["counterfactual"]
    est = np.asarray(estimate_counterfactual, np.float64)
    out = {"ate": float(est.mean() - factual.mean())}
    if binary:
        changed = true_cf != factual
        hit = (est > 0.5) == (true_cf > 0.5)
        out.update(accuracy=float(hit.mean()),
                   accuracy_on_changed=float(hit[changed].mean()) if changed.any() else None,
                   num_changed=int(changed.sum()))
    else:
        out["rmse"] = float(np.sqrt(np.mean((est - true_cf) ** 2)))
        out["median_abs_error"] = float(np.median(np.abs(est - true_cf)))
    return out
