"""The HTTP server itself: keep-alive, concurrency, speed, shutdown, routing, counters, public API."""

from __future__ import annotations

import http.client
import json
import socket
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from airflow_provider_butlr.testing import ButlrEmulator, EmulatorClock, EmulatorConfig
from tests.integration.emulator.conftest import CLIENT_LOGIN, GRAPHQL, Client


def test_keep_alive_serves_many_requests_on_one_connection(emu: ButlrEmulator, client: Client) -> None:
    token = client.token
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    conn.connect()
    sock = conn.sock
    for _ in range(20):
        conn.request(
            "POST",
            GRAPHQL,
            json.dumps({"query": "{ sites { data { id } } }"}),
            {"Authorization": f"Bearer {token}"},
        )
        response = conn.getresponse()
        assert response.status == 200 and response.version == 11
        response.read()
    assert conn.sock is sock  # never reconnected
    conn.close()


def test_per_request_overhead_is_well_under_a_millisecond(emu: ButlrEmulator) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    timings = []
    for _ in range(300):
        started = time.perf_counter()
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        timings.append(time.perf_counter() - started)
    conn.close()
    # Client and server together, over loopback; the server's share is smaller still.
    assert statistics.median(timings) < 0.001, statistics.median(timings)


def test_unknown_path_invalid_json_and_wrong_method(emu: ButlrEmulator, client: Client) -> None:
    missing = client.post("/api/v9/nothing", {})
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    bad_json = client.session.post(
        emu.url + CLIENT_LOGIN, data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["message"]
    wrong_method = client.session.get(emu.url + GRAPHQL)
    assert wrong_method.status_code == 405
    assert [r.status for r in emu.counters.log] == [404, 400, 405]


def test_counters(emu: ButlrEmulator, client: Client) -> None:
    client.login()
    client.post(GRAPHQL, {"query": "{ sites { data { id } } }"}, token=client.token)
    client.post("/api/v2/login", {"username": emu.username, "password": "wrong"})
    assert emu.counters.logins == 3  # attempts on both grants, any outcome
    assert emu.counters.successful_logins == 2
    assert emu.counters.requests(GRAPHQL) == 1 and emu.counters.requests(CLIENT_LOGIN) == 2
    assert emu.counters.total == 4
    login_record = emu.counters.log[0]
    assert login_record.path == CLIENT_LOGIN and not login_record.has_authorization
    assert login_record.body_json["grant_type"] == "client_credentials"
    emu.counters.reset()
    assert emu.counters.total == 0 and emu.counters.log == []


def test_stop_closes_keep_alive_connections_and_joins_threads() -> None:
    before = set(threading.enumerate())
    emu = ButlrEmulator(port=0).start()
    port = emu.port
    sessions = [requests.Session() for _ in range(3)]
    for session in sessions:
        assert session.get(f"{emu.url}/healthz", timeout=5).status_code == 200  # idle keep-alive now
    started = time.perf_counter()
    emu.stop()
    assert time.perf_counter() - started < 2
    assert [t.name for t in threading.enumerate() if t not in before] == []
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    emu.stop()  # idempotent
    for session in sessions:
        session.close()


def test_stop_interrupts_an_injected_delay() -> None:
    emu = ButlrEmulator(port=0).start()
    emu.faults.add(path="/healthz", kind="delay", delay=30)
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(requests.get(f"{emu.url}/healthz", timeout=40).status_code)
        except requests.RequestException as exc:
            outcome.append(type(exc))

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(0.2)
    started = time.perf_counter()
    emu.stop()
    thread.join(5)
    assert time.perf_counter() - started < 3 and not thread.is_alive()
    assert outcome in ([200], [requests.ConnectionError])  # answered early or cut off, never left hanging


def test_several_emulators_in_one_process() -> None:
    with ButlrEmulator(port=0, seed=1) as a, ButlrEmulator(port=0, seed=2, client_secret="other") as b:
        assert a.port != b.port
        assert Client(a).login() and Client(b).login()
        assert a.counters.logins == 1 and b.counters.logins == 1
        assert a.org.id != b.org.id


def test_connection_helpers(emu: ButlrEmulator) -> None:
    fields = emu.connection_extra()
    assert fields == {
        "conn_type": "butlr",
        "host": emu.url,
        "login": "emulator-client-id",
        "password": "emulator-client-secret-do-not-use",
        "extra": {"audience": "https://butlrauth/", "auth_type": "client_credentials"},
    }
    password = json.loads(emu.connection_json(auth_type="password", timeout=5, password="x"))
    assert password["login"] == emu.username and password["password"] == "x"
    assert password["extra"] == {"audience": emu.audience, "auth_type": "password", "timeout": 5}
    env = emu.connection_env("my_butlr")
    assert (
        list(env) == ["AIRFLOW_CONN_MY_BUTLR"] and json.loads(env["AIRFLOW_CONN_MY_BUTLR"])["host"] == emu.url
    )


def test_config_object_and_kwargs(emu: ButlrEmulator) -> None:
    config = EmulatorConfig(token_lifetime=99, seed=3)
    with ButlrEmulator(config=config, latency=0.0) as emu2:
        assert emu2.config.token_lifetime == 99 and emu2.config.seed == 3
        emu2.config = EmulatorConfig(token_lifetime=5)
        assert Client(emu2).post(CLIENT_LOGIN, Client(emu2).login_body()).json()["expires_in"] == 5


def test_clock() -> None:
    clock = EmulatorClock()
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=1)
    target = datetime(2025, 3, 9, 6, 30, tzinfo=UTC)
    clock.set(target, tick=False)
    assert clock.now() == target and clock.frozen
    assert clock.advance(minutes=5) == target + timedelta(minutes=5)
    clock.set(target)
    assert not clock.frozen and timedelta(0) <= clock.now() - target < timedelta(seconds=1)
    clock.advance(3600)
    assert timedelta(hours=1) <= clock.now() - target < timedelta(hours=1, seconds=1)
    with pytest.raises(ValueError, match="aware"):
        clock.set(datetime(2025, 1, 1))
    clock.reset()
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=1)


def test_package_import_is_cheap() -> None:
    import subprocess
    import sys

    code = "import sys, airflow_provider_butlr.testing; print('graphql' in sys.modules, 'http.server' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "False"]
