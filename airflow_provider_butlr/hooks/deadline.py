"""A total deadline for ``requests`` calls (connect + headers + body).

``requests`` only bounds each socket read, so a server that trickles one byte at a time keeps a call
busy for as long as it likes. Here one shared daemon thread watches the deadlines of requests in
flight and shuts down the socket of any still running at its deadline; the blocked read fails at once
and the driver reports :class:`~airflow_provider_butlr.retry.DeadlineExceeded` (retryable).

Imported on the first request only (it imports requests).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from requests.adapters import HTTPAdapter

from airflow_provider_butlr.retry import DeadlineExceeded

_local = threading.local()


class _Watchdog:
    """One daemon thread running the actions whose deadline passed (cancelled ones are skipped)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cancelled: set[int] = set()
        self._ids = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, deadline: float, action: Callable[[], None]) -> int:
        with self._wake:
            handle = next(self._ids)
            earliest = not self._heap or deadline < self._heap[0][0]
            heapq.heappush(self._heap, (deadline, handle, action))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="butlr-deadlines", daemon=True)
                self._thread.start()
            if earliest:  # the thread sleeps until the earliest deadline: wake it only for a new earliest
                self._wake.notify()
            return handle

    def disarm(self, handle: int) -> None:
        with self._wake:
            self._cancelled.add(handle)

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._heap and self._heap[0][1] in self._cancelled:
                    self._cancelled.discard(heapq.heappop(self._heap)[1])
                if not self._heap:
                    self._wake.wait(timeout=60.0)
                    continue
                deadline, _, action = self._heap[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    self._wake.wait(timeout=delay)
                    continue
                heapq.heappop(self._heap)
            with contextlib.suppress(Exception):
                action()


_WATCHDOG = _Watchdog()


class _Guard:
    """One request's deadline: the connection it uses, and whether the deadline fired."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        # The socket is shut a little after the deadline: a plain read timeout (same length) reports
        # itself first; the watchdog is for what per-read timeouts cannot end (trickling answers).
        self.shutdown_at = self.deadline + min(0.1 * seconds, 1.0) + 0.05
        self.connection: Any = None
        self.fired = False

    def fire(self) -> None:
        self.fired = True
        sock = getattr(self.connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[_Guard]:
    """Bound the requests made inside (on this thread, through a :class:`DeadlineAdapter`)."""
    guard = _Guard(seconds)
    _local.guard = guard
    handle = _WATCHDOG.arm(guard.shutdown_at, guard.fire)
    try:
        yield guard
    except Exception as exc:
        if guard.fired and not isinstance(exc, DeadlineExceeded):
            raise DeadlineExceeded(seconds) from exc
        raise
    finally:
        _WATCHDOG.disarm(handle)
        _local.guard = None


class DeadlineAdapter(HTTPAdapter):
    """Records the connection each request uses, so its deadline can shut the socket down."""

    def get_connection_with_tls_context(self, *args: Any, **kwargs: Any) -> Any:
        pool: Any = super().get_connection_with_tls_context(*args, **kwargs)
        if not getattr(pool, "_butlr_recording", False):
            original = pool._get_conn

            def recording_get_conn(*a: Any, **kw: Any) -> Any:
                connection = original(*a, **kw)
                guard = getattr(_local, "guard", None)
                if guard is not None:
                    guard.connection = connection
                return connection

            pool._get_conn = recording_get_conn
            pool._butlr_recording = True
        return pool
