"""The streaming reporting export: ``run_export(hook, query, options)``.

A :class:`ReportingQuery` (parsed once) is planned into units (measurement x function x time chunk x
id batch) sized by what the server can answer: ids by Butlr's processing budget, ranges by a
per-request row budget. Each unit is one request without ``paginate``; pages are asked only when the
answer's ``page_info`` says there are more (or when ``page_limit`` forces paging).

Butlr answers an over-budget query with HTTP 200 and empty ``data``. Such an answer is not believed:
the id batch is halved, and a single id over a long range is asked again in two halves of time. A
size that then returns data is remembered for the rest of the export (later units are cut to it
before they are sent). The extra requests are bounded (``max_extra_requests``): past the bound the
export fails with a :class:`ButlrDataError` naming the ids that never returned data.

Rows are yielded unit by unit in plan order, so the output is deterministic whatever
``max_concurrency`` is, and at most ``max_concurrency + 1`` units are held in memory. Nothing is
de-duplicated and nothing is dropped.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import islice
from typing import TYPE_CHECKING, Any

from airflow_provider_butlr.exceptions import ButlrConfigurationError, ButlrDataError, ButlrError
from airflow_provider_butlr.reporting import (
    DEFAULT_MAX_ROWS_PER_REQUEST,
    BatchLimits,
    ExportUnit,
    ReportingQuery,
    Row,
    check_positive_int,
    flatten_response,
    format_time,
    plan_units,
    row_sort_key,
    split_ids,
    split_range,
    window_floor,
)
from airflow_provider_butlr.reporting_answer import ReportingAnswer
from airflow_provider_butlr.typed_rows import decode_flat_rows

if TYPE_CHECKING:
    from airflow_provider_butlr.hooks.butlr import ButlrHook

log = logging.getLogger(__name__)

Fetch = Callable[[dict[str, Any]], Any]
MAX_CONCURRENCY = 5  # Butlr recommends at most 5 concurrent calls
MAX_PAGES_PER_UNIT = 10_000
DEFAULT_MAX_IDS_PER_TASK = 2000
MIN_EXTRA_REQUESTS = 32  # the re-split allowance of a small export (one batch of 10 down to single ids: 18)


@dataclass
class ExportStats:
    """What an export did; safe to update from worker threads."""

    units: int = 0
    requests: int = 0
    rows: int = 0
    resplits: int = 0
    empty_units: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def stop(self) -> None:
        """Ask the export's workers to send no further request (e.g. from ``on_kill``)."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()


def validate_concurrency(max_concurrency: int, name: str = "max_concurrency") -> int:
    if (
        not isinstance(max_concurrency, int)
        or isinstance(max_concurrency, bool)
        or not (1 <= max_concurrency <= MAX_CONCURRENCY)
    ):
        raise ButlrConfigurationError(
            f"{name} must be an integer from 1 to {MAX_CONCURRENCY} (Butlr recommends at most "
            f"{MAX_CONCURRENCY} concurrent calls), got {max_concurrency!r}"
        )
    return max_concurrency


@dataclass(frozen=True)
class ExportOptions:
    """Every knob of an export, validated once when built.

    :param max_concurrency: requests in flight (1-5, Butlr's recommendation).
    :param limits: ids per request by range length (Butlr's processing budget).
    :param max_rows_per_request: estimated rows one answer may hold; longer ranges are cut.
    :param max_windows_per_request: optional cap on windows per request (None: the row budget decides).
    :param page_limit: None asks without ``paginate`` (pages only when the server says there are more);
        a number forces paging with that many rows per page.
    :param max_ids_per_task: ids one export may carry (above it: map the task over id chunks).
    :param max_extra_requests: requests the silent-empty re-splits may add (None: as many as the
        plan has units, at least 32).
    """

    max_concurrency: int = 1
    limits: BatchLimits = field(default_factory=BatchLimits)
    max_rows_per_request: int = DEFAULT_MAX_ROWS_PER_REQUEST
    max_windows_per_request: int | None = None
    page_limit: int | None = None
    max_ids_per_task: int = DEFAULT_MAX_IDS_PER_TASK
    max_extra_requests: int | None = None

    def __post_init__(self) -> None:
        validate_concurrency(self.max_concurrency)
        if not isinstance(self.limits, BatchLimits):
            raise ButlrConfigurationError(f"limits must be a BatchLimits, got {type(self.limits).__name__}")
        check_positive_int(self.max_rows_per_request, "max_rows_per_request")
        check_positive_int(self.max_windows_per_request, "max_windows_per_request", allow_none=True)
        check_positive_int(self.page_limit, "page_limit", allow_none=True)
        check_positive_int(self.max_ids_per_task, "max_ids_per_task")
        if self.max_extra_requests is not None and (
            not isinstance(self.max_extra_requests, int)
            or isinstance(self.max_extra_requests, bool)
            or self.max_extra_requests < 0
        ):
            raise ButlrConfigurationError(
                f"max_extra_requests must be an integer >= 0 or None, got {self.max_extra_requests!r}"
            )

    @classmethod
    def from_args(
        cls,
        *,
        max_ids_per_request: int | None = None,
        max_ids_long_range: int | None = None,
        **options: Any,
    ) -> ExportOptions:
        """The options from the operator's flat arguments (``max_ids_*`` become :class:`BatchLimits`)."""
        return cls(limits=BatchLimits.from_args(max_ids_per_request, max_ids_long_range), **options)


def _describe(unit: ExportUnit) -> str:
    return (
        f"{unit.measurement}/{unit.function} {len(unit.ids)} {unit.kind} "
        f"[{format_time(unit.start)}, {format_time(unit.stop)})"
    )


@dataclass
class Page:
    """One answer of a unit; its rows are decoded and flattened on first use (by the consumer)."""

    unit: ExportUnit
    answer: ReportingAnswer
    _rows: list[Row] | None = None

    def rows(self) -> list[Row]:
        if self._rows is None:
            unit, raw = self.unit, self.answer.raw_data
            rows = (
                None
                if raw is None
                else decode_flat_rows(raw, unit.measurement, unit.function, unit.query.zone)
            )
            if rows is None:  # nested, unusual or already decoded: the generic reader
                rows = list(
                    flatten_response(
                        {"data": self.answer.data()},
                        measurement=unit.measurement,
                        function=unit.function,
                        timezone=unit.query.zone,
                    )
                )
            self._rows = rows
        return self._rows

    def take_rows(self) -> list[Row]:
        """The rows, no longer kept by the page (the caller owns them)."""
        rows, self._rows = self.rows(), None
        return rows

    def count(self) -> int:
        """Rows in this page (a flat list is counted without flattening)."""
        data = self.answer.data()
        return len(data) if isinstance(data, list) else len(self.rows())


def unit_rows(pages: Iterable[Page]) -> list[Row]:
    """The rows of a unit's pages in the export's deterministic order (pages are released as read)."""
    rows: list[Row] = []
    for page in pages:
        rows.extend(page.take_rows())
    rows.sort(key=row_sort_key)
    return rows


def fetch_pages(
    fetch: Fetch, unit: ExportUnit, page_limit: int | None, stats: ExportStats
) -> list[Page] | None:
    """Every answer of one unit, or None when the (first) answer came back empty.

    Without ``page_limit`` the unit is asked once without ``paginate``; a ``page_info`` announcing
    more pages (a server that pages by default) is followed with its own page size. With
    ``page_limit`` every page is asked; ``page_info`` is used only when it carries counts (real
    answers often zero it while ``data`` holds rows), otherwise a full page means "ask for the next".
    Rows are not decoded here unless paging needs their count: the caller's thread does that.
    """
    pages: list[Page] = []
    announced = 0  # pages the last page_info with counts announced (0: unknown)
    limit = page_limit
    for number in range(1, MAX_PAGES_PER_UNIT + 1):
        if stats.stopped:
            raise ButlrError(f"the export was stopped after {stats.requests} request(s)")
        answer = ReportingAnswer.from_payload(
            fetch(unit.body() if limit is None else unit.body(number, limit))
        )
        stats.add(requests=1)
        if answer.empty and number <= announced:
            raise ButlrDataError(
                f"the reporting API returned an empty page {number} of the {announced} it announced for "
                f"{_describe(unit)} (a silent truncation?); refusing to export the unit without it"
            )
        if answer.empty:
            return None if number == 1 else pages
        if pages and answer.same_data_as(pages[-1].answer):
            raise ButlrDataError(
                f"the reporting API returned page {number} identical to page {number - 1} for "
                f"{_describe(unit)}: it seems to ignore 'paginate'; refusing to export duplicated rows"
            )
        page = Page(unit, answer)
        pages.append(page)
        info = answer.page_info
        if info.get("total_item_count", 0) > 0 and info.get("total_pages", 0) > 0:
            announced = info["total_pages"]
            more = number < announced
        else:
            more = limit is not None and page.count() >= limit
        if not more:
            return pages
        if limit is None:  # the server paged on its own: follow with its page size
            limit = info.get("limit") or info.get("page_item_count") or page.count()
    raise ButlrDataError(
        f"more than {MAX_PAGES_PER_UNIT} pages for {_describe(unit)}; lower the range per request"
    )


class Adaptation:
    """What the server's answers taught this export, shared by its workers.

    An empty answer is believed only for one id over a range no longer than one that returned data
    (or than Butlr's long range). Otherwise the unit is asked again in halves: of its ids, or, for
    one id, of its range. A half that returns data confirms the smaller size, which later units are
    cut to before they are sent. Every re-asked half spends one of ``max_extra`` requests.
    """

    def __init__(self, max_extra: int, long_range: timedelta) -> None:
        self.max_ids: int | None = None
        self.max_span: timedelta | None = None
        self.proven_span = timedelta(0)
        self.extra_left = max_extra
        self.max_extra = max_extra
        self.long_range = long_range
        self.never_answered: list[str] = []
        self._lock = threading.Lock()

    def fit(self, unit: ExportUnit) -> list[ExportUnit]:
        """``unit`` cut to the sizes learned so far (itself when it fits)."""
        with self._lock:
            max_ids, max_span = self.max_ids, self.max_span
        chunks = [(unit.start, unit.stop)]
        if max_span is not None and unit.span > max_span:
            q = unit.query
            chunks = split_range(unit.start, unit.stop, q.every.length, q.zone, max_span)
        batches = split_ids(unit.ids, max_ids) if max_ids is not None else [unit.ids]
        if len(chunks) == 1 and len(batches) == 1:
            return [unit]
        return [unit.with_range(a, b).with_ids(ids) for a, b in chunks for ids in batches]

    def answered(self, unit: ExportUnit) -> None:
        with self._lock:
            self.proven_span = max(self.proven_span, unit.span)

    def learn(self, unit: ExportUnit, by_ids: bool) -> None:
        with self._lock:
            if by_ids:
                self.max_ids = min(self.max_ids or len(unit.ids), len(unit.ids))
            else:
                self.max_span = min(self.max_span or unit.span, unit.span)

    def time_halves(self, unit: ExportUnit) -> list[ExportUnit] | None:
        """Two halves of a single-id unit's range at a window boundary, when worth asking."""
        with self._lock:
            believable = unit.span <= max(self.proven_span, self.long_range)
        if believable or unit.windows < 2:
            return None
        q = unit.query
        middle = window_floor(unit.start + unit.span / 2, q.every.length, q.zone)
        if middle is None or not unit.start < middle < unit.stop:
            return None
        return [unit.with_range(unit.start, middle), unit.with_range(middle, unit.stop)]

    def spend(self, unit: ExportUnit, pieces: int) -> None:
        with self._lock:
            if self.extra_left >= pieces:
                self.extra_left -= pieces
                return
            ids = list(dict.fromkeys([*self.never_answered, *unit.ids]))
        shown = ", ".join(ids[:20]) + (f" (+{len(ids) - 20} more)" if len(ids) > 20 else "")
        raise ButlrDataError(
            f"the reporting API kept answering empty data: {self.max_extra} extra requests spent on "
            f"re-asking smaller parts; {len(ids)} id(s) never returned data ({shown}). Check these ids "
            "(unknown or without sensors?), lower max_ids_per_request, or export fewer ids per task"
        )

    def empty(self, unit: ExportUnit) -> None:
        with self._lock:
            self.never_answered.extend(unit.ids)


@dataclass
class _Context:
    fetch: Fetch
    options: ExportOptions
    adaptation: Adaptation
    stats: ExportStats


def fetch_unit(ctx: _Context, unit: ExportUnit) -> list[Page]:
    """Every answer of one unit (cut to the learned sizes first); rows are read with :func:`unit_rows`."""
    pages: list[Page] = []
    for piece in ctx.adaptation.fit(unit):
        pages.extend(_fetch_piece(ctx, piece))
    return pages


def _fetch_piece(ctx: _Context, unit: ExportUnit) -> list[Page]:
    pages = fetch_pages(ctx.fetch, unit, ctx.options.page_limit, ctx.stats)
    if pages is not None:
        ctx.adaptation.answered(unit)
        return pages
    if len(unit.ids) > 1:
        half = len(unit.ids) // 2
        halves, by_ids = [unit.with_ids(unit.ids[:half]), unit.with_ids(unit.ids[half:])], True
    else:
        halves, by_ids = ctx.adaptation.time_halves(unit) or [], False
    if not halves:
        ctx.stats.add(empty_units=1)
        ctx.adaptation.empty(unit)
        log.info("No data for %s (%s).", _describe(unit), unit.ids[0])
        return []
    ctx.adaptation.spend(unit, len(halves))
    ctx.stats.add(resplits=1)
    log.info(
        "Butlr returned empty data for %s: possibly its silent truncation; asking again in two halves of %s.",
        _describe(unit),
        "its ids" if by_ids else "its range",
    )
    pages = []
    for part in halves:
        part_pages = _fetch_piece(ctx, part)
        if part_pages:
            ctx.adaptation.learn(part, by_ids)
        pages.extend(part_pages)
    return pages


def iter_export_rows(
    units: Iterable[ExportUnit],
    fetch_factory: Callable[[], Fetch],
    options: ExportOptions,
    stats: ExportStats | None = None,
    adaptation: Adaptation | None = None,
) -> Iterator[Row]:
    """Yield the rows of every unit in plan order.

    ``fetch_factory`` is called once per worker thread (each thread gets its own HTTP session).
    A window of ``max_concurrency`` units is kept in flight (never more requests at once) and
    consumed in order; closing the generator early cancels the units not started yet.
    """
    units = list(units)
    stats = stats if stats is not None else ExportStats()
    if adaptation is None:
        extra = options.max_extra_requests
        adaptation = Adaptation(
            max(len(units), MIN_EXTRA_REQUESTS) if extra is None else extra, options.limits.long_range
        )
    # One worker per allowed request in flight; the caller decodes and writes the rows of one unit
    # while the workers fetch the next ones, so even one request at a time overlaps the server's
    # time with the client's.
    local = threading.local()

    def work(unit: ExportUnit) -> list[Page]:
        ctx = getattr(local, "ctx", None)
        if ctx is None:
            ctx = local.ctx = _Context(fetch_factory(), options, adaptation, stats)
        return fetch_unit(ctx, unit)

    pool = ThreadPoolExecutor(max_workers=options.max_concurrency, thread_name_prefix="butlr-export")
    try:
        todo = iter(units)
        in_flight: deque[Future[list[Page]]] = deque(
            pool.submit(work, u) for u in islice(todo, options.max_concurrency)
        )
        while in_flight:
            pages = in_flight.popleft().result()
            if stats.stopped:  # never a silently shortened export
                raise ButlrError(f"the export was stopped after {stats.requests} request(s)")
            following = next(todo, None)
            if following is not None:
                in_flight.append(pool.submit(work, following))
            # Decoded, flattened and sorted here, not in the worker: the next request is already out.
            rows = unit_rows(pages)
            del pages
            stats.add(units=1, rows=len(rows))
            yield from rows
            del rows
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def check_ids_per_task(count: int, options: ExportOptions) -> None:
    """Refuse more ids than one task should carry, pointing to dynamic task mapping."""
    if count > options.max_ids_per_task:
        raise ButlrConfigurationError(
            f"{count} asset ids in one export is more than max_ids_per_task="
            f"{options.max_ids_per_task}; split the ids across mapped tasks (dynamic task mapping, e.g. "
            "ButlrReportingOperator.partial(...).expand(rooms=[chunk1, chunk2, ...])) or raise the limit"
        )


def plan_export(query: ReportingQuery, options: ExportOptions) -> list[ExportUnit]:
    """The units of ``query`` under ``options``; refuses more ids than one task should carry."""
    check_ids_per_task(query.asset_count, options)
    return plan_units(
        query,
        options.limits,
        max_rows_per_request=options.max_rows_per_request,
        max_windows_per_request=options.max_windows_per_request,
    )


def run_export(
    hook: ButlrHook,
    query: ReportingQuery,
    options: ExportOptions | None = None,
    stats: ExportStats | None = None,
) -> Iterator[Row]:
    """The rows of ``query``, streamed in a deterministic order (see the module docstring).

    Planned (and refused when too large) before the first request. Worker threads use hooks from
    ``hook.for_worker()`` (own session, same connection and token); they are closed at the end.
    """
    options = options or ExportOptions()
    units = plan_export(query, options)
    return _run(hook, units, options, stats)


def _run(
    hook: ButlrHook, units: list[ExportUnit], options: ExportOptions, stats: ExportStats | None
) -> Iterator[Row]:
    workers: list[ButlrHook] = []
    lock = threading.Lock()

    def fetch_factory() -> Fetch:
        if options.max_concurrency == 1:
            return hook.fetch_reporting_answer
        worker = hook.for_worker()
        with lock:
            workers.append(worker)
        return worker.fetch_reporting_answer

    try:
        yield from iter_export_rows(units, fetch_factory, options, stats)
    finally:
        for worker in workers:
            worker.close()
