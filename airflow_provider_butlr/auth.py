"""Access tokens: the two grants, the login answer, expiry rules, and the process-wide token cache.

Request building and response interpretation are shared by the sync hook (requests) and the async
trigger (httpx); only the transport differs. The cache can be backed by a store shared across
processes (``token_store.py``); the hooks pass ``store=store_for(settings)``.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import logging
import math
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_butlr.aio import within
from airflow_provider_butlr.exceptions import ButlrAuthError
from airflow_provider_butlr.retry import RETRYABLE_STATUSES, TransientHTTPError, parse_retry_after
from airflow_provider_butlr.scrub import remember_secret, scrub
from airflow_provider_butlr.settings import ButlrSettings

if TYPE_CHECKING:
    from airflow_provider_butlr.token_store import TokenStore

CLIENT_LOGIN_PATH = "/api/v2/clients/login"
PASSWORD_LOGIN_PATH = "/api/v2/login"
DEFAULT_TOKEN_LIFETIME = 300.0  # when neither expires_in nor a JWT exp is known: be conservative
MAX_TOKEN_LIFETIME = 30 * 86400.0  # Auth0's longest API-token lifetime; anything above is clamped
MAX_REFRESH_MARGIN = 300.0  # Butlr's own MCP refreshes 5 minutes before expiry
# JWT iat/exp are whole seconds and the answer travels: a token may die up to ~1 s before we expect.
TOKEN_CLOCK_SLACK = 1.0
MIN_TOKEN_USE = 1.0  # a token whose schedule leaves less than this arrived (nearly) expired: "stale"
STALE_TOKEN_COOLDOWN = 5.0  # a stale token is used this long, and no second login happens meanwhile
MAX_TOKEN_LENGTH = 16 * 1024  # an HTTP header line, not a payload
MAX_ERROR_TEXT = 300
STORE_CALL_TIMEOUT = 30.0  # longest wait for one call to a token store from the event loop

CacheKey = tuple[str, ...]
T = TypeVar("T")
log = logging.getLogger(__name__)


def refresh_margin(lifetime: float) -> float:
    """Refresh ahead of expiry: 5 minutes for long tokens, 10 % of the lifetime for shorter ones, and
    at least twice the clock slack (but at most half the lifetime) for tokens of a few seconds."""
    return min(MAX_REFRESH_MARGIN, max(lifetime * 0.1, min(2 * TOKEN_CLOCK_SLACK, lifetime / 2)))


@dataclass(frozen=True)
class AccessToken:
    """A bearer token and when it stops being usable; the value is kept out of repr."""

    value: str = field(repr=False)
    obtained_at: float
    expires_at: float

    @property
    def lifetime(self) -> float:
        return max(self.expires_at - self.obtained_at, 0.0)

    @property
    def arrived_stale(self) -> bool:
        """Already expired (or nearly) when it arrived: the normal refresh schedule leaves no use."""
        return self.lifetime - refresh_margin(self.lifetime) < MIN_TOKEN_USE

    @property
    def refresh_at(self) -> float:
        """When to log in again. A stale token is still used for the cool-down: never a login per call."""
        if self.arrived_stale:
            return self.obtained_at + STALE_TOKEN_COOLDOWN
        return self.expires_at - refresh_margin(self.lifetime)

    def is_fresh(self, now: float) -> bool:
        return now < self.refresh_at


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The claims of a JWT, decoded without verification (we only schedule a refresh)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, TypeError, RecursionError):
        return None
    return claims if isinstance(claims, dict) else None


def _number(value: Any) -> float | int | None:
    """A JSON number that means something: not a bool, not NaN (big ints and infinities stay)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _clamped(seconds: float | int) -> float:
    """Seconds within [0, MAX_TOKEN_LIFETIME]; compares before converting, so 10**400 cannot overflow."""
    if seconds <= 0:
        return 0.0
    return MAX_TOKEN_LIFETIME if seconds >= MAX_TOKEN_LIFETIME else float(seconds)


def token_lifetime(answer: Mapping[str, Any], token: str, now: float) -> float | None:
    """Seconds the token is valid for: ``expires_in``, else the JWT's ``exp - iat`` (immune to a
    skewed local clock), else ``exp - now``; clamped; None when the answer does not say."""
    expires_in = _number(answer.get("expires_in"))
    if expires_in is not None:
        return _clamped(expires_in)
    claims = jwt_claims(token) or {}
    exp, iat = _number(claims.get("exp")), _number(claims.get("iat"))
    if exp is None:
        return None
    if iat is not None and not math.isinf(iat):
        if exp >= iat + MAX_TOKEN_LIFETIME:  # compared as numbers: no float overflow
            return MAX_TOKEN_LIFETIME
        return _clamped(exp - iat)
    if exp >= now + MAX_TOKEN_LIFETIME:
        return MAX_TOKEN_LIFETIME
    return _clamped(exp - now)


def is_valid_bearer_token(token: str) -> bool:
    """Visible ASCII only, and header-sized: a CR/LF, space, NUL or non-ASCII byte would break (or
    inject into) the Authorization header."""
    return 0 < len(token) <= MAX_TOKEN_LENGTH and all("!" <= ch <= "~" for ch in token)


class LoginBody(dict[str, str]):
    """The login call's JSON body. Its repr hides the secret: tracebacks that print every frame's
    local variables (Airflow 3.0's console logging renders them with rich) show ``***`` instead."""

    SECRET_KEYS = frozenset({"client_secret", "password"})

    def __repr__(self) -> str:
        return repr({key: "***" if key in self.SECRET_KEYS else value for key, value in self.items()})


def login_request(settings: ButlrSettings) -> tuple[str, LoginBody]:
    """URL and JSON body of the login call for the configured grant."""
    if settings.auth_type == "password":
        return settings.base_url + PASSWORD_LOGIN_PATH, LoginBody(
            username=settings.login,
            password=settings.secret,
        )
    return settings.base_url + CLIENT_LOGIN_PATH, LoginBody(
        client_id=settings.login,
        client_secret=settings.secret,
        audience=settings.audience,
        grant_type="client_credentials",
    )


def error_text(body: str, secrets: tuple[str, ...] = ()) -> str:
    """Butlr's error text from a JSON or plain body: short, single-line, with any secret removed."""
    text = scrub(body, secrets).strip()  # before folding and truncation: no prefix or folded form leaks
    try:
        payload = json.loads(text) if text else None
    except (ValueError, RecursionError):
        payload = None
    if isinstance(payload, dict):
        parts = [
            str(payload[key])
            for key in ("error", "error_description", "message", "details")
            if payload.get(key) not in (None, "")
        ]
        text = ": ".join(parts) if parts else text
    elif text.lstrip().startswith("<"):
        text = "(HTML error page)"
    return scrub(" ".join(text.split()), secrets)[:MAX_ERROR_TEXT]


def token_from_login_response(
    settings: ButlrSettings,
    *,
    status: int,
    body: str,
    retry_after_header: str | None,
    now: float,
) -> AccessToken:
    """Interpret a login answer: a token, a retryable failure, or a final ButlrAuthError."""
    endpoint = login_request(settings)[0][len(settings.base_url) :]
    detail = error_text(body, (settings.secret,))
    if status in RETRYABLE_STATUSES:
        raise TransientHTTPError(status, retry_after=parse_retry_after(retry_after_header), detail=detail)
    if status >= 400:
        raise ButlrAuthError(
            f"Butlr login refused: POST {endpoint} answered HTTP {status}"
            + (f" ({detail})" if detail else "")
            + f"; check the {_credential_names(settings)} of connection {settings.conn_id}",
            status=status,
            method="POST",
            endpoint=endpoint,
        )
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        payload = None
    if not isinstance(payload, dict):
        payload = {}
    token = payload.get("access_token")
    if not isinstance(token, str) or not token:
        raise ButlrAuthError(
            f"Butlr login answered HTTP {status} without an access_token (POST {endpoint})",
            status=status,
            method="POST",
            endpoint=endpoint,
        )
    if not is_valid_bearer_token(token):  # never echo it: the value is the credential
        raise ButlrAuthError(
            f"Butlr login answered HTTP {status} with an access_token that is not a valid bearer token "
            f"(empty, over {MAX_TOKEN_LENGTH} characters, or holding whitespace, control or non-ASCII "
            f"characters) (POST {endpoint})",
            status=status,
            method="POST",
            endpoint=endpoint,
        )
    lifetime = token_lifetime(payload, token, now)
    return AccessToken(
        value=token,
        obtained_at=now,
        expires_at=now + (DEFAULT_TOKEN_LIFETIME if lifetime is None else lifetime),
    )


def _credential_names(settings: ButlrSettings) -> str:
    if settings.auth_type == "password":
        return "username and password"
    return "client id, client secret and audience"


class TokenCache:
    """Process-wide tokens keyed by credentials (never by the secret itself); thread- and task-safe.

    One login per key at a time: concurrent callers wait for the login in flight and share its token.
    With a ``store`` (see ``token_store.py``) the process level is backed by a store shared across
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
