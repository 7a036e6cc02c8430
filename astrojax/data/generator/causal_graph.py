"""The built-in population's causal graph: one declaration of its variables and their parents,
and the interventions the generator can run under.

Every variable here is a quantity that :func:`astrojax.data.generator.sampling._simulate`
really computes, in the order it computes them, and its parents are exactly the quantities its
line of code reads (besides its own random draws, which no other variable shares: draws shared
by two branches, such as the CO2 draw, feed mutually exclusive planets). Intermediate
quantities that the population does not keep as columns (the dry gases before and after the
biosphere, the abiotic and living climates) are variables too, so the graph has no hidden
confounders. The biosphere's feedback on the atmosphere is a second time step, unrolled: the
abiotic state (``abiotic_*``) -> ``life_emerged`` -> the living atmosphere and climate
(``living_*``) -> whether the biosphere persists (``biosphere``) -> the final columns.

``scale`` is the scale a model should see a variable on: ``log10`` for positive quantities
spanning decades (floored at ``floor`` where a variable can be 0), ``linear`` otherwise;
binary variables are 0/1 and categorical ones class indices.

An :class:`Intervention` replaces a variable's natural value (``set``), or scales or shifts it;
the generator then recomputes every descendant from the same random draws
(``generate_population(n, seed, do={...})``), so counterfactuals are exact per planet.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

KINDS = ("continuous", "binary", "categorical")


@dataclasses.dataclass(frozen=True)
class Variable:
    """One node: its name, parents, kind, the scale a model sees it on, and what it is."""

    name: str
    parents: tuple[str, ...]
    kind: str = "continuous"
    scale: str = "log10"  # "log10" or "linear" (continuous variables only)
    num_classes: int = 0  # 2 for binary; the class count for categorical
    floor: float = 0.0  # log10 scale: values are floored here first (for variables that can be 0)
    doc: str = ""


def _c(name, parents, doc, scale="log10", floor=0.0):
    return Variable(name, tuple(parents), "continuous", scale, 0, floor, doc)


def _b(name, parents, doc):
    return Variable(name, tuple(parents), "binary", "linear", 2, 0.0, doc)


def _k(name, parents, num_classes, doc):
    return Variable(name, tuple(parents), "categorical", "linear", num_classes, 0.0, doc)


_CLIMATE_INPUTS = ("insolation_searth", "surface_albedo", "water_fraction", "relative_humidity",
                   "dry_pressure_bar", "h2o_floor")
_ABIOTIC_GASES = ("dry_co2", "dry_h2", "dry_o2", "dry_ch4")
_LIVING_GASES = ("living_co2", "living_h2", "living_o2", "living_ch4")
_VAPOUR_INPUTS = ("dry_pressure_bar", "relative_humidity", "water_fraction", "h2o_floor")


def _climate_step(prefix: str, gases: tuple[str, ...], when: str) -> list[Variable]:
    """The climate solved for one atmosphere (``abiotic_`` or ``living_``)."""
    t, p = f"{prefix}_temperature_k", f"{prefix}_pressure_bar"
    return [
        _c(t, _CLIMATE_INPUTS + gases, f"surface temperature (K) {when}: the grey greenhouse "
           "with water-vapour and ice-albedo feedbacks at its fixed point"),
        _c(p, (t,) + _VAPOUR_INPUTS, f"surface pressure (bar) {when}: dry air plus the water "
           "vapour the temperature holds"),
        _c(f"{prefix}_x_o2", gases + ("dry_pressure_bar", p),
           f"O2 volume mixing ratio {when} (dry gases normalised with N2, diluted by vapour)"),
        _c(f"{prefix}_x_ch4", gases + ("dry_pressure_bar", p), f"CH4 volume mixing ratio {when}"),
        _b(f"{prefix}_habitable", (t, p, "water_fraction", "planet_radius_rearth"),
           f"liquid surface water on a rocky planet under <= 100 bar, {when}"),
    ]


VARIABLES: tuple[Variable, ...] = (
    # ---- the star
    _k("star_type", (), 4, "M, K, G, F (index into STAR_TYPES)"),
    _c("star_teff_k", ("star_type",), "effective temperature, uniform in its type's range"),
    _c("star_radius_rsun", ("star_teff_k",), "main-sequence radius at Teff, 4% scatter"),
    _c("star_mass_msun", ("star_teff_k",), "main-sequence mass at Teff, 4% scatter"),
    _c("star_luminosity_lsun", ("star_radius_rsun", "star_teff_k"), "Stefan-Boltzmann"),
    # ---- the orbit: drawn in insolation, so the orbit follows from the star and insolation
    _c("insolation_searth", (), "incident flux (S_earth), piecewise log-uniform 0.03-30"),
    _c("semi_major_axis_au", ("star_luminosity_lsun", "insolation_searth"), "sqrt(L / S)"),
    _c("orbital_period_days", ("semi_major_axis_au", "star_mass_msun"), "Kepler's third law"),
    _c("eccentricity", (), "Rayleigh, capped at 0.5; nothing depends on it", scale="linear"),
    # ---- the planet
    _c("planet_radius_rearth", (), "log-uniform 0.5-2"),
    _c("planet_mass_mearth", ("planet_radius_rearth",), "mass-radius relation, 15% scatter"),
    _c("surface_gravity_ms2", ("planet_mass_mearth", "planet_radius_rearth"), "g = G M / R^2"),
    # ---- the abiotic atmosphere
    _b("airless", ("planet_radius_rearth", "insolation_searth", "surface_gravity_ms2"),
       "a rocky planet that lost its air (escape ~ S / g^2)"),
    _c("water_fraction", ("planet_radius_rearth", "airless"),
       "surface covered by water; 0 on gas-rich, airless and 15% of rocky planets",
       scale="linear"),
    _c("relative_humidity", ("water_fraction",), "0 on dry planets", scale="linear"),
    _c("surface_albedo", ("airless",), "albedo of the surface before Rayleigh scattering and "
       "ice", scale="linear"),
    _c("h2o_floor", ("planet_radius_rearth",), "least H2O mixing ratio (higher in envelopes)"),
    _c("weathering_co2_bar", ("insolation_searth", "water_fraction"),
       "CO2 pressure the carbonate-silicate cycle leaves on a wet planet (~S^-7); 0 if dry",
       floor=1e-12),
    _c("dry_pressure_bar", ("planet_radius_rearth", "airless", "water_fraction",
                            "weathering_co2_bar"),
       "dry surface pressure: envelope, trace or rocky air, plus the weathering CO2"),
    _c("dry_co2", ("planet_radius_rearth", "water_fraction", "weathering_co2_bar",
                   "dry_pressure_bar"), "CO2 share of the dry air (weathering CO2 / dry "
       "pressure on wet planets)"),
    _c("dry_h2", ("planet_radius_rearth",), "H2 share of the dry air (75-95% in envelopes)"),
    _c("outgassed_o2", (), "abiotic O2 share before any steam-driven O2 build-up"),
    _c("outgassed_ch4", (), "abiotic CH4 share before any O2 build-up oxidises it"),
    _b("steam_atmosphere", _CLIMATE_INPUTS + ("dry_co2", "dry_h2", "outgassed_o2",
                                              "outgassed_ch4"),
       "water above its boiling point in the first climate solution"),
    _b("o2_loss", ("steam_atmosphere", "star_type"),
       "photolysed steam left O2 behind (60% of steam planets around M dwarfs, else 30%)"),
    _c("dry_o2", ("o2_loss", "outgassed_o2"), "abiotic O2 share (1-30% after O2 build-up)"),
    _c("dry_ch4", ("o2_loss", "outgassed_ch4"), "abiotic CH4 share (<= 1e-8 after O2 build-up)"),
    # ---- time step 0: the abiotic climate
    *_climate_step("abiotic", _ABIOTIC_GASES, "without life"),
    # ---- time step 1: life, its atmosphere and climate
    _k("life_emerged", ("abiotic_habitable", "abiotic_temperature_k", "water_fraction"), 4,
       "the biosphere class that arises on the abiotic planet (index into BIOSPHERE_CLASSES)"),
    _c("living_co2", ("life_emerged", "dry_co2"), "CO2 share with life (x0.7, x0.5 oxygenic)"),
    _c("living_h2", ("life_emerged", "dry_h2"), "H2 share with life (x0.1, x0.01 oxygenic)"),
    _c("living_o2", ("life_emerged", "dry_o2"), "O2 share with life (0.3-30% if oxygenic)"),
    _c("living_ch4", ("life_emerged", "dry_ch4"), "CH4 share with life (biogenic floor)"),
    *_climate_step("living", _LIVING_GASES, "with that biosphere"),
    # ---- what persists: a biosphere that would lose its liquid water does not
    _k("biosphere", ("life_emerged", "living_habitable"), 4,
       "the biosphere class that persists (the population's column)"),
    _c("surface_temperature_k", ("biosphere", "abiotic_temperature_k", "living_temperature_k"),
       "the planet's surface temperature (living climate if a biosphere persists)"),
    _c("surface_pressure_bar", ("biosphere", "abiotic_pressure_bar", "living_pressure_bar"),
       "the planet's surface pressure"),
    _c("x_o2", ("biosphere", "abiotic_x_o2", "living_x_o2"), "the planet's O2 mixing ratio"),
    _c("x_ch4", ("biosphere", "abiotic_x_ch4", "living_x_ch4"), "the planet's CH4 mixing ratio"),
    _b("habitable", ("surface_temperature_k", "surface_pressure_bar", "water_fraction",
                     "planet_radius_rearth"), "the population's habitability label"),
    _b("biosignature", ("x_o2", "x_ch4"), "O2 > 1% with CH4 > 1 ppm, or CH4 > 100 ppm"),
)

VARIABLE_NAMES: tuple[str, ...] = tuple(v.name for v in VARIABLES)
VARIABLE_BY_NAME: dict[str, Variable] = {v.name: v for v in VARIABLES}


# ---------------------------------------------------------------- interventions
@dataclasses.dataclass(frozen=True)
class Intervention:
    """``do(variable := ...)``: ``set`` replaces the natural value with ``value`` (a number or
    one value per planet), ``scale`` multiplies it, ``shift`` adds to it."""

    op: str
    value: float | np.ndarray

    def __post_init__(self) -> None:
        if self.op not in ("set", "scale", "shift"):
            raise ValueError(f"intervention op must be set, scale or shift, got {self.op!r}")

    def __call__(self, natural: np.ndarray) -> np.ndarray:
        natural = np.asarray(natural)
        if self.op == "set":
            new = np.broadcast_to(np.asarray(self.value, natural.dtype), natural.shape)
            return np.array(new)
        if natural.dtype.kind in "bi":
            raise ValueError(f"cannot {self.op} a {natural.dtype} variable; set it instead")
        return natural * self.value if self.op == "scale" else natural + self.value

    def describe(self) -> str:
        return {"set": "= {}", "scale": "x {}", "shift": "+ {}"}[self.op].format(self.value)


def set_to(value) -> Intervention:
    return Intervention("set", value)


def scale(factor: float) -> Intervention:
    return Intervention("scale", factor)


def shift(amount: float) -> Intervention:
    return Intervention("shift", amount)


def as_interventions(do: Mapping | None,
                     variables: Mapping[str, Variable] | None = None) -> dict[str, Intervention]:
    """``{name: Intervention or value}`` checked against ``variables`` (default: the
    generator's graph; a bare value means set); ValueError naming an unknown variable or an
    out-of-range class."""
    variables = VARIABLE_BY_NAME if variables is None else variables
    out: dict[str, Intervention] = {}
    for name, spec in (do or {}).items():
        if name not in variables:
            raise ValueError(f"cannot intervene on {name!r}: not a variable of the causal graph "
                             f"(variables: {', '.join(variables)})")
        spec = spec if isinstance(spec, Intervention) else set_to(spec)
        var = variables[name]
        if var.kind != "continuous":
            if spec.op != "set":
                raise ValueError(f"{name} is {var.kind}: set it, do not {spec.op} it")
            values = np.asarray(spec.value)
            if np.any((values < 0) | (values >= var.num_classes) | (values != np.round(values))):
                raise ValueError(f"{name} takes classes 0-{var.num_classes - 1}, got {spec.value}")
        out[name] = spec
    return out


class Recorder:
    """What ``_simulate`` calls on each graph variable it computes: applies the intervention on
    it, if any, and keeps the value. With no interventions it returns the very same array, so
    the population is bitwise the one drawn without this machinery."""

    def __init__(self, do: Mapping | None = None):
        self.do: dict[str, Intervention] = as_interventions(do)
        self.values: dict[str, np.ndarray] = {}

    def __call__(self, name: str, natural: np.ndarray) -> np.ndarray:
        value = self.do[name](natural) if name in self.do else natural
        if name in self.values:
            raise RuntimeError(f"causal variable {name!r} recorded twice")
        self.values[name] = value
        return value

    def intervened(self, name: str) -> bool:
        return name in self.do

    def table(self) -> dict[str, np.ndarray]:
        """The variables in declaration order; RuntimeError naming any not computed (a drift
        between the declaration and the code)."""
        missing = [n for n in VARIABLE_NAMES if n not in self.values]
        if missing or len(self.values) != len(VARIABLE_NAMES):
            extra = sorted(set(self.values) - set(VARIABLE_NAMES))
            raise RuntimeError(f"causal graph and generator disagree: missing {missing}, "
                               f"undeclared {extra}")
        return {n: self.values[n] for n in VARIABLE_NAMES}


def to_model_scale(name: str, values: np.ndarray) -> np.ndarray:
    """A variable's values on its declared scale (log10, floored; or as they are), float64."""
    var = VARIABLE_BY_NAME[name]
    values = np.asarray(values, np.float64)
    if var.kind == "continuous" and var.scale == "log10":
        return np.log10(np.maximum(values, var.floor) if var.floor else values)
    return values


def from_model_scale(name: str, values) -> np.ndarray:
    """The inverse of :func:`to_model_scale` (a floored value comes back as the floor)."""
    var = VARIABLE_BY_NAME[name]
    values = np.asarray(values, np.float64)
    if var.kind == "continuous" and var.scale == "log10":
        return 10.0**values
    return values

