"""What the sync and async Butlr hooks share: the connection id, their options, their class facts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook

from airflow_provider_butlr.client.limits.redis_backend import RedisConfig
from airflow_provider_butlr.client.settings import ButlrSettings
from airflow_provider_butlr.hooks.connection_lookup import connection_not_found
from airflow_provider_butlr.hooks.options import ClientOptions

if TYPE_CHECKING:
    from airflow.sdk import Connection


class ButlrBaseHook(BaseHook):
    """Base of :class:`~airflow_provider_butlr.hooks.butlr.ButlrHook` and its async twin.

    :param butlr_conn_id: the connection: host = API base URL, login = client id (or username),
        password = client secret (or password), extras ``audience``, ``auth_type``, ``timeout``,
        ``max_retries``.
    :param timeout: per-request timeout in seconds (overrides the connection's).
    :param max_retries: retries for 429/5xx/network errors (overrides the connection's).
    :param retry_wait_initial: first backoff wait in seconds (doubles each retry, with jitter).
    :param retry_wait_max: longest backoff wait in seconds.
    :param retry_after_cap: longest wait honoured from a ``Retry-After`` header, in seconds.
    :param max_rate_limit_wait: how long one call may wait out answers 429 before it fails, in
        seconds (overrides the connection's ``max_rate_limit_wait``; 429s use no retries).
    """

    conn_name_attr = "butlr_conn_id"
    default_conn_name = "butlr_default"
    conn_type = "butlr"
    hook_name = "Butlr"

    def __init__(
        self,
        butlr_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        retry_wait_initial: float = 0.5,
        retry_wait_max: float = 30.0,
        retry_after_cap: float = 60.0,
        max_rate_limit_wait: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.butlr_conn_id = butlr_conn_id
        self.options = ClientOptions(
            timeout, max_retries, retry_wait_initial, retry_wait_max, retry_after_cap, max_rate_limit_wait
        )

    @property
    def hook_params(self) -> dict[str, Any]:
        """This hook's options as a JSON-safe mapping: ``type(self)(conn_id, **hook_params)`` rebuilds it."""
        return self.options.as_hook_params()

    def redis_config(self, settings: ButlrSettings) -> RedisConfig | None:
        """The Redis of the extra ``redis_conn_id`` (None without it): the rate limit and logins of
        every host go through it."""
        if settings.redis_conn_id is None:
            return None
        try:
            conn = self.get_connection(settings.redis_conn_id)
        except AirflowNotFoundException as err:
            raise connection_not_found(settings.redis_conn_id, err) from err
        return RedisConfig.from_connection(conn, settings.redis_conn_id)

    def get_butlr_connection(self) -> Connection:
        """The connection, or an error that says why Airflow could not give it (never only "isn't defined")."""
        try:
            return self.get_connection(self.butlr_conn_id)
        except AirflowNotFoundException as err:
            raise connection_not_found(self.butlr_conn_id, err) from err


def task_deadline() -> float | None:
    """When the running task's ``execution_timeout`` ends (Unix time); None outside a task or
    without one. Waits for the server's rate limit end before it (:class:`RetryPolicy.not_after`)."""
    try:
        from airflow.sdk import get_current_context

        context = get_current_context()
    except Exception:  # no task here (a trigger, a test, a script): no deadline
        return None
    timeout = getattr(context.get("task"), "execution_timeout", None)
    started = getattr(context.get("ti"), "start_date", None)
    if timeout is None or started is None:
        return None
    return float(started.timestamp() + timeout.total_seconds())
