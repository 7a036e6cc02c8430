"""What to observe next: candidate observations of a planet ranked by expected information gain
on a label per unit of observing cost, and the acquisition policies it is judged against.

**The observations** (``OBSERVATIONS``; costs in :class:`~astrojax.config.sections.
MetacognitionConfig`): ``host_star``, a spectroscopic characterisation of the host (its Teff,
radius and mass where the catalogue lacks them); ``rv_mass``, a radial-velocity campaign (the
planet's mass and eccentricity where lacking); ``spectrum`` to ``n`` transits, a transmission
spectrum of a transiting planet taken, or extended, to ``n`` transits (it costs the added
transits). A measurement only fills what is unknown; the columns derived from measurements
(luminosity, semi-major axis, insolation, T_eq, planet radius from the transit's radius ratio,
surface gravity) are derived again by the generator's rules (``generator.observe``). Climate
cubes, hypothesised networks and observing notes are not candidates: the generator makes them
from the catalogue row and draws independent of the planet's truth, so given the row they
carry no information about any label (``I(y; o | row) = 0`` by construction; the README's
leakage check measures it), and the fusion model reads them through packed encoders this
module does not feed.

**The outcomes of a planet's observations** come from a second catalogue of the same planets
with every measurement made (``CatalogueModel`` with every ``*_known`` share 1: the same noise
draws, so a value the catalogue publishes is the same in both) and from spectra after each
number of transits (``planet_spectra``: the same noise draws for every count).

**Expected information gain** of a candidate ``o`` about the label ``y`` of a planet with row
``x``: ``I(y; o | x) = H[E_o p(y | x, o)] - E_o H[p(y | x, o)]``, the expectation over plausible
outcomes. The outcomes are the observation as it came out for the ``draws`` train planets
nearest to the planet in its observed row (standardized columns the planet has; same transiting
status): an empirical ``p(o | x)``. ``p`` is the calibrated ensemble's predictive probability.
Simplifications, stated: a spectrum's draw ignores the planet's own shorter spectrum if it has
one; the neighbours' outcomes are taken whole (a neighbour's mass with the planet's own radius).

**Policies** (:func:`acquire`): each planet acquires its candidates one at a time until none is
left: ``eig_per_cost`` the largest EIG per cost (re-estimated after each acquisition),
``random`` uniformly at random, ``fixed`` the astronomer's habit (host star, mass, then the
spectrum one transit count at a time). :func:`budget_curve` scores the held-out planets'
predictions after each planet has spent a budget.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from astrojax.config.sections import OBSERVATIONS, ConfigError, MetacognitionConfig
from astrojax.data.generator.observe import CatalogueModel, observe_catalogue
from astrojax.data.generator.physics import (
    ASSUMED_BOND_ALBEDO,
    equilibrium_temperature,
    insolation,
    stellar_luminosity,
    surface_gravity,
)
from astrojax.data.generator.spectra import planet_spectra, spectral_grid
from astrojax.evaluators.metrics import roc_auc
from astrojax.metacognition.calibration import nll
from astrojax.metacognition.selective import binary_entropy
from astrojax.tasks.fusion import catalogue_row, spectrum_inputs, standardized_row

# what each observation measures (where unknown)
MEASURES = {"host_star": ("star_teff_k", "star_radius_rsun", "star_mass_msun"),
            "rv_mass": ("planet_mass_mearth", "eccentricity")}
POLICIES = ("eig_per_cost", "random", "fixed")
SPECTRUM_KEYS = ("spectrum_depth", "spectrum_sigma", "spectrum_known", "has_spectrum")


def check_config(mc: MetacognitionConfig, binary_labels: tuple[str, ...] = ()) -> dict[str, float]:
    """The cost table as a dict; a ConfigError naming ``metacognition.KEY`` for a bad value."""
    costs = {}
    for entry in mc.costs:
        if len(entry) != 2 or entry[0] not in OBSERVATIONS:
            raise ConfigError("metacognition.costs", f"{entry!r}: entries are (observation, cost) "
                                                     f"with observations {', '.join(OBSERVATIONS)}")
        if not float(entry[1]) > 0:
            raise ConfigError("metacognition.costs", f"{entry[0]}'s cost must be > 0, got "
                                                     f"{entry[1]!r}")
        costs[entry[0]] = float(entry[1])
    missing = [o for o in OBSERVATIONS if o not in costs]
    if missing:
        raise ConfigError("metacognition.costs", f"no cost for {', '.join(missing)}")
    if binary_labels and mc.label not in binary_labels:
        raise ConfigError("metacognition.label", f"{mc.label!r} is not a binary label of the "
                                                 f"model ({', '.join(binary_labels)})")
    if mc.draws < 2:
        raise ConfigError("metacognition.draws", f"needs at least 2 outcomes, got {mc.draws}")
    if not 0.0 < mc.coverage <= 1.0:
        raise ConfigError("metacognition.coverage", f"must be in (0, 1], got {mc.coverage}")
    if not mc.spectrum_transits or min(mc.spectrum_transits) < 1 or \
            list(mc.spectrum_transits) != sorted(set(mc.spectrum_transits)):
        raise ConfigError("metacognition.spectrum_transits",
                          f"{mc.spectrum_transits!r}: increasing transit counts >= 1")
    return costs


def derive(values: dict[str, np.ndarray], ratio: np.ndarray) -> dict[str, np.ndarray]:
    """Fills the derived catalogue columns that are unknown (NaN) from the measured ones, by
    ``observe_catalogue``'s rules; ``ratio``: the transit's Rp / R* (NaN: no transit)."""
    v = {c: np.asarray(x, np.float64).copy() for c, x in values.items()}

    def fill(column: str, new: np.ndarray) -> None:
        v[column] = np.where(np.isfinite(v[column]), v[column], new)

    with np.errstate(invalid="ignore", divide="ignore"):
        fill("star_luminosity_lsun", stellar_luminosity(v["star_radius_rsun"], v["star_teff_k"]))
        fill("semi_major_axis_au", (v["orbital_period_days"] / 365.25) ** (2 / 3)
             * v["star_mass_msun"] ** (1 / 3))
        fill("insolation_searth", insolation(v["star_luminosity_lsun"], v["semi_major_axis_au"]))
        fill("equilibrium_temperature_k", equilibrium_temperature(v["insolation_searth"],
                                                                  ASSUMED_BOND_ALBEDO))
        fill("planet_radius_rearth", ratio * v["star_radius_rsun"])
        fill("surface_gravity_ms2", surface_gravity(v["planet_mass_mearth"],
                                                    v["planet_radius_rearth"]))
    return v


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One observation a planet could get: ``kind`` (OBSERVATIONS) and, for a spectrum, the
    transit count it is taken to."""

    kind: str
    transits: int = 0

    @property
    def name(self) -> str:
        return f"spectrum_{self.transits}" if self.kind == "spectrum" else self.kind


class World:
    """The synthetic planets of a fusion task as a source of outcomes: their observed rows,
    the rows with every measurement made, and spectra after each transit count of ``mc``.
    Row-valued outcomes are taken from ``complete``; spectra from ``spectra[n]``."""

    def __init__(self, task, mc: MetacognitionConfig):
        self.task, self.mc = task, mc
        self.costs = check_config(mc)
        population, seed = task.table.population, task.cfg.planets.seed
        self.observed = task.catalogue
        everything = CatalogueModel(teff_known=1.0, star_radius_known=1.0, star_mass_known=1.0,
                                    mass_known_if_transiting=1.0, eccentricity_known_with_mass=1.0,
                                    eccentricity_known_without_mass=1.0)
        self.complete = observe_catalogue(population, seed, everything)
        self.transiting = self.complete.transiting
        with np.errstate(invalid="ignore"):
            self.ratio = np.where(self.transiting, self.complete.values["planet_radius_rearth"]
                                  / self.complete.values["star_radius_rsun"], np.nan)
        self.reads_spectrum = task.model_config.spectrum_bins > 0
        d = task.cfg.data
        self.initial_transits = np.where(task.masks["spectrum"], d.n_transits, 0) \
            if self.reads_spectrum else np.zeros(len(population), int)
        self._spectra = {}

    def spectrum(self, planets: np.ndarray, transits: np.ndarray) -> dict[str, np.ndarray]:
        """The spectrum model inputs of ``planets`` after ``transits`` transits each (0: none)."""
        bins = self.task.model_config.spectrum_bins
        raw = len(spectral_grid(self.task.cfg.data.instrument))
        depth, sigma = np.zeros((len(planets), raw)), np.ones((len(planets), raw))
        for n in np.unique(transits):
            if n == 0:
                continue
            if n not in self._spectra:
                self._spectra[int(n)] = planet_spectra(
                    self.task.table.population, self.task.cfg.data.instrument, n_transits=int(n),
                    seed=self.task.cfg.planets.seed)[:2]
            d, s = self._spectra[int(n)]
            here = transits == n
            depth[here], sigma[here] = d[planets[here]], s[planets[here]]
        has = transits > 0
        out = spectrum_inputs(depth, sigma, np.broadcast_to(has[:, None], depth.shape), bins)
        out["has_spectrum"] = has
        return out

    @functools.cached_property
    def standardized_complete(self) -> tuple[np.ndarray, np.ndarray]:
        values, known = catalogue_row(self.complete.values, self.task.row_columns)
        s = self.task.statistics
        return standardized_row(values, known, s["row_mean"], s["row_std"]), known


@dataclasses.dataclass
class State:
    """What each planet of a set has been observed with: its catalogue values (NaN unknown),
    the transit count of its spectrum (0: none), the transit's radius ratio Rp / R* (NaN: no
    transit) and, for planets outside the world (real ones: ``planets`` -1), their own spectrum
    inputs (``own_spectrum``, ``[planets, ...]``; None for the world's planets, whose spectra
    the world holds)."""

    planets: np.ndarray
    values: dict[str, np.ndarray]
    transits: np.ndarray
    ratio: np.ndarray
    own_spectrum: dict[str, np.ndarray] | None = None

    @property
    def transiting(self) -> np.ndarray:
        return np.isfinite(self.ratio)

    @classmethod
    def observed(cls, world: World, planets: np.ndarray) -> State:
        """The world's ``planets`` as the catalogue has them."""
        planets = np.asarray(planets)
        return cls(planets, {c: v[planets].copy() for c, v in world.observed.values.items()},
                   world.initial_transits[planets].copy(), world.ratio[planets].copy())

    @classmethod
    def published(cls, values: dict[str, np.ndarray], spectrum: dict[str, np.ndarray] | None,
                  has_spectrum: np.ndarray) -> State:
        """Planets outside the world at their published ``values`` (every CATALOGUE_COLUMNS
        entry; NaN unpublished): transiting where a radius is published (its ratio from the
        radius and the host's radius), with their own ``spectrum`` inputs where
        ``has_spectrum`` (no spectrum is then a candidate: its transit count is unknown)."""
        values = {c: np.asarray(v, np.float64).copy() for c, v in values.items()}
        n = len(next(iter(values.values())))
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = values["planet_radius_rearth"] / values["star_radius_rsun"]
        transiting = np.isfinite(values["planet_radius_rearth"])
        ratio = np.where(transiting, np.where(np.isfinite(ratio), ratio, np.nan), np.nan)
        # a transiting planet whose host radius is unknown: its ratio is not published either
        transits = np.where(np.asarray(has_spectrum, bool), np.iinfo(np.int32).max, 0)
        return cls(np.full(n, -1), values, transits, ratio, spectrum)

    def copy(self) -> State:
        return State(self.planets, {c: v.copy() for c, v in self.values.items()},
                     self.transits.copy(), self.ratio.copy(), self.own_spectrum)


def candidates(world: World, state: State, i: int) -> list[Candidate]:
    """The observations planet ``i`` of ``state`` could still get."""
    out = []
    for kind, columns in MEASURES.items():
        if any(not np.isfinite(state.values[c][i]) for c in columns):
            out.append(Candidate(kind))
    if world.reads_spectrum and state.transiting[i]:
        out += [Candidate("spectrum", n) for n in world.mc.spectrum_transits
                if n > state.transits[i]]
    return out


def cost(world: World, state: State, i: int, c: Candidate) -> float:
    if c.kind == "spectrum":
        return world.costs["spectrum"] * (c.transits - state.transits[i])
    return world.costs[c.kind]


def outcome_inputs(world: World, state: State, rows: np.ndarray, cands: list[Candidate],
                   sources: np.ndarray) -> dict[str, np.ndarray]:
    """Model inputs ``[R, ...]``: planet ``rows[r]`` of ``state`` after observation
    ``cands[r]`` (None: nothing more) came out as it did for planet ``sources[r]`` (the planet
    itself: the truth; a neighbour: a plausible outcome)."""
    values = {c: v[rows].copy() for c, v in state.values.items()}
    transits = state.transits[rows].copy()
    spec_source = state.planets[rows].copy()
    for kind, columns in MEASURES.items():
        take = np.array([c is not None and c.kind == kind for c in cands], bool)
        for column in columns:
            new = world.complete.values[column][sources]
            values[column] = np.where(take & ~np.isfinite(values[column]), new, values[column])
    spec = np.array([c is not None and c.kind == "spectrum" for c in cands], bool)
    transits[spec] = [c.transits for c in np.asarray(cands, object)[spec]]
    spec_source[spec] = sources[spec]
    values = derive(values, state.ratio[rows])
    raw, known = catalogue_row(values, world.task.row_columns)
    s = world.task.statistics
    out = {"row_values": standardized_row(raw, known, s["row_mean"], s["row_std"]),
           "row_known": known}
    if world.reads_spectrum:
        synthetic = spec_source >= 0
        out.update(world.spectrum(np.maximum(spec_source, 0), np.where(synthetic, transits, 0)))
        if state.own_spectrum is not None:  # planets outside the world keep their own
            own = ~synthetic
            for key in SPECTRUM_KEYS:
                out[key][own] = np.asarray(state.own_spectrum[key])[rows[own]]
    return out


def apply(world: World, state: State, i: int, c: Candidate) -> None:
    """Planet ``i`` of ``state`` gets observation ``c``, as it truly comes out."""
    if c.kind == "spectrum":
        state.transits[i] = c.transits
        return
    p = state.planets[i]
    for column in MEASURES[c.kind]:
        if not np.isfinite(state.values[column][i]):
            state.values[column][i] = world.complete.values[column][p]
    one = derive({k: v[i:i + 1] for k, v in state.values.items()}, state.ratio[i:i + 1])
    for column, v in one.items():
        state.values[column][i] = v[0]


def neighbours(world: World, state: State, k: int) -> np.ndarray:
    """``[planets, k]``: per planet of ``state`` the ``k`` train planets nearest in the
    standardized catalogue columns the planet has (squared distance), among those of the same
    transiting status; never the planet itself."""
    task = world.task
    s = task.statistics
    raw, known = catalogue_row(state.values, task.row_columns)
    x = standardized_row(raw, known, s["row_mean"], s["row_std"])
    pool_x, _ = world.standardized_complete
    train = task.split.train
    out = np.empty((len(state.planets), k), np.int64)
    for flag in (False, True):
        mine = np.flatnonzero(state.transiting == flag)
        pool = train[world.transiting[train] == flag]
        if not len(mine):
            continue
        if len(pool) < k:
            raise ValueError(f"only {len(pool)} train planets to draw outcomes from, need {k}")
        px = np.nan_to_num(pool_x[pool])
        for chunk in np.array_split(mine, max(1, len(mine) // 256)):
            diff = (x[chunk, None, :] - px[None]) ** 2 * known[chunk, None, :]
            dist = diff.sum(-1)
            dist[pool[None, :] == state.planets[chunk, None]] = np.inf
            out[chunk] = pool[np.argsort(dist, axis=1, kind="stable")[:, :k]]
    return out


def information_gain(p_draws: np.ndarray) -> np.ndarray:
    """``H[mean_j p_j] - mean_j H[p_j]`` (bits) over the last axis of ``p_draws``."""
    return binary_entropy(p_draws.mean(-1)) - binary_entropy(p_draws).mean(-1)


def expected_gains(ensemble, world: World, state: State, label: str,
                   which: np.ndarray | None = None) -> list[dict[Candidate, float]]:
    """Per planet of ``state`` (those in ``which``, default all) each candidate's EIG (bits)
    about ``label``, from ``world.mc.draws`` neighbours' outcomes."""
    which = np.arange(len(state.planets)) if which is None else np.asarray(which)
    k = world.mc.draws
    near = neighbours(world, state, k)
    rows, cands, sources, owner = [], [], [], []
    for i in which:
        for c in candidates(world, state, i):
            rows += [i] * k
            cands += [c] * k
            sources.append(near[i])
            owner.append((i, c))
    out = [{} for _ in range(len(state.planets))]
    if not owner:
        return out
    inputs = outcome_inputs(world, state, np.asarray(rows), cands, np.concatenate(sources))
    p = ensemble.probability(ensemble.logits(inputs)[label], label).reshape(len(owner), k)
    gains = information_gain(p)
    for (i, c), g in zip(owner, gains, strict=True):
        out[i][c] = float(g)
    return out


def realised_gains(ensemble, world: World, state: State, label: str, labels: np.ndarray
                   ) -> dict[str, dict[str, float]]:
    """Per candidate kind at ``state``: the mean EIG the model expected (bits) and the mean
    reduction of the log-loss of the true ``labels`` (bits) when the observation comes out as
    it truly does, over the planets that could get it. Over many planets the second is what
    the observation is truly worth to this model, which the first should track."""
    y = np.asarray(labels) > 0.5
    gains = expected_gains(ensemble, world, state, label)
    rows, cands = [], []
    for i, row in enumerate(gains):
        for c in row:
            rows.append(i)
            cands.append(c)
    if not rows:
        return {}
    rows = np.asarray(rows)
    before = predictions(ensemble, world, state, label)[rows]
    inputs = outcome_inputs(world, state, rows, cands, state.planets[rows])
    after = ensemble.probability(ensemble.logits(inputs)[label], label)

    def loss(p):
        p = np.clip(p, 1e-7, 1 - 1e-7)
        return -np.where(y[rows], np.log2(p), np.log2(1 - p))

    realised = loss(before) - loss(after)
    out: dict[str, dict[str, list]] = {}
    for r, c, g in zip(rows, cands, realised, strict=True):
        entry = out.setdefault(c.name, {"expected": [], "realised": []})
        entry["expected"].append(gains[r][c])
        entry["realised"].append(g)
    return {name: {"planets": len(v["expected"]),
                   "mean_expected_gain_bits": float(np.mean(v["expected"])),
                   "mean_realised_log_loss_reduction_bits": float(np.mean(v["realised"])),
                   "realised_se": float(np.std(v["realised"]) / np.sqrt(len(v["realised"])))}
            for name, v in sorted(out.items())}


def predictions(ensemble, world: World, state: State, label: str) -> np.ndarray:
    """The calibrated ensemble's ``P(label)`` for every planet of ``state`` as it stands."""
    rows = np.arange(len(state.planets))
    inputs = outcome_inputs(world, state, rows, [None] * len(rows), state.planets)
    return ensemble.probability(ensemble.logits(inputs)[label], label)


_FIXED = {"host_star": 0, "rv_mass": 1, "spectrum": 2}


def acquire(ensemble, world: World, planets: np.ndarray, policy: str, label: str,
            seed: int = 0) -> dict:
    """Each planet acquires its candidates one at a time by ``policy`` until none is left.
    Returns ``{"cost": [planets, steps + 1], "p": [planets, steps + 1], "chosen": [[names]]}``
    (cumulative cost and P(label) after each acquisition; a planet that ran out repeats its
    last entry) and, for eig_per_cost, the EIG of every candidate at the first step."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    rng = np.random.default_rng(seed)
    state = State.observed(world, planets)
    n = len(planets)
    spent = np.zeros(n)
    costs, probs, chosen = [spent.copy()], [predictions(ensemble, world, state, label)], \
        [[] for _ in range(n)]
    first_gains = None
    while True:
        open_ = [i for i in range(n) if candidates(world, state, i)]
        if not open_:
            break
        gains = expected_gains(ensemble, world, state, label, open_) \
            if policy == "eig_per_cost" else None
        if first_gains is None and gains is not None:
            first_gains = [{c.name: g for c, g in row.items()} for row in gains]
        for i in open_:
            options = candidates(world, state, i)
            if policy == "eig_per_cost":
                pick = max(options, key=lambda c: (gains[i][c] / cost(world, state, i, c),
                                                   -cost(world, state, i, c)))
            elif policy == "random":
                pick = options[rng.integers(len(options))]
            else:
                pick = min(options, key=lambda c: (_FIXED[c.kind], c.transits))
            spent[i] += cost(world, state, i, pick)
            chosen[i].append(pick.name)
            apply(world, state, i, pick)
        costs.append(spent.copy())
        probs.append(predictions(ensemble, world, state, label))
    return {"cost": np.stack(costs, 1), "p": np.stack(probs, 1), "chosen": chosen,
            "first_gains": first_gains}


def budget_curve(trajectory: dict, labels: np.ndarray, budgets: np.ndarray) -> dict[str, list]:
    """For each per-planet budget: every planet's prediction after the acquisitions it could
    pay for in its order, scored over the planets: AUC, NLL (nats), mean predictive entropy
    (bits) and the share of planets with something still unacquired within budget."""
    y = np.asarray(labels) > 0.5
    cost, p = trajectory["cost"], trajectory["p"]
    out = {"budget": [float(b) for b in budgets], "auc": [], "nll": [], "entropy": []}
    for b in budgets:
        last = (cost <= b + 1e-9).sum(1) - 1
        q = p[np.arange(len(p)), last]
        out["auc"].append(roc_auc(q[y], q[~y]))
        out["nll"].append(nll(y, q))
        out["entropy"].append(float(binary_entropy(q).mean()))
    return out


def area(curve: dict[str, list], metric: str) -> float:
    """The mean of ``metric`` over the budget range (trapezoid area / range): one number per
    policy for the table."""
    b = np.asarray(curve["budget"])
    m = np.asarray(curve[metric])
    return float(np.trapezoid(m, b) / (b[-1] - b[0])) if b[-1] > b[0] else float(m[0])
