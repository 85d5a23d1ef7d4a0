"""The emulator's ``POST /api/v3/reporting`` and ``POST /api/v4/reporting/stats`` logic (no HTTP here).

``run_reporting(org, body, now, config)`` returns the full response body; ``run_stats`` likewise. Both
raise :class:`BadRequest` (HTTP 400) or :class:`Overloaded` (HTTP 504); ``err.status`` and ``err.body()``
give the answer to send. Values come from :mod:`.series` (the ground truth); this module windows them.

Behaviour worth knowing (butlr-api.md 3.3-3.6, [GUESS] choices configurable in ``EngineSettings``):

* Over the processing budget -- (ids over all id filters) x (windows) above ``reporting_max_id_windows``,
  or more than ``reporting_max_ids_long`` ids when the range is 24 h or more -- the answer is HTTP 200
  with ``"data": {}`` (for every shape, flat included, as the support article shows) and zeroed
  ``page_info``. Optional knobs answer the same: ``reporting_max_ids`` (a fixed id cap) and
  ``reporting_max_id_minutes`` (ids x range in minutes).
* Data exists up to ``now - data_lag_minutes`` (default 2, as in Butlr's fixtures). Rows (shapes A, C, D;
  windows from 2025-11-01 on; B leaves stay the nine stats) carry ``null_percentage`` = the share of the
  window's minutes without data, and ``data_incomplete: true`` when a minute is missing or still inside the
  revision window (the last ``reporting_incomplete_minutes``, default 5: Butlr revises ~5 minutes).
* Zero-valued windows are dropped unless ``filter.value`` has a lower bound admitting 0 (``gte: 0``);
  ``create_empty`` turns windows without data into 0 (or the ``fill``) before that rule applies.
* ``calibrated`` is validated but does not change values (the generated traffic occupancy is already
  drift-free).
* Without ``window`` the rows are the raw minute points (1-minute windows, UTC).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow_provider_butlr.testing.org.model import Organization
from airflow_provider_butlr.testing.timeseries.errors import BadRequest, Overloaded, ReportingError
from airflow_provider_butlr.testing.timeseries.request import ReportingQuery, parse_reporting_body
from airflow_provider_butlr.testing.timeseries.selection import SeriesInfo, select_series
from airflow_provider_butlr.testing.timeseries.series import (
    FLOOR_PRESENCE_SECS,
    ROOM_PRESENCE_SECS,
    ZONE_PRESENCE_SECS,
    series_source,
)
from airflow_provider_butlr.testing.timeseries.settings import EngineSettings
from airflow_provider_butlr.testing.timeseries.shapes import Row, js_number, shape_response, silent_empty
from airflow_provider_butlr.testing.timeseries.stats import compute_stats
from airflow_provider_butlr.testing.timeseries.timeutils import HOUR, MINUTE, offset_text
from airflow_provider_butlr.testing.timeseries.windows import (
    Window,
    WindowQuality,
    allowed_minute_runs,
    intersect,
    make_windows,
    time_text,
    window_quality,
)

__all__ = ["BadRequest", "Overloaded", "ReportingError", "run_reporting", "run_stats"]

# Presence-time data exists from 2024-11-12 (docs, presence-time page).
PRESENCE_TIME_SINCE_MINUTE = 1731369600 // MINUTE
_DATA_SINCE = {
    m: PRESENCE_TIME_SINCE_MINUTE for m in (FLOOR_PRESENCE_SECS, ROOM_PRESENCE_SECS, ZONE_PRESENCE_SECS)
}

# The group key of shape D's outer level: the series' asset id (room, zone, floor, tag or sensor).
ASSET_KEY = "<asset>"

AGGREGATES: Mapping[str, Callable[[Sequence[int]], float]] = {
    "mean": lambda v: sum(v) / len(v),
    "max": max,
    "min": min,
    "sum": sum,
    "median": statistics.median,
    "first": lambda v: v[0],
    "last": lambda v: v[-1],
}


@dataclass(frozen=True)
class _WindowPlan:
    """Everything about a window that is the same for every series."""

    window: Window
    runs: list[tuple[int, int]]  # the window's minutes that pass the time constraints
    quality: WindowQuality | None
    time: str
    window_start: str
    window_stop: str
    timezone_offset: str


def over_budget(query: ReportingQuery, settings: EngineSettings) -> bool:
    """Whether Butlr's processing budget answers this query with the silent-empty result.

    The work is (ids in the id filters, at least 1) x (windows = range / ``every``, rounded up): Butlr's
    client got 127 assets x 5 one-minute windows answered, while the support article's recommended sizes
    (1-minute windows: <= 30 ids for ~2 h, <= 10 for 24 h and longer) and the long-range id cap still hold.
    """
    span = query.stop - query.start
    ids = max(1, query.id_count)
    long_range = span >= settings.reporting_long_range_hours * HOUR
    limit = settings.reporting_max_ids_long if long_range else settings.reporting_max_ids
    if limit is not None and query.id_count > limit:
        return True
    windows = -(-span // query.every)
    if settings.reporting_max_id_windows is not None and ids * windows > settings.reporting_max_id_windows:
        return True
    minutes = -(-span // MINUTE)
    return settings.reporting_max_id_minutes is not None and ids * minutes > settings.reporting_max_id_minutes


def value_predicate(value_filter: Mapping[str, float]) -> Callable[[float], bool]:
    """The ``filter.value`` test; zeros pass only when a lower bound admits them (``gte: 0``)."""
    gte, gt, lte, lt = (value_filter.get(op) for op in ("gte", "gt", "lte", "lt"))
    zero_ok = (gte is not None and gte <= 0) or (gt is not None and gt < 0)

    def keeps(value: float) -> bool:
        if value == 0 and not zero_ok:
            return False
        return (
            (gte is None or value >= gte)
            and (gt is None or value > gt)
            and (lte is None or value <= lte)
            and (lt is None or value < lt)
        )

    return keeps


def _plans(query: ReportingQuery, settings: EngineSettings, now: int) -> list[_WindowPlan]:
    auto_start = settings.reporting_window_alignment == "auto" and query.grouped and query.group_raw
    align_to_start = settings.reporting_window_alignment == "start" or auto_start
    windows = make_windows(query.start, query.stop, query.every, query.offset, query.timezone, align_to_start)
    allowed = allowed_minute_runs(query.start, query.stop, query.constraints, query.timezone or "UTC")
    revising_from = now // MINUTE - settings.reporting_incomplete_minutes
    data_end = now // MINUTE - settings.data_lag_minutes
    plans = []
    for w in windows:
        runs = intersect(allowed, w.first_minute, w.end_minute)
        label = w.label if settings.reporting_time_label == "start" else w.stop
        plans.append(
            _WindowPlan(
                window=w,
                runs=runs,
                quality=window_quality(w, runs, revising_from, data_end),
                time=time_text(label),
                window_start=time_text(w.start),
                window_stop=time_text(w.stop),
                timezone_offset=offset_text(query.timezone, w.label) if query.timezone else "",
            )
        )
    return plans


def _pick(values: Sequence[int], runs: list[tuple[int, int]], first: int) -> Sequence[int]:
    """The values of minute runs, from ``values`` that start at minute ``first``."""
    if len(runs) == 1:
        return values[runs[0][0] - first : runs[0][1] - first]
    picked: list[int] = []
    for low, high in runs:
        picked.extend(values[low - first : high - first])
    return picked


# One windowed result: (series, window, value); rows are built from it only when returned.
Item = tuple[SeriesInfo, _WindowPlan, float]


class _Windowing:
    """Turns series' minute values into windowed items, and items into rows."""

    def __init__(self, query: ReportingQuery, plans: list[_WindowPlan]) -> None:
        self.query = query
        self.plans = plans
        self.aggregate = AGGREGATES[query.function]
        self.keeps = value_predicate(query.value_filter)
        self.raw_rows = query.group_raw  # shapes C and D: window bounds, no offset
        self.query_start, self.query_stop = time_text(query.start), time_text(query.stop)
        self._runs: dict[tuple[int, int], list[list[tuple[int, int]]]] = {}

    def _runs_for(self, first: int, stop: int) -> list[list[tuple[int, int]]]:
        """Per window, the minute runs that have data when data covers ``[first, stop)`` (shared by series)."""
        key = (first, stop)
        if key not in self._runs:
            self._runs[key] = [intersect(plan.runs, first, stop) for plan in self.plans]
        return self._runs[key]

    def items(self, info: SeriesInfo, values: Sequence[int], first: int, stop: int) -> list[Item]:
        """Windowed values of one series; ``values`` cover minutes ``[first, stop)`` (the minutes with data)."""
        query, out = self.query, []
        previous: float | None = None
        for plan, runs in zip(self.plans, self._runs_for(first, stop), strict=True):
            value: float | None
            if runs:
                value = self.aggregate(_pick(values, runs, first))
            elif not query.create_empty:
                continue
            elif query.fill_value is not None:
                value = query.fill_value
            else:
                value = previous if query.fill_previous else 0
            if value is None:
                continue
            previous = value
            if self.keeps(value):
                out.append((info, plan, value))
        return out

    @staticmethod
    def key(item: Item, column: str) -> str:
        info, plan, _ = item
        if column == "time":
            return plan.time
        if column == "field":
            return info.row_field
        if column == "measurement":
            return info.row_measurement
        if column == ASSET_KEY:
            return info.asset_id
        return info.columns.get(column, "")

    @staticmethod
    def value(item: Item) -> float:
        return item[2]

    def row(self, item: Item) -> Row:
        info, plan, value = item
        row: Row = {
            "field": info.row_field,
            "measurement": info.row_measurement,
            "time": plan.time,
            "start": plan.window_start if self.raw_rows else self.query_start,
            "stop": plan.window_stop if self.raw_rows else self.query_stop,
            "value": js_number(value),
            "preprocessed": info.preprocessed,
            "timezone_offset": "" if self.raw_rows else plan.timezone_offset,
        }
        row.update(info.columns)
        if plan.quality is not None:
            row["data_incomplete"] = plan.quality.data_incomplete
            row["null_percentage"] = plan.quality.null_percentage
        return row


def run_reporting(org: Organization, body: Any, now: datetime, config: Any) -> dict[str, Any]:
    """The response body of ``POST /api/v3/reporting`` for ``body`` at emulator time ``now``."""
    settings = EngineSettings.from_config(config)
    now_s = int(now.timestamp())
    query = parse_reporting_body(body, now_s, strict=settings.reporting_strict_keys)
    if over_budget(query, settings):
        return silent_empty()
    source = series_source(org, settings.seed)
    series = select_series(org, source, query.measurements, query.id_filters)
    first_minute, end_minute = -(-query.start // MINUTE), -(-query.stop // MINUTE)
    if len(series) * (end_minute - first_minute) > settings.reporting_max_series_minutes:
        return silent_empty()
    windowing = _Windowing(query, _plans(query, settings, now_s))
    data_end = now_s // MINUTE - settings.data_lag_minutes
    items: list[Item] = []
    for info in series:
        first = max(first_minute, _DATA_SINCE.get(info.measurement, first_minute))
        stop = max(first, min(end_minute, data_end))
        values = (
            source.values(info.measurement, info.asset_id, first, stop - first, info.field)
            if stop > first
            else []
        )
        items.extend(windowing.items(info, values, first, stop))
    # Shape D (raw without order): nested by asset id, then time, as Butlr's own client reads it.
    order = query.group_order or ((ASSET_KEY, "time") if query.group_raw else ())
    return shape_response(
        items,
        order,
        query.group_raw,
        query.page,
        query.limit,
        key=windowing.key,
        value=windowing.value,
        row=windowing.row,
    )


def run_stats(org: Organization, body: Any, now: datetime, config: Any) -> dict[str, Any]:
    """The response body of ``POST /api/v4/reporting/stats`` (see :mod:`.stats`)."""
    return compute_stats(org, body, now, EngineSettings.from_config(config))
