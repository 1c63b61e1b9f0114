"""The text of a `REELFORGE_*` variable as a typed value, and the error that names a bad one."""

from __future__ import annotations

from pathlib import Path


class SettingsError(ValueError):
    """A `REELFORGE_*` variable is missing or malformed; the message names it."""


def convert(name: str, raw: str, kind: object) -> object:
    """`raw`, the text of variable `name`, as a value of the field type `kind` (its
    annotation as a string: `from __future__ import annotations`)."""
    kind = str(kind)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind == "Path":
            return Path(raw)
        if kind == "tuple[float, ...]":
            return tuple(float(part) for part in raw.split(",") if part.strip())
        if kind.startswith("tuple"):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a valid {kind}") from None
    return raw
