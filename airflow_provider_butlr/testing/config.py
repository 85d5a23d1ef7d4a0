"""Runtime configuration of the emulator (mutable while it runs)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from airflow_provider_butlr.testing.org.seed import OrgSize, resolve_size
from airflow_provider_butlr.testing.timeseries.settings import EngineSettings

_ENGINE = EngineSettings()

DEFAULT_CLIENT_ID = "emulator-client-id"
DEFAULT_CLIENT_SECRET = "emulator-client-secret-do-not-use"
DEFAULT_USERNAME = "analyst@butlr-emulator.example"
DEFAULT_PASSWORD = "emulator-password-do-not-use"
DEFAULT_AUDIENCE = "https://butlrauth/"

GRAPHQL_AUTH_ERROR_MODES = ("http", "graphql")
UNKNOWN_ID_MODES = ("null", "error")
EXPIRES_IN_MODES = ("present", "absent")


@dataclass
class EmulatorConfig:
    """Everything that shapes the emulator's behaviour; change fields at runtime to switch modes.

    The time-series engine (``timeseries/reporting.py``) adds its own ``reporting_*`` fields here.
    """

    seed: int = 42
    size: str | OrgSize = "small"
    token_lifetime: int = 3600
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    username: str = DEFAULT_USERNAME
    password: str = DEFAULT_PASSWORD
    audience: str = DEFAULT_AUDIENCE
    # Seconds added to every data request (GraphQL, reporting, stats), not to logins.
    latency: float = 0.0
    # "http": HTTP 401 for a bad bearer on GraphQL; "graphql": HTTP 200 + errors[0].extensions.code UNAUTHENTICATED.
    graphql_auth_error_mode: str = "http"
    # What site/building/floor/room/zone(id:) answer for an id that does not exist: "null" (plain null, what
    # Butlr's client handles) or "error" (null plus a NOT_FOUND error). See docs/emulator.md.
    graphql_unknown_id_mode: str = "null"
    # "absent" leaves expires_in out of login answers (clients must read the JWT exp claim).
    expires_in_mode: str = "present"
    # Data requests (GraphQL, reporting, stats) per sliding 60 s window; beyond it HTTP 429 + Retry-After.
    rate_limit_per_minute: int | None = None
    # The admin API under /_emulator/: None = only when bound to a loopback address; True/False = always/never.
    admin_api: bool | None = None
    # Largest request body accepted, in bytes (413 above).
    max_body_bytes: int = 10 * 1024 * 1024
    # Time-series engine (timeseries/reporting.py); meanings and defaults in timeseries/settings.py.
    reporting_max_id_windows: int | None = _ENGINE.reporting_max_id_windows
    reporting_max_ids: int | None = _ENGINE.reporting_max_ids
    reporting_max_ids_long: int = _ENGINE.reporting_max_ids_long
    reporting_long_range_hours: int = _ENGINE.reporting_long_range_hours
    reporting_max_series_minutes: int = _ENGINE.reporting_max_series_minutes
    reporting_incomplete_minutes: int = _ENGINE.reporting_incomplete_minutes
    data_lag_minutes: int = _ENGINE.data_lag_minutes
    reporting_max_id_minutes: int | None = _ENGINE.reporting_max_id_minutes
    reporting_window_alignment: str = _ENGINE.reporting_window_alignment
    reporting_time_label: str = _ENGINE.reporting_time_label
    reporting_strict_keys: bool = _ENGINE.reporting_strict_keys
    stats_max_item_days: int = _ENGINE.stats_max_item_days
    # Webhook delivery (testing/webhook_delivery.py; docs/emulator.md "Webhook delivery").
    # Deliver on the emulator clock in a background thread (False: only when asked, deliver_now).
    webhook_auto_delivery: bool = True
    # Send to hosts other than localhost / loopback IPs (the CLI's --webhook-allow-remote). Never live.
    webhook_allow_remote: bool = False
    # Seconds to wait for a receiver when the subscription's http_timeout is null.
    webhook_timeout: float = 10.0
    # Retries after a failed attempt (network error, timeout, 408, 429, 5xx), after backoff x 2^n seconds.
    webhook_retries: int = 3
    webhook_retry_backoff: float = 2.0
    # Minutes delivered at most after a clock jump (older ones are skipped and counted).
    webhook_max_catchup_minutes: int = 60
    # Butlr's untidiness: *_1MIN minutes are recomputed for this many minutes (1: sent once, final);
    # a provisional value is off by one with this probability; an event is POSTed twice with this
    # probability; a minute's events go out in random order.
    webhook_lookback_minutes: int = 5
    webhook_revision_rate: float = 0.1
    webhook_duplicate_rate: float = 0.02
    webhook_shuffle: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the field and the allowed values."""
        if self.graphql_auth_error_mode not in GRAPHQL_AUTH_ERROR_MODES:
            raise ValueError(
                f"graphql_auth_error_mode={self.graphql_auth_error_mode!r}; allowed: {GRAPHQL_AUTH_ERROR_MODES}"
            )
        if self.graphql_unknown_id_mode not in UNKNOWN_ID_MODES:
            raise ValueError(
                f"graphql_unknown_id_mode={self.graphql_unknown_id_mode!r}; allowed: {UNKNOWN_ID_MODES}"
            )
        if self.expires_in_mode not in EXPIRES_IN_MODES:
            raise ValueError(f"expires_in_mode={self.expires_in_mode!r}; allowed: {EXPIRES_IN_MODES}")
        if int(self.token_lifetime) <= 0:
            raise ValueError(
                f"token_lifetime must be a positive number of seconds, got {self.token_lifetime}"
            )
        resolve_size(self.size)
        if self.latency < 0:
            raise ValueError(f"latency must be >= 0 seconds, got {self.latency}")
        if self.rate_limit_per_minute is not None and self.rate_limit_per_minute < 1:
            raise ValueError(f"rate_limit_per_minute must be >= 1 or None, got {self.rate_limit_per_minute}")
        EngineSettings.from_config(self)  # validates the reporting_* / stats_* fields
        self._validate_webhooks()

    def _validate_webhooks(self) -> None:
        for name in ("webhook_revision_rate", "webhook_duplicate_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        for name in ("webhook_lookback_minutes", "webhook_max_catchup_minutes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.webhook_retries < 0 or self.webhook_retry_backoff < 0:
            raise ValueError(
                f"webhook_retries ({self.webhook_retries}) and webhook_retry_backoff "
                f"({self.webhook_retry_backoff}) must be >= 0"
            )
        if self.webhook_timeout <= 0:
            raise ValueError(f"webhook_timeout must be > 0 seconds, got {self.webhook_timeout}")

    @property
    def reporting_missing_minutes(self) -> int:
        """Former name of :attr:`data_lag_minutes` (kept so existing tests and scripts keep working)."""
        return self.data_lag_minutes

    @reporting_missing_minutes.setter
    def reporting_missing_minutes(self, minutes: int) -> None:
        self.data_lag_minutes = minutes

    def replace(self, **changes: Any) -> EmulatorConfig:
        """A copy with ``changes`` applied (unknown names raise TypeError naming them)."""
        return replace(self, **changes)
