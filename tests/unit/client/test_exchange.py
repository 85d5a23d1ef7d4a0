"""The one exchange, driven by the sync and the async hook alike: every test body runs against both."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from airflow_provider_butlr.exceptions import ButlrAPIError
from airflow_provider_butlr.hooks.butlr import ButlrHook
from airflow_provider_butlr.hooks.butlr_async import ButlrAsyncHook
from tests.conftest import connection_json

GRAPHQL = "/api/v3/graphql"
SITES = {"query": "query Sites { sites { data { id } } }"}

Driver = Callable[[str, str, Any], Any]


def sync_driver(method: str, path: str, body: Any) -> Any:
    with ButlrHook(retry_wait_initial=0.01, retry_wait_max=0.02) as hook:
        return hook.request_json(method, path, json=body)


def async_driver(method: str, path: str, body: Any) -> Any:
    async def call() -> Any:
        async with ButlrAsyncHook(retry_wait_initial=0.01, retry_wait_max=0.02) as hook:
            return await hook.arequest_json(method, path, json=body)

    return asyncio.run(call())


DRIVERS = pytest.mark.parametrize("drive", [sync_driver, async_driver], ids=["sync", "async"])


@pytest.fixture
def graphql_unauthenticated(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The emulator answers a refused token on GraphQL with HTTP 200 + errors[].extensions.code."""
    emulator.config = emulator.config.replace(graphql_auth_error_mode="graphql")
    monkeypatch.setenv("AIRFLOW_CONN_BUTLR_DEFAULT", connection_json(emulator))
    return emulator


@DRIVERS
def test_graphql_unauthenticated_recovers_with_one_extra_login(
    graphql_unauthenticated: Any, drive: Driver
) -> None:
    emu = graphql_unauthenticated
    assert drive("POST", GRAPHQL, SITES)["data"]["sites"]["data"]
    assert emu.counters.logins == 1
    emu.revoke_all_tokens()
    payload = drive("POST", GRAPHQL, SITES)
    assert payload["data"]["sites"]["data"] and "errors" not in payload
    assert emu.counters.logins == 2  # exactly one extra login, then the replay succeeded


@DRIVERS
def test_http_401_recovers_with_one_extra_login(butlr_conn: Any, drive: Driver) -> None:
    drive("POST", GRAPHQL, SITES)
    butlr_conn.revoke_all_tokens()
    assert drive("POST", GRAPHQL, SITES)["data"]["sites"]["data"]
    assert butlr_conn.counters.logins == 2


def test_poke_sensor_and_operator_over_graphql_recover_after_unauthenticated(
    graphql_unauthenticated: Any,
) -> None:
    from airflow_provider_butlr.operators.butlr import ButlrOperator
    from airflow_provider_butlr.sensors.butlr import ButlrSensor

    emu = graphql_unauthenticated
    sensor = ButlrSensor(
        task_id="poke",
        endpoint=GRAPHQL,
        json=SITES,
        conditions=[{"type": "value_at", "path": "data.sites.data.0.id", "op": "!=", "value": None}],
        mode="poke",
        poke_interval=1,
        timeout=timedelta(seconds=30),
    )
    assert sensor.poke({}) is not False
    emu.revoke_all_tokens()
    assert sensor.poke({}) is not False
    assert emu.counters.logins == 2
    emu.revoke_all_tokens()
    operator = ButlrOperator(task_id="op", endpoint=GRAPHQL, json=SITES)
    assert operator.execute({})["data"]["sites"]["data"]
    assert emu.counters.logins == 3


class _Foreign(BaseHTTPRequestHandler):
    """A second loopback server: records what reaches it."""

    seen: list[dict[str, str]] = []

    def _answer(self) -> None:
        type(self).seen.append(dict(self.headers))
        body = b'{"foreign": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def foreign_url() -> Iterator[str]:
    _Foreign.seen = []
    server = ThreadingHTTPServer(("127.0.0.2", 0), _Foreign)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    yield f"http://127.0.0.2:{server.server_address[1]}"
    server.shutdown()


def test_get_conn_is_authenticated_for_the_api_origin_only(butlr_conn: Any, foreign_url: str) -> None:
    hook = ButlrHook()
    session = hook.get_conn()
    answer = session.post(hook.url_for(GRAPHQL), json=SITES, timeout=10)
    assert answer.status_code == 200 and answer.json()["data"]["sites"]["data"]
    answer = session.get(f"{foreign_url}/anything", timeout=10)
    assert answer.json() == {"foreign": True}
    assert _Foreign.seen and all("Authorization" not in headers for headers in _Foreign.seen)
    hook.close()


class _Redirecting(BaseHTTPRequestHandler):
    """An API that logs in and then redirects every data call to ``target``."""

    target = ""
    token = "redirect-token-0123456789abcdefXYZ"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.endswith("/login"):
            body = json.dumps({"access_token": self.token, "expires_in": 3600}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(307)
        self.send_header("Location", type(self).target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@DRIVERS
def test_cross_origin_redirect_is_refused_naming_the_host(
    foreign_url: str, monkeypatch: pytest.MonkeyPatch, drive: Driver
) -> None:
    _Redirecting.target = f"{foreign_url}/capture"
    api = ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
    threading.Thread(target=api.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    url = f"http://127.0.0.1:{api.server_address[1]}"
    monkeypatch.setenv(
        "AIRFLOW_CONN_BUTLR_DEFAULT",
        json.dumps({"conn_type": "butlr", "host": url, "login": "id", "password": "secret-redirect-2"}),
    )
    try:
        with pytest.raises(
            ButlrAPIError, match=r"redirected \(HTTP 307\) to another host, 127\.0\.0\.2"
        ) as err:
            drive("POST", "/api/v3/reporting", {"x": 1})
        assert _Redirecting.token not in str(err.value)
        assert _Foreign.seen == []  # the foreign host was never contacted
    finally:
        api.shutdown()


class _SameOrigin(_Redirecting):
    """Redirects /api/old (308) to /api/new on the same origin; /api/new answers with the headers seen."""

    def do_POST(self) -> None:
        if self.path.endswith("/login") or not self.path.startswith("/api/new"):
            if not self.path.endswith("/login"):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(308)
                self.send_header("Location", "/api/new")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            return super().do_POST()
        length = int(self.headers.get("Content-Length", 0))
        sent = json.loads(self.rfile.read(length) or b"null")
        body = json.dumps({"auth": self.headers.get("Authorization", ""), "body": sent}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@DRIVERS
def test_same_origin_redirect_is_followed_with_token_and_body(
    monkeypatch: pytest.MonkeyPatch, drive: Driver
) -> None:
    api = ThreadingHTTPServer(("127.0.0.1", 0), _SameOrigin)
    threading.Thread(target=api.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    url = f"http://127.0.0.1:{api.server_address[1]}"
    monkeypatch.setenv(
        "AIRFLOW_CONN_BUTLR_DEFAULT",
        json.dumps({"conn_type": "butlr", "host": url, "login": "id", "password": "secret-redirect-3"}),
    )
    try:
        payload = drive("POST", "/api/old", {"x": 1})
    finally:
        api.shutdown()
    assert payload == {"auth": f"Bearer {_SameOrigin.token}", "body": {"x": 1}}  # 308 keeps method and body
