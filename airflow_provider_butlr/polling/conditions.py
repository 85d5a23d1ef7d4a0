"""Declarative conditions on poll answers: plain JSON, evaluated the same way by sensor and trigger.

A condition is a dataclass of JSON primitives (``to_dict`` / :func:`condition_from_dict`), so a
sensor can hand it to the deferrable trigger; everything here is pure.
"""

from __future__ import annotations

import math
import re
import statistics
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.polling.answers import (
    ASSET_KEYS,
    COMPARATORS,
    MAX_LISTED,
    QUANTIFIERS,
    Verdict,
    is_number,
    iter_rows,
    row_time,
)
from airflow_provider_butlr.reporting.times import format_instant, parse_instant


def _scoped(responses: Sequence[Any], indexes: list[int] | None) -> list[Any]:
    """The responses a condition reads: all of them, or those at ``indexes`` (plan order)."""
    if indexes is None:
        return list(responses)
    return [responses[i] for i in indexes if 0 <= i < len(responses)]


def _check_scope(indexes: Any, where: str) -> None:
    if indexes is not None and (
        not isinstance(indexes, list) or not all(isinstance(i, int) and i >= 0 for i in indexes)
    ):
        raise ButlrConfigurationError(f"{where}.requests must be a list of request indexes (>= 0) or null")


class Condition(ABC):
    """One declarative check; subclasses are dataclasses whose fields are JSON primitives."""

    kind: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, **asdict(self)}  # type: ignore[call-overload]

    def gate(self, now: float) -> Verdict | None:
        """A "not yet" that needs no request (e.g. a grace period still running); None = go ahead."""
        return None

    @abstractmethod
    def evaluate(self, responses: Sequence[Any], now: float) -> Verdict:
        """Judge the responses of one poll (one per request of the plan, in order)."""

    @abstractmethod
    def validate(self, where: str) -> None:
        """Raise ButlrConfigurationError naming ``where`` (e.g. ``conditions[0]``) and the field."""


def _check_op(op: Any, where: str) -> None:
    if op not in COMPARATORS:
        raise ButlrConfigurationError(f"{where}.op {op!r} is not one of {', '.join(COMPARATORS)}")


def _check_asset_key(key: Any, where: str) -> None:
    if key not in ASSET_KEYS:
        raise ButlrConfigurationError(f"{where}.asset_key {key!r} is not one of {', '.join(ASSET_KEYS)}")


def _check_ids(ids: Any, where: str) -> None:
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
        raise ButlrConfigurationError(f"{where}.asset_ids must be a non-empty list of Butlr ids, got {ids!r}")


def _check_fraction(value: Any, where: str, name: str) -> None:
    if value is not None and (not is_number(value) or not 0 <= value <= 1):
        raise ButlrConfigurationError(f"{where}.{name} {value!r} must be a number between 0 and 1, or null")


@dataclass
class ValueAt(Condition):
    """The value at ``path`` (dots; list indexes; ``*`` for every item) compares to ``value``.

    ``path`` ``data.*.value`` with ``quantifier`` ``all`` means "every row's value"; a missing path
    (or no match for ``*``) is "not met". ``request`` picks the response (plan order, from 0).
    """

    kind: ClassVar[str] = "value_at"
    path: str
    op: str
    value: Any
    quantifier: str = "all"
    request: int = 0

    def validate(self, where: str) -> None:
        _check_op(self.op, where)
        if not isinstance(self.path, str) or not self.path.strip():
            raise ButlrConfigurationError(f"{where}.path must be a dotted path such as data.0.value")
        if self.quantifier not in QUANTIFIERS:
            raise ButlrConfigurationError(
                f"{where}.quantifier {self.quantifier!r} is not one of {', '.join(QUANTIFIERS)}"
            )
        if not isinstance(self.request, int) or self.request < 0:
            raise ButlrConfigurationError(f"{where}.request {self.request!r} must be an index >= 0")

    def evaluate(self, responses: Sequence[Any], now: float) -> Verdict:
        if self.request >= len(responses):
            return Verdict(False, f"no response number {self.request} to read {self.path} from")
        found = _select(responses[self.request], self.path.split("."))
        if not found:
            return Verdict(False, f"{self.path} is absent from the response", {"path": self.path})
        compare = COMPARATORS[self.op]
        results = []
        for item in found:
            try:
                results.append(bool(compare(item, self.value)))
            except TypeError:
                results.append(False)
        met = all(results) if self.quantifier == "all" else any(results)
        shown = found[0] if len(found) == 1 else f"{sum(results)} of {len(found)} values"
        return Verdict(
            met,
            f"{self.path} {'satisfies' if met else 'does not satisfy'} {self.op} {self.value!r} ({shown})",
            {"path": self.path, "matched": sum(results), "values": len(found)},
        )


def _select(node: Any, parts: list[str]) -> list[Any]:
    """The values at a dotted path (``*``: every item), in document order; one level per part, no
    recursion (a path is as long as its author wrote it)."""
    found = [node]
    for head in parts:
        following: list[Any] = []
        for item in found:
            if head == "*":
                following.extend(
                    item.values() if isinstance(item, Mapping) else item if isinstance(item, list) else []
                )
            elif isinstance(item, Mapping) and head in item:
                following.append(item[head])
            elif (
                isinstance(item, list)
                and re.fullmatch(r"-?\d+", head)
                and -len(item) <= int(head) < len(item)
            ):
                following.append(item[int(head)])
        found = following
    return found


def _quality_problems(
    rows: list[dict[str, Any]], max_null: float | None, asset_key: str | None
) -> list[dict[str, Any]]:
    """Rows flagged ``data_incomplete`` (or with ``null_percentage`` above ``max_null``)."""
    problems = []
    for row in rows:
        null_pct = row.get("null_percentage")
        too_many_nulls = max_null is not None and is_number(null_pct) and null_pct > max_null
        if row.get("data_incomplete") is True or too_many_nulls:
            problems.append(
                {
                    "asset_id": row.get(asset_key) if asset_key else None,
                    "time": row.get("time"),
                    "data_incomplete": row.get("data_incomplete"),
                    "null_percentage": null_pct,
                }
            )
    return problems


@dataclass
class RowsComplete(Condition):
    """Every row has ``data_incomplete`` false (and ``null_percentage`` <= the limit, when set)."""

    kind: ClassVar[str] = "rows_complete"
    max_null_percentage: float | None = None
    min_rows: int = 1
    requests: list[int] | None = None

    def validate(self, where: str) -> None:
        _check_scope(self.requests, where)
        _check_fraction(self.max_null_percentage, where, "max_null_percentage")
        if not isinstance(self.min_rows, int) or self.min_rows < 0:
            raise ButlrConfigurationError(f"{where}.min_rows {self.min_rows!r} must be a whole number >= 0")

    def evaluate(self, responses: Sequence[Any], now: float) -> Verdict:
        rows = [row for payload in _scoped(responses, self.requests) for row in iter_rows(payload)]
        if len(rows) < self.min_rows:
            return Verdict(False, f"{len(rows)} row(s) returned, at least {self.min_rows} expected")
        problems = _quality_problems(rows, self.max_null_percentage, None)
        details = {"rows": len(rows), "incomplete_windows": len(problems), "examples": problems[:MAX_LISTED]}
        if problems:
            return Verdict(False, f"{len(problems)} of {len(rows)} row(s) are incomplete", details)
        return Verdict(True, f"all {len(rows)} row(s) are complete", details)


@dataclass
class DataComplete(Condition):
    """Butlr's data for ``[window_start, window_end)`` is final for every asset in ``asset_ids``.

    (a) now >= window_end + grace_seconds (checked without a request); (b) every asset has a window
    starting at or after ``window_end - interval_seconds``; (c) no window is ``data_incomplete`` (or
    has ``null_percentage`` above ``max_null_percentage``, when set).
    """

    kind: ClassVar[str] = "data_complete"
    window_start: str
    window_end: str
    asset_key: str
    asset_ids: list[str]
    grace_seconds: float = 900.0
    interval_seconds: float = 300.0
    max_null_percentage: float | None = None
    requests: list[int] | None = None

    def validate(self, where: str) -> None:
        _check_scope(self.requests, where)
        start = parse_instant(self.window_start, name=f"{where}.window_start")
        end = parse_instant(self.window_end, name=f"{where}.window_end")
        if end <= start:
            raise ButlrConfigurationError(
                f"{where}.window_end {self.window_end} must be after window_start {self.window_start}"
            )
        _check_asset_key(self.asset_key, where)
        _check_ids(self.asset_ids, where)
        if not is_number(self.grace_seconds) or self.grace_seconds < 0:
            raise ButlrConfigurationError(f"{where}.grace_seconds {self.grace_seconds!r} must be >= 0")
        if not is_number(self.interval_seconds) or self.interval_seconds <= 0:
            raise ButlrConfigurationError(f"{where}.interval_seconds {self.interval_seconds!r} must be > 0")
        _check_fraction(self.max_null_percentage, where, "max_null_percentage")

    @property
    def ready_at(self) -> float:
        return parse_instant(self.window_end) + float(self.grace_seconds)

    def gate(self, now: float) -> Verdict | None:
        if now >= self.ready_at:
            return None
        return Verdict(
            False,
            f"window ends {self.window_end}; waiting for the {self.grace_seconds:g} s grace period "
            f"(until {format_instant(self.ready_at)})",
            {"ready_at": format_instant(self.ready_at)},
        )

    def evaluate(self, responses: Sequence[Any], now: float) -> Verdict:
        start, end = parse_instant(self.window_start), parse_instant(self.window_end)
        last_expected = end - float(self.interval_seconds)
        rows = []
        latest: dict[str, float] = {}
        for payload in _scoped(responses, self.requests):
            for row in iter_rows(payload):
                when = row_time(row)
                if when is None or not start <= when < end:
                    continue
                rows.append(row)
                asset = row.get(self.asset_key)
                if isinstance(asset, str):
                    latest[asset] = max(when, latest.get(asset, when))
        lagging = [a for a in self.asset_ids if latest.get(a, -math.inf) < last_expected]
        problems = _quality_problems(rows, self.max_null_percentage, self.asset_key)
        details: dict[str, Any] = {
            "window_start": self.window_start,
            "window_end": self.window_end,
            "assets_checked": len(self.asset_ids),
            "windows_checked": len(rows),
            "assets_without_final_window": lagging[:MAX_LISTED],
            "incomplete_windows": len(problems),
            "incomplete_examples": problems[:MAX_LISTED],
            "checked_at": format_instant(now),
        }
        if lagging:
            return Verdict(
                False,
                f"{len(lagging)} of {len(self.asset_ids)} asset(s) have no data up to "
                f"{self.window_end}: {', '.join(lagging[:MAX_LISTED])}",
                details,
            )
        if problems:
            return Verdict(
                False,
                f"{len(problems)} window(s) are still incomplete, e.g. {problems[0]['asset_id']} at "
                f"{problems[0]['time']}",
                details,
            )
        return Verdict(
            True,
            f"data for {self.window_start} to {self.window_end} is complete for {len(self.asset_ids)} asset(s)",
            details,
        )


@dataclass
class Occupancy(Condition):
    """Current occupancy per asset (median of its latest windows) compares to ``threshold``.

    ``latest`` = how many of an asset's most recent windows make "current" (None: all returned).
    With several responses (presence and traffic), an asset's occupancy is the highest of their
    medians, as Butlr's own tools do. ``threshold`` is a number or ``{asset_id: number}``;
    ``match`` ``all`` needs every asset to pass, ``any`` one. An asset without data never passes.
    """

    kind: ClassVar[str] = "occupancy"
    asset_key: str
    asset_ids: list[str]
    op: str
    threshold: Any
    match: str = "all"
    latest: int | None = None
    requests: list[int] | None = None

    def validate(self, where: str) -> None:
        _check_scope(self.requests, where)
        if self.latest is not None and (not isinstance(self.latest, int) or self.latest < 1):
            raise ButlrConfigurationError(
                f"{where}.latest {self.latest!r} must be a whole number >= 1, or null"
            )
        _check_asset_key(self.asset_key, where)
        _check_ids(self.asset_ids, where)
        _check_op(self.op, where)
        if self.match not in QUANTIFIERS:
            raise ButlrConfigurationError(
                f"{where}.match {self.match!r} is not one of {', '.join(QUANTIFIERS)}"
            )
        if isinstance(self.threshold, Mapping):
            missing = [a for a in self.asset_ids if not is_number(self.threshold.get(a))]
            if missing:
                raise ButlrConfigurationError(
                    f"{where}.threshold has no number for asset(s) {', '.join(missing[:MAX_LISTED])}"
                )
        elif not is_number(self.threshold):
            raise ButlrConfigurationError(
                f"{where}.threshold {self.threshold!r} must be a number or a mapping of asset id to number"
            )

    def _limit(self, asset: str) -> float:
        return float(self.threshold[asset] if isinstance(self.threshold, Mapping) else self.threshold)

    def occupancy(self, responses: Sequence[Any]) -> dict[str, float]:
        """Median of the latest windows per asset and response, then the highest across responses."""
        wanted = set(self.asset_ids)
        result: dict[str, float] = {}
        for payload in _scoped(responses, self.requests):
            values: dict[str, list[tuple[float, float]]] = {}
            for row in iter_rows(payload):
                asset, value, when = row.get(self.asset_key), row.get("value"), row_time(row)
                if asset in wanted and is_number(value) and when is not None:
                    values.setdefault(asset, []).append((when, float(value)))
            for asset, series in values.items():
                recent = [value for _, value in sorted(series)][-(self.latest or len(series)) :]
                result[asset] = max(statistics.median(recent), result.get(asset, -math.inf))
        return result

    def evaluate(self, responses: Sequence[Any], now: float) -> Verdict:
        current = self.occupancy(responses)
        compare = COMPARATORS[self.op]
        passing = [a for a in self.asset_ids if a in current and compare(current[a], self._limit(a))]
        unknown = [a for a in self.asset_ids if a not in current]
        met = len(passing) == len(self.asset_ids) if self.match == "all" else bool(passing)
        details = {
            "occupancy": {a: current[a] for a in self.asset_ids if a in current},
            "op": self.op,
            "threshold": self.threshold,
            "match": self.match,
            "passing": passing[:MAX_LISTED],
            "without_data": unknown[:MAX_LISTED],
        }
        summary = (
            f"{len(passing)} of {len(self.asset_ids)} asset(s) have occupancy {self.op} {self.threshold}"
        )
        if unknown:
            summary += f"; no recent data for {', '.join(unknown[:MAX_LISTED])}"
        return Verdict(met, summary, details)


CONDITION_TYPES: dict[str, type[Condition]] = {
    cls.kind: cls for cls in (ValueAt, RowsComplete, DataComplete, Occupancy)
}


def condition_from_dict(spec: Any, where: str = "condition") -> Condition:
    """Build and validate a condition from its JSON form ``{"type": ..., ...}``."""
    if isinstance(spec, Condition):
        spec.validate(where)
        return spec
    if not isinstance(spec, Mapping):
        raise ButlrConfigurationError(f"{where} must be a mapping with a 'type', got {type(spec).__name__}")
    kind = spec.get("type")
    cls = CONDITION_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ButlrConfigurationError(f"{where}.type {kind!r} is not one of {', '.join(CONDITION_TYPES)}")
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(spec) - known - {"type"})
    if unknown:
        raise ButlrConfigurationError(
            f"{where} ({kind}) has unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}"
        )
    try:
        condition = cls(**{k: v for k, v in spec.items() if k != "type"})
    except TypeError as err:
        raise ButlrConfigurationError(f"{where} ({kind}): {err}") from None
    condition.validate(where)
    return condition
