"""ButlrDataCompleteSensor: wait until Butlr's data for a window is final for the given assets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import Context, PokeReturnValue

from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.polling.answers import Verdict
from airflow_provider_butlr.polling.conditions import Condition, DataComplete
from airflow_provider_butlr.polling.plans import PollPlan, PollRequest
from airflow_provider_butlr.reporting.arguments import Check, run_checks
from airflow_provider_butlr.reporting.bodies import build_reporting_body
from airflow_provider_butlr.reporting.catalogue import MEASUREMENTS, OCCUPANCY_MEASUREMENTS, REPORTING_PATH
from airflow_provider_butlr.reporting.planning import BatchLimits, split_ids
from airflow_provider_butlr.reporting.times import format_instant
from airflow_provider_butlr.reporting.validation import parse_every, validate_ids, validate_measurements
from airflow_provider_butlr.reporting.windows import TIME_CHECKS, local_day_on, resolve_window
from airflow_provider_butlr.sensors.base import DAY, ButlrPollingSensor, asset_arguments, seconds_of


def _check_measurement_kinds(measurement: str, assets: Mapping[str, Any]) -> None:
    """A measurement Butlr does not report for a given asset kind would never complete: refuse it."""
    validate_measurements([measurement], "measurement")
    accepted = MEASUREMENTS[measurement][0]
    wrong = [kind for kind in assets if kind not in accepted]
    if wrong:
        raise ButlrConfigurationError(
            f"measurement {measurement!r} is reported for {' or '.join(accepted)}, not for "
            f"{', '.join(wrong)}; leave measurement unset to check each asset kind's occupancy"
        )


class ButlrDataCompleteSensor(ButlrPollingSensor):
    """Wait until Butlr's data for a window is final for the given floors, rooms and/or zones.

    Final means: the window end plus ``grace_period`` has passed (no request before that); a check
    query over the last ``check_span`` of the window returns windows up to its end for every asset;
    no window carries ``data_incomplete: true`` (nor ``null_percentage`` above
    ``max_null_percentage``, when set). Returns a summary to XCom: window, assets checked,
    incomplete windows.

    :param floors: floor ids (``space_...``) (templated).
    :param rooms: room ids (templated).
    :param zones: zone ids (templated).
    :param start: start of the window, RFC 3339 or an aware datetime (templated).
    :param stop: end of the window (templated). Without ``start``/``stop``/``local_day``: the DAG
        run's data interval.
    :param local_day: ``True`` for the run's day, or a day ``YYYY-MM-DD`` (templated): ``days``
        local days ending on that day, midnight to midnight in the site's timezone (DST-correct).
    :param days: how many local days ``local_day`` covers (default 1).
    :param timezone: IANA timezone of the site (templated; default: looked up from the assets' site).
    These are the window arguments of ``ButlrReportingOperator`` with the same meaning: a DAG that
    waits for a day and exports it passes the same values to both.
    :param grace_period: wait after the window end, seconds or timedelta (default 15 minutes).
    :param max_null_percentage: also reject windows whose ``null_percentage`` is above this (0..1).
    :param check_span: how much of the window's end the check query covers (default 1 hour).
    :param check_every: window size of the check query (default ``5m``).
    :param measurement: reporting measurement to check (default: the presence occupancy of each kind).
    :param max_ids_per_request: ids per check request (at most 30, Butlr's guidance).
    """

    template_fields: Sequence[str] = (
        "butlr_conn_id",
        "floors",
        "rooms",
        "zones",
        "start",
        "stop",
        "local_day",
        "timezone",
    )
    checks: Sequence[Check] = TIME_CHECKS

    def __init__(
        self,
        *,
        floors: Sequence[str] | str | None = None,
        rooms: Sequence[str] | str | None = None,
        zones: Sequence[str] | str | None = None,
        start: datetime | str | None = None,
        stop: datetime | str | None = None,
        local_day: bool | str | date | None = None,
        days: int = 1,
        timezone: str | None = None,
        grace_period: timedelta | float = timedelta(minutes=15),
        max_null_percentage: float | None = None,
        check_span: timedelta | float = timedelta(hours=1),
        check_every: str = "5m",
        measurement: str | None = None,
        max_ids_per_request: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not asset_arguments(floors, rooms, zones):
            raise ButlrConfigurationError(f"{self.task_id}: give at least one of floors, rooms, zones")
        if measurement is not None:
            _check_measurement_kinds(measurement, asset_arguments(floors, rooms, zones))
        if max_null_percentage is not None and not 0 <= max_null_percentage <= 1:
            raise ButlrConfigurationError(
                f"max_null_percentage {max_null_percentage!r} must be between 0 and 1"
            )
        self.floors, self.rooms, self.zones = floors, rooms, zones
        self.start, self.stop = start, stop
        self.local_day, self.days, self.timezone = local_day, days, timezone
        run_checks(self, self.checks, final=False)
        self.grace_period = seconds_of(grace_period, "grace_period")
        self.check_span = seconds_of(check_span, "check_span", 31 * DAY)
        if self.check_span <= 0:
            raise ButlrConfigurationError(f"check_span {check_span!r} must be longer than zero")
        self.check_every = check_every
        self.check_every_seconds = parse_every(check_every, "check_every").total_seconds()
        self.max_null_percentage = max_null_percentage
        self.measurement = measurement
        self.limits = BatchLimits.from_args(max_ids_per_request)

    def resolve_window(self, context: Context) -> tuple[datetime, datetime, str]:
        """The window ``[start, stop)`` in UTC and the timezone used to align check windows."""
        run_checks(self, self.checks, final=True)
        tz = self.timezone or (self.site_timezone() if local_day_on(self.local_day) else "UTC")
        start, stop = resolve_window(
            context, tz, start=self.start, stop=self.stop, local_day=self.local_day, days=self.days
        )
        return start, stop, tz

    def site_timezone(self) -> str:
        """The one timezone of the sites holding the assets (UTC for a site without one)."""
        assets = asset_arguments(self.floors, self.rooms, self.zones)
        topology = self.hook.get_topology()
        zones = sorted(
            {topology.timezone_of(i) for kind, ids in assets.items() for i in validate_ids(kind, ids)}
        )
        if len(zones) > 1:
            raise ButlrConfigurationError(
                f"{self.task_id}: the assets belong to sites in different timezones ({', '.join(zones)}); "
                "use one sensor per site or pass timezone"
            )
        return zones[0]

    def build_plan(self, context: Context) -> PollPlan:
        start, end, tz = self.resolve_window(context)
        check_start = max(start, end - timedelta(seconds=self.check_span))
        batch = self.limits.for_span(end - check_start)
        requests: list[PollRequest] = []
        conditions: list[Condition] = []
        for kind, raw_ids in asset_arguments(self.floors, self.rooms, self.zones).items():
            ids = validate_ids(kind, raw_ids)
            row_key, presence, _ = OCCUPANCY_MEASUREMENTS[kind]
            first = len(requests)
            for chunk in split_ids(ids, batch):
                body = build_reporting_body(
                    measurement=self.measurement or presence,
                    kind=kind,
                    ids=chunk,
                    start=check_start,
                    stop=end,
                    every=self.check_every,
                    function="max",
                    timezone=tz,
                    include_zeros=True,
                )
                # Zeros kept (value.gte 0) but no invented windows: a window exists only where data does.
                body["window"]["create_empty"] = False
                requests.append(PollRequest(REPORTING_PATH, "POST", body, max_ids=batch))
            conditions.append(
                DataComplete(
                    window_start=format_instant(start.timestamp()),
                    window_end=format_instant(end.timestamp()),
                    asset_key=row_key,
                    asset_ids=ids,
                    grace_seconds=self.grace_period,
                    interval_seconds=self.check_every_seconds,
                    max_null_percentage=self.max_null_percentage,
                    requests=list(range(first, len(requests))),
                )
            )
        return PollPlan(requests, conditions)

    def accept(self, verdict: Verdict, responses: list[Any], context: Context) -> PokeReturnValue:
        return PokeReturnValue(True, merge_completeness(verdict.details))


def merge_completeness(details: Mapping[str, Any]) -> dict[str, Any]:
    """One summary from the per-kind completeness details (the XCom value of the sensor)."""
    parts = [c.get("details", {}) for c in details["conditions"]] if "conditions" in details else [details]
    first = parts[0] if parts else {}
    return {
        "window_start": first.get("window_start"),
        "window_end": first.get("window_end"),
        "assets_checked": sum(int(p.get("assets_checked", 0)) for p in parts),
        "windows_checked": sum(int(p.get("windows_checked", 0)) for p in parts),
        "incomplete_windows": sum(int(p.get("incomplete_windows", 0)) for p in parts),
        "checked_at": max((str(p.get("checked_at", "")) for p in parts), default=None),
    }
