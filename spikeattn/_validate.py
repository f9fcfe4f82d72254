"""The one check for integer arguments (sizes, counts, steps), shared by every layer of the package."""

from __future__ import annotations


def check_int(value, name: str, minimum: int = 1) -> int:
    """``value`` if it is an int (not a bool) ``>= minimum``, else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def check_ints(minimum: int = 1, **values) -> None:
    """``check_int`` for each ``name=value``."""
    for name, value in values.items():
        check_int(value, name, minimum)
