"""The bearer token never leaves the configured API host, not even through a redirect."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from airflow_provider_butlr.exceptions import ButlrAPIError, ButlrConfigurationError
from airflow_provider_butlr.hooks.butlr import ButlrHook

TOKEN = "redirect-test-token-0123456789abcdef"


class _Recorder(BaseHTTPRequestHandler):
    """The 'other host': records the headers of every request it receives."""

    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:
        type(self).seen.append(dict(self.headers))
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _serve(handler: type[BaseHTTPRequestHandler], host: str) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer((host, 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}"


@pytest.fixture
def hosts(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    _Recorder.seen = []
    other, other_url = _serve(_Recorder, "127.0.0.2")

    class Api(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the login
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = json.dumps({"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # every data call redirects to the other host
            self.send_response(307)
            self.send_header("Location", f"{other_url}/capture")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    api, api_url = _serve(Api, "127.0.0.1")
    monkeypatch.setenv(
        "AIRFLOW_CONN_BUTLR_DEFAULT",
        json.dumps({"conn_type": "butlr", "host": api_url, "login": "id", "password": "secret-redirect-1"}),
    )
    yield api_url, other_url
    api.shutdown()
    other.shutdown()


def test_redirect_to_another_host_is_refused_and_never_followed(hosts: tuple[str, str]) -> None:
    with pytest.raises(ButlrAPIError, match=r"to another host, 127\.0\.0\.2; refusing to follow"):
        ButlrHook().request("GET", "/api/v3/anything")
    assert _Recorder.seen == []  # the other host never saw a request, with or without the token


def test_absolute_url_to_another_host_is_refused_before_sending(hosts: tuple[str, str]) -> None:
    _, other_url = hosts
    with pytest.raises(ButlrConfigurationError, match="not on the Butlr API host"):
        ButlrHook().request("GET", f"{other_url}/capture")
    assert _Recorder.seen == []
