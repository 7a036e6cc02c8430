"""What learned models are measured against: closed-form rules and simple fair models (an
n-gram language model, summary statistics of climate cubes), scored on the same held-out sets."""

from astrojax.evaluators.ngram import NGramModel

__all__ = ["NGramModel"]
