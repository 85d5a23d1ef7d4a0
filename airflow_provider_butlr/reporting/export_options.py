"""The knobs of an export, validated once, and what it did (its statistics)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.reporting.planning import DEFAULT_MAX_ROWS_PER_REQUEST, BatchLimits
from airflow_provider_butlr.reporting.validation import check_positive_int

MAX_CONCURRENCY = 5  # Butlr recommends at most 5 concurrent calls


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


def check_ids_per_task(count: int, options: ExportOptions) -> None:
    """Refuse more ids than one task should carry, pointing to dynamic task mapping."""
    if count > options.max_ids_per_task:
        raise ButlrConfigurationError(
            f"{count} asset ids in one export is more than max_ids_per_task="
            f"{options.max_ids_per_task}; split the ids across mapped tasks (dynamic task mapping, e.g. "
            "ButlrReportingOperator.partial(...).expand(rooms=[chunk1, chunk2, ...])) or raise the limit"
        )
