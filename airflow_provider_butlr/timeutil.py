"""The package's one place for ISO 8601 / RFC 3339 times (pure, no I/O).

Butlr speaks RFC 3339 in UTC with a ``Z`` suffix; users give aware datetimes or ISO strings.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime


def parse_iso(text: str) -> datetime:
    """An ISO 8601 / RFC 3339 string (``Z`` allowed) as a datetime; naive when the text has no offset.

    Raises ValueError for anything else (callers turn it into an error naming their field).
    """
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    return datetime.fromisoformat(value)


def parse_iso_utc(text: str) -> datetime:
    """Like :func:`parse_iso`, but a time without an offset is read as UTC (Butlr's doc examples)."""
    parsed = parse_iso(text)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def format_rfc3339(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix; a four-digit year; fractional seconds only when present."""
    utc = moment.astimezone(UTC)
    text = f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def rfc3339_seconds(seconds: float) -> str:
    """Unix seconds as RFC 3339 UTC, whole seconds (``2025-11-10T00:00:00Z``)."""
    return format_rfc3339(datetime.fromtimestamp(math.floor(seconds), tz=UTC))
