"""What the Butlr sensors share: poke/reschedule on the worker, or check once and defer to ButlrTrigger.

Each sensor turns its arguments into a declarative :class:`~airflow_provider_butlr.polling.plans.PollPlan`.
``mode="poke"``/``"reschedule"`` evaluate it on the worker with the sync hook; ``deferrable=True``
checks once, then hands the same plan to :class:`~airflow_provider_butlr.triggers.butlr.ButlrTrigger`,
which evaluates it in the triggerer. A ``response_check`` callable still defers: the trigger returns
the responses and the worker runs the callable, deferring again while it says no.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowSensorTimeout,
    BaseSensorOperator,
    Context,
    PokeReturnValue,
    conf,
)

from airflow_provider_butlr.exceptions import ButlrConfigurationError, ButlrError
from airflow_provider_butlr.hooks.base import ButlrBaseHook
from airflow_provider_butlr.hooks.options import ClientOptions
from airflow_provider_butlr.polling.answers import Verdict
from airflow_provider_butlr.polling.plans import PollPlan
from airflow_provider_butlr.reporting.times import format_instant
from airflow_provider_butlr.reporting.validation import check_positive_int
from airflow_provider_butlr.triggers.events import (
    DEFAULT_MAX_CONSECUTIVE_FAILURES,
    DEFAULT_MAX_RESPONSE_BYTES,
    EVENT_STATUSES,
)

if TYPE_CHECKING:  # the trigger is imported when a sensor defers, not when a DAG file is parsed
    from airflow_provider_butlr.hooks.butlr import ButlrHook
    from airflow_provider_butlr.triggers.butlr import ButlrTrigger

DEFER_TIMEOUT_MARGIN = 60.0  # Airflow's own deferral timeout backs up the trigger's deadline


def default_deferrable() -> bool:
    """Airflow's ``[operators] default_deferrable`` (False when unset)."""
    return conf.getboolean("operators", "default_deferrable", fallback=False)


DAY = 86_400.0
MAX_TIMEOUT = 366 * DAY  # a sensor's timeout and grace period: at most a year (absurd values refused)


def seconds_of(value: timedelta | float | int, name: str, largest: float = MAX_TIMEOUT) -> float:
    """Seconds from a number or a timedelta: finite, from 0 to ``largest``; else an error naming ``name``."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or not 0 <= seconds <= largest  # NaN and infinity fail this comparison too
    ):
        raise ButlrConfigurationError(
            f"{name} {value!r} must be a number of seconds or a timedelta from 0 to {largest:g} s"
        )
    return float(seconds)


def asset_arguments(floors: Any, rooms: Any, zones: Any) -> dict[str, Any]:
    return {kind: ids for kind, ids in (("floors", floors), ("rooms", rooms), ("zones", zones)) if ids}


class ButlrPollingSensor(BaseSensorOperator):
    """Shared machinery: poke/reschedule on the worker, or check once and defer to ButlrTrigger.

    :param butlr_conn_id: the ``butlr`` connection (templated).
    :param deferrable: wait in the triggerer instead of a worker slot (default: Airflow's
        ``[operators] default_deferrable``).
    :param max_consecutive_failures: failed polls in a row the trigger tolerates before failing.
    :param max_retries: retries inside one poll (429/5xx/network); None = the connection's.
    :param hook_params: further hook options (``timeout``, ``retry_wait_initial``, ``retry_wait_max``,
        ``retry_after_cap``); they reach the trigger too.
    """

    template_fields: Sequence[str] = ("butlr_conn_id",)
    ui_color = "#dff3ef"

    def __init__(
        self,
        *,
        butlr_conn_id: str = ButlrBaseHook.default_conn_name,
        deferrable: bool | None = None,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
        max_retries: int | None = None,
        hook_params: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # before Airflow's own checks, which let 1e300 or infinity through to an OverflowError
        for name, largest in (("timeout", MAX_TIMEOUT), ("poke_interval", DAY), ("max_wait", MAX_TIMEOUT)):
            if kwargs.get(name) is not None:
                seconds_of(kwargs[name], name, largest)
        super().__init__(**kwargs)
        self.butlr_conn_id = butlr_conn_id
        self.deferrable = default_deferrable() if deferrable is None else bool(deferrable)
        check_positive_int(max_consecutive_failures, "max_consecutive_failures")
        params = {**(hook_params or {}), **({} if max_retries is None else {"max_retries": max_retries})}
        self.hook_params = ClientOptions.from_hook_params(params).as_hook_params()  # refused here if wrong
        self.max_consecutive_failures = max_consecutive_failures
        self._plan: PollPlan | None = None
        self._hook: ButlrHook | None = None

    # --- what subclasses decide ---------------------------------------------------------------

    def build_plan(self, context: Context) -> PollPlan:
        """The requests and conditions of one poll (after templates are rendered)."""
        raise NotImplementedError

    def accept(self, verdict: Verdict, responses: list[Any], context: Context) -> PokeReturnValue:
        """Turn a met plan into the sensor's answer (a worker-side check may still say no)."""
        return PokeReturnValue(True, verdict.details)

    # --- poke / reschedule ----------------------------------------------------------------------

    @property
    def hook(self) -> ButlrHook:
        if self._hook is None:
            from airflow_provider_butlr.hooks.butlr import ButlrHook  # on the worker, not at parse time

            self._hook = ButlrHook(self.butlr_conn_id, **self.hook_params)
        return self._hook

    def plan_for(self, context: Context) -> PollPlan:
        if self._plan is None:
            self._plan = self.build_plan(context).validate()
        return self._plan

    def poke(self, context: Context) -> bool | PokeReturnValue:
        verdict, responses = self.hook.poll(self.plan_for(context), time.time())
        self.log.info("Butlr %s: %s", "condition met" if verdict.met else "not yet", verdict.message)
        if not verdict.met:
            return False
        return self.accept(verdict, responses, context)

    def execute(self, context: Context) -> Any:
        try:
            if not self.deferrable:
                return super().execute(context)
            deadline = time.time() + self.timeout
            first = self.poke(context)  # check once: no deferral when the answer is already yes
            if first:
                return first.xcom_value if isinstance(first, PokeReturnValue) else None
            self.defer_until(context, deadline)
        finally:
            self._close_hook()

    def _close_hook(self) -> None:
        if self._hook is not None:
            self._hook.close()
            self._hook = None

    # --- deferrable -----------------------------------------------------------------------------

    @property
    def needs_responses(self) -> bool:
        """Whether the worker must see the responses (a callable check the trigger cannot run)."""
        return False

    def make_trigger(self, context: Context, deadline: float, unsuccessful_polls: int = 0) -> ButlrTrigger:
        from airflow_provider_butlr.triggers.butlr import ButlrTrigger

        return ButlrTrigger(
            plan=self.plan_for(context).to_dict(),
            deadline=deadline,
            butlr_conn_id=self.butlr_conn_id,
            poll_interval=max(float(self.poke_interval), 1.0),
            exponential_backoff=self.exponential_backoff,
            max_poll_interval=self.max_wait.total_seconds() if self.max_wait else None,
            max_consecutive_failures=self.max_consecutive_failures,
            hook_params=self.hook_params,
            return_responses=self.needs_responses,
            max_response_bytes=DEFAULT_MAX_RESPONSE_BYTES,
            unsuccessful_polls=unsuccessful_polls,
        )

    def defer_until(self, context: Context, deadline: float, unsuccessful_polls: int = 0) -> None:
        """Hand the wait to the triggerer; the trigger ends it by ``deadline`` (Unix seconds).

        ``unsuccessful_polls`` (trigger polls of earlier deferrals) keeps ``exponential_backoff`` going.
        """
        remaining = max(deadline - time.time(), 0.0)
        self.log.info(
            "Deferring to the triggerer until %s (poll every %s s).",
            format_instant(deadline),
            self.poke_interval,
        )
        self.defer(
            trigger=self.make_trigger(context, deadline, unsuccessful_polls),
            method_name="execute_complete",
            kwargs={"deadline": deadline, "unsuccessful_polls": unsuccessful_polls},
            timeout=timedelta(seconds=remaining + float(self.poke_interval) + DEFER_TIMEOUT_MARGIN),
        )

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any] | None = None,
        deadline: float | None = None,
        unsuccessful_polls: int = 0,
    ) -> Any:
        """Validate the trigger's event: return the summary, or raise on error/timeout."""
        if not isinstance(event, Mapping) or event.get("status") not in EVENT_STATUSES:
            raise ButlrError(
                f"{self.task_id}: unexpected trigger event {event!r}; "
                f"expected a dict with status one of {', '.join(EVENT_STATUSES)}"
            )
        message = str(event.get("message") or "")
        if event["status"] == "timeout":
            raise AirflowSensorTimeout(f"{self.task_id}: {message}")
        if event["status"] == "error":
            raise ButlrError(f"{self.task_id}: {message}")
        verdict = Verdict(True, message, dict(event.get("summary") or {}))
        answer = self.accept(verdict, list(event.get("responses") or []), context)
        if answer:
            self.log.info("Butlr condition met: %s", message)
            return answer.xcom_value
        end = float(deadline) if deadline is not None else time.time()
        if time.time() >= end:
            raise AirflowSensorTimeout(
                f"{self.task_id}: response_check still false at the deadline {format_instant(end)}"
            )
        try:
            polls = event.get("polls")  # the trigger's polls, the met one the check refused included
            polls = int(unsuccessful_polls) + (polls if isinstance(polls, int) and polls > 0 else 1)
            self.defer_until(context, end, polls)  # rebuilding the plan may need the hook (topology)
        finally:
            self._close_hook()
        return None
