"""Poll plans: the requests of one poll and the conditions that must all hold, as plain JSON.

A :class:`PollPlan` (``to_dict`` / ``from_dict``) travels from a sensor to the deferrable trigger.
:func:`poll_flow` is one poll without a transport: the sensor's hook (sync) and the trigger's hook
(async) drive it, so the worker and the triggerer evaluate the same plan the same way.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.polling.answers import Verdict, is_number
from airflow_provider_butlr.polling.conditions import Condition, condition_from_dict
from airflow_provider_butlr.reporting.times import format_instant

PollFlow = Generator["PollRequest", Any, tuple[Verdict, list[Any]]]


def poll_flow(plan: PollPlan, now: float, clock: Callable[[], float]) -> PollFlow:
    """One poll, transport-free: the plan's gate, else each request (yielded; the driver sends back
    its JSON answer, a GraphQL answer with ``errors`` already refused by the hook) and the
    evaluation. The sensor drives it with the sync hook, the trigger with the async one."""
    gate = plan.gate(now)
    if gate is not None:
        return gate, []
    responses = []
    for request in plan.render(now):
        payload = yield request
        responses.append(payload)
    return plan.evaluate(responses, clock()), responses


@dataclass
class PollRequest:
    """One API call of a poll. With ``lookback_seconds``, ``filter.start``/``stop`` are set at each
    poll to the latest ``lookback_seconds`` ending at the last whole ``align_seconds`` boundary.

    ``max_ids``: the most asset ids a reporting request may carry when the triggerer merges this one
    with the same request of other triggers for other ids (:mod:`~airflow_provider_butlr.polling.sharing`);
    None = shared only with identical requests."""

    endpoint: str
    method: str = "POST"
    json: Any = None
    params: dict[str, Any] | None = None
    lookback_seconds: float | None = None
    align_seconds: float = 60.0
    max_ids: int | None = None

    def validate(self, where: str) -> None:
        if not isinstance(self.endpoint, str) or not self.endpoint.strip():
            raise ButlrConfigurationError(f"{where}.endpoint must be an API path such as /api/v3/reporting")
        if self.method.upper() not in ("GET", "POST"):
            raise ButlrConfigurationError(f"{where}.method {self.method!r} is not one of GET, POST")
        if self.lookback_seconds is not None:
            if not is_number(self.lookback_seconds) or self.lookback_seconds <= 0:
                raise ButlrConfigurationError(
                    f"{where}.lookback_seconds must be > 0, got {self.lookback_seconds!r}"
                )
            if not isinstance(self.json, Mapping) or not isinstance(self.json.get("filter"), Mapping):
                raise ButlrConfigurationError(
                    f"{where}.lookback_seconds needs a reporting body with a 'filter'"
                )
        if self.max_ids is not None and (
            isinstance(self.max_ids, bool) or not isinstance(self.max_ids, int) or self.max_ids < 1
        ):
            raise ButlrConfigurationError(
                f"{where}.max_ids must be a whole number >= 1, got {self.max_ids!r}"
            )

    def render(self, now: float) -> PollRequest:
        """The request as sent at ``now`` (relative time range resolved to absolute RFC3339)."""
        if self.lookback_seconds is None:
            return self
        body = copy.deepcopy(self.json)
        align = max(float(self.align_seconds), 1.0)
        stop = math.floor(now / align) * align
        body["filter"]["start"] = format_instant(stop - float(self.lookback_seconds))
        body["filter"]["stop"] = format_instant(stop)
        return replace(self, json=body, lookback_seconds=None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_reads(condition: Condition, count: int, where: str) -> None:
    """A condition may only read responses the plan requests (else it could never, or always, hold)."""
    request = getattr(condition, "request", None)
    if isinstance(request, int) and request >= count:
        raise ButlrConfigurationError(
            f"{where}.request {request} is out of range: the poll makes {count} request(s), numbered from 0"
        )
    outside = [i for i in getattr(condition, "requests", None) or [] if i >= count]
    if outside:
        raise ButlrConfigurationError(
            f"{where}.requests {', '.join(map(str, outside))} out of range: the poll makes {count} request(s), "
            "numbered from 0"
        )


@dataclass
class PollPlan:
    """The requests of one poll and the conditions that must all hold."""

    requests: list[PollRequest]
    conditions: list[Condition] = field(default_factory=list)

    def validate(self) -> PollPlan:
        if not self.requests:
            raise ButlrConfigurationError("a poll needs at least one request (endpoint)")
        for i, request in enumerate(self.requests):
            request.validate(f"requests[{i}]")
        for i, condition in enumerate(self.conditions):
            condition.validate(f"conditions[{i}]")
            _check_reads(condition, len(self.requests), f"conditions[{i}]")
        return self

    def gate(self, now: float) -> Verdict | None:
        """The first condition that says "not yet" without a request, if any."""
        for condition in self.conditions:
            verdict = condition.gate(now)
            if verdict is not None:
                return verdict
        return None

    def render(self, now: float) -> list[PollRequest]:
        return [request.render(now) for request in self.requests]

    def evaluate(self, responses: Sequence[Any], now: float) -> Verdict:
        """All conditions must hold; no conditions = any successful answer is enough."""
        verdicts = [condition.evaluate(responses, now) for condition in self.conditions]
        failed = [v for v in verdicts if not v.met]
        details = (
            verdicts[0].details if len(verdicts) == 1 else {"conditions": [v.to_dict() for v in verdicts]}
        )
        if failed:
            return Verdict(False, "; ".join(v.message for v in failed), details)
        message = "; ".join(v.message for v in verdicts) or "the API answered"
        return Verdict(True, message, details)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": [r.to_dict() for r in self.requests],
            "conditions": [c.to_dict() for c in self.conditions],
        }

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> PollPlan:
        requests = spec.get("requests")
        if not isinstance(requests, list):
            raise ButlrConfigurationError("plan.requests must be a list of requests")
        conditions = spec.get("conditions") or []
        built = []
        for i, request in enumerate(requests):
            if not isinstance(request, Mapping):
                raise ButlrConfigurationError(f"requests[{i}] must be a mapping")
            known = {f.name for f in fields(PollRequest)}
            unknown = sorted(set(request) - known)
            if unknown:
                raise ButlrConfigurationError(f"requests[{i}] has unknown field(s) {', '.join(unknown)}")
            built.append(PollRequest(**request))
        return cls(
            built, [condition_from_dict(c, f"conditions[{i}]") for i, c in enumerate(conditions)]
        ).validate()
