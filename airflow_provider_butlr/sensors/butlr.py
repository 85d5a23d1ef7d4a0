"""Butlr sensors: a generic poll, "the data for this window is final", and an occupancy threshold.

Each sensor turns its arguments into a declarative :class:`~airflow_provider_butlr.conditions.PollPlan`.
``mode="poke"``/``"reschedule"`` evaluate it on the worker with the sync hook; ``deferrable=True``
checks once, then hands the same plan to :class:`~airflow_provider_butlr.triggers.butlr.ButlrTrigger`,
which evaluates it in the triggerer. A ``response_check`` callable still defers: the trigger returns
the responses and the worker runs the callable, deferring again while it says no.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowSensorTimeout,
    BaseSensorOperator,
    Context,
    PokeReturnValue,
    conf,
)

from airflow_provider_butlr.conditions import (
    COMPARATORS,
    QUANTIFIERS,
    Condition,
    DataComplete,
    Occupancy,
    PollPlan,
    PollRequest,
    Verdict,
    condition_from_dict,
    poll_flow,
    rfc3339,
)
from airflow_provider_butlr.exceptions import ButlrConfigurationError, ButlrError
from airflow_provider_butlr.hooks.base import ButlrBaseHook
from airflow_provider_butlr.occupancy_events import minute_median_requests
from airflow_provider_butlr.reporting import (
    MEASUREMENTS,
    REPORTING_PATH,
    BatchLimits,
    build_reporting_body,
    local_day_bounds,
    parse_datetime,
    parse_every,
    split_ids,
    validate_ids,
    validate_measurements,
)
from airflow_provider_butlr.run_dates import run_day
from airflow_provider_butlr.settings import ClientOptions
from airflow_provider_butlr.triggers.events import (
    DEFAULT_MAX_CONSECUTIVE_FAILURES,
    DEFAULT_MAX_RESPONSE_BYTES,
    EVENT_STATUSES,
)

if TYPE_CHECKING:  # the trigger is imported when a sensor defers, not when a DAG file is parsed
    from airflow_provider_butlr.hooks.butlr import ButlrHook
    from airflow_provider_butlr.triggers.butlr import ButlrTrigger

# Asset kind -> (key of the asset id in reporting rows, presence measurement, traffic measurement).
ASSET_MEASUREMENTS: dict[str, tuple[str, str, str | None]] = {
    "floors": ("space_id", "floor_occupancy", "traffic_floor_occupancy"),
    "rooms": ("room_id", "room_occupancy", "traffic_room_occupancy"),
    "zones": ("zone_id", "zone_occupancy", None),  # zones support presence only
}
OCCUPANCY_SOURCES = ("auto", "presence", "traffic")
DEFER_TIMEOUT_MARGIN = 60.0  # Airflow's own deferral timeout backs up the trigger's deadline


def default_deferrable() -> bool:
    """Airflow's ``[operators] default_deferrable`` (False when unset)."""
    return conf.getboolean("operators", "default_deferrable", fallback=False)


def poll_sync(hook: ButlrHook, plan: PollPlan, now: float) -> tuple[Verdict, list[Any]]:
    """One poll on the worker (:func:`~airflow_provider_butlr.conditions.poll_flow`) driven by the sync hook."""

    from airflow_provider_butlr.exchange import drive

    def send(request: PollRequest) -> Any:
        return hook.request_json(request.method, request.endpoint, json=request.json, params=request.params)

    return drive(poll_flow(plan, now, time.time), send)


def _seconds(value: timedelta | float | int, name: str) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise ButlrConfigurationError(
            f"{name} {value!r} must be a non-negative number of seconds or a timedelta"
        )
    return float(seconds)


class _ButlrPollingSensor(BaseSensorOperator):
    """Shared machinery: poke/reschedule on the worker, or check once and defer to ButlrTrigger.

    :param butlr_conn_id: the ``butlr`` connection (templated).
    :param deferrable: wait in the triggerer instead of a worker slot (default: Airflow's
        ``[operators] default_deferrable``).
    :param max_consecutive_failures: failed polls in a row the trigger tolerates before failing.
    :param max_retries: retries inside one poll (429/5xx/network); None = the connection's.
    :param hook_params: further hook options (``timeout``, ``retry_wait_initial``, ``retry_wait_max``,
        ``retry_after_cap``); they reach the trigger too.
    """

    template_fields: Sequence[str] = ("butlr_conn_id",)
    ui_color = "#dff3ef"

    def __init__(
        self,
        *,
        butlr_conn_id: str = ButlrBaseHook.default_conn_name,
        deferrable: bool | None = None,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
        max_retries: int | None = None,
        hook_params: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.butlr_conn_id = butlr_conn_id
        self.deferrable = default_deferrable() if deferrable is None else bool(deferrable)
        if not isinstance(max_consecutive_failures, int) or max_consecutive_failures < 1:
            raise ButlrConfigurationError(
                f"max_consecutive_failures {max_consecutive_failures!r} must be a whole number >= 1"
            )
        params = {**(hook_params or {}), **({} if max_retries is None else {"max_retries": max_retries})}
        self.hook_params = ClientOptions.from_hook_params(params).as_hook_params()  # refused here if wrong
        self.max_consecutive_failures = max_consecutive_failures
        self._plan: PollPlan | None = None
        self._hook: ButlrHook | None = None

    # --- what subclasses decide ---------------------------------------------------------------

    def build_plan(self, context: Context) -> PollPlan:
        """The requests and conditions of one poll (after templates are rendered)."""
        raise NotImplementedError

    def accept(self, verdict: Verdict, responses: list[Any], context: Context) -> PokeReturnValue:
        """Turn a met plan into the sensor's answer (a worker-side check may still say no)."""
        return PokeReturnValue(True, verdict.details)

    # --- poke / reschedule ----------------------------------------------------------------------

    @property
    def hook(self) -> ButlrHook:
        if self._hook is None:
            from airflow_provider_butlr.hooks.butlr import ButlrHook  # on the worker, not at parse time

            self._hook = ButlrHook(self.butlr_conn_id, **self.hook_params)
        return self._hook

    def plan_for(self, context: Context) -> PollPlan:
        if self._plan is None:
            self._plan = self.build_plan(context).validate()
        return self._plan

    def poke(self, context: Context) -> bool | PokeReturnValue:
        verdict, responses = poll_sync(self.hook, self.plan_for(context), time.time())
        self.log.info("Butlr %s: %s", "condition met" if verdict.met else "not yet", verdict.message)
        if not verdict.met:
            return False
        return self.accept(verdict, responses, context)

    def execute(self, context: Context) -> Any:
        try:
            if not self.deferrable:
                return super().execute(context)
            deadline = time.time() + self.timeout
            first = self.poke(context)  # check once: no deferral when the answer is already yes
            if first:
                return first.xcom_value if isinstance(first, PokeReturnValue) else None
            self.defer_until(context, deadline)
        finally:
            self._close_hook()

    def _close_hook(self) -> None:
        if self._hook is not None:
            self._hook.close()
            self._hook = None

    # --- deferrable -----------------------------------------------------------------------------

    @property
    def needs_responses(self) -> bool:
        """Whether the worker must see the responses (a callable check the trigger cannot run)."""
        return False

    def make_trigger(self, context: Context, deadline: float, unsuccessful_polls: int = 0) -> ButlrTrigger:
        from airflow_provider_butlr.triggers.butlr import ButlrTrigger

        return ButlrTrigger(
            plan=self.plan_for(context).to_dict(),
            deadline=deadline,
            butlr_conn_id=self.butlr_conn_id,
            poll_interval=max(float(self.poke_interval), 1.0),
            exponential_backoff=self.exponential_backoff,
            max_poll_interval=self.max_wait.total_seconds() if self.max_wait else None,
            max_consecutive_failures=self.max_consecutive_failures,
            hook_params=self.hook_params,
            return_responses=self.needs_responses,
            max_response_bytes=DEFAULT_MAX_RESPONSE_BYTES,
            unsuccessful_polls=unsuccessful_polls,
        )

    def defer_until(self, context: Context, deadline: float, unsuccessful_polls: int = 0) -> None:
        """Hand the wait to the triggerer; the trigger ends it by ``deadline`` (Unix seconds).

        ``unsuccessful_polls`` (trigger polls of earlier deferrals) keeps ``exponential_backoff`` going.
        """
        remaining = max(deadline - time.time(), 0.0)
        self.log.info(
            "Deferring to the triggerer until %s (poll every %s s).", rfc3339(deadline), self.poke_interval
        )
        self.defer(
            trigger=self.make_trigger(context, deadline, unsuccessful_polls),
            method_name="execute_complete",
            kwargs={"deadline": deadline, "unsuccessful_polls": unsuccessful_polls},
            timeout=timedelta(seconds=remaining + float(self.poke_interval) + DEFER_TIMEOUT_MARGIN),
        )

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any] | None = None,
        deadline: float | None = None,
        unsuccessful_polls: int = 0,
    ) -> Any:
        """Validate the trigger's event: return the summary, or raise on error/timeout."""
        if not isinstance(event, Mapping) or event.get("status") not in EVENT_STATUSES:
            raise ButlrError(
                f"{self.task_id}: unexpected trigger event {event!r}; "
                f"expected a dict with status one of {', '.join(EVENT_STATUSES)}"
            )
        message = str(event.get("message") or "")
        if event["status"] == "timeout":
            raise AirflowSensorTimeout(f"{self.task_id}: {message}")
        if event["status"] == "error":
            raise ButlrError(f"{self.task_id}: {message}")
        verdict = Verdict(True, message, dict(event.get("summary") or {}))
        answer = self.accept(verdict, list(event.get("responses") or []), context)
        if answer:
            self.log.info("Butlr condition met: %s", message)
            return answer.xcom_value
        end = float(deadline) if deadline is not None else time.time()
        if time.time() >= end:
            raise AirflowSensorTimeout(
                f"{self.task_id}: response_check still false at the deadline {rfc3339(end)}"
            )
        try:
            polls = event.get("polls")  # the trigger's polls, the met one the check refused included
            polls = int(unsuccessful_polls) + (polls if isinstance(polls, int) and polls > 0 else 1)
            self.defer_until(context, end, polls)  # rebuilding the plan may need the hook (topology)
        finally:
            self._close_hook()
        return None


class ButlrSensor(_ButlrPollingSensor):
    """Poll any Butlr endpoint until a ``response_check`` and/or declarative ``conditions`` hold.

    :param endpoint: API path, e.g. ``/api/v3/reporting`` (templated).
    :param method: ``POST`` or ``GET``.
    :param json: request body (templated).
    :param request_params: query parameters (templated; ``params`` is Airflow's own argument).
    :param response_check: ``callable(payload, **context) -> bool`` on the parsed JSON body; it runs
        on the worker (in deferrable mode after the trigger's poll, deferring again while false).
    :param conditions: declarative checks evaluated wherever the poll runs, the trigger included:
        :class:`~airflow_provider_butlr.conditions.Condition` objects or their dict form, e.g.
        ``{"type": "value_at", "path": "data.*.value", "op": "<=", "value": 0}`` (templated).
    """

    template_fields: Sequence[str] = ("butlr_conn_id", "endpoint", "json", "request_params", "conditions")
    template_fields_renderers = {"json": "json", "request_params": "json", "conditions": "json"}

    def __init__(
        self,
        *,
        endpoint: str,
        method: str = "POST",
        json: Any = None,
        request_params: dict[str, Any] | None = None,
        response_check: Callable[..., bool | PokeReturnValue] | None = None,
        conditions: Sequence[Condition | Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if response_check is not None and not callable(response_check):
            raise ButlrConfigurationError(
                f"response_check must be callable, got {type(response_check).__name__}"
            )
        if not isinstance(method, str) or method.upper() not in ("GET", "POST"):
            raise ButlrConfigurationError(f"method {method!r} is not one of GET, POST")
        self.endpoint = endpoint
        self.method = method.upper()
        self.json = json
        self.request_params = request_params
        self.response_check = response_check
        self.conditions = list(conditions or [])

    def build_plan(self, context: Context) -> PollPlan:
        request = PollRequest(
            endpoint=self.endpoint, method=self.method, json=self.json, params=self.request_params
        )
        built = [condition_from_dict(c, f"conditions[{i}]") for i, c in enumerate(self.conditions)]
        return PollPlan([request], built)

    @property
    def needs_responses(self) -> bool:
        return self.response_check is not None

    def accept(self, verdict: Verdict, responses: list[Any], context: Context) -> PokeReturnValue:
        if self.response_check is None:
            return PokeReturnValue(True, verdict.details)
        if not responses:
            raise ButlrError(f"{self.task_id}: the trigger returned no response for response_check")
        payload = responses[0]
        from airflow.providers.common.compat.sdk import determine_kwargs  # imported only when needed

        result = self.response_check(payload, **determine_kwargs(self.response_check, [payload], context))
        if isinstance(result, PokeReturnValue):
            return result
        if not isinstance(result, bool):
            raise ButlrConfigurationError(
                f"response_check must return a bool or PokeReturnValue, got {type(result).__name__}"
            )
        return PokeReturnValue(result, verdict.details if result else None)


def _asset_arguments(floors: Any, rooms: Any, zones: Any) -> dict[str, Any]:
    return {kind: ids for kind, ids in (("floors", floors), ("rooms", rooms), ("zones", zones)) if ids}


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


class ButlrDataCompleteSensor(_ButlrPollingSensor):
    """Wait until Butlr's data for a window is final for the given floors, rooms and/or zones.

    Final means: the window end plus ``grace_period`` has passed (no request before that); a check
    query over the last ``check_span`` of the window returns windows up to its end for every asset;
    no window carries ``data_incomplete: true`` (nor ``null_percentage`` above
    ``max_null_percentage``, when set). Returns a summary to XCom: window, assets checked,
    incomplete windows.

    :param floors: floor ids (``space_...``) (templated).
    :param rooms: room ids (templated).
    :param zones: zone ids (templated).
    :param window_start: start of the window, RFC3339 or datetime (templated; with ``window_end``).
    :param window_end: end of the window (templated). Default window: the DAG run's data interval.
    :param local_day: check the site's local day (midnight to midnight in ``timezone``) of ``day``.
    :param day: the local day, ``YYYY-MM-DD`` (templated; default: the day ``local_day=True`` exports
        in this run: the date of the data interval start in the DAG's timezone, or without a data
        interval the day before the logical date).
    :param timezone: IANA timezone of the site (templated; default: looked up from the assets' site).
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
        "window_start",
        "window_end",
        "day",
        "timezone",
    )

    def __init__(
        self,
        *,
        floors: Sequence[str] | str | None = None,
        rooms: Sequence[str] | str | None = None,
        zones: Sequence[str] | str | None = None,
        window_start: datetime | str | None = None,
        window_end: datetime | str | None = None,
        local_day: bool = False,
        day: str | None = None,
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
        if not _asset_arguments(floors, rooms, zones):
            raise ButlrConfigurationError(f"{self.task_id}: give at least one of floors, rooms, zones")
        if (window_start is None) != (window_end is None):
            raise ButlrConfigurationError(
                f"{self.task_id}: give both window_start and window_end, or neither"
            )
        if local_day and window_start is not None:
            raise ButlrConfigurationError(
                f"{self.task_id}: local_day=True and window_start/window_end exclude each other"
            )
        if measurement is not None:
            _check_measurement_kinds(measurement, _asset_arguments(floors, rooms, zones))
        if max_null_percentage is not None and not 0 <= max_null_percentage <= 1:
            raise ButlrConfigurationError(
                f"max_null_percentage {max_null_percentage!r} must be between 0 and 1"
            )
        self.floors, self.rooms, self.zones = floors, rooms, zones
        self.window_start, self.window_end = window_start, window_end
        self.local_day, self.day, self.timezone = local_day, day, timezone
        self.grace_period = _seconds(grace_period, "grace_period")
        self.check_span = _seconds(check_span, "check_span")
        if self.check_span <= 0:
            raise ButlrConfigurationError(f"check_span {check_span!r} must be longer than zero")
        self.check_every = check_every
        self.check_every_seconds = parse_every(check_every, "check_every").total_seconds()
        self.max_null_percentage = max_null_percentage
        self.measurement = measurement
        self.limits = BatchLimits.from_args(max_ids_per_request)

    def resolve_window(self, context: Context) -> tuple[datetime, datetime, str]:
        """The window ``[start, end)`` in UTC and the timezone used to align check windows."""
        if self.window_start is not None and self.window_end is not None:
            start = parse_datetime(self.window_start, "window_start")
            end = parse_datetime(self.window_end, "window_end")
            if end <= start:
                raise ButlrConfigurationError(
                    f"window_end {self.window_end} must be after window_start {self.window_start}"
                )
            return start, end, self.timezone or "UTC"
        interval_start = context.get("data_interval_start") or context.get("logical_date")
        if self.local_day:
            tz = self.timezone or self.site_timezone()
            day = self.day or run_day(context)
            if not day:
                raise ButlrConfigurationError(
                    f"{self.task_id}: local_day needs day=YYYY-MM-DD (no data interval in this run)"
                )
            start, end = local_day_bounds(day, tz)
            return start, end, tz
        interval_end = context.get("data_interval_end")
        if interval_start is None or interval_end is None or interval_end <= interval_start:
            raise ButlrConfigurationError(
                f"{self.task_id}: this run has no data interval; pass window_start and window_end, or local_day=True"
            )
        return (
            parse_datetime(interval_start, "data_interval_start"),
            parse_datetime(interval_end, "data_interval_end"),
            self.timezone or "UTC",
        )

    def site_timezone(self) -> str:
        """The one timezone of the sites holding the assets (UTC for a site without one)."""
        assets = _asset_arguments(self.floors, self.rooms, self.zones)
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
        for kind, raw_ids in _asset_arguments(self.floors, self.rooms, self.zones).items():
            ids = validate_ids(kind, raw_ids)
            row_key, presence, _ = ASSET_MEASUREMENTS[kind]
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
                requests.append(PollRequest(REPORTING_PATH, "POST", body))
            conditions.append(
                DataComplete(
                    window_start=rfc3339(start.timestamp()),
                    window_end=rfc3339(end.timestamp()),
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


class ButlrOccupancySensor(_ButlrPollingSensor):
    """Wait until the current occupancy of rooms, zones or floors passes a threshold.

    Current occupancy = the median of an asset's latest ``lookback_minutes`` 1-minute windows
    (Butlr's recommendation), found within the last ``search_minutes`` (Butlr's data lags a few
    minutes); with ``source="auto"`` presence and traffic-based (calibrated)
    occupancy are both read and the higher one counts, as Butlr's own tools do.

    :param rooms: room ids (templated). Give exactly one of rooms, zones, floors.
    :param zones: zone ids (templated; presence only).
    :param floors: floor ids (templated).
    :param op: comparison, one of ``<``, ``<=``, ``==``, ``!=``, ``>=``, ``>`` (e.g. ``<=`` 0 = empty).
    :param threshold: a number, or ``{asset_id: number}`` (e.g. each room's capacity) (templated).
    :param match: ``all`` assets must pass, or ``any`` one.
    :param source: ``auto``, ``presence`` or ``traffic``.
    :param lookback_minutes: how many recent minutes make "current" (default 5).
    :param search_minutes: how far back to look for them (default 20); older data counts as none.
    """

    template_fields: Sequence[str] = ("butlr_conn_id", "floors", "rooms", "zones", "threshold")

    def __init__(
        self,
        *,
        rooms: Sequence[str] | str | None = None,
        zones: Sequence[str] | str | None = None,
        floors: Sequence[str] | str | None = None,
        op: str = ">=",
        threshold: float | Mapping[str, float] | str = 1,
        match: str = "all",
        source: str = "auto",
        lookback_minutes: int = 5,
        search_minutes: int = 20,
        max_ids_per_request: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        assets = _asset_arguments(floors, rooms, zones)
        if len(assets) != 1:
            raise ButlrConfigurationError(
                f"{self.task_id}: give exactly one of rooms, zones, floors (got {', '.join(assets) or 'none'})"
            )
        if source not in OCCUPANCY_SOURCES:
            raise ButlrConfigurationError(f"source {source!r} is not one of {', '.join(OCCUPANCY_SOURCES)}")
        if "zones" in assets and source == "traffic":
            raise ButlrConfigurationError(
                "source 'traffic' is not available for zones (zones report presence only)"
            )
        if not isinstance(lookback_minutes, int) or not 1 <= lookback_minutes <= 60:
            raise ButlrConfigurationError(
                f"lookback_minutes {lookback_minutes!r} must be a whole number from 1 to 60"
            )
        if op not in COMPARATORS:
            raise ButlrConfigurationError(f"op {op!r} is not one of {', '.join(COMPARATORS)}")
        if match not in QUANTIFIERS:
            raise ButlrConfigurationError(f"match {match!r} is not one of {', '.join(QUANTIFIERS)}")
        self.floors, self.rooms, self.zones = floors, rooms, zones
        self.op, self.threshold, self.match = op, threshold, match
        self.source = source
        if not isinstance(search_minutes, int) or not lookback_minutes <= search_minutes <= 120:
            raise ButlrConfigurationError(
                f"search_minutes {search_minutes!r} must be a whole number from lookback_minutes to 120"
            )
        self.lookback_minutes = lookback_minutes
        self.search_minutes = search_minutes
        self.limits = BatchLimits.from_args(max_ids_per_request)

    def _threshold(self) -> float | dict[str, float]:
        value = self.threshold
        try:
            if isinstance(value, Mapping):
                return {str(k): float(v) for k, v in value.items()}
            return float(value)
        except (TypeError, ValueError):
            raise ButlrConfigurationError(
                f"threshold {value!r} must be a number or a mapping of asset id to number"
            ) from None

    def build_plan(self, context: Context) -> PollPlan:
        kind, raw_ids = next(iter(_asset_arguments(self.floors, self.rooms, self.zones).items()))
        ids = validate_ids(kind, raw_ids)
        row_key, presence, traffic = ASSET_MEASUREMENTS[kind]
        sources: dict[str, list[str | None]] = {
            "presence": [presence],
            "traffic": [traffic],
            "auto": [presence, traffic],
        }
        measurements = [m for m in sources[self.source] if m]
        now = time.time()
        stop = datetime.fromtimestamp(now - now % 60, tz=UTC)  # re-set at every poll
        lookback = self.search_minutes * 60.0
        requests = minute_median_requests(kind, ids, measurements, traffic, lookback, self.limits, stop)
        condition = Occupancy(
            row_key, ids, self.op, self._threshold(), self.match, latest=self.lookback_minutes
        )
        return PollPlan(requests, [condition])


__all__ = [
    "ButlrDataCompleteSensor",
    "ButlrOccupancySensor",
    "ButlrSensor",
]
