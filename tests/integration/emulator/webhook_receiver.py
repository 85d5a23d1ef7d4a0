"""A webhook receiver on 127.0.0.1 for the delivery tests: records every POST, answers as told."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    """One POST as the receiver saw it (``headers`` with lower-case names)."""

    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    """``statuses``: the answers to give, in order (then ``default_status``); ``delay``: seconds before answering."""

    port: int = 0
    statuses: list[int] = field(default_factory=list)
    default_status: int = 200
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/butlr") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self) -> int:
        with self.lock:
            return self.statuses.pop(0) if self.statuses else self.default_status

    def record(self, item: Received) -> None:
        with self.lock:
            self.received.append(item)

    @property
    def events(self) -> list[dict[str, Any]]:
        """The JSON bodies, in arrival order."""
        with self.lock:
            return [r.body for r in self.received]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait (real time) until ``count`` POSTs arrived; the bodies."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.events


@contextmanager
def receiver(**options: Any) -> Iterator[Receiver]:
    state = Receiver(**options)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.record(
                Received(self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(raw))
            )
            if state.delay:
                time.sleep(state.delay)
            status = state.answer()
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
