"""The admin API (``/_emulator/``) and the CLI flags, driven from another process with EmulatorAdminClient."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_butlr.testing import ButlrEmulator, EmulatorAdminClient, EmulatorAdminError
from airflow_provider_butlr.testing.http.admin import admin_enabled, is_loopback
from airflow_provider_butlr.testing.http.faults import parse_fault_spec
from airflow_provider_butlr.testing.http.rate_limit import SlidingWindowLimiter
from tests.integration.emulator.reporting_support import body, report
from tests.support.paths import REPO

CLI = [sys.executable, "-m", "airflow_provider_butlr.testing"]
START = "2025-11-05T15:24:45Z"
NOW = datetime(2025, 11, 5, 15, 24, 45, tzinfo=UTC)
SECRET = "emulator-client-secret-do-not-use"


@dataclass
class Served:
    process: subprocess.Popen[str]
    url: str
    admin: EmulatorAdminClient
    stderr: Path
    stdout: Path


def serve(tmp: Path, *flags: str) -> Served:
    ready, out, err = tmp / "url", tmp / "stdout", tmp / "stderr"
    process = subprocess.Popen(
        [*CLI, "--port", "0", "--ready-file", str(ready), *flags],
        stdout=out.open("w"),
        stderr=err.open("w"),
        text=True,
    )
    deadline = time.monotonic() + 30
    while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists(), err.read_text()
    url = ready.read_text().strip()
    return Served(process, url, EmulatorAdminClient(url), err, out)


def stop(served: Served) -> None:
    served.admin.close()
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=15) == 0


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    running = serve(
        tmp_path_factory.mktemp("cli"),
        "--clock", START, "--frozen",
        "--data-lag-minutes", "3",
        "--token-lifetime", "900",
        "--latency", "0.01",
        "--rate-limit-per-minute", "1000",
        "--fault", "kind=status,status=503,times=1,path=/api/v3/graphql",
    )  # fmt: skip
    yield running
    stop(running)


@pytest.fixture
def live(served: Served) -> Iterator[Served]:
    """The served emulator with counters, faults and config as the flags left them."""
    yield served
    served.admin.set_config(rate_limit_per_minute=1000, data_lag_minutes=3)
    served.admin.freeze(START)


def login(url: str) -> str:
    answer = requests.post(
        url + "/api/v2/clients/login",
        json={"client_id": "emulator-client-id", "client_secret": SECRET,
              "audience": "https://butlrauth/", "grant_type": "client_credentials"},
        timeout=10,
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def graphql(url: str, token: str) -> requests.Response:
    return requests.post(
        url + "/api/v3/graphql",
        json={"query": "{ sites { data { id } } }"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def reporting(url: str, token: str, room: str) -> requests.Response:
    flt = {"measurements": ["room_occupancy"], "rooms": {"eq": [room]}, "start": "-5m", "value": {"gte": 0}}
    return requests.post(
        url + "/api/v3/reporting",
        json={"filter": flt, "window": {"every": "60s", "function": "median"}, "group_by": {"raw": True}},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def first_room(url: str, token: str) -> str:
    answer = requests.post(
        url + "/api/v3/graphql",
        json={"query": "{ sensors { data { room_id mode } } }"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()
    return next(
        s["room_id"] for s in answer["data"]["sensors"]["data"] if s["mode"] == "presence" and s["room_id"]
    )


def test_the_docs_example_runs_against_a_served_emulator(tmp_path: Path) -> None:
    doc = (REPO / "docs" / "emulator.md").read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", doc, flags=re.S) if "EmulatorAdminClient(" in b]
    served = serve(tmp_path, "--quiet")
    try:
        exec(block.replace("http://127.0.0.1:8765", served.url), {})
        faults, clock = served.admin.faults(), served.admin.clock()
    finally:
        stop(served)
    assert faults == [] and clock["frozen"] is False


def test_start_flags_show_in_the_admin_api(served: Served) -> None:
    clock = served.admin.clock()
    assert clock["now"] == START and clock["frozen"] is True
    config = served.admin.config()
    assert (config["data_lag_minutes"], config["token_lifetime"], config["latency"]) == (3, 900, 0.01)
    assert config["rate_limit_per_minute"] == 1000
    assert "client_secret" not in config and "password" not in config
    (fault,) = served.admin.faults()
    assert (fault["id"], fault["kind"], fault["status"], fault["times"]) == (1, "status", 503, 1)


def test_the_fault_flag_fires_once_then_answers_normally(served: Served) -> None:
    token = login(served.url)
    assert [graphql(served.url, token).status_code for _ in range(2)] == [503, 200]
    assert served.admin.faults()[0]["injected"] == 1


def test_counters_count_logins_of_other_processes_and_not_admin_calls(live: Served) -> None:
    live.admin.reset_counters()
    for _ in range(2):
        login(live.url)
    live.admin.clock()
    counters = live.admin.counters()
    assert live.admin.logins() == 2 and counters["successful_logins"] == 2
    assert counters["total"] == 2 and not any(p.startswith("/_emulator") for p in counters["per_path"])
    live.admin.reset_counters()
    assert live.admin.counters()["total"] == 0


def test_tokens_are_listed_and_revoked_one_or_all(live: Served) -> None:
    first, second = login(live.url), login(live.url)
    listed = {item["token"]: item for item in live.admin.tokens()}
    assert {first, second} <= set(listed) and listed[first]["expires_at"] - listed[first]["issued_at"] == 900
    assert set(live.admin.issued_tokens()) == set(listed)
    live.admin.revoke_tokens(first)
    assert (graphql(live.url, first).status_code, graphql(live.url, second).status_code) == (401, 200)
    live.admin.revoke_tokens()
    assert graphql(live.url, second).status_code == 401
    with pytest.raises(EmulatorAdminError) as err:
        live.admin.revoke_tokens("not-a-token")
    assert err.value.status == 404


def test_the_clock_is_set_frozen_moved_and_back_to_real_time(live: Served) -> None:
    assert live.admin.set_clock("2025-01-02T03:04:05Z", frozen=True)["now"] == "2025-01-02T03:04:05Z"
    assert live.admin.advance(90)["now"] == "2025-01-02T03:05:35Z"
    real = live.admin.real_time()
    assert abs(real["offset_seconds"]) < 60 and real["frozen"] is False
    behind = live.admin.set_clock("-2h")  # offsets move the emulator's current time
    assert behind["frozen"] is False and abs(behind["offset_seconds"] + 7200) < 60
    with pytest.raises(EmulatorAdminError) as err:
        live.admin.set_clock("yesterday")
    assert err.value.status == 400 and "RFC 3339" in str(err.value)


def test_faults_are_added_listed_removed_and_cleared(live: Served) -> None:
    token = login(live.url)
    room = first_room(live.url, token)
    fault_id = live.admin.add_fault("kind=status,status=429,retry_after=7,times=1")
    answer = reporting(live.url, token, room)
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "7"
    assert reporting(live.url, token, room).status_code == 200
    other = live.admin.add_fault(kind="empty_data", path="/api/v3/reporting")
    assert reporting(live.url, token, room).json()["data"] == {}
    live.admin.remove_fault(other)
    assert fault_id in {f["id"] for f in live.admin.faults()}
    assert live.admin.clear_faults() >= 1 and live.admin.faults() == []
    with pytest.raises(EmulatorAdminError) as err:
        live.admin.add_fault("kind=explode")
    assert err.value.status == 400 and "unknown fault kind" in str(err.value)


def test_the_data_lag_is_set_from_outside(live: Served) -> None:
    token = login(live.url)
    room = first_room(live.url, token)
    newest = max(reporting(live.url, token, room).json()["data"][room])
    assert newest == "2025-11-05T15:20:00Z"  # --data-lag-minutes 3 at 15:24:45
    live.admin.set_data_lag(0)
    assert max(reporting(live.url, token, room).json()["data"][room]) == "2025-11-05T15:23:00Z"
    with pytest.raises(EmulatorAdminError):
        live.admin.set_config(seed=1)  # not a live field


def test_the_rate_limit_flag_answers_429_with_retry_after_on_data_endpoints_only(tmp_path: Path) -> None:
    served = serve(tmp_path, "--rate-limit-per-minute", "2", "--quiet")
    try:
        token = login(served.url)
        statuses = [graphql(served.url, token) for _ in range(3)]
        login(served.url)  # logins are not rate-limited
        served.admin.set_config(rate_limit_per_minute=None)
        after = graphql(served.url, token).status_code
    finally:
        stop(served)
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert 1 <= int(statuses[2].headers["Retry-After"]) <= 60
    assert after == 200


def test_the_request_log_has_one_line_per_request_and_no_secret(live: Served) -> None:
    token = login(live.url)
    graphql(live.url, token)
    deadline = time.monotonic() + 5
    while "POST /api/v3/graphql" not in live.stderr.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = live.stderr.read_text()
    assert "POST /api/v2/clients/login 200" in log and "GET /_emulator/clock 200" in log
    for token_seen in live.admin.issued_tokens():
        assert token_seen not in log
    assert SECRET not in log


def test_quiet_prints_only_the_url_and_no_request_log(tmp_path: Path) -> None:
    served = serve(tmp_path, "--quiet")
    try:
        login(served.url)
    finally:
        stop(served)
    assert served.stdout.read_text().strip() == served.url
    assert "/api/v2/clients/login" not in served.stderr.read_text()


def test_a_port_in_use_is_a_clear_error_suggesting_port_0(served: Served) -> None:
    port = served.url.rsplit(":", 1)[1]
    result = subprocess.run([*CLI, "--port", port], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"port {port}" in result.stderr and "--port 0" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--clock", "soon"], "RFC 3339"), (["--fault", "kind=status"], "needs status"),
     (["--fault", "kind=status,colour=red"], "unknown fault spec key")],
)  # fmt: skip
def test_bad_flags_are_clear_errors_without_a_traceback(flags: list[str], message: str) -> None:
    result = subprocess.run([*CLI, "--port", "0", *flags], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_the_admin_api_is_404_when_disabled() -> None:
    with ButlrEmulator(port=0, admin_api=False) as emu:
        answer = requests.get(emu.admin_url + "/clock", timeout=10)
        assert answer.status_code == 404 and answer.json()["error"] == "not_found"
        emu.config.admin_api = True
        assert requests.get(emu.admin_url + "/clock", timeout=10).status_code == 200


def test_admin_is_loopback_only_unless_enabled() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "10.1.2.3", "::", "example.invalid"))
    with ButlrEmulator(port=0) as emu:
        assert admin_enabled(emu.config, "127.0.0.1") and not admin_enabled(emu.config, "0.0.0.0")
        assert admin_enabled(emu.config.replace(admin_api=True), "0.0.0.0")


def test_fault_specs_as_text_and_as_objects_are_the_same() -> None:
    text = parse_fault_spec("kind=status,status=503,times=2,at_calls=1+3,retry_after=5,path=")
    assert text == {
        "kind": "status",
        "status": 503,
        "times": 2,
        "at_calls": [1, 3],
        "retry_after": "5",
        "path": "",
    }
    assert parse_fault_spec({"kind": "status", "status": 503, "times": 2, "at_calls": [1, 3],
                             "retry_after": "5", "path": ""}) == text  # fmt: skip


def test_the_sliding_window_frees_a_slot_sixty_seconds_after_the_oldest_request() -> None:
    now = [1000.0]
    limiter = SlidingWindowLimiter(monotonic=lambda: now[0])
    assert limiter.acquire(None) is None
    assert [limiter.acquire(2) for _ in range(2)] == [None, None]
    now[0] += 20
    assert limiter.acquire(2) == 40  # refused; the first request leaves the window in 40 s
    now[0] += 40
    assert limiter.acquire(2) is None


def test_the_ids_x_range_budget_answers_the_silent_empty_result() -> None:
    start = NOW - timedelta(days=1)
    rooms = ["room_a", "room_b"]
    query: dict[str, Any] = body(["room_occupancy"], start, start + timedelta(hours=1), rooms=rooms)
    assert report(query)["data"]  # default: no ids x range budget
    assert report(query, reporting_max_id_minutes=100) == {
        "data": {},
        "page_info": {"page": 1, "page_item_count": 0, "total_item_count": 0, "total_pages": 1},
    }  # 2 ids x 60 minutes = 120 > 100
    single = body(["room_occupancy"], start, start + timedelta(hours=1), rooms=rooms[:1])
    assert report(single, reporting_max_id_minutes=100)["data"]  # 1 x 60 fits
