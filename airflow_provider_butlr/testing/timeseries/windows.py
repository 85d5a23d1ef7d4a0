"""Windows of a reporting query: alignment in ``window.timezone`` (DST-aware), minute membership, quality.

A minute ``m`` (Unix minute, covering ``[60 m, 60 m + 60)``) belongs to a window when the window's
``[start, stop)`` contains ``60 m``; to the query when ``[filter.start, filter.stop)`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from airflow_provider_butlr.testing.timeseries.request import TimeConstraints
from airflow_provider_butlr.testing.timeseries.timeutils import (
    DAY,
    MINUTE,
    format_rfc3339,
    offset_segments,
    zone,
)

# Windows starting before this carry no data-quality fields (SUP 44148930533133: data from 2025-11-01).
DATA_QUALITY_SINCE = 1761955200  # 2025-11-01T00:00:00Z


@dataclass(frozen=True)
class Window:
    """One aggregation window: ``label`` is the aligned boundary; ``start``/``stop`` are clipped to the query."""

    label: int
    start: int
    stop: int
    first_minute: int  # minutes [first_minute, end_minute) belong to the window
    end_minute: int


def _ceil_minute(moment: int) -> int:
    return -(-moment // MINUTE)


def clock_boundaries(low: int, high: int, every: int, offset: int, tz_name: str) -> list[int]:
    """Instants in ``[low, high)`` where the local wall clock is a multiple of ``every`` (plus ``offset``).

    Wall-clock multiples are counted from the Unix epoch in local time (as Flux does), so ``1d`` windows
    start at local midnight, a spring-forward day has 23 hourly windows and a fall-back day 25.
    """
    boundaries: list[int] = []
    for seg_start, seg_stop, utc_offset in offset_segments(tz_name, low, high):
        first = seg_start + (-(seg_start + utc_offset - offset)) % every
        boundaries.extend(range(first, seg_stop, every))
    return boundaries


def make_windows(
    start: int, stop: int, every: int, offset: int, tz_name: str | None, align_to_start: bool
) -> list[Window]:
    """The windows covering ``[start, stop)``; the first and last are clipped to the query bounds."""
    if align_to_start:
        cuts = list(range(start, stop, every))
        label_of_first = start
    else:
        margin = every + 2 * DAY  # enough to find the boundary at or before start, even across DST
        boundaries = clock_boundaries(start - margin, stop, every, offset, tz_name or "UTC")
        label_of_first = max(b for b in boundaries if b <= start)
        cuts = [start, *(b for b in boundaries if b > start)]
    windows = []
    for i, cut in enumerate(cuts):
        end = cuts[i + 1] if i + 1 < len(cuts) else stop
        label = label_of_first if i == 0 else cut
        windows.append(Window(label, cut, end, _ceil_minute(cut), _ceil_minute(end)))
    return [w for w in windows if w.first_minute < w.end_minute]


def _local_instant(tz_name: str, day: date, minute_of_day: int) -> int:
    hours, minutes = divmod(minute_of_day, 60)
    if hours == 24:
        nxt = date.fromordinal(day.toordinal() + 1)
        return int(datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone(tz_name)).timestamp())
    return int(datetime(day.year, day.month, day.day, hours, minutes, tzinfo=zone(tz_name)).timestamp())


def allowed_minute_runs(
    start: int, stop: int, constraints: TimeConstraints, tz_name: str
) -> list[tuple[int, int]]:
    """Sorted, disjoint ``[first_minute, end_minute)`` runs of the query that pass the time constraints.

    Time ranges and weekdays are read in ``tz_name`` (the window timezone, or the items' for stats);
    ``09:00``-``17:00`` keeps minutes starting 09:00 .. 16:59; ranges with stop < start wrap midnight;
    a minute's weekday is its own local weekday.
    """
    first, end = _ceil_minute(start), _ceil_minute(stop)
    if not constraints.active:
        return [(first, end)] if first < end else []
    ranges = constraints.ranges or ((0, 24 * 60),)
    runs: list[tuple[int, int]] = []
    day_first = datetime.fromtimestamp(start, zone(tz_name)).date().toordinal() - 1
    day_last = datetime.fromtimestamp(stop, zone(tz_name)).date().toordinal()
    pieces = [piece for start_, stop_ in ranges for piece in _split_at_midnight(start_, stop_)]
    for ordinal in range(day_first, day_last + 1):
        day = date.fromordinal(ordinal)
        if day.weekday() in constraints.excluded_weekdays:
            continue
        for piece_start, piece_stop in pieces:
            low = max(first, _ceil_minute(_local_instant(tz_name, day, piece_start)))
            high = min(end, _ceil_minute(_local_instant(tz_name, day, piece_stop)))
            if low < high:
                runs.append((low, high))
    return _merge(runs)


def _split_at_midnight(start: int, stop: int) -> list[tuple[int, int]]:
    return [(start, stop)] if start < stop else [(start, 24 * 60), (0, stop)]


def _merge(runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for low, high in sorted(runs):
        if merged and low <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def intersect(runs: list[tuple[int, int]], low: int, high: int) -> list[tuple[int, int]]:
    """The parts of ``runs`` inside ``[low, high)``."""
    return [(max(a, low), min(b, high)) for a, b in runs if a < high and b > low]


def run_length(runs: list[tuple[int, int]]) -> int:
    return sum(b - a for a, b in runs)


@dataclass(frozen=True)
class WindowQuality:
    """Data-quality fields of one window (None before 2025-11-01, when the API has none)."""

    data_incomplete: bool
    null_percentage: float


def window_quality(
    window: Window, runs: list[tuple[int, int]], revising_from: int, data_end: int
) -> WindowQuality | None:
    """The flags of one window, consistent with its value (minute indexes; ``runs`` = the window's minutes).

    ``null_percentage`` = share of the window's minutes without data (from ``data_end``, the data lag, on):
    a window whose value comes from all its minutes has 0.0, one without any data 1.0 (a row exists only with
    ``create_empty``). ``data_incomplete`` = some minute is missing, or still inside the revision window
    (from ``revising_from`` on: Butlr revises the last ~5 minutes), so the value may still change.
    """
    if window.label < DATA_QUALITY_SINCE:
        return None
    total = run_length(runs)
    if total == 0:
        return WindowQuality(False, 0.0)
    missing = run_length(intersect(runs, data_end, window.end_minute))
    revising = run_length(intersect(runs, revising_from, window.end_minute)) > 0
    return WindowQuality(missing > 0 or revising, round(missing / total, 4))


def time_text(moment: int) -> str:
    """Window timestamps in responses: UTC RFC3339 with ``Z``."""
    return format_rfc3339(moment)
