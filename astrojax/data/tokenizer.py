"""Byte-level tokenizer: UTF-8 bytes shifted past three special ids. Needs no vocabulary file."""

from __future__ import annotations

import numpy as np


class ByteTokenizer:
    """Maps text to ``[BOS, byte + 3, ..., EOS]`` int32 ids and back.

    Ids 0, 1 and 2 are padding, beginning and end of sequence; 3..258 are the 256 byte values.
    """

    pad_id = 0
    bos_id = 1
    eos_id = 2
    num_special = 3
    vocab_size = 256 + num_special

    def encode(self, text: str, *, add_bos: bool = True, add_eos: bool = True) -> np.ndarray:
        ids = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int32)
        ids += self.num_special
        parts = ([np.array([self.bos_id], np.int32)] if add_bos else []) + [ids]
        if add_eos:
            parts.append(np.array([self.eos_id], np.int32))
        return np.concatenate(parts)

    def decode(self, ids: np.ndarray | list[int]) -> str:
        """Text of the byte ids; special ids are dropped, invalid UTF-8 is replaced."""
        ids = np.asarray(ids, dtype=np.int64)
        data = (ids[ids >= self.num_special] - self.num_special).astype(np.uint8).tobytes()
        return data.decode("utf-8", errors="replace")
