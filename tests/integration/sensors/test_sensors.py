"""Butlr sensors against the emulator: poke, reschedule and deferrable, with the emulator clock moving.

Time is moved with time-machine, which moves the sensor's clock and the emulator's clock together
(the emulator follows ``time.time()``); the event loop's monotonic clock is left alone.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, AirflowSkipException, TaskDeferred

from airflow_provider_butlr.exceptions import ButlrConfigurationError, ButlrError, ButlrGraphQLError
from airflow_provider_butlr.sensors.butlr import (
    ButlrDataCompleteSensor,
    ButlrOccupancySensor,
    ButlrSensor,
)
from airflow_provider_butlr.testing.timeseries.series import minute_values, series_assets
from airflow_provider_butlr.triggers.butlr import ButlrTrigger
from tests.support.airflow_versions import AirflowRescheduleException

REPORTING = "/api/v3/reporting"
GRAPHQL = "/api/v3/graphql"
DAY_END = datetime(2025, 11, 12, tzinfo=UTC)  # a Wednesday, after data-quality fields began
DAY_START = DAY_END - timedelta(days=1)
UTC = UTC


# --- helpers ----------------------------------------------------------------------------------


def presence_rooms(emu: Any, tz: str = "America/New_York", count: int = 3) -> list[str]:
    org = emu.org
    rooms = series_assets(org, "room_occupancy", emu.config.seed)
    return [r for r in rooms if org.site_timezone(org.rooms_by_id[r].floor_id) == tz][:count]


def completeness_sensor(emu: Any, **kwargs: Any) -> ButlrDataCompleteSensor:
    rooms = presence_rooms(emu)
    kwargs.setdefault("rooms", rooms)
    kwargs.setdefault("floors", [emu.org.rooms_by_id[rooms[0]].floor_id])
    kwargs.setdefault("start", DAY_START.isoformat())
    kwargs.setdefault("stop", DAY_END.isoformat())
    kwargs.setdefault("poke_interval", 0.1)
    kwargs.setdefault("timeout", 60)
    kwargs.setdefault("max_retries", 1)
    kwargs.setdefault("deferrable", False)
    return ButlrDataCompleteSensor(task_id="wait_for_data", **kwargs)


def run_trigger(trigger: ButlrTrigger, *, after: float = 0.0, action: Any = None) -> dict[str, Any]:
    """Run the trigger on a real event loop; ``action`` runs ``after`` seconds into it (e.g. a clock move)."""

    async def main() -> dict[str, Any]:
        if action is not None:
            asyncio.get_running_loop().call_later(after, action)
        events = [event.payload async for event in trigger.run()]
        assert len(events) == 1, events
        return events[0]

    return asyncio.run(main())


def deferral(sensor: Any, context: dict[str, Any]) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as exc:
        sensor.execute(context)
    return exc.value


class FakeTaskInstance:
    """Just enough of a task instance for reschedule mode."""

    def get_first_reschedule_date(self, context: Any) -> None:
        return None


# --- data completeness ------------------------------------------------------------------------


def test_completeness_waits_for_the_grace_period_then_for_final_data_poke(butlr_conn: Any) -> None:
    butlr_conn.config.reporting_incomplete_minutes = 30  # Butlr still revising the last 30 minutes
    sensor = completeness_sensor(butlr_conn)
    with time_machine.travel(DAY_END + timedelta(minutes=5), tick=False) as clock:
        assert sensor.poke({}) is False  # inside the 15-minute grace period: no request at all
        assert butlr_conn.counters.requests(REPORTING) == 0

        clock.move_to(DAY_END + timedelta(minutes=16))
        assert sensor.poke({}) is False  # grace over, but the emulator flags the last windows
        assert butlr_conn.counters.requests(REPORTING) == 2  # rooms + floor

        clock.move_to(DAY_END + timedelta(minutes=31))
        result = sensor.poke({})
    assert result
    summary = result.xcom_value  # type: ignore[union-attr]
    assert summary["assets_checked"] == 4
    assert summary["incomplete_windows"] == 0
    assert summary["window_end"] == "2025-11-12T00:00:00Z"
    assert summary["windows_checked"] == 4 * 12  # the last hour in 5-minute windows


def test_completeness_is_not_fooled_by_missing_recent_data(butlr_conn: Any) -> None:
    """Data missing for the window's end (not only flagged) keeps the sensor waiting."""
    butlr_conn.config.reporting_incomplete_minutes = 0
    butlr_conn.config.reporting_missing_minutes = 40
    sensor = completeness_sensor(butlr_conn)
    with time_machine.travel(DAY_END + timedelta(minutes=20), tick=False) as clock:
        assert sensor.poke({}) is False
        clock.move_to(DAY_END + timedelta(minutes=41))
        assert sensor.poke({})


def test_completeness_max_null_percentage(butlr_conn: Any) -> None:
    butlr_conn.config.reporting_incomplete_minutes = 30
    with time_machine.travel(DAY_END + timedelta(minutes=31), tick=False):
        assert completeness_sensor(butlr_conn, max_null_percentage=0.3).poke({})


def test_completeness_poke_mode_execute_returns_once_the_clock_moves(butlr_conn: Any) -> None:
    butlr_conn.config.reporting_incomplete_minutes = 30
    sensor = completeness_sensor(butlr_conn, poke_interval=0.2)
    with time_machine.travel(DAY_END + timedelta(minutes=16), tick=True) as clock:
        first_poke_done = threading.Event()

        def move_clock_after_the_first_poke() -> None:
            while butlr_conn.counters.requests(REPORTING) < 2 and not first_poke_done.wait(0.02):
                pass
            clock.shift(timedelta(minutes=15))

        mover = threading.Thread(target=move_clock_after_the_first_poke, daemon=True)
        mover.start()
        try:
            summary = sensor.execute({})
        finally:
            first_poke_done.set()
            mover.join(5)
    assert summary["assets_checked"] == 4 and summary["incomplete_windows"] == 0
    assert butlr_conn.counters.requests(REPORTING) >= 4  # it poked more than once


def test_completeness_deferrable_defers_then_succeeds_in_the_trigger(butlr_conn: Any) -> None:
    butlr_conn.config.reporting_incomplete_minutes = 30
    # The clock jumps 15 minutes below, so the deadline (now + timeout) must lie beyond that.
    sensor = completeness_sensor(butlr_conn, deferrable=True, poke_interval=0.1, timeout=3600)
    with time_machine.travel(DAY_END + timedelta(minutes=16), tick=True) as clock:
        deferred = deferral(sensor, {})
        trigger = deferred.trigger
        assert isinstance(trigger, ButlrTrigger)
        assert deferred.method_name == "execute_complete"
        _, kwargs = trigger.serialize()
        assert kwargs["butlr_conn_id"] == "butlr_default"
        assert kwargs["poll_interval"] == 1.0  # the trigger never polls faster than once a second
        assert kwargs["deadline"] == pytest.approx(DAY_END.timestamp() + 16 * 60 + 3600, abs=5)
        assert deferred.kwargs == {"deadline": kwargs["deadline"], "unsuccessful_polls": 0}
        assert deferred.timeout is not None and deferred.timeout.total_seconds() > 3600
        assert [c["type"] for c in kwargs["plan"]["conditions"]] == ["data_complete", "data_complete"]
        assert kwargs["plan"]["conditions"][0]["grace_seconds"] == 900
        before = butlr_conn.counters.requests(REPORTING)
        event = run_trigger(trigger, after=0.5, action=lambda: clock.shift(timedelta(minutes=15)))
    assert event["status"] == "success"
    assert butlr_conn.counters.requests(REPORTING) > before
    summary = sensor.execute_complete({}, event=event, **deferred.kwargs)
    assert summary["assets_checked"] == 4 and summary["incomplete_windows"] == 0


def test_completeness_checks_once_before_deferring(butlr_conn: Any) -> None:
    sensor = completeness_sensor(butlr_conn, deferrable=True)
    with time_machine.travel(DAY_END + timedelta(hours=2), tick=False):
        summary = sensor.execute({})  # already complete: no deferral
    assert summary["assets_checked"] == 4


def test_default_window_is_the_data_interval(butlr_conn: Any) -> None:
    sensor = completeness_sensor(butlr_conn, start=None, stop=None)
    plan = sensor.build_plan({"data_interval_start": DAY_START, "data_interval_end": DAY_END})
    condition = plan.conditions[0].to_dict()
    assert (condition["window_start"], condition["window_end"]) == (
        "2025-11-11T00:00:00Z",
        "2025-11-12T00:00:00Z",
    )
    body = plan.requests[0].json
    assert (body["filter"]["start"], body["filter"]["stop"]) == (
        "2025-11-11T23:00:00Z",
        "2025-11-12T00:00:00Z",
    )
    assert body["window"]["create_empty"] is False and body["filter"]["value"] == {"gte": 0}
    with pytest.raises(ButlrConfigurationError, match="no data interval"):
        sensor.build_plan({})


@pytest.mark.parametrize(
    ("day", "start", "end"),
    [
        ("2025-11-11", "2025-11-11T05:00:00Z", "2025-11-12T05:00:00Z"),
        ("2025-11-02", "2025-11-02T04:00:00Z", "2025-11-03T05:00:00Z"),  # DST ends: a 25-hour day
    ],
)
def test_local_day_uses_the_site_timezone(butlr_conn: Any, day: str, start: str, end: str) -> None:
    sensor = completeness_sensor(butlr_conn, start=None, stop=None, local_day=True)
    interval_start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    interval_end = interval_start + timedelta(days=1)
    plan = sensor.build_plan({"data_interval_start": interval_start, "data_interval_end": interval_end})
    condition = plan.conditions[0].to_dict()
    assert (condition["window_start"], condition["window_end"]) == (start, end)
    assert plan.requests[0].json["window"]["timezone"] == "America/New_York"


class FakeDag:
    def __init__(self, tz: str) -> None:
        from zoneinfo import ZoneInfo

        self.timezone = ZoneInfo(tz)


@pytest.mark.parametrize(
    ("context", "day"),
    [
        # Airflow 3's default CronTriggerTimetable: empty interval at the run time -> yesterday
        (
            {"logical_date": DAY_END, "data_interval_start": DAY_END, "data_interval_end": DAY_END},
            "2025-11-11",
        ),
        # a DAG in the site's timezone (Berlin): its interval starts at local midnight, 23:00 UTC
        (
            {
                "dag": FakeDag("Europe/Berlin"),
                "data_interval_start": datetime(2025, 11, 10, 23, tzinfo=UTC),
                "data_interval_end": datetime(2025, 11, 11, 23, tzinfo=UTC),
            },
            "2025-11-11",
        ),
    ],
)
def test_local_day_default_is_the_day_the_export_operators_use(
    butlr_conn: Any, context: dict[str, Any], day: str
) -> None:
    """local_day=True waits for the same local day that ButlrReportingOperator(local_day=True) exports."""
    from airflow_provider_butlr.reporting.times import local_day_bounds
    from airflow_provider_butlr.reporting.windows import run_day

    assert run_day(context).isoformat() == day
    sensor = completeness_sensor(
        butlr_conn,
        rooms=presence_rooms(butlr_conn, "Europe/Berlin", 2),
        floors=None,
        start=None,
        stop=None,
        local_day=True,
    )
    condition = sensor.build_plan(context).conditions[0].to_dict()  # type: ignore[arg-type]
    start, end = local_day_bounds(day, "Europe/Berlin")
    assert (condition["window_start"], condition["window_end"]) == (
        start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        end.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def test_local_day_refuses_assets_in_two_timezones(butlr_conn: Any) -> None:
    rooms = presence_rooms(butlr_conn, "America/New_York", 1) + presence_rooms(butlr_conn, "Europe/Berlin", 1)
    sensor = completeness_sensor(
        butlr_conn,
        rooms=rooms,
        floors=None,
        start=None,
        stop=None,
        local_day="2025-11-11",
    )
    with pytest.raises(ButlrConfigurationError, match=r"different timezones .*pass timezone"):
        sensor.build_plan({})
    sensor.timezone = "UTC"
    assert sensor.build_plan({}).conditions[0].to_dict()["window_start"] == "2025-11-11T00:00:00Z"


def test_templated_fields_render(butlr_conn: Any) -> None:
    sensor = completeness_sensor(
        butlr_conn,
        butlr_conn_id="{{ params.conn }}",
        rooms=["{{ params.room }}"],
        floors=None,
        start="{{ params.start }}",
        stop="{{ params.end }}",
    )
    context: dict[str, Any] = {
        "params": {
            "conn": "butlr_default",
            "room": "room_x",
            "start": "2025-11-11T00:00:00Z",
            "end": "2025-11-12T00:00:00Z",
        }
    }
    sensor.render_template_fields(context)  # type: ignore[arg-type]
    assert sensor.butlr_conn_id == "butlr_default"
    assert sensor.rooms == ["room_x"]
    assert sensor.build_plan({}).conditions[0].to_dict()["asset_ids"] == ["room_x"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rooms": None, "floors": None}, "at least one of floors, rooms, zones"),
        ({"stop": "yesterday"}, "stop: 'yesterday' is not an ISO 8601"),
        ({"local_day": True}, "pass either local_day or start/stop, not both"),
        ({"grace_period": -1}, "grace_period"),
        ({"check_every": "5 minutes"}, "check_every"),
        ({"max_null_percentage": 2}, "max_null_percentage"),
        ({"max_consecutive_failures": 0}, "max_consecutive_failures"),
        ({"max_ids_per_request": 0}, "max_ids_per_request"),
    ],
)
def test_completeness_argument_errors_name_the_argument(butlr_conn: Any, kwargs: dict, message: str) -> None:
    with pytest.raises(ButlrConfigurationError, match=message):
        completeness_sensor(butlr_conn, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"timeout": 1e300},
            r"timeout 1e\+300 must be a number of seconds or a timedelta from 0 to 3\.16224e\+07 s",
        ),
        ({"timeout": float("inf")}, "timeout inf must be"),
        ({"poke_interval": 1e12}, "poke_interval 1000000000000.0 must be"),
        ({"grace_period": timedelta(days=10**6)}, "grace_period .* must be"),
        ({"grace_period": float("nan")}, "grace_period nan must be"),
        ({"check_span": timedelta(days=400)}, r"check_span .* from 0 to 2\.6784e\+06 s"),
        (
            {"max_consecutive_failures": 10**9},
            r"max_consecutive_failures must be a positive integer \(at most 1000\)",
        ),
        ({"max_ids_per_request": 10**12}, r"max_ids_per_request must be a positive integer \(at most 1000\)"),
    ],
)
def test_absurd_sensor_numbers_are_refused_by_name(butlr_conn: Any, kwargs: dict, message: str) -> None:
    """Before: a timeout of 1e300 or infinity reached ``timedelta`` at deferral (OverflowError)."""
    with pytest.raises(ButlrConfigurationError, match=message):
        completeness_sensor(butlr_conn, **kwargs)
    assert butlr_conn.counters.total == 0


def test_wrong_id_kind_is_refused_at_plan_time(butlr_conn: Any) -> None:
    sensor = completeness_sensor(butlr_conn, rooms=["space_abc"], floors=None)
    with pytest.raises(ButlrConfigurationError, match="rooms: 'space_abc' is not a room id"):
        sensor.build_plan({})


def test_ids_are_batched_within_butlrs_budget(butlr_conn: Any) -> None:
    rooms = series_assets(butlr_conn.org, "room_occupancy", butlr_conn.config.seed)[:45]
    plan = completeness_sensor(butlr_conn, rooms=rooms, floors=None).build_plan({})
    assert [len(r.json["filter"]["rooms"]["eq"]) for r in plan.requests] == [30, 15]
    assert plan.conditions[0].to_dict()["requests"] == [0, 1]


# --- occupancy --------------------------------------------------------------------------------


def current_median(emu: Any, room: str, now: datetime, lookback: int = 5) -> float:
    """Ground truth: the median of the room's latest ``lookback`` minutes that the emulator serves."""
    newest = now - timedelta(minutes=emu.config.reporting_missing_minutes)
    values = minute_values(
        emu.org, "room_occupancy", room, newest - timedelta(minutes=lookback), newest, emu.config.seed
    )
    return float(statistics.median(v for _, v in values))


def crossing(emu: Any, room: str) -> tuple[datetime, datetime]:
    """A minute when the room is empty and a later one when someone is there (ground truth)."""
    moment = DAY_START + timedelta(hours=6)
    empty = None
    while moment < DAY_END:
        occupancy = current_median(emu, room, moment)
        if empty is None and occupancy == 0:
            empty = moment
        elif empty is not None and occupancy >= 1:
            return empty, moment
        moment += timedelta(minutes=10)
    raise AssertionError("no empty-then-occupied crossing in the seeded day")


def occupancy_sensor(room: str, **kwargs: Any) -> ButlrOccupancySensor:
    kwargs.setdefault("op", ">=")
    kwargs.setdefault("threshold", 1)
    kwargs.setdefault("source", "presence")
    kwargs.setdefault("poke_interval", 0.1)
    kwargs.setdefault("timeout", 60)
    kwargs.setdefault("deferrable", False)
    return ButlrOccupancySensor(task_id="wait_for_people", rooms=[room], **kwargs)


def test_occupancy_poke_succeeds_when_occupancy_crosses_the_threshold(butlr_conn: Any) -> None:
    room = presence_rooms(butlr_conn)[0]
    empty, occupied = crossing(butlr_conn, room)
    sensor = occupancy_sensor(room)
    with time_machine.travel(empty, tick=False) as clock:
        assert sensor.poke({}) is False
        clock.move_to(occupied)
        result = sensor.poke({})
    assert result
    details = result.xcom_value  # type: ignore[union-attr]
    assert details["occupancy"][room] == current_median(butlr_conn, room, occupied)
    bodies = [r.body_json for r in butlr_conn.counters.log if r.path == REPORTING]
    assert len(bodies) == 2
    assert bodies[0]["filter"]["stop"] != bodies[1]["filter"]["stop"]  # re-timed at every poll
    assert bodies[1]["window"] == {
        "every": "1m",
        "function": "median",
        "timezone": "UTC",
        "create_empty": False,
    }


def test_occupancy_empty_room_with_the_opposite_condition(butlr_conn: Any) -> None:
    room = presence_rooms(butlr_conn)[0]
    empty, occupied = crossing(butlr_conn, room)
    sensor = occupancy_sensor(room, op="<=", threshold=0)
    with time_machine.travel(occupied, tick=False) as clock:
        assert sensor.poke({}) is False
        clock.move_to(empty)
        assert sensor.poke({})


def test_occupancy_deferrable_succeeds_in_the_trigger(butlr_conn: Any) -> None:
    room = presence_rooms(butlr_conn)[0]
    empty, occupied = crossing(butlr_conn, room)
    sensor = occupancy_sensor(room, deferrable=True, timeout=24 * 3600)  # the clock jumps ahead below
    with time_machine.travel(empty, tick=True) as clock:
        deferred = deferral(sensor, {})
        _, kwargs = deferred.trigger.serialize()
        condition = kwargs["plan"]["conditions"][0]
        assert condition["type"] == "occupancy" and condition["latest"] == 5
        assert kwargs["plan"]["requests"][0]["lookback_seconds"] == 20 * 60
        event = run_trigger(deferred.trigger, after=0.3, action=lambda: clock.move_to(occupied))
    assert event["status"] == "success"
    details = sensor.execute_complete({}, event=event, **deferred.kwargs)
    assert details["occupancy"][room] >= 1


def test_occupancy_auto_reads_presence_and_traffic(butlr_conn: Any) -> None:
    traffic_rooms = set(series_assets(butlr_conn.org, "traffic_room_occupancy", butlr_conn.config.seed))
    room = next(r for r in presence_rooms(butlr_conn, count=50) if r in traffic_rooms)
    plan = occupancy_sensor(room, source="auto").build_plan({})
    measurements = [r.json["filter"]["measurements"] for r in plan.requests]
    assert measurements == [["room_occupancy"], ["traffic_room_occupancy"]]
    assert plan.requests[1].json["filter"]["calibrated"] == "true"
    with time_machine.travel(DAY_START + timedelta(hours=16), tick=False):
        result = occupancy_sensor(room, source="auto", op=">=", threshold=0).poke({})
    assert result and room in result.xcom_value["occupancy"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"zones": ["zone_a"]}, "exactly one of rooms, zones, floors"),
        ({"op": "gt"}, "op 'gt'"),
        ({"match": "most"}, "match 'most'"),
        ({"source": "camera"}, "source 'camera'"),
        ({"lookback_minutes": 0}, "lookback_minutes"),
        ({"search_minutes": 2}, "search_minutes"),
    ],
)
def test_occupancy_argument_errors_name_the_argument(kwargs: dict, message: str) -> None:
    with pytest.raises(ButlrConfigurationError, match=message):
        occupancy_sensor("room_a", **kwargs)
    with pytest.raises(ButlrConfigurationError, match="not available for zones"):
        ButlrOccupancySensor(task_id="z", zones=["zone_a"], source="traffic")


# --- generic sensor ---------------------------------------------------------------------------


def reporting_body(room: str, start: datetime, stop: datetime) -> dict[str, Any]:
    return {
        "filter": {
            "measurements": ["room_occupancy"],
            "rooms": {"eq": [room]},
            "start": start.isoformat(),
            "stop": stop.isoformat(),
            "value": {"gte": 0},
        },
        "window": {"every": "1h", "function": "max", "timezone": "UTC"},
    }


def test_generic_sensor_with_declarative_conditions(butlr_conn: Any) -> None:
    room = presence_rooms(butlr_conn)[0]
    sensor = ButlrSensor(
        task_id="generic",
        endpoint=REPORTING,
        json=reporting_body(room, DAY_START, DAY_END),
        conditions=[
            {"type": "value_at", "path": "data.*.value", "op": ">=", "value": 1, "quantifier": "any"},
            {"type": "rows_complete", "min_rows": 24},
        ],
        poke_interval=0.1,
        timeout=5,
        deferrable=False,
    )
    with time_machine.travel(DAY_END + timedelta(hours=1), tick=False):
        details = sensor.execute({})
    assert [c["met"] for c in details["conditions"]] == [True, True]


def test_generic_sensor_response_check_still_defers_and_re_defers(butlr_conn: Any) -> None:
    answers = iter([False, False, True])
    seen: list[Any] = []

    def check(payload: dict[str, Any], data_interval_end: Any = None) -> bool:
        seen.append(data_interval_end)
        assert payload["data"]["sites"]["data"]
        return next(answers)

    sensor = ButlrSensor(
        task_id="generic",
        endpoint=GRAPHQL,
        json={"query": "{ sites { data { id } } }"},
        response_check=check,
        deferrable=True,
        poke_interval=0.1,
        timeout=60,
    )
    context = {"data_interval_end": DAY_END}
    first = deferral(sensor, context)  # checked once on the worker (False), then deferred
    assert first.trigger.serialize()[1]["return_responses"] is True
    event = run_trigger(first.trigger)
    assert event["status"] == "success" and event["responses"]
    with pytest.raises(TaskDeferred) as again:  # the callable said no: defer again, same deadline
        sensor.execute_complete(context, event=event, **first.kwargs)
    assert again.value.kwargs["deadline"] == first.kwargs["deadline"]
    event = run_trigger(again.value.trigger)
    assert sensor.execute_complete(context, event=event, **again.value.kwargs) is not None
    assert seen == [DAY_END] * 3


def test_exponential_backoff_carries_over_re_deferrals(
    butlr_conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A response_check that keeps saying no re-defers: the waits keep doubling (up to max_wait), as in poke mode."""
    import importlib

    asked: list[float] = []

    async def no_sleep(seconds: float, *args: Any) -> None:
        """Not slept: each trigger polls once, then hands the answer to the worker."""

    def record_interval(now: float, interval: float, previous: float | None = None) -> float:
        asked.append(interval)  # the interval whose clock grid the next poll waits for
        return interval

    trigger_module = importlib.import_module(ButlrTrigger.__module__)
    monkeypatch.setattr(trigger_module.asyncio, "sleep", no_sleep)
    monkeypatch.setattr(trigger_module, "aligned_wait", record_interval)
    sensor = ButlrSensor(
        task_id="generic",
        endpoint=GRAPHQL,
        json={"query": "{ sites { data { id } } }"},
        response_check=lambda payload: False,
        deferrable=True,
        poke_interval=5,
        exponential_backoff=True,
        max_wait=30,
        timeout=3600,
    )
    deferred = deferral(sensor, {})
    deadline = deferred.kwargs["deadline"]
    for _ in range(5):
        event = run_trigger(deferred.trigger)
        assert event["status"] == "success"
        with pytest.raises(TaskDeferred) as again:
            sensor.execute_complete({}, event=event, **deferred.kwargs)
        deferred = again.value
        assert deferred.kwargs["deadline"] == deadline
    assert asked == [5, 5, 10, 20, 30]


def test_response_check_false_at_the_deadline_times_out(butlr_conn: Any) -> None:
    sensor = ButlrSensor(
        task_id="generic",
        endpoint=GRAPHQL,
        json={"query": "{ sites { data { id } } }"},
        response_check=lambda p: False,
    )
    event = {"status": "success", "message": "ok", "responses": [{"data": {}}]}
    with pytest.raises(AirflowSensorTimeout, match="response_check still false"):
        sensor.execute_complete({}, event=event, deadline=0.0)


@pytest.mark.parametrize(
    ("event", "error", "message"),
    [
        ({"status": "error", "message": "Butlr poll failed 3 time(s)"}, ButlrError, "failed 3 time"),
        ({"status": "timeout", "message": "not met by the deadline"}, AirflowSensorTimeout, "deadline"),
        ({"status": "maybe"}, ButlrError, "unexpected trigger event"),
        (None, ButlrError, "unexpected trigger event"),
    ],
)
def test_execute_complete_raises_on_error_timeout_and_bad_events(
    event: Any, error: type, message: str
) -> None:
    sensor = ButlrSensor(task_id="generic", endpoint=GRAPHQL)
    with pytest.raises(error, match=message):
        sensor.execute_complete({}, event=event, deadline=0.0)


def test_execute_complete_success_returns_the_summary() -> None:
    sensor = ButlrSensor(task_id="generic", endpoint=GRAPHQL)
    event = {"status": "success", "message": "met", "summary": {"matched": 1}}
    assert sensor.execute_complete({}, event=event, deadline=0.0) == {"matched": 1}


def test_soft_fail_turns_a_trigger_timeout_into_a_skip() -> None:
    sensor = ButlrSensor(task_id="generic", endpoint=GRAPHQL, soft_fail=True)
    event = {"status": "timeout", "message": "not met by the deadline"}
    with pytest.raises(AirflowSkipException):
        sensor.resume_execution("execute_complete", {"event": event, "deadline": 0.0}, {})  # type: ignore[arg-type]


def test_poke_mode_timeout_and_soft_fail(butlr_conn: Any) -> None:
    never = [{"type": "value_at", "path": "data.sites.data.0.id", "op": "==", "value": "nope"}]
    common: dict[str, Any] = dict(
        endpoint=GRAPHQL, json={"query": "{ sites { data { id } } }"}, conditions=never
    )
    with pytest.raises(AirflowSensorTimeout):
        ButlrSensor(task_id="t", poke_interval=0.1, timeout=0.3, deferrable=False, **common).execute({})
    with pytest.raises(AirflowSkipException):
        ButlrSensor(
            task_id="t", poke_interval=0.1, timeout=0.3, soft_fail=True, deferrable=False, **common
        ).execute({})


def test_reschedule_mode_frees_the_worker(butlr_conn: Any) -> None:
    never = [{"type": "value_at", "path": "data.sites.data.0.id", "op": "==", "value": "nope"}]
    sensor = ButlrSensor(
        task_id="t",
        endpoint=GRAPHQL,
        json={"query": "{ sites { data { id } } }"},
        conditions=never,
        mode="reschedule",
        poke_interval=30,
        deferrable=False,
    )
    with pytest.raises(AirflowRescheduleException):
        sensor.execute({"ti": FakeTaskInstance()})  # type: ignore[dict-item]
    assert butlr_conn.counters.requests(GRAPHQL) == 1


def test_graphql_errors_fail_the_poke(butlr_conn: Any) -> None:
    butlr_conn.faults.add(path=GRAPHQL, kind="graphql_partial")
    sensor = ButlrSensor(
        task_id="t", endpoint=GRAPHQL, json={"query": "{ sites { data { id } } }"}, deferrable=False
    )
    with pytest.raises(ButlrGraphQLError, match="injected partial failure"):
        sensor.poke({})


def test_deferrable_defaults_to_airflow_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    assert ButlrSensor(task_id="t", endpoint=GRAPHQL).deferrable is True
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "False")
    assert ButlrSensor(task_id="t", endpoint=GRAPHQL).deferrable is False
    assert ButlrSensor(task_id="t", endpoint=GRAPHQL, deferrable=True).deferrable is True


def test_backoff_settings_reach_the_trigger(butlr_conn: Any) -> None:
    sensor = ButlrSensor(
        task_id="t",
        endpoint=GRAPHQL,
        json={"query": "{ sites { data { id } } }"},
        conditions=[{"type": "value_at", "path": "data.sites.data.0.id", "op": "==", "value": "nope"}],
        deferrable=True,
        poke_interval=5,
        exponential_backoff=True,
        max_wait=120,
        max_consecutive_failures=7,
        max_retries=2,
    )
    kwargs = deferral(sensor, {}).trigger.serialize()[1]
    assert kwargs["poll_interval"] == 5.0
    assert kwargs["exponential_backoff"] is True and kwargs["max_poll_interval"] == 120.0
    assert kwargs["max_consecutive_failures"] == 7 and kwargs["hook_params"] == {"max_retries": 2}


def test_generic_argument_errors() -> None:
    with pytest.raises(ButlrConfigurationError, match="method 'PUT'"):
        ButlrSensor(task_id="t", endpoint=GRAPHQL, method="PUT")
    with pytest.raises(ButlrConfigurationError, match="response_check must be callable"):
        ButlrSensor(task_id="t", endpoint=GRAPHQL, response_check="yes")  # type: ignore[arg-type]
    sensor = ButlrSensor(
        task_id="t", endpoint=GRAPHQL, conditions=[{"type": "value_at", "path": "x", "op": "~"}]
    )
    with pytest.raises(ButlrConfigurationError, match=r"conditions\[0\]"):
        sensor.build_plan({})
