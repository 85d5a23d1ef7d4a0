"""The emulator's controllable clock: real time plus an offset, or frozen at a fixed instant."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from airflow_provider_butlr.testing.timeseries.timeutils import parse_duration, parse_rfc3339

CLOCK_SPEC_HELP = (
    "an RFC 3339 time such as 2025-11-05T15:00:00Z, or an offset from now such as -2h, +30m, -1d"
)


def clock_moment(spec: str, now: datetime) -> datetime:
    """The instant a clock spec names: an RFC 3339 time, or ``now`` moved by a signed duration."""
    text = spec.strip() if isinstance(spec, str) else ""
    if text[:1] in "+-" and text[1:2].isdigit():
        seconds = parse_duration(text.lstrip("+"))
        return now + timedelta(seconds=seconds)
    try:
        return datetime.fromtimestamp(parse_rfc3339(text), tz=UTC)
    except ValueError:
        raise ValueError(f"clock {spec!r} is not {CLOCK_SPEC_HELP}") from None


class EmulatorClock:
    """Thread-safe UTC clock.

    By default it follows ``time.time()`` (so ``time_machine`` travels move it too) plus an
    offset. :meth:`set` jumps to an instant and keeps ticking; :meth:`freeze` stops it there.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._frozen_at: float | None = None
        self._listeners: list[Callable[[], None]] = []

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (quickly, without arguments) after every jump, advance, freeze or reset."""
        with self._lock:
            self._listeners.append(callback)

    def _changed(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for callback in listeners:
            callback()

    def timestamp(self) -> float:
        """Current emulator time as Unix seconds."""
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return time.time() + self._offset

    def now(self) -> datetime:
        """Current emulator time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.timestamp(), tz=UTC)

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
        self._changed()

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
        self._changed()
        return self.now()

    def reset(self) -> None:
        """Back to real time."""
        with self._lock:
            self._offset = 0.0
            self._frozen_at = None
        self._changed()

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def set_spec(self, spec: str, *, frozen: bool = False) -> datetime:
        """Jump to a clock spec (see :func:`clock_moment`), ticking unless ``frozen``; return the new now."""
        self.set(clock_moment(spec, self.now()), tick=not frozen)
        return self.now()

    def describe(self) -> dict[str, object]:
        """``{"now": RFC 3339, "timestamp": seconds, "frozen": bool, "offset_seconds": vs real time}``."""
        now = self.timestamp()
        return {
            "now": datetime.fromtimestamp(now, tz=UTC).isoformat().replace("+00:00", "Z"),
            "timestamp": now,
            "frozen": self.frozen,
            "offset_seconds": now - time.time(),
        }
