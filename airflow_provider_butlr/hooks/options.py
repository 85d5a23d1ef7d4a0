"""A hook's own options: overrides of its connection's timeout and retries, JSON-safe for the trigger."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from airflow_provider_butlr.client.retry import RetryPolicy
from airflow_provider_butlr.client.settings import ButlrSettings
from airflow_provider_butlr.exceptions import ButlrConfigurationError

LOGIN_UNREACHABLE_RETRIES = 2  # 0.5 + 1 s of backoff: a wrong host fails in seconds

# (least, largest) of each option; non-finite numbers are refused too (NaN is within no range).
OPTION_BOUNDS: dict[str, tuple[float, float]] = {
    "timeout": (1e-3, 3600.0),
    "max_retries": (0, 50),
    "retry_wait_initial": (0.0, 300.0),
    "retry_wait_max": (0.0, 3600.0),
    "retry_after_cap": (0.0, 3600.0),
    "max_rate_limit_wait": (0.0, 86_400.0),
}


@dataclass(frozen=True)
class ClientOptions:
    """A hook's own overrides of its connection's timeout and retry settings (sync and async alike).

    As a JSON-safe mapping (:meth:`as_hook_params`) it travels from a sensor to the trigger, which
    builds the same hook from it: every option reaches the triggerer without per-option plumbing.
    """

    timeout: float | None = None
    max_retries: int | None = None
    retry_wait_initial: float = 0.5
    retry_wait_max: float = 30.0
    retry_after_cap: float = 60.0
    max_rate_limit_wait: float | None = None  # seconds one call may wait out 429s (else the connection's)

    def __post_init__(self) -> None:
        for name, (least, largest) in OPTION_BOUNDS.items():
            value = getattr(self, name)
            if value is None and name in ("timeout", "max_retries", "max_rate_limit_wait"):
                continue
            whole = name == "max_retries"
            kinds = (int,) if whole else (int, float)
            if isinstance(value, bool) or not isinstance(value, kinds) or not least <= value <= largest:
                unit = "a whole number" if whole else "a number of seconds"
                raise ButlrConfigurationError(
                    f"{name} must be {unit} from {least:g} to {largest:g}, got {value!r}"
                )

    @classmethod
    def from_hook_params(cls, hook_params: Mapping[str, Any] | None) -> ClientOptions:
        """Options from a ``hook_params`` mapping; unknown names are refused by name."""
        params = dict(hook_params or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ButlrConfigurationError(
                f"hook_params: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}"
            )
        return cls(**params)

    def as_hook_params(self) -> dict[str, Any]:
        """The options that differ from the defaults, as a JSON-safe mapping."""
        defaults = ClientOptions()
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) != getattr(defaults, f.name)
        }

    def timeout_for(self, settings: ButlrSettings) -> float:
        """Seconds per request: the override, else the connection's ``timeout``."""
        return float(self.timeout or settings.timeout)

    def login_policy(self, settings: ButlrSettings, policy: RetryPolicy) -> RetryPolicy:
        """A login's policy: a host that refuses connections or does not resolve (a wrong host, most
        likely) gets :data:`LOGIN_UNREACHABLE_RETRIES` retries, seconds instead of half a minute,
        unless ``max_retries`` was asked for (connection extra or hook option)."""
        if self.max_retries is not None or settings.max_retries_set:
            return policy
        return replace(policy, unreachable_retries=min(LOGIN_UNREACHABLE_RETRIES, policy.max_retries))

    def retry_policy_for(self, settings: ButlrSettings, not_after: float | None = None) -> RetryPolicy:
        """The retry policy: ``max_retries`` from the override, else from the connection; answers 429
        waited out for the connection's ``max_rate_limit_wait``, never past ``not_after`` (the task's
        ``execution_timeout``)."""
        max_retries = settings.max_retries if self.max_retries is None else self.max_retries
        return RetryPolicy(
            max_retries=max_retries,
            wait_initial=self.retry_wait_initial,
            wait_max=self.retry_wait_max,
            retry_after_cap=self.retry_after_cap,
            rate_limit_wait=(
                settings.max_rate_limit_wait if self.max_rate_limit_wait is None else self.max_rate_limit_wait
            ),
            not_after=not_after,
        )
