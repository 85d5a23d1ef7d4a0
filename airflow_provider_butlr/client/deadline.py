"""A total deadline for ``requests`` calls (connect + headers + body).

``requests`` only bounds each socket read, so a server that trickles one byte at a time keeps a call
busy for as long as it likes. Here one shared daemon thread watches the deadlines of requests in
flight and shuts down the socket of any still running at its deadline; the blocked read fails at once
and the driver reports :class:`~airflow_provider_butlr.client.retry.DeadlineExceeded` (retryable).

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
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from airflow_provider_butlr.client.retry import DeadlineExceeded

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
    """Bound the requests made inside (on this thread, through a :class:`DeadlineAdapter`).

    Nested deadlines (a login made while a request is being prepared) restore the outer one.
    """
    guard = _Guard(seconds)
    outer = getattr(_local, "guard", None)
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
        _local.guard = outer


class _ReportsToTheDeadline:
    """Tells the request's deadline which connection (so which socket) it uses."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        guard = getattr(_local, "guard", None)
        if guard is not None:
            guard.connection = self
        super().request(*args, **kwargs)  # type: ignore[misc]


class _DeadlineHTTPConnection(_ReportsToTheDeadline, HTTPConnection):
    pass


class _DeadlineHTTPSConnection(_ReportsToTheDeadline, HTTPSConnection):
    pass


class _DeadlineHTTPPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


POOL_CLASSES: dict[str, type[HTTPConnectionPool]] = {"http": _DeadlineHTTPPool, "https": _DeadlineHTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """An adapter whose connections report themselves to the deadline of the request using them.

    Only public extension points: urllib3's ``PoolManager.pool_classes_by_scheme`` and the pools'
    ``ConnectionCls``, subclasses that record the connection when a request is sent on it. (A SOCKS
    proxy keeps its own pool classes: there, per-read timeouts bound a call, not the total deadline.)
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = POOL_CLASSES
        return manager
