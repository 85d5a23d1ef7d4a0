"""The rolling-window rule every client-side limiter books by (process, host file, Redis script).

At most ``per_minute`` requests are counted in any 60 seconds. A request books the next slot: not
before ``now``, not before a server's ``Retry-After`` hold (``not_before``), not before the
``per_minute``-th most recent slot plus a minute, and not before the latest slot: first come, first
served, so a later caller never overtakes an earlier one and no caller starves while others send.
A slot counts from its booked time, moved to its answer's time once answered: the server counts a
request when it arrives, somewhere between the two, so the request taking the slot's place a
minute later reaches the server more than a minute after it. ``redis_limiter.BOOK`` is this rule
in Lua.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

WINDOW_SECONDS = 60.0
MAX_HOLD = 3600.0  # the longest hold whatever a caller asks (the largest retry_after_cap a hook accepts)


def hold_seconds(seconds: float) -> float | None:
    """A ``Retry-After`` hold as it is applied: 0 to :data:`MAX_HOLD` seconds; None when not finite."""
    if not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_HOLD)


@dataclass
class Window:
    """The slots of the last ``per_minute`` requests, in booking order, and the current hold."""

    slots: list[tuple[int, float]] = field(default_factory=list)  # (slot id, counted time)
    not_before: float = 0.0

    def book(self, slot_id: int, now: float, per_minute: int) -> float:
        """Book a slot for ``slot_id``; its time (the caller sends then)."""
        at = max(now, self.not_before)
        if len(self.slots) >= per_minute:
            at = max(at, self.slots[len(self.slots) - per_minute][1] + WINDOW_SECONDS)
        if self.slots:
            at = max(at, self.slots[-1][1])
        self.slots.append((slot_id, at))
        del self.slots[:-per_minute]
        return at

    def answered(self, slot_id: int, now: float) -> None:
        """The slot's request was answered at ``now``: it counts from then on."""
        for index, (slot, at) in enumerate(self.slots):
            if slot == slot_id:
                self.slots[index] = (slot, max(at, now))
                return

    def hold(self, until: float) -> None:
        """No slot before ``until`` (a server's Retry-After)."""
        self.not_before = max(self.not_before, until)
