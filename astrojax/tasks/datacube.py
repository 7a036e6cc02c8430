"""Climate datacubes: masked-tubelet pretraining and the labels no closed-form rule reads off.

The cubes come from a TensorStore store (``data.cube_store``): the built-in population's,
built once on first use, or any store made with ``python -m astrojax.data``. A store's sample
``i`` is planet row ``i`` (the built-in store holds the population in order; another store's
samples are planets ``sample-000000``, ...), split by ``planets`` like every task's planets.

Objective (``model.objective``): masked-tubelet reconstruction (VideoMAE), regression of the
label columns named in ``model.targets`` (standardized with the train split's mean and std),
or both. The default targets are the equilibrium temperature and the log surface pressure,
because ``benchmarks/datacube_baselines.py`` measured that closed-form rules read the other
labels off the built-in cubes (surface temperature R^2 1.000, climate regime and tidal locking
accuracy 1.000, relative humidity R^2 0.99): learning them proves nothing.

Normalization statistics (per variable and level) and target statistics come from the train
split only, so nothing about held-out samples reaches the model; both are saved with every
checkpoint (``artifacts``).

Evaluation: ``eval/loss``, ``eval/reconstruction_mse`` (hidden tubelets, a fixed mask per eval
batch), ``eval/r2/TARGET`` from the regression head on whole cubes. After the last step,
``final_eval`` fits linear probes of the planet embedding (``embed``: mean of the encoder's
tokens, nothing masked) on the train split for every label and scores them on the held-out
samples (``eval/probe/r2/LABEL``, ``eval/probe/accuracy/LABEL``). Beside them, with every eval,
``baselines()`` logs the closed-form rules and the summary-statistic ridge/logistic models on
the same held-out samples (``eval/baseline/RULE/r2/LABEL``, ``.../accuracy/LABEL``; see
``astrojax.evaluators.cube_baselines``).
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Iterable

import grain
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from astrojax.config import ConfigError
from astrojax.data.formats.cubes import build_synthetic_store
from astrojax.data.formats.store import CubeStore, compute_stats
from astrojax.data.generator.climate import CubeGrid
from astrojax.data.pipeline import CubeSource, cube_dataset
from astrojax.data.planets import PlanetSplit, PlanetTable, planet_split, sample_ids
from astrojax.evaluators.cube_baselines import CLASS_LABELS, cube_baseline_report, cube_summaries
from astrojax.evaluators.metrics import r2_from_sums, r2_sums
from astrojax.evaluators.probes import linear_probe, ridge_probe
from astrojax.models.datacube_vit import DatacubeViT, datacube_losses
from astrojax.tasks.base import Batch, Metrics, Task

log = logging.getLogger(__name__)
PROBE_TRAIN_SAMPLES = 2048


class DatacubeTask(Task):
    """The 3D conv + ViT model on climate datacubes (see the module docstring)."""

    throughput_key = "cubes"

    @functools.cached_property
    def store(self) -> CubeStore:
        d = self.cfg.data
        if d.cube_store:
            store = CubeStore.open(d.cube_store, read_only=True)
        elif jax.process_count() > 1:
            raise ConfigError("data.cube_store", "several processes cannot build the built-in "
                                                 "cubes together: build them once with "
                                                 "`python -m astrojax.data build-cubes` and "
                                                 "pass the store")
        else:
            p = self.cfg.planets
            store = build_synthetic_store(p.num_planets, p.seed, self.grid, progress=False)
            store = CubeStore.open(store.url, read_only=True)
        return store

    @property
    def masked(self) -> bool:
        return "masked" in self.cfg.model.objective

    @property
    def target_names(self) -> list[str]:
        """The regressed labels (none for the purely masked objective)."""
        return list(self.cfg.model.targets) if "supervised" in self.cfg.model.objective \
            else []

    @functools.cached_property
    def _target_columns(self) -> list[int]:
        names = list(self.store.schema.label_names)
        missing = [t for t in self.target_names if t not in names]
        if missing:
            raise ConfigError("model.targets", f"{', '.join(map(repr, missing))} not among "
                              f"the labels of {self.store.url} "
                              f"({', '.join(names) if names else 'it has no labels'})")
        return [names.index(t) for t in self.target_names]

    @property
    def grid(self) -> CubeGrid:
        d = self.cfg.data
        return CubeGrid(d.cube_time_steps, d.cube_levels, d.cube_lat, d.cube_lon)

    @functools.cached_property
    def planet_ids(self) -> np.ndarray:
        """The planets of the store's samples: the built-in population's, when the store says
        it holds them, else ``sample-000000``, ..."""
        attrs, n = self.store.schema.attrs, self.store.num_samples
        if attrs.get("num_planets") == n and "population_seed" in attrs:
            return PlanetTable.synthetic(n, int(attrs["population_seed"])).ids
        return sample_ids(n)

    @functools.cached_property
    def split(self) -> PlanetSplit:
        return planet_split(self.planet_ids, self.cfg.planets)

    def _whole_batches(self, indices: np.ndarray, max_batches: int | None = None) -> np.ndarray:
        """The samples that fill whole global batches of an unshuffled pass over ``indices``
        (on any number of processes: each reads every process_count-th of them)."""
        batch = self.cfg.train.global_batch_size
        batches = len(indices) // batch
        if batches == 0:
            raise ConfigError("train.global_batch_size",
                              f"{batch} is more than the {len(indices)} samples of a split "
                              f"of {self.store.url} (planets.val_fraction="
                              f"{self.cfg.planets.val_fraction}, planets.test_fraction="
                              f"{self.cfg.planets.test_fraction})")
        if max_batches is not None:
            batches = min(batches, max_batches)
        return indices[:batches * batch]

    def eval_indices(self, split: str = "val") -> np.ndarray:
        """The held-out samples of ``split`` every eval metric, probe and baseline is computed
        on."""
        return self._whole_batches(self.split[split], self.cfg.train.eval_batches)

    @property
    def probe_train_indices(self) -> np.ndarray:
        """The train samples linear probes and baseline models are fitted on: the first
        PROBE_TRAIN_SAMPLES (embedding the whole train split took minutes on 2 cores)."""
        return self._whole_batches(self.split.train[:PROBE_TRAIN_SAMPLES])

    @functools.cached_property
    def _statistics(self) -> dict[str, np.ndarray]:
        train = self.split.train
        log.info("normalization statistics of the %d train samples of %s", len(train),
                 self.store.url)
        stats = compute_stats(self.store, train)
        labels = self.store.read_labels()[train][:, self._target_columns]
        return {"mean": np.asarray(stats.mean), "std": np.asarray(stats.std),
                "count": stats.count, "target_mean": labels.mean(0),
                "target_std": np.maximum(labels.std(0), 1e-6)}

    def artifacts(self) -> dict:
        s = self._statistics
        return {"store": self.store.url, "variables": list(self.store.schema.variables),
                "cube_mean": s["mean"].tolist(), "cube_std": s["std"].tolist(),
                "statistics_samples": f"train split: {len(self.split.train)} samples",
                "targets": self.target_names, "target_mean": s["target_mean"].tolist(),
                "target_std": s["target_std"].tolist()}

    @property
    def crop(self) -> tuple[int, int, int]:
        return tuple(self.cfg.data.cube_crop)

    @property
    def input_grid(self) -> tuple[int, int, int]:
        """(time, lat, lon) the model sees, after cropping."""
        t, _, y, x = self.store.schema.shape
        if len(self.crop) != 3 or any(c < 0 or c > s for c, s in zip(self.crop, (t, y, x),
                                                                      strict=True)):
            raise ConfigError("data.cube_crop", f"{self.crop} must be 3 sizes (time, lat, lon), "
                                                f"each 0 (whole axis) or at most the store's "
                                                f"{(t, y, x)}")
        return tuple(c or s for c, s in zip(self.crop, (t, y, x), strict=True))

    def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
        v, (_, levels, _, _) = len(self.store.schema.variables), self.store.schema.shape
        return DatacubeViT(self.cfg.model, in_channels=v * levels, grid=self.input_grid,
                           num_targets=len(self._target_columns), rngs=rngs)

    def _dataset(self, indices, process_index, process_count, **kwargs) -> grain.IterDataset:
        d, s = self.cfg.data, self._statistics
        source = CubeSource(self.store.url, indices, target_columns=self._target_columns,
                            target_mean=s["target_mean"], target_std=s["target_std"])
        return cube_dataset(source, batch_size=self.cfg.train.global_batch_size // process_count,
                            mean=s["mean"], std=s["std"], crop=self.crop, seed=d.shuffle_seed,
                            process_index=process_index, process_count=process_count,
                            **{"worker_count": d.worker_count,
                               "prefetch_buffer_size": d.prefetch_buffer_size, **kwargs})

    def train_data(self, process_index: int, process_count: int) -> grain.IterDataset:
        return self._dataset(self.split.train, process_index, process_count, shuffle=True,
                             num_epochs=None)

    def eval_data(self, process_index: int, process_count: int,
                  split: str = "val") -> Iterable[dict[str, np.ndarray]]:
        if not self.fills_eval_batch(split, len(self.split[split])):
            return []
        ds = self._dataset(self.eval_indices(split), process_index, process_count, shuffle=False,
                           num_epochs=1, worker_count=0)
        return list(itertools.islice(iter(ds), self.cfg.train.eval_batches))

    # ---- objective
    def loss(self, model: nnx.Module, batch: Batch, rng: jax.Array,
             step: jax.Array) -> tuple[jax.Array, Metrics]:
        del step  # constant loss
        outputs = model.masked(batch["cube"], rng) if self.masked else model(batch["cube"])
        targets = batch["targets"]
        loss, m = datacube_losses(outputs, targets, jnp.isfinite(targets), self.cfg.model)
        return loss, {k: m[k] for k in ("reconstruction_mse", "mse") if k in m}

    def eval_sums(self, model: nnx.Module, batch: Batch) -> Metrics:
        cube, targets = batch["cube"], batch["targets"]
        sums = {"examples": jnp.asarray(cube.shape[0], jnp.float32)}
        if self.masked:  # a fixed mask per batch, so evals are comparable
            key = jax.random.fold_in(jax.random.key(0), batch["planet"][0])
            _, m = datacube_losses(model.masked(cube, key), targets, jnp.isfinite(targets),
                                   self.cfg.model)
            sums.update(reconstruction_sse=m["reconstruction_sse"],
                        reconstruction_count=m["reconstruction_count"])
        if self.target_names:  # the regression head on whole cubes, as it is used
            m = r2_sums(targets, model(cube)["regression"], jnp.isfinite(targets))
            for i, name in enumerate(self.target_names):  # the loop sums scalars only
                for stat in ("sse", "count", "sum_target", "sum_target_sq"):
                    sums[f"{stat}/{name}"] = m[stat][i]
        return sums

    def finalize_eval(self, sums: dict[str, float]) -> dict[str, float]:
        c = self.cfg.model
        out, loss = {}, 0.0
        if self.masked:
            out["reconstruction_mse"] = sums["reconstruction_sse"] / max(
                sums["reconstruction_count"], 1.0)
            loss += c.reconstruction_weight * out["reconstruction_mse"]
        names = self.target_names
        if names:
            stats = {stat: [sums[f"{stat}/{n}"] for n in names]
                     for stat in ("sse", "count", "sum_target", "sum_target_sq")}
            metrics = r2_from_sums(stats)
            out["mse"] = sum(stats["sse"]) / max(sum(stats["count"]), 1.0)
            loss += c.regression_weight * out["mse"]
            out["r2_mean"] = metrics["r2_mean"]
            out.update({f"r2/{n}": float(r) for n, r in zip(names, metrics["r2"], strict=True)})
        return {"loss": loss, **out}

    def embed(self, model: nnx.Module, batch: Batch) -> dict[str, jax.Array]:
        """The planet embedding ``[batch, d_model]`` the fusion model consumes: the mean of the
        encoder's output tokens over the whole cube (no masking)."""
        return {"embedding": model(batch["cube"])["embedding"]}

    def count_items(self, batch: dict[str, np.ndarray]) -> int:
        return len(batch["cube"])

    # ---- what the model is measured against
    @functools.cached_property
    def _train_summaries(self) -> dict[str, np.ndarray]:
        return cube_summaries(self.store, self.probe_train_indices)

    def baselines(self, split: str = "val") -> dict[str, float]:
        """Closed-form rules and summary-statistic ridge/logistic models, fitted on the probes'
        train samples and scored on the samples of ``split`` (``cube_baseline_report``)."""
        test_indices = self.eval_indices(split)
        test = cube_summaries(self.store, test_indices)
        labels = self.store.read_labels()
        return cube_baseline_report(self._train_summaries, test,
                                    labels[self.probe_train_indices], labels[test_indices],
                                    self.store.schema.label_names, self.store.schema.variables)

    def final_eval(self, embed_fn, params, shard) -> dict[str, float]:
        """Linear probes of the planet embedding for every label: fitted on the train split's
        embeddings, scored on the held-out ones (ridge with leave-one-out penalty for values,
        L2 logistic regression for classes), comparable key for key with :meth:`baselines`."""
        x_train, i_train = self._embeddings(embed_fn, params, shard, self.probe_train_indices)
        x_test, i_test = self._embeddings(embed_fn, params, shard, self.eval_indices())
        labels = self.store.read_labels()
        out = {}
        for j, name in enumerate(self.store.schema.label_names):
            y_train, y_test = labels[i_train, j], labels[i_test, j]
            fit, scored = np.isfinite(y_train), np.isfinite(y_test)
            if fit.sum() < 2 or scored.sum() < 2:
                continue
            if name in CLASS_LABELS:
                probe = linear_probe(x_train[fit], y_train[fit], x_test[scored], y_test[scored],
                                     CLASS_LABELS[name])
                out[f"probe/accuracy/{name}"] = probe["accuracy"]
            else:
                out[f"probe/r2/{name}"] = ridge_probe(x_train[fit], y_train[fit], x_test,
                                                      y_test)["r2"]
        return out

    def _embeddings(self, embed_fn, params, shard, indices) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings ``[n, d]`` of the samples ``indices`` (whole batches) and their store
        indices, gathered from every process."""
        from jax.experimental import multihost_utils

        ds = self._dataset(indices, jax.process_index(), jax.process_count(), shuffle=False,
                           num_epochs=1, worker_count=0)
        embeddings, order = [], []
        for local in ds:
            batch = shard(local)
            values = (embed_fn(params, batch)["embedding"], batch["planet"])
            values = (multihost_utils.process_allgather(values, tiled=True)
                      if jax.process_count() > 1 else jax.device_get(values))
            embeddings.append(np.asarray(values[0], np.float64))
            order.append(np.asarray(values[1]))
        return np.concatenate(embeddings), np.concatenate(order)
