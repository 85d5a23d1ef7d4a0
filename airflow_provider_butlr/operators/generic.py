"""ButlrOperator: call any Butlr API endpoint and push the JSON answer (checked, filtered) to XCom."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_butlr.exceptions import ButlrConfigurationError, ButlrError
from airflow_provider_butlr.hooks.base import ButlrBaseHook
from airflow_provider_butlr.operators.common import ensure_json, new_hook
from airflow_provider_butlr.reporting.arguments import Check, check_callable, run_checks

if TYPE_CHECKING:
    from airflow.sdk import Context

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


POST_PATH_PREFIXES = ("/api/v3/reporting", "/api/v4/reporting", "/api/v3/graphql")


class ButlrOperator(BaseOperator):
    """Call any Butlr API endpoint and push the JSON answer (optionally checked and filtered) to XCom.

    :param endpoint: path such as ``/api/v3/graphql`` or ``/api/v4/reporting/stats`` (templated).
    :param method: HTTP method; default POST for reporting, stats and GraphQL paths, GET otherwise.
    :param json: request body (templated).
    :param query_params: query-string parameters (templated). Not ``params``: that name belongs to
        Airflow (DAG/task Params, also filled from ``default_args``).
    :param response_check: ``callable(payload) -> bool``; False fails the task.
    :param response_filter: ``callable(payload) -> value``; its result goes to XCom.
    :param butlr_conn_id: the Butlr connection (templated).

    Credentials in an answer (``client_secret``, ``password``, ``access_token``... fields, e.g. from
    ``POST /api/v1/client``) are masked in logs and replaced by ``***`` in what goes to XCom; to
    store a new client's secret, call :class:`ButlrHook` in a task that writes it to a secrets backend.
    """

    template_fields: Sequence[str] = ("butlr_conn_id", "endpoint", "method", "json", "query_params")
    template_fields_renderers = {"json": "json", "query_params": "json"}
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        endpoint: str,
        method: str | None = None,
        json: Any = None,
        query_params: dict[str, Any] | None = None,
        response_check: Callable[[Any], bool] | None = None,
        response_filter: Callable[[Any], Any] | None = None,
        butlr_conn_id: str = ButlrBaseHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.endpoint = endpoint
        self.method = method
        self.json = json
        self.query_params = query_params
        self.response_check = response_check
        self.response_filter = response_filter
        self.butlr_conn_id = butlr_conn_id
        run_checks(self, self.checks, final=False)

    @staticmethod
    def _check_endpoint(endpoint: Any) -> None:
        if not isinstance(endpoint, str) or not endpoint.strip():
            raise ButlrConfigurationError(
                f"endpoint must be a non-empty path such as /api/v3/graphql, got {endpoint!r}"
            )

    @staticmethod
    def _check_method(method: Any) -> None:
        if method is not None and str(method).upper() not in HTTP_METHODS:
            raise ButlrConfigurationError(
                f"method {method!r} is not allowed; use one of {', '.join(HTTP_METHODS)}"
            )

    @staticmethod
    def _check_query_params(params: Any) -> None:
        if params is not None and not isinstance(params, dict):
            raise ButlrConfigurationError(f"query_params must be a dict, got {type(params).__name__}")

    checks: Sequence[Check] = (
        Check("endpoint", ("endpoint",), _check_endpoint),
        Check("method", ("method",), _check_method),
        Check("query_params", ("query_params",), _check_query_params),
        Check("response_check", ("response_check",), lambda v: check_callable(v, "response_check")),
        Check("response_filter", ("response_filter",), lambda v: check_callable(v, "response_filter")),
    )

    def resolved_method(self) -> str:
        """The explicit method, else POST for reporting/stats/GraphQL paths and GET otherwise."""
        if self.method:
            return str(self.method).upper()
        path = urlsplit(self.endpoint).path if "://" in self.endpoint else self.endpoint
        return "POST" if ("/" + path.lstrip("/")).startswith(POST_PATH_PREFIXES) else "GET"

    def execute(self, context: Context) -> Any:
        run_checks(self, self.checks, final=True)
        method = self.resolved_method()
        with new_hook(self.butlr_conn_id) as hook:
            payload = hook.request_json(method, self.endpoint, json=self.json, params=self.query_params)
            # by key (masks new credentials before user code can log them) and by value (the
            # connection's secret and every token seen in this process, wherever an answer echoes them)
            redacted = hook.redact(payload)
            if self.response_check is not None and not self.response_check(payload):
                raise ButlrError(f"response_check returned False for Butlr {method} {self.endpoint}")
            if self.response_filter is None:
                return ensure_json(redacted, "the response")
            return hook.redact(ensure_json(self.response_filter(payload), "response_filter's result"))
