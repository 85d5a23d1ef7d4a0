"""The process-wide token cache: one login per credentials at a time, backed by a shared store.

The cache can be backed by a store shared across processes (:mod:`.stores`); the hooks pass
``store=store_for(settings)``. Every token received is masked (Airflow's masker and the scrubber).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_butlr.client.scrub import remember_secret
from airflow_provider_butlr.client.tokens.model import (
    MIN_TOKEN_USE,
    STALE_TOKEN_COOLDOWN,
    AccessToken,
    CacheKey,
)
from airflow_provider_butlr.common.aio import within
from airflow_provider_butlr.exceptions import ButlrAuthError

if TYPE_CHECKING:
    from airflow_provider_butlr.client.tokens.stores import TokenStore

STORE_CALL_TIMEOUT = 30.0  # longest wait for one call to a token store from the event loop

T = TypeVar("T")
log = logging.getLogger(__name__)


class TokenCache:
    """Process-wide tokens keyed by credentials (never by the secret itself); thread- and task-safe.

    One login per key at a time: concurrent callers wait for the login in flight and share its token.
    With a ``store`` (see ``client/tokens/stores.py``) the process level is backed by a store shared across
    processes: a miss here reads the store, and a login happens under the store's lock, once.
    A token that arrived already expired is used for ``STALE_TOKEN_COOLDOWN`` seconds, and a second
    login within that time is refused with a ButlrAuthError: never a login per call.
    """

    def __init__(self) -> None:
        self._tokens: dict[CacheKey, AccessToken] = {}
        self._last_login: dict[CacheKey, AccessToken] = {}
        # Tokens Butlr refused (401/403) in this process: never taken back from a store or a racing
        # thread, so a replay cannot reuse a token that was just refused.
        self._refused: dict[CacheKey, collections.deque[str]] = {}
        self._stores: dict[int, TokenStore] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[CacheKey, threading.Lock] = {}
        # One login lock per key and event loop (an asyncio.Lock belongs to one loop). Entries of closed
        # loops are dropped, so a process that runs many loops does not accumulate them, and a new loop
        # that reuses a closed one's id() never inherits its lock.
        self._async_locks: dict[
            tuple[CacheKey, int], tuple[weakref.ref[asyncio.AbstractEventLoop], asyncio.Lock]
        ] = {}

    def _fresh(self, key: CacheKey, now: float) -> AccessToken | None:
        return self._usable(key, self._tokens.get(key), now)

    def _usable(self, key: CacheKey, token: AccessToken | None, now: float) -> AccessToken | None:
        """``token`` if it is fresh and this process has not seen Butlr refuse it."""
        if token is None or not token.is_fresh(now) or token.value in self._refused.get(key, ()):
            return None
        return token

    def _key_lock(self, key: CacheKey) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def _remember(self, key: CacheKey, token: AccessToken, store: TokenStore | None) -> None:
        with self._lock:
            self._tokens[key] = token
            if store is not None:
                self._stores.setdefault(id(store), store)

    def _check_login_allowed(self, key: CacheKey, now: float, shared: AccessToken | None) -> None:
        """Refuse a second login while the last one (here or in the store) issued a stale token."""
        previous = max(
            (t for t in (self._last_login.get(key), shared) if t is not None),
            key=lambda t: t.obtained_at,
            default=None,
        )
        if previous is None or not previous.arrived_stale:
            return
        age = now - previous.obtained_at
        if 0 <= age < STALE_TOKEN_COOLDOWN:
            raise ButlrAuthError(
                f"Butlr's login {age:.1f} s ago (at {key[0]}) issued an access token that was already "
                f"expired or expires within {MIN_TOKEN_USE:.0f} s (lifetime {previous.lifetime:.1f} s); "
                f"refusing to log in again within {STALE_TOKEN_COOLDOWN:.0f} s of it. Check the token "
                "lifetime of the API client in Butlr and this host's clock."
            )

    def _logged_in(self, key: CacheKey, token: AccessToken) -> AccessToken:
        with self._lock:
            self._last_login[key] = token
        return token

    def get(
        self,
        key: CacheKey,
        login: Callable[[], AccessToken],
        clock: Callable[[], float] = time.time,
        store: TokenStore | None = None,
    ) -> str:
        """A fresh token for ``key``: this process's, else the store's, else a login (once, locked)."""
        token = self._fresh(key, clock())
        if token is not None:
            return token.value
        with self._key_lock(key):
            token = self._fresh(key, clock())
            if token is not None:
                return token.value
            if store is None:
                self._check_login_allowed(key, clock(), None)
                token = self._logged_in(key, login())
            else:
                token = self._from_store_or_login(key, login, clock, store)
            self._remember(key, token, store)
            return token.value

    def _from_store_or_login(
        self, key: CacheKey, login: Callable[[], AccessToken], clock: Callable[[], float], store: TokenStore
    ) -> AccessToken:
        shared = store.load(key)
        if (usable := self._usable(key, shared, clock())) is not None:
            mask_token(usable.value)  # another process's login: this process's masker must know it
            return usable
        with store.lock(key):
            shared = store.load(key)  # another process may have logged in while we waited
            if (usable := self._usable(key, shared, clock())) is not None:
                mask_token(usable.value)
                return usable
            self._check_login_allowed(key, clock(), shared)
            token = self._logged_in(key, login())
            store.save(key, token)
            return token

    async def aget(
        self,
        key: CacheKey,
        login: Callable[[], Awaitable[AccessToken]],
        clock: Callable[[], float] = time.time,
        store: TokenStore | None = None,
    ) -> str:
        """Async twin of :meth:`get`; one login per key and event loop at a time, and the store's
        file work runs in a thread (its lock is taken with non-blocking tries and ``asyncio.sleep``)."""
        token = self._fresh(key, clock())
        if token is not None:
            return token.value
        lock = self._async_lock(key, asyncio.get_running_loop())
        async with lock:
            token = self._fresh(key, clock())
            if token is not None:
                return token.value
            if store is None:
                self._check_login_allowed(key, clock(), None)
                token = self._logged_in(key, await login())
            else:
                token = await self._afrom_store_or_login(key, login, clock, store)
            self._remember(key, token, store)
            return token.value

    async def _afrom_store_or_login(
        self,
        key: CacheKey,
        login: Callable[[], Awaitable[AccessToken]],
        clock: Callable[[], float],
        store: TokenStore,
    ) -> AccessToken:
        shared = await _off_loop(store.load, key)
        if (usable := self._usable(key, shared, clock())) is not None:
            await amask_token(usable.value)  # another process's login: this process's masker must know it
            return usable
        async with store.alock(key):
            shared = await _off_loop(store.load, key)
            if (usable := self._usable(key, shared, clock())) is not None:
                await amask_token(usable.value)
                return usable
            self._check_login_allowed(key, clock(), shared)
            token = self._logged_in(key, await login())
            await _off_loop(store.save, key, token)
            return token

    def _async_lock(self, key: CacheKey, loop: asyncio.AbstractEventLoop) -> asyncio.Lock:
        with self._lock:
            entry = self._async_locks.get((key, id(loop)))
            if entry is not None and entry[0]() is loop:
                return entry[1]
            for stale in [k for k, (ref, _) in self._async_locks.items() if _loop_gone(ref)]:
                del self._async_locks[stale]
            lock = asyncio.Lock()
            self._async_locks[(key, id(loop))] = (weakref.ref(loop), lock)
            return lock

    def put(self, key: CacheKey, token: AccessToken, store: TokenStore | None = None) -> None:
        """Cache a token from a login made outside :meth:`get` (e.g. ``test_connection``)."""
        self._logged_in(key, token)
        self._remember(key, token, store)
        if store is not None:
            store.save(key, token)

    def _drop(self, key: CacheKey, token_value: str | None) -> str | None:
        """Drop this process's token (only ``token_value`` if given); returns the value to drop shared."""
        with self._lock:
            current = self._tokens.get(key)
            if token_value is None and current is not None:
                token_value = current.value
            if current is not None and current.value == token_value:
                del self._tokens[key]
            if token_value is not None:
                self._refused.setdefault(key, collections.deque(maxlen=8)).append(token_value)
        return token_value

    def invalidate(
        self, key: CacheKey, token_value: str | None = None, store: TokenStore | None = None
    ) -> None:
        """Drop the cached token; with ``token_value``, only if it is still the cached one. The store's
        entry goes too, but only while it still holds that token (compare before delete)."""
        token_value = self._drop(key, token_value)
        if store is not None and token_value is not None:
            store.discard(key, token_value)

    async def ainvalidate(
        self, key: CacheKey, token_value: str | None = None, store: TokenStore | None = None
    ) -> None:
        """:meth:`invalidate` for the event loop (the store's file work runs in a thread)."""
        token_value = self._drop(key, token_value)
        if store is not None and token_value is not None:
            await _off_loop(store.discard, key, token_value)

    def clear(self, *, stores: bool = True) -> None:
        """Forget every token of this process (tests, benchmarks); with ``stores``, also every token in
        the stores this process used, as a fresh deployment would."""
        with self._lock:
            self._tokens.clear()
            self._last_login.clear()
            self._refused.clear()
            used = list(self._stores.values()) if stores else []
            if stores:
                self._stores.clear()
        for store in used:
            store.clear()


async def _off_loop(call: Callable[..., T], *args: Any) -> T | None:
    """Run a store call in a thread, bounded: a store that hangs (a stuck network filesystem, a
    Variable call the triggerer cannot serve) is a miss after ``STORE_CALL_TIMEOUT``, never a stuck
    trigger."""
    try:
        return await within(asyncio.to_thread(call, *args), STORE_CALL_TIMEOUT)
    except TimeoutError:
        log.warning(
            "The Butlr token store did not answer within %.0f s; going on without it.", STORE_CALL_TIMEOUT
        )
        return None


def _loop_gone(ref: weakref.ref[asyncio.AbstractEventLoop]) -> bool:
    loop = ref()
    return loop is None or loop.is_closed()


TOKEN_CACHE = TokenCache()


def mask_token(token: str) -> None:
    """Register a freshly received token with Airflow's secrets masker."""
    from airflow.providers.common.compat.sdk import mask_secret

    remember_secret(token)
    mask_secret(token)


async def amask_token(token: str) -> None:
    """Async variant for the triggerer (``amask_secret`` where Airflow has it)."""
    remember_secret(token)
    try:
        from airflow.sdk.log import amask_secret
    except ImportError:  # Airflow < 3.2
        mask_token(token)
        return
    await amask_secret(token)
