"""Validation of user input against the catalogue: every error names the argument and what is allowed.

Errors are :class:`ButlrConfigurationError` (also a ``ValueError``), raised before any request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.reporting.catalogue import (
    CALIBRATED_VALUES,
    CONTAINER_PREFIXES,
    DAYS_OF_WEEK,
    MEASUREMENTS,
    STATS_MEASUREMENTS,
    WINDOW_FUNCTIONS,
    kind_of_id,
)

EVERY_EXAMPLES = ("1m", "5m", "15m", "30m", "1h", "6h", "12h", "1d")


_EVERY_RE = re.compile(r"^(\d{1,9})(s|m|h|d|w)$")


MIN_EVERY = timedelta(minutes=1)


MAX_EVERY = timedelta(weeks=52)


_EVERY_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


MAX_ID_LENGTH = 128


_ID_RE = re.compile(r"[a-z]+_[A-Za-z0-9][A-Za-z0-9_-]*")


_HHMM_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def as_list(value: str | Iterable[str] | None, name: str) -> list[str]:
    """A list of non-empty strings from a string or an iterable (a bare string is one item)."""
    if value is None:
        return []
    if isinstance(value, Mapping) or not isinstance(value, (str, Iterable)):
        raise ButlrConfigurationError(
            f"{name} must be a string or a list of strings, got {type(value).__name__}"
        )
    items = [value] if isinstance(value, str) else list(value)
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ButlrConfigurationError(f"{name}: every item must be a non-empty string, got {item!r}")
    return [item.strip() for item in items]


def pick(
    values: str | Iterable[str],
    allowed: Sequence[str],
    name: str,
    noun: str,
    elsewhere: Mapping[str, str] | None = None,
    short_noun: str | None = None,
) -> list[str]:
    """``values`` checked against the ``allowed`` names, de-duplicated in order.

    A name not in the list fails naming the argument, the allowed names and the closest match
    (``did you mean 'room_occupancy'?``); ``elsewhere`` maps names known elsewhere to a hint.
    """
    items = as_list(values, name)
    if not items:
        raise ButlrConfigurationError(
            f"{name} must name at least one {short_noun or noun}; allowed: {', '.join(allowed)}"
        )
    for item in items:
        if item in allowed:
            continue
        hint = (elsewhere or {}).get(item, "")
        import difflib  # only on a typo: keeps DAG parsing light

        close = difflib.get_close_matches(item, allowed, n=1, cutoff=0.6) if not hint else []
        suggestion = f"; did you mean {close[0]!r}?" if close else ""
        raise ButlrConfigurationError(
            f"{name}: {item!r} is not a {noun}; allowed: {', '.join(allowed)}{hint}{suggestion}"
        )
    return list(dict.fromkeys(items))


_STATS_ELSEWHERE = dict.fromkeys(
    STATS_MEASUREMENTS, " (stats measurements go to ButlrStatsOperator / query_stats)"
)


_REPORTING_ELSEWHERE = dict.fromkeys(MEASUREMENTS, " (reporting measurements go to ButlrReportingOperator)")


def validate_measurements(measurements: str | Iterable[str], name: str = "measurements") -> list[str]:
    """Known reporting measurement names, de-duplicated in the given order."""
    return pick(
        measurements, tuple(MEASUREMENTS), name, "reporting measurement", _STATS_ELSEWHERE, "measurement"
    )


def validate_functions(functions: str | Iterable[str], name: str = "window_function") -> list[str]:
    return pick(functions, WINDOW_FUNCTIONS, name, "window function", short_noun="function")


def validate_stats_measurements(measurements: str | Iterable[str], name: str = "measurements") -> list[str]:
    return pick(measurements, STATS_MEASUREMENTS, name, "stats measurement", _REPORTING_ELSEWHERE)


def parse_every(every: str, name: str = "window_every") -> timedelta:
    """A window duration such as ``1m``, ``15m``, ``1h``, ``1d``: whole minutes from 1m to 52w."""
    match = _EVERY_RE.match(every.strip()) if isinstance(every, str) else None
    seconds = int(match.group(1)) * _EVERY_UNITS[match.group(2)] if match else 0
    if not match or seconds <= 0:
        raise ButlrConfigurationError(
            f"{name}: {every!r} is not a window duration; use <positive integer><s|m|h|d|w>, "
            f"e.g. {', '.join(EVERY_EXAMPLES)}"
        )
    if seconds % 60 or not MIN_EVERY.total_seconds() <= seconds <= MAX_EVERY.total_seconds():
        raise ButlrConfigurationError(
            f"{name}: {every!r} is outside the windows the reporting API accepts: whole minutes from 1m "
            f"to {MAX_EVERY.days // 7}w, e.g. {', '.join(EVERY_EXAMPLES)}"
        )
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class Every:
    """A parsed window length: the API's text (``15m``) and its duration."""

    text: str
    length: timedelta

    @classmethod
    def parse(cls, every: Every | str, name: str = "window_every") -> Every:
        if isinstance(every, Every):
            return every
        return cls(every.strip(), parse_every(every, name))


def validate_timezone(tz: str, name: str = "timezone") -> ZoneInfo:
    if not isinstance(tz, str) or not tz.strip():
        raise ButlrConfigurationError(
            f"{name} must be an IANA timezone name such as 'America/New_York' or 'UTC', got {tz!r}"
        )
    try:
        return ZoneInfo(tz.strip())
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ButlrConfigurationError(
            f"{name}: {tz!r} is not a known IANA timezone name (e.g. 'America/New_York', 'Europe/Berlin', 'UTC')"
        ) from err


def validate_ids(kind: str, ids: str | Iterable[str] | None, name: str | None = None) -> list[str]:
    """Ids of one kind (checked by prefix only, as Butlr advises), de-duplicated in order."""
    name = name or kind
    if kind not in CONTAINER_PREFIXES:
        raise ButlrConfigurationError(
            f"unknown asset kind {kind!r}; allowed: {', '.join(CONTAINER_PREFIXES)}"
        )
    prefixes = CONTAINER_PREFIXES[kind]
    items = as_list(ids, name)
    for item in items:
        if item.startswith(prefixes):
            if len(item) > MAX_ID_LENGTH or not _ID_RE.fullmatch(item):
                raise ButlrConfigurationError(
                    f"{name}: {item[:80]!r} is not a valid id: <prefix><letters, digits, '-' or '_'>, "
                    f"at most {MAX_ID_LENGTH} characters, no spaces"
                )
            continue
        actual = kind_of_id(item)
        hint = f"; it looks like a {actual[:-1]} id, pass it as {actual}=[...]" if actual else ""
        raise ButlrConfigurationError(
            f"{name}: {item!r} is not a {kind[:-1]} id (expected the prefix {' or '.join(prefixes)}){hint}"
        )
    return list(dict.fromkeys(items))


def normalise_calibrated(value: str | bool | None, name: str = "calibrated") -> str | None:
    """``calibrated`` as the string the API expects (``True`` -> ``"true"``), or None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.strip().lower() in CALIBRATED_VALUES:
        return value.strip().lower()
    raise ButlrConfigurationError(
        f"{name}: {value!r} is not allowed; use one of {', '.join(CALIBRATED_VALUES)} (strings) or None"
    )


# The largest value each whole-number argument takes (docs/operators.md and docs/sensors.md list them):
# far beyond any real use, but bounded, so an absurd value is refused by name before any request.
ARGUMENT_MAXIMA: dict[str, int] = {
    "max_ids_per_request": 1000,
    "max_ids_long_range": 1000,
    "max_ids_per_task": 100_000,
    "max_items_per_request": 1000,
    "max_xcom_rows": 100_000,
    "max_rows_per_request": 10_000_000,
    "max_windows_per_request": 1_000_000,
    "page_limit": 100_000,
    "due_soon_days": 3650,
    "max_consecutive_failures": 1000,
    "row_group_rows": 10_000_000,
}


def check_positive_int(value: Any, name: str, *, allow_none: bool = False) -> int | None:
    """``value`` when it is an int from 1 to its :data:`ARGUMENT_MAXIMA` (or None with
    ``allow_none``); else an error naming ``name``."""
    if value is None and allow_none:
        return None
    largest = ARGUMENT_MAXIMA.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1 or (largest and value > largest):
        bound = f" (at most {largest})" if largest else ""
        raise ButlrConfigurationError(f"{name} must be a positive integer{bound}, got {value!r}")
    return value


def validate_time_ranges(
    time_ranges: Iterable[Any] | None, name: str = "time_ranges"
) -> list[dict[str, str]]:
    """``[{"start": "HH:MM", "stop": "HH:MM"}]`` from dicts or ``(start, stop)`` pairs."""
    result: list[dict[str, str]] = []
    for item in time_ranges or []:
        if isinstance(item, Mapping):
            begin, end = item.get("start"), item.get("stop")
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            begin, end = item
        else:
            raise ButlrConfigurationError(
                f"{name}: {item!r} must be {{'start': 'HH:MM', 'stop': 'HH:MM'}} or a (start, stop) pair"
            )
        for label, value in (("start", begin), ("stop", end)):
            if not isinstance(value, str) or not _HHMM_RE.match(value):
                raise ButlrConfigurationError(
                    f"{name}: {label} {value!r} is not a time of day in HH:MM (00:00-23:59)"
                )
        if str(end) <= str(begin):
            raise ButlrConfigurationError(f"{name}: stop {end!r} must be after start {begin!r}")
        result.append({"start": str(begin), "stop": str(end)})
    return result


def validate_days(days: str | Iterable[str] | None, name: str = "exclude_days_of_week") -> list[str]:
    """Day names, case-insensitive, returned capitalised as in Butlr's documentation."""
    result = []
    for day in as_list(days, name):
        match = next((d for d in DAYS_OF_WEEK if d.lower() == day.lower()), None)
        if match is None:
            raise ButlrConfigurationError(
                f"{name}: {day!r} is not a day of the week; allowed: {', '.join(DAYS_OF_WEEK)}"
            )
        result.append(match)
    return list(dict.fromkeys(result))


def validate_stats_items(items: str | Iterable[str], name: str = "items") -> list[str]:
    values = as_list(items, name)
    if not values:
        raise ButlrConfigurationError(f"{name} must hold at least one floor (space_), room or zone id")
    for item in values:
        if kind_of_id(item) not in ("floors", "rooms", "zones"):
            raise ButlrConfigurationError(
                f"{name}: {item!r} is not a floor (space_), room (room_) or zone (zone_) id"
            )
    return list(dict.fromkeys(values))
