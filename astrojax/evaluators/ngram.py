"""Interpolated (Witten-Bell) n-gram model over token ids: the simplest fair language model,
the baseline every learned LM number in this project is reported beside.

Witten-Bell interpolation (Witten & Bell 1991; Chen & Goodman 1998, section 2.5):
``P(w | h) = (c(h, w) + T(h) P(w | h')) / (c(h) + T(h))``, where ``h'`` drops the oldest
token of ``h``, ``c`` counts training occurrences and ``T(h)`` is the number of distinct tokens
seen after ``h``; an unseen context falls back to ``P(w | h')``, and the shortest context
interpolates with the uniform distribution. No tuned parameters, so nothing is fitted to the
held-out set.

Documents are counted with the ``boundary`` symbol before their first token, so a context
that reaches past a document's (or a packed row's) start reads as "start", as the model sees
it. Contexts are hashed to 64-bit keys (a multiply-xor hash over the ids); with a few million
distinct contexts a collision has a probability of about 1e-6, so any order is possible.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

_MULTIPLIER = np.uint64(0x100000001B3)  # FNV-1a's 64-bit prime


class NGramModel:
    """A Witten-Bell interpolated n-gram model of ``order`` (contexts of ``order - 1`` ids)."""

    def __init__(self, order: int, vocab_size: int):
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        self.order, self.vocab_size, self.boundary = order, vocab_size, vocab_size
        # per context length: sorted context keys, their next ids and the pairs' counts
        self._tables: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    @staticmethod
    def _context_keys(contexts: np.ndarray, length: int) -> np.ndarray:
        """uint64 keys of the last ``length`` ids of each row of ``contexts`` ``[n, order-1]``."""
        keys = np.full(len(contexts), 0xCBF29CE484222325, np.uint64)  # FNV offset basis
        with np.errstate(over="ignore"):
            for col in range(contexts.shape[1] - length, contexts.shape[1]):
                keys = (keys ^ contexts[:, col].astype(np.uint64)) * _MULTIPLIER
        return keys

    def fit(self, documents: Iterable[np.ndarray]) -> NGramModel:
        """Counts every token of every document after the first, each after its ``order - 1``
        predecessors (the boundary symbol before the start). Ids lie in ``[0, vocab_size)``."""
        docs = [np.asarray(doc, np.int64) for doc in documents]
        if not docs:
            raise ValueError("fit needs at least one document")
        ids = np.concatenate(docs)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}); got "
                             f"{ids.min()}..{ids.max()}")
        segments = np.repeat(np.arange(1, len(docs) + 1), [len(d) for d in docs])
        contexts, targets = self.contexts_of(ids[None], segments[None])
        self._tables = []
        for length in range(self.order):
            ctx = self._context_keys(contexts, length)
            by_context = np.lexsort((targets, ctx))
            ctx, nxt = ctx[by_context], targets[by_context]
            first = np.ones(len(ctx), bool)
            first[1:] = (ctx[1:] != ctx[:-1]) | (nxt[1:] != nxt[:-1])
            starts = np.flatnonzero(first)
            counts = np.diff(np.append(starts, len(ctx)))
            self._tables.append((ctx[starts], nxt[starts], counts))
        return self

    def contexts_of(self, rows: np.ndarray,
                    segment_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(contexts [n, order-1], targets [n])`` of the next-token targets of packed rows
        ``[b, t]``: as the LM task scores them, a token is a target when it continues the
        non-zero segment of the token before it; its history is the earlier tokens of that
        segment within the row, the boundary symbol before them."""
        rows, segment_ids = np.asarray(rows, np.int64), np.asarray(segment_ids)
        b, t = rows.shape
        width = self.order - 1
        same = np.zeros((b, t), bool)
        same[:, 1:] = (segment_ids[:, 1:] == segment_ids[:, :-1]) & (segment_ids[:, 1:] != 0)
        # where each token's run began: the last position that does not continue its segment
        run_start = np.maximum.accumulate(np.where(same, 0, np.arange(t)[None, :]), axis=1)
        padded = np.full((b, t + width), self.boundary, np.int64)
        padded[:, width:] = rows
        # context column c holds the id at position p - width + c; blank those before the run
        contexts = np.stack([padded[:, i:i + t] for i in range(width)], axis=-1) if width \
            else np.zeros((b, t, 0), np.int64)
        before = (np.arange(t)[None, :, None] + np.arange(-width, 0)[None, None, :]
                  < run_start[:, :, None])
        contexts = np.where(before, self.boundary, contexts)
        return contexts[same], rows[same]

    def log_probs(self, contexts: np.ndarray) -> np.ndarray:
        """``[n, vocab_size]`` float64 log-probabilities of the next id after each context."""
        n = len(contexts)
        probs = np.full((n, self.vocab_size), 1.0 / self.vocab_size)
        for length, (keys, next_ids, counts) in enumerate(self._tables):
            unique, inverse = np.unique(self._context_keys(contexts, length), return_inverse=True)
            lo, hi = np.searchsorted(keys, unique), np.searchsorted(keys, unique, side="right")
            row = np.repeat(np.arange(len(unique)), hi - lo)
            idx = np.arange(len(row)) - np.repeat(np.cumsum(hi - lo) - (hi - lo), hi - lo) \
                + np.repeat(lo, hi - lo)
            dense = np.zeros((len(unique), self.vocab_size))
            dense[row, next_ids[idx]] = counts[idx]
            total = dense.sum(axis=1)[inverse]
            types = (dense > 0).sum(axis=1)[inverse]
            mixed = ((dense[inverse] + types[:, None] * probs)
                     / np.maximum(total + types, 1)[:, None])
            probs = np.where((total > 0)[:, None], mixed, probs)
        return np.log(probs)

    def score(self, contexts: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        """Summed negative log-likelihood, correct argmax predictions and the count, as the
        LM task's eval statistics."""
        log_p = self.log_probs(contexts)
        nll = -log_p[np.arange(len(targets)), targets]
        return {"nll_sum": float(nll.sum()),
                "correct": float((log_p.argmax(axis=1) == targets).sum()),
                "count": float(len(targets))}
