"""Request bodies of the Reporting and Stats APIs, from validated values.

API traps handled here (see the Butlr API reference, section 3): floors are filtered with the key
``spaces``; ``calibrated`` is a *string*, valid only with the two traffic-based occupancy
measurements; zero values are dropped unless ``filter.value.gte = 0`` (with ``window.create_empty``);
start/stop are absolute RFC3339 times and windows align to ``window.timezone``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.reporting.catalogue import ASSET_KINDS, CALIBRATED_MEASUREMENTS
from airflow_provider_butlr.reporting.times import format_time, validate_range
from airflow_provider_butlr.reporting.validation import (
    normalise_calibrated,
    parse_every,
    validate_days,
    validate_functions,
    validate_ids,
    validate_measurements,
    validate_stats_items,
    validate_stats_measurements,
    validate_time_ranges,
    validate_timezone,
)

DEFAULT_PAGE_LIMIT = 1000


def build_reporting_body(
    *,
    measurement: str,
    kind: str,
    ids: Sequence[str],
    start: datetime,
    stop: datetime,
    every: str = "1h",
    function: str = "mean",
    timezone: str = "UTC",
    include_zeros: bool = True,
    calibrated: str | None = None,
    time_constraints: Mapping[str, Any] | None = None,
    page: int | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """One validated ``POST /api/v3/reporting`` body (for one-off requests such as the sensors' checks).

    Flat rows (no ``group_by``) so the metadata columns stay. Exports build theirs from the parsed
    :class:`ReportingQuery` instead (:meth:`ExportUnit.body`).
    """
    validate_measurements([measurement], "measurement")
    validate_functions([function], "function")
    parse_every(every)
    validate_timezone(timezone)
    if kind not in ASSET_KINDS:
        raise ButlrConfigurationError(
            f"kind {kind!r} is not a reporting filter; allowed: {', '.join(ASSET_KINDS)}"
        )
    begin, end = validate_range(start, stop)
    calib = normalise_calibrated(calibrated)
    if calib is not None and measurement not in CALIBRATED_MEASUREMENTS:
        raise ButlrConfigurationError(
            f"calibrated is only valid with {', '.join(CALIBRATED_MEASUREMENTS)}, not with {measurement!r}"
        )
    return reporting_body(
        measurement=measurement,
        kind=kind,
        ids=validate_ids(kind, ids),
        start=begin,
        stop=end,
        every=every.strip(),
        function=function,
        timezone=timezone.strip(),
        include_zeros=include_zeros,
        calibrated=calib,
        time_constraints=time_constraints,
        page=page,
        limit=limit,
    )


def reporting_body(
    *,
    measurement: str,
    kind: str,
    ids: Sequence[str],
    start: datetime,
    stop: datetime,
    every: str,
    function: str,
    timezone: str,
    include_zeros: bool,
    calibrated: str | None,
    time_constraints: Mapping[str, Any] | None,
    page: int | None,
    limit: int | None,
) -> dict[str, Any]:
    """The body from already validated values (no ``paginate`` unless a page or limit is given)."""
    flt: dict[str, Any] = {
        "measurements": [measurement],
        "start": format_time(start),
        "stop": format_time(stop),
        ASSET_KINDS[kind][0]: {"eq": list(ids)},
    }
    if include_zeros:
        flt["value"] = {"gte": 0}
    if calibrated is not None:
        flt["calibrated"] = calibrated
    if time_constraints:
        flt["time_constraints"] = dict(time_constraints)
    body: dict[str, Any] = {
        "filter": flt,
        "window": {"every": every, "function": function, "timezone": timezone, "create_empty": include_zeros},
        "options": {"format": "json", "timestamp": "RFC3339"},
    }
    if page is not None or limit is not None:
        body["paginate"] = {"page": page or 1, "limit": limit or DEFAULT_PAGE_LIMIT}
    return body


def build_stats_body(
    *,
    measurements: str | Iterable[str],
    items: str | Iterable[str],
    start: datetime | str,
    stop: datetime | str,
    exclude_days_of_week: str | Iterable[str] | None = None,
    time_ranges: Iterable[Any] | None = None,
) -> dict[str, Any]:
    """One ``POST /api/v4/reporting/stats`` body (absolute times only; all items in one timezone)."""
    begin, end = validate_range(start, stop)
    body: dict[str, Any] = {
        "measurements": validate_stats_measurements(measurements),
        "items": validate_stats_items(items),
        "start": format_time(begin),
        "stop": format_time(end),
    }
    filters: dict[str, Any] = {}
    days = validate_days(exclude_days_of_week)
    if days:
        filters["exclude_days_of_week"] = days
    ranges = validate_time_ranges(time_ranges)
    if ranges:
        filters["time_ranges"] = ranges
    if filters:
        body["filters"] = filters
    return body
