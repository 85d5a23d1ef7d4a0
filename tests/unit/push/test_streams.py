"""Dedup, revisions, order and the crossing rules over pushed minutes (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.push.events import parse_event
from airflow_provider_butlr.push.streams import (
    Condition,
    StreamState,
    apply_event,
    horizon_minutes,
)
from airflow_provider_butlr.reporting.times import format_instant

pytestmark = pytest.mark.airflow_independent  # pure: run once, not per Airflow minor

ORG = "org_2d1HDjft5Q1DV1CeXDao0nhL9xK"
ROOM = "room_2aVq9x4BafE7tFacPaWvCiEOfIJ"
T0 = 29_372_000  # Unix minutes (2025-11-05T05:20:00Z)
EMPTY = {"empty": Condition("<=", 0, 5)}


def event(
    minute: int, value: int, event_id: str | None = None, event_type: str = "ROOM_OCCUPANCY_1MIN"
) -> Any:
    body = {
        "id": event_id or f"event_{minute}_{value}",
        "type": event_type,
        "timestamp": (T0 + minute) * 60_000,
        "version": "v1.0.0",
        "metadata": {"org_id": ORG, "room_id": ROOM, "floor_id": "space_1"},
        "data": value,
    }
    return parse_event(body, org_id=ORG, now_ms=(T0 + 10_000) * 60_000)


class Stream:
    """A stream state fed event by event (through a JSON round trip each time, as the receiver does)."""

    def __init__(self, conditions: dict[str, Condition] | None = None) -> None:
        self.conditions = EMPTY if conditions is None else conditions
        self.saved: Any = None
        self.fired: list[tuple[str, str]] = []

    def send(self, minute: int, value: int, event_id: str | None = None) -> str:
        state = StreamState.from_json(json.loads(json.dumps(self.saved)) if self.saved else None)
        applied = apply_event(
            state, event(minute, value, event_id), self.conditions, horizon_minutes(self.conditions)
        )
        if applied.dirty:
            self.saved = state.to_json()
        self.fired += [(key, format_instant(c.started_at)) for key, c in applied.crossings]
        return applied.outcome

    def feed(self, values: list[int], start: int = 0) -> list[str]:
        return [self.send(start + i, v) for i, v in enumerate(values)]


def at(minute: int) -> str:
    return format_instant((T0 + minute) * 60)


def test_new_minutes_duplicates_and_revisions() -> None:
    stream = Stream({})
    assert stream.send(0, 2, "event_a") == "new"
    assert stream.send(0, 2, "event_a") == "duplicate"  # the same POST again
    assert stream.send(0, 2, "event_b") == "duplicate"  # the same value again under another id
    assert stream.send(0, 3, "event_c") == "revision"  # a recomputed minute: the latest wins
    assert stream.send(0, 2, "event_a") == "duplicate"  # a late retry of an older send: not a revision
    assert stream.saved["seen"] == [[(T0) * 60_000, 3, ["event_a", "event_b", "event_c"]]]


def test_a_revision_reports_the_value_it_replaced() -> None:
    state = StreamState()
    apply_event(state, event(0, 2), {}, 60)
    applied = apply_event(state, event(0, 1, "event_revised"), {}, 60)
    assert (applied.outcome, applied.previous, applied.changed) == ("revision", 2, True)


def test_minutes_older_than_the_horizon_are_stale_and_forgotten() -> None:
    stream = Stream({})
    stream.feed([1, 1, 1])
    assert stream.send(100, 1) == "new"
    assert [ts for ts, *_ in stream.saved["seen"]] == [(T0 + 100) * 60_000]  # older ones pruned
    assert stream.send(30, 1) == "stale"  # beyond the hour kept: cannot be told from a duplicate
    assert stream.send(45, 1) == "new"  # within it: a late minute is still a new one


def test_the_horizon_covers_the_longest_condition() -> None:
    assert horizon_minutes({}) == 60
    assert horizon_minutes({"long": Condition("<=", 0, 120)}) == 135


def test_a_crossing_fires_once_when_held_long_enough_and_not_again_while_it_holds() -> None:
    stream = Stream()
    stream.feed([2, 1, 1, 0, 0, 0, 0])  # armed on the first minute; 4 empty minutes: not yet
    assert stream.fired == []
    stream.send(7, 0)  # the 5th empty minute
    assert stream.fired == [("empty", at(3))]
    stream.feed([0] * 20, start=8)
    assert stream.fired == [("empty", at(3))]


def test_a_condition_true_before_the_first_minute_seen_is_not_an_event() -> None:
    stream = Stream()
    stream.feed([0] * 30)
    assert stream.fired == []


def test_duplicates_and_revisions_inside_a_fired_streak_do_not_fire_again() -> None:
    stream = Stream()
    stream.feed([2, 1, 0, 0, 0, 0, 0])
    assert stream.fired == [("empty", at(2))]
    assert stream.send(6, 0, "event_6_0") == "duplicate"
    # Butlr revises minute 3 to occupied (look-back): the streak now starts at minute 4 and has held
    # 5 minutes by minute 8, but it is the same emptiness, already reported
    assert stream.send(3, 1, "event_3_revised") == "revision"
    stream.feed([0, 0], start=7)
    assert stream.send(3, 0, "event_3_back") == "revision"
    assert stream.fired == [("empty", at(2))]


def test_someone_coming_in_after_the_event_allows_the_next_crossing() -> None:
    stream = Stream()
    stream.feed([2, 1, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0])
    assert stream.fired == [("empty", at(2)), ("empty", at(9))]


def test_out_of_order_minutes_give_the_same_crossing_as_in_order() -> None:
    values = [2, 2, 1, 0, 0, 0, 0, 0, 0, 0]
    in_order = Stream()
    in_order.feed(values)
    shuffled = Stream()
    for minute in [0, 1, 3, 2, 5, 4, 6, 8, 7, 9]:
        shuffled.send(minute, values[minute])
    assert shuffled.fired == in_order.fired == [("empty", at(3))]


def test_a_provisional_break_revised_before_the_hold_is_over_does_not_fire_twice() -> None:
    """Butlr's look-back revises a minute within 4 minutes; with a 5-minute hold a provisional
    'someone there' inside an empty period is corrected before a second streak can qualify."""
    stream = Stream()
    stream.feed([2, 0, 0, 0, 0, 0, 0])
    assert stream.fired == [("empty", at(1))]
    stream.send(7, 1)  # provisional: someone came in?
    stream.feed([0, 0, 0], start=8)
    stream.send(7, 0, "event_7_final")  # no: revised 3 minutes later
    stream.feed([0, 0, 0], start=11)
    assert stream.fired == [("empty", at(1))]


def test_real_time_streams_are_deduplicated_without_conditions() -> None:
    state = StreamState()
    first = apply_event(state, event(0, 3, event_type="ROOM_OCCUPANCY"), EMPTY, 60)
    again = apply_event(state, event(0, 3, event_type="ROOM_OCCUPANCY"), EMPTY, 60)
    assert (first.outcome, again.outcome, state.ledgers) == ("new", "duplicate", {})


def test_a_removed_condition_drops_its_ledger_and_a_new_one_arms_on_its_first_minute() -> None:
    stream = Stream({"busy": Condition(">=", 3, 2)})
    stream.feed([1, 1, 1])
    assert set(stream.saved["ledgers"]) == {"busy"}
    stream.conditions = EMPTY  # an asset declared later: armed at its first minute, 3; the kept
    stream.feed([0, 0, 0, 0, 0], start=3)  # minutes before it say the room was occupied until then
    assert set(stream.saved["ledgers"]) == {"empty"} and stream.fired == [("empty", at(3))]
    late = Stream({})
    late.feed([0, 0, 0])
    late.conditions = EMPTY  # declared while the room was already empty: never an event for that streak
    late.feed([0] * 10, start=3)
    assert late.fired == []


def test_an_unreadable_or_other_version_state_starts_afresh() -> None:
    assert StreamState.from_json({"v": 99, "seen": [[1, 2, ["x"]]]}).seen == {}
    assert StreamState.from_json("garbage").seen == {}
    assert (
        StreamState.from_json({"v": 1, "seen": [["x"], [1, 2, ["a"]]], "ledgers": {"e": 3}}).seen[1].value
        == 2
    )


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"op": "=<"}, "op"),
        ({"threshold": "0"}, "threshold"),
        ({"for_minutes": 0}, "for_minutes"),
        ({"for_minutes": 1.5}, "for_minutes"),
        ({"for_minutes": 241}, "for_minutes"),
        ({"hold": 3}, "unknown key"),
        ([], "JSON object"),
    ],
)
def test_bad_conditions_name_the_field(value: Any, field: str) -> None:
    with pytest.raises(ButlrConfigurationError, match=field):
        Condition.from_json(value, "asset 'a'")
