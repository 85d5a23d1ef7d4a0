"""What a stream of pushed events remembers, and what each new event changes in it (pure).

A *stream* is one event type of one entity (``ROOM_OCCUPANCY_1MIN`` of room r1). Butlr sends the same
minute more than once: duplicates (the same event ``id``, or the same value again), revisions (a new
``id`` and value for a minute already sent: occupancy is recomputed over a rolling ~5-minute
look-back), retries that arrive after later minutes. butlr-api.md §5.3 says: deduplicate on (entity,
timestamp) and keep the latest. :func:`apply_event` does that over a :class:`StreamState`:

* ``new``: a timestamp not seen yet; ``revision``: a seen timestamp with another value (the latest
  received wins), unless its ``id`` was already seen there (a late retry of an older send: a duplicate);
* ``duplicate``: a seen ``id`` or the same value again; ``stale``: older than the horizon (it cannot be
  told from a duplicate any more, so it is acknowledged and not recorded);
* then, for the 1-minute rollups, every :class:`Condition` ("occupancy <= 0 for 15 minutes") is
  evaluated over the kept minutes with the polling trigger's own code
  (:func:`~airflow_provider_butlr.polling.occupancy.find_crossing` and
  :class:`~airflow_provider_butlr.polling.occupancy.CrossingLedger`), so push and poll agree on what a
  crossing is, where it starts (``crossed_at``, a data minute) and when it fires: once.

One rule is added to the ledger's: once a crossing fired, a later one must *start after the newest
minute seen when it fired*. A late minute or a revision inside a streak that already fired (Butlr
re-sends up to 4 minutes back) then moves the streak's start without firing it a second time; a
minute after it that breaks the streak (someone came in) still allows the next crossing.

The state is plain JSON, saved by the receiver in the metadata database between requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.polling.answers import COMPARATORS
from airflow_provider_butlr.polling.occupancy import (
    MAX_WINDOW_MINUTES,
    Crossing,
    CrossingLedger,
    find_crossing,
)
from airflow_provider_butlr.push.events import MINUTE_MS, WebhookEvent

STATE_VERSION = 1
DEFAULT_HORIZON_MINUTES = 60
HORIZON_MARGIN_MINUTES = 15  # beyond the longest condition: Butlr's look-back and late retries
MAX_IDS_PER_MINUTE = 8
CONDITION_EXTRA_KEY = "butlr_condition"
OUTCOMES = ("new", "revision", "duplicate", "stale")


@dataclass(frozen=True)
class Condition:
    """``occupancy <op> threshold`` held for ``for_minutes`` (the polling trigger's condition)."""

    op: str = "<="
    threshold: float = 0
    for_minutes: int = 15

    @classmethod
    def from_json(cls, value: Any, where: str) -> Condition:
        """A condition from an asset's extra (``{"op", "threshold", "for_minutes"}``), checked."""
        if not isinstance(value, Mapping):
            raise ButlrConfigurationError(f"{where}: {CONDITION_EXTRA_KEY} must be a JSON object")
        unknown = sorted(set(value) - {"op", "threshold", "for_minutes"})
        if unknown:
            raise ButlrConfigurationError(f"{where}: unknown key(s) {unknown} in {CONDITION_EXTRA_KEY}")
        op = value.get("op", cls.op)
        threshold = value.get("threshold", cls.threshold)
        for_minutes = value.get("for_minutes", cls.for_minutes)
        if op not in COMPARATORS:
            raise ButlrConfigurationError(f"{where}: op {op!r} is not one of {', '.join(COMPARATORS)}")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise ButlrConfigurationError(f"{where}: threshold must be a number, got {threshold!r}")
        if isinstance(for_minutes, bool) or not isinstance(for_minutes, int):
            raise ButlrConfigurationError(f"{where}: for_minutes must be a whole number, got {for_minutes!r}")
        if not 1 <= for_minutes <= MAX_WINDOW_MINUTES:
            raise ButlrConfigurationError(f"{where}: for_minutes must be from 1 to {MAX_WINDOW_MINUTES}")
        return cls(op, float(threshold), for_minutes)

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, "threshold": self.threshold, "for_minutes": self.for_minutes}


def horizon_minutes(conditions: Mapping[str, Condition]) -> int:
    """How many minutes a stream keeps: an hour, or the longest condition plus a margin."""
    longest = max((c.for_minutes for c in conditions.values()), default=0)
    return max(DEFAULT_HORIZON_MINUTES, longest + HORIZON_MARGIN_MINUTES)


@dataclass
class Seen:
    """One timestamp of a stream: its latest value and the event ids it came with."""

    value: Any
    ids: list[str]


@dataclass
class StreamState:
    """The kept timestamps of one stream and one crossing ledger per condition."""

    seen: dict[int, Seen] = field(default_factory=dict)
    ledgers: dict[str, CrossingLedger] = field(default_factory=dict)

    @property
    def newest(self) -> int | None:
        return max(self.seen) if self.seen else None

    def series(self) -> list[tuple[float, float]]:
        """``[(minute start in Unix seconds, occupancy)]``, oldest first (what conditions read)."""
        return [
            (ts / 1000, float(s.value)) for ts, s in sorted(self.seen.items()) if isinstance(s.value, int)
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "seen": [[ts, s.value, s.ids] for ts, s in sorted(self.seen.items())],
            "ledgers": {key: ledger.to_json() for key, ledger in sorted(self.ledgers.items())},
        }

    @classmethod
    def from_json(cls, value: Any) -> StreamState:
        """The saved state; an unreadable or other-version one starts afresh (and re-arms)."""
        if not isinstance(value, Mapping) or value.get("v") != STATE_VERSION:
            return cls()
        seen: dict[int, Seen] = {}
        for item in value.get("seen") or []:
            if (
                isinstance(item, list)
                and len(item) == 3
                and isinstance(item[0], int)
                and isinstance(item[2], list)
            ):
                seen[item[0]] = Seen(item[1], [str(i) for i in item[2]])
        ledgers = {}
        for key, raw in (value.get("ledgers") or {}).items():
            ledger = CrossingLedger.from_json(raw)
            if ledger is not None:
                ledgers[str(key)] = ledger
        return cls(seen, ledgers)


@dataclass(frozen=True)
class Applied:
    """What one event did to its stream."""

    outcome: str  # one of OUTCOMES
    previous: Any = None  # the value a revision replaced
    crossings: tuple[tuple[str, Crossing], ...] = ()  # (condition key, crossing) to fire now
    dirty: bool = False  # the state changed and must be saved

    @property
    def changed(self) -> bool:
        """A new timestamp or a revised value: an accepted change, recorded as an asset event."""
        return self.outcome in ("new", "revision")


def apply_event(
    state: StreamState, event: WebhookEvent, conditions: Mapping[str, Condition], horizon: int
) -> Applied:
    """Take ``event`` into ``state`` (in place); say what it was and which crossings fire now."""
    ts, newest = event.timestamp_ms, state.newest
    if newest is not None and ts < newest - horizon * MINUTE_MS:
        return Applied("stale")
    entry = state.seen.get(ts)
    previous = None
    if entry is None:
        state.seen[ts] = Seen(event.data, [event.event_id])
        outcome = "new"
    elif event.event_id in entry.ids:
        return Applied("duplicate")
    else:
        entry.ids = [*entry.ids, event.event_id][-MAX_IDS_PER_MINUTE:]
        if entry.value == event.data:
            return Applied("duplicate", dirty=True)
        previous, entry.value = entry.value, event.data
        outcome = "revision"
    cutoff = max(state.seen) - horizon * MINUTE_MS
    for old in [t for t in state.seen if t < cutoff]:
        del state.seen[old]
    crossings = _crossings(state, event, conditions) if event.spec.minute_aligned else ()
    return Applied(outcome, previous, crossings, dirty=True)


def _crossings(
    state: StreamState, event: WebhookEvent, conditions: Mapping[str, Condition]
) -> tuple[tuple[str, Crossing], ...]:
    for gone in set(state.ledgers) - set(conditions):
        del state.ledgers[gone]
    asset_id = str(event.asset_id)
    series = state.series()
    fired = []
    for key, condition in sorted(conditions.items()):
        ledger = state.ledgers.setdefault(key, CrossingLedger())
        crossing = find_crossing(asset_id, series, condition.op, condition.threshold, condition.for_minutes)
        if ledger.observe(asset_id, series, crossing):
            assert crossing is not None  # observe() fires only a crossing
            # the next crossing must start after the newest minute seen now (module docstring)
            ledger.fired[asset_id] = max(crossing.started_at, crossing.last_minute)
            fired.append((key, crossing))
    return tuple(fired)
