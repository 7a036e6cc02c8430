"""Text from a trained language model, for the command line and for scripts.

    from astrojax.generate import load_generator
    generator = load_generator("runs/quickstart")
    generator(["Kepler-0042 b orbits"], max_new_tokens=200)  # -> completions

``load_generator`` takes an ``lm`` training workdir (its newest checkpoint and the byte
tokenizer), sharded over the run's own mesh config as in training. The decoding itself is
:func:`astrojax.models.generate`. ``python -m astrojax.generate`` is the command line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
from flax import nnx

from astrojax.models.decode import generate_text


@dataclasses.dataclass(frozen=True)
class Generator:
    """A model, its tokenizer and the mesh it lives on; calling it completes prompts."""

    model: nnx.Module
    tokenizer: Any
    mesh: jax.sharding.Mesh | None
    rules: tuple
    source: str

    def __call__(self, prompts: Sequence[str], **kwargs) -> list[str]:
        """The completions of ``prompts`` (keywords: those of :func:`astrojax.models.generate`)."""
        return generate_text(self.model, self.tokenizer, prompts, mesh=self.mesh,
                             rules=self.rules, **kwargs)


def load_generator(path: str | Path, *, sharded: bool = True) -> Generator:
    """The language model at ``path`` (an ``lm`` workdir). ``sharded``: on the run's mesh
    config over this machine's devices, as in training; else on the first device. Errors name
    the folder (WorkdirError, CheckpointError)."""
    from astrojax.sharding import make_mesh
    from astrojax.train.restore import load_trained

    trained = load_trained(path, task="lm",
                           mesh=(lambda cfg: make_mesh(cfg.mesh)) if sharded else None)
    mesh = None
    if sharded:
        mesh = jax.tree.leaves(trained.params)[0].sharding.mesh
    return Generator(trained.model, trained.task.tokenizer, mesh,
                     tuple(trained.config.mesh.logical_axis_rules), str(path))


__all__ = ["Generator", "load_generator"]
