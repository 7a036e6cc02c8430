"""Text pipeline: tokenizer, packing and padding, seeded order, exact resume, process split."""

import numpy as np
import pytest

from astrojax.data.pipeline import text_dataset
from astrojax.data.tokenizer import ByteTokenizer

TEXTS = [f"Planet {i} orbits a {'MKGF'[i % 4]} star at {0.1 * i:.2f} AU." * (1 + i % 3)
         for i in range(64)]


def test_tokenizer_round_trip_utf8():
    tok = ByteTokenizer()
    text = "Teff 5772 K, insolation 1.0 S_earth, 288 K \u2248 15 \u00b0C"
    ids = tok.encode(text)
    assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
    assert ids.dtype == np.int32 and ids.max() < tok.vocab_size
    assert tok.decode(ids) == text


def test_packed_batches_have_segments_and_positions():
    batch = next(iter(text_dataset(TEXTS, seq_len=128, batch_size=4, seed=1)))
    assert set(batch) == {"tokens", "segment_ids", "positions"}
    for value in batch.values():
        assert value.shape == (4, 128) and value.dtype == np.int32
    seg, pos, tok = batch["segment_ids"], batch["positions"], batch["tokens"]
    assert (seg >= 1).all()  # packing leaves no padding
    starts = np.diff(seg, axis=1) != 0
    # where a new document begins, its position restarts at 0 and its first token is BOS
    assert (pos[:, 1:][starts] == 0).all()
    assert (tok[:, 1:][starts] == ByteTokenizer.bos_id).all()


def test_padded_batches_mask_padding():
    batch = next(iter(text_dataset(TEXTS, seq_len=128, batch_size=4, packing="pad",
                                   shuffle=False)))
    lengths = [min(len(ByteTokenizer().encode(t)), 128) for t in TEXTS[:4]]
    assert batch["segment_ids"].sum(axis=1).tolist() == lengths
    assert (batch["tokens"][batch["segment_ids"] == 0] == 0).all()


def test_seeded_order_is_deterministic_and_seed_dependent():
    def first(seed):
        return next(iter(text_dataset(TEXTS, seq_len=64, batch_size=2, seed=seed)))["tokens"]

    np.testing.assert_array_equal(first(3), first(3))
    assert not np.array_equal(first(3), first(4))


def test_resume_from_iterator_state_is_exact():
    ds = text_dataset(TEXTS, seq_len=64, batch_size=4, seed=0)
    straight = iter(ds)
    reference = [next(straight)["tokens"] for _ in range(40)]  # > 1 epoch
    it = iter(ds)
    for _ in range(17):
        next(it)
    state = it.get_state()
    resumed = iter(ds)
    resumed.set_state(state)
    for expected in reference[17:]:
        np.testing.assert_array_equal(next(resumed)["tokens"], expected)


def test_epochs_are_reshuffled():
    ds = text_dataset(TEXTS, seq_len=1024, batch_size=1, packing="pad", seed=0)
    it = iter(ds)
    epoch1 = [next(it)["tokens"][0, :40].tobytes() for _ in range(len(TEXTS))]
    epoch2 = [next(it)["tokens"][0, :40].tobytes() for _ in range(len(TEXTS))]
    assert sorted(epoch1) == sorted(epoch2) and epoch1 != epoch2


@pytest.mark.parametrize("packing", ["pad", "pack"])
def test_processes_feed_their_blocks_of_the_one_process_batch(packing):
    # The global batches do not depend on the number of processes (a run resumes on another
    # count; every process yields as many batches), and each process keeps its own rows.
    def batches(index, count):
        ds = text_dataset(TEXTS, seq_len=64, batch_size=4 // count, packing=packing,
                          seed=3, num_epochs=2, process_index=index, process_count=count)
        return [b["tokens"] for b in ds]

    whole, first, second = batches(0, 1), batches(0, 2), batches(1, 2)
    assert len(whole) == len(first) == len(second) > 1
    for batch, a, b in zip(whole, first, second, strict=True):
        np.testing.assert_array_equal(np.concatenate([a, b]), batch)
    state = iter(text_dataset(TEXTS, seq_len=64, batch_size=2, process_index=1,
                              process_count=2))
    single = iter(text_dataset(TEXTS, seq_len=64, batch_size=4))
    next(state), next(single)
    assert state.get_state() == single.get_state()  # so a checkpoint's position transfers


def test_bad_arguments():
    with pytest.raises(ValueError, match="packing"):
        text_dataset(TEXTS, seq_len=8, batch_size=1, packing="zip")
    with pytest.raises(ValueError, match="at least one text"):
        text_dataset([], seq_len=8, batch_size=1)
