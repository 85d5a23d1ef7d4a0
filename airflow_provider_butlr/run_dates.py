"""Dates of a DAG run: the day a nightly run reports on, shared by the operators and the sensors."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any


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
