"""Parsing of the plain-string options a source's ``fetch`` gets from the command line."""

from __future__ import annotations

import math
from typing import Any


def float_option(name: str, value: Any, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"option {name} must be a number, got {value!r}") from None
    if not (low <= number <= high) or math.isnan(number):
        raise ValueError(f"option {name} must be in [{low}, {high}], got {value!r}")
    return number


def int_option(name: str, value: Any, low: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"option {name} must be an integer, got {value!r}") from None
    if number < low:
        raise ValueError(f"option {name} must be >= {low}, got {value!r}")
    return number


def position(ra: Any, dec: Any, radius_deg: Any, source: str) -> tuple[float, float, float] | None:
    """Parsed (ra, dec, radius) in degrees, or None when neither ra nor dec is given."""
    if ra is None and dec is None:
        return None
    if ra is None or dec is None:
        raise ValueError(f"{source}: options ra and dec go together (got only one)")
    return (float_option("ra", ra, 0.0, 360.0), float_option("dec", dec, -90.0, 90.0),
            float_option("radius_deg", radius_deg, 1e-9, 180.0))


def yes_no(source: str, name: str, value: str | bool) -> bool:
    """``yes/true/1/on`` or ``no/false/0/off/""``; ValueError naming the source and option."""
    text = str(value).strip().lower()
    if text in ("yes", "true", "1", "on"):
        return True
    if text in ("no", "false", "0", "off", ""):
        return False
    raise ValueError(f"{source}: option {name} must be yes or no, got {value!r}")
