"""The Butlr API endpoints: logins, bearer validation, GraphQL, reporting, stats; fault application."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_butlr.testing.clock import EmulatorClock
from airflow_provider_butlr.testing.config import EmulatorConfig
from airflow_provider_butlr.testing.http.admin import PREFIX as ADMIN_PREFIX
from airflow_provider_butlr.testing.http.admin import AdminAPI, admin_enabled
from airflow_provider_butlr.testing.http.auth import TokenAuthority
from airflow_provider_butlr.testing.http.counters import Counters
from airflow_provider_butlr.testing.http.faults import FaultRule, FaultSchedule
from airflow_provider_butlr.testing.http.rate_limit import SlidingWindowLimiter
from airflow_provider_butlr.testing.http.server import ZERO_PAGE_INFO, Request, Response
from airflow_provider_butlr.testing.timeseries.errors import BadRequest, Overloaded
from airflow_provider_butlr.testing.timeseries.reporting import run_reporting, run_stats

if TYPE_CHECKING:
    from airflow_provider_butlr.testing.graphql.service import GraphQLService
    from airflow_provider_butlr.testing.org.model import Organization

CLIENT_LOGIN = "/api/v2/clients/login"
PASSWORD_LOGIN = "/api/v2/login"
GRAPHQL = "/api/v3/graphql"
REPORTING = "/api/v3/reporting"
STATS = "/api/v4/reporting/stats"
DATA_PATHS = frozenset({GRAPHQL, REPORTING, STATS})
HEALTH = "/healthz"

# run_reporting / run_stats: (org, request body, emulator now, config) -> response body.
TimeSeriesEngine = Callable[["Organization", Any, datetime, EmulatorConfig], dict[str, Any]]


def _is_admin(path: str) -> bool:
    return path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")


def _error(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response.json(status, {"error": error, "message": message}, headers)


def _auth0_error(status: int, error: str, description: str) -> Response:
    return Response.json(status, {"error": error, "error_description": description})


class ButlrAPI:
    """Routes a parsed request to its endpoint and applies the fault schedule."""

    def __init__(
        self,
        config: EmulatorConfig,
        clock: EmulatorClock,
        counters: Counters,
        faults: FaultSchedule,
        authority: TokenAuthority,
        org: Organization,
        graphql: GraphQLService,
        stopping: threading.Event,
        limiter: SlidingWindowLimiter | None = None,
        admin: AdminAPI | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.config = config
        self.clock = clock
        self.counters = counters
        self.faults = faults
        self.authority = authority
        self.org = org
        self.graphql = graphql
        self.stopping = stopping
        self.limiter = limiter or SlidingWindowLimiter()
        self.admin = admin
        self.host = host
        self._routes: dict[str, Callable[[Request], Response]] = {
            CLIENT_LOGIN: self._client_login,
            PASSWORD_LOGIN: self._password_login,
            GRAPHQL: self._graphql,
            REPORTING: self._reporting,
            STATS: self._stats,
        }

    # --- server interface ------------------------------------------------------------------------
    def record(self, request: Request) -> None:
        if _is_admin(request.path):
            return  # the admin API drives the emulator; it is not traffic to count
        request.record.timestamp = self.clock.timestamp()
        self.counters.record(request.record)

    def apply_fault(self, request: Request, respond: Callable[[], Response]) -> Response | None:
        if _is_admin(request.path):
            return respond()
        if request.path in DATA_PATHS and self.config.latency > 0:
            self.stopping.wait(self.config.latency)
        if request.path in DATA_PATHS:
            wait = self.limiter.acquire(self.config.rate_limit_per_minute)
            if wait is not None:
                request.record.fault = "rate_limit"
                return _error(
                    429,
                    "too_many_requests",
                    f"rate limit of {self.config.rate_limit_per_minute} requests per minute exceeded",
                    {"Retry-After": str(wait)},
                )
        rule = self.faults.select(request.path, request.json)
        if rule is None:
            return respond()
        request.record.fault = rule.kind
        return self._inject(rule, request, respond)

    def handle(self, request: Request) -> Response:
        if request.path == HEALTH:
            return Response.json(200, {"status": "ok"})
        if _is_admin(request.path) and self.admin is not None and admin_enabled(self.config, self.host):
            return self.admin.handle(request)
        route = self._routes.get(request.path)
        if route is None:
            return _error(404, "not_found", f"no such endpoint: {request.method} {request.path}")
        if request.method != "POST":
            return _error(
                405, "method_not_allowed", f"{request.path} accepts POST only, got {request.method}"
            )
        if request.json_error:
            return _error(400, "invalid_json", request.json_error)
        return route(request)

    # --- faults ----------------------------------------------------------------------------------
    def _inject(self, rule: FaultRule, request: Request, respond: Callable[[], Response]) -> Response | None:
        kind = rule.kind
        if kind == "drop":
            return None
        if kind == "delay":
            self.stopping.wait(rule.delay)
            return respond()
        if kind == "status":
            return self._fault_status(rule)
        if kind == "unauthorized":
            return self._unauthorized(request, "Token rejected")
        if kind == "revoke":
            self.authority.revoke_all()
            return respond()
        if kind == "clock_jump":
            self.clock.advance(rule.advance)
            return respond()
        if kind == "empty_data":
            return Response.json(200, {"data": {}, "page_info": dict(ZERO_PAGE_INFO)})
        normal = respond()
        if kind == "truncated_json":
            return Response(200, normal.body[: max(1, len(normal.body) // 2)], normal.content_type)
        if kind == "reset":
            normal.reset_after = len(normal.body) // 2
            return normal
        return self._graphql_partial(normal)

    @staticmethod
    def _fault_status(rule: FaultRule) -> Response:
        status = int(rule.status or 500)
        headers = {"Retry-After": rule.retry_after} if rule.retry_after is not None else {}
        if rule.body is None:
            try:
                from http import HTTPStatus

                phrase = HTTPStatus(status).phrase
            except ValueError:
                phrase = "Error"
            response = _error(status, phrase.lower().replace(" ", "_"), f"{phrase} (injected fault)", headers)
        else:
            body = rule.body.encode() if isinstance(rule.body, str) else rule.body
            response = Response(status, body, rule.content_type or "text/html; charset=utf-8", headers)
        if rule.content_type:
            response.content_type = rule.content_type
        return response

    @staticmethod
    def _graphql_partial(normal: Response) -> Response:
        """Keep the (possibly incomplete) data and add an ``errors`` entry, as a failing resolver would."""
        try:
            payload = json.loads(normal.body)
        except ValueError:
            payload = {}
        data = payload.get("data") if isinstance(payload, dict) else None
        first = next(iter(data), "data") if isinstance(data, dict) and data else "data"
        error = {
            "message": "internal system error (injected partial failure)",
            "path": [first],
            "extensions": {"code": "INTERNAL_SERVER_ERROR"},
        }
        partial = {"data": data, "errors": [*(payload.get("errors") or []), error]}
        return Response.json(200, partial)

    # --- auth ------------------------------------------------------------------------------------
    def _unauthorized(self, request: Request, message: str) -> Response:
        if request.path == GRAPHQL and self.config.graphql_auth_error_mode == "graphql":
            return Response.json(
                200,
                {"data": None, "errors": [{"message": message, "extensions": {"code": "UNAUTHENTICATED"}}]},
            )
        return _error(401, "unauthorized", message, {"WWW-Authenticate": 'Bearer realm="butlr"'})

    def _bearer_problem(self, request: Request) -> str | None:
        header = request.headers.get("authorization")
        if header is None:
            return "Missing Authorization header"
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "Authorization header must be 'Bearer <access_token>'"
        return self.authority.check(token.strip(), self.clock.timestamp())

    def _token_answer(self, subject: str, extra: dict[str, Any] | None = None) -> Response:
        lifetime = int(self.config.token_lifetime)
        issued = self.authority.issue(subject, self.config.audience, self.clock.timestamp(), lifetime)
        answer: dict[str, Any] = {"access_token": issued.token}
        answer.update(extra or {})
        answer["scope"] = issued.scope
        if self.config.expires_in_mode == "present":
            answer["expires_in"] = lifetime
        answer["token_type"] = "Bearer"
        return Response.json(200, answer)

    @staticmethod
    def _missing(body: Any, names: tuple[str, ...]) -> str | None:
        if not isinstance(body, dict):
            return f"request body must be a JSON object with {', '.join(names)}"
        for name in names:
            value = body.get(name)
            if not isinstance(value, str) or not value:
                return f"Missing required parameter: {name}"
        return None

    def _client_login(self, request: Request) -> Response:
        body = request.json
        problem = self._missing(body, ("client_id", "client_secret", "audience", "grant_type"))
        if problem:
            return _auth0_error(400, "invalid_request", problem)
        if body["grant_type"] != "client_credentials":
            return _auth0_error(
                400,
                "unsupported_grant_type",
                f"Unsupported grant type: {body['grant_type']}; use client_credentials",
            )
        cfg = self.config
        good_id = secrets.compare_digest(body["client_id"], cfg.client_id)
        if not (good_id and secrets.compare_digest(body["client_secret"], cfg.client_secret)):
            return _auth0_error(401, "access_denied", "Unauthorized")
        if body["audience"] != cfg.audience:
            return _auth0_error(
                403, "access_denied", f"Service not enabled within domain: {body['audience']}"
            )
        return self._token_answer(f"{cfg.client_id}@clients")

    def _password_login(self, request: Request) -> Response:
        body = request.json
        problem = self._missing(body, ("username", "password"))
        if problem:
            return _auth0_error(400, "invalid_request", problem)
        cfg = self.config
        good_user = secrets.compare_digest(body["username"].lower(), cfg.username.lower())
        if not (good_user and secrets.compare_digest(body["password"], cfg.password)):
            return _auth0_error(403, "invalid_grant", "Wrong email or password.")
        subject = f"auth0|{cfg.username}"
        id_token = self.authority.id_token(cfg.username, cfg.client_id, self.clock.timestamp())
        return self._token_answer(subject, {"refresh_token": secrets.token_urlsafe(32), "id_token": id_token})

    # --- data endpoints ------------------------------------------------------------------------------
    def _graphql(self, request: Request) -> Response:
        problem = self._bearer_problem(request)
        if problem:
            return self._unauthorized(request, problem)
        status, payload = self.graphql.execute(
            request.json, self.clock.now(), unknown_id_mode=self.config.graphql_unknown_id_mode
        )
        return Response.json(status, payload)

    def _reporting(self, request: Request) -> Response:
        return self._time_series(request, run_reporting)

    def _stats(self, request: Request) -> Response:
        return self._time_series(request, run_stats)

    def _time_series(self, request: Request, engine: TimeSeriesEngine) -> Response:
        problem = self._bearer_problem(request)
        if problem:
            return self._unauthorized(request, problem)
        if not isinstance(request.json, dict):
            return _error(400, "bad_request", "request body must be a JSON object")
        try:
            result = engine(self.org, request.json, self.clock.now(), self.config)
        except BadRequest as exc:
            return _error(400, "bad_request", str(exc))
        except Overloaded as exc:
            return _error(504, "gateway_timeout", str(exc))
        return Response.json(200, result)
