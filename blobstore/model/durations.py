"""Durations (lifecycle expiry, a put's expiry, credential lifetimes): ``2w``, ``7d``, ``12h``, ``30m``, ``3600s`` or
``3600``, as whole seconds. Pure, no I/O."""

from __future__ import annotations

import re

from blobstore.errors import InvalidInput

#: Seconds per unit of a duration.
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: The longest expiry: a hundred years, so every expiry moment is a valid datetime.
MAX_SECONDS = 36500 * 86400
_DURATION = re.compile(r"([0-9]{1,12})([smhdw]?)")


def parse_duration(text: str, *, what: str = "a duration") -> int:
    """``"7d"`` -> 604800, ``"2w"``, ``"12h"``, ``"30m"``, ``"3600s"``, ``"3600"``: whole seconds from 1 to
    :data:`MAX_SECONDS`; InvalidInput naming ``what`` otherwise."""
    match = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    seconds = int(match.group(1)) * UNITS[match.group(2) or "s"] if match else 0
    if not 1 <= seconds <= MAX_SECONDS:
        raise InvalidInput(
            f"{what} must be a duration: whole seconds, or minutes, hours, days or weeks with a unit (2w, 7d, 12h, "
            f"30m, 3600s), from 1 second to {MAX_SECONDS // 86400} days, not {text!r}"
        )
    return seconds


def validate_expires_in(value: object) -> int | None:
    """A put's ``expires_in``: None, or whole seconds from 1 to :data:`MAX_SECONDS` (InvalidInput otherwise)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SECONDS:
        raise InvalidInput(f"expires_in must be whole seconds from 1 to {MAX_SECONDS}, not {value!r}")
    return value


def duration_text(seconds: int) -> str:
    """``604800`` -> ``"7d"``: the largest unit that divides ``seconds`` exactly."""
    for unit in ("d", "h", "m"):  # weeks are written as days
        if seconds % UNITS[unit] == 0:
            return f"{seconds // UNITS[unit]}{unit}"
    return f"{seconds}s"
