"""Planning an export: a query parsed once, cut into units the server can answer.

Ids per request follow Butlr's processing budget (:class:`BatchLimits`), ranges are cut at window
boundaries only when an answer would pass the row budget; each :class:`ExportUnit` is one request.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.reporting.bodies import reporting_body
from airflow_provider_butlr.reporting.catalogue import ASSET_KINDS, CALIBRATED_MEASUREMENTS, MEASUREMENTS
from airflow_provider_butlr.reporting.times import validate_range
from airflow_provider_butlr.reporting.validation import (
    Every,
    check_positive_int,
    normalise_calibrated,
    validate_functions,
    validate_ids,
    validate_measurements,
    validate_timezone,
)

DEFAULT_MAX_IDS_PER_REQUEST = 30


DEFAULT_MAX_IDS_LONG_RANGE = 10


DEFAULT_LONG_RANGE = timedelta(hours=24)


DEFAULT_MAX_ROWS_PER_REQUEST = 50_000  # estimated rows per answer: bounds its size, not the server's budget


def window_floor(moment: datetime, every: timedelta, tz: ZoneInfo) -> datetime | None:
    """The start of the ``every`` window containing ``moment`` on the local clock of ``tz``.

    Supported when ``every`` divides an hour (aligned within the local hour) or a day (aligned to
    local midnight); None for other durations (weeks, 7m...), which are then never split.
    """
    seconds = int(every.total_seconds())
    local = moment.astimezone(tz)
    if seconds <= 3600 and 3600 % seconds == 0:
        into_hour = local.minute * 60 + local.second
        return moment - timedelta(seconds=into_hour % seconds, microseconds=local.microsecond)
    if seconds <= 86400 and 86400 % seconds == 0:
        wall = local.hour * 3600 + local.minute * 60 + local.second
        floored = (wall // seconds) * seconds
        naive = datetime.combine(local.date(), time(0)) + timedelta(seconds=floored)
        result = naive.replace(tzinfo=tz).astimezone(UTC)
        return result if result <= moment else moment
    return None


def split_range(
    start: datetime, stop: datetime, every: timedelta, tz: ZoneInfo, max_span: timedelta
) -> list[tuple[datetime, datetime]]:
    """Cut ``[start, stop)`` into chunks of at most ``max_span``; every inner cut is a window boundary.

    So no window is split across two requests (which would return it twice, each half-aggregated).
    """
    if max_span < every:
        raise ButlrConfigurationError(
            f"the longest range per request ({max_span}) is shorter than one window ({every})"
        )
    chunks: list[tuple[datetime, datetime]] = []
    cursor = start
    while cursor < stop:
        ideal = cursor + max_span
        if ideal >= stop:
            chunks.append((cursor, stop))
            break
        cut = window_floor(ideal, every, tz)
        if cut is None:  # durations we cannot align: one request for the whole range
            chunks.append((cursor, stop))
            break
        if cut <= cursor:
            raise ButlrConfigurationError(
                f"cannot split the range at window boundaries of {every} within {max_span} per request"
            )
        chunks.append((cursor, cut))
        cursor = cut
    return chunks


@dataclass(frozen=True)
class BatchLimits:
    """How many ids one reporting request may carry, by the length of its time range.

    Butlr silently returns empty data above its processing budget; its guidance is at most 30 ids for
    short ranges and at most 10 for ranges of 24 h or more. ``max_ids`` caps every range.
    """

    max_ids: int = DEFAULT_MAX_IDS_PER_REQUEST
    max_ids_long_range: int = DEFAULT_MAX_IDS_LONG_RANGE
    long_range: timedelta = DEFAULT_LONG_RANGE

    def __post_init__(self) -> None:
        for name in ("max_ids", "max_ids_long_range"):
            check_positive_int(getattr(self, name), name)

    @classmethod
    def from_args(
        cls, max_ids_per_request: int | None = None, max_ids_long_range: int | None = None
    ) -> BatchLimits:
        """Butlr's defaults, or the user's: ``max_ids_per_request`` caps every range (default 30);
        ``max_ids_long_range`` sets ranges of 24 h or more (default 10), never above the cap."""
        check_positive_int(max_ids_per_request, "max_ids_per_request", allow_none=True)
        check_positive_int(max_ids_long_range, "max_ids_long_range", allow_none=True)
        short = max_ids_per_request or DEFAULT_MAX_IDS_PER_REQUEST
        long = min(max_ids_long_range or DEFAULT_MAX_IDS_LONG_RANGE, short)
        return cls(max_ids=short, max_ids_long_range=long)

    def for_span(self, span: timedelta) -> int:
        tier = self.max_ids_long_range if span >= self.long_range else self.max_ids
        return min(tier, self.max_ids)


def split_ids(ids: Sequence[str], size: int) -> list[tuple[str, ...]]:
    """Consecutive batches of at most ``size`` ids, in the given order."""
    if size < 1:
        raise ButlrConfigurationError(f"batch size must be at least 1, got {size}")
    return [tuple(ids[i : i + size]) for i in range(0, len(ids), size)]


@dataclass(frozen=True)
class ReportingQuery:
    """A validated export request, parsed once: what, for which assets, over which range, in which windows.

    Lower layers (:func:`plan_units`, :class:`ExportUnit`) take these parsed values and never re-parse.
    """

    measurements: tuple[str, ...]
    assets: Mapping[str, tuple[str, ...]]
    start: datetime
    stop: datetime
    every: Every
    functions: tuple[str, ...]
    timezone: str
    zone: ZoneInfo
    include_zeros: bool = True
    calibrated: str | None = None
    time_constraints: Mapping[str, Any] | None = None

    @classmethod
    def build(
        cls,
        measurements: str | Iterable[str],
        *,
        start: datetime | str,
        stop: datetime | str,
        assets: Mapping[str, str | Iterable[str] | None],
        every: Every | str = "1h",
        function: str | Iterable[str] = "mean",
        timezone: str | None = "UTC",
        include_zeros: bool = True,
        calibrated: str | bool | None = None,
        time_constraints: Mapping[str, Any] | None = None,
    ) -> ReportingQuery:
        """Validate everything and fail before any request, naming the offending argument.

        ``every`` may be an already parsed :class:`Every` (the operator parses it once per run).
        """
        names = validate_measurements(measurements)
        functions = validate_functions(function)
        window = Every.parse(every)
        zone = validate_timezone("UTC" if timezone is None else timezone)
        begin, end = validate_range(start, stop)
        selected: dict[str, tuple[str, ...]] = {}
        for kind, ids in assets.items():
            if kind not in ASSET_KINDS:
                raise ButlrConfigurationError(
                    f"asset kind {kind!r} cannot be sent to the reporting API; allowed: {', '.join(ASSET_KINDS)} "
                    "(sites are resolved to floors/rooms/zones through the topology first)"
                )
            valid = validate_ids(kind, ids)
            if valid:
                selected[kind] = tuple(valid)
        if not selected:
            raise ButlrConfigurationError(
                f"no asset ids given; pass at least one of {', '.join(ASSET_KINDS)}"
            )
        for name in names:
            measurement_filter_kind(name, selected)
        calib = normalise_calibrated(calibrated)
        if calib is not None and not any(m in CALIBRATED_MEASUREMENTS for m in names):
            raise ButlrConfigurationError(
                f"calibrated={calib!r} is only valid with {', '.join(CALIBRATED_MEASUREMENTS)}; "
                f"measurements are {', '.join(names)}"
            )
        if not isinstance(include_zeros, bool):
            raise ButlrConfigurationError(f"include_zeros must be True or False, got {include_zeros!r}")
        return cls(
            measurements=tuple(names),
            assets=selected,
            start=begin,
            stop=end,
            every=window,
            functions=tuple(functions),
            timezone=zone.key,
            zone=zone,
            include_zeros=include_zeros,
            calibrated=calib,
            time_constraints=dict(time_constraints) if time_constraints else None,
        )

    @property
    def asset_count(self) -> int:
        return sum(len(ids) for ids in self.assets.values())


def measurement_filter_kind(measurement: str, assets: Mapping[str, Sequence[str]]) -> str:
    """The asset kind whose ids filter ``measurement`` (its natural kind first), or an error."""
    accepted, _ = MEASUREMENTS[measurement]
    for kind in accepted:
        if assets.get(kind):
            return kind
    given = ", ".join(k for k, v in assets.items() if v) or "none"
    raise ButlrConfigurationError(
        f"measurement {measurement!r} needs {' or '.join(accepted)} ids; given: {given}"
    )


@dataclass(frozen=True)
class ExportUnit:
    """One (measurement, function, id batch, time chunk) of a query: the work of one request."""

    measurement: str
    function: str
    kind: str
    ids: tuple[str, ...]
    start: datetime
    stop: datetime
    query: ReportingQuery = field(repr=False, compare=False)

    @property
    def span(self) -> timedelta:
        return self.stop - self.start

    @property
    def windows(self) -> int:
        """How many windows the unit's range holds (at least one)."""
        return max(1, math.ceil(self.span / self.query.every.length))

    def with_ids(self, ids: Sequence[str]) -> ExportUnit:
        return replace(self, ids=tuple(ids))

    def with_range(self, start: datetime, stop: datetime) -> ExportUnit:
        return replace(self, start=start, stop=stop)

    def body(self, page: int | None = None, limit: int | None = None) -> dict[str, Any]:
        """The request body, from the parsed query (nothing is validated again)."""
        q = self.query
        return reporting_body(
            measurement=self.measurement,
            kind=self.kind,
            ids=self.ids,
            start=self.start,
            stop=self.stop,
            every=q.every.text,
            function=self.function,
            timezone=q.timezone,
            include_zeros=q.include_zeros,
            calibrated=q.calibrated if self.measurement in CALIBRATED_MEASUREMENTS else None,
            time_constraints=q.time_constraints,
            page=page,
            limit=limit,
        )


def rows_per_window(measurement: str) -> int:
    """Rows one id gives per window (an estimate: traffic has an ``in`` and an ``out`` row)."""
    return 2 if measurement == "traffic" else 1


def plan_grid(
    start: datetime,
    stop: datetime,
    every: timedelta,
    zone: ZoneInfo,
    id_count: int,
    row_width: int,
    limits: BatchLimits,
    max_rows_per_request: int = DEFAULT_MAX_ROWS_PER_REQUEST,
    max_windows_per_request: int | None = None,
) -> tuple[list[tuple[datetime, datetime]], int]:
    """Time chunks and ids per request for one measurement: as few requests as the server can answer.

    Ids per request follow Butlr's budget for the whole range (:class:`BatchLimits`); the range is cut
    (at window boundaries, into even chunks) only when a request would exceed ``max_rows_per_request``
    estimated rows, or ``max_windows_per_request`` windows when set.
    """
    size = max(1, min(id_count, limits.for_span(stop - start), max_rows_per_request // row_width))
    windows = max(1, math.ceil((stop - start) / every))
    per_request = max(1, max_rows_per_request // (size * row_width))
    if max_windows_per_request is not None:
        per_request = min(per_request, max_windows_per_request)
    if windows > per_request:
        per_request = math.ceil(windows / math.ceil(windows / per_request))  # even chunks
    return split_range(start, stop, every, zone, every * per_request), size


def plan_units(
    query: ReportingQuery,
    limits: BatchLimits | None = None,
    *,
    max_rows_per_request: int = DEFAULT_MAX_ROWS_PER_REQUEST,
    max_windows_per_request: int | None = None,
) -> list[ExportUnit]:
    """All units of an export, in output order: measurement, function, time chunk, id batch."""
    limits = limits or BatchLimits()
    units: list[ExportUnit] = []
    for measurement in query.measurements:
        kind = measurement_filter_kind(measurement, query.assets)
        ids = query.assets[kind]
        chunks, size = plan_grid(
            query.start,
            query.stop,
            query.every.length,
            query.zone,
            len(ids),
            rows_per_window(measurement),
            limits,
            max_rows_per_request,
            max_windows_per_request,
        )
        for function in query.functions:
            for chunk_start, chunk_stop in chunks:
                for batch in split_ids(ids, size):
                    units.append(
                        ExportUnit(measurement, function, kind, batch, chunk_start, chunk_stop, query)
                    )
    return units
