"""Scenario 8: 1,000 webhook events per minute into one api-server's receiver (issue 24).

A real ``airflow api-server`` (one worker, SQLite metadata DB, the provider's plugin at
``/butlr/webhooks``) on loopback; 100 rooms have declared assets (the ``occupancy`` stream and an
``empty`` state, so each accepted event is a database transaction: the stream's state row locked,
read and written, an asset event recorded, asset-scheduled runs queued). The load is Butlr's shape:
``ROOM_OCCUPANCY_1MIN`` events, one new TCP connection per POST (as the emulator delivers), 2 %
duplicates, 5 % revisions of an earlier minute, 10 % about rooms nothing declares.

* paced: 1,000 events in 60 s (16.7/s; 200 in 12 s with ``--quick``) from 8 sender threads; every
  answer's time (client side, loopback), errors, and the time per kind of event (what the database
  costs: ignored = no query, duplicate = lock + read, new = lock + read + write + asset event);
* burst: the same count again, as fast as 8 senders go: the receiver's throughput.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.common import Line, ScenarioResult, Settings, Target, median, percentile

KEY = "webhooks"
TITLE = "Webhook receiver: 1,000 events per minute into one api-server"
ORG = "org_2benchmarkOrg0000000000000"
SECRET = "bench-webhook-key-Jr5Wq8Zt2Lm7Xc4"
HEADER = "X-Butlr-Webhook-Key"
ROOMS = 100
SENDERS = 8
T0 = 29_400_000  # Unix minutes (2025-11-24)


def _room(i: int) -> str:
    return f"room_2bench{i:022d}"


def _event(room: str, minute: int, value: int, suffix: str = "") -> dict[str, Any]:
    return {
        "id": f"event_{room[-6:]}{minute}{value}{suffix}",
        "type": "ROOM_OCCUPANCY_1MIN",
        "timestamp": minute * 60_000,
        "version": "v1.0.0",
        "metadata": {
            "org_id": ORG,
            "room_id": room,
            "floor_id": "space_2benchFloor",
            "room_name": f"Room {room[-3:]}",
        },
        "data": value,
    }


def workload(count: int, first_minute: int) -> list[tuple[str, dict[str, Any]]]:
    """``(kind, event)``: new minutes of the declared rooms, with duplicates, revisions and strangers."""
    events: list[tuple[str, dict[str, Any]]] = []
    minute, room = first_minute, 0
    while len(events) < count:
        n = len(events)
        if n % 50 == 49:
            events.append(("duplicate", events[-1][1]))
        elif n % 20 == 19 and minute > first_minute:
            earlier = _event(_room(room), minute - 1, 7, "r")
            events.append(("revision", earlier))
        elif n % 10 == 9:
            events.append(("ignored", _event(f"room_2stranger{n:018d}", minute, 1)))
        else:
            events.append(("new", _event(_room(room), minute, (minute + room) % 3)))
            room += 1
            if room == ROOMS:
                room, minute = 0, minute + 1
    return events


class ApiServer:
    """``airflow api-server`` in its own session on a free port, with the receiver's connection."""

    def __init__(self, work: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}/butlr/webhooks"
        self.log = work / "api-server.log"
        connection = {"conn_type": "generic", "host": self.url, "password": SECRET, "extra": {"org_id": ORG}}
        self.env = {
            **os.environ,
            "AIRFLOW__API_AUTH__JWT_SECRET": "bench-" + "j" * 64,
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AIRFLOW_CONN_BUTLR_WEBHOOK_DEFAULT": json.dumps(connection),
        }
        self.cwd = work  # not the checkout: its egg-info would list the plugin's entry point twice
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ApiServer:
        import requests

        cmd = [sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [*cmd, "--workers", "1"],
                env=self.env,
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 180
        while True:
            try:
                if requests.post(self.url, json={}, timeout=2).status_code == 401:
                    return self
            except requests.RequestException:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the api-server did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.5)

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def _declare_rooms() -> None:
    from airflow.models.asset import AssetActive, AssetModel
    from airflow.utils.session import create_session

    from airflow_provider_butlr.webhooks.assets import room_state_asset, stream_asset

    with create_session() as session:
        for i in range(ROOMS):
            for asset in (
                stream_asset("rooms", _room(i)),
                room_state_asset("rooms", _room(i), "empty", for_minutes=5),
            ):
                session.add(AssetModel(name=asset.name, uri=asset.uri, group=asset.group, extra=asset.extra))
                session.add(AssetActive(name=asset.name, uri=asset.uri))


def send(
    url: str, events: list[tuple[str, dict[str, Any]]], interval: float
) -> list[tuple[str, int, float, str]]:
    """POST each event (a new connection each), ``interval`` seconds apart (0: as fast as the senders go);
    ``(kind, status, seconds, answer status)`` per event."""
    import requests

    def one(item: tuple[str, dict[str, Any]]) -> tuple[str, int, float, str]:
        kind, body = item
        started = time.perf_counter()
        try:
            answer = requests.post(
                url,
                data=json.dumps(body),
                headers={HEADER: SECRET, "Content-Type": "application/json", "Connection": "close"},
                timeout=30,
            )
            status, outcome = answer.status_code, str(answer.json().get("status", answer.json().get("error")))
        except requests.RequestException as err:
            status, outcome = 0, type(err).__name__
        return kind, status, time.perf_counter() - started, outcome

    start = time.perf_counter()
    with ThreadPoolExecutor(SENDERS) as pool:
        futures = []
        for i, item in enumerate(events):
            if interval:
                delay = start + i * interval - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            futures.append(pool.submit(one, item))
        return [f.result() for f in futures]


def _summary(results: list[tuple[str, int, float, str]], seconds: float) -> tuple[str, dict[str, Any]]:
    times = [r[2] * 1000 for r in results]
    errors = [r for r in results if not 200 <= r[1] < 300]
    expected = {"new": "new", "duplicate": "duplicate", "revision": "revision", "ignored": "ignored"}
    wrong = [r for r in results if r[3] != expected[r[0]]]
    figures = {
        "events": len(results),
        "seconds": round(seconds, 1),
        "per_minute": round(len(results) / seconds * 60),
        "errors": len(errors),
        "unexpected_outcomes": len(wrong),
        "p50_ms": round(median(times), 1),
        "p95_ms": round(percentile(times, 95), 1),
        "p99_ms": round(percentile(times, 99), 1),
        "max_ms": round(max(times), 1),
    }
    for kind in expected:
        kind_times = [r[2] * 1000 for r in results if r[0] == kind]
        figures[f"p50_{kind}_ms"] = round(median(kind_times), 1)
    text = (
        f"{figures['events']} events in {figures['seconds']} s ({figures['per_minute']}/min), {figures['errors']} errors; "
        f"p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, max {figures['max_ms']} ms; p50 by kind: "
        + ", ".join(f"{k} {figures[f'p50_{k}_ms']} ms" for k in expected)
    )
    return text, figures


def run(settings: Settings, emu: Any = None) -> ScenarioResult:
    count = settings.pick(1000, 200)
    window = settings.pick(60, 12)
    work = settings.work_dir / "webhooks"
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    _declare_rooms()
    result = ScenarioResult(KEY, TITLE, method=__doc__ or "")
    with ApiServer(work) as server:
        send(server.url, workload(20, T0 - 100), 0)  # warm-up: the app is built on its first request
        started = time.perf_counter()
        paced = send(server.url, workload(count, T0), window / count)
        paced_text, paced_figures = _summary(paced, time.perf_counter() - started)
        started = time.perf_counter()
        burst = send(server.url, workload(count, T0 + 1000), 0)
        burst_text, burst_figures = _summary(burst, time.perf_counter() - started)
    result.lines = [
        Line(f"paced: {count} events in {window} s", paced_text, paced_figures),
        Line(f"burst: {count} events, {SENDERS} senders", burst_text, burst_figures),
    ]
    result.targets = [
        Target(
            "errors at 1,000 events/minute",
            paced_figures["errors"] + paced_figures["unexpected_outcomes"],
            0,
            "<=",
        ),
        Target(
            "rate sustained (events/minute)", paced_figures["per_minute"], count / window * 60 * 0.98, ">="
        ),
        Target("receiver p99 answer time", paced_figures["p99_ms"], 100, "<=", "ms"),
    ]
    result.notes.append(f"api-server log: {server.log}")
    return result
