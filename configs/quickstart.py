"""Quickstart: a small byte-level transformer learns to describe the built-in planets.

Run:  python -m astrojax.train --config configs/quickstart.py --workdir runs/quickstart
"""

from astrojax.config import Config


def get_config() -> Config:
    cfg = Config()
    return cfg
