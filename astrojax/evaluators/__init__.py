"""Evaluators: metrics from summed statistics, and the closed-form and simple baselines every
learned number is reported beside."""

from astrojax.evaluators.ngram import NGramModel

__all__ = ["NGramModel"]
