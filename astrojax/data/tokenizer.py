"""Tokenizers with one interface (``encode``, ``decode``, ``vocab_size``, ``pad_id``,
``bos_id``, ``eos_id``, ``eos_ids``): our byte-level one, which needs no vocabulary file, and
an imported Hugging Face model's own ``tokenizer.json`` through the ``tokenizers`` library.
:func:`load_tokenizer` picks the one a folder holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import tokenizers


class TokenizerError(ValueError):
    """A tokenizer folder we cannot use; the message names the file."""


class ByteTokenizer:
    """Maps text to ``[BOS, byte + 3, ..., EOS]`` int32 ids and back.

    Ids 0, 1 and 2 are padding, beginning and end of sequence; 3..258 are the 256 byte values.
    """

    pad_id = 0
    bos_id = 1
    eos_id = 2
    eos_ids = (eos_id,)  # the ids that end a generation
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


class HFTokenizer:
    """A Hugging Face folder's ``tokenizer.json`` with :class:`ByteTokenizer`'s interface.

    The special ids come from the folder's ``config.json`` and ``generation_config.json``
    (``bos_token_id``, ``eos_token_id`` as an int or a list, ``pad_token_id``), else from
    ``tokenizer_config.json``'s token strings. ``eos_ids`` is every end-of-sequence id either
    file names (Llama 3 instruct models stop on several). ``pad_id`` is the pad id, else the
    first end-of-sequence id (as transformers' ``generate`` pads), else 0.
    """

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        file = folder / "tokenizer.json"
        if not file.is_file():
            raise TokenizerError(f"{file}: no such file")
        try:
            self._tokenizer = tokenizers.Tokenizer.from_file(str(file))
        except Exception as err:  # the Rust side raises a bare Exception for bad files
            raise TokenizerError(f"{file}: not a readable tokenizers file "
                                 f"({str(err).splitlines()[0] if str(err) else err!r})") from None
        config = _json(folder / "config.json")
        generation = _json(folder / "generation_config.json")
        token_strings = _json(folder / "tokenizer_config.json")
        self.vocab_size = self._tokenizer.get_vocab_size(with_added_tokens=True)
        self.bos_id = self._special(config, generation, token_strings, "bos")
        eos = []
        for source in (generation, config):
            value = source.get("eos_token_id")
            for i in (value if isinstance(value, list) else [value]):
                if isinstance(i, int) and i not in eos:
                    eos.append(i)
        if not eos:
            found = self._special({}, {}, token_strings, "eos")
            eos = [] if found is None else [found]
        self.eos_ids = tuple(eos)
        self.eos_id = eos[0] if eos else None
        pad = self._special(config, generation, token_strings, "pad")
        self.pad_id = pad if pad is not None else self.eos_id if self.eos_id is not None else 0

    def _special(self, config: dict, generation: dict, token_strings: dict,
                 kind: str) -> int | None:
        for source in (config, generation):
            value = source.get(f"{kind}_token_id")
            if isinstance(value, list):
                value = value[0] if value else None
            if isinstance(value, int):
                return value
        token = token_strings.get(f"{kind}_token")
        if isinstance(token, dict):
            token = token.get("content")
        return self._tokenizer.token_to_id(token) if isinstance(token, str) else None

    def encode(self, text: str, *, add_bos: bool = True, add_eos: bool = True) -> np.ndarray:
        """int32 ids; with ``add_bos`` the tokenizer's own post-processor runs (it may add BOS
        or other special tokens) and BOS is prepended if it did not; with ``add_eos`` the first
        end-of-sequence id is appended unless already last."""
        ids = self._tokenizer.encode(text, add_special_tokens=add_bos).ids
        if add_bos and self.bos_id is not None and (not ids or ids[0] != self.bos_id):
            ids = [self.bos_id] + ids
        if add_eos and self.eos_id is not None and (not ids or ids[-1] != self.eos_id):
            ids = ids + [self.eos_id]
        return np.asarray(ids, np.int32)

    def decode(self, ids: np.ndarray | list[int]) -> str:
        """Text of the ids, special tokens dropped."""
        return self._tokenizer.decode([int(i) for i in np.asarray(ids).reshape(-1)],
                                      skip_special_tokens=True)


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TokenizerError(f"{path}: not readable JSON ({err})") from None
    return data if isinstance(data, dict) else {}


def load_tokenizer(path: str | Path | None = None) -> ByteTokenizer | HFTokenizer:
    """The tokenizer of ``path``: a Hugging Face folder (one with ``tokenizer.json``) gets
    :class:`HFTokenizer`; anything else (None, a training workdir) the :class:`ByteTokenizer`
    our models are trained with. A Hugging Face model folder (``config.json`` with a
    ``model_type``) without ``tokenizer.json`` is an error, not bytes."""
    if path is None:
        return ByteTokenizer()
    folder = Path(path)
    if (folder / "tokenizer.json").is_file():
        return HFTokenizer(folder)
    config = _json(folder / "config.json") if folder.is_dir() else {}
    if "model_type" in config:
        raise TokenizerError(f"{folder}: a Hugging Face model folder without tokenizer.json (a "
                             "sentencepiece tokenizer.model alone is not read: save the fast "
                             "tokenizer with transformers' AutoTokenizer.save_pretrained)")
    return ByteTokenizer()
