"""The one vocabulary for time windows, shared by operators and sensors, and its one resolver.

Every task that reads a span of Butlr data takes the same arguments with the same meaning:

* ``start`` / ``stop``: explicit bounds (aware datetimes or RFC 3339 strings; one alone is completed
  by the run's data interval);
* ``local_day``: ``True`` for the run's day (see :func:`run_day`) or a day ``YYYY-MM-DD``, read as
  ``days`` local days ending on that day, midnight to midnight in the site's timezone (DST-correct);
* ``timezone``: force one IANA timezone instead of each site's own;
* none of them: the run's data interval.

:data:`TIME_CHECKS` validates them (at parse time when literal), :func:`resolve_window` turns them
into UTC bounds in a given timezone.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.reporting.arguments import Check, optional
from airflow_provider_butlr.reporting.times import (
    format_time,
    local_day_bounds,
    parse_datetime,
    validate_range,
)
from airflow_provider_butlr.reporting.validation import check_positive_int, validate_timezone

WINDOW_FIELDS = ("start", "stop", "local_day", "days", "timezone")
MAX_DAYS = 3660


def context_datetime(context: Mapping[str, Any], key: str) -> datetime | None:
    """``context[key]`` when it is a datetime (Airflow leaves the data interval empty for some runs)."""
    value = context.get(key)
    return value if isinstance(value, datetime) else None


def run_day(context: Mapping[str, Any]) -> date | None:
    """The day ``local_day=True`` means in this run, or None when the run has no date at all.

    With a data interval (``CronDataIntervalTimetable``...): the date its start falls on in the DAG's
    timezone. Without one (Airflow 3's default ``CronTriggerTimetable``, manual runs): the day before
    the logical date, i.e. "yesterday" of a nightly run.
    """
    start = context_datetime(context, "data_interval_start")
    end = context_datetime(context, "data_interval_end")
    dag_tz = getattr(context.get("dag"), "timezone", None) or UTC
    if start is not None and end is not None and end > start:
        return start.astimezone(dag_tz).date()
    logical = context_datetime(context, "logical_date") or start or end
    return None if logical is None else (logical.astimezone(dag_tz) - timedelta(days=1)).date()


def local_day_on(local_day: Any) -> bool:
    """Whether ``local_day`` asks for local days (a rendered ``"False"``/``"None"`` does not)."""
    return bool(local_day) and str(local_day).strip().lower() not in ("false", "none")


def explicit_day(local_day: Any) -> date | str | None:
    """``local_day`` when it names a day (a date or ``YYYY-MM-DD``), None for True/False/None."""
    if local_day in (None, False, True) or str(local_day).strip().lower() in ("true", "false", "none", ""):
        return None
    return local_day if isinstance(local_day, date) else str(local_day)


def check_days(days: Any) -> int:
    check_positive_int(days, "days")
    if days > MAX_DAYS:
        raise ButlrConfigurationError(f"days must be at most {MAX_DAYS} (ten years), got {days!r}")
    return int(days)


def _check_local_day(local_day: Any, start: Any, stop: Any) -> None:
    named = explicit_day(local_day)
    if named is not None:
        local_day_bounds(named, "UTC")
    if local_day_on(local_day) and (start is not None or stop is not None):
        raise ButlrConfigurationError("pass either local_day or start/stop, not both")


def _check_range(start: Any, stop: Any) -> Any:
    # before any request, not after the topology lookup; one bound alone is completed by the data interval
    return validate_range(start, stop) if start is not None and stop is not None else None


TIME_CHECKS = (
    Check("start", ("start",), optional(lambda v: parse_datetime(v, "start"))),
    Check("stop", ("stop",), optional(lambda v: parse_datetime(v, "stop"))),
    Check("range", ("start", "stop"), _check_range),
    Check("timezone", ("timezone",), optional(validate_timezone)),
    Check("days", ("days",), check_days),
    Check("local_day", ("local_day", "start", "stop"), _check_local_day),
)


def last_local_day(context: Mapping[str, Any], local_day: Any) -> date:
    """The last local day ``local_day`` names in this run (the run's day for ``True``)."""
    named = explicit_day(local_day)
    if named is not None:
        return named if isinstance(named, date) else date.fromisoformat(named.strip()[:10])
    day = run_day(context)
    if day is None:
        raise ButlrConfigurationError(
            "local_day=True needs a logical date or a data interval; this run has neither: "
            "pass local_day='YYYY-MM-DD'"
        )
    return day


def resolve_window(
    context: Mapping[str, Any], tz: str, *, start: Any, stop: Any, local_day: Any, days: int
) -> tuple[datetime, datetime]:
    """``[start, stop)`` in UTC: the ``days`` local days in ``tz`` ending on ``local_day``, or
    ``start``/``stop``, or the run's data interval."""
    if local_day_on(local_day):
        last = last_local_day(context, local_day)
        first, _ = local_day_bounds(last - timedelta(days=days - 1), tz)
        _, after = local_day_bounds(last, tz)
        return first, after
    begin_value = start if start is not None else context_datetime(context, "data_interval_start")
    end_value = stop if stop is not None else context_datetime(context, "data_interval_end")
    if begin_value is None or end_value is None:
        raise ButlrConfigurationError(
            "start/stop are not set and the run has no data interval; pass start= and stop=, or local_day="
        )
    begin, end = parse_datetime(begin_value, "start"), parse_datetime(end_value, "stop")
    if end <= begin:
        raise ButlrConfigurationError(
            f"the range [{format_time(begin)}, {format_time(end)}) is empty (runs of a CronTriggerTimetable "
            "have an empty data interval); pass start=/stop= or local_day=True"
        )
    return begin, end


def exported_day(context: Mapping[str, Any], local_day: Any) -> str | None:
    """The last local day (``YYYY-MM-DD``) when ``local_day`` is on, else None (asset event metadata)."""
    if not local_day_on(local_day):
        return None
    return last_local_day(context, local_day).isoformat()
