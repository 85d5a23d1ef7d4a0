"""The receiver over real HTTP: the emulator delivers to it (uvicorn on loopback), it records asset
events in a migrated SQLite metadata DB. Authentication, validation, dedup, revisions, order."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from airflow_provider_butlr.webhooks.assets import room_state_asset, stream_asset
from tests.support.webhook_push import HOLD, Push, find_crossing
from tests.support.webhooks import HEADER, KEY, asset_events, declare_assets, event, stream_states

pytestmark = pytest.mark.dag  # needs the migrated metadata DB


def post(
    url: str, body: Any, *, key: str | None = KEY, headers: dict[str, str] | None = None, **kw: Any
) -> Any:
    sent = {"Content-Type": "application/json", **(headers or {})}
    if key is not None:
        sent[HEADER] = key
    data = body if isinstance(body, (bytes, str, Iterator)) or body is None else json.dumps(body)
    return requests.post(url, data=data, headers=sent, timeout=10, **kw)


def minute_of(moment: dt.datetime) -> int:
    return int(moment.timestamp()) // 60


@pytest.fixture
def crossing(push: Push) -> Any:
    found = find_crossing(push.emu)
    declare_assets(
        room_state_asset("rooms", found.room, "empty", for_minutes=HOLD), stream_asset("rooms", found.room)
    )
    return found


def start_before(push: Push, moment: dt.datetime) -> None:
    push.emu.clock.set(moment + dt.timedelta(seconds=30), tick=False)  # frozen inside that minute


def empty_events(room: str) -> list[dict[str, Any]]:
    return asset_events(f"butlr://api.butlr.io/rooms/{room}/empty")


def test_one_crossing_one_event_with_duplicates_revisions_and_shuffling(push: Push, crossing: Any) -> None:
    emu = push.emu
    emu.config.webhook_duplicate_rate = 1.0  # every event POSTed twice
    emu.config.webhook_revision_rate = 0.5  # half the provisional values off by one, revised later
    emu.config.webhook_shuffle = True
    start_before(push, crossing.occupied)
    push.subscribe(["ROOM_OCCUPANCY_1MIN"], crossing.room)
    records = push.minutes(len(crossing.values) + 4)  # + the look-back: every minute final

    assert records and all(r["status"] == "delivered" for r in records)
    assert any(r["duplicate"] for r in records) and any(r["revision"] > 0 for r in records)
    [fired] = empty_events(crossing.room)
    payload = fired["payload"]
    assert payload["crossed_at"] == crossing.empty.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert payload["condition"] == f"occupancy <= 0 for {HOLD} min" and payload["asset_id"] == crossing.room
    assert payload["metadata"]["room_id"] == crossing.room and payload["metadata"]["room_name"]
    # the stream asset: one event per accepted change (a new minute, or a value other than the latest
    # of its minute), in delivery order; duplicates never
    latest: dict[str, int] = {}
    expected = []
    for record in records:
        minute, value = record["minute"], record["payload"]["data"]
        if latest.get(minute) != value:
            expected.append((minute, value))
            latest[minute] = value
    stream = asset_events(f"butlr://api.butlr.io/rooms/{crossing.room}/occupancy")
    assert [(e["payload"]["timestamp"], e["payload"]["value"]) for e in stream] == expected
    assert len(expected) < len(records) and any(e["payload"]["revision"] for e in stream)
    # what the receiver kept is the final value of every minute: the ground truth
    [state] = stream_states().values()
    kept = {dt.datetime.fromtimestamp(ts / 1000, dt.UTC): value for ts, value, _ in state["seen"]}
    assert all(kept[moment] == value for moment, value in crossing.values)


def test_the_crossing_fires_when_its_last_minute_arrives_not_before(push: Push, crossing: Any) -> None:
    start_before(push, crossing.occupied)
    push.subscribe(["ROOM_OCCUPANCY_1MIN"], crossing.room)
    occupied = (crossing.empty - crossing.occupied) // dt.timedelta(minutes=1)
    push.minutes(occupied + HOLD - 1)  # the crossing's last minute is still in progress
    assert empty_events(crossing.room) == []
    push.minutes(1)
    assert len(empty_events(crossing.room)) == 1
    push.minutes(10)
    assert len(empty_events(crossing.room)) == 1


def test_a_wrong_key_gets_401_and_nothing_is_recorded(push: Push, crossing: Any) -> None:
    start_before(push, crossing.occupied)
    push.subscribe(["ROOM_OCCUPANCY_1MIN"], crossing.room, api_key={"key": HEADER, "value": "wrong-" + KEY})
    records = push.minutes(len(crossing.values))
    assert records and {(r["status"], r["status_code"]) for r in records} == {("failed", 401)}
    assert asset_events() == [] and stream_states() == {}


def test_basic_auth_from_the_connection(push: Push, crossing: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.webhooks import receiver_connection

    monkeypatch.setenv(
        "AIRFLOW_CONN_BUTLR_WEBHOOK_DEFAULT",
        receiver_connection(push.url, push.org_id, auth="basic", login="butlr"),
    )
    start_before(push, crossing.occupied)
    hook = push.subscribe(
        ["ROOM_OCCUPANCY_1MIN"],
        crossing.room,
        api_key=None,
        basic_auth={"username": "butlr", "password": KEY},
    )
    push.minutes(3)
    assert asset_events() and all(r["status"] == "delivered" for r in push.emu.deliverer.deliveries())
    push.emu.webhooks.delete([hook["id"]])
    answer = post(
        push.url, {}, key=None, headers={"Authorization": "Basic " + base64.b64encode(b"butlr:nope").decode()}
    )
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("Basic")


@pytest.fixture
def caught(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG):
        yield caplog


def test_bad_input_gets_a_clear_4xx_nothing_recorded_nothing_leaked(
    push: Push, crossing: Any, caught: pytest.LogCaptureFixture
) -> None:
    good = event(crossing.room, minute_of(crossing.empty), 0, org_id=push.org_id)
    foreign = json.loads(json.dumps(good))
    foreign["metadata"]["org_id"] = "org_2someoneElse0000000000000"
    cases = [
        (post(push.url, good, key=None), 401),
        (post(push.url, good, key="x" * len(KEY)), 401),
        (post(push.url, b'{"pad": "' + b"x" * 70_000 + b'"}', key=KEY), 413),  # Content-Length says it
        (post(push.url, iter([b"{", b" " * 70_000, b"}"]), key=KEY), 413),  # chunked: no length announced
        (post(push.url, b"{not json", key=KEY), 400),
        (post(push.url, "[" * 10_000 + "]" * 10_000, key=KEY), 400),  # nested absurdly deep
        (post(push.url, good, headers={"Content-Type": "text/plain"}), 415),
        (post(push.url, gzip.compress(json.dumps(good).encode()), headers={"Content-Encoding": "gzip"}), 415),
        (post(push.url, {**good, "type": "ROOM_OCCUPANCY_2MIN"}), 422),
        (post(push.url, {**good, "data": -3}), 422),
        (post(push.url, {**good, "timestamp": "yesterday"}), 422),
        (post(push.url, foreign), 403),
    ]
    assert [(a.status_code, expected) for a, expected in cases] == [(e, e) for _, e in cases]
    for answer, _ in cases:
        assert set(answer.json()) == {"error"} and KEY not in answer.text
    assert asset_events() == [] and stream_states() == {}
    assert KEY not in caught.text
    assert post(push.url, good).status_code == 200  # and the same event, well sent, is accepted


def test_out_of_order_minutes_and_late_retries(push: Push, crossing: Any) -> None:
    minutes = [(minute_of(moment), value) for moment, value in crossing.values]
    order = [*range(0, len(minutes), 2), *range(1, len(minutes), 2)]  # evens first, then odds late
    answers = [post(push.url, event(crossing.room, *minutes[i], org_id=push.org_id)).json() for i in order]
    assert {a["status"] for a in answers} == {"new"}
    late = post(push.url, event(crossing.room, *minutes[0], org_id=push.org_id)).json()
    assert late["status"] == "duplicate"
    revised = event(
        crossing.room, minutes[0][0], minutes[0][1] + 1, org_id=push.org_id, event_id="event_revised"
    )
    assert post(push.url, revised).json()["status"] == "revision"
    assert (
        post(push.url, event(crossing.room, *minutes[0], org_id=push.org_id)).json()["status"] == "duplicate"
    )
    [fired] = empty_events(crossing.room)
    assert fired["payload"]["crossed_at"] == crossing.empty.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_events_nothing_declares_are_acknowledged_and_write_nothing(push: Push) -> None:
    answer = post(push.url, event("room_2nobodyWatchesThis000000000", 29_000_000, 1, org_id=push.org_id))
    assert answer.status_code == 202 and answer.json()["status"] == "ignored"
    pir = {**event("room_x", 29_000_000, 1, org_id=push.org_id), "type": "PIR_MOTION", "data": {"m": 1}}
    assert post(push.url, pir).json() == {"status": "ignored", "reason": "PIR_MOTION events are not recorded"}
    assert stream_states() == {} and asset_events() == []


def test_traffic_and_real_time_streams(push: Push, crossing: Any) -> None:
    declare_assets(
        stream_asset("rooms", crossing.room, "traffic"),
        stream_asset("rooms", crossing.room, "occupancy_realtime"),
    )
    start_before(push, crossing.occupied)
    push.subscribe(["ROOM_OCCUPANCY", "TRAFFIC"], crossing.room)
    records = push.minutes(len(crossing.values))
    realtime = asset_events(f"butlr://api.butlr.io/rooms/{crossing.room}/occupancy_realtime")
    assert len(realtime) == sum(r["event_type"] == "ROOM_OCCUPANCY" for r in records) > 0
    traffic = asset_events(f"butlr://api.butlr.io/rooms/{crossing.room}/traffic")
    assert len(traffic) == sum(r["event_type"] == "TRAFFIC" for r in records)
    assert all(set(e["payload"]["value"]) == {"in", "out"} for e in traffic)
    assert empty_events(crossing.room) == []  # conditions read the 1-minute rollups only


def test_an_unconfigured_receiver_refuses_everything_with_503(
    push: Push, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_BUTLR_WEBHOOK_DEFAULT")
    answer = post(push.url, event("room_x", 29_000_000, 1, org_id=push.org_id))
    assert answer.status_code == 503 and "not configured" in answer.json()["error"]


def test_two_replicas_record_each_change_once(push: Push, crossing: Any) -> None:
    """A second receiver in another process, same database: every event lands on both at once, twice
    each. No state lives in a replica's memory, so each change is recorded once, the crossing once."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from tests.support.webhooks import serve_in_process

    env = {"AIRFLOW_CONN_BUTLR_WEBHOOK_DEFAULT": os.environ["AIRFLOW_CONN_BUTLR_WEBHOOK_DEFAULT"]}
    with serve_in_process(env) as second, ThreadPoolExecutor(4) as pool:
        urls = [push.url, second.url, second.url, push.url]
        for moment, value in crossing.values:
            body = event(crossing.room, minute_of(moment), value, org_id=push.org_id)
            statuses = sorted(pool.map(lambda url, body=body: post(url, body).json()["status"], urls))
            assert statuses == ["duplicate", "duplicate", "duplicate", "new"], moment
    stream = asset_events(f"butlr://api.butlr.io/rooms/{crossing.room}/occupancy")
    assert len(stream) == len(crossing.values)
    [fired] = empty_events(crossing.room)
    assert fired["payload"]["crossed_at"] == crossing.empty.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_the_plugin_mounts_the_receiver_at_butlr_webhooks(push: Push, crossing: Any) -> None:
    """The plugin's app, mounted as the api-server mounts ``fastapi_apps``, is the receiver."""
    from airflow_provider_butlr import get_provider_info
    from tests.support.webhooks import mounted_app, serve_in_thread

    assert get_provider_info()["plugins"] == [
        {
            "name": "butlr_webhooks",
            "plugin-class": "airflow_provider_butlr.webhooks.plugin.ButlrWebhooksPlugin",
        }
    ]
    with serve_in_thread(mounted_app()) as served:
        body = event(crossing.room, minute_of(crossing.occupied), 1, org_id=push.org_id)
        assert post(served.url, body).json()["status"] == "new"
        assert post(served.url, body, key="wrong-" + KEY).status_code == 401
        assert requests.get(served.url, timeout=10).status_code == 405
