"""``ButlrEmulator``: a real Butlr API server on 127.0.0.1 in a background thread."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import fields
from types import TracebackType
from typing import Any

from graphql import GraphQLError

from airflow_provider_butlr.testing.clock import EmulatorClock
from airflow_provider_butlr.testing.config import EmulatorConfig
from airflow_provider_butlr.testing.graphql.sdl import EVENT_TYPES
from airflow_provider_butlr.testing.graphql.service import GraphQLService
from airflow_provider_butlr.testing.graphql.webhooks import WebhookStore
from airflow_provider_butlr.testing.http.admin import PREFIX as ADMIN_PREFIX
from airflow_provider_butlr.testing.http.admin import AdminAPI
from airflow_provider_butlr.testing.http.api import ButlrAPI
from airflow_provider_butlr.testing.http.auth import TokenAuthority
from airflow_provider_butlr.testing.http.counters import Counters
from airflow_provider_butlr.testing.http.faults import FaultRule, FaultSchedule, parse_fault_spec
from airflow_provider_butlr.testing.http.rate_limit import SlidingWindowLimiter
from airflow_provider_butlr.testing.http.server import EmulatorHTTPServer
from airflow_provider_butlr.testing.org.model import Organization
from airflow_provider_butlr.testing.org.seed import build_org
from airflow_provider_butlr.testing.webhook_delivery import WebhookDeliverer

# The event types a subscription made by subscribe() (or the CLI's --webhook-url) gets by default.
DEFAULT_EVENT_TYPES: tuple[str, ...] = ("ROOM_OCCUPANCY_1MIN", "ZONE_OCCUPANCY_1MIN", "FLOOR_OCCUPANCY_1MIN")

CONFIG_FIELDS = frozenset(f.name for f in fields(EmulatorConfig))


# The provider hooks' default connection (ButlrBaseHook.default_conn_name); the emulator does not
# import the provider's hooks, so the name is repeated here once.
DEFAULT_CONN_ID = "butlr_default"


class ButlrEmulator:
    """The emulated Butlr API. Use as a context manager, or call :meth:`start` / :meth:`stop`.

    ``ButlrEmulator(port=0, seed=42, size="small", token_lifetime=3600, ...)``: keyword arguments
    are :class:`EmulatorConfig` fields; pass ``config=`` to supply a whole config instead.
    """

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        config: EmulatorConfig | None = None,
        clock: EmulatorClock | None = None,
        **overrides: Any,
    ) -> None:
        unknown = sorted(set(overrides) - CONFIG_FIELDS)
        if unknown:
            raise TypeError(f"unknown ButlrEmulator option(s) {unknown}; allowed: {sorted(CONFIG_FIELDS)}")
        base = config or EmulatorConfig()
        self._config = base.replace(**overrides) if overrides else base
        self.host = host
        self._requested_port = port
        self.clock = clock or EmulatorClock()
        self.counters = Counters()
        self.faults = FaultSchedule()
        self.authority = TokenAuthority()
        self.org: Organization = build_org(self.config.seed, self.config.size, self.clock.timestamp())
        self.webhooks = WebhookStore(self.org.id, self.config.seed, now=self.clock.timestamp)
        self.deliverer = WebhookDeliverer(self.webhooks, self.org, self.clock, lambda: self.config)
        self.webhooks.add_listener(self.deliverer.wake)
        self.graphql = GraphQLService(self.org, self.webhooks)
        self.rate_limiter = SlidingWindowLimiter()
        self.admin = AdminAPI(self)
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._api: ButlrAPI | None = None

    @property
    def config(self) -> EmulatorConfig:
        """The live configuration: change its fields (or assign a new one) while the server runs."""
        return self._config

    @config.setter
    def config(self, value: EmulatorConfig) -> None:
        value.validate()
        self._config = value
        if self._api is not None:
            self._api.config = value

    # --- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> ButlrEmulator:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError("this ButlrEmulator is already running")
        stopping = threading.Event()
        api = ButlrAPI(
            self.config,
            self.clock,
            self.counters,
            self.faults,
            self.authority,
            self.org,
            self.graphql,
            stopping,
            limiter=self.rate_limiter,
            admin=self.admin,
            host=self.host,
        )
        server = EmulatorHTTPServer((self.host, self._requested_port), api, stopping)
        self._api, self._server = api, server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="butlr-emulator", daemon=True
        )
        self._thread.start()
        self.deliverer.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every connection, join the threads (idempotent)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self.deliverer.stop()
        server.shutdown()
        server.close()
        if thread is not None:
            thread.join(5.0)
        self._server = self._thread = self._api = None

    def __enter__(self) -> ButlrEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    # --- addresses and credentials ----------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() or use it as a context manager")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def client_id(self) -> str:
        return self.config.client_id

    @property
    def client_secret(self) -> str:
        return self.config.client_secret

    @property
    def username(self) -> str:
        return self.config.username

    @property
    def password(self) -> str:
        return self.config.password

    @property
    def audience(self) -> str:
        return self.config.audience

    def connection_extra(
        self, auth_type: str = "client_credentials", **extra_overrides: Any
    ) -> dict[str, Any]:
        """Airflow connection fields (conn_type/host/login/password/extra) pointing at this emulator.

        ``host``, ``login`` and ``password`` in ``extra_overrides`` replace the top-level fields;
        everything else goes into ``extra``.
        """
        password_grant = auth_type == "password"
        fields_: dict[str, Any] = {
            "conn_type": "butlr",
            "host": self.url,
            "login": self.username if password_grant else self.client_id,
            "password": self.password if password_grant else self.client_secret,
            "extra": {"audience": self.audience, "auth_type": auth_type},
        }
        for key in ("host", "login", "password"):
            if key in extra_overrides:
                fields_[key] = extra_overrides.pop(key)
        fields_["extra"].update(extra_overrides)
        return fields_

    def connection_json(self, auth_type: str = "client_credentials", **extra_overrides: Any) -> str:
        """:meth:`connection_extra` as the JSON value of an ``AIRFLOW_CONN_<ID>`` variable."""
        return json.dumps(self.connection_extra(auth_type, **extra_overrides))

    def connection_env(self, conn_id: str = DEFAULT_CONN_ID, **overrides: Any) -> dict[str, str]:
        """``{"AIRFLOW_CONN_<CONN_ID>": <json>}``, ready for ``os.environ.update`` / ``monkeypatch``."""
        return {f"AIRFLOW_CONN_{conn_id.upper()}": self.connection_json(**overrides)}

    # --- tokens ------------------------------------------------------------------------------------
    @property
    def issued_tokens(self) -> list[str]:
        """Every access token ever issued, oldest first (for secret scans)."""
        return self.authority.issued_tokens

    def revoke_all_tokens(self) -> None:
        self.authority.revoke_all()

    def revoke_token(self, token: str) -> None:
        self.authority.revoke(token)

    def add_fault(self, spec: str | Mapping[str, Any]) -> FaultRule:
        """Add a fault from a spec (``"kind=status,status=503,times=2"``, as the CLI and admin API take)."""
        rule = self.faults.add(**parse_fault_spec(spec))
        self.admin.register_fault(rule)
        return rule

    @property
    def admin_url(self) -> str:
        """Base URL of the admin API (``/_emulator``); see :class:`EmulatorAdminClient`."""
        return self.url + ADMIN_PREFIX

    def reset(self) -> None:
        """Clear counters, faults, webhooks and their deliveries; back to real time. Tokens stay valid."""
        self.rate_limiter.reset()
        self.counters.reset()
        self.faults.clear()
        self.webhooks.clear()
        self.deliverer.reset()
        self.clock.reset()

    # --- webhooks ----------------------------------------------------------------------------------
    def subscribe(
        self,
        url: str,
        event_types: Sequence[str] = DEFAULT_EVENT_TYPES,
        *,
        name: str = "emulator",
        api_key: Mapping[str, str] | None = None,
        basic_auth: Mapping[str, str] | None = None,
        http_timeout: int | None = None,
        filters: Mapping[str, list[str]] | None = None,
        send_on_value_change: bool = False,
    ) -> dict[str, Any]:
        """Create a webhook subscription as ``createWebhooks`` would (its output, with ``id``).

        ValueError names a bad argument (unknown event type, URL, filters, a type already subscribed).
        """
        unknown = [e for e in event_types if e not in EVENT_TYPES]
        if unknown or isinstance(event_types, str):
            raise ValueError(
                f"event_types: unknown {unknown or [event_types]}; allowed: {', '.join(EVENT_TYPES)}"
            )
        endpoint: dict[str, Any] = {"url": url, "http_timeout": http_timeout}
        if api_key is not None:
            endpoint["api_key"] = dict(api_key)
        if basic_auth is not None:
            endpoint["basic_auth"] = dict(basic_auth)
        item = {
            "name": name,
            "eventTypes": list(event_types),
            "endpointConfig": endpoint,
            "filters": dict(filters) if filters is not None else None,
            "send_on_value_change": send_on_value_change,
        }
        try:
            return self.webhooks.create([item])[0]
        except GraphQLError as exc:
            raise ValueError(exc.message) from None

    def deliver_now(self, webhook_id: str | None = None, resend_minutes: int = 0) -> list[dict[str, Any]]:
        """Deliver the minutes completed so far and every pending retry now; the delivery records touched."""
        return self.deliverer.deliver_now(webhook_id, resend_minutes)

    def __repr__(self) -> str:
        where = self.url if self.running else "stopped"
        return f"ButlrEmulator({where}, seed={self.config.seed}, size={self.config.size!r})"
