"""The admin API under ``/_emulator/``: drive a running emulator from another process.

Clock (read, set, freeze, advance, back to real time), faults (same kinds and spec as
``emu.faults.add``), tokens (list, revoke), counters (read, reset), live config (e.g. the data lag),
webhooks (subscriptions, delivery records, deliver now: ``admin_webhooks.py``).
Served only when the server binds a loopback address, unless the config says ``admin_api=True``
(the CLI's ``--admin``); otherwise every ``/_emulator/`` path answers 404 like any unknown path.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable
from dataclasses import fields
from typing import Any, Protocol

from airflow_provider_butlr.testing.clock import EmulatorClock
from airflow_provider_butlr.testing.config import EmulatorConfig
from airflow_provider_butlr.testing.http.admin_webhooks import (
    WebhookAdmin,
    WebhookAdminError,
    WebhookControls,
)
from airflow_provider_butlr.testing.http.auth import TokenAuthority
from airflow_provider_butlr.testing.http.counters import Counters
from airflow_provider_butlr.testing.http.faults import (
    FaultRule,
    FaultSchedule,
    describe_rule,
    parse_fault_spec,
)
from airflow_provider_butlr.testing.http.server import Request, Response

PREFIX = "/_emulator"
# Config fields never shown by GET /_emulator/config (secrets) ...
SECRET_FIELDS = frozenset({"client_secret", "password"})
# ... and those POST /_emulator/config may change on a running emulator.
LIVE_FIELDS = frozenset(
    {
        "token_lifetime",
        "latency",
        "graphql_auth_error_mode",
        "graphql_unknown_id_mode",
        "expires_in_mode",
        "max_body_bytes",
        "rate_limit_per_minute",
        "data_lag_minutes",
        "reporting_max_id_minutes",
        "reporting_max_id_windows",
        "reporting_max_ids",
        "reporting_max_ids_long",
        "reporting_long_range_hours",
        "reporting_max_series_minutes",
        "reporting_incomplete_minutes",
        "reporting_window_alignment",
        "reporting_time_label",
        "reporting_strict_keys",
        "stats_max_item_days",
        "webhook_auto_delivery",
        "webhook_timeout",
        "webhook_retries",
        "webhook_retry_backoff",
        "webhook_max_catchup_minutes",
        "webhook_lookback_minutes",
        "webhook_revision_rate",
        "webhook_duplicate_rate",
        "webhook_shuffle",
    }
)  # webhook_allow_remote is not live: sending off loopback takes the CLI flag or an in-process config


class EmulatorControls(WebhookControls, Protocol):
    """What the admin API drives (``ButlrEmulator`` provides it)."""

    clock: EmulatorClock
    counters: Counters
    faults: FaultSchedule
    authority: TokenAuthority

    @property
    def config(self) -> EmulatorConfig: ...

    @config.setter
    def config(self, value: EmulatorConfig) -> None: ...

    def reset(self) -> None: ...


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def admin_enabled(config: EmulatorConfig, host: str) -> bool:
    return is_loopback(host) if config.admin_api is None else bool(config.admin_api)


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _object(request: Request) -> dict[str, Any]:
    if request.json_error:
        raise AdminError(400, request.json_error)
    body = request.json if request.json is not None else {}
    if not isinstance(body, dict):
        raise AdminError(400, "the request body must be a JSON object")
    return body


class AdminAPI:
    """Routes ``/_emulator/...`` requests to the emulator's controls."""

    def __init__(self, controls: EmulatorControls) -> None:
        self.controls = controls
        self._lock = threading.Lock()
        self._fault_ids: dict[int, FaultRule] = {}
        self._next_id = 1
        self._routes: dict[tuple[str, str], Callable[[Request], Any]] = {
            ("GET", ""): self._index,
            ("GET", "/clock"): self._clock,
            ("POST", "/clock"): self._set_clock,
            ("GET", "/faults"): self._faults,
            ("POST", "/faults"): self._add_fault,
            ("DELETE", "/faults"): self._clear_faults,
            ("GET", "/tokens"): self._tokens,
            ("POST", "/tokens/revoke"): self._revoke,
            ("GET", "/counters"): self._counters,
            ("DELETE", "/counters"): self._reset_counters,
            ("POST", "/counters/reset"): self._reset_counters,
            ("GET", "/config"): self._config,
            ("POST", "/config"): self._set_config,
            ("POST", "/reset"): self._reset,
        }
        self.webhooks = WebhookAdmin(controls, _object)
        self._routes.update(self.webhooks.routes)

    def handle(self, request: Request) -> Response:
        sub = request.path[len(PREFIX) :].rstrip("/")
        try:
            if sub.startswith("/faults/") and request.method == "DELETE":
                return Response.json(200, self._remove_fault(sub.rsplit("/", 1)[1]))
            if sub.startswith("/webhooks/webhook_") and request.method == "DELETE":
                return Response.json(200, self.webhooks.unsubscribe(sub.rsplit("/", 1)[1]))
            route = self._routes.get((request.method, sub))
            if route is None:
                known = sorted({path for _, path in self._routes if path == sub})
                status = 405 if known else 404
                raise AdminError(status, f"no admin endpoint {request.method} {request.path}")
            return Response.json(200, route(request))
        except (AdminError, WebhookAdminError) as exc:
            return Response.json(exc.status, {"error": "admin", "message": str(exc)})
        except (ValueError, TypeError) as exc:  # bad clock spec, fault spec or config value
            return Response.json(400, {"error": "admin", "message": str(exc)})

    def register_fault(self, rule: FaultRule) -> int:
        """Give a rule an id (faults added through the admin API or the CLI)."""
        with self._lock:
            fault_id, self._next_id = self._next_id, self._next_id + 1
            self._fault_ids[fault_id] = rule
        return fault_id

    # --- endpoints -------------------------------------------------------------------------------
    def _index(self, _request: Request) -> dict[str, Any]:
        return {
            "endpoints": [f"{method} {PREFIX}{path}" for method, path in self._routes]
            + [f"DELETE {PREFIX}/faults/<id>", f"DELETE {PREFIX}/webhooks/<id>"]
        }

    def _clock(self, _request: Request) -> dict[str, Any]:
        return self.controls.clock.describe()

    def _set_clock(self, request: Request) -> dict[str, Any]:
        """``{"at": spec, "frozen": bool}``, ``{"advance": seconds}``, ``{"frozen": bool}`` or ``{"real_time": true}``."""
        body = _object(request)
        unknown = sorted(set(body) - {"at", "frozen", "advance", "real_time"})
        if unknown:
            raise AdminError(400, f"unknown clock key(s) {unknown}; allowed: at, frozen, advance, real_time")
        clock = self.controls.clock
        if body.get("real_time"):
            clock.reset()
        if "at" in body:
            clock.set_spec(str(body["at"]), frozen=bool(body.get("frozen", False)))
        elif "frozen" in body:
            clock.freeze() if body["frozen"] else clock.unfreeze()
        if "advance" in body:
            seconds = body["advance"]
            if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
                raise AdminError(400, f"advance must be a number of seconds, got {seconds!r}")
            clock.advance(float(seconds))
        return clock.describe()

    def _faults(self, _request: Request) -> dict[str, Any]:
        with self._lock:
            ids = {id(rule): fault_id for fault_id, rule in self._fault_ids.items()}
        return {"faults": [{"id": ids.get(id(r)), **describe_rule(r)} for r in self.controls.faults.rules]}

    def _add_fault(self, request: Request) -> dict[str, Any]:
        """``{"spec": "kind=status,status=503"}`` or the same keys as a JSON object."""
        body = _object(request)
        spec = body["spec"] if set(body) == {"spec"} else body
        rule = self.controls.faults.add(**parse_fault_spec(spec))
        return {"id": self.register_fault(rule), **describe_rule(rule)}

    def _remove_fault(self, text: str) -> dict[str, Any]:
        with self._lock:
            rule = self._fault_ids.pop(int(text), None) if text.isdigit() else None
        if rule is None:
            raise AdminError(404, f"no fault with id {text!r}")
        rule.remove()
        return {"removed": int(text)}

    def _clear_faults(self, _request: Request) -> dict[str, Any]:
        count = len(self.controls.faults.rules)
        self.controls.faults.clear()
        with self._lock:
            self._fault_ids.clear()
        return {"cleared": count}

    def _tokens(self, _request: Request) -> dict[str, Any]:
        tokens = self.controls.authority.describe()
        return {"count": len(tokens), "tokens": tokens}

    def _revoke(self, request: Request) -> dict[str, Any]:
        """``{"token": "..."}`` revokes one token; an empty body revokes every token issued so far."""
        token = _object(request).get("token")
        if token is None:
            self.controls.authority.revoke_all()
            return {"revoked": "all"}
        if not isinstance(token, str) or token not in self.controls.authority.issued_tokens:
            raise AdminError(404, "no such issued token")
        self.controls.authority.revoke(token)
        return {"revoked": 1}

    def _counters(self, _request: Request) -> dict[str, Any]:
        counters = self.controls.counters
        return {
            "total": counters.total,
            "logins": counters.logins,
            "successful_logins": counters.successful_logins,
            "per_path": counters.per_path,
        }

    def _reset_counters(self, _request: Request) -> dict[str, Any]:
        self.controls.counters.reset()
        return self._counters(_request)

    def _config(self, _request: Request) -> dict[str, Any]:
        config = self.controls.config
        shown = {f.name: getattr(config, f.name) for f in fields(config) if f.name not in SECRET_FIELDS}
        shown["size"] = shown["size"] if isinstance(shown["size"], str) else "custom"
        return shown

    def _set_config(self, request: Request) -> dict[str, Any]:
        changes = _object(request)
        refused = sorted(set(changes) - LIVE_FIELDS)
        if refused:
            raise AdminError(
                400, f"config field(s) {refused} cannot be changed; allowed: {sorted(LIVE_FIELDS)}"
            )
        self.controls.config = self.controls.config.replace(**changes)
        return self._config(request)

    def _reset(self, _request: Request) -> dict[str, Any]:
        self.controls.reset()
        with self._lock:
            self._fault_ids.clear()
        return {"reset": True}
