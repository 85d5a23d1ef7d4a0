"""ButlrReportingOperator: export reporting time series as flat rows, to a file or to XCom."""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping, Sequence
from datetime import date, datetime
from itertools import islice
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_butlr.assets import attach_to_outlets, export_event_extra
from airflow_provider_butlr.exceptions import ButlrConfigurationError, ButlrDataError, ButlrError
from airflow_provider_butlr.hooks.base import ButlrBaseHook
from airflow_provider_butlr.operators.common import (
    CONTAINER_KINDS,
    DEFAULT_MAX_XCOM_ROWS,
    SELECTION_KINDS,
    new_hook,
    require_assets,
)
from airflow_provider_butlr.reporting.arguments import Check, ids_of, is_literal, positive_int, run_checks
from airflow_provider_butlr.reporting.catalogue import (
    CALIBRATED_MEASUREMENTS,
    MEASUREMENTS,
    counts_whole_numbers,
)
from airflow_provider_butlr.reporting.export import run_export
from airflow_provider_butlr.reporting.export_options import (
    DEFAULT_MAX_IDS_PER_TASK,
    ExportOptions,
    ExportStats,
    check_ids_per_task,
)
from airflow_provider_butlr.reporting.output.files import (
    OutputSpec,
    check_writable,
    is_uri,
    output_spec_for,
    require_output,
    write_rows,
)
from airflow_provider_butlr.reporting.planning import ReportingQuery, measurement_filter_kind
from airflow_provider_butlr.reporting.rows import Row
from airflow_provider_butlr.reporting.times import format_time
from airflow_provider_butlr.reporting.validation import (
    Every,
    normalise_calibrated,
    validate_functions,
    validate_ids,
    validate_measurements,
)
from airflow_provider_butlr.reporting.windows import TIME_CHECKS, exported_day, resolve_window

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

    from airflow_provider_butlr.hooks.butlr import ButlrHook


class ButlrReportingOperator(BaseOperator):
    """Export reporting time series as flat rows: to a file (CSV, JSON Lines, Parquet) or to XCom when small.

    Select assets with ``floors``/``rooms``/``zones``/``tags`` ids, or ``sites``/``buildings``
    (resolved to their floors, rooms and zones through the topology). Each measurement is queried for
    the asset kind it is defined on (``room_occupancy`` -> rooms, ``floor_occupancy`` -> floors,
    ``traffic`` -> floors, rows per sensor and ``field`` in/out).

    Time: ``start``/``stop`` (default: the run's data interval), or ``local_day`` (True: the run's
    day, see :func:`~airflow_provider_butlr.reporting.windows.run_day`; or ``"YYYY-MM-DD"``) with ``days`` local days ending that day, computed
    in each site's own timezone (DST-correct) unless ``timezone`` forces one: the window vocabulary
    of :mod:`airflow_provider_butlr.reporting.windows`, shared with the sensors.

    The export asks for as many ids per request as Butlr's budget allows (``max_ids_per_request``,
    default 30; ``max_ids_long_range`` for ranges of 24 h or more, default 10) and the whole range
    unless an answer would exceed 50,000 rows; it pages only when the server says there is more,
    re-asks an empty answer in smaller parts (Butlr's silent truncation, bounded), and streams rows
    in a deterministic order (see ``airflow_provider_butlr.export``).

    Output: ``output_format`` ``csv``, ``jsonl`` or ``parquet`` (the ``parquet`` extra), else the
    ``output_path`` suffix; ``output_compression`` ``gzip`` or ``zstd`` (the ``zstd`` extra) for CSV
    and JSON Lines, else a ``.gz``/``.zst`` suffix; for Parquet the codec (``zstd`` by default). The
    extra a literal format needs is checked when the DAG is parsed; the target's folder is checked for
    writing before the first request. ``csv_escape_formulas`` (default True) neutralises CSV text cells
    that a spreadsheet would run as formulas. Every row has ``local_time`` (``time`` in the window
    timezone).

    Returns ``{"path", "format", "compression", "rows", "assets", "start", "stop", "ranges", "requests", "resplits"}``
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
        "output_compression",
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
        output_compression: str | None = None,
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
        self.output_compression = output_compression
        self.output_conn_id = output_conn_id
        self.csv_escape_formulas = csv_escape_formulas
        self.max_xcom_rows = max_xcom_rows
        self.butlr_conn_id = butlr_conn_id
        self._kill_requested = False
        run_checks(self, self.checks, final=False)
        self._require_output_extra_now()

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
    def _check_output(path: Any, output_format: Any, compression: Any) -> OutputSpec | None:
        if path is not None and (not isinstance(path, str) or not path.strip()):
            raise ButlrConfigurationError(f"output_path must be a non-empty path or URI, got {path!r}")
        if path is None and output_format is None and compression is None:
            return None
        return output_spec_for(path or "", output_format, compression)

    def _require_output_extra_now(self) -> None:
        """At parse time: the extra of an output whose format (and compression) is already known, from
        literal arguments or the literal suffix of a templated path (``.../{{ ds }}.parquet``)."""
        if not (is_literal(self.output_format) and is_literal(self.output_compression)):
            return
        path = self.output_path
        if isinstance(path, str) and not is_literal(path):
            path = "rendered" + path.rsplit("}}", 1)[-1].rsplit("%}", 1)[-1]  # the literal tail: ".parquet"
        if not isinstance(path, str) or (self.output_format is None and "." not in path):
            return
        try:
            spec = output_spec_for(path, self.output_format, self.output_compression)
        except ButlrConfigurationError:
            return  # a suffix the rendered path may still have: checked after rendering
        try:
            require_output(spec)
        except ButlrConfigurationError as err:
            raise ButlrConfigurationError(f"{self.task_id}: {err}") from err

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
        Check("output", ("output_path", "output_format", "output_compression"), _check_output),
        Check("csv_escape_formulas", ("csv_escape_formulas",), _check_flag),
        *(
            Check(kind, (kind,), ids_of(kind))
            for kind in ("sites", "buildings", "floors", "rooms", "zones", "tags")
        ),
        Check("assets", SELECTION_KINDS, require_assets, final_only=True),
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
            start, stop = self._window(context, tz)
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

    def _window(self, context: Context, tz: str) -> tuple[datetime, datetime]:
        return resolve_window(
            context, tz, start=self.start, stop=self.stop, local_day=self.local_day, days=self.days
        )

    def execute(self, context: Context) -> Any:
        self._kill_requested = False  # a retry in the same process starts afresh after an on_kill
        checked = run_checks(self, self.checks, final=True)
        spec: OutputSpec | None = checked["output"]
        if spec is not None:
            require_output(spec)  # e.g. pyarrow for Parquet, before any request
        if self.output_path is not None:
            try:
                check_writable(self._output_target())  # names output_path, before any request
            except ButlrConfigurationError as err:
                raise ButlrConfigurationError(f"{self.task_id}: {err}") from err
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
                    self._output_target(),
                    self.output_format,
                    compression=self.output_compression,
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
            "format": spec.format if spec else None,
            "compression": spec.compression if spec else None,
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
        self.log.info("%s", export_log_line(summary, queries))
        self._record_export(context, summary)
        return summary

    # --- assets and OpenLineage (airflow_provider_butlr.assets / .lineage) ----------------------

    def _output_target(self) -> Any:
        """``output_path``: a local path as it is, a URI as Airflow's ``ObjectStoragePath`` (with
        ``output_conn_id`` for its credentials)."""
        path = str(self.output_path)
        if not is_uri(path):
            return path
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        return ObjectStoragePath(path, conn_id=self.output_conn_id)

    def _record_export(self, context: Context, summary: dict[str, Any]) -> None:
        """Keep the summary for OpenLineage; attach the export's metadata to its ``Asset`` outlets."""
        self._export_summary = summary
        extra = export_event_extra(
            summary,
            measurements=validate_measurements(self.measurements),
            selection=self._selection(),
            day=exported_day(context, self.local_day),
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


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def export_log_line(summary: Mapping[str, Any], queries: Sequence[ReportingQuery]) -> str:
    """``Exported 192 rows for 1 asset (1 floor) to ... (1 request).``, plus what a traffic row is."""
    kinds: dict[str, int] = {}
    for query in queries:
        for kind, ids in query.assets.items():
            kinds[kind] = kinds.get(kind, 0) + len(ids)
    held = ", ".join(_count(n, kind.rstrip("s")) for kind, n in kinds.items() if n)
    line = (
        f"Exported {_count(summary['rows'], 'row')} for {_count(summary['assets'], 'asset')} ({held}) "
        f"to {summary['path']} ({_count(summary['requests'], 'request')})."
    )
    if any("traffic" in query.measurements for query in queries):
        line += (
            " traffic rows are per sensor (sensor_id) and field (in/out), not per floor: sum value by "
            "floor_id, time and field for a floor's entries and exits (docs/operators.md, 'Floor traffic')."
        )
    return line
