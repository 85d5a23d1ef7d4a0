"""What the sync and async Butlr hooks share: the connection id, their options, their class facts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook

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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.butlr_conn_id = butlr_conn_id
        self.options = ClientOptions(
            timeout, max_retries, retry_wait_initial, retry_wait_max, retry_after_cap
        )

    @property
    def hook_params(self) -> dict[str, Any]:
        """This hook's options as a JSON-safe mapping: ``type(self)(conn_id, **hook_params)`` rebuilds it."""
        return self.options.as_hook_params()

    def get_butlr_connection(self) -> Connection:
        """The connection, or an error that says why Airflow could not give it (never only "isn't defined")."""
        try:
            return self.get_connection(self.butlr_conn_id)
        except AirflowNotFoundException as err:
            raise connection_not_found(self.butlr_conn_id, err) from err
