"""A 429 is "wait", not "fail": one call's time budget for waiting out the server's rate limit.

Answers 429 do not use up ``max_retries``; the call waits them out (``Retry-After`` honoured, up
to the hook's ``retry_after_cap`` per wait) for as long as the connection extra
``max_rate_limit_wait`` allows, counted from the first 429, and never past ``not_after`` (the
task's ``execution_timeout``). It fails only when the next wait would overrun that budget, with an
error that says how long it waited, how many answers 429 it got and why it stopped. Other failures
keep their retry count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

TASK_MARGIN = 5.0  # seconds left to the task after the last wait: the error, not Airflow's timeout


@dataclass
class RateLimitWaits:
    """What one call has waited out so far (a fresh one per call). The waits are counted as planned
    (the ``Retry-After`` or backoff of each retry), so the budget is what the call spent waiting,
    not the requests' own time."""

    budget: float
    not_after: float | None = None  # Unix time: the end of the task's execution_timeout
    clock: Callable[[], float] = field(default=lambda: time.time(), repr=False)
    slept: float = 0.0
    answers: int = 0
    others: int = 0  # attempts that failed for another reason (their count is bounded)
    retry_after: float | None = None
    asked: float = 0.0  # the wait that did not fit when the budget ran out
    cut_by_task: bool = False

    def waited(self) -> float:
        return self.slept

    def remaining(self) -> float:
        """Seconds still allowed: of the budget, and before the task's execution_timeout."""
        left = self.budget - self.slept
        if self.not_after is not None:
            left = min(left, self.not_after - TASK_MARGIN - self.clock())
        return left

    def spent(self, retry_after: float | None, upcoming: float) -> bool:
        """Another answer 429: True when waiting ``upcoming`` seconds more would overrun the budget."""
        self.answers += 1
        self.retry_after = retry_after
        if upcoming > self.remaining():
            self.asked = upcoming
            self.cut_by_task = upcoming <= self.budget - self.slept
            return True
        self.slept += upcoming
        return False

    def describe(self) -> str:
        """Why the call stopped waiting, in words (for the final error)."""
        limit = (
            "the task's execution_timeout"
            if self.cut_by_task
            else f"the wait budget of {self.budget:.0f} s (extra.max_rate_limit_wait)"
        )
        asked = "its Retry-After" if self.retry_after is not None else "backoff"
        return (
            f"it waited {self.slept:.0f} s over {self.answers} answer(s) 429, and the next wait "
            f"({asked}: {self.asked:.0f} s) would pass {limit}"
        )
