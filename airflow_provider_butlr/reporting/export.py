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
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any, Protocol

from airflow_provider_butlr.exceptions import ButlrDataError, ButlrError
from airflow_provider_butlr.reporting.adaptation import Adaptation
from airflow_provider_butlr.reporting.answer import ReportingAnswer
from airflow_provider_butlr.reporting.export_options import (
    MIN_EXTRA_REQUESTS,
    ExportOptions,
    ExportStats,
    check_ids_per_task,
)
from airflow_provider_butlr.reporting.planning import ExportUnit, ReportingQuery, plan_units
from airflow_provider_butlr.reporting.rows import Row, flatten_response, row_sort_key
from airflow_provider_butlr.reporting.times import format_time
from airflow_provider_butlr.reporting.typed_rows import decode_flat_rows

log = logging.getLogger(__name__)

Fetch = Callable[[dict[str, Any]], Any]
MAX_PAGES_PER_UNIT = 10_000


class ReportingClient(Protocol):
    """What an export needs from a hook: one reporting call, a twin for another thread, and closing."""

    def fetch_reporting_answer(self, body: Mapping[str, Any]) -> ReportingAnswer: ...

    def for_worker(self) -> ReportingClient: ...

    def close(self) -> None: ...


def describe_unit(unit: ExportUnit) -> str:
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
                f"{describe_unit(unit)} (a silent truncation?); refusing to export the unit without it"
            )
        if answer.empty:
            return None if number == 1 else pages
        if pages and answer.same_data_as(pages[-1].answer):
            raise ButlrDataError(
                f"the reporting API returned page {number} identical to page {number - 1} for "
                f"{describe_unit(unit)}: it seems to ignore 'paginate'; refusing to export duplicated rows"
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
        f"more than {MAX_PAGES_PER_UNIT} pages for {describe_unit(unit)}; lower the range per request"
    )


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
        log.info("No data for %s (%s).", describe_unit(unit), unit.ids[0])
        return []
    ctx.adaptation.spend(unit, len(halves))
    ctx.stats.add(resplits=1)
    log.info(
        "Butlr returned empty data for %s: possibly its silent truncation; asking again in two halves of %s.",
        describe_unit(unit),
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
    hook: ReportingClient,
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
    hook: ReportingClient, units: list[ExportUnit], options: ExportOptions, stats: ExportStats | None
) -> Iterator[Row]:
    workers: list[ReportingClient] = []
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
