"""Access tokens: the two grants, expiry, and the process-wide token cache.

Request building and response interpretation are shared by the sync hook (requests) and the async
trigger (httpx); only the transport differs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from airflow_provider_butlr.exceptions import ButlrAuthError
from airflow_provider_butlr.retry import RETRYABLE_STATUSES, TransientHTTPError, parse_retry_after
from airflow_provider_butlr.scrub import remember_secret, scrub
from airflow_provider_butlr.settings import ButlrSettings

CLIENT_LOGIN_PATH = "/api/v2/clients/login"
PASSWORD_LOGIN_PATH = "/api/v2/login"
DEFAULT_TOKEN_LIFETIME = 300.0  # when neither expires_in nor a JWT exp is known: be conservative
MAX_REFRESH_MARGIN = 300.0  # Butlr's own MCP refreshes 5 minutes before expiry
MAX_ERROR_TEXT = 300

CacheKey = tuple[str, ...]


def refresh_margin(lifetime: float) -> float:
    """Refresh ahead of expiry: 5 minutes for long tokens, 10 % of the lifetime for short ones."""
    return min(MAX_REFRESH_MARGIN, max(lifetime * 0.1, 0.5))


@dataclass(frozen=True)
class AccessToken:
    """A bearer token and when it stops being usable; the value is kept out of repr."""

    value: str = field(repr=False)
    obtained_at: float
    expires_at: float

    @property
    def lifetime(self) -> float:
        return max(self.expires_at - self.obtained_at, 0.0)

    def is_fresh(self, now: float) -> bool:
        return now < self.expires_at - refresh_margin(self.lifetime)


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT, decoded without verification (we only schedule a refresh)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, TypeError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


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
    except ValueError:
        payload = None
    token = payload.get("access_token") if isinstance(payload, dict) else None
    if not isinstance(token, str) or not token:
        raise ButlrAuthError(
            f"Butlr login answered HTTP {status} without an access_token (POST {endpoint})",
            status=status,
            method="POST",
            endpoint=endpoint,
        )
    expires_in = payload.get("expires_in") if isinstance(payload, dict) else None
    if isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool) and expires_in > 0:
        expires_at = now + float(expires_in)
    else:
        expires_at = jwt_expiry(token) or now + DEFAULT_TOKEN_LIFETIME
    return AccessToken(value=token, obtained_at=now, expires_at=expires_at)


def _credential_names(settings: ButlrSettings) -> str:
    if settings.auth_type == "password":
        return "username and password"
    return "client id, client secret and audience"


class TokenCache:
    """Process-wide tokens keyed by credentials (never by the secret itself); thread- and task-safe.

    One login per key at a time: concurrent callers wait for the login in flight and share its token.
    """

    def __init__(self) -> None:
        self._tokens: dict[CacheKey, AccessToken] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[CacheKey, threading.Lock] = {}
        # One login lock per key and event loop (an asyncio.Lock belongs to one loop). Entries of closed
        # loops are dropped, so a process that runs many loops does not accumulate them, and a new loop
        # that reuses a closed one's id() never inherits its lock.
        self._async_locks: dict[
            tuple[CacheKey, int], tuple[weakref.ref[asyncio.AbstractEventLoop], asyncio.Lock]
        ] = {}

    def _fresh(self, key: CacheKey, now: float) -> AccessToken | None:
        token = self._tokens.get(key)
        return token if token is not None and token.is_fresh(now) else None

    def _key_lock(self, key: CacheKey) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def get(
        self, key: CacheKey, login: Callable[[], AccessToken], clock: Callable[[], float] = time.time
    ) -> str:
        """A fresh token for ``key``, logging in (once, under a per-key lock) when needed."""
        token = self._fresh(key, clock())
        if token is not None:
            return token.value
        with self._key_lock(key):
            token = self._fresh(key, clock())
            if token is None:
                token = login()
                self._tokens[key] = token
            return token.value

    async def aget(
        self,
        key: CacheKey,
        login: Callable[[], Awaitable[AccessToken]],
        clock: Callable[[], float] = time.time,
    ) -> str:
        """Async twin of :meth:`get`; one login per key and event loop at a time."""
        token = self._fresh(key, clock())
        if token is not None:
            return token.value
        lock = self._async_lock(key, asyncio.get_running_loop())
        async with lock:
            token = self._fresh(key, clock())
            if token is None:
                token = await login()
                self._tokens[key] = token
            return token.value

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

    def put(self, key: CacheKey, token: AccessToken) -> None:
        self._tokens[key] = token

    def invalidate(self, key: CacheKey, token_value: str | None = None) -> None:
        """Drop the cached token; with ``token_value``, only if it is still the cached one."""
        with self._lock:
            current = self._tokens.get(key)
            if current is not None and (token_value is None or current.value == token_value):
                del self._tokens[key]

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


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
