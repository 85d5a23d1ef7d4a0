"""Token stores shared across processes: one login per token lifetime per host (or per deployment).

The process-wide :data:`~airflow_provider_butlr.client.tokens.cache.TOKEN_CACHE` stays the first level; a store is the
level behind it, consulted only when this process has no fresh token:

* ``process`` - no store (each process logs in once).
* ``host`` (default) - a file per cache key in a private directory (0700; files 0600), the token
  Fernet-encrypted with Airflow's ``[core] fernet_key``, written atomically, and an ``fcntl.flock`` per
  key so that processes starting at once produce one login. Without a Fernet key it falls back to
  ``process`` and says so once at INFO.
* ``variable`` - the host store plus an Airflow Variable holding the Fernet-encrypted token, shared by
  every host (see docs/token-store.md for what it costs).

Nothing here ever writes or logs a token in plaintext.
"""

from __future__ import annotations

import contextlib
import os
import time
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_butlr.client.limits.redis_backend import RedisConfig
from airflow_provider_butlr.client.settings import DEFAULT_TOKEN_CACHE, TOKEN_CACHE_MODES
from airflow_provider_butlr.client.tokens.fernet import airflow_fernet, key_digest, seal, unseal
from airflow_provider_butlr.client.tokens.host_store import HostStore
from airflow_provider_butlr.client.tokens.model import AccessToken, CacheKey
from airflow_provider_butlr.client.tokens.notices import warn_once
from airflow_provider_butlr.client.tokens.redis_store import RedisStore

if TYPE_CHECKING:
    from airflow_provider_butlr.client.settings import ButlrSettings

__all__ = [
    "DEFAULT_TOKEN_CACHE",
    "TOKEN_CACHE_MODES",
    "HostStore",
    "RedisStore",
    "TokenStore",
    "VariableStore",
    "store_for",
]

TOKEN_CACHE_DIR_ENV = "BUTLR_TOKEN_CACHE_DIR"
VARIABLE_PREFIX = "butlr_token_cache_"


class TokenStore(Protocol):
    """The level behind the process cache. ``load``/``save``/``discard`` never raise."""

    name: str

    def load(self, key: CacheKey) -> AccessToken | None: ...

    def save(self, key: CacheKey, token: AccessToken) -> None: ...

    def discard(self, key: CacheKey, token_value: str) -> None:
        """Delete the shared entry only while it still holds ``token_value`` (compare, then delete)."""
        ...

    def lock(self, key: CacheKey) -> contextlib.AbstractContextManager[None]:
        """Exclusive across processes for one key: held while loading-or-logging-in."""
        ...

    def alock(self, key: CacheKey) -> contextlib.AbstractAsyncContextManager[None]: ...

    def clear(self) -> None: ...


class VariableStore:
    """The host store plus an Airflow Variable holding only the Fernet-encrypted token.

    Hosts share one token; within a host the file lock still makes concurrent starts one login. There is
    no lock across hosts (Variables have no compare-and-set): hosts starting at the same instant may each
    log in once. Any Variable failure degrades to the host store with one WARNING.
    """

    name = "variable"

    def __init__(self, host: HostStore) -> None:
        self.host = host

    def __repr__(self) -> str:
        return f"VariableStore({self.host!r})"

    def load(self, key: CacheKey) -> AccessToken | None:
        token = self.host.load(key)
        if token is not None and token.is_fresh(time.time()):
            return token
        fernet = airflow_fernet()
        blob = _variable_call("get", VARIABLE_PREFIX + key_digest(key)) if fernet is not None else None
        shared = unseal(fernet, key, blob.encode()) if fernet is not None and isinstance(blob, str) else None
        if shared is not None and shared.is_fresh(time.time()):
            self.host.save(key, shared)
            return shared
        return token

    def save(self, key: CacheKey, token: AccessToken) -> None:
        self.host.save(key, token)
        fernet = airflow_fernet()
        if fernet is not None:
            blob = seal(fernet, key, token).decode()
            _variable_call("set", VARIABLE_PREFIX + key_digest(key), blob)

    def discard(self, key: CacheKey, token_value: str) -> None:
        self.host.discard(key, token_value)
        fernet = airflow_fernet()
        if fernet is None:
            return
        name = VARIABLE_PREFIX + key_digest(key)
        blob = _variable_call("get", name)
        shared = unseal(fernet, key, blob.encode()) if isinstance(blob, str) else None
        if shared is not None and shared.value == token_value:
            _variable_call("delete", name)

    def lock(self, key: CacheKey) -> contextlib.AbstractContextManager[None]:
        return self.host.lock(key)

    def alock(self, key: CacheKey) -> contextlib.AbstractAsyncContextManager[None]:
        return self.host.alock(key)

    def clear(self) -> None:
        self.host.clear()


VARIABLE_DESCRIPTION = (
    "airflow-provider-butlr: a Fernet-encrypted Butlr access token (a cache; safe to delete)"
)


def _variable_call(action: str, name: str, value: str | None = None) -> Any:
    """Airflow's Task SDK Variable API; any failure is one WARNING and a miss, never a failed task."""
    try:
        from airflow.sdk import Variable

        if action == "get":
            return Variable.get(name, default=None)
        if action == "set":
            Variable.set(name, value, description=VARIABLE_DESCRIPTION)
        elif action == "delete":
            Variable.delete(name)
    except Exception as err:  # no Variable API here (e.g. Airflow 3.0's triggerer cannot set one)
        warn_once(
            f"variable:{action}",
            "The Butlr token Variable could not be %s here (%s); using the per-host token store.",
            {"get": "read", "set": "written", "delete": "deleted"}[action],
            type(err).__name__,
        )
    return None


def default_token_cache_dir() -> Path:
    """``$BUTLR_TOKEN_CACHE_DIR``, else ``$AIRFLOW_HOME/butlr-token-cache`` (``~/airflow`` by default)."""
    configured = os.environ.get(TOKEN_CACHE_DIR_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("AIRFLOW_HOME") or "~/airflow").expanduser() / "butlr-token-cache"


def token_directory(settings: ButlrSettings) -> Path:
    """The host store's directory: extra ``token_cache_dir``, else :func:`default_token_cache_dir`."""
    configured = settings.token_cache_dir
    return Path(configured).expanduser() if configured else default_token_cache_dir()


@lru_cache(maxsize=64)
def host_store(directory: Path) -> HostStore:
    """The host store of ``directory`` (one per process: the rate limit's window file lives there too)."""
    return HostStore(directory)


@lru_cache(maxsize=64)
def _store(mode: str, directory: Path, redis: RedisConfig | None) -> TokenStore | None:
    if mode == "process":
        return None
    host = host_store(directory)
    if mode == "variable":
        return VariableStore(host)
    if mode == "redis" and redis is not None:
        return RedisStore(redis, host)
    return host


def store_for(settings: ButlrSettings, redis: RedisConfig | None = None) -> TokenStore | None:
    """The store a connection's ``token_cache`` extra chooses (None: this process only); ``redis``
    is the connection of its extra ``redis_conn_id`` (``token_cache: redis`` needs it)."""
    if settings.token_cache == "process":
        return None
    return _store(settings.token_cache, token_directory(settings), redis)
