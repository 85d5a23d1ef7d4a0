"""ButlrSensor: poll any Butlr endpoint until a ``response_check`` and/or declarative conditions hold."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from airflow.providers.common.compat.sdk import Context, PokeReturnValue

from airflow_provider_butlr.exceptions import ButlrConfigurationError, ButlrError
from airflow_provider_butlr.polling.answers import Verdict
from airflow_provider_butlr.polling.conditions import Condition, condition_from_dict
from airflow_provider_butlr.polling.plans import PollPlan, PollRequest
from airflow_provider_butlr.sensors.base import ButlrPollingSensor


class ButlrSensor(ButlrPollingSensor):
    """Poll any Butlr endpoint until a ``response_check`` and/or declarative ``conditions`` hold.

    :param endpoint: API path, e.g. ``/api/v3/reporting`` (templated).
    :param method: ``POST`` or ``GET``.
    :param json: request body (templated).
    :param request_params: query parameters (templated; ``params`` is Airflow's own argument).
    :param response_check: ``callable(payload, **context) -> bool`` on the parsed JSON body; it runs
        on the worker (in deferrable mode after the trigger's poll, deferring again while false).
    :param conditions: declarative checks evaluated wherever the poll runs, the trigger included:
        :class:`~airflow_provider_butlr.conditions.Condition` objects or their dict form, e.g.
        ``{"type": "value_at", "path": "data.*.value", "op": "<=", "value": 0}`` (templated).
    """

    template_fields: Sequence[str] = ("butlr_conn_id", "endpoint", "json", "request_params", "conditions")
    template_fields_renderers = {"json": "json", "request_params": "json", "conditions": "json"}

    def __init__(
        self,
        *,
        endpoint: str,
        method: str = "POST",
        json: Any = None,
        request_params: dict[str, Any] | None = None,
        response_check: Callable[..., bool | PokeReturnValue] | None = None,
        conditions: Sequence[Condition | Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if response_check is not None and not callable(response_check):
            raise ButlrConfigurationError(
                f"response_check must be callable, got {type(response_check).__name__}"
            )
        if not isinstance(method, str) or method.upper() not in ("GET", "POST"):
            raise ButlrConfigurationError(f"method {method!r} is not one of GET, POST")
        self.endpoint = endpoint
        self.method = method.upper()
        self.json = json
        self.request_params = request_params
        self.response_check = response_check
        self.conditions = list(conditions or [])

    def build_plan(self, context: Context) -> PollPlan:
        request = PollRequest(
            endpoint=self.endpoint, method=self.method, json=self.json, params=self.request_params
        )
        built = [condition_from_dict(c, f"conditions[{i}]") for i, c in enumerate(self.conditions)]
        return PollPlan([request], built)

    @property
    def needs_responses(self) -> bool:
        return self.response_check is not None

    def accept(self, verdict: Verdict, responses: list[Any], context: Context) -> PokeReturnValue:
        if self.response_check is None:
            return PokeReturnValue(True, verdict.details)
        if not responses:
            raise ButlrError(f"{self.task_id}: the trigger returned no response for response_check")
        payload = responses[0]
        from airflow.providers.common.compat.sdk import determine_kwargs  # imported only when needed

        result = self.response_check(payload, **determine_kwargs(self.response_check, [payload], context))
        if isinstance(result, PokeReturnValue):
            return result
        if not isinstance(result, bool):
            raise ButlrConfigurationError(
                f"response_check must return a bool or PokeReturnValue, got {type(result).__name__}"
            )
        return PokeReturnValue(result, verdict.details if result else None)
