"""The cross-host backend: an Airflow Redis connection (named by the connection extra
``redis_conn_id``), its clients, and the server-side scripts that make each step atomic.

Every key is ``butlr:<digest>:<what>``, the digest a SHA-256 of the credentials key (as the token
store names its files): no client id, URL or secret appears in Redis in clear, and a token only
Fernet-sealed. The ``redis`` package is the ``[redis]`` extra, imported on first use.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_butlr.exceptions import ButlrConfigurationError

DEFAULT_PORT = 6379


@dataclass(frozen=True)
class RedisConfig:
    """Where the shared state lives: an Airflow ``redis`` connection's fields."""

    conn_id: str
    host: str
    port: int = DEFAULT_PORT
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl: bool = False
    ssl_ca_certs: str | None = None

    @classmethod
    def from_connection(cls, conn: Any, conn_id: str) -> RedisConfig:
        """From an Airflow Connection (``conn_type`` redis: host, port, login, password, extra.db/ssl)."""
        extra = getattr(conn, "extra_dejson", None) or {}
        where = f"(connection {conn_id}, named by the Butlr connection's extra.redis_conn_id)"
        host = (getattr(conn, "host", None) or "").strip()
        if not host:
            raise ButlrConfigurationError(f"the Redis host is missing {where}")
        try:
            port = int(getattr(conn, "port", None) or DEFAULT_PORT)
            db = int(extra.get("db", 0) or 0)
        except (TypeError, ValueError):
            raise ButlrConfigurationError(
                f"the Redis port and extra.db must be whole numbers {where}"
            ) from None
        if not 0 < port < 65536 or db < 0:
            raise ButlrConfigurationError(f"the Redis port {port} or db {db} is out of range {where}")
        ssl = str(extra.get("ssl", "")).strip().lower() in ("true", "1", "yes")
        return cls(
            conn_id=conn_id,
            host=host,
            port=port,
            db=db,
            username=(getattr(conn, "login", None) or None),
            password=(getattr(conn, "password", None) or None),
            ssl=ssl,
            ssl_ca_certs=extra.get("ssl_ca_certs") or None,
        )

    def kwargs(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "db": self.db,
            "username": self.username,
            "password": self.password,
            "socket_timeout": 5.0,
            "socket_connect_timeout": 5.0,
            "health_check_interval": 30,
        }
        if self.ssl:
            options["ssl"] = True
            if self.ssl_ca_certs:
                options["ssl_ca_certs"] = self.ssl_ca_certs
        return options


def redis_module() -> Any:
    try:
        import redis
    except ImportError:
        raise ButlrConfigurationError(
            "extra.redis_conn_id needs the redis client: pip install 'airflow-provider-butlr[redis]'"
        ) from None
    return redis


_CLIENTS: dict[RedisConfig, Any] = {}
_LOCK = threading.Lock()


def sync_client(config: RedisConfig) -> Any:
    """One client (a connection pool, thread-safe) per config and process."""
    with _LOCK:
        client = _CLIENTS.get(config)
        if client is None:
            client = _CLIENTS[config] = redis_module().Redis(**config.kwargs())
        return client


def async_client(config: RedisConfig) -> Any:
    """A new asyncio client (asyncio clients belong to one event loop: the caller keeps it)."""
    return redis_module().asyncio.Redis(**config.kwargs())


def shared_key(name: str, what: str) -> str:
    """``butlr:<sha256 of name, 32 hex>:<what>``: a Redis key that reveals nothing of ``name``."""
    return f"butlr:{hashlib.sha256(name.encode()).hexdigest()[:32]}:{what}"
