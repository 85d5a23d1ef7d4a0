"""Small hostile Butlr servers on 127.0.0.1 and the checks the hostile-server tests share (issue 13).

A :class:`HostileApi` logs in like Butlr (its own token, a distinctive secret) and answers every other
request with a script the test sets: echo the token back, trickle one byte per second, send 40 MiB,
nest JSON a million levels deep, redirect elsewhere. Each test body runs against both drivers (the
sync hook with requests, the async hook with httpx): see :data:`DRIVERS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from airflow_provider_butlr.exceptions import ButlrError
from airflow_provider_butlr.hooks.butlr import ButlrHook
from airflow_provider_butlr.hooks.butlr_async import ButlrAsyncHook

LOGIN_PATH = "/api/v2/clients/login"
GRAPHQL = "/api/v3/graphql"
DATA = "/api/v3/reporting"

# A client secret with what breaks naive scrubbers: '/', '+', '&', two spaces and a tab.
SECRET = "hs/Qw3r+Ty7u  Io9P\tzLm4&Kx"

QUICK = {"retry_wait_initial": 0.01, "retry_wait_max": 0.02}


def new_token() -> str:
    """A token whose percent-encoding differs from itself (base64 alphabets carry '+', '/', '=')."""
    return f"tk+{secrets.token_urlsafe(18)}/{secrets.token_urlsafe(18)}="


# --- the server ------------------------------------------------------------------------------------


class Request:
    """What a script sees of one request; its methods write the answer."""

    def __init__(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        self.handler = handler
        self.method = handler.command
        self.path = handler.path
        self.headers = dict(handler.headers)
        self.body = body

    @property
    def authorization(self) -> str:
        return self.headers.get("Authorization", "")

    def reply(
        self,
        status: int,
        body: bytes | str | Any = b"",
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        if isinstance(body, str):
            data = body.encode()
        elif isinstance(body, bytes):
            data = body
        else:
            data = json.dumps(body).encode()
        h = self.handler
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(data)

    def trickle(self, *, headers_too: bool = False, seconds: float = 30.0) -> None:
        """One byte per second (the status line too, with ``headers_too``) until ``seconds`` pass."""
        h = self.handler
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        body = b'{"data": [' + b" " * 100000
        stream = head + body if headers_too else body
        if not headers_too:
            h.wfile.write(head)
            h.wfile.flush()
        end = time.monotonic() + seconds
        with contextlib.suppress(OSError):
            for i in range(len(stream)):
                if time.monotonic() > end:
                    break
                h.wfile.write(stream[i : i + 1])
                h.wfile.flush()
                time.sleep(1.0)
        h.close_connection = True

    def stream(self, status: int, total: int, chunk: bytes) -> None:
        """``total`` bytes of ``chunk`` repeated (no copy per chunk), with a Content-Length."""
        h = self.handler
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(total))
        h.end_headers()
        sent = 0
        with contextlib.suppress(OSError):
            while sent < total:
                piece = chunk if total - sent >= len(chunk) else chunk[: total - sent]
                h.wfile.write(piece)
                sent += len(piece)
        h.close_connection = True


Script = Callable[[Request], None]


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up on a hostile answer is expected: no traceback on stderr."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@dataclass
class HostileApi:
    """A Butlr look-alike: logs in with its own token; ``script`` answers every other request."""

    host: str = "127.0.0.1"
    token: str = field(default_factory=new_token)
    script: Script | None = None
    login_script: Script | None = None
    logins: int = 0
    seen: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(self, self.rfile.read(length) if length else b"")
                api.seen.append(request)
                if request.path.split("?")[0].endswith("/login"):
                    api.logins += 1
                    if api.login_script is not None:
                        api.login_script(request)
                    else:
                        request.reply(200, {"access_token": api.token, "expires_in": 3600})
                elif api.script is not None:
                    api.script(request)
                else:
                    request.reply(200, {"data": []})

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _QuietServer((self.host, 0), Handler)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.server.server_address[1]}"

    def connection(self, **extra: Any) -> str:
        return json.dumps(
            {
                "conn_type": "butlr",
                "host": self.url,
                "login": "hostile-client",
                "password": SECRET,
                "extra": {"timeout": 10, "max_retries": 1, **extra},
            }
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def hostile_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[HostileApi]:
    """For an ``api`` fixture: a hostile API as ``butlr_default`` (max_retries 1); tests set ``api.script``."""
    server = HostileApi()
    monkeypatch.setenv("AIRFLOW_CONN_BUTLR_DEFAULT", server.connection())
    yield server
    server.close()


def use_connection(monkeypatch: pytest.MonkeyPatch, server: HostileApi, **extra: Any) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_BUTLR_DEFAULT", server.connection(**extra))


# --- the two drivers ---------------------------------------------------------------------------------


def sync_call(method: str, path: str, body: Any = None, *, graphql: bool = False, **options: Any) -> Any:
    with ButlrHook(**{**QUICK, **options}) as hook:
        if graphql:
            return hook.graphql(body["query"])
        return hook.request_json(method, path, json=body)


def async_call(method: str, path: str, body: Any = None, *, graphql: bool = False, **options: Any) -> Any:
    async def call() -> Any:
        async with ButlrAsyncHook(**{**QUICK, **options}) as hook:
            if graphql:
                return await hook.agraphql(body["query"])
            return await hook.arequest_json(method, path, json=body)

    return asyncio.run(call())


Driver = Callable[..., Any]
DRIVERS = pytest.mark.parametrize("call", [sync_call, async_call], ids=["sync", "async"])


def outcome(call: Driver, *args: Any, **kwargs: Any) -> tuple[Any, ButlrError | None, float]:
    """Run one public call: its result or the ButlrError it raised, and its wall time.

    Anything that is not a ButlrError fails the test: only ButlrError subclasses may escape.
    """
    started = time.monotonic()
    try:
        result = call(*args, **kwargs)
    except ButlrError as err:
        return None, err, time.monotonic() - started
    except Exception as err:  # the point of the check
        pytest.fail(f"a non-ButlrError escaped the public API: {type(err).__name__}: {err!s:.300}")
    return result, None, time.monotonic() - started


def trigger_events(trigger: Any) -> list[dict[str, Any]]:
    """Every event payload a trigger emits until it ends (run in a fresh event loop)."""

    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


# --- the leak check ------------------------------------------------------------------------------------


def lower_hex(encoded: str) -> str:
    """A percent-encoding with lower-case hex digits (``%2f``), as some servers write it."""
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), encoded)


def forbidden_forms(*values: str) -> set[str]:
    """Every form of a secret that must never show: itself, a 12-character prefix, encoded, folded."""
    forms: set[str] = set()
    for value in values:
        folded = " ".join(value.split())
        for text in (value, folded):
            encoded = {quote(text, safe=""), quote(text), quote_plus(text)}
            forms |= {text, text[:12], *encoded, *(lower_hex(form) for form in encoded)}
            forms.add(json.dumps(text)[1:-1])
            forms.add(json.dumps(text)[1:13])
    return {form for form in forms if len(form) >= 8}


def exception_texts(err: BaseException | None) -> list[str]:
    """str/repr of an exception and of its whole chain, and every public attribute it carries."""
    texts: list[str] = []
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        texts += [str(err), repr(err)]
        for name in ("body", "errors", "data", "endpoint"):
            value = getattr(err, name, None)
            if value is not None:
                texts.append(json.dumps(value, default=str))
        err = err.__cause__ or err.__context__
    return texts


def log_texts(records: list[logging.LogRecord]) -> list[str]:
    texts = []
    formatter = logging.Formatter()
    for record in records:
        texts.append(record.getMessage())
        if record.exc_info:
            texts.append(formatter.formatException(record.exc_info))
    return texts


def assert_no_leak(texts: list[str], *values: str, where: str = "") -> None:
    forms = forbidden_forms(*values)
    for text in texts:
        for form in forms:
            assert form not in text, (
                f"{where}: a form of a secret ({form[:4]}...) leaked into: {text[:400]!r}"
            )
