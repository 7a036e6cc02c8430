"""Text from a trained language model, for the command line and for scripts.

    from astrojax.generate import load_generator
    generator = load_generator("runs/quickstart")
    generator(["Kepler-0042 b orbits"], max_new_tokens=200)  # -> completions

``load_generator`` takes an ``lm`` training workdir (its newest checkpoint and the byte
tokenizer), sharded over the run's own mesh config as in training, or a Hugging Face folder
(Llama, Mistral, Qwen2: :func:`astrojax.models.hf.from_hf` and the folder's own tokenizer),
sharded FSDP-style over every local device. The decoding itself is
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


def is_hf_folder(path: str | Path) -> bool:
    """Whether ``path`` is a Hugging Face model folder (config.json, no training checkpoints)."""
    path = Path(path)
    return (path / "config.json").is_file() and not (path / "checkpoints").is_dir()


def load_generator(path: str | Path, *, sharded: bool = True, dtype: str = "float32"
                   ) -> Generator:
    """The language model at ``path``: an ``lm`` workdir, or a Hugging Face folder.
    ``sharded``: a workdir on its run's mesh config over this machine's devices, as in
    training, a Hugging Face model with its parameters split over every device (the ``fsdp``
    axis); else on the first device. ``dtype``: compute dtype of a Hugging Face model. Errors
    name the folder (WorkdirError, CheckpointError, HFCheckpointError, TokenizerError)."""
    from astrojax.config import DEFAULT_LOGICAL_AXIS_RULES, MeshConfig
    from astrojax.sharding import make_mesh
    from astrojax.train.restore import load_trained

    if is_hf_folder(path):
        from astrojax.data.tokenizer import load_tokenizer
        from astrojax.models.hf import from_hf

        mesh = make_mesh(MeshConfig(data=1, fsdp=-1)) if sharded else None
        tokenizer = load_tokenizer(path)
        model = from_hf(path, mesh, dtype=dtype)
        return Generator(model, tokenizer, mesh, DEFAULT_LOGICAL_AXIS_RULES, str(path))

    trained = load_trained(path, task="lm",
                           mesh=(lambda cfg: make_mesh(cfg.mesh)) if sharded else None)
    mesh = None
    if sharded:
        mesh = jax.tree.leaves(trained.params)[0].sharding.mesh
    return Generator(trained.model, trained.task.tokenizer, mesh,
                     tuple(trained.config.mesh.logical_axis_rules), str(path))


__all__ = ["Generator", "load_generator"]
