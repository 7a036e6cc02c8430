"""Grain pipelines: token batches from text, datacube batches from a TensorStore store.

The datasets here yield this process's slice of each global batch as numpy arrays; the train
loop places them onto the mesh with :func:`astrojax.sharding.shard_batch`. Iterators are Grain
``DatasetIterator``s, so their state is checkpointed with the model and a resumed run sees
exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Sequence

import grain
import numpy as np

from astrojax.data.tokenizer import ByteTokenizer


def _pad_example(ids: np.ndarray, seq_len: int) -> dict[str, np.ndarray]:
    ids = ids[:seq_len]
    tokens = np.zeros(seq_len, np.int32)
    tokens[: len(ids)] = ids
    segment_ids = np.zeros(seq_len, np.int32)
    segment_ids[: len(ids)] = 1
    return {"tokens": tokens, "segment_ids": segment_ids,
            "positions": np.arange(seq_len, dtype=np.int32)}


def _rename_packed(example: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"tokens": example["tokens"].astype(np.int32),
            "segment_ids": example["tokens_segment_ids"].astype(np.int32),
            "positions": example["tokens_positions"].astype(np.int32)}


def text_dataset(
    texts: Sequence[str],
    *,
    seq_len: int,
    batch_size: int,
    packing: str = "pack",
    seed: int = 0,
    shuffle: bool = True,
    num_epochs: int | None = None,
    process_index: int = 0,
    process_count: int = 1,
    tokenizer: ByteTokenizer | None = None,
) -> grain.IterDataset:
    """Batches of ``{"tokens", "segment_ids", "positions"}``, each ``[batch_size, seq_len]`` int32.

    ``packing="pack"`` concatenates documents and splits them at ``seq_len`` (no padding; each
    document gets its own segment id, 1, 2, ..., and positions restarting at 0);
    ``packing="pad"`` truncates or pads each document to one row (segment id 0 marks padding).
    ``batch_size`` is per process. Every process packs the same global stream (all texts, in
    the same order) into batches of ``batch_size * process_count`` rows and keeps its block of
    ``batch_size`` rows, ``process_index``-th: so the global batches, and the iterator's saved
    state, do not depend on the number of processes (a run resumes on another count), and
    every process yields the same number of batches. The cost: each process tokenizes every
    text.
    With ``shuffle`` the order is a seeded permutation, reshuffled every epoch;
    ``num_epochs=None`` repeats forever. The final partial batch of a finite run is dropped.
    """
    if packing not in ("pack", "pad"):
        raise ValueError(f"packing must be 'pack' or 'pad', got {packing!r}")
    if not texts:
        raise ValueError("text_dataset needs at least one text")
    tokenizer = tokenizer or ByteTokenizer()
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} is not in 0..{process_count - 1}")
    ds = grain.MapDataset.source(list(texts))
    if shuffle:
        ds = ds.shuffle(seed=seed)
    if num_epochs != 1:
        ds = ds.repeat(num_epochs)
    ds = ds.map(tokenizer.encode)
    if packing == "pad":
        ids = ds.map(lambda x: _pad_example(x, seq_len)).to_iter_dataset()
    else:
        ids = ds.map(lambda x: {"tokens": x}).to_iter_dataset()
        ids = grain.experimental.ConcatThenSplitIterDataset(
            ids, length_struct={"tokens": seq_len}).map(_rename_packed)
    rows = slice(process_index * batch_size, (process_index + 1) * batch_size)
    return ids.batch(batch_size * process_count, drop_remainder=True).map(
        lambda batch: {name: value[rows] for name, value in batch.items()})


# ---------------------------------------------------------------------------------- datacubes
class CubeSource:
    """Random access to samples of a :class:`~astrojax.data.formats.store.CubeStore` by position.

    Picklable (Grain worker processes reopen the store read-only from its URL). Element ``i`` is
    ``{"cube": [V, T, L, Y, X] float32, "targets": [K] float32, "planet": int32}`` for store
    sample ``planet = indices[i]`` (a store's sample ``i`` is row ``i`` of its planet table, see
    :mod:`astrojax.data.planets`); targets are the label columns ``target_columns``
    standardized with ``target_mean``/``target_std`` (K may be 0); ``planet`` lets evaluations
    join a batch with any other modality or label of the same planet.
    """

    def __init__(self, url: str, indices: Sequence[int], *, target_columns: Sequence[int],
                 target_mean: np.ndarray, target_std: np.ndarray):
        self.url, self.indices = url, np.asarray(indices, np.int64)
        self.target_columns = list(target_columns)
        self.target_mean = np.asarray(target_mean, np.float32)
        self.target_std = np.asarray(target_std, np.float32)
        self._store = self._labels = None

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_store", "_labels")}

    def __setstate__(self, state):
        self.__dict__.update(state, _store=None, _labels=None)

    def _open(self):
        # Grain reads with several threads: publish the labels before the store.
        if self._store is None:
            from astrojax.data.formats.store import CubeStore

            store = CubeStore.open(self.url, read_only=True)
            store.complete()  # one listing of completion markers instead of one read per sample
            self._labels = store.read_labels()
            self._store = store
        return self._store

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return {k: v[0] for k, v in self.read_batch([i]).items()}

    def read_batch(self, positions: Sequence[int]) -> dict[str, np.ndarray]:
        """Elements ``positions`` stacked; the cubes are read concurrently in one call, which
        TensorStore serves about 2.7x faster than one sample at a time."""
        store = self._open()
        index = self.indices[np.asarray(positions, np.int64)]
        labels = self._labels[index][:, self.target_columns]
        targets = (labels - self.target_mean) / self.target_std
        return {"cube": store.read_samples(index), "targets": targets.astype(np.float32),
                "planet": index.astype(np.int32)}


class ReadCubes(grain.transforms.Map):
    """A batch of source positions -> the batch of elements (see ``CubeSource.read_batch``)."""

    def __init__(self, source: CubeSource):
        self.source = source

    def map(self, positions):
        return self.source.read_batch(positions)


class NormalizeCube(grain.transforms.Map):
    """Standardizes each variable (and level) with the store's statistics ``[V, L]``; works on
    one cube ``[V, T, L, Y, X]`` or a batch of them."""

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        self.mean = np.asarray(mean, np.float32)[:, None, :, None, None]
        self.std = np.maximum(np.asarray(std, np.float32), 1e-6)[:, None, :, None, None]

    def map(self, element):
        return dict(element, cube=(element["cube"] - self.mean) / self.std)


def _crop_starts(shape: tuple[int, ...], crop: tuple[int, int, int], rng) -> list[int]:
    sizes = (shape[1], shape[3], shape[4])  # time, lat, lon of [V, T, L, Y, X]
    starts = []
    for axis, (s, c) in enumerate(zip(sizes, crop, strict=True)):
        if c in (0, s):
            starts.append(0)
        elif rng is None:
            starts.append((s - c) // 2)
        else:  # longitude wraps, so any start is a valid window
            starts.append(int(rng.integers(0, s if axis == 2 else s - c + 1)))
    return starts


def crop_cube(cube: np.ndarray, crop: tuple[int, int, int], rng=None) -> np.ndarray:
    """A ``crop`` = (time, lat, lon) window of ``[V, T, L, Y, X]`` (0 keeps the whole axis).

    Random with a numpy ``rng``, centred without. Longitude wraps around (a window may cross
    the date line); time and latitude do not.
    """
    t0, y0, x0 = _crop_starts(cube.shape, crop, rng)
    t = crop[0] or cube.shape[1]
    y = crop[1] or cube.shape[3]
    x = crop[2] or cube.shape[4]
    lon = np.arange(x0, x0 + x) % cube.shape[4]
    return cube[:, t0:t0 + t, :, y0:y0 + y][..., lon]


class RandomCrop(grain.transforms.RandomMap):
    """A random ``crop_cube`` window for each sample of a batch (Grain seeds ``rng`` per batch,
    so the windows are deterministic and resume exactly)."""

    def __init__(self, crop: tuple[int, int, int]):
        self.crop = tuple(crop)

    def random_map(self, batch, rng: np.random.Generator):
        return dict(batch, cube=np.stack([crop_cube(c, self.crop, rng) for c in batch["cube"]]))


class CentreCrop(grain.transforms.Map):
    """The centred ``crop_cube`` window of every sample of a batch (evaluation)."""

    def __init__(self, crop: tuple[int, int, int]):
        self.crop = tuple(crop)

    def map(self, batch):
        cubes = batch["cube"]
        flat = crop_cube(cubes.reshape(-1, *cubes.shape[2:]), self.crop)
        return dict(batch, cube=flat.reshape(*cubes.shape[:2], *flat.shape[1:]))


def cube_dataset(
    source: CubeSource,
    *,
    batch_size: int,
    mean: np.ndarray,
    std: np.ndarray,
    crop: tuple[int, int, int] = (0, 0, 0),
    seed: int = 0,
    shuffle: bool = True,
    num_epochs: int | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
    worker_count: int = 0,
    prefetch_buffer_size: int = 2,
) -> grain.IterDataset:
    """Batches of ``{"cube": [B, V, T', L, Y', X'], "targets": [B, K], "planet": [B]}``.

    This process reads every ``process_count``-th sample from ``process_index`` (default: the
    JAX process, as ``grain.sharding.ShardByJaxProcess``; the source is first cut to a multiple
    of the process count so every process sees the same number of samples). With ``shuffle``
    the order is a seeded permutation, reshuffled every epoch; ``num_epochs=None`` repeats
    forever. Each batch's samples are read in one concurrent call, normalized, then cropped
    (randomly when shuffling, centred otherwise); ``worker_count > 0`` moves all of that into
    worker processes.
    ``batch_size`` is per process. The iterator's state is checkpointable either way.
    """
    if process_index is None or process_count is None:
        shard = grain.sharding.ShardByJaxProcess(drop_remainder=True)
        process_index, process_count = shard.shard_index, shard.shard_count
    if len(source) < process_count * batch_size:
        raise ValueError(f"{len(source)} cubes are fewer than one batch of {batch_size} on each "
                         f"of {process_count} processes")
    even = len(source) // process_count * process_count
    ds = grain.MapDataset.range(len(source))[:even][process_index::process_count]
    if shuffle:
        ds = ds.shuffle(seed=seed)
    if num_epochs != 1:
        ds = ds.repeat(num_epochs)
    # Batch the sample positions first, then read each batch in one concurrent call.
    ds = ds.batch(batch_size, drop_remainder=True, batch_fn=np.asarray)
    ds = ds.map(ReadCubes(source)).map(NormalizeCube(mean, std))
    if any(crop):
        ds = ds.random_map(RandomCrop(crop), seed=seed + 1) if shuffle else ds.map(CentreCrop(crop))
    # Bounded read-ahead: Grain's default (16 threads, 500 batches) made each worker hold
    # ~2.8 GB and keep two cores busy filling it, slowing the train step it feeds.
    threads = max(prefetch_buffer_size, 1)
    it = ds.to_iter_dataset(grain.ReadOptions(num_threads=threads, prefetch_buffer_size=threads))
    if worker_count > 0:
        return it.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count,
                                                           per_worker_buffer_size=threads))
    return it
