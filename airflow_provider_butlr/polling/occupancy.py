"""Occupancy crossings for event-driven scheduling: "room r1 has been empty for 15 minutes".

Pure logic (no network, no Airflow) shared by :mod:`airflow_provider_butlr.triggers.occupancy_events`
and the occupancy sensor:

* :class:`OccupancyWatch` says what to poll (1-minute median windows of the latest ``window_minutes``)
  and reads the answer as one occupancy per asset and minute (the higher of presence and traffic
  with ``source="auto"``, as Butlr's own tools do);
* :func:`find_crossing` finds, per asset, the *streak* the latest minute belongs to: the run of
  minutes satisfying ``occupancy <op> threshold`` back to the last minute that did not. The streak is
  a crossing once it lasted ``for_minutes``; it is identified by its first minute, taken from the data,
  so re-reading the same data (another poll, a restarted trigger) finds the same crossing again;
* :class:`CrossingLedger` decides which crossings to fire: those that completed after the watcher
  first saw the asset's data and start after the last crossing it fired for that asset. It is JSON,
  so a trigger can keep it in Airflow 3.3's asset state store and survive restarts exactly.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.polling.answers import COMPARATORS, is_number, iter_rows
from airflow_provider_butlr.polling.plans import PollRequest
from airflow_provider_butlr.reporting.bodies import build_reporting_body
from airflow_provider_butlr.reporting.catalogue import (
    OCCUPANCY_MEASUREMENTS,
    OCCUPANCY_SOURCES,
    REPORTING_PATH,
    occupancy_measurements,
)
from airflow_provider_butlr.reporting.planning import BatchLimits, split_ids
from airflow_provider_butlr.reporting.times import format_instant, parse_instant

MINUTE = 60.0
MAX_WINDOW_MINUTES = 240


def minute_median_requests(
    kind: str,
    ids: list[str],
    measurements: list[str],
    traffic: str | None,
    lookback: float,
    limits: BatchLimits,
    stop: datetime,
) -> list[PollRequest]:
    """Current occupancy as Butlr's own tools read it: the median of 1-minute windows over the latest
    ``lookback`` seconds, per measurement and id batch (traffic calibrated). Shared by the occupancy
    sensor and the event trigger; each request is re-timed to "now" when rendered."""
    requests = []
    batch = limits.for_span(timedelta(seconds=lookback))
    for measurement in measurements:
        for chunk in split_ids(ids, batch):
            body = build_reporting_body(
                measurement=measurement,
                kind=kind,
                ids=chunk,
                start=stop - timedelta(seconds=lookback),
                stop=stop,
                every="1m",
                function="median",
                include_zeros=True,
                calibrated="true" if measurement == traffic else None,
            )
            body["window"]["create_empty"] = False  # a missing minute must not read as nobody there
            requests.append(
                PollRequest(REPORTING_PATH, "POST", body, lookback_seconds=lookback, max_ids=batch)
            )
    return requests


@dataclass(frozen=True)
class OccupancyWatch:
    """What one poll asks for: ``kind`` ids, from ``source``, over the latest ``window_minutes``."""

    kind: str
    ids: tuple[str, ...]
    source: str = "presence"
    window_minutes: int = 60
    max_ids_per_request: int | None = None

    def validate(self) -> OccupancyWatch:
        if self.kind not in OCCUPANCY_MEASUREMENTS:
            raise ButlrConfigurationError(
                f"kind {self.kind!r} is not one of {', '.join(OCCUPANCY_MEASUREMENTS)}"
            )
        if not self.ids or not all(isinstance(i, str) and i.strip() for i in self.ids):
            raise ButlrConfigurationError(
                f"{self.kind} must be a non-empty list of Butlr ids, got {self.ids!r}"
            )
        if self.source not in OCCUPANCY_SOURCES:
            raise ButlrConfigurationError(
                f"source {self.source!r} is not one of {', '.join(OCCUPANCY_SOURCES)}"
            )
        if self.kind == "zones" and self.source == "traffic":
            raise ButlrConfigurationError("source 'traffic' is not available for zones (presence only)")
        if not isinstance(self.window_minutes, int) or not 5 <= self.window_minutes <= MAX_WINDOW_MINUTES:
            raise ButlrConfigurationError(
                f"window_minutes {self.window_minutes!r} must be a whole number from 5 to {MAX_WINDOW_MINUTES}"
            )
        BatchLimits.from_args(self.max_ids_per_request)
        return self

    @property
    def row_key(self) -> str:
        return OCCUPANCY_MEASUREMENTS[self.kind][0]

    def measurements(self) -> list[str]:
        return occupancy_measurements(self.kind, self.source)

    def requests(self) -> list[PollRequest]:
        """The reporting requests of one poll (their time range is set when rendered at poll time)."""
        stop = datetime(2025, 1, 1, tzinfo=UTC)  # placeholder: PollRequest.render re-times it
        return minute_median_requests(
            self.kind,
            list(self.ids),
            self.measurements(),
            OCCUPANCY_MEASUREMENTS[self.kind][2],
            self.window_minutes * MINUTE,
            BatchLimits.from_args(self.max_ids_per_request),
            stop,
        )

    def minutes(self, responses: Iterable[Any]) -> dict[str, list[tuple[float, float]]]:
        """``{asset id: [(minute start, occupancy), ...]}`` sorted by time; the highest source wins."""
        wanted = set(self.ids)
        merged: dict[str, dict[float, float]] = {}
        for payload in responses:
            for row in iter_rows(payload):
                asset, value = row.get(self.row_key), row.get("value")
                if asset not in wanted or not is_number(value):
                    continue
                try:
                    when = parse_instant(row.get("time"))
                except ButlrConfigurationError:
                    continue
                series = merged.setdefault(asset, {})
                series[when] = max(float(value), series.get(when, float(value)))
        return {asset: sorted(series.items()) for asset, series in merged.items()}


@dataclass(frozen=True)
class Crossing:
    """A streak of minutes satisfying the condition, long enough to count."""

    asset_id: str
    started_at: float  # first minute of the streak (from the data)
    qualified_at: float  # started_at + for_minutes: when the condition had held long enough
    last_minute: float  # the newest minute seen in the streak
    occupancy: float  # the occupancy in that minute

    def to_payload(self, kind: str, op: str, threshold: float, for_minutes: int) -> dict[str, Any]:
        return {
            "asset_id": self.asset_id,
            "kind": kind,
            "condition": f"occupancy {op} {threshold:g} for {for_minutes} min",
            "crossed_at": format_instant(self.started_at),
            "qualified_at": format_instant(self.qualified_at),
            "last_minute": format_instant(self.last_minute),
            "occupancy": self.occupancy,
        }


def find_crossing(
    asset_id: str, series: Sequence[tuple[float, float]], op: str, threshold: float, for_minutes: int
) -> Crossing | None:
    """The crossing the newest minute belongs to, if the streak has lasted ``for_minutes``.

    None when the newest minute does not satisfy the condition, when the streak is still shorter,
    or when it covers the whole window (its start is not in the data, so it is not a new crossing:
    it was already there when the window began).
    """
    if not series:
        return None
    compare = COMPARATORS[op]
    start = None
    for when, value in reversed(series):
        if not compare(value, threshold):
            break
        start = when
    else:
        return None  # every minute in the window satisfies it: the crossing is older than the window
    if start is None:
        return None
    qualified_at = start + for_minutes * MINUTE
    last_minute, occupancy = series[-1]
    if last_minute + MINUTE < qualified_at:
        return None
    return Crossing(asset_id, start, qualified_at, last_minute, occupancy)


@dataclass
class CrossingLedger:
    """Per asset: when the watcher started seeing it (``armed``) and the last crossing it fired.

    Both are data times (Unix seconds), not wall-clock times, so Butlr's data delay does not matter:
    an asset is armed at the end of the newest minute of the first poll that returned data for it
    (a condition already met then is not an event); a crossing fires when it qualified after that
    and started after the last crossing fired for the asset.
    """

    armed: dict[str, float] = field(default_factory=dict)
    fired: dict[str, float] = field(default_factory=dict)

    def observe(
        self, asset_id: str, series: Sequence[tuple[float, float]], crossing: Crossing | None
    ) -> bool:
        """Take one poll's data for ``asset_id``; True when ``crossing`` is new and must fire.

        Updates the ledger (arming the asset, recording the fired crossing): save it afterwards.
        """
        if asset_id not in self.armed:
            if series:
                self.armed[asset_id] = series[-1][0] + MINUTE
            return False
        if crossing is None or crossing.qualified_at <= self.armed[asset_id]:
            return False
        if crossing.started_at <= self.fired.get(asset_id, float("-inf")):
            return False
        self.fired[asset_id] = crossing.started_at
        return True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: Any) -> CrossingLedger | None:
        """A ledger from the state store, or None when there is none (or it is unreadable)."""
        if not isinstance(value, Mapping):
            return None
        armed, fired = value.get("armed"), value.get("fired")
        if not isinstance(armed, Mapping) or not isinstance(fired, Mapping):
            return None

        def numbers(mapping: Mapping[str, Any]) -> dict[str, float]:
            return {
                str(k): float(v)
                for k, v in mapping.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)
            }

        return cls(numbers(armed), numbers(fired))


def ledger_key(spec: Mapping[str, Any]) -> str:
    """A state-store key for one watcher's ledger (a digest of what it watches and when it fires)."""
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"butlr_occupancy_event_{digest}"
