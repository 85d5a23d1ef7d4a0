"""The rate limit of one host: the rolling window in a file of the token store's private directory,
read and written under an exclusive ``flock``; no service to run.

Every task process, the triggerer and ``airflow tasks test`` of the host book their slots in the
same file, so the limit holds for the host whatever its processes. The file holds slot ids and
times only (nothing secret); its name is a digest of the credentials key. A file that does not read
as a window (truncated, another format) counts as empty.
"""

from __future__ import annotations

import fcntl
import os
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from airflow_provider_butlr.client.limits.base import BookingLimiter, SharedLimiter, Unreachable
from airflow_provider_butlr.client.limits.window import Window, hold_seconds

MAGIC = b"BRL1"
HEADER = struct.Struct("<4sdI")  # magic, not_before, slot count
SLOT = struct.Struct("<Qd")  # slot id, counted time
MAX_FILE = HEADER.size + 10_000 * SLOT.size  # the largest limit's window


def decode(blob: bytes) -> Window:
    try:
        magic, not_before, count = HEADER.unpack_from(blob)
        if magic != MAGIC or len(blob) < HEADER.size + count * SLOT.size:
            return Window()
        slots = [SLOT.unpack_from(blob, HEADER.size + i * SLOT.size) for i in range(count)]
    except struct.error:
        return Window()
    return Window([(int(slot), float(at)) for slot, at in slots], float(not_before))


def encode(window: Window) -> bytes:
    head = HEADER.pack(MAGIC, window.not_before, len(window.slots))
    return head + b"".join(SLOT.pack(slot, at) for slot, at in window.slots)


class HostLimiter(SharedLimiter):
    """At most ``per_minute`` requests of these credentials per rolling minute on this host."""

    scope = "host"

    def __init__(
        self,
        opener: Callable[[], int | None],
        per_minute: int,
        fallback: BookingLimiter,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        self._open = opener  # opens the window file (created 0600, never through a symlink)
        self.per_minute = per_minute
        self.fallback = fallback
        self._clock = clock
        self._sleep = sleep

    def _describe_outage(self, err: BaseException) -> str:
        return "the token directory is not usable"

    @contextmanager
    def _window(self) -> Iterator[Window]:
        """The window, locked against every other process of the host while the block runs."""
        fd = self._open()
        if fd is None:
            raise Unreachable("the rate-limit window file of the token directory cannot be opened")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd closes, also if the process dies
            size = os.fstat(fd).st_size
            window = decode(os.pread(fd, min(size, MAX_FILE), 0)) if size else Window()
            yield window
            blob = encode(window)
            os.pwrite(fd, blob, 0)
            os.ftruncate(fd, len(blob))
        finally:
            os.close(fd)

    def _book(self, slot: int) -> float:
        with self._window() as window:
            now = self._clock()
            return window.book(slot, now, self.per_minute) - now

    def _answered(self, slot: int) -> None:
        with self._window() as window:
            window.answered(slot, self._clock())

    def _hold(self, seconds: float) -> None:
        bounded = hold_seconds(seconds)
        if bounded is not None:
            with self._window() as window:
                window.hold(self._clock() + bounded)
