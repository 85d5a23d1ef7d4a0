"""Poll sharing, the pure part: the clock grid, which requests merge, how they pack and split."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_provider_butlr.exceptions import ButlrAPIError, ButlrAuthError, ButlrRateLimitError
from airflow_provider_butlr.polling.occupancy import minute_median_requests
from airflow_provider_butlr.polling.plans import PollPlan, PollRequest
from airflow_provider_butlr.polling.sharing import (
    GRID_OFFSET,
    UNSPLITTABLE,
    aligned_wait,
    answer_for,
    is_request_fault,
    pack,
    share_of,
)
from airflow_provider_butlr.reporting.bodies import build_reporting_body
from airflow_provider_butlr.reporting.planning import BatchLimits

pytestmark = pytest.mark.airflow_independent  # pure functions: run once, not per Airflow minor

STOP = datetime(2025, 11, 10, tzinfo=UTC)


def check_request(
    rooms: list[str], timezone: str = "America/New_York", max_ids: int | None = 30
) -> PollRequest:
    """A data-complete sensor's check request (the body the sensor builds)."""
    body = build_reporting_body(
        measurement="room_occupancy",
        kind="rooms",
        ids=rooms,
        start=STOP - timedelta(hours=1),
        stop=STOP,
        every="5m",
        function="max",
        timezone=timezone,
    )
    body["window"]["create_empty"] = False
    return PollRequest("/api/v3/reporting", "POST", body, max_ids=max_ids)


def rooms(count: int, prefix: str = "room_") -> list[str]:
    return [f"{prefix}{i:03d}" for i in range(count)]


# --- the clock grid -------------------------------------------------------------------------------


@pytest.mark.parametrize("interval", [0.1, 1.0, 5.0, 45.0, 60.0, 600.0])
def test_waits_end_on_the_grid_between_a_quarter_and_1_25_intervals(interval: float) -> None:
    rng = random.Random(7)
    for _ in range(500):
        now = 1.7e9 + rng.uniform(0, 10_000)
        wait = aligned_wait(now, interval)
        assert interval / 4 - 1e-6 <= wait <= 1.25 * interval + 1e-6
        phase = (now + wait - GRID_OFFSET % interval) % interval
        assert min(phase, interval - phase) < 1e-6  # on a tick


def test_triggers_that_wake_apart_meet_on_the_same_tick() -> None:
    interval, minute = 60.0, 60.0 * (1_700_000_000 // 60)
    woke = (minute + 1.0, minute + 17.5, minute + 44.9)  # a minute apart at most, a quarter before the tick
    ticks = {round(t + aligned_wait(t, interval), 6) for t in woke}
    assert len(ticks) == 1
    (tick,) = ticks
    assert tick % 60 == pytest.approx(GRID_OFFSET)  # a quarter second past the minute, never on it


def test_polls_on_ticks_are_never_closer_than_the_interval() -> None:
    interval, now = 10.0, 1.7e9 + 1.0
    for poll_duration in (0.0, 2.0, 7.4, 7.6, 12.0):
        start = now + aligned_wait(now, interval)  # a poll on a tick
        gap = (start + poll_duration + aligned_wait(start + poll_duration, interval, start)) - start
        assert gap >= interval - 1e-6
        assert gap == pytest.approx(interval if poll_duration < 0.75 * interval else 2 * interval, abs=1e-6)


def test_a_doubled_interval_waits_one_to_1_5_new_intervals() -> None:
    for k in range(8):
        start = 1.7e9 + GRID_OFFSET + 10.0 * k  # polls on the 10 s grid, then the interval doubles
        gap = aligned_wait(start + 0.1, 20.0, start) + 0.1
        assert 20.0 - 1e-6 <= gap <= 30.0 + 1e-6


# --- which requests merge -------------------------------------------------------------------------


def test_requests_that_differ_only_in_their_ids_share_a_key() -> None:
    a, b = share_of(check_request(["room_a"])), share_of(check_request(["room_b", "room_c"]))
    assert a.mergeable and b.mergeable and a.key == b.key
    assert (a.ids, b.ids) == (("room_a",), ("room_b", "room_c"))
    assert share_of(check_request(["room_a"], timezone="Europe/Berlin")).key != a.key  # another site
    assert share_of(check_request(["room_a"], max_ids=5)).key != a.key  # another batch size


@pytest.mark.parametrize(
    "change",
    [
        lambda r: PollRequest(r.endpoint, r.method, r.json),  # no max_ids: its plan never said
        lambda r: PollRequest("/api/v3/graphql", "POST", {"query": "{ sites { data { id } } }"}, max_ids=30),
        lambda r: PollRequest(r.endpoint, r.method, {**r.json, "group_by": {"order": ["time"]}}, max_ids=30),
        lambda r: PollRequest(r.endpoint, r.method, {**r.json, "paginate": {"page": 1}}, max_ids=30),
        lambda r: PollRequest(
            r.endpoint,
            r.method,
            {**r.json, "filter": {**r.json["filter"], "spaces": {"eq": ["space_1"]}}},
            max_ids=30,
        ),
    ],
    ids=["no-max-ids", "graphql", "nested-answer", "paged", "two-id-filters"],
)
def test_other_requests_are_shared_only_when_identical(change: Any) -> None:
    request = change(check_request(["room_a"]))
    share = share_of(request)
    assert not share.mergeable
    assert share_of(PollRequest(**request.to_dict())).key == share.key  # an identical request: the same
    other = PollRequest(**{**request.to_dict(), "params": {"x": "1"}})
    assert share_of(other).key != share.key


def test_occupancy_requests_carry_their_batch_size_and_merge() -> None:
    made = minute_median_requests(
        "rooms",
        ["room_a"],
        ["room_occupancy", "traffic_room_occupancy"],
        "traffic_room_occupancy",
        1200.0,
        BatchLimits.from_args(None),
        STOP,
    )
    assert [r.max_ids for r in made] == [30, 30]
    rendered = [PollPlan(made).render(STOP.timestamp() + 30)[i] for i in range(2)]
    other = minute_median_requests(
        "rooms", ["room_b"], ["room_occupancy"], "traffic_room_occupancy", 1200.0, BatchLimits(), STOP
    )
    assert share_of(other[0].render(STOP.timestamp() + 30)).key == share_of(rendered[0]).key
    assert share_of(rendered[1]).key != share_of(rendered[0]).key  # presence and traffic: two requests


# --- packing ----------------------------------------------------------------------------------------


def test_one_room_per_sensor_packs_into_batches_of_max_ids() -> None:
    shares = [share_of(check_request([room])) for room in rooms(100)]
    batches = pack(shares)
    assert [len(b.ids) for b in batches] == [30, 30, 30, 10]
    assert sorted(i for b in batches for i in b.members) == list(range(100))
    for batch in batches:
        assert batch.request.json["filter"]["rooms"] == {"eq": batch.ids}
        rest = {**batch.request.json["filter"], "rooms": None}
        assert rest == {**shares[0].request.json["filter"], "rooms": None}  # only the ids changed


def test_a_members_ids_are_never_split_and_repeated_ids_sent_once() -> None:
    shares = [
        share_of(check_request(ids)) for ids in (rooms(20), rooms(15, "room_x"), rooms(5), ["room_x000"])
    ]
    batches = pack(shares)
    assert [sorted(b.members) for b in batches] == [[0, 2], [1, 3]]  # 20 + 15 > 30: a new batch
    assert len(batches[0].ids) == 20 and len(batches[1].ids) == 15  # room_000..004 and room_x000 once


def test_identical_requests_are_one_batch_and_a_lone_request_is_sent_as_it_is() -> None:
    graphql = PollRequest("/api/v3/graphql", "POST", {"query": "{ sites { data { id } } }"})
    shares = [share_of(graphql) for _ in range(10)] + [share_of(check_request(["room_a"]))]
    batches = pack(shares)
    assert [b.members for b in batches] == [list(range(10)), [10]]
    assert batches[0].request is graphql and batches[1].request is shares[10].request
    assert [b.distinct(shares) for b in batches] == [1, 1]


# --- splitting --------------------------------------------------------------------------------------


def answer(*ids: str) -> dict[str, Any]:
    return {
        "data": [{"room_id": i, "time": "2025-11-09T23:55:00Z", "value": 1} for i in ids],
        "page_info": {"page": 1},
    }


def test_each_member_gets_the_rows_of_its_own_ids() -> None:
    a, bc = share_of(check_request(["room_a"])), share_of(check_request(["room_b", "room_c"]))
    merged = answer("room_a", "room_b", "room_c", "room_b")
    assert answer_for(a, ["room_a", "room_b", "room_c"], merged) == answer("room_a")
    assert answer_for(bc, ["room_a", "room_b", "room_c"], merged) == answer("room_b", "room_c", "room_b")
    assert answer_for(a, ["room_a"], merged) is merged  # nothing merged: the answer as it came


def test_answers_that_cannot_be_cut_per_asset() -> None:
    a = share_of(check_request(["room_a"]))
    empty = {"data": {}, "page_info": {"page": 1, "total_item_count": 0}}
    assert answer_for(a, ["room_a", "room_b"], empty) is empty  # Butlr's "nothing": the same for all
    for odd in ({"data": {"room_a": {"x": 1}}}, {"data": None}, [1, 2], None):
        assert answer_for(a, ["room_a", "room_b"], odd) is UNSPLITTABLE


def test_request_faults_are_the_4xx_that_cannot_heal() -> None:
    assert is_request_fault(ButlrAPIError("bad", status=400))
    assert is_request_fault(ButlrAPIError("gone", status=404))
    assert not is_request_fault(ButlrAPIError("server", status=500))
    assert not is_request_fault(ButlrRateLimitError("slow down", status=429))
    assert not is_request_fault(ButlrAuthError("refused", status=400))
    assert not is_request_fault(ButlrAPIError("timeout", status=408))
    assert not is_request_fault(ValueError("bug"))
