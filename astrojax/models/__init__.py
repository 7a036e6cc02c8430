"""The models: the transformer and its mixers, the graph VAE, the datacube ViT, the fusion
model, and text generation. ``astrojax.models.generate`` (and ``generate_text``) are loaded on
first use, so importing one model does not import the others."""

_DECODE = ("Generation", "Sampling", "generate", "generate_text")


def __getattr__(name: str):
    if name in _DECODE:
        from astrojax.models import decode

        return getattr(decode, name)
    raise AttributeError(f"module 'astrojax.models' has no attribute {name!r}")


__all__ = list(_DECODE)
