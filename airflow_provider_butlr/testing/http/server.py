"""HTTP plumbing: a threaded HTTP/1.1 server that records requests, applies faults and writes answers."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import urlsplit

from airflow_provider_butlr.testing.http.counters import RequestRecord

log = logging.getLogger(__name__)
# One INFO line per request: method, path (no query string), status, duration. Never headers or bodies.
request_log = logging.getLogger("airflow_provider_butlr.testing.requests")

ZERO_PAGE_INFO: dict[str, int] = {"page": 1, "page_item_count": 0, "total_item_count": 0, "total_pages": 1}
JSON_TYPE = "application/json"


@dataclass
class Response:
    """An answer ready to be written; ``headers`` are extra headers (e.g. Retry-After)."""

    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)
    # "reset" fault: send only this many body bytes, then close the connection mid-response.
    reset_after: int | None = None

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
        return cls(status, json.dumps(payload).encode(), JSON_TYPE, dict(headers or {}))


@dataclass
class Request:
    """A parsed request; ``json`` is None when the body is empty or not JSON (see ``json_error``)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    raw_body: bytes
    json: Any
    json_error: str | None
    record: RequestRecord


class EmulatorApp(Protocol):
    """What the server needs from the emulator (implemented by ``api.ButlrAPI``)."""

    def record(self, request: Request) -> None:
        """Count the request (before any fault)."""

    def handle(self, request: Request) -> Response:
        """The normal answer."""

    def apply_fault(self, request: Request, respond: Callable[[], Response]) -> Response | None:
        """The answer to send (``respond()`` is the normal one), or None to drop the connection."""


class EmulatorHTTPServer(ThreadingHTTPServer):
    """Threaded server that tracks its connections so :meth:`close` ends them all."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # many clients connecting at once (socketserver's 5 resets them)

    def __init__(self, address: tuple[str, int], app: EmulatorApp, stopping: threading.Event) -> None:
        super().__init__(address, EmulatorRequestHandler)
        self.app = app
        self.stopping = stopping  # set on close(): interrupts injected delays and latency
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._workers: set[threading.Thread] = set()

    def process_request(self, request: Any, client_address: Any) -> None:
        worker = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name="butlr-emulator-conn",
            daemon=True,
        )
        with self._lock:
            self._connections.add(request)
            self._workers.add(worker)
        worker.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._connections.discard(request)
                self._workers.discard(threading.current_thread())

    def close(self, join_timeout: float = 5.0) -> None:
        """Stop accepting, end every open keep-alive connection and wait for the workers."""
        self.stopping.set()
        self.server_close()
        with self._lock:
            connections = list(self._connections)
            workers = list(self._workers)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for worker in workers:
            worker.join(join_timeout)


class EmulatorRequestHandler(BaseHTTPRequestHandler):
    """Parses, records, lets the app answer (with faults), writes the bytes."""

    protocol_version = "HTTP/1.1"
    server_version = "ButlrEmulator/1"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 300  # idle keep-alive connections are closed after this many seconds
    server: EmulatorHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log (it would print request lines)."""

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length:
            return self.rfile.read(int(length))
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    def _dispatch(self) -> None:
        started = time.perf_counter()
        status: int | None = None
        try:
            status = self._answer()
        finally:
            if request_log.isEnabledFor(logging.INFO):
                path = urlsplit(self.path).path
                request_log.info(
                    "%s %s %s %.1f ms",
                    self.command,
                    path,
                    status if status is not None else "dropped",
                    (time.perf_counter() - started) * 1000,
                )

    def _answer(self) -> int | None:
        """Read, record, answer; return the status sent (None when the connection was dropped)."""
        app = self.server.app
        split = urlsplit(self.path)
        raw = self._read_body()
        parsed: Any = None
        error: str | None = None
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError as exc:
                error = f"request body is not valid JSON: {exc}"
        record = RequestRecord(
            method=self.command,
            path=split.path,
            body_json=parsed,
            has_authorization=self.headers.get("Authorization") is not None,
            timestamp=0.0,
        )
        request = Request(
            self.command,
            split.path,
            split.query,
            {k.lower(): v for k, v in self.headers.items()},
            raw,
            parsed,
            error,
            record,
        )
        app.record(request)
        try:
            response = app.apply_fault(request, lambda: app.handle(request))
        except Exception:
            log.exception("Butlr emulator: unhandled error on %s %s", self.command, split.path)
            response = Response.json(
                500, {"error": "internal_error", "message": "emulator error; see its log"}
            )
        if response is None:
            record.status = None
            self._drop()
            return None
        record.status = response.status
        self._write(response)
        return response.status

    def _drop(self) -> None:
        """Close the socket without answering."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _head(self, response: Response, length: int) -> bytes:
        try:
            reason = HTTPStatus(response.status).phrase
        except ValueError:
            reason = "Unknown"
        lines = [
            f"HTTP/1.1 {response.status} {reason}",
            f"Server: {self.server_version}",
            f"Date: {self.date_time_string()}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {length}",
        ]
        lines += [f"{name}: {value}" for name, value in response.headers.items()]
        if self.close_connection or (self.headers.get("Connection") or "").lower() == "close":
            self.close_connection = True
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _write(self, response: Response) -> None:
        body = b"" if self.command == "HEAD" else response.body
        if response.reset_after is not None:
            # Announce the full length, send part of the body, then close mid-response.
            self.wfile.write(self._head(response, len(body)) + body[: response.reset_after])
            self._drop()
            return
        self.wfile.write(self._head(response, len(body)) + body)
