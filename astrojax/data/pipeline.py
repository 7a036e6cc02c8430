"""Grain pipelines: token batches from text, packed or padded, sharded by process.

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
    ``batch_size`` is per process: this process reads texts ``process_index::process_count``.
    With ``shuffle`` the order is a seeded permutation, reshuffled every epoch;
    ``num_epochs=None`` repeats forever. The final partial batch of a finite run is dropped.
    """
    if packing not in ("pack", "pad"):
        raise ValueError(f"packing must be 'pack' or 'pad', got {packing!r}")
    if not texts:
        raise ValueError("text_dataset needs at least one text")
    tokenizer = tokenizer or ByteTokenizer()
    ds = grain.MapDataset.source(list(texts))[process_index::process_count]
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
    return ids.batch(batch_size, drop_remainder=True)
