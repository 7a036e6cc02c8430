"""Task fusion: how likely is a planet to be habitable, and does it show signs of life, from
what an observer has of it.

Inputs (``astrojax.data.generator.observe``), those of ``data.modalities``: the catalogue
row as an archive would publish it (measured values with gaps; never the hidden truth) and,
for the planets that have one (``data.spectrum_rate`` of the transiting planets), a
transmission spectrum on ``data.instrument``'s grid after ``data.n_transits`` transits
(``astrojax.data.generator.spectra``). The batches always carry the catalogue row (the
baselines read it), whether or not the model does. Labels: ``model.classes`` (habitable,
biosignature, biosphere, climate_regime, and per molecule ``present_h2o``, ... : detectable in
the planet's transmission spectrum on ``data.instrument``'s grid, known for transiting planets
only, ``observe.presence_labels``) and ``model.retrieval_targets`` (log mixing ratios, log
surface pressure), from the population's truth. Losses, metrics and baselines count a planet
for a label only where the label is known. One split for everything (``planets``).

Preprocessing, from the train split only (saved as the checkpoint's artifacts): positive
catalogue columns are taken as log10, then every column is standardized with the train planets'
known values. A spectrum is the depth relative to its own median, in units of 100 ppm, with
its errors in the same units; the grid is padded with unknown bins to a multiple of
``model.spectrum_patch``. Retrieval targets are standardized likewise.

Evaluation (val every ``train.eval_every``, test once at the end): per binary label AUC and AP
(binned, exact to ties within 0.05 logits), accuracy and expected calibration error; per class
label accuracy; per retrieval target R^2 (in the standardized units, which R^2 ignores).
Baselines on the same planets (``baselines``): the base rate, the conservative habitable zone
(Kopparapu et al. 2014) from the observed Teff and insolation, and a logistic regression on
the standardized catalogue row (unknown values at the train mean, plus the known masks).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Iterable

import grain
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from astrojax.config import ConfigError
from astrojax.data.generator.observe import (
    CATALOGUE_COLUMNS,
    CLASS_LABELS,
    PRESENCE_LABELS,
    RETRIEVAL_TARGETS,
    modality_masks,
    observe_catalogue,
    planet_labels,
    presence_labels,
)
from astrojax.data.generator.spectra import planet_spectra, spectral_grid
from astrojax.evaluators.catalogue_baselines import habitable_zone_margin
from astrojax.evaluators.metrics import (
    accuracy_from_sums,
    accuracy_sums,
    calibration_from_sums,
    calibration_sums,
    r2_from_sums,
    r2_sums,
    ranking_from_histograms,
    roc_auc,
    score_histogram_sums,
)
from astrojax.evaluators.probes import linear_probe
from astrojax.models.fusion import FusionModel, fusion_losses, modality_keep
from astrojax.tasks.base import Batch, Metrics, PlanetTask

DEPTH_UNIT = 1e-4  # spectra enter the model in units of 100 ppm
_LINEAR_COLUMNS = ("eccentricity",)  # every other catalogue column is positive: log10


class FusionTask(PlanetTask):
    """The fusion model on the observed catalogue rows and spectra (see the module
    docstring)."""

    throughput_key = "planets"

    # ---- configuration the data decides
    @functools.cached_property
    def model_config(self):
        """``config.model`` with the data's row columns and spectrum grid filled in for the
        modalities in ``data.modalities`` (an empty ``row_columns`` means every catalogue
        column; ``spectrum_bins`` 0 means the instrument's grid, padded to whole patches)."""
        m, d = self.cfg.model, self.cfg.data
        for name, _ in m.classes:
            if name not in CLASS_LABELS:
                raise ConfigError("model.classes", f"{name!r} is not a label; the class labels "
                                                   f"are {', '.join(CLASS_LABELS)}")
        for target in m.retrieval_targets:
            if target not in RETRIEVAL_TARGETS:
                raise ConfigError("model.retrieval_targets",
                                  f"{target!r} is not a retrieval target; they are "
                                  f"{', '.join(RETRIEVAL_TARGETS)}")
        bins = 0
        if "spectrum" in d.modalities:
            raw = len(spectral_grid(d.instrument))
            bins = -(-raw // m.spectrum_patch) * m.spectrum_patch
            if m.spectrum_bins not in (0, bins):
                raise ConfigError("model.spectrum_bins",
                                  f"{m.spectrum_bins} does not fit data.instrument="
                                  f"{d.instrument!r} ({raw} bins, {bins} in whole patches of "
                                  f"{m.spectrum_patch}); leave it 0")
        columns = self.row_columns if "catalogue" in d.modalities else ()
        return dataclasses.replace(m, row_columns=columns, spectrum_bins=bins)

    @functools.cached_property
    def row_columns(self) -> tuple[str, ...]:
        """The catalogue columns of the batches' rows (``model.row_columns``, or all): the row
        encoder's input when ``data.modalities`` has the catalogue, the baselines' always."""
        columns = tuple(self.cfg.model.row_columns) or CATALOGUE_COLUMNS
        unknown = [c for c in columns if c not in CATALOGUE_COLUMNS]
        if unknown:
            raise ConfigError("model.row_columns", f"{unknown} are not catalogue columns; "
                                                   f"they are {', '.join(CATALOGUE_COLUMNS)}")
        return columns

    def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
        return FusionModel(self.model_config, rngs=rngs)

    # ---- the data, every planet at once (numpy; a few MB for thousands of planets)
    @functools.cached_property
    def catalogue(self):
        return observe_catalogue(self.table.population, self.cfg.planets.seed)

    @functools.cached_property
    def masks(self) -> dict[str, np.ndarray]:
        return modality_masks(self.catalogue, spectrum=self.cfg.data.spectrum_rate,
                              climate=0.0, network=0.0, text=0.0)

    @functools.cached_property
    def statistics(self) -> dict[str, np.ndarray]:
        """Train-split means and standard deviations of the transformed catalogue columns and
        of the retrieval targets."""
        train = self.split.train
        values, known = self._row
        mean, std = [], []
        for j in range(values.shape[1]):
            v = values[train, j][known[train, j]]
            mean.append(v.mean() if len(v) else 0.0)
            std.append(max(v.std(), 1e-6) if len(v) > 1 else 1.0)
        targets = self.model_config.retrieval_targets
        t_mean = [float(self.labels[t][train].mean()) for t in targets]
        t_std = [max(float(self.labels[t][train].std()), 1e-6) for t in targets]
        return {"row_mean": np.array(mean), "row_std": np.array(std),
                "target_mean": np.array(t_mean), "target_std": np.array(t_std)}

    @functools.cached_property
    def labels(self) -> dict[str, np.ndarray]:
        """``planet_labels``, plus ``presence_labels`` (with their ``*_known`` masks) when
        ``model.classes`` asks for one (they cost a spectrum per molecule and planet)."""
        labels = planet_labels(self.table.population)
        if any(name in PRESENCE_LABELS for name, _ in self.cfg.model.classes):
            labels.update(presence_labels(self.table.population, self.catalogue,
                                          self.cfg.data.instrument))
        return labels

    @functools.cached_property
    def _row(self) -> tuple[np.ndarray, np.ndarray]:
        """``(values, known)`` ``[planets, columns]``: the published values, log10 of the
        positive columns (a non-positive value counts as unknown), NaN where unknown."""
        columns = self.row_columns
        values = np.stack([self.catalogue.values[c] for c in columns], axis=1).astype(np.float64)
        logged = [j for j, c in enumerate(columns) if c not in _LINEAR_COLUMNS]
        with np.errstate(divide="ignore", invalid="ignore"):
            values[:, logged] = np.log10(values[:, logged])
        known = np.isfinite(values)
        return np.where(known, values, np.nan), known

    @functools.cached_property
    def arrays(self) -> dict[str, np.ndarray]:
        """Every planet's model inputs and labels, by batch key."""
        s, m, d = self.statistics, self.model_config, self.cfg.data
        values, known = self._row
        row = np.where(known, (values - s["row_mean"]) / s["row_std"], 0.0)
        out = {"row_values": row.astype(np.float32), "row_known": known,
               "planet": np.arange(len(self.table), dtype=np.int32)}
        if m.spectrum_bins:
            depth, sigma, _ = planet_spectra(self.table.population, d.instrument,
                                             n_transits=d.n_transits, seed=self.cfg.planets.seed)
            has = self.masks["spectrum"]
            relative = (depth - np.median(depth, axis=1, keepdims=True)) / DEPTH_UNIT
            pad = m.spectrum_bins - depth.shape[1]
            out["spectrum_depth"] = np.pad(relative, ((0, 0), (0, pad))).astype(np.float32)
            out["spectrum_sigma"] = np.pad(sigma / DEPTH_UNIT, ((0, 0), (0, pad)),
                                           constant_values=1.0).astype(np.float32)
            out["spectrum_known"] = np.pad(np.broadcast_to(has[:, None], depth.shape),
                                           ((0, 0), (0, pad)))
            out["has_spectrum"] = has
        labels = self.labels
        for name, _ in m.classes:
            out[name] = labels[name].astype(np.int32)
            out[f"{name}_known"] = labels.get(f"{name}_known", np.ones(len(self.table), bool)
                                              ).astype(np.float32)
        for i, target in enumerate(m.retrieval_targets):
            out[target] = ((labels[target] - s["target_mean"][i]) / s["target_std"][i]
                           ).astype(np.float32)
            out[f"{target}_known"] = np.ones(len(self.table), np.float32)
        return out

    def artifacts(self) -> dict:
        s = self.statistics
        return {"row_columns": list(self.row_columns),
                "row_mean": s["row_mean"].tolist(), "row_std": s["row_std"].tolist(),
                "target_mean": s["target_mean"].tolist(),
                "target_std": s["target_std"].tolist(),
                "statistics_planets": f"train split: {len(self.split.train)} planets"}

    # ---- Grain
    def _dataset(self, rows: np.ndarray, process_index: int, process_count: int, *,
                 shuffle: bool, num_epochs: int | None) -> grain.IterDataset:
        arrays = self.arrays
        batch = self.cfg.train.global_batch_size // process_count
        ds = grain.MapDataset.source(np.asarray(rows))[process_index::process_count]
        if shuffle:
            ds = ds.shuffle(seed=self.cfg.data.shuffle_seed)
        if num_epochs != 1:
            ds = ds.repeat(num_epochs)
        ds = ds.batch(batch, drop_remainder=True, batch_fn=np.asarray)
        return ds.map(lambda idx: {k: v[idx] for k, v in arrays.items()}).to_iter_dataset()

    def train_data(self, process_index: int, process_count: int) -> grain.IterDataset:
        return self._dataset(self.split.train, process_index, process_count, shuffle=True,
                             num_epochs=None)

    def eval_data(self, process_index: int, process_count: int,
                  split: str = "val") -> Iterable[dict[str, np.ndarray]]:
        if not self.fills_eval_batch(split, len(self.split[split])):
            return []
        ds = self._dataset(self.split[split], process_index, process_count, shuffle=False,
                           num_epochs=1)
        return list(itertools.islice(iter(ds), self.cfg.train.eval_batches))

    # ---- objective
    def _labels(self, batch: Batch) -> dict:
        m = self.model_config
        names = [n for n, _ in m.classes] + list(m.retrieval_targets)
        return {k: batch[k] for name in names for k in (name, f"{name}_known")}

    def loss(self, model: nnx.Module, batch: Batch, rng: jax.Array,
             step: jax.Array) -> tuple[jax.Array, Metrics]:
        del step
        keep = modality_keep(rng, model.modalities(), batch["row_values"].shape[0],
                             self.cfg.model.modality_dropout)
        outputs = model(batch, keep)
        return fusion_losses(model, outputs, self._labels(batch), self.model_config)

    def eval_sums(self, model: nnx.Module, batch: Batch) -> Metrics:
        m = self.model_config
        outputs = model(batch)
        sums = {"count": jnp.asarray(batch["row_values"].shape[0], jnp.float32)}
        for name, k in m.classes:
            logits = outputs[f"logits/{name}"]
            known = batch[f"{name}_known"] > 0
            if k == 2:
                y = batch[name]
                sums.update(score_histogram_sums(y, logits, known, prefix=f"{name}/"))
                sums.update(calibration_sums(y, jax.nn.sigmoid(logits), known,
                                             prefix=f"{name}/"))
                sums.update(accuracy_sums(y, (logits > 0).astype(jnp.int32), known,
                                          num_classes=2, prefix=f"{name}/"))
            else:
                sums.update(accuracy_sums(batch[name], jnp.argmax(logits, -1), known,
                                          num_classes=k, prefix=f"{name}/"))
        for target in m.retrieval_targets:
            sums.update(r2_sums(batch[target][:, None], outputs[f"mean/{target}"][:, None],
                                prefix=f"{target}/"))
        return sums

    def finalize_eval(self, sums: dict[str, float]) -> dict[str, float]:
        m, out = self.model_config, {}
        for name, k in m.classes:
            acc = accuracy_from_sums(sums, prefix=f"{name}/")
            out[f"accuracy/{name}"] = acc[f"{name}/accuracy"]
            if k == 2:
                ranking = ranking_from_histograms(sums, prefix=f"{name}/")
                out[f"auc/{name}"] = ranking[f"{name}/auc"]
                out[f"ap/{name}"] = ranking[f"{name}/ap"]
                out[f"ece/{name}"] = calibration_from_sums(sums, prefix=f"{name}/")[
                    f"{name}/ece"]
            else:
                out[f"balanced_accuracy/{name}"] = acc[f"{name}/balanced_accuracy"]
        for target in m.retrieval_targets:
            out[f"r2/{target}"] = float(np.asarray(
                r2_from_sums(sums, prefix=f"{target}/")[f"{target}/r2"]).reshape(-1)[0])
        return out

    def embed(self, model: nnx.Module, batch: Batch) -> dict[str, jax.Array]:
        """The fused planet embedding ``[batch, d_model]``."""
        return {"embedding": model(batch)["embedding"]}

    def count_items(self, batch: dict[str, np.ndarray]) -> int:
        return len(batch["row_values"])

    # ---- what the model is measured against
    def _scored_rows(self, split: str) -> np.ndarray:
        """The planets of ``split`` the eval batches hold."""
        t = self.cfg.train
        batches = min(t.eval_batches, len(self.split[split]) // t.global_batch_size)
        return self.split[split][:batches * t.global_batch_size]

    def baselines(self, split: str = "val") -> dict[str, float]:
        """Base rate, the conservative habitable zone from the observed Teff and insolation (a
        graded margin; unknown inputs score lowest), and an L2 logistic regression on the
        catalogue row (fitted on the train planets), on the planets the evals score."""
        rows = self._scored_rows(split)
        if not len(rows):
            return {}
        a, out = self.arrays, {}
        features = np.concatenate([a["row_values"], a["row_known"]], axis=1)
        train = self.split.train
        teff = np.where(self.catalogue.known("star_teff_k"),
                        self.catalogue.values["star_teff_k"], np.nan)
        flux = np.where(self.catalogue.known("insolation_searth"),
                        self.catalogue.values["insolation_searth"], np.nan)
        margin = habitable_zone_margin(teff, flux)
        margin = np.where(np.isfinite(margin), margin, np.nanmin(margin) - 1.0)  # unknown: lowest
        for name, k in self.model_config.classes:
            y, known = a[name], a[f"{name}_known"] > 0
            fit, scored = train[known[train]], rows[known[rows]]
            if not (len(fit) and len(scored)):
                continue
            probe = linear_probe(features[fit], y[fit], features[scored], y[scored], k)
            out[f"row_logistic/accuracy/{name}"] = probe["accuracy"]
            out[f"majority/accuracy/{name}"] = probe["majority_accuracy"]
            if k == 2:
                positive = y[scored] > 0
                if positive.any() and (~positive).any():
                    score = probe["logits"][:, 1] - probe["logits"][:, 0]
                    out[f"row_logistic/auc/{name}"] = roc_auc(score[positive], score[~positive])
                    hz = margin[scored]
                    out[f"habitable_zone/auc/{name}"] = roc_auc(hz[positive], hz[~positive])
        return out
