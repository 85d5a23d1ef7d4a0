"""Webhook delivery as another process sees it: the clock-driven thread, retries, timeouts, the loopback
guard, the admin API and its client, the CLI flags, and no secret in any answer or log."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from airflow_provider_butlr.testing import ButlrEmulator, EmulatorAdminClient, EmulatorAdminError
from airflow_provider_butlr.testing.cli import banner, build, parse_args
from tests.integration.emulator.webhook_receiver import receiver

START = datetime(2025, 11, 5, 15, 20, 30, tzinfo=UTC)
SECRET = "hook-secret-value-7f3a"


@pytest.fixture
def frozen(emu: ButlrEmulator) -> Iterator[ButlrEmulator]:
    emu.config.webhook_revision_rate = emu.config.webhook_duplicate_rate = 0.0
    emu.config.webhook_shuffle = False
    emu.config.webhook_retry_backoff = 0.05
    emu.clock.freeze(START)
    yield emu


def one_room(emu: ButlrEmulator) -> dict[str, list[str]]:
    return {"room_ids": [next(iter(emu.org.rooms_by_id))]}


def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_thread_delivers_the_minutes_the_clock_passes(frozen: ButlrEmulator) -> None:
    with receiver() as rx:
        frozen.subscribe(rx.url(), ["ROOM_OCCUPANCY_1MIN"], filters=one_room(frozen))
        time.sleep(0.2)
        assert rx.received == []  # minute 15:20 is not over yet
        frozen.clock.advance(120)  # the clock wakes the thread: no deliver_now here
        rx.wait_for(2)
        assert [e["timestamp"] for e in rx.events] == [1762356000000, 1762356060000]
        frozen.clock.set(datetime(2025, 11, 5, 15, 10, tzinfo=UTC), tick=False)  # back in time
        time.sleep(0.3)
        frozen.clock.advance(60)
        rx.wait_for(3)
        assert rx.events[-1]["timestamp"] == 1762355400000  # 15:10 again, once time passed it
        frozen.config.webhook_max_catchup_minutes = 5
        frozen.clock.advance(3 * 3600)  # a jump: only the last 5 minutes are delivered
        rx.wait_for(8)
        time.sleep(0.2)
        assert len(rx.received) == 8
        assert frozen.deliverer.summary()[0]["skipped_minutes"] == 3 * 60 - 5


def test_real_time_ticking_delivers_at_the_minute_boundary(emu: ButlrEmulator) -> None:
    emu.config.webhook_revision_rate = emu.config.webhook_duplicate_rate = 0.0
    emu.clock.set(datetime(2025, 11, 5, 15, 20, 59, 700000, tzinfo=UTC))  # ticking, 0.3 s before 15:21
    with receiver() as rx:
        emu.subscribe(
            rx.url(), ["FLOOR_OCCUPANCY_1MIN"], filters={"floor_ids": [next(iter(emu.org.floors_by_id))]}
        )
        events = rx.wait_for(1, timeout=5)
    assert [e["timestamp"] for e in events] == [1762356000000]


def test_retries_then_delivered_and_a_permanent_refusal_is_final(frozen: ButlrEmulator) -> None:
    frozen.config.webhook_auto_delivery = False
    with receiver(statuses=[503, 429]) as rx:
        frozen.subscribe(rx.url(), ["ROOM_OCCUPANCY_1MIN"], filters=one_room(frozen))
        frozen.clock.advance(60)
        (first,) = frozen.deliver_now()
        assert (first["status"], first["status_code"], first["attempts"]) == ("delivered", 200, 3)
        assert [r.body["id"] for r in rx.received] == [first["event_id"]] * 3  # the same event, re-sent
        rx.default_status = 400
        frozen.clock.advance(60)
        (refused,) = frozen.deliver_now()
        assert (refused["status"], refused["status_code"], refused["attempts"]) == ("failed", 400, 1)


def test_the_thread_retries_after_the_backoff_and_gives_up_after_the_last_retry(
    frozen: ButlrEmulator,
) -> None:
    frozen.config.webhook_retries = 2
    with receiver(default_status=500) as rx:
        hook = frozen.subscribe(rx.url(), ["ROOM_OCCUPANCY_1MIN"], filters=one_room(frozen))
        frozen.clock.advance(60)
        wait_until(lambda: frozen.deliverer.deliveries(status="failed"))
        (record,) = frozen.deliverer.deliveries(hook["id"])
        assert (record["attempts"], record["status_code"], len(rx.received)) == (3, 500, 3)


def test_a_slow_receiver_times_out_and_is_retried(frozen: ButlrEmulator) -> None:
    frozen.config.webhook_auto_delivery = False
    frozen.config.webhook_retries = 1
    with receiver(delay=1.5) as rx:
        frozen.subscribe(rx.url(), ["ROOM_OCCUPANCY_1MIN"], filters=one_room(frozen), http_timeout=1)
        frozen.clock.advance(60)
        started = time.monotonic()
        (record,) = frozen.deliver_now()
        assert time.monotonic() - started < 1.5 * 2
    assert record["status"] == "failed" and record["attempts"] == 2
    assert record["error"] == "timed out after 1 s" and len(rx.received) == 2


@pytest.mark.parametrize(
    "url", ["http://192.0.2.10/hook", "https://hooks.example.invalid/x", "http://10.0.0.1:8080/"]
)
def test_nothing_is_sent_off_loopback(frozen: ButlrEmulator, url: str) -> None:
    frozen.config.webhook_auto_delivery = False
    frozen.subscribe(url, ["ROOM_OCCUPANCY_1MIN"], filters=one_room(frozen))
    frozen.clock.advance(60)
    (record,) = frozen.deliver_now()
    assert record["status"] == "blocked" and record["attempts"] == 1 and record["status_code"] is None
    assert "not a loopback address" in record["error"] and "--webhook-allow-remote" in record["error"]
    assert record["duration_ms"] < 50  # refused before any name lookup or connection


def test_localhost_and_ipv4_loopback_are_delivered(frozen: ButlrEmulator) -> None:
    frozen.config.webhook_auto_delivery = False
    with receiver() as rx:
        frozen.subscribe(f"http://localhost:{rx.port}/h", ["ROOM_OCCUPANCY_1MIN"], filters=one_room(frozen))
        frozen.clock.advance(60)
        (record,) = frozen.deliver_now()
    assert record["status"] == "delivered" and len(rx.received) == 1


def test_the_admin_api_and_its_client(frozen: ButlrEmulator, caplog: pytest.LogCaptureFixture) -> None:
    frozen.config.webhook_auto_delivery = False
    caplog.set_level(logging.DEBUG)
    with receiver(statuses=[500]) as rx, EmulatorAdminClient(frozen.url) as admin:
        hook = admin.subscribe(
            rx.url() + "?token=in-the-query",
            ["ROOM_OCCUPANCY_1MIN"],
            api_key={"key": "X-Key", "value": SECRET},
            filters=one_room(frozen),
        )
        assert hook["url"] == rx.url() and hook["auth"] == "api_key"
        with pytest.raises(EmulatorAdminError, match="already has a webhook subscription"):
            admin.subscribe(rx.url(), ["ROOM_OCCUPANCY_1MIN"])
        admin.advance(60)
        records = admin.deliver_now()
        assert [(r["status"], r["status_code"], r["attempts"]) for r in records] == [("delivered", 200, 2)]
        assert (
            rx.received[0].path == "/butlr?token=in-the-query" and rx.received[0].headers["x-key"] == SECRET
        )
        admin.advance(60)
        admin.deliver_now()
        assert [r["minute"] for r in admin.deliveries(hook["id"])] == [
            "2025-11-05T15:20:00Z",
            "2025-11-05T15:21:00Z",
        ]
        assert admin.deliveries(status="delivered", limit=1, payload=False)[0].get("payload") is None
        listed = admin.webhooks()
        assert [(h["id"], h["delivered"], h["failed"], h["next_minute"]) for h in listed] == [
            (hook["id"], 2, 0, "2025-11-05T15:22:00Z")
        ]
        answers = str([listed, admin.deliveries(), admin.config()])
        assert SECRET not in answers and "in-the-query" not in answers
        assert admin.clear_deliveries() == 2 and admin.deliveries() == []
        admin.unsubscribe(hook["id"])
        assert admin.webhooks() == []
        with pytest.raises(EmulatorAdminError, match="no webhook"):
            admin.unsubscribe(hook["id"])
        assert admin.reporting_requests() == 0
    assert SECRET not in caplog.text and "in-the-query" not in caplog.text


def test_the_cli_starts_with_a_subscription(tmp_path: Any) -> None:
    with receiver() as rx:
        args = parse_args(
            ["--port", "0", "--clock", "2025-11-05T15:20:30Z", "--frozen", "--webhook-url", rx.url(),
             "--webhook-events", "FLOOR_OCCUPANCY_1MIN,TRAFFIC", "--webhook-basic-auth", f"user:{SECRET}",
             "--webhook-tidy"]
        )  # fmt: skip
        emu = build(args)
        with emu:
            (hook,) = emu.deliverer.summary()
            assert hook["event_types"] == ["FLOOR_OCCUPANCY_1MIN", "TRAFFIC"] and hook["auth"] == "basic"
            text = banner(emu)
            assert hook["id"] in text and rx.url() in text and SECRET not in text
            emu.clock.advance(60)
            rx.wait_for(1)
    assert rx.received[0].headers["authorization"].startswith("Basic ")
    assert emu.config.webhook_revision_rate == 0 and not emu.config.webhook_shuffle
    with pytest.raises(ValueError, match=r"not a loopback address.*--webhook-allow-remote"):
        build(parse_args(["--webhook-url", "http://192.0.2.10/x"]))
    with pytest.raises(ValueError, match="--webhook-api-key must look like HEADER=VALUE") as err:
        build(parse_args(["--webhook-url", "http://127.0.0.1:9/x", "--webhook-api-key", SECRET]))
    assert SECRET not in str(err.value)
    allowed = build(parse_args(["--webhook-url", "http://192.0.2.10/x", "--webhook-allow-remote"]))
    assert allowed.config.webhook_allow_remote and len(allowed.webhooks.all()) == 1


def test_reset_and_stop_do_not_wait_for_a_slow_receiver(frozen: ButlrEmulator) -> None:
    """A pass to a slow receiver (96 rooms x 1 s) stops at its next event when the emulator resets."""
    with receiver(delay=1.0) as rx:
        frozen.subscribe(rx.url(), ["ROOM_OCCUPANCY_1MIN"], http_timeout=5)
        frozen.clock.advance(60)
        rx.wait_for(1)
        started = time.monotonic()
        frozen.reset()
        assert time.monotonic() - started < 3
        assert frozen.deliverer.deliveries() == [] and frozen.webhooks.all() == []
        time.sleep(1.2)
    assert len(rx.received) <= 3  # nothing more was sent after the reset


def test_subscriptions_refuse_unusable_endpoint_configs(emu: ButlrEmulator) -> None:
    with pytest.raises(ValueError, match="apiKey needs the strings key and value"):
        emu.subscribe("http://127.0.0.1:9/x", api_key={"key": "X-Key"})
    with pytest.raises(ValueError, match="httpTimeout must be a whole number"):
        emu.subscribe("http://127.0.0.1:9/x", http_timeout=0)
    with pytest.raises(ValueError, match="event_types: unknown"):
        emu.subscribe("http://127.0.0.1:9/x", ["ROOM_OCCUPANCY_5MIN"])
    assert emu.webhooks.all() == []
