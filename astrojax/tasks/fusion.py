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
import math
from collections.abc import Iterable, Mapping, Sequence

import grain
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from astrojax.config import (
    Config,
    ConfigError,
    DatacubeConfig,
    GraphVAEConfig,
    TransformerConfig,
)
from astrojax.data.generator.climate import CUBE_VARIABLES, CubeGrid, planet_cubes
from astrojax.data.generator.notes import observing_notes
from astrojax.data.generator.observe import (
    CATALOGUE_COLUMNS,
    CLASS_LABELS,
    PRESENCE_LABELS,
    RETRIEVAL_TARGETS,
    assumed_population,
    hypothesised_networks,
    modality_masks,
    observe_catalogue,
    planet_labels,
    presence_labels,
)
from astrojax.data.generator.spectra import planet_spectra, spectral_grid
from astrojax.data.graphs import Bucket, example_sizes, graph_example, pad_examples
from astrojax.data.metabolic import NUM_EDGE_FEATURES, NUM_NODE_FEATURES
from astrojax.data.planets import split_position
from astrojax.data.tokenizer import ByteTokenizer
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
from astrojax.models.fusion import (
    GRAPH_KEYS,
    FusionModel,
    ModalityEncoders,
    fusion_losses,
    modality_keep,
)
from astrojax.tasks.base import Batch, Metrics, PlanetTask, WarmStart, run_config

DEPTH_UNIT = 1e-4  # spectra enter the model in units of 100 ppm
_LINEAR_COLUMNS = ("eccentricity",)  # every other catalogue column is positive: log10
# modality -> the task whose runs its encoder can start from
_INIT_TASKS = {"climate": "datacube", "network": "graph_vae", "text": "lm"}


# ---- the model's inputs from published values: training and astrojax.predict call these
def catalogue_row(values: Mapping[str, np.ndarray], columns: Sequence[str]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(values, known)`` ``[planets, columns]`` from published values by column (NaN where
    unpublished): log10 of the positive columns (every column but eccentricity; a non-positive
    value counts as unknown), NaN where unknown."""
    out = np.stack([np.asarray(values[c], np.float64) for c in columns], axis=1)
    logged = [j for j, c in enumerate(columns) if c not in _LINEAR_COLUMNS]
    with np.errstate(divide="ignore", invalid="ignore"):
        out[:, logged] = np.log10(out[:, logged])
    known = np.isfinite(out)
    return np.where(known, out, np.nan), known


def standardized_row(values: np.ndarray, known: np.ndarray, mean, std) -> np.ndarray:
    """:func:`catalogue_row`'s values standardized with the train split's ``mean`` and ``std``
    per column (the checkpoint's artifacts ``row_mean``, ``row_std``); unknown values 0."""
    return np.where(known, (values - np.asarray(mean)) / np.asarray(std), 0.0).astype(np.float32)


def spectrum_inputs(depth: np.ndarray, sigma: np.ndarray, known: np.ndarray,
                    bins: int) -> dict[str, np.ndarray]:
    """The spectrum's model inputs ``[planets, bins]`` from transit depths and 1-sigma errors
    (fractions) on the model's grid, ``known`` per bin: the depth relative to the median of the
    planet's known bins and the error, both in DEPTH_UNIT, padded with unknown bins to ``bins``;
    an unknown bin holds depth 0 and error 1 (the model reads neither)."""
    known = np.asarray(known, bool)
    median = np.zeros((len(depth), 1))
    rows = known.any(axis=1)
    median[rows] = np.nanmedian(np.where(known[rows], depth[rows], np.nan), axis=1,
                                keepdims=True)
    pad = ((0, 0), (0, bins - depth.shape[1]))
    relative = np.where(known, (depth - median) / DEPTH_UNIT, 0.0)
    scaled = np.where(known, sigma / DEPTH_UNIT, 1.0)
    return {"spectrum_depth": np.pad(relative, pad).astype(np.float32),
            "spectrum_sigma": np.pad(scaled, pad, constant_values=1.0).astype(np.float32),
            "spectrum_known": np.pad(known, pad)}


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

    @functools.cached_property
    def encoders(self) -> ModalityEncoders:
        """The single-modality encoders of the modalities in ``data.modalities``."""
        m, d = self.model_config, self.cfg.data
        climate = None
        if "climate" in d.modalities:
            time_steps, levels, lat, lon = d.climate_grid
            if m.climate_init:
                source = self.sources["climate"][1]
                sd = source.data
                grid = tuple(c or n for c, n in zip(sd.cube_crop, (
                    sd.cube_time_steps, sd.cube_lat, sd.cube_lon), strict=True))
                if (grid, sd.cube_levels) != ((time_steps, lat, lon), levels):
                    raise ConfigError("data.climate_grid", f"{tuple(d.climate_grid)} is not the "
                                      f"cube grid of model.climate_init={m.climate_init!r} "
                                      f"(time, levels, lat, lon = {grid[0]}, {sd.cube_levels}, "
                                      f"{grid[1]}, {grid[2]}); set it to that")
                cube = dataclasses.replace(source.model, objective="supervised", targets=())
            else:
                cube = DatacubeConfig(patch_size=tuple(m.climate_patch),
                                      stem_channels=m.climate_stem_channels, d_model=m.d_model,
                                      num_layers=m.climate_layers, num_heads=m.num_heads,
                                      mlp_dim=m.mlp_dim, attention_impl=m.attention_impl,
                                      dtype=m.dtype, param_dtype=m.param_dtype,
                                      objective="supervised", targets=())
            climate = (cube, len(CUBE_VARIABLES) * levels, (time_steps, lat, lon))
        network = text = None
        if "network" in d.modalities:
            if m.network_init:  # the link decoder is not part of the encoder
                graph = dataclasses.replace(self.sources["network"][1].model,
                                            edge_decoder="inner_product")
            else:
                graph = GraphVAEConfig(hidden_dim=m.d_model, num_layers=m.network_layers,
                                       num_heads=m.num_heads, mlp_dim=m.mlp_dim,
                                       graph_latent_dim=m.network_latent_dim, dtype=m.dtype)
            network = (graph, NUM_NODE_FEATURES, NUM_EDGE_FEATURES)
        if "text" in d.modalities:
            if m.text_init:
                text = self.sources["text"][1].model
            else:
                text = TransformerConfig(vocab_size=TransformerConfig.vocab_size,
                                         d_model=m.d_model, num_layers=m.text_layers,
                                         num_heads=m.num_heads, num_kv_heads=m.num_heads,
                                         head_dim=m.d_model // m.num_heads, mlp_dim=m.mlp_dim,
                                         max_seq_len=d.text_length,
                                         attention_impl=m.attention_impl, dtype=m.dtype,
                                         param_dtype=m.param_dtype)
        return ModalityEncoders(climate=climate, network=network, text=text,
                                pad_id=ByteTokenizer.pad_id)

    @functools.cached_property
    def sources(self) -> dict[str, tuple[str, Config]]:
        """Per modality whose ``model.NAME_init`` names a workdir: that workdir and the config
        of its run (``config.json``)."""
        out = {}
        for name, task in _INIT_TASKS.items():
            workdir = getattr(self.cfg.model, f"{name}_init")
            if not workdir or name not in self.cfg.data.modalities:
                continue
            out[name] = (workdir, run_config(f"model.{name}_init", workdir, task,
                                             f"the {name} encoder starts from"))
        return out

    def warm_start(self) -> WarmStart | None:
        """``model.init``: the whole model but its heads (and loss weights) from that fusion
        run; the encoders named by ``model.NAME_init`` from those single-modality runs (their
        heads and decoders, which the encoder lacks, are left)."""
        parts = {name: (workdir, "") for name, (workdir, _) in self.sources.items()}
        if self.cfg.model.init:
            parts = {"": (self.cfg.model.init, ""), **parts}
        return WarmStart(parts, fresh=FusionModel.HEADS) if parts else None

    def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
        return FusionModel(self.model_config, self.encoders, rngs=rngs)

    def check_mesh(self, mesh_sizes: dict[str, int]) -> None:
        """Also: the mesh's batch shards must hold whole packing groups."""
        super().check_mesh(mesh_sizes)
        axes = dict(self.cfg.mesh.logical_axis_rules).get("batch") or ()
        shards = math.prod(mesh_sizes[a] for a in ((axes,) if isinstance(axes, str) else axes))
        groups = self.cfg.train.global_batch_size // self.cfg.data.group_size
        if self.encoders.names() and groups % shards:
            raise ConfigError("data.group_size", f"{self.cfg.data.group_size} makes {groups} "
                                                 f"groups of a batch, which the mesh's {shards} "
                                                 "batch shards do not divide; lower it")

    def microbatch_units(self) -> int:
        """Packing groups when a modality is packed: the per-planet arrays ([planets, ...]) and
        the packed ones ([groups, ...]) then split group by group alike; else planets."""
        if self.encoders.names():
            return self.cfg.train.global_batch_size // self.cfg.data.group_size
        return self.cfg.train.global_batch_size

    # ---- the data, every planet at once (numpy; a few MB for thousands of planets)
    @functools.cached_property
    def catalogue(self):
        return observe_catalogue(self.table.population, self.cfg.planets.seed)

    @functools.cached_property
    def masks(self) -> dict[str, np.ndarray]:
        d = self.cfg.data
        rates = {name: getattr(d, f"{name}_rate") if name in d.modalities else 0.0
                 for name in ("climate", "network", "text")}
        return modality_masks(self.catalogue, spectrum=d.spectrum_rate, **rates)

    @functools.cached_property
    def packed(self) -> dict[str, dict[str, np.ndarray]]:
        """Per packed modality (climate), ``{"index": [planets] int (row of ``values``, -1
        where the planet has none), "values": [planets with it, ...]}``: the inputs of only the
        planets that have one. Cubes are standardized per variable and level with the train
        planets' cubes."""
        d, out = self.cfg.data, {}
        if "climate" in d.modalities:
            rows = np.flatnonzero(self.masks["climate"])
            time_steps, levels, lat, lon = d.climate_grid
            grid = CubeGrid(time_steps=time_steps, levels=levels, lat=lat, lon=lon)
            cubes = planet_cubes(assumed_population(self.catalogue), grid,
                                 seed=self.cfg.planets.seed, indices=rows)
            train = np.isin(rows, self.split.train)
            if not train.any():
                raise ConfigError("data.climate_rate", f"{d.climate_rate} gives no train planet "
                                                       "a climate cube; raise it")
            axes = (0, 2, 4, 5)  # over planets, time, lat and lon: per variable and level
            mean = cubes[train].mean(axes, keepdims=True)
            std = np.maximum(cubes[train].std(axes, keepdims=True), 1e-6)
            out["climate"] = {"index": self._index(rows),
                              "values": ((cubes - mean) / std).astype(np.float32),
                              "mean": mean[0], "std": std[0]}
        if "network" in d.modalities:
            rows = np.flatnonzero(self.masks["network"])
            steps = self.encoders.network[0].random_walk_steps
            networks = hypothesised_networks(self.catalogue, self.cfg.planets.seed, rows)
            out["network"] = {"index": self._index(rows),
                              "examples": [graph_example(net, steps) for net in networks]}
        if "text" in d.modalities:
            rows = np.flatnonzero(self.masks["text"])
            tokens = np.full((len(rows), d.text_length), ByteTokenizer.pad_id, np.int32)
            for i, note in enumerate(observing_notes(self.catalogue, self.cfg.planets.seed,
                                                     rows)):
                ids = ByteTokenizer().encode(note, add_eos=False)[:d.text_length]
                tokens[i, :len(ids)] = ids
            out["text"] = {"index": self._index(rows), "values": tokens}
        return out

    def _index(self, rows: np.ndarray) -> np.ndarray:
        index = np.full(len(self.table), -1, np.int64)
        index[rows] = np.arange(len(rows))
        return index

    @functools.cache  # noqa: B019 (one task, a few capacities)
    def network_bucket(self, capacity: int) -> Bucket:
        """The padded size of a group's networks: the ``capacity`` largest networks together,
        so every group fits one shape (one compilation)."""
        sizes = example_sizes(self.packed["network"]["examples"])
        k = min(capacity, len(sizes))
        return Bucket(-(-(int(np.sort(sizes[:, 0])[-k:].sum()) + 1) // 32) * 32,
                      -(-max(int(np.sort(sizes[:, 1])[-k:].sum()), 2) // 64) * 64)

    def capacity(self, name: str, split: str) -> int:
        """Slots per group of modality ``name``: for eval every planet of a group (nothing is
        dropped); for training the fewest slots a group of the train planets overflows less
        than once in 1,000 groups (binomial in the train share), the overflow then being
        dropped like modality dropout."""
        g = self.cfg.data.group_size
        if split != "train":
            return g
        share = float((self.packed[name]["index"][self.split.train] >= 0).mean())
        below = np.cumsum([math.comb(g, j) * share**j * (1 - share)**(g - j)
                           for j in range(g + 1)])
        return max(1, int(np.searchsorted(below, 0.999)))

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
    def labelled(self) -> np.ndarray:
        """``[planets]`` bool: whose labels the model learns from. Every val and test planet
        (they are scored) and a share ``data.label_fraction`` of the train planets, chosen by a
        hash of the id (another seed than the split's), so a larger share keeps the smaller
        one's planets."""
        out = np.ones(len(self.table), bool)
        train = self.split.train
        position = split_position(self.table.ids[train], self.cfg.planets.split_seed + 7919)
        out[train] = position < self.cfg.data.label_fraction
        return out

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
        return catalogue_row(self.catalogue.values, self.row_columns)

    @functools.cached_property
    def arrays(self) -> dict[str, np.ndarray]:
        """Every planet's model inputs and labels, by batch key."""
        s, m, d = self.statistics, self.model_config, self.cfg.data
        values, known = self._row
        out = {"row_values": standardized_row(values, known, s["row_mean"], s["row_std"]),
               "row_known": known,
               "planet": np.arange(len(self.table), dtype=np.int32)}
        if m.spectrum_bins:
            depth, sigma, _ = planet_spectra(self.table.population, d.instrument,
                                             n_transits=d.n_transits, seed=self.cfg.planets.seed)
            has = self.masks["spectrum"]
            out.update(spectrum_inputs(depth, sigma, np.broadcast_to(has[:, None], depth.shape),
                                       m.spectrum_bins))
            out["has_spectrum"] = has
        labels, known = self.labels, self.labelled.astype(np.float32)
        for name, _ in m.classes:
            out[name] = labels[name].astype(np.int32)
            out[f"{name}_known"] = known * labels.get(f"{name}_known",
                                                      np.ones(len(self.table), bool))
        for i, target in enumerate(m.retrieval_targets):
            out[target] = ((labels[target] - s["target_mean"][i]) / s["target_std"][i]
                           ).astype(np.float32)
            out[f"{target}_known"] = known
        return out

    def artifacts(self) -> dict:
        s = self.statistics
        packed = {name: p for name, p in self.packed.items() if "mean" in p}
        return {"row_columns": list(self.row_columns),
                "row_mean": s["row_mean"].tolist(), "row_std": s["row_std"].tolist(),
                "target_mean": s["target_mean"].tolist(),
                "target_std": s["target_std"].tolist(),
                "statistics_planets": f"train split: {len(self.split.train)} planets",
                **{f"{name}_{stat}": p[stat].tolist() for name, p in packed.items()
                   for stat in ("mean", "std")}}

    # ---- Grain
    def batch(self, idx: np.ndarray, split: str) -> dict[str, np.ndarray]:
        """The batch of planets ``idx`` (table rows): per-planet arrays, and each packed
        modality's inputs in groups of ``data.group_size`` planets (see the model)."""
        out = {k: v[idx] for k, v in self.arrays.items()}
        g = self.cfg.data.group_size
        for name, packed in self.packed.items():
            k = self.capacity(name, split)
            where = packed["index"][idx].reshape(-1, g)  # [groups, g]
            slot = np.full(where.shape, -1, np.int32)
            groups = []
            for group, members in enumerate(where):
                have = np.flatnonzero(members >= 0)[:k]
                slot[group, have] = np.arange(len(have))
                groups.append(members[have])
            out[f"{name}_slot"] = slot.reshape(-1)
            if name == "network":
                bucket, examples = self.network_bucket(k), packed["examples"]
                widths = tuple(examples[0][key].shape[1] for key in ("nodes", "pe", "edges"))
                padded = [pad_examples([examples[i] for i in rows], bucket, k, widths)
                          for rows in groups]
                out.update({f"network_{key}": np.stack([p[key] for p in padded])
                            for key in GRAPH_KEYS})
            else:
                values = packed["values"]
                stacked = np.zeros((len(groups), k, *values.shape[1:]), values.dtype)
                for group, rows in enumerate(groups):
                    stacked[group, :len(rows)] = values[rows]
                out[name] = stacked
        return out

    def _dataset(self, rows: np.ndarray, process_index: int, process_count: int, *,
                 shuffle: bool, num_epochs: int | None, split: str) -> grain.IterDataset:
        batch = self.cfg.train.global_batch_size // process_count
        ds = grain.MapDataset.source(np.asarray(rows))[process_index::process_count]
        if shuffle:
            ds = ds.shuffle(seed=self.cfg.data.shuffle_seed)
        if num_epochs != 1:
            ds = ds.repeat(num_epochs)
        ds = ds.batch(batch, drop_remainder=True, batch_fn=np.asarray)
        return ds.map(lambda idx: self.batch(idx, split)).to_iter_dataset()

    def train_data(self, process_index: int, process_count: int) -> grain.IterDataset:
        return self._dataset(self.split.train, process_index, process_count, shuffle=True,
                             num_epochs=None, split="train")

    def eval_data(self, process_index: int, process_count: int,
                  split: str = "val") -> Iterable[dict[str, np.ndarray]]:
        if not self.fills_eval_batch(split, len(self.split[split])):
            return []
        ds = self._dataset(self.split[split], process_index, process_count, shuffle=False,
                           num_epochs=1, split=split)
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
        catalogue row (fitted on the labelled train planets: ``data.label_fraction``), on the
        planets the evals score."""
        rows = self._scored_rows(split)
        if not len(rows):
            return {}
        a, out = self.arrays, {}
        features = np.concatenate([a["row_values"], a["row_known"]], axis=1)
        train = self.split.train[self.labelled[self.split.train]]
        teff = np.where(self.catalogue.known("star_teff_k"),
                        self.catalogue.values["star_teff_k"], np.nan)
        flux = np.where(self.catalogue.known("insolation_searth"),
                        self.catalogue.values["insolation_searth"], np.nan)
        margin = habitable_zone_margin(teff, flux)
        margin = np.where(np.isfinite(margin), margin, np.nanmin(margin) - 1.0)  # unknown: lowest
        for name, k in self.model_config.classes:
            y, known = a[name], a[f"{name}_known"] > 0
            fit, scored = train[known[train]], rows[known[rows]]
            positive = y[scored] > 0
            both = k == 2 and positive.any() and (~positive).any()
            if both and name in ("habitable", "biosignature"):
                hz = margin[scored]
                out[f"habitable_zone/auc/{name}"] = roc_auc(hz[positive], hz[~positive])
            if len(np.unique(y[fit])) < 2:  # too few labelled planets to fit anything
                continue
            probe = linear_probe(features[fit], y[fit], features[scored], y[scored], k)
            out[f"row_logistic/accuracy/{name}"] = probe["accuracy"]
            out[f"majority/accuracy/{name}"] = probe["majority_accuracy"]
            if both:
                score = probe["logits"][:, 1] - probe["logits"][:, 0]
                out[f"row_logistic/auc/{name}"] = roc_auc(score[positive], score[~positive])
        return out
