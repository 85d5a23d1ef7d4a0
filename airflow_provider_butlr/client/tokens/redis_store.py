"""``token_cache: redis``: one token and one login lock for every host, through Redis.

The record is the host store's (Fernet-sealed, bound to its cache key) under
``butlr:<digest>:token``, expiring with the token; the login lock is ``butlr:<digest>:login``
(``SET NX PX`` with a random owner, released by a script that deletes it only for its owner, and
expiring by itself if its holder dies). The host store stays behind it: its ``flock`` queues the
processes of one host before they ask Redis, and it answers while Redis cannot (one WARNING).
Redis is read first, so the token another host stored after a revocation is found even while this
host's file still holds the refused one. A revoked token thus costs exactly one login across hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from airflow_provider_butlr.client.limits.redis_backend import (
    RedisConfig,
    async_client,
    shared_key,
    sync_client,
)
from airflow_provider_butlr.client.tokens.fernet import airflow_fernet, key_digest, seal, unseal
from airflow_provider_butlr.client.tokens.host_store import LOCK_TIMEOUT, HostStore, waited
from airflow_provider_butlr.client.tokens.model import AccessToken, CacheKey
from airflow_provider_butlr.client.tokens.notices import warn_once

LOGIN_LOCK_TTL_MS = 120_000  # a holder that died frees the lock after this long

# KEYS: the key. ARGV: the value it must still hold: deleted only then (compare, then delete).
DELETE_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisStore:
    """Tokens and the login lock shared by every host through Redis; the host store behind it."""

    name = "redis"

    def __init__(self, config: RedisConfig, host: HostStore, lock_timeout: float = LOCK_TIMEOUT) -> None:
        self.config = config
        self.host = host
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"RedisStore({self.config.conn_id!r}, {self.host!r})"

    def _key(self, key: CacheKey, what: str) -> str:
        return shared_key(key_digest(key), what)

    def _warn(self, action: str, err: BaseException) -> None:
        warn_once(
            f"redis:{self.config.conn_id}:{action}",
            "Redis of connection %s (extra.redis_conn_id) could not %s the Butlr token (%s); this host's "
            "token store stands in.",
            self.config.conn_id,
            action,
            type(err).__name__,
        )

    def load(self, key: CacheKey) -> AccessToken | None:
        fernet = airflow_fernet()
        if fernet is None:
            return None
        try:
            blob = sync_client(self.config).get(self._key(key, "token"))
        except Exception as err:
            self._warn("read", err)
            return self.host.load(key)
        shared = unseal(fernet, key, blob) if isinstance(blob, bytes) else None
        if shared is not None and shared.is_fresh(time.time()):
            self.host.save(key, shared)
            return shared
        return None

    def save(self, key: CacheKey, token: AccessToken) -> None:
        self.host.save(key, token)
        fernet = airflow_fernet()
        if fernet is None:
            return
        ttl = max(int((token.expires_at - time.time()) * 1000), 1000)
        try:
            sync_client(self.config).set(self._key(key, "token"), seal(fernet, key, token), px=ttl)
        except Exception as err:
            self._warn("write", err)

    def discard(self, key: CacheKey, token_value: str) -> None:
        self.host.discard(key, token_value)
        fernet = airflow_fernet()
        if fernet is None:
            return
        name = self._key(key, "token")
        try:
            client = sync_client(self.config)
            blob = client.get(name)
            shared = unseal(fernet, key, blob) if isinstance(blob, bytes) else None
            if shared is not None and shared.value == token_value:
                client.register_script(DELETE_IF)(keys=[name], args=[blob])
        except Exception as err:
            self._warn("delete", err)

    @contextlib.contextmanager
    def lock(self, key: CacheKey) -> Iterator[None]:
        with self.host.lock(key):  # this host's processes queue here, not at Redis
            name, owner = self._key(key, "login"), secrets.token_hex(16)
            locked = False
            try:
                client = sync_client(self.config)
                deadline, pause = time.monotonic() + self.lock_timeout, 0.005
                while not (locked := bool(client.set(name, owner, nx=True, px=LOGIN_LOCK_TTL_MS))):
                    if time.monotonic() >= deadline:
                        waited(self.lock_timeout)
                        break
                    time.sleep(pause)
                    pause = min(pause * 2, 0.1)
            except Exception as err:
                self._warn("lock", err)
            try:
                yield
            finally:
                if locked:
                    with contextlib.suppress(Exception):
                        sync_client(self.config).register_script(DELETE_IF)(keys=[name], args=[owner])

    @contextlib.asynccontextmanager
    async def alock(self, key: CacheKey) -> AsyncIterator[None]:
        async with self.host.alock(key):
            name, owner = self._key(key, "login"), secrets.token_hex(16)
            client: Any = None
            locked = False
            try:
                client = async_client(self.config)
                deadline, pause = time.monotonic() + self.lock_timeout, 0.005
                while not (locked := bool(await client.set(name, owner, nx=True, px=LOGIN_LOCK_TTL_MS))):
                    if time.monotonic() >= deadline:
                        waited(self.lock_timeout)
                        break
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 0.1)
            except Exception as err:
                self._warn("lock", err)
            try:
                yield
            finally:
                if client is not None:
                    with contextlib.suppress(Exception):
                        if locked:
                            await client.register_script(DELETE_IF)(keys=[name], args=[owner])
                    with contextlib.suppress(Exception):
                        await client.aclose()

    def clear(self) -> None:
        self.host.clear()
