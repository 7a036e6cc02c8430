"""Climate datacubes: regress planet quantities and classify the climate regime from each cube.

The cubes come from a TensorStore store (``data.cube_store``): the built-in population's,
built once on first use, or any store made with ``python -m astrojax.data``. Every label column
but ``climate_regime`` is a regression target, standardized with the training samples' mean
and std; ``climate_regime`` is the class. The last ``data.eval_fraction`` of the samples is
held out. The store's normalization statistics and the target statistics are saved with every
checkpoint (``artifacts``).
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
from astrojax.data.pipeline import CubeSource, cube_dataset
from astrojax.data.store import CubeStore, build_synthetic_store, compute_stats
from astrojax.data.synthetic import CLIMATE_REGIMES
from astrojax.models.datacube_vit import DatacubeViT, datacube_eval_metrics, datacube_losses
from astrojax.tasks.base import Batch, Metrics, Task

log = logging.getLogger(__name__)
REGIME_LABEL = "climate_regime"


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
            store = CubeStore.open(build_synthetic_store(d, progress=False).url, read_only=True)
        return store

    @functools.cached_property
    def _columns(self) -> tuple[list[int], int | None]:
        names = list(self.store.schema.label_names)
        regime = names.index(REGIME_LABEL) if REGIME_LABEL in names else None
        targets = [i for i, name in enumerate(names) if name != REGIME_LABEL]
        if not targets and regime is None:
            raise ConfigError("data.cube_store", f"{self.store.url} has no labels to learn "
                                                 f"(label_names={names})")
        return targets, regime

    @property
    def target_names(self) -> list[str]:
        return [self.store.schema.label_names[i] for i in self._columns[0]]

    @functools.cached_property
    def _split(self) -> tuple[np.ndarray, np.ndarray]:
        n = self.store.num_samples
        num_eval = max(1, int(round(n * self.cfg.data.eval_fraction)))
        return np.arange(n - num_eval), np.arange(n - num_eval, n)

    @functools.cached_property
    def _statistics(self) -> dict[str, np.ndarray]:
        stats = self.store.stats
        if stats is None:
            log.info("%s has no statistics; computing them (one pass)", self.store.url)
            stats = compute_stats(self.store)
        labels = self.store.read_labels()[self._split[0]][:, self._columns[0]]
        return {"mean": np.asarray(stats.mean), "std": np.asarray(stats.std),
                "target_mean": labels.mean(0), "target_std": np.maximum(labels.std(0), 1e-6)}

    def artifacts(self) -> dict:
        s = self._statistics
        return {"store": self.store.url, "variables": list(self.store.schema.variables),
                "cube_mean": s["mean"].tolist(), "cube_std": s["std"].tolist(),
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
        return DatacubeViT(self.cfg.datacube, in_channels=v * levels, grid=self.input_grid,
                           num_targets=len(self.target_names),
                           num_classes=len(CLIMATE_REGIMES), rngs=rngs)

    def _dataset(self, indices, process_index, process_count, **kwargs) -> grain.IterDataset:
        d, s = self.cfg.data, self._statistics
        targets, regime = self._columns
        source = CubeSource(self.store.url, indices, target_columns=targets,
                            regime_column=regime, target_mean=s["target_mean"],
                            target_std=s["target_std"])
        return cube_dataset(source, batch_size=self.cfg.train.global_batch_size // process_count,
                            mean=s["mean"], std=s["std"], crop=self.crop, seed=d.shuffle_seed,
                            process_index=process_index, process_count=process_count,
                            **{"worker_count": d.worker_count,
                               "prefetch_buffer_size": d.prefetch_buffer_size, **kwargs})

    def train_data(self, process_index: int, process_count: int) -> grain.IterDataset:
        return self._dataset(self._split[0], process_index, process_count, shuffle=True,
                             num_epochs=None)

    def eval_data(self, process_index: int, process_count: int) -> Iterable[dict[str, np.ndarray]]:
        ds = self._dataset(self._split[1], process_index, process_count, shuffle=False,
                           num_epochs=1, worker_count=0)
        return list(itertools.islice(iter(ds), self.cfg.train.eval_batches))

    def _stats(self, model: nnx.Module, batch: Batch) -> tuple[jax.Array, dict]:
        outputs = model(batch["cube"])
        targets = batch["targets"]
        return datacube_losses(outputs, targets, jnp.isfinite(targets), batch["regime"],
                               batch["regime"] >= 0, self.cfg.datacube)

    def loss(self, model: nnx.Module, batch: Batch, rng: jax.Array,
             step: jax.Array) -> tuple[jax.Array, Metrics]:
        del rng, step  # no dropout, constant loss
        loss, m = self._stats(model, batch)
        return loss, {"mse": m["mse"], "cross_entropy": m["cross_entropy"],
                      "regime_accuracy": m["correct"] / jnp.maximum(m["class_count"], 1.0)}

    def eval_sums(self, model: nnx.Module, batch: Batch) -> Metrics:
        loss, m = self._stats(model, batch)
        sums = {"loss_sum": loss * batch["cube"].shape[0],
                "examples": jnp.asarray(batch["cube"].shape[0], jnp.float32),
                "correct": m["correct"], "class_count": m["class_count"]}
        for i, name in enumerate(self.target_names):  # the loop sums scalars only
            for stat in ("sse", "count", "sum_target", "sum_target_sq"):
                sums[f"{stat}/{name}"] = m[stat][i]
        return sums

    def finalize_eval(self, sums: dict[str, float]) -> dict[str, float]:
        names = self.target_names
        stats = {stat: [sums[f"{stat}/{n}"] for n in names]
                 for stat in ("sse", "count", "sum_target", "sum_target_sq")}
        metrics = datacube_eval_metrics({**stats, "correct": sums["correct"],
                                         "class_count": sums["class_count"]})
        out = {"loss": sums["loss_sum"] / max(sums["examples"], 1.0),
               "regime_accuracy": metrics["accuracy"], "r2_mean": metrics["r2_mean"]}
        out.update({f"r2/{n}": float(r) for n, r in zip(names, metrics["r2"], strict=True)})
        return out

    def embed(self, model: nnx.Module, batch: Batch) -> dict[str, jax.Array]:
        """The planet embedding ``[batch, d_model]`` the fusion model consumes."""
        return {"embedding": model(batch["cube"])["embedding"]}

    def count_items(self, batch: dict[str, np.ndarray]) -> int:
        return len(batch["cube"])
