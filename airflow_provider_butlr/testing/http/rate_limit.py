"""A server-side rate limit for the data endpoints: N requests per sliding 60-second window."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

WINDOW_SECONDS = 60.0


class SlidingWindowLimiter:
    """Admits at most ``limit`` requests in any 60 s window (real monotonic time, not the emulator clock).

    Refused requests do not use a slot. :meth:`acquire` returns None when admitted, else the whole
    seconds until the oldest admitted request leaves the window (the ``Retry-After`` to send).
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._admitted: deque[float] = deque()

    def acquire(self, limit: int | None) -> int | None:
        if limit is None:
            return None
        now = self._monotonic()
        with self._lock:
            while self._admitted and self._admitted[0] <= now - WINDOW_SECONDS:
                self._admitted.popleft()
            if len(self._admitted) < limit:
                self._admitted.append(now)
                return None
            frees_at = self._admitted[len(self._admitted) - limit] + WINDOW_SECONDS
        return max(1, math.ceil(frees_at - now))

    def reset(self) -> None:
        with self._lock:
            self._admitted.clear()
