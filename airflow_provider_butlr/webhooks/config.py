"""The receiver's connection as the api-server sees it: read through Airflow's secrets backends
(environment variables, a configured backend, the metadata database), validated, cached a few seconds.

Which connection: ``[butlr] webhook_conn_id`` in Airflow's configuration (``AIRFLOW__BUTLR__WEBHOOK_CONN_ID``),
default ``butlr_webhook_default``. A changed key takes effect within :data:`SETTINGS_TTL_SECONDS`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.push.receiver import DEFAULT_CONN_ID, ReceiverSettings

log = logging.getLogger(__name__)

SETTINGS_TTL_SECONDS = 30.0


def configured_conn_id() -> str:
    from airflow.configuration import conf

    return conf.get("butlr", "webhook_conn_id", fallback=DEFAULT_CONN_ID) or DEFAULT_CONN_ID


@dataclass(frozen=True)
class Loaded:
    """The settings, or why there are none (a message without any secret)."""

    settings: ReceiverSettings | None
    problem: str | None
    at: float


class SettingsSource:
    """The current :class:`ReceiverSettings` of the receiver's connection (``None`` when unusable)."""

    def __init__(self, conn_id: str | None = None, ttl: float = SETTINGS_TTL_SECONDS) -> None:
        self.conn_id = conn_id
        self.ttl = ttl
        self._lock = threading.Lock()
        self._loaded: Loaded | None = None

    def cached(self) -> Loaded | None:
        """The loaded settings while fresh (no I/O: safe on the event loop), else None."""
        loaded = self._loaded
        return loaded if loaded is not None and time.monotonic() - loaded.at < self.ttl else None

    def load(self) -> Loaded:
        """Fresh settings (blocking: secrets backends, the database); at most one load at a time."""
        with self._lock:
            loaded = self.cached()
            if loaded is None:
                loaded = self._read()
                if loaded.problem is not None and (
                    self._loaded is None or self._loaded.problem != loaded.problem
                ):
                    log.warning("Butlr webhook receiver refuses every request: %s", loaded.problem)
                self._loaded = loaded
            return loaded

    def _read(self) -> Loaded:
        from airflow.models.connection import Connection
        from airflow.providers.common.compat.sdk import AirflowNotFoundException

        conn_id = self.conn_id or configured_conn_id()
        now = time.monotonic()
        try:
            conn = Connection.get_connection_from_secrets(conn_id)
        except AirflowNotFoundException:
            return Loaded(None, f"connection {conn_id!r} is not defined (see docs/webhooks.md)", now)
        try:
            settings = ReceiverSettings.from_fields(
                conn_id, host=conn.host, login=conn.login, password=conn.password, extra=conn.extra_dejson
            )
        except ButlrConfigurationError as err:
            return Loaded(None, str(err), now)
        return Loaded(settings, None, now)
