"""Butlr operators: thin wrappers that validate arguments, call one ButlrHook method and shape the output.

Nothing here touches the network or a Connection while a DAG file is parsed: hooks are built in
``execute``. Arguments are validated at construction when they are plain values, and again at the
start of ``execute`` after templates were rendered, with errors naming the argument.
"""

from __future__ import annotations

import json as jsonlib
import os
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_butlr.assets import attach_to_outlets, export_event_extra
from airflow_provider_butlr.exceptions import ButlrConfigurationError, ButlrDataError, ButlrError
from airflow_provider_butlr.export import (
    DEFAULT_MAX_IDS_PER_TASK,
    ExportOptions,
    ExportStats,
    check_ids_per_task,
    run_export,
)
from airflow_provider_butlr.hooks.base import ButlrBaseHook
from airflow_provider_butlr.output import output_format_for, require_output_format, write_rows
from airflow_provider_butlr.queries import device_health_report
from airflow_provider_butlr.reporting import (
    CALIBRATED_MEASUREMENTS,
    MEASUREMENTS,
    Every,
    ReportingQuery,
    Row,
    check_positive_int,
    counts_whole_numbers,
    format_time,
    local_day_bounds,
    measurement_filter_kind,
    normalise_calibrated,
    parse_datetime,
    validate_days,
    validate_functions,
    validate_ids,
    validate_measurements,
    validate_range,
    validate_stats_items,
    validate_stats_measurements,
    validate_time_ranges,
    validate_timezone,
)
from airflow_provider_butlr.run_dates import context_datetime, run_day
from airflow_provider_butlr.scrub import scrub_json

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

    from airflow_provider_butlr.hooks.butlr import ButlrHook


def new_hook(conn_id: str) -> ButlrHook:
    """The hook for ``execute``; imported here, so a DAG file that only builds operators does not
    load the HTTP stack (the DAG processor parses DAG files constantly)."""
    from airflow_provider_butlr.hooks.butlr import ButlrHook

    return ButlrHook(conn_id)


HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
POST_PATH_PREFIXES = ("/api/v3/reporting", "/api/v4/reporting", "/api/v3/graphql")
CONTAINER_KINDS = ("sites", "buildings")
SELECTION_KINDS = ("sites", "buildings", "floors", "rooms", "zones", "tags")
DEFAULT_MAX_XCOM_ROWS = 1000


class ButlrDeviceHealthError(ButlrError):
    """Device health passed a threshold the DAG author set (the report is in XCom ``device_health``)."""


# --- helpers -----------------------------------------------------------------------------------


def is_literal(value: Any) -> bool:
    """A plain value that is final at parse time (not a template string, XComArg or mapped argument)."""
    if value is None or isinstance(value, (bool, int, float, date)):
        return True
    if isinstance(value, str):
        return "{{" not in value and "{%" not in value
    if isinstance(value, (list, tuple)):
        return all(is_literal(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_literal(v) for k, v in value.items())
    return False


def ensure_json(value: Any, what: str) -> Any:
    """Refuse a value that cannot go to XCom as JSON (with a hint)."""
    try:
        jsonlib.dumps(value)
    except (TypeError, ValueError) as err:
        raise ButlrDataError(
            f"{what} is not JSON-serialisable ({err}); return plain dicts, lists, strings and numbers"
        ) from err
    return value


# Keys whose values are credentials wherever they appear in a response (``POST /api/v1/client``
# answers with a new client's secret): masked in logs and replaced in what goes to XCom.
SECRET_RESPONSE_KEYS = frozenset(
    {"client_secret", "password", "access_token", "refresh_token", "id_token", "token", "secret"}
)
REDACTED = "***"


def redact_secret_fields(value: Any) -> Any:
    """``value`` with every credential field replaced by ``***`` (their values also masked in logs)."""
    if isinstance(value, dict):
        redacted = {}
        for key, item in value.items():
            if isinstance(key, str) and key.lower() in SECRET_RESPONSE_KEYS and item not in (None, ""):
                if isinstance(item, str):
                    from airflow_provider_butlr.auth import mask_token

                    mask_token(item)
                redacted[key] = REDACTED
            else:
                redacted[key] = redact_secret_fields(item)
        return redacted
    if isinstance(value, list):
        return [redact_secret_fields(item) for item in value]
    return value


@dataclass(frozen=True)
class Check:
    """One argument check: ``fn(*values of fields)``, its result kept under ``name``.

    The same checks run at construction (on the fields whose values are final: plain values, or
    fields that are not templated) and after rendering (on every field): one function per rule.
    ``final_only`` checks wait for the rendered values (e.g. "at least one asset").
    """

    name: str
    fields: tuple[str, ...]
    fn: Callable[..., Any]
    final_only: bool = False


def run_checks(operator: BaseOperator, checks: Sequence[Check], *, final: bool) -> dict[str, Any]:
    """Apply ``checks`` to ``operator``; ``{check name: result}``. Errors name the task and the argument."""
    templated = set(operator.template_fields)
    results: dict[str, Any] = {}
    for check in checks:
        values = [getattr(operator, name) for name in check.fields]
        ready = final or (
            not check.final_only
            and all(n not in templated or is_literal(v) for n, v in zip(check.fields, values, strict=True))
        )
        if not ready:
            continue
        try:
            results[check.name] = check.fn(*values)
        except ButlrConfigurationError as err:
            prefix = f"{operator.task_id}: "
            message = str(err)
            raise ButlrConfigurationError(
                message if message.startswith(prefix) else prefix + message
            ) from err
    return results


def positive_int(name: str) -> Callable[[Any], Any]:
    return lambda value: check_positive_int(value, name)


def optional(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``fn`` for a value that may be None (None passes)."""
    return lambda value: None if value is None else fn(value)


def ids_of(kind: str) -> Callable[[Any], list[str]]:
    return lambda value: validate_ids(kind, value)


MAX_DAYS = 3660


def _check_days(days: Any) -> int:
    check_positive_int(days, "days")
    if days > MAX_DAYS:
        raise ButlrConfigurationError(f"days must be at most {MAX_DAYS} (ten years), got {days!r}")
    return int(days)


def local_day_on(local_day: Any) -> bool:
    """Whether ``local_day`` asks for local days (a rendered ``"False"``/``"None"`` does not)."""
    return bool(local_day) and str(local_day).strip().lower() not in ("false", "none")


def explicit_day(local_day: Any) -> date | str | None:
    """``local_day`` when it names a day (a date or ``YYYY-MM-DD``), None for True/False/None."""
    if local_day in (None, False, True) or str(local_day).strip().lower() in ("true", "false", "none", ""):
        return None
    return local_day if isinstance(local_day, date) else str(local_day)


def _check_local_day(local_day: Any, start: Any, stop: Any) -> None:
    named = explicit_day(local_day)
    if named is not None:
        local_day_bounds(named, "UTC")
    if local_day_on(local_day) and (start is not None or stop is not None):
        raise ButlrConfigurationError("pass either local_day or start/stop, not both")


def _check_range(start: Any, stop: Any) -> Any:
    # before any request, not after the topology lookup
    return validate_range(start, stop) if start is not None and stop is not None else None


TIME_CHECKS = (
    Check("start", ("start",), optional(lambda v: parse_datetime(v, "start"))),
    Check("stop", ("stop",), optional(lambda v: parse_datetime(v, "stop"))),
    Check("range", ("start", "stop"), _check_range),
    Check("timezone", ("timezone",), optional(validate_timezone)),
    Check("days", ("days",), _check_days),
    Check("local_day", ("local_day", "start", "stop"), _check_local_day),
)


def _check_output_target(path: Any) -> None:
    """A local ``output_path`` must not be a directory (checked on the worker, before any request)."""
    if isinstance(path, str) and "://" not in path and os.path.isdir(os.path.expanduser(path)):
        raise ButlrConfigurationError(
            f"output_path {path!r} is a directory; name a file such as {path.rstrip('/')}/export.jsonl"
        )


def _check_callable(value: Any, name: str) -> None:
    if value is not None and not callable(value):
        raise ButlrConfigurationError(f"{name} must be a callable, got {type(value).__name__}")


def _require_assets(*values: Any) -> None:
    if not any(values):
        raise ButlrConfigurationError(
            "select assets with at least one of sites, buildings, floors, rooms, zones, tags"
        )


class _TimeWindowMixin:
    """Time bounds shared by the reporting and stats operators: explicit, local days, or the data interval."""

    start: Any
    stop: Any
    local_day: Any
    days: int
    timezone: str | None

    def _local_day_on(self) -> bool:
        return local_day_on(self.local_day)

    def _explicit_day(self) -> date | str | None:
        return explicit_day(self.local_day)

    def _bounds(self, context: Mapping[str, Any], tz: str) -> tuple[datetime, datetime]:
        """``[start, stop)`` in UTC: the ``days`` local days ending on the local day in ``tz``, or start/stop,
        or the run's data interval."""
        if self._local_day_on():
            named = self._explicit_day()
            if named is None:
                last = run_day(context)
                if last is None:
                    raise ButlrConfigurationError(
                        "local_day=True needs a logical date or a data interval; this run has neither: "
                        "pass local_day='YYYY-MM-DD'"
                    )
            else:
                last = named if isinstance(named, date) else date.fromisoformat(named.strip()[:10])
            first, _ = local_day_bounds(last - timedelta(days=self.days - 1), tz)
            _, after = local_day_bounds(last, tz)
            return first, after
        start = self.start if self.start is not None else context_datetime(context, "data_interval_start")
        stop = self.stop if self.stop is not None else context_datetime(context, "data_interval_end")
        if start is None or stop is None:
            raise ButlrConfigurationError(
                "start/stop are not set and the run has no data interval; pass start= and stop=, or local_day="
            )
        begin, end = parse_datetime(start, "start"), parse_datetime(stop, "stop")
        if end <= begin:
            raise ButlrConfigurationError(
                f"the range [{format_time(begin)}, {format_time(end)}) is empty (runs of a CronTriggerTimetable "
                "have an empty data interval); pass start=/stop= or local_day=True"
            )
        return begin, end


# --- ButlrOperator -----------------------------------------------------------------------------


class ButlrOperator(BaseOperator):
    """Call any Butlr API endpoint and push the JSON answer (optionally checked and filtered) to XCom.

    :param endpoint: path such as ``/api/v3/graphql`` or ``/api/v4/reporting/stats`` (templated).
    :param method: HTTP method; default POST for reporting, stats and GraphQL paths, GET otherwise.
    :param json: request body (templated).
    :param query_params: query-string parameters (templated). Not ``params``: that name belongs to
        Airflow (DAG/task Params, also filled from ``default_args``).
    :param response_check: ``callable(payload) -> bool``; False fails the task.
    :param response_filter: ``callable(payload) -> value``; its result goes to XCom.
    :param butlr_conn_id: the Butlr connection (templated).

    Credentials in an answer (``client_secret``, ``password``, ``access_token``... fields, e.g. from
    ``POST /api/v1/client``) are masked in logs and replaced by ``***`` in what goes to XCom; to
    store a new client's secret, call :class:`ButlrHook` in a task that writes it to a secrets backend.
    """

    template_fields: Sequence[str] = ("butlr_conn_id", "endpoint", "method", "json", "query_params")
    template_fields_renderers = {"json": "json", "query_params": "json"}
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        endpoint: str,
        method: str | None = None,
        json: Any = None,
        query_params: dict[str, Any] | None = None,
        response_check: Callable[[Any], bool] | None = None,
        response_filter: Callable[[Any], Any] | None = None,
        butlr_conn_id: str = ButlrBaseHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.endpoint = endpoint
        self.method = method
        self.json = json
        self.query_params = query_params
        self.response_check = response_check
        self.response_filter = response_filter
        self.butlr_conn_id = butlr_conn_id
        run_checks(self, self.checks, final=False)

    @staticmethod
    def _check_endpoint(endpoint: Any) -> None:
        if not isinstance(endpoint, str) or not endpoint.strip():
            raise ButlrConfigurationError(
                f"endpoint must be a non-empty path such as /api/v3/graphql, got {endpoint!r}"
            )

    @staticmethod
    def _check_method(method: Any) -> None:
        if method is not None and str(method).upper() not in HTTP_METHODS:
            raise ButlrConfigurationError(
                f"method {method!r} is not allowed; use one of {', '.join(HTTP_METHODS)}"
            )

    @staticmethod
    def _check_query_params(params: Any) -> None:
        if params is not None and not isinstance(params, dict):
            raise ButlrConfigurationError(f"query_params must be a dict, got {type(params).__name__}")

    checks: Sequence[Check] = (
        Check("endpoint", ("endpoint",), _check_endpoint),
        Check("method", ("method",), _check_method),
        Check("query_params", ("query_params",), _check_query_params),
        Check("response_check", ("response_check",), lambda v: _check_callable(v, "response_check")),
        Check("response_filter", ("response_filter",), lambda v: _check_callable(v, "response_filter")),
    )

    def resolved_method(self) -> str:
        """The explicit method, else POST for reporting/stats/GraphQL paths and GET otherwise."""
        if self.method:
            return str(self.method).upper()
        path = urlsplit(self.endpoint).path if "://" in self.endpoint else self.endpoint
        return "POST" if ("/" + path.lstrip("/")).startswith(POST_PATH_PREFIXES) else "GET"

    def execute(self, context: Context) -> Any:
        run_checks(self, self.checks, final=True)
        method = self.resolved_method()
        with new_hook(self.butlr_conn_id) as hook:
            payload = hook.request_json(method, self.endpoint, json=self.json, params=self.query_params)
        # by key (masks new credentials before user code can log them) and by value (the connection's
        # secret and every token seen in this process, wherever an answer echoes them)
        redacted = scrub_json(redact_secret_fields(payload))
        if self.response_check is not None and not self.response_check(payload):
            raise ButlrError(f"response_check returned False for Butlr {method} {self.endpoint}")
        if self.response_filter is None:
            return ensure_json(redacted, "the response")
        return scrub_json(
            redact_secret_fields(ensure_json(self.response_filter(payload), "response_filter's result"))
        )


# --- ButlrReportingOperator --------------------------------------------------------------------


class ButlrReportingOperator(_TimeWindowMixin, BaseOperator):
    """Export reporting time series as flat rows: to a file (CSV, JSON Lines, Parquet) or to XCom when small.

    Select assets with ``floors``/``rooms``/``zones``/``tags`` ids, or ``sites``/``buildings``
    (resolved to their floors, rooms and zones through the topology). Each measurement is queried for
    the asset kind it is defined on (``room_occupancy`` -> rooms, ``floor_occupancy`` -> floors,
    ``traffic`` -> floors, rows per sensor and ``field`` in/out).

    Time: ``start``/``stop`` (default: the run's data interval), or ``local_day`` (True: the run's
    day, see :func:`run_day`; or ``"YYYY-MM-DD"``) with ``days`` local days ending that day, computed
    in each site's own timezone (DST-correct) unless ``timezone`` forces one.

    The export asks for as many ids per request as Butlr's budget allows (``max_ids_per_request``,
    default 30; ``max_ids_long_range`` for ranges of 24 h or more, default 10) and the whole range
    unless an answer would exceed 50,000 rows; it pages only when the server says there is more,
    re-asks an empty answer in smaller parts (Butlr's silent truncation, bounded), and streams rows
    in a deterministic order (see ``airflow_provider_butlr.export``).

    Output: ``output_format`` ``csv``, ``jsonl`` or ``parquet`` (the ``parquet`` extra), else the
    ``output_path`` suffix; ``csv_escape_formulas`` (default True) neutralises CSV text cells that
    a spreadsheet would run as formulas. Every row has ``local_time`` (``time`` in the window timezone).

    Returns ``{"path", "format", "rows", "assets", "start", "stop", "ranges", "requests", "resplits"}``
    with ``output_path``; else the list of rows (refused above ``max_xcom_rows``).
    """

    template_fields: Sequence[str] = (
        "butlr_conn_id",
        "measurements",
        "sites",
        "buildings",
        "floors",
        "rooms",
        "zones",
        "tags",
        "start",
        "stop",
        "local_day",
        "timezone",
        "window_every",
        "window_function",
        "output_path",
        "output_format",
        "output_conn_id",
    )
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        measurements: str | Sequence[str],
        sites: Sequence[str] | str | None = None,
        buildings: Sequence[str] | str | None = None,
        floors: Sequence[str] | str | None = None,
        rooms: Sequence[str] | str | None = None,
        zones: Sequence[str] | str | None = None,
        tags: Sequence[str] | str | None = None,
        start: datetime | str | None = None,
        stop: datetime | str | None = None,
        local_day: bool | str | date | None = None,
        days: int = 1,
        timezone: str | None = None,
        window_every: str = "1h",
        window_function: str | Sequence[str] = "mean",
        calibrated: str | bool | None = None,
        include_zeros: bool = True,
        max_ids_per_request: int | None = None,
        max_ids_long_range: int | None = None,
        max_concurrency: int = 1,
        max_ids_per_task: int = DEFAULT_MAX_IDS_PER_TASK,
        output_path: str | None = None,
        output_format: str | None = None,
        output_conn_id: str | None = None,
        csv_escape_formulas: bool = True,
        max_xcom_rows: int = DEFAULT_MAX_XCOM_ROWS,
        butlr_conn_id: str = ButlrBaseHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.measurements = measurements
        self.sites = sites
        self.buildings = buildings
        self.floors = floors
        self.rooms = rooms
        self.zones = zones
        self.tags = tags
        self.start = start
        self.stop = stop
        self.local_day = local_day
        self.days = days
        self.timezone = timezone
        self.window_every = window_every
        self.window_function = window_function
        self.calibrated = calibrated
        self.include_zeros = include_zeros
        self.max_ids_per_request = max_ids_per_request
        self.max_ids_long_range = max_ids_long_range
        self.max_concurrency = max_concurrency
        self.max_ids_per_task = max_ids_per_task
        self.output_path = output_path
        self.output_format = output_format
        self.output_conn_id = output_conn_id
        self.csv_escape_formulas = csv_escape_formulas
        self.max_xcom_rows = max_xcom_rows
        self.butlr_conn_id = butlr_conn_id
        self._kill_requested = False
        run_checks(self, self.checks, final=False)

    def _selection(self) -> dict[str, list[str]]:
        return {k: validate_ids(k, getattr(self, k)) for k in SELECTION_KINDS}

    def _resolve(self, hook: ButlrHook) -> dict[str, dict[str, list[str]]]:
        """``{timezone: {kind: ids}}``: each site's assets under its own timezone unless one is forced."""
        selection = self._selection()
        containers = any(selection[k] for k in CONTAINER_KINDS)
        if self.timezone is not None and not containers:
            return {self.timezone: {k: v for k, v in selection.items() if v}}
        topology = hook.get_topology()
        assets = topology.resolve(selection)
        if not assets:
            chosen = ", ".join(k for k, v in selection.items() if v)
            raise ButlrConfigurationError(f"the selected {chosen} hold no floors, rooms or zones")
        if self.timezone is not None:
            return {self.timezone: assets}
        return topology.group_by_timezone(assets)

    @staticmethod
    def _check_calibrated(calibrated: Any, measurements: Any) -> str | None:
        value = normalise_calibrated(calibrated)
        if value is not None:
            names = validate_measurements(measurements)
            if not any(m in CALIBRATED_MEASUREMENTS for m in names):
                raise ButlrConfigurationError(
                    f"calibrated={value!r} is only valid with {', '.join(CALIBRATED_MEASUREMENTS)}; "
                    f"measurements are {', '.join(names)}"
                )
        return value

    @staticmethod
    def _check_include_zeros(value: Any) -> bool:
        if not isinstance(value, bool):
            raise ButlrConfigurationError(f"include_zeros must be True or False, got {value!r}")
        return value

    @staticmethod
    def _check_flag(value: Any) -> bool:
        if not isinstance(value, bool):
            raise ButlrConfigurationError(f"csv_escape_formulas must be True or False, got {value!r}")
        return value

    @staticmethod
    def _check_output(path: Any, output_format: Any) -> str | None:
        if path is not None and (not isinstance(path, str) or not path.strip()):
            raise ButlrConfigurationError(f"output_path must be a non-empty path or URI, got {path!r}")
        if path is None and output_format is None:
            return None
        return output_format_for(path or "", output_format)

    checks: Sequence[Check] = (
        Check("measurements", ("measurements",), validate_measurements),
        Check("every", ("window_every",), Every.parse),
        Check("functions", ("window_function",), validate_functions),
        Check("calibrated", ("calibrated", "measurements"), _check_calibrated),
        Check("include_zeros", ("include_zeros",), _check_include_zeros),
        Check(
            "options",
            ("max_ids_per_request", "max_ids_long_range", "max_concurrency", "max_ids_per_task"),
            lambda short, long, concurrency, per_task: ExportOptions.from_args(
                max_ids_per_request=short,
                max_ids_long_range=long,
                max_concurrency=concurrency,
                max_ids_per_task=per_task,
            ),
        ),
        Check("max_xcom_rows", ("max_xcom_rows",), positive_int("max_xcom_rows")),
        Check("output", ("output_path", "output_format"), _check_output),
        Check("output_target", ("output_path",), _check_output_target, final_only=True),
        Check("csv_escape_formulas", ("csv_escape_formulas",), _check_flag),
        *(
            Check(kind, (kind,), ids_of(kind))
            for kind in ("sites", "buildings", "floors", "rooms", "zones", "tags")
        ),
        Check("assets", SELECTION_KINDS, _require_assets, final_only=True),
        *TIME_CHECKS,
    )

    def _queries(self, context: Context, hook: ButlrHook, checked: Mapping[str, Any]) -> list[ReportingQuery]:
        """One validated query per timezone group, built before any reporting request."""
        groups = self._resolve(hook)
        names: list[str] = checked["measurements"]
        queries: list[ReportingQuery] = []
        served: set[str] = set()
        for tz, assets in groups.items():
            wanted = [m for m in names if any(assets.get(k) for k in MEASUREMENTS[m][0])]
            if not wanted:
                self.log.info(
                    "Nothing to export in %s: no %s among %s.", tz, "/".join(names), ", ".join(assets)
                )
                continue
            served.update(wanted)
            used = {measurement_filter_kind(m, assets) for m in wanted}
            start, stop = self._bounds(context, tz)
            queries.append(
                ReportingQuery.build(
                    wanted,
                    start=start,
                    stop=stop,
                    assets={k: v for k, v in assets.items() if k in used},
                    every=checked["every"],
                    function=checked["functions"],
                    timezone=tz,
                    include_zeros=checked["include_zeros"],
                    calibrated=checked["calibrated"]
                    if any(m in CALIBRATED_MEASUREMENTS for m in wanted)
                    else None,
                )
            )
        missing = [m for m in names if m not in served]
        if missing:
            kinds = " or ".join(MEASUREMENTS[missing[0]][0])
            raise ButlrConfigurationError(
                f"measurement {missing[0]!r} needs {kinds} ids, and the selection has none"
            )
        return queries

    def execute(self, context: Context) -> Any:
        checked = run_checks(self, self.checks, final=True)
        if checked["output"] is not None:
            require_output_format(
                checked["output"]
            )  # e.g. pyarrow for Parquet, before any request        self._kill_requested = False
        stats = self._stats = ExportStats()
        with new_hook(self.butlr_conn_id) as hook:
            queries = self._queries(context, hook, checked)
            check_ids_per_task(sum(q.asset_count for q in queries), checked["options"])
            rows = self._stream(hook, queries, checked["options"], stats)
            try:
                if self.output_path is None:
                    return self._rows_for_xcom(rows)
                count = write_rows(
                    rows,
                    self.output_path,
                    self.output_format,
                    conn_id=self.output_conn_id,
                    escape_formulas=self.csv_escape_formulas,
                    integer_values=all(
                        counts_whole_numbers(m, f)
                        for q in queries
                        for m in q.measurements
                        for f in q.functions
                    ),
                )
            finally:
                rows.close()  # an export stopped early joins its worker threads and closes their sessions
        summary = {
            "path": self.output_path,
            "format": checked["output"],
            "rows": count,
            "assets": sum(q.asset_count for q in queries),
            "start": format_time(min(q.start for q in queries)),
            "stop": format_time(max(q.stop for q in queries)),
            "ranges": [
                {
                    "timezone": q.timezone,
                    "start": format_time(q.start),
                    "stop": format_time(q.stop),
                    "assets": q.asset_count,
                }
                for q in queries
            ],
            "requests": stats.requests,
            "resplits": stats.resplits,
        }
        self.log.info(
            "Exported %d rows for %d assets to %s (%d requests).",
            count,
            summary["assets"],
            self.output_path,
            stats.requests,
        )
        self._record_export(context, summary)
        return summary

    # --- assets and OpenLineage (airflow_provider_butlr.assets / .lineage) ----------------------

    def _export_day(self, context: Context) -> str | None:
        """The last local day exported (``YYYY-MM-DD``) when ``local_day`` is on, else None."""
        if not self._local_day_on():
            return None
        named = self._explicit_day()
        day = run_day(context) if named is None else named
        return day.isoformat() if isinstance(day, date) else (str(day).strip()[:10] if day else None)

    def _record_export(self, context: Context, summary: dict[str, Any]) -> None:
        """Keep the summary for OpenLineage; attach the export's metadata to its ``Asset`` outlets."""
        self._export_summary = summary
        extra = export_event_extra(
            summary,
            measurements=validate_measurements(self.measurements),
            selection=self._selection(),
            day=self._export_day(context),
            days=self.days,
            window_every=self.window_every,
            window_function=self.window_function,
        )
        for uri in attach_to_outlets(context, self.outlets, extra):
            self.log.info("Asset event for %s: %s rows in %s.", uri, summary["rows"], summary["path"])

    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        """Inputs ``butlr://<host>`` ``reporting/<measurement>``; output the file (when writing one)."""
        from airflow_provider_butlr.lineage import build_lineage, namespace_for

        names = [f"reporting/{m}" for m in validate_measurements(self.measurements)]
        return build_lineage(namespace_for(self.butlr_conn_id), names, output_path=self.output_path)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """As on start, with the written row count (and size) as the output's statistics."""
        from airflow_provider_butlr.lineage import build_lineage, namespace_for

        summary = getattr(self, "_export_summary", None) or {}
        names = [f"reporting/{m}" for m in validate_measurements(self.measurements)]
        return build_lineage(
            namespace_for(self.butlr_conn_id), names, output_path=self.output_path, rows=summary.get("rows")
        )

    def _stream(
        self, hook: ButlrHook, queries: list[ReportingQuery], options: ExportOptions, stats: ExportStats
    ) -> Generator[Row, None, None]:
        """The rows of every query, in order; stops (with an error) once :meth:`on_kill` was called."""
        exports = [run_export(hook, query, options, stats) for query in queries]  # all planned first
        try:
            for rows in exports:
                for row in rows:
                    if self._kill_requested:
                        raise ButlrError("killed")
                    yield row
        except ButlrError:
            if not self._kill_requested:
                raise
            raise ButlrError(
                f"the Butlr export was killed after {stats.requests} request(s); no output was written"
            ) from None

    def on_kill(self) -> None:
        """Stop a running export at the next row.

        Airflow's task runner calls this on SIGTERM (task cleared or marked failed) and then lets the
        process run on until it kills it outright: stopping here stops further requests and removes
        the temporary output file instead of leaving both behind.
        """
        self._kill_requested = True
        stats = getattr(self, "_stats", None)
        if stats is not None:
            stats.stop()  # workers send no further request

    def _rows_for_xcom(self, rows: Iterator[Row]) -> list[Row]:
        kept = list(islice(rows, self.max_xcom_rows + 1))
        if len(kept) > self.max_xcom_rows:
            raise ButlrDataError(
                f"the export has more than max_xcom_rows={self.max_xcom_rows} rows, too many for XCom; set "
                "output_path (a local path or an ObjectStoragePath URI such as s3://bucket/butlr/{{ ds }}.jsonl) "
                "or raise max_xcom_rows"
            )
        return kept


# --- ButlrStatsOperator ------------------------------------------------------------------------


class ButlrStatsOperator(_TimeWindowMixin, BaseOperator):
    """Aggregates from ``POST /api/v4/reporting/stats``: ``{item_id: {measurement: number}}`` to XCom.

    Items are floor/room/zone ids (``items``) and/or the ``resolve_to`` assets (floors by default) of
    ``sites``/``buildings``. Butlr requires the items of one request to share a timezone: they are
    grouped by site timezone, and with ``local_day`` each group gets its own local days.
    """

    template_fields: Sequence[str] = (
        "butlr_conn_id",
        "measurements",
        "items",
        "sites",
        "buildings",
        "start",
        "stop",
        "local_day",
        "timezone",
        "exclude_days_of_week",
        "time_ranges",
    )
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        measurements: str | Sequence[str],
        items: Sequence[str] | str | None = None,
        sites: Sequence[str] | str | None = None,
        buildings: Sequence[str] | str | None = None,
        resolve_to: str = "floors",
        start: datetime | str | None = None,
        stop: datetime | str | None = None,
        local_day: bool | str | date | None = None,
        days: int = 1,
        timezone: str | None = None,
        exclude_days_of_week: Sequence[str] | str | None = None,
        time_ranges: Sequence[Any] | None = None,
        max_items_per_request: int = 30,
        butlr_conn_id: str = ButlrBaseHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.measurements = measurements
        self.items = items
        self.sites, self.buildings = sites, buildings
        self.resolve_to = resolve_to
        self.start, self.stop, self.local_day, self.days, self.timezone = (
            start,
            stop,
            local_day,
            days,
            timezone,
        )
        self.exclude_days_of_week = exclude_days_of_week
        self.time_ranges = time_ranges
        self.max_items_per_request = max_items_per_request
        self.butlr_conn_id = butlr_conn_id
        run_checks(self, self.checks, final=False)

    @staticmethod
    def _check_resolve_to(value: Any) -> str:
        if value not in ("floors", "rooms", "zones"):
            raise ButlrConfigurationError(f"resolve_to {value!r} is not allowed; use floors, rooms or zones")
        return str(value)

    @staticmethod
    def _require_items(items: Any, sites: Any, buildings: Any) -> None:
        if not items and not validate_ids("sites", sites) and not validate_ids("buildings", buildings):
            raise ButlrConfigurationError("select items (floor, room or zone ids) and/or sites or buildings")

    checks: Sequence[Check] = (
        Check("measurements", ("measurements",), validate_stats_measurements),
        Check("resolve_to", ("resolve_to",), _check_resolve_to),
        Check("items", ("items",), lambda items: validate_stats_items(items) if items else []),
        Check("sites", ("sites",), ids_of("sites")),
        Check("buildings", ("buildings",), ids_of("buildings")),
        Check("selection", ("items", "sites", "buildings"), _require_items, final_only=True),
        Check("exclude_days_of_week", ("exclude_days_of_week",), validate_days),
        Check("time_ranges", ("time_ranges",), validate_time_ranges),
        Check("max_items_per_request", ("max_items_per_request",), positive_int("max_items_per_request")),
        *TIME_CHECKS,
    )

    def _items_by_timezone(self, hook: ButlrHook) -> dict[str, list[str]]:
        explicit = validate_stats_items(self.items) if self.items else []
        containers = {k: validate_ids(k, getattr(self, k)) for k in CONTAINER_KINDS}
        if self.timezone is not None and not any(containers.values()):
            return {self.timezone: explicit}
        topology = hook.get_topology()
        resolved = topology.resolve(containers).get(self.resolve_to, []) if any(containers.values()) else []
        chosen = list(dict.fromkeys(explicit + resolved))
        if self.timezone is not None:
            return {self.timezone: chosen}
        groups: dict[str, list[str]] = {}
        for item in chosen:
            groups.setdefault(topology.timezone_of(item), []).append(item)
        return dict(sorted(groups.items()))

    def execute(self, context: Context) -> dict[str, dict[str, Any]]:
        run_checks(self, self.checks, final=True)
        result: dict[str, dict[str, Any]] = {}
        with new_hook(self.butlr_conn_id) as hook:
            for tz, items in self._items_by_timezone(hook).items():
                start, stop = self._bounds(context, tz)
                self.log.info(
                    "Stats for %d items in %s, [%s, %s).",
                    len(items),
                    tz,
                    format_time(start),
                    format_time(stop),
                )
                result.update(
                    hook.query_stats(
                        self.measurements,
                        items,
                        start=start,
                        stop=stop,
                        exclude_days_of_week=self.exclude_days_of_week,
                        time_ranges=self.time_ranges,
                        max_items_per_request=self.max_items_per_request,
                    )
                )
        return ensure_json(result, "the stats")

    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        """Inputs ``butlr://<host>`` ``stats/<measurement>``; the result goes to XCom (no output)."""
        from airflow_provider_butlr.lineage import build_lineage, namespace_for

        names = [f"stats/{m}" for m in validate_stats_measurements(self.measurements)]
        return build_lineage(namespace_for(self.butlr_conn_id), names)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        return self.get_openlineage_facets_on_start()


# --- ButlrGraphQLOperator ----------------------------------------------------------------------


class ButlrGraphQLOperator(BaseOperator):
    """Run a GraphQL query (``query`` and ``variables`` templated; ``.graphql`` files allowed); return ``data``.

    Any ``errors`` entry fails the task, even with partial data.
    """

    template_fields: Sequence[str] = ("butlr_conn_id", "query", "variables", "operation_name")
    template_ext: Sequence[str] = (".graphql", ".gql")
    template_fields_renderers = {"query": "graphql", "variables": "json"}
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        query: str,
        variables: dict[str, Any] | None = None,
        operation_name: str | None = None,
        butlr_conn_id: str = ButlrBaseHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.query = query
        self.variables = variables
        self.operation_name = operation_name
        self.butlr_conn_id = butlr_conn_id
        run_checks(self, self.checks, final=False)

    @staticmethod
    def _check_query(query: Any) -> None:
        if not isinstance(query, str) or not query.strip():
            raise ButlrConfigurationError(f"query must be a non-empty GraphQL document, got {query!r}")

    @staticmethod
    def _check_variables(variables: Any) -> None:
        if variables is not None and not isinstance(variables, dict):
            raise ButlrConfigurationError(f"variables must be a dict, got {type(variables).__name__}")

    checks: Sequence[Check] = (
        Check("query", ("query",), _check_query),
        Check("variables", ("variables",), _check_variables),
    )

    def execute(self, context: Context) -> Any:
        run_checks(self, self.checks, final=True)
        with new_hook(self.butlr_conn_id) as hook:
            data = hook.graphql(self.query, self.variables, self.operation_name)
        return ensure_json(data, "the GraphQL data")

    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        """Input ``butlr://<host>`` ``graphql/<operation name or first field>``; XCom only (no output)."""
        from airflow_provider_butlr.lineage import build_lineage, graphql_dataset_name, namespace_for

        name = graphql_dataset_name(self.query, self.operation_name)
        return build_lineage(namespace_for(self.butlr_conn_id), [name])

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        return self.get_openlineage_facets_on_start()


# --- ButlrDeviceHealthOperator -----------------------------------------------------------------


def threshold(name: str, value: Any) -> float | int | None:
    """A device-health threshold as a number (numeric strings from rendered templates are accepted)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    rules = {
        "max_offline_share": (
            "a share between 0 and 1 (e.g. 0.2 for 20 %)",
            float,
            lambda v: 0 <= v <= 1,
        ),
        "max_critical_batteries": ("an integer >= 0", int, lambda v: v >= 0),
        "offline_after_hours": ("a positive number of hours", float, lambda v: v > 0),
    }
    meaning, kind, valid = rules[name]
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(value)
        number = kind(float(value)) if kind is float else int(str(value).strip())
    except ValueError:
        raise ButlrConfigurationError(f"{name} must be {meaning}, got {value!r}") from None
    if not valid(number):
        raise ButlrConfigurationError(f"{name} must be {meaning}, got {value!r}")
    return number


class ButlrDeviceHealthOperator(BaseOperator):
    """Report offline sensors/hives and battery status; fail when the user's thresholds are passed.

    Placeholder test devices (``mi-rr-or``/``fa-ke`` MACs, ``fake`` serials) are excluded. Scope with
    ``sites``/``buildings``/``floors`` (default: the whole organisation). The report goes to XCom
    (return value, and key ``device_health`` even when the task fails).

    :param max_offline_share: fail when the offline share of sensors or of hives is above this (0-1).
    :param max_critical_batteries: fail when more batteries than this are past their change-by date.
    :param offline_after_hours: also count a device as offline when its last heartbeat is older.
    :param due_soon_days: a battery is ``due_soon`` within this many days of its change-by date.
    """

    template_fields: Sequence[str] = (
        "butlr_conn_id",
        "sites",
        "buildings",
        "floors",
        "max_offline_share",
        "max_critical_batteries",
        "offline_after_hours",
    )
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        sites: Sequence[str] | str | None = None,
        buildings: Sequence[str] | str | None = None,
        floors: Sequence[str] | str | None = None,
        max_offline_share: float | None = None,
        max_critical_batteries: int | None = None,
        offline_after_hours: float | None = None,
        due_soon_days: int = 30,
        butlr_conn_id: str = ButlrBaseHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sites = sites
        self.buildings = buildings
        self.floors = floors
        self.max_offline_share = max_offline_share
        self.max_critical_batteries = max_critical_batteries
        self.offline_after_hours = offline_after_hours
        self.due_soon_days = due_soon_days
        self.butlr_conn_id = butlr_conn_id
        self._apply(run_checks(self, self.checks, final=False))

    def _apply(self, checked: Mapping[str, Any]) -> None:
        """Thresholds as numbers (numeric strings from rendered templates are accepted)."""
        for name in self.THRESHOLDS:
            if name in checked:
                setattr(self, name, checked[name])

    THRESHOLDS = ("max_offline_share", "max_critical_batteries", "offline_after_hours")

    checks: Sequence[Check] = (
        *(Check(kind, (kind,), ids_of(kind)) for kind in ("sites", "buildings", "floors")),
        *(Check(name, (name,), lambda value, name=name: threshold(name, value)) for name in THRESHOLDS),
        Check("due_soon_days", ("due_soon_days",), positive_int("due_soon_days")),
    )

    def _threshold(self, name: str) -> float | int | None:
        return threshold(name, getattr(self, name))

    def _floor_scope(self, hook: ButlrHook) -> list[str] | None:
        selection = {k: validate_ids(k, getattr(self, k)) for k in ("sites", "buildings", "floors")}
        if not any(selection.values()):
            return None
        topology = hook.get_topology()
        for floor in selection.get("floors", []):  # a mistyped floor would pass the check on zero devices
            if floor not in topology.assets:
                raise ButlrConfigurationError(
                    f"floors: {floor!r} is not a floor in the topology this connection can see"
                )
        return topology.resolve(selection).get("floors", [])

    def execute(self, context: Context) -> dict[str, Any]:
        self._apply(run_checks(self, self.checks, final=True))
        with new_hook(self.butlr_conn_id) as hook:
            floors = self._floor_scope(hook)
            sensors, hives = hook.get_sensors(), hook.get_hives()
        report = device_health_report(
            sensors,
            hives,
            datetime.now(UTC),
            floor_ids=floors,
            offline_after_hours=self.offline_after_hours,
            due_soon_days=self.due_soon_days,
        )
        s, h = report["sensors"], report["hives"]
        self.log.info(
            "Sensors: %d/%d offline; hives: %d/%d offline; batteries: %s (placeholders excluded: %d sensors, %d hives).",
            s["offline"],
            s["total"],
            h["offline"],
            h["total"],
            report["battery"],
            s["placeholders_excluded"],
            h["placeholders_excluded"],
        )
        problems = self._problems(report)
        if problems:
            ti = context.get("ti") if hasattr(context, "get") else None
            if ti is not None:
                ti.xcom_push(key="device_health", value=report)
            raise ButlrDeviceHealthError("Butlr device health check failed: " + "; ".join(problems))
        return report

    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        """Inputs ``butlr://<host>`` ``graphql/sensors`` and ``graphql/hives`` (and ``graphql/topology``
        when scoped to sites, buildings or floors); the report goes to XCom."""
        from airflow_provider_butlr.lineage import build_lineage, namespace_for

        names = ["graphql/sensors", "graphql/hives"]
        if any(getattr(self, k) for k in ("sites", "buildings", "floors")):
            names.append("graphql/topology")
        return build_lineage(namespace_for(self.butlr_conn_id), names)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        return self.get_openlineage_facets_on_start()

    def _problems(self, report: Mapping[str, Any]) -> list[str]:
        problems = []
        if self.max_offline_share is not None:
            for kind in ("sensors", "hives"):
                counts = report[kind]
                share = counts["offline"] / counts["total"] if counts["total"] else 0.0  # unrounded
                if share > self.max_offline_share:
                    problems.append(
                        f"{report[kind]['offline']} of {report[kind]['total']} {kind} offline "
                        f"({share:.1%} > max_offline_share {self.max_offline_share:.1%})"
                    )
        critical = report["battery"]["critical"]
        if self.max_critical_batteries is not None and critical > self.max_critical_batteries:
            problems.append(
                f"{critical} critical batteries (> max_critical_batteries {self.max_critical_batteries})"
            )
        return problems
