"""Every fault kind over real HTTP, rule selection, counting before faults, latency."""

from __future__ import annotations

import http.client
import json
import threading
import time
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
import requests

from airflow_provider_butlr.testing import ButlrEmulator
from tests.integration.emulator.conftest import CLIENT_LOGIN, GRAPHQL, REPORTING, Client

SITES = {"query": "{ sites { data { id name } } }"}


def _sites(client: Client, **kwargs: object) -> requests.Response:
    return client.post(GRAPHQL, SITES, token=client.token, **kwargs)  # type: ignore[arg-type]


def test_status_fault_with_retry_after_seconds(emu: ButlrEmulator, client: Client) -> None:
    emu.faults.add(path=GRAPHQL, kind="status", status=429, retry_after=7, times=1)
    first, second = _sites(client), _sites(client)
    assert first.status_code == 429 and first.headers["Retry-After"] == "7"
    assert first.json()["error"] == "too_many_requests"
    assert second.status_code == 200


def test_status_fault_with_http_date_retry_after_and_html_body(emu: ButlrEmulator, client: Client) -> None:
    when = format_datetime(datetime(2030, 1, 1, tzinfo=UTC), usegmt=True)
    emu.faults.add(path=GRAPHQL, kind="status", status=502, retry_after=when, body="<html>Bad gateway</html>")
    response = _sites(client)
    assert response.status_code == 502
    assert response.headers["Retry-After"] == when == "Tue, 01 Jan 2030 00:00:00 GMT"
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.text == "<html>Bad gateway</html>"


def test_status_fault_without_retry_after(emu: ButlrEmulator, client: Client) -> None:
    emu.faults.add(
        path=GRAPHQL, kind="status", status=503, body='{"oops": 1}', content_type="application/json"
    )
    response = _sites(client)
    assert response.status_code == 503 and "Retry-After" not in response.headers
    assert response.json() == {"oops": 1}


def test_delay_fault_causes_a_read_timeout(emu: ButlrEmulator, client: Client) -> None:
    emu.faults.add(path=GRAPHQL, kind="delay", delay=0.5, at_calls={1})
    with pytest.raises(requests.ReadTimeout):
        _sites(client, timeout=0.2)
    started = time.perf_counter()
    assert _sites(client).status_code == 200
    assert time.perf_counter() - started < 0.4


def test_delay_fault_answers_normally_after_the_delay(emu: ButlrEmulator, client: Client) -> None:
    emu.faults.add(path=GRAPHQL, kind="delay", delay=0.2)
    started = time.perf_counter()
    response = _sites(client)
    assert response.status_code == 200 and response.json()["data"]["sites"]["data"]
    assert time.perf_counter() - started >= 0.2


def test_drop_closes_without_an_answer(emu: ButlrEmulator, client: Client) -> None:
    emu.faults.add(path=GRAPHQL, kind="drop", at_calls={1})
    with pytest.raises(requests.ConnectionError):
        _sites(client)
    assert _sites(client).status_code == 200
    statuses = [r.status for r in emu.counters.log if r.path == GRAPHQL]
    assert statuses == [None, 200]


def test_reset_mid_response(emu: ButlrEmulator, client: Client) -> None:
    emu.faults.add(path=GRAPHQL, kind="reset", at_calls={1})
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        _sites(client)
    assert _sites(client).status_code == 200


def test_reset_announces_the_full_length_and_sends_half(emu: ButlrEmulator, client: Client) -> None:
    token = client.token
    whole = _sites(client).content
    emu.faults.add(path=GRAPHQL, kind="reset", at_calls={1})
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    conn.request("POST", GRAPHQL, json.dumps(SITES), {"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    assert response.status == 200 and int(response.headers["Content-Length"]) == len(whole)
    with pytest.raises(http.client.IncompleteRead) as caught:
        response.read()
    assert caught.value.partial == whole[: len(whole) // 2]
    conn.close()


def test_truncated_json(emu: ButlrEmulator, client: Client) -> None:
    emu.faults.add(path=GRAPHQL, kind="truncated_json", at_calls={1})
    broken, whole = _sites(client), _sites(client)
    assert broken.status_code == 200
    with pytest.raises(ValueError):
        json.loads(broken.content)
    assert whole.content.startswith(broken.content) and len(broken.content) < len(whole.content)


def test_empty_data_is_the_silent_truncation(emu: ButlrEmulator, client: Client) -> None:
    emu.faults.add(path=REPORTING, kind="empty_data")
    response = client.post(REPORTING, {"filter": {}}, token=client.token)
    assert response.status_code == 200
    assert response.json() == {
        "data": {},
        "page_info": {"page": 1, "page_item_count": 0, "total_item_count": 0, "total_pages": 1},
    }


def test_graphql_partial_keeps_data_and_adds_an_error(emu: ButlrEmulator, client: Client) -> None:
    emu.faults.add(path=GRAPHQL, kind="graphql_partial")
    body = _sites(client).json()
    assert body["data"]["sites"]["data"]
    assert body["errors"][0]["path"] == ["sites"] and body["errors"][0]["message"]


def test_unauthorized_with_a_valid_token(emu: ButlrEmulator, client: Client) -> None:
    emu.faults.add(path=GRAPHQL, kind="unauthorized", times=1)
    assert _sites(client).status_code == 401
    assert _sites(client).status_code == 200


def test_unauthorized_fault_follows_the_graphql_auth_error_mode(emu: ButlrEmulator, client: Client) -> None:
    emu.config.graphql_auth_error_mode = "graphql"
    emu.faults.add(path=GRAPHQL, kind="unauthorized", times=1)
    response = _sites(client)
    assert response.status_code == 200
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def _statuses(client: Client, calls: int) -> list[int]:
    return [_sites(client).status_code for _ in range(calls)]


def test_at_calls_counts_matching_calls_since_the_rule_was_added(emu: ButlrEmulator, client: Client) -> None:
    _statuses(client, 2)  # before the rule: not counted
    emu.faults.add(path=GRAPHQL, kind="status", status=500, at_calls={3, 5})
    assert _statuses(client, 6) == [200, 200, 500, 200, 500, 200]


def test_every_nth_call(emu: ButlrEmulator, client: Client) -> None:
    emu.faults.add(path=GRAPHQL, kind="status", status=503, every=3)
    assert _statuses(client, 7) == [200, 200, 503, 200, 200, 503, 200]


def test_times_caps_the_injections(emu: ButlrEmulator, client: Client) -> None:
    emu.faults.add(path=GRAPHQL, kind="status", status=503, every=2, times=2)
    assert _statuses(client, 8) == [200, 503, 200, 503, 200, 200, 200, 200]


def test_rate_is_reproducible_with_the_same_seed(emu: ButlrEmulator, client: Client) -> None:
    rule = emu.faults.add(path=GRAPHQL, kind="status", status=500, rate=0.3, seed=7)
    first = _statuses(client, 40)
    rule.remove()
    emu.faults.add(path=GRAPHQL, kind="status", status=500, rate=0.3, seed=7)
    assert _statuses(client, 40) == first
    assert 3 <= first.count(500) <= 25  # it does inject, and not always


def test_path_prefix_and_the_empty_prefix_matches_logins(emu: ButlrEmulator, client: Client) -> None:
    token = client.token
    emu.faults.add(path="/api/v3", kind="status", status=500, times=1)
    assert client.post(CLIENT_LOGIN, client.login_body()).status_code == 200  # not under /api/v3
    assert _sites(client).status_code == 500
    emu.faults.clear()
    emu.faults.add(path="", kind="status", status=503, times=1)
    assert client.post(CLIENT_LOGIN, client.login_body()).status_code == 503
    assert client.post(GRAPHQL, SITES, token=token).status_code == 200


def test_removed_and_cleared_rules_stop_injecting(emu: ButlrEmulator, client: Client) -> None:
    rule = emu.faults.add(path=GRAPHQL, kind="status", status=500)
    assert _sites(client).status_code == 500
    rule.remove()
    assert _sites(client).status_code == 200
    emu.faults.add(path=GRAPHQL, kind="status", status=500)
    emu.faults.clear()
    assert _sites(client).status_code == 200


def test_faulted_requests_are_counted(emu: ButlrEmulator, client: Client) -> None:
    token = client.token
    emu.counters.reset()
    emu.faults.add(path=GRAPHQL, kind="drop", at_calls={1})
    emu.faults.add(path=GRAPHQL, kind="status", status=429, at_calls={2})
    with pytest.raises(requests.ConnectionError):
        client.post(GRAPHQL, SITES, token=token)
    client.post(GRAPHQL, SITES, token=token)
    client.post(GRAPHQL, SITES, token=token)
    assert emu.counters.requests(GRAPHQL) == 3
    log = emu.counters.log
    assert [(r.status, r.fault) for r in log] == [(None, "drop"), (429, "status"), (200, None)]
    assert all(r.method == "POST" and r.body_json == SITES and r.has_authorization for r in log)


def test_fault_arguments_are_validated() -> None:
    from airflow_provider_butlr.testing.http.faults import FaultSchedule

    schedule = FaultSchedule()
    with pytest.raises(ValueError, match="unknown fault kind 'explode'; allowed:"):
        schedule.add(kind="explode")
    with pytest.raises(ValueError, match="status=<HTTP code>"):
        schedule.add(kind="status")
    with pytest.raises(ValueError, match="at most one of"):
        schedule.add(kind="drop", every=2, at_calls={1})


def test_latency_applies_to_data_requests_and_they_overlap(emu: ButlrEmulator, client: Client) -> None:
    token = client.token
    emu.config.latency = 0.1
    started = time.perf_counter()
    assert client.post(CLIENT_LOGIN, client.login_body()).status_code == 200
    assert time.perf_counter() - started < 0.1  # logins are not slowed down
    results: list[int] = []

    def call() -> None:
        with requests.post(
            emu.url + GRAPHQL, json=SITES, headers={"Authorization": f"Bearer {token}"}, timeout=5
        ) as r:
            results.append(r.status_code)

    threads = [threading.Thread(target=call) for _ in range(5)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    assert results == [200] * 5
    assert 0.1 <= elapsed < 0.3, elapsed  # five 100 ms requests in flight at once
