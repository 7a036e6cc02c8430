"""Predictions for real planets: a trained fusion model run on a ``build-catalog`` folder (and
observed spectra), one ranked row per planet, with uncertainties from the catalogue's errors.

``python -m astrojax.predict --checkpoint WORKDIR --catalog DIR --out FILE [--spectra DIR]``;
from Python, :func:`predict` then :func:`write`.

**What the model sees.** Each planet's catalogue row, transformed exactly as the fusion task
transforms its training rows (:func:`astrojax.tasks.fusion.catalogue_row` and
:func:`~astrojax.tasks.fusion.standardized_row` with the train split's means and standard
deviations saved in the checkpoint): log10 of the positive columns, unknown columns masked.
A planet with a spectrum file in ``--spectra`` also gets its spectrum, read by
:func:`astrojax.data.formats.spectra.read_spectrum`, resampled onto the model's grid with its
errors (bins the file does not cover are masked; a file covering less than 90% of the grid is
reported, since the model saw only complete spectra) and made relative to its median like the
training spectra (:func:`~astrojax.tasks.fusion.spectrum_inputs`). Any other modality the model
was trained with as an embedding input (a climate cube's, a network's) is absent for every
planet (``has_NAME`` = 0), as modality dropout trained the model to handle; the output's
metadata lists them. A model input of another kind, which predict cannot fill with an absent
placeholder, is a :class:`PredictError` naming the batch key.

**Spectrum files** are matched to planets by file name: the name without its suffix (``.ecsv``,
``.txt``, ``.csv``, ``.dat``), compared after :func:`astrojax.data.archives.quality.
normalize_name` (lower case, spaces, hyphens and underscores removed), the rule
``build-catalog`` uses to match planets across archives: ``TRAPPIST-1 e.txt``,
``trappist-1_e.ecsv`` and ``TRAPPIST1e.csv`` all name TRAPPIST-1 e. A file that names no
planet of the catalogue is reported (a warning, not an error); two files for one planet are an
error.

**Uncertainty.** ``samples`` Monte Carlo draws per planet: every column the catalogue publishes
with a 1-sigma error (``<column>_err``) is drawn in log space, ``x exp((sigma / x) z)`` with
``z`` standard normal (the generator's measurement model, ``generator.observe``); eccentricity
(linear) as ``|e + sigma z|``, below 0.99. Columns ``build-catalog`` derived for the planet
(its ``derived`` column; surface gravity always) are derived again from each draw by the same
rules (:func:`astrojax.data.archives.catalog.derive_missing`), so they carry their inputs'
errors. Published columns without an error (exoplanets.org publishes none for luminosity, some
archive rows have none) are held at their value; errors are taken as symmetric and independent
between columns. Spectra are not perturbed: the model reads their errors as inputs and was
trained on noisy spectra. The reported probability is the mean over the draws, its uncertainty
their standard deviation; the probability at the published values is reported beside them.
Draws depend only on ``seed`` and the planet's name. This uncertainty covers measurement errors
only, not the model's own error, and the model was trained on the synthetic population
(:data:`CAVEAT`).

**Quarantined rows** (``quarantine.ecsv`` beside the catalogue: rows ``build-catalog``
rejected, with the reason) are listed at the end of the table with ``status`` "quarantined" and
their reason, never predicted.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from astropy.table import Column, MaskedColumn, Table

from astrojax.config.sections import MetacognitionConfig
from astrojax.data.archives.catalog import MEASURED
from astrojax.data.generator.spectra import spectral_grid
from astrojax.metacognition.acquisition import State, World, cost, expected_gains
from astrojax.metacognition.ensemble import Ensemble, load_ensemble
from astrojax.metacognition.selective import binary_entropy, max_probability
from astrojax.metacognition.trust import trust, trust_text
from astrojax.predict.inputs import (
    SPECTRUM_SUFFIXES,
    PredictError,
    perturbed_columns,
    read_catalogue,
    read_spectra,
)
from astrojax.tasks.fusion import catalogue_row, spectrum_inputs, standardized_row
from astrojax.train.restore import TrainedModel

CAVEAT = ("These probabilities come from a model trained on astrojax's synthetic planet "
          "population, not on real planets: no real exoplanet's habitability or biosignature is "
          "known. Their uncertainty covers the catalogue's published measurement errors only, "
          "not the model's own error nor how the synthetic world differs from the real one.")
LABELS = ("habitable", "biosignature")
_BATCH = 512  # rows per model call (the last call is padded: one compilation)


@dataclasses.dataclass
class Prediction:
    """The output table (predicted planets ranked, then quarantined rows) and the warnings."""

    table: Table
    warnings: list[str]

    @property
    def predicted(self) -> Table:
        return self.table[self.table["status"] == "predicted"]

    def summary(self, out: Path | None = None) -> str:
        """One line: how many planets, the top one, the files written."""
        ranked = self.predicted
        quarantined = len(self.table) - len(ranked)
        spectra = int(sum("spectrum" in m for m in ranked["modalities"]))
        line = (f"{len(ranked)} planets predicted ({spectra} with a spectrum), {quarantined} "
                "quarantined rows listed, not predicted")
        if len(ranked):
            top = ranked[0]
            line += (f"; highest p_habitable: {top['name']} {top['p_habitable']:.3f} ± "
                     f"{top['p_habitable_std']:.3f}")
            if "next_observation" in ranked.colnames and top["next_observation"]:
                line += (f", next observation {top['next_observation']} "
                         f"({top['next_observation_eig']:.3f} bits for "
                         f"{top['next_observation_cost']:g})")
        if out is not None:
            line += f"; wrote {out} and {out.with_suffix('.png')}"
        return line + " (model trained on synthetic planets)"


# ------------------------------------------------------------------------------ the model
def _absent_inputs(trained: TrainedModel) -> tuple[dict[str, tuple], list[str]]:
    """Zero arrays (shape after the batch axis) and names of the modalities predict cannot
    supply: the model's embedding inputs."""
    m = trained.task.model_config
    shapes, names = {}, []
    for name, width in m.embedding_inputs:
        shapes[name], shapes[f"has_{name}"] = (width,), ()
        names.append(name)
    return shapes, names + list(trained.model.encoded)  # its own encoders: absent_inputs


def _probabilities(ensemble: Ensemble, rows: dict[str, np.ndarray],
                   planets: dict[str, np.ndarray], draws: int,
                   labels: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Per label the members' calibrated probabilities ``[members, rows]`` for each row of
    ``rows`` (``[planets * draws, ...]``: the catalogue draws); ``planets`` holds the inputs
    shared by a planet's draws (``[planets, ...]``). The ensemble runs in padded batches (one
    compilation)."""
    total = len(rows["row_values"])
    index = np.arange(total) // max(draws, 1)
    inputs = {**rows, **{k: v[index] for k, v in planets.items()}}
    try:
        logits = ensemble.logits(inputs) if total else {
            name: np.zeros((ensemble.size, 0)) for name in labels}
    except KeyError as err:
        raise PredictError(f"the model in {ensemble.members[0].workdir} reads input {err} that "
                           "predict cannot supply (a modality it does not know)") from None
    t = ensemble.temperature
    return {name: 0.5 * (1.0 + np.tanh(0.5 * logits[name] / t.get(name, 1.0)))
            for name in labels}


def predict(checkpoint: str | Path | TrainedModel | Ensemble, catalog: str | Path,
            spectra: str | Path | None = None, *, samples: int = 32, seed: int = 0,
            metacognition: MetacognitionConfig | None = None) -> Prediction:
    """Ranked predictions for the planets of ``catalog`` (a ``build-catalog`` folder or its
    ``catalog.ecsv``) by the fusion model of workdir ``checkpoint``, or the ensemble of folder
    ``checkpoint`` (``astrojax.metacognition.train_ensemble``; calibrated when it holds a
    ``calibration.json``), or one already loaded, with ``spectra`` (a folder of spectrum files
    named by planet) where given; with each planet's uncertainty, input trust and recommended
    next observation (``metacognition``'s costs)."""
    if samples < 1:
        raise PredictError(f"--samples must be at least 1, got {samples}")
    cat = read_catalogue(Path(catalog))  # the cheap checks first
    if spectra is not None and not Path(spectra).is_dir():
        raise PredictError(f"--spectra {spectra}: no such folder")
    metacognition = metacognition or MetacognitionConfig()
    ensemble = checkpoint if isinstance(checkpoint, Ensemble) else load_ensemble(checkpoint)
    trained = ensemble.members[0]
    m, artifacts = trained.task.model_config, trained.artifacts
    classes = dict(m.classes)
    labels = tuple(name for name in LABELS if classes.get(name) == 2)
    if "habitable" not in labels:
        raise PredictError(f"the model in {trained.workdir} has no binary 'habitable' head "
                           f"(model.classes: {list(classes)})")
    if list(artifacts.get("row_columns", [])) != list(m.row_columns):
        raise PredictError(f"{trained.workdir}: the checkpoint's artifacts describe columns "
                           f"{artifacts.get('row_columns')}, its model reads {list(m.row_columns)}")
    n, draws = len(cat.names), 1 + samples
    grid = spectral_grid(trained.config.data.instrument)
    notes: list[str] = []
    found: dict[int, tuple] = {}
    if spectra is not None:
        if not m.spectrum_bins:
            raise PredictError(f"--spectra given, but the model in {trained.workdir} reads no "
                               f"spectrum (trained with data.spectrum_rate="
                               f"{trained.config.data.spectrum_rate})")
        found, notes = read_spectra(Path(spectra), cat, grid)

    columns, drawn = perturbed_columns(cat, samples, seed)
    values, known = catalogue_row({c: v.reshape(-1) for c, v in columns.items()}, m.row_columns)
    rows = {"row_values": standardized_row(values, known, artifacts["row_mean"],
                                           artifacts["row_std"]), "row_known": known}
    planets: dict[str, np.ndarray] = {}
    if m.spectrum_bins:
        raw = len(grid.wavelength_um)
        depth, sigma = np.zeros((n, raw)), np.ones((n, raw))
        has = np.zeros((n, raw), bool)
        for row, (d, s, k, _) in found.items():
            depth[row], sigma[row], has[row] = np.nan_to_num(d), np.nan_to_num(s, nan=1.0), k
        planets.update(spectrum_inputs(depth, sigma, has, m.spectrum_bins))
        planets["has_spectrum"] = has.any(axis=1)
    shapes, absent = _absent_inputs(trained)
    planets.update({k: np.zeros((n, *shape), np.float32) for k, shape in shapes.items()})
    members = _probabilities(ensemble, rows, planets, draws, labels)
    p = {k: v.mean(axis=0).reshape(n, draws) for k, v in members.items()}
    model_std = {k: v.reshape(ensemble.size, n, draws)[:, :, 0].std(axis=0)
                 for k, v in members.items()}
    published = {c: v[:, 0] for c, v in columns.items()}
    advice = _metacognition(ensemble, metacognition, rows, planets, draws, published, labels)
    table = _table(trained, cat, known.reshape(n, draws, known.shape[1])[:, 0], drawn, found, p,
                   labels, model_std, advice, ensemble.threshold.get("habitable"))
    table.meta.update(_metadata(trained, Path(catalog), spectra, found, notes, absent, samples,
                                seed, cat, drawn))
    table.meta["metacognition"] = {
        "ensemble_size": ensemble.size, "temperature": ensemble.temperature,
        "abstain_threshold": ensemble.threshold, "coverage_on_val": ensemble.coverage
        if ensemble.threshold else None,
        "next_observation": f"the candidate with the largest expected information gain on "
                            f"{metacognition.label} per cost; outcomes from the "
                            f"{metacognition.draws} synthetic train planets nearest in the row",
        "costs": dict(metacognition.costs)}
    return Prediction(table, notes)


def _metacognition(ensemble: Ensemble, mc: MetacognitionConfig, rows, planets, draws,
                   published, labels) -> dict:
    """At the published values: each input's trust (on habitable) and, among the observations
    the planet lacks, the one with the largest expected information gain on ``mc.label`` per
    cost (its name, the gain in bits and the cost; "" when none is left)."""
    n = len(published["star_teff_k"])
    inputs = {k: v[::draws] for k, v in rows.items()}
    inputs.update(planets)
    out = {"trust": [""] * n, "next": [""] * n, "eig": np.full(n, np.nan),
           "cost": np.full(n, np.nan)}
    if not n:
        return out
    by_input = trust(ensemble, inputs, "habitable")
    out["trust"] = [trust_text(by_input, i) for i in range(n)]
    if mc.label not in labels:
        return out
    world = World(ensemble.task, mc)
    spectrum = {k: planets[k] for k in ("spectrum_depth", "spectrum_sigma", "spectrum_known",
                                        "has_spectrum")} if "has_spectrum" in planets else None
    has = planets["has_spectrum"] if spectrum is not None else np.zeros(n, bool)
    state = State.published(published, spectrum, has)
    for i, options in enumerate(expected_gains(ensemble, world, state, mc.label)):
        if options:
            best = max(options, key=lambda c: options[c] / cost(world, state, i, c))
            out["next"][i] = best.name
            out["eig"][i], out["cost"][i] = options[best], cost(world, state, i, best)
    return out





# ------------------------------------------------------------------------------ the output
_DESCRIPTIONS = {
    "rank": "1 = highest p_habitable (the Monte Carlo mean); 0 for quarantined rows",
    "name": "planet name as in the catalogue",
    "status": "predicted, or quarantined (build-catalog rejected the row: see reason)",
    "modalities": "the inputs the model used: row (catalogue parameters), spectrum",
    "p_{label}": "probability of {what}: mean over the Monte Carlo draws within the "
                 "catalogue's errors",
    "p_{label}_std": "standard deviation of p_{label} over the draws (measurement errors only)",
    "p_{label}_published": "probability of {what} at the published values (no draw)",
    "p_{label}_model_std": "standard deviation of the ensemble members' probabilities of {what} "
                           "at the published values (the model's own uncertainty; 0 for one "
                           "model)",
    "entropy_{label}": "entropy in bits of p_{label}: 1 = a coin toss, 0 = certain",
    "abstain": "True where the ensemble is less confident about habitability than the "
               "threshold that keeps the calibration's coverage of the val planets",
    "trust": "how much each input moved p_habitable at the published values: the change when "
             "it is hidden (row:GROUP = catalogue columns of the star, orbit, planet)",
    "next_observation": "the missing observation with the largest expected information gain "
                        "on {what} per unit of observing cost ('' when none is left)",
    "next_observation_eig": "its expected information gain, bits",
    "next_observation_cost": "its cost (MetacognitionConfig.costs units)",
    "perturbed": "catalogue columns drawn within their published errors",
    "unknown": "model input columns the catalogue lacks for this planet (masked)",
    "spectrum_file": "the spectrum file used, if any",
    "flags": "build-catalog's soft quality findings for the planet",
    "reason": "why build-catalog quarantined the row (source/table in brackets)",
}
_WHAT = {"habitable": "habitability (surface liquid water)", "biosignature": "a biosignature"}


def _describe(key: str, label: str = "") -> str:
    return _DESCRIPTIONS[key].format(label=label, what=_WHAT.get(label, label))


def _table(trained, cat, known0, drawn, found, p, labels, model_std, advice, threshold) -> Table:
    """The predicted planets, ranked, then the quarantined rows; ``known0`` is each planet's
    known mask at its published values; ``model_std`` per label the members' spread,
    ``advice`` :func:`_metacognition`'s, ``threshold`` the confidence below which the ensemble
    abstains on habitability (None: not calibrated, no ``abstain`` column)."""
    n = len(cat.names)
    order = sorted(range(n), key=lambda i: (-p["habitable"][i].mean(), cat.names[i]))
    q = cat.quarantine
    model_columns = list(trained.task.model_config.row_columns)
    t = Table()
    t["rank"] = Column(list(range(1, n + 1)) + [0] * len(q), dtype=np.int64,
                       description=_describe("rank"))
    t["name"] = Column([cat.names[i] for i in order] + [str(x) for x in q["name"]], dtype=str,
                       description=_describe("name"))
    t["status"] = Column(["predicted"] * n + ["quarantined"] * len(q), dtype=str,
                         description=_describe("status"))
    t["modalities"] = Column(["row+spectrum" if i in found else "row" for i in order]
                             + [""] * len(q), dtype=str, description=_describe("modalities"))
    mask = [False] * n + [True] * len(q)
    for label in labels:
        draws = p[label][order, 1:] if n else np.zeros((0, 1))
        nominal = p[label][order, 0] if n else np.zeros(0)
        for key, values in ((f"p_{label}", draws.mean(axis=1)),
                            (f"p_{label}_std", draws.std(axis=1)),
                            (f"p_{label}_published", nominal)):
            template = key.replace(label, "{label}")
            t[key] = MaskedColumn(np.concatenate([values, np.zeros(len(q))]), mask=mask,
                                  description=_describe(template, label))
        extra = {f"p_{label}_model_std": model_std[label][order] if n else np.zeros(0),
                 f"entropy_{label}": binary_entropy(draws.mean(axis=1)) if n else np.zeros(0)}
        for key, values in extra.items():
            t[key] = MaskedColumn(np.concatenate([values, np.zeros(len(q))]), mask=mask,
                                  description=_describe(key.replace(label, "{label}"), label))
    if threshold is not None:
        confident = max_probability(p["habitable"][order, 1:].mean(axis=1)) >= threshold \
            if n else np.zeros(0, bool)
        t["abstain"] = MaskedColumn(np.concatenate([~confident, np.zeros(len(q), bool)]),
                                    mask=mask, description=_describe("abstain"))
    t["trust"] = Column([advice["trust"][i] for i in order] + [""] * len(q), dtype=str,
                        description=_describe("trust"))
    t["next_observation"] = Column([advice["next"][i] for i in order] + [""] * len(q), dtype=str,
                                   description=_describe("next_observation", "habitable"))
    for key, name in (("next_observation_eig", "eig"), ("next_observation_cost", "cost")):
        values = np.concatenate([advice[name][order] if n else np.zeros(0), np.zeros(len(q))])
        t[key] = MaskedColumn(values, mask=np.asarray(mask) | ~np.isfinite(values),
                              description=_describe(key))
    t["perturbed"] = Column([",".join(drawn[i]) for i in order] + [""] * len(q), dtype=str,
                            description=_describe("perturbed"))
    t["unknown"] = Column([",".join(c for c, k in zip(model_columns, known0[i], strict=True)
                                    if not k) for i in order] + [""] * len(q), dtype=str,
                          description=_describe("unknown"))
    t["spectrum_file"] = Column([found[i][3] if i in found else "" for i in order]
                                + [""] * len(q), dtype=str, description=_describe("spectrum_file"))
    t["flags"] = Column([cat.flags[i] for i in order] + [""] * len(q), dtype=str,
                        description=_describe("flags"))
    reasons = [f"{r['reason']} [{r['source']}/{r['table']}]" if "table" in q.colnames
               else str(r["reason"]) for r in q]
    t["reason"] = Column([""] * n + reasons, dtype=str, description=_describe("reason"))
    return t


def _metadata(trained, catalog, spectra, found, notes, absent, samples, seed, cat, drawn):
    cfg = trained.config
    never = [c for c in MEASURED if not any(c in d for d in drawn)]
    return {
        "caveat": CAVEAT,
        "model": {"workdir": str(trained.workdir), "step": trained.step, "task": cfg.task,
                  "trained_on": f"{cfg.planets.num_planets} synthetic planets (built-in "
                                f"population, seed {cfg.planets.seed}); inputs standardized "
                                f"with the {trained.artifacts.get('statistics_planets', '?')}"},
        "catalog": str(catalog),
        "ranked_by": "p_habitable (the Monte Carlo mean), highest first",
        "monte_carlo": {"samples": samples, "seed": seed,
                        "drawn": "columns with a published 1-sigma error, in log space "
                                 "(eccentricity linear); derived columns derived again",
                        "never_drawn_here": never},
        "modalities": {"used": ["row"] + (["spectrum"] if found else []),
                       "absent_for_every_planet": absent,
                       "note": "a modality predict cannot supply is absent (has_NAME = 0) "
                               "for every planet, as in training with modality dropout"},
        "spectra": {"folder": None if spectra is None else str(spectra),
                    "files": {cat.names[i]: v[3] for i, v in sorted(found.items())},
                    "warnings": notes},
    }


def write(prediction: Prediction, out: str | Path, top: int = 20) -> tuple[Path, Path]:
    """Writes the table as ECSV to ``out`` and the ranking of the ``top`` planets as a PNG
    beside it (same name, ``.png``); returns both paths."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    prediction.table.write(out, format="ascii.ecsv", overwrite=True)
    png = out.with_suffix(".png")
    plot_ranking(prediction.predicted, png, top)
    return out, png


def plot_ranking(ranked: Table, path: Path, top: int = 20) -> None:
    """The ``top`` planets by p_habitable, with p_biosignature beside it, error bars one
    standard deviation over the Monte Carlo draws."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = ranked[:top]
    k = len(shown)
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.32 * max(k, 1)))
    y = np.arange(k)[::-1]
    for offset, label, color in ((0.15, "habitable", "tab:blue"),
                                 (-0.15, "biosignature", "tab:green")):
        if f"p_{label}" in shown.colnames:
            ax.errorbar(np.asarray(shown[f"p_{label}"]), y + offset,
                        xerr=np.asarray(shown[f"p_{label}_std"]), fmt="o", color=color,
                        capsize=3, label=f"p({label})")
    ax.set_yticks(y, [f"{n}{' *' if 'spectrum' in m else ''}"
                      for n, m in zip(shown["name"], shown["modalities"], strict=True)])
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability (mean ± 1 sd over draws within the catalogue's errors)")
    ax.set_title(f"top {k} of {len(ranked)} planets by p(habitable); * with a spectrum",
                 fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.text(0.01, 0.005, "Model trained on synthetic planets; error bars: measurement errors "
                          "only.", fontsize=7, color="0.4")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


__all__ = ["CAVEAT", "LABELS", "SPECTRUM_SUFFIXES", "PredictError", "Prediction", "plot_ranking",
           "predict", "write"]
