"""The streaming reporting export: units (batch x chunk) x pages, with silent-truncation re-splits.

Butlr answers an over-budget reporting query with HTTP 200 and empty ``data``. An empty first page
for a batch of several ids is therefore not believed: the batch is halved (down to single ids) and
each half asked again. Rows are yielded unit by unit in plan order, so the output is deterministic
whatever ``max_concurrency`` is, and at most ``max_concurrency + 1`` units are held in memory.
Nothing is de-duplicated and nothing is dropped.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from airflow_provider_butlr.exceptions import ButlrConfigurationError, ButlrDataError
from airflow_provider_butlr.reporting import (
    DEFAULT_PAGE_LIMIT,
    ExportUnit,
    Row,
    flatten_response,
    format_time,
    page_info,
    response_data,
    row_sort_key,
)

log = logging.getLogger(__name__)

Fetch = Callable[[dict[str, Any]], Any]
MAX_CONCURRENCY = 5  # Butlr recommends at most 5 concurrent calls
MAX_PAGES_PER_UNIT = 10_000


@dataclass
class ExportStats:
    """What an export did; safe to update from worker threads."""

    units: int = 0
    requests: int = 0
    rows: int = 0
    resplits: int = 0
    empty_units: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        return {
            "units": self.units,
            "requests": self.requests,
            "rows": self.rows,
            "resplits": self.resplits,
            "empty_units": self.empty_units,
        }


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


def validate_page_limit(page_limit: int, name: str = "page_limit") -> int:
    if not isinstance(page_limit, int) or isinstance(page_limit, bool) or page_limit < 1:
        raise ButlrConfigurationError(f"{name} must be a positive integer, got {page_limit!r}")
    return page_limit


def _describe(unit: ExportUnit) -> str:
    return (
        f"{unit.measurement}/{unit.function} {len(unit.ids)} {unit.kind} "
        f"[{format_time(unit.start)}, {format_time(unit.stop)})"
    )


def fetch_pages(fetch: Fetch, unit: ExportUnit, page_limit: int, stats: ExportStats) -> list[Row] | None:
    """Every page of one unit, or None when the first page came back empty.

    ``page_info`` is used only when it carries counts (real responses often zero it while ``data``
    holds rows); otherwise a full page means "ask for the next one".
    """
    rows: list[Row] = []
    previous: tuple[Any, ...] | None = None
    announced = 0  # pages the last page_info with counts announced (0: unknown)
    for page in range(1, MAX_PAGES_PER_UNIT + 1):
        payload = fetch(unit.body(page, page_limit))
        stats.add(requests=1)
        data = response_data(payload)
        if not data and page <= announced:
            raise ButlrDataError(
                f"the reporting API returned an empty page {page} of the {announced} it announced for "
                f"{_describe(unit)} (a silent truncation?); refusing to export the unit without it"
            )
        if not data:
            return None if page == 1 else rows
        page_rows = list(
            flatten_response(
                payload, measurement=unit.measurement, function=unit.function, timezone=unit.timezone
            )
        )
        signature = (
            len(page_rows),
            tuple(sorted(page_rows[0].items())),
            tuple(sorted(page_rows[-1].items())),
        )
        if signature == previous:
            raise ButlrDataError(
                f"the reporting API returned page {page} identical to page {page - 1} for {_describe(unit)}: "
                "it seems to ignore 'paginate'; refusing to export duplicated rows"
            )
        previous = signature
        rows.extend(page_rows)
        info = page_info(payload)
        if info.get("total_item_count", 0) > 0 and info.get("total_pages", 0) > 0:
            announced = info["total_pages"]
            more = page < announced
        else:
            more = len(page_rows) >= page_limit
        if not more:
            return rows
    raise ButlrDataError(
        f"more than {MAX_PAGES_PER_UNIT} pages for {_describe(unit)}; lower the range per request"
    )


def fetch_unit(fetch: Fetch, unit: ExportUnit, page_limit: int, stats: ExportStats) -> list[Row]:
    """All rows of one unit, sorted; an empty answer for several ids is re-asked in halves."""
    rows = fetch_pages(fetch, unit, page_limit, stats)
    if rows is not None:
        return sorted(rows, key=row_sort_key)
    if len(unit.ids) > 1:
        half = len(unit.ids) // 2
        stats.add(resplits=1)
        log.info(
            "Butlr returned empty data for %s: possibly its silent truncation; asking again as %d + %d ids.",
            _describe(unit),
            half,
            len(unit.ids) - half,
        )
        left = fetch_unit(fetch, unit.with_ids(unit.ids[:half]), page_limit, stats)
        right = fetch_unit(fetch, unit.with_ids(unit.ids[half:]), page_limit, stats)
        return sorted(left + right, key=row_sort_key)
    stats.add(empty_units=1)
    log.info("No data for %s (%s).", _describe(unit), unit.ids[0])
    return []


def iter_export_rows(
    units: Iterable[ExportUnit],
    fetch_factory: Callable[[], Fetch],
    *,
    max_concurrency: int = 1,
    page_limit: int = DEFAULT_PAGE_LIMIT,
    stats: ExportStats | None = None,
) -> Iterator[Row]:
    """Yield the rows of every unit in plan order.

    ``fetch_factory`` is called once per worker thread (each thread gets its own HTTP session).
    With ``max_concurrency > 1`` a bounded window of futures is kept in flight and consumed in
    order; closing the generator early cancels the units not started yet.
    """
    validate_concurrency(max_concurrency)
    validate_page_limit(page_limit)
    stats = stats if stats is not None else ExportStats()
    if max_concurrency == 1:
        fetch = fetch_factory()
        for unit in units:
            rows = fetch_unit(fetch, unit, page_limit, stats)
            stats.add(units=1, rows=len(rows))
            yield from rows
        return

    local = threading.local()

    def work(unit: ExportUnit) -> list[Row]:
        fetch = getattr(local, "fetch", None)
        if fetch is None:
            fetch = local.fetch = fetch_factory()
        return fetch_unit(fetch, unit, page_limit, stats)

    pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="butlr-export")
    try:
        todo = iter(units)
        in_flight: deque[Future[list[Row]]] = deque(
            pool.submit(work, u) for u in islice(todo, max_concurrency)
        )
        while in_flight:
            rows = in_flight.popleft().result()
            following = next(todo, None)
            if following is not None:
                in_flight.append(pool.submit(work, following))
            stats.add(units=1, rows=len(rows))
            yield from rows
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
