"""The emulator's controllable clock: real time plus an offset, or frozen at a fixed instant."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone


class EmulatorClock:
    """Thread-safe UTC clock.

    By default it follows ``time.time()`` (so ``time_machine`` travels move it too) plus an
    offset. :meth:`set` jumps to an instant and keeps ticking; :meth:`freeze` stops it there.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._frozen_at: float | None = None

    def timestamp(self) -> float:
        """Current emulator time as Unix seconds."""
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return time.time() + self._offset

    def now(self) -> datetime:
        """Current emulator time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.timestamp(), tz=timezone.utc)

    def set(self, moment: datetime, *, tick: bool = True) -> None:
        """Jump to ``moment`` (aware); keep ticking unless ``tick`` is false."""
        if moment.tzinfo is None:
            raise ValueError(
                "EmulatorClock.set() needs an aware datetime, e.g. datetime(..., tzinfo=timezone.utc)"
            )
        target = moment.timestamp()
        with self._lock:
            if tick:
                self._frozen_at = None
                self._offset = target - time.time()
            else:
                self._frozen_at = target

    def freeze(self, moment: datetime | None = None) -> None:
        """Stop the clock at ``moment`` (default: now)."""
        self.set(moment or self.now(), tick=False)

    def unfreeze(self) -> None:
        """Resume ticking from the frozen instant."""
        self.set(self.now(), tick=True)

    def advance(self, seconds: float = 0.0, **delta: float) -> datetime:
        """Move forward by ``seconds`` (plus any ``timedelta`` keywords); return the new now."""
        step = seconds + timedelta(**delta).total_seconds()
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at += step
            else:
                self._offset += step
        return self.now()

    def reset(self) -> None:
        """Back to real time."""
        with self._lock:
            self._offset = 0.0
            self._frozen_at = None

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None
