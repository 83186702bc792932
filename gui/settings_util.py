"""Reading values back from QSettings, whose INI backend returns booleans as strings."""
from __future__ import annotations


def as_bool(value) -> bool:
    """A QSettings value as a bool: "true"/"1"/"yes"/"on" (any case) are True, other strings False."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
