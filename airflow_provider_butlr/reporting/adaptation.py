"""Butlr's silent truncation: an over-budget query answers HTTP 200 with empty ``data``.

Such an answer is not believed: the unit is asked again in halves (of its ids, or for one id of its
range), a size that then answers is remembered for the rest of the export, and the extra requests
are bounded (then a :class:`ButlrDataError` names the ids that never returned data).
"""

from __future__ import annotations

import threading
from datetime import timedelta

from airflow_provider_butlr.exceptions import ButlrDataError
from airflow_provider_butlr.reporting.planning import ExportUnit, split_ids, split_range, window_floor


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
