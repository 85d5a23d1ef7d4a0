"""ButlrTrigger: poll a Butlr endpoint asynchronously until a declarative plan is met.

Rules (each one a bug seen in other providers): kwargs are JSON primitives; the trigger sleeps
``poll_interval`` after every non-terminal outcome, errors included (no hot loop); consecutive
failures have a budget; an absolute ``deadline`` ends the wait; exactly one terminal event
``{"status": "success" | "error" | "timeout", "message": ..., ...}``; no token or secret in kwargs or
events; the httpx client is closed on every exit.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_butlr.common.aio import within
from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.hooks.butlr_async import ButlrAsyncHook
from airflow_provider_butlr.hooks.options import ClientOptions
from airflow_provider_butlr.hooks.shared_polls import Poller, open_poller
from airflow_provider_butlr.polling.answers import Verdict
from airflow_provider_butlr.polling.plans import PollPlan
from airflow_provider_butlr.polling.sharing import aligned_wait
from airflow_provider_butlr.reporting.times import format_instant
from airflow_provider_butlr.reporting.validation import check_positive_int
from airflow_provider_butlr.triggers.events import (
    DEFAULT_MAX_CONSECUTIVE_FAILURES,
    DEFAULT_MAX_RESPONSE_BYTES,
    MAX_POLL_INTERVAL,
)
from airflow_provider_butlr.triggers.failures import describe_failure, is_permanent


class ButlrTrigger(BaseTrigger):
    """Poll until ``plan`` is met, the ``deadline`` passes, or the failure budget is spent.

    :param plan: a :class:`~airflow_provider_butlr.polling.plans.PollPlan` as a dict (``to_dict()``).
    :param deadline: absolute end of the wait, Unix seconds (from the sensor's ``timeout``).
    :param butlr_conn_id: the ``butlr`` connection.
    :param poll_interval: seconds between polls; also the wait after a failed poll.
    :param exponential_backoff: double the interval after every unsuccessful poll, up to ``max_poll_interval``.
    :param max_poll_interval: longest interval with ``exponential_backoff`` (default: 1 hour).
    :param max_consecutive_failures: failed polls in a row before an ``error`` event.
    :param hook_params: options of the async hook (``timeout``, ``max_retries``, ``retry_wait_initial``,
        ``retry_wait_max``, ``retry_after_cap``): the sensor's hook options, JSON-safe.
    :param return_responses: put the responses of the successful poll in the event (for a worker-side
        ``response_check``); refused when they exceed ``max_response_bytes``.
    :param max_response_bytes: size limit of the returned responses, as JSON.
    :param unsuccessful_polls: polls already made without success (earlier deferrals of the same
        wait): ``exponential_backoff`` continues from there instead of starting over.
    :param share_polls: poll on the clock grid of ``poll_interval`` and share requests with the
        other triggers of this triggerer (:mod:`~airflow_provider_butlr.hooks.shared_polls`); False:
        sleep ``poll_interval`` after each poll and send this trigger's own requests.
    """

    def __init__(
        self,
        *,
        plan: dict[str, Any],
        deadline: float,
        butlr_conn_id: str = ButlrAsyncHook.default_conn_name,
        poll_interval: float = 60.0,
        exponential_backoff: bool = False,
        max_poll_interval: float | None = None,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
        hook_params: dict[str, Any] | None = None,
        return_responses: bool = False,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        unsuccessful_polls: int = 0,
        share_polls: bool = True,
    ) -> None:
        super().__init__()
        if not 0 < poll_interval <= MAX_POLL_INTERVAL:  # NaN and infinity fail this comparison too
            raise ButlrConfigurationError(
                f"poll_interval {poll_interval!r} must be above 0 and at most {MAX_POLL_INTERVAL:g} seconds"
            )
        check_positive_int(max_consecutive_failures, "max_consecutive_failures")
        if not math.isfinite(float(deadline)):
            raise ButlrConfigurationError(f"deadline {deadline!r} must be a finite Unix time")
        PollPlan.from_dict(plan)  # validate early: a bad plan fails at defer time, on the worker
        self.plan = plan
        self.deadline = float(deadline)
        self.butlr_conn_id = butlr_conn_id
        self.poll_interval = float(poll_interval)
        self.exponential_backoff = exponential_backoff
        self.max_poll_interval = max_poll_interval
        self.max_consecutive_failures = max_consecutive_failures
        self.hook_params = ClientOptions.from_hook_params(hook_params).as_hook_params()  # validated early
        self.return_responses = return_responses
        self.max_response_bytes = max_response_bytes
        self.unsuccessful_polls = max(int(unsuccessful_polls), 0)
        self.share_polls = bool(share_polls)
        self._poller: Poller | None = None
        self.polls = 0  # polls made by run() (gate-only polls included)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "plan": self.plan,
                "deadline": self.deadline,
                "butlr_conn_id": self.butlr_conn_id,
                "poll_interval": self.poll_interval,
                "exponential_backoff": self.exponential_backoff,
                "max_poll_interval": self.max_poll_interval,
                "max_consecutive_failures": self.max_consecutive_failures,
                "hook_params": self.hook_params,
                "return_responses": self.return_responses,
                "max_response_bytes": self.max_response_bytes,
                "unsuccessful_polls": self.unsuccessful_polls,
                "share_polls": self.share_polls,
            },
        )

    def _interval(self, unsuccessful_polls: int) -> float:
        if not self.exponential_backoff:
            return self.poll_interval
        ceiling = self.max_poll_interval or 3600.0
        return float(
            min(self.poll_interval * 2 ** max(unsuccessful_polls - 1, 0), max(ceiling, self.poll_interval))
        )

    def _wait(self, unsuccessful_polls: int, previous: float | None) -> float:
        """Seconds to the next poll: the next tick of the interval's grid when polls are shared."""
        interval = self._interval(unsuccessful_polls)
        return aligned_wait(time.time(), interval, previous) if self.share_polls else interval

    def _event(self, status: str, message: str, **extra: Any) -> TriggerEvent:
        return TriggerEvent({"status": status, "message": message, "polls": self.polls, **extra})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Sleep, poll, judge; repeat until one terminal event (the sensor checked before deferring)."""
        plan = PollPlan.from_dict(self.plan)
        try:
            poller = self._poller = await open_poller(
                self.butlr_conn_id, self.hook_params, shared=self.share_polls
            )
        except Exception as exc:  # the connection could not be read, or the client not opened
            yield self._event("error", f"Butlr trigger could not start: {describe_failure(exc)}")
            return
        try:
            yield await self._wait_for(plan, poller)
        finally:
            self._poller = None
            await poller.aclose()

    async def _wait_for(self, plan: PollPlan, poller: Poller) -> TriggerEvent:
        """The terminal event: poll until the plan is met, the deadline passes or the budget is spent."""
        failures = 0
        unsuccessful = self.unsuccessful_polls
        last_message = "no poll made yet"
        started: float | None = None
        while True:
            remaining = self.deadline - time.time()
            if remaining > 0:
                await asyncio.sleep(min(self._wait(unsuccessful, started), remaining))
            if time.time() >= self.deadline:
                return self._event(
                    "timeout",
                    f"Butlr condition not met by the deadline {format_instant(self.deadline)} "
                    f"after {self.polls} poll(s); last result: {last_message}",
                )
            self.polls += 1
            started = time.time()
            try:
                # the deadline holds while a request is in flight, not only between polls
                verdict, responses = await within(
                    poller.apoll(plan, started), max(self.deadline - started, 0.001)
                )
            except TimeoutError:
                return self._event(
                    "timeout",
                    f"Butlr condition not met by the deadline {format_instant(self.deadline)} "
                    f"after {self.polls} poll(s); the last poll was still in flight "
                    f"(the result before it: {last_message})",
                )
            except Exception as exc:
                if is_permanent(exc):
                    return self._event(
                        "error", f"Butlr poll failed and cannot recover: {describe_failure(exc)}"
                    )
                failures += 1
                unsuccessful += 1
                last_message = f"poll failed: {describe_failure(exc)}"
                self.log.warning(
                    "Butlr poll %d failed (%d of %d consecutive failures allowed): %s",
                    self.polls,
                    failures,
                    self.max_consecutive_failures,
                    describe_failure(exc),
                )
                if failures >= self.max_consecutive_failures:
                    return self._event(
                        "error",
                        f"Butlr poll failed {failures} time(s) in a row; last error: {describe_failure(exc)}",
                    )
                continue
            failures = 0
            if verdict.met:
                return self._success(verdict, responses)
            unsuccessful += 1
            last_message = verdict.message
            self.log.info("Butlr condition not met yet (poll %d): %s", self.polls, verdict.message)

    def _success(self, verdict: Verdict, responses: list[Any]) -> TriggerEvent:
        extra: dict[str, Any] = {"summary": verdict.details}
        if self.return_responses:
            size = len(json.dumps(responses, default=str))
            if size > self.max_response_bytes:
                return self._event(
                    "error",
                    f"Butlr response is {size} bytes, above max_response_bytes={self.max_response_bytes}; "
                    "narrow the request or use declarative conditions instead of a response_check",
                )
            extra["responses"] = responses
        return self._event("success", verdict.message, **extra)

    async def cleanup(self) -> None:
        """Release the httpx client (or this trigger's part of the shared one) on every exit."""
        poller, self._poller = self._poller, None
        if poller is not None:
            await poller.aclose()

    async def on_kill(self) -> None:
        """Nothing runs remotely: a Butlr poll is a read; just release the client."""
        await self.cleanup()
