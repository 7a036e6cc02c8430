"""The templated English description of a planet (the language model's training text)."""

from __future__ import annotations

import re

from astrojax.data.generator.physics import (
    AIRLESS_PRESSURE_BAR,
    CLIMATE_REGIMES,
    FREEZING_K,
    GASEOUS_RADIUS_REARTH,
    GASES,
    MIN_LIQUID_PRESSURE_BAR,
    STAR_TYPES,
    boiling_point_k,
)

# ---------------------------------------------------------------- text
_GAS_LABELS = {"n2": "N2", "o2": "O2", "co2": "CO2", "ch4": "CH4", "h2o": "H2O", "h2": "H2"}
_STAR_ARTICLE = {"M": "an", "K": "a", "G": "a", "F": "an"}
_BIOSPHERE_TEXT = ("no biosphere", "a methanogenic biosphere",
                   "an anoxygenic photosynthetic biosphere", "an oxygenic photosynthetic biosphere")


def _num(x: float) -> str:
    """About three significant figures, never in exponent notation."""
    for limit, digits in ((100, 0), (10, 1), (1, 2), (0.01, 3)):
        if x >= limit:
            return f"{x:.{digits}f}"
    return f"{x:.4f}"


def _amount(x: float) -> str:
    """A mixing ratio as a percentage, or in ppm below 0.1%."""
    if x >= 1e-3:
        return f"{100 * x:.1f}%"
    return f"{1e6 * x:.0f} ppm" if x >= 0.5e-6 else "under 1 ppm"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _atmosphere_text(r: dict) -> str:
    if r["surface_pressure_bar"] < AIRLESS_PRESSURE_BAR:
        return "it has no real atmosphere (under 0.001 bar) and so no greenhouse effect"
    ranked = sorted(GASES, key=lambda g: -r[f"x_{g}"])
    main = [f"{_amount(r[f'x_{g}'])} {_GAS_LABELS[g]}" for g in ranked[:3]]
    extra = [f"{_GAS_LABELS[g]} at {_amount(r[f'x_{g}'])}" for g in ("co2", "ch4")
             if g not in ranked[:3]]
    text = f"its {_num(r['surface_pressure_bar'])} bar atmosphere is {', '.join(main[:2])}"
    text += f" and {main[2]}"
    return text + (f", with {' and '.join(extra)}" if extra else "")


def _habitability_text(r: dict, phrasing: int) -> str:
    if r["habitable"]:
        return ("liquid water is stable on its surface, so it is habitable",
                "it is habitable, with liquid water on its surface")[phrasing]
    t, p = r["surface_temperature_k"], r["surface_pressure_bar"]
    if r["planet_radius_rearth"] > GASEOUS_RADIUS_REARTH:
        why = f"at {r['planet_radius_rearth']:.2f} Earth radii it is a gas-rich mini-Neptune"
    elif p < MIN_LIQUID_PRESSURE_BAR:
        why = "its atmosphere is too thin to hold liquid water"
    elif r["water_fraction"] == 0:
        why = "its surface is dry"
    elif t <= FREEZING_K:
        why = "its surface is below freezing"
    elif t >= boiling_point_k(p):
        why = "its surface is above the boiling point of water"
    else:
        why = "its surface pressure is crushing"
    return ("it is not habitable: ", "it is uninhabitable because ")[phrasing] + why


def _life_text(r: dict, phrasing: int) -> str:
    life = _BIOSPHERE_TEXT[r["biosphere"]]
    if r["biosignature"]:
        kind = "O2 with CH4" if r["x_o2"] > 0.01 and r["x_ch4"] > 1e-6 else "abundant CH4"
        sign = f"a biosignature ({kind}) is detectable"
    else:
        sign = "no biosignature is detectable"
    return (f"It hosts {life} and {sign}.", f"Life: {life}; {sign}.")[phrasing]


def describe_planet(record: dict, variant: int) -> str:
    """Plain-ASCII English description of one planet record; ``variant`` (any int) picks the
    template and phrasing. Every number stated is the record's own, rounded."""
    r, v = record, int(variant)
    star = STAR_TYPES[r["star_type"]]
    ts, teq = f"{r['surface_temperature_k']:.0f} K", f"{r['equilibrium_temperature_k']:.0f} K"
    a, period = f"{_num(r['semi_major_axis_au'])} AU", f"{_num(r['orbital_period_days'])} days"
    s, albedo = _num(r["insolation_searth"]), f"{r['bond_albedo']:.2f}"
    regime, teff = CLIMATE_REGIMES[r["climate_regime"]], f"{r['star_teff_k']:.0f} K"
    atmo = _atmosphere_text(r)
    hab, life = _habitability_text(r, (v >> 2) & 1), _life_text(r, (v >> 3) & 1)
    template = v % 4
    if template == 0:
        text = (f"{r['name']} orbits {_STAR_ARTICLE[star]} {star}-type star ({teff}) at {a}, "
                f"once every {period}. It receives {s} times Earth's insolation; with a Bond "
                f"albedo of {albedo} its equilibrium temperature is {teq}. {_cap(atmo)}. "
                f"The surface is at {ts}, a {regime} climate, and {hab}. {life}")
    elif template == 1:
        text = (f"Planet {r['name']}: a {r['planet_radius_rearth']:.2f} Earth-radius world "
                f"around a {teff} {star} star, {a} out, period {period}, insolation {s} "
                f"S_earth. Equilibrium temperature {teq} (albedo {albedo}); {atmo}. The surface "
                f"temperature is {ts}, so its climate is {regime}. {_cap(hab)}. {life}")
    elif template == 2:
        text = (f"Circling {_STAR_ARTICLE[star]} {star} dwarf of {teff} at {a} every {period}, "
                f"{r['name']} gets {s} times the starlight Earth does, for an equilibrium "
                f"temperature of {teq} (albedo {albedo}); {atmo}. It actually averages {ts} at the "
                f"surface ({regime} regime). {_cap(hab)}. {life}")
    else:
        text = (f"{r['name']}. Star: {star}-type, {teff}. Orbit: {a}, {period}. Insolation: "
                f"{s} x Earth. Bond albedo: {albedo}. Equilibrium temperature: {teq}. "
                f"Atmosphere: {atmo}. Surface temperature: {ts}. Climate: {regime}. "
                f"Habitability: {_habitability_text(r, 1)}. {life}")
    return text




# ---------------------------------------------------------------- reading a description back
#: The facts :func:`read_description` reads, named as the planet record's columns (the truth).
DESCRIPTION_FACTS = ("climate_regime", "biosphere", "habitable", "biosignature", "star_type")

# Each pattern captures the words that state one fact, in any template and phrasing above; the
# words are then looked up, so a statement the templates never make ("a warm climate") reads
# as unparseable rather than as the nearest fact.
_FACT_PATTERNS = {
    "climate_regime": re.compile(r"\ba (\w+) climate\b|\bclimate is (\w+)|\((\w+) regime\)|"
                                 r"\bclimate: (\w+)", re.IGNORECASE),
    "biosphere": re.compile(r"\b(?:hosts|life:) (.+?)(?: and |;)", re.IGNORECASE),
    "habitable": re.compile(r"\bit is (not habitable|uninhabitable|habitable)\b", re.IGNORECASE),
    "biosignature": re.compile(r"\b(\w+) biosignature(?: \([^)]*\))? is detectable",
                               re.IGNORECASE),
    "star_type": re.compile(r"\b([A-Z])(?:-type| dwarf| star)\b"),
}
_FACT_VALUES = {
    "climate_regime": {name: i for i, name in enumerate(CLIMATE_REGIMES)},
    "biosphere": {text: i for i, text in enumerate(_BIOSPHERE_TEXT)},
    "habitable": {"habitable": 1, "not habitable": 0, "uninhabitable": 0},
    "biosignature": {"a": 1, "no": 0},
    "star_type": {name: i for i, name in enumerate(STAR_TYPES)},
}


def read_description(text: str) -> dict[str, int | None]:
    """The facts a description states, by :data:`DESCRIPTION_FACTS` name, as the record's
    values (indices into CLIMATE_REGIMES, the biosphere classes, STAR_TYPES; 1/0 for habitable
    and biosignature). A fact is None (unparseable) when the text does not state it, states it
    in words the templates never use, or states two different values. Reads every description
    :func:`describe_planet` writes, in every template and phrasing, back to its record's
    values."""
    facts: dict[str, int | None] = {}
    for name, pattern in _FACT_PATTERNS.items():
        values = _FACT_VALUES[name]
        said = {next(g for g in match.groups() if g is not None) for match in
                pattern.finditer(text)}
        if name != "star_type":
            said = {s.lower() for s in said}
        read = {values.get(s) for s in said}
        facts[name] = read.pop() if len(read) == 1 else None
    return facts
