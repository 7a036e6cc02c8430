"""A language model that describes a planet from its data: the fusion model's planet embedding,
through a learned projector, becomes a soft prompt of ``p`` vectors the language model reads
before the description's tokens.

``fusion(batch)["embedding"]`` (``[b, e]``, the final-normed planet token the fusion heads
read) -> ``MLP(e -> hidden -> p * d)`` -> ``prefix_bpd`` ``[b, p, d]`` -> the
:class:`~astrojax.models.transformer.Transformer` on ``prefix + tokens`` (``p + t`` positions;
its ``prefix_bpd`` argument). With ``p = 0`` there is no fusion model and no projector: the
language model alone, the control that can only learn the descriptions' base rates.

The fusion model is frozen unless told otherwise: its embedding passes through
``stop_gradient`` (no backward pass through it) and the task keeps the optimizer off its
parameters (``Task.trainable``; weight decay would move them even with zero gradients).

:func:`prefixed_next_token_stats` is the objective: next-token cross-entropy on the
description's tokens only, read at the positions after the prefix. Letters: b batch, p prefix
vectors, t tokens, s = p + t sequence, d the language model's width, v vocabulary.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from astrojax.models.fusion import FusionModel
from astrojax.models.layers import MLP
from astrojax.models.transformer import Transformer


class PlanetDescriber(nnx.Module):
    """``(batch, tokens [b, t])`` -> logits ``[b, p + t, v]``; ``batch`` holds the fusion
    model's inputs of the planets (:class:`~astrojax.models.fusion.FusionModel`)."""

    def __init__(self, lm: Transformer, fusion: FusionModel | None, *, prefix_tokens: int,
                 fusion_dim: int, projector_dim: int, train_fusion: bool = False,
                 rngs: nnx.Rngs):
        if (fusion is None) != (prefix_tokens == 0):
            raise ValueError(f"prefix_tokens={prefix_tokens} needs a fusion model exactly when "
                             "it is > 0")
        self.lm = lm
        self.prefix_tokens = prefix_tokens
        self.train_fusion = train_fusion
        self.d_model = lm.embedding_vd.shape[1]
        if fusion is not None:
            self.fusion = fusion
            self.projector = MLP(fusion_dim, projector_dim, prefix_tokens * self.d_model,
                                 ("embed", "mlp", None), rngs=rngs)

    def prefix(self, batch: dict) -> jax.Array | None:
        """The soft prompt ``[b, p, d]`` of the batch's planets (None when ``p = 0``)."""
        if not self.prefix_tokens:
            return None
        embedding_be = self.fusion(batch)["embedding"]
        if not self.train_fusion:
            embedding_be = jax.lax.stop_gradient(embedding_be)
        flat = self.projector(embedding_be.astype(jnp.float32))
        return flat.reshape(flat.shape[0], self.prefix_tokens, self.d_model)

    def __call__(self, batch: dict, tokens_bt: jax.Array) -> jax.Array:
        return self.lm(tokens_bt, prefix_bpd=self.prefix(batch))


def prefixed_next_token_stats(logits_bsv: jax.Array, tokens_bt: jax.Array,
                              mask_bt: jax.Array) -> dict[str, jax.Array]:
    """Summed next-token NLL, correct predictions and count over a prefixed sequence's tokens.

    ``logits_bsv`` cover ``p`` prefix positions, then the ``t`` tokens (``s = p + t``): the
    logits at position ``p + j`` predict token ``j + 1``. A target counts where ``mask_bt``
    marks it as a real token (1 for the description's tokens, BOS included, 0 for padding);
    the first token (BOS, given as the prompt) is never a target, and nothing is read at the
    prefix positions."""
    p = logits_bsv.shape[1] - tokens_bt.shape[1]
    logits = logits_bsv[:, p:-1].astype(jnp.float32)
    targets = tokens_bt[:, 1:]
    mask = mask_bt[:, 1:].astype(bool)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    correct = jnp.argmax(logits, axis=-1) == targets
    return {"nll_sum": jnp.sum(jnp.where(mask, nll, 0.0)),
            "correct": jnp.sum(mask & correct).astype(jnp.float32),
            "count": jnp.sum(mask).astype(jnp.float32)}
