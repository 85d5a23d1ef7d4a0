"""The one retry policy (tenacity): what is transient, how long to wait, and when to give up.

Used by the sync hook (login and API calls) and, as its async twin, by the trigger.
"""

from __future__ import annotations

import datetime
import email.utils
import logging
import math
import random
import re
import ssl
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import tenacity
from tenacity.wait import wait_base

from airflow_provider_butlr.client.advice import cause_text, check_hint, network_cause
from airflow_provider_butlr.client.limits.budget import RateLimitWaits
from airflow_provider_butlr.exceptions import (
    ButlrAPIError,
    ButlrAuthError,
    ButlrDataError,
    ButlrError,
    ButlrRateLimitError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
NO_CONTENT_STATUSES = frozenset({204, 205})  # answers without a body: nothing to parse


class TransientHTTPError(Exception):
    """A retryable HTTP answer (429/5xx); internal to the retry loop, never seen by users."""

    def __init__(self, status: int, *, retry_after: float | None, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}" if detail else f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after
        self.detail = detail


class DeadlineExceeded(Exception):
    """An attempt did not complete (connect, headers and body) within its deadline; retryable."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no complete answer within {seconds:g} s (the connection's timeout)")


class TransientDataError(Exception):
    """A 2xx answer whose body could not be parsed (truncated or malformed JSON): worth another try."""


class UndecodableBody(Exception):
    """A body that does not decode as its ``Content-Encoding`` says (a cut or garbled stream): retried."""


_DELTA_SECONDS = re.compile(r"[+-]?[0-9]{1,300}(?:\.[0-9]{1,30})?")  # finite as a float


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date); None if absent or
    not one of those. Callers cap it (``retry_after_cap``); nothing here raises, whatever the text."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _DELTA_SECONDS.fullmatch(text):
        return max(0.0, float(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # asctime or "-0000": HTTP dates are always GMT, never local time
        when = when.replace(tzinfo=datetime.UTC)
    try:
        seconds = when.timestamp() - (time.time() if now is None else now)
    except (OverflowError, ValueError):
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _is_requests_error(exc: BaseException, *names: str) -> bool:
    """Whether ``exc`` is one of ``requests.exceptions.<names>``, without importing requests.

    Only the sync hook imports requests (lazily, on its first request), so a DAG file that merely
    constructs operators never pays for it; if requests is not loaded, ``exc`` cannot be its error.
    """
    module = sys.modules.get("requests.exceptions")
    return module is not None and isinstance(exc, tuple(getattr(module, name) for name in names))


def _is_httpx_error(exc: BaseException, *names: str) -> bool:
    """Whether ``exc`` is one of ``httpx.<names>``; only the async path imports httpx, never here."""
    httpx = sys.modules.get("httpx")
    return httpx is not None and isinstance(exc, tuple(getattr(httpx, name) for name in names))


def _is_httpx_transport_error(exc: BaseException) -> bool:
    # DecodingError: the twin of requests' ContentDecodingError (a body that is not what it claims)
    return _is_httpx_error(exc, "TransportError", "TimeoutException", "DecodingError")


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    """The ``ssl.SSLError`` behind ``exc`` (requests and httpx both chain it), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _is_tls_error(exc: BaseException) -> bool:
    """A failed TLS handshake: requests' SSLError, or httpx's ConnectError caused by an SSL error."""
    if _is_requests_error(exc, "SSLError"):
        return True
    return _is_httpx_error(exc, "ConnectError") and _ssl_cause(exc) is not None


def is_transient(exc: BaseException) -> bool:
    """Network errors, timeouts, 429/5xx and unparsable 2xx bodies are retried; nothing else is."""
    if isinstance(exc, (TransientHTTPError, TransientDataError, DeadlineExceeded, UndecodableBody)):
        return True
    if _is_tls_error(exc):
        return False  # a certificate (or scheme/port) problem does not heal by retrying
    if _is_requests_error(exc, "ConnectionError", "Timeout", "ChunkedEncodingError", "ContentDecodingError"):
        return True
    return _is_httpx_transport_error(exc)


class wait_retry_after_or_backoff(wait_base):
    """Honour the server's ``Retry-After`` (capped); otherwise exponential backoff with jitter.

    A 429's ``Retry-After`` is honoured as it is the first time, and as a floor after that: a
    repeated 429 waits at least the backoff too, so a server that keeps answering ``Retry-After: 0``
    is not asked again and again within the call's time budget.
    """

    def __init__(self, *, initial: float, maximum: float, retry_after_cap: float) -> None:
        self._initial = initial
        self._maximum = maximum
        self._cap = retry_after_cap

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        exponent = min(retry_state.attempt_number - 1, 30)
        backoff = min(self._maximum, self._initial * 2**exponent)
        if retry_after is not None:
            honoured = float(min(retry_after, self._cap))
            if is_rate_limited(exc) and exponent > 0:
                return max(honoured, backoff / 2)  # the backoff of the attempt before
            return honoured
        return backoff + random.uniform(0, min(self._initial, self._maximum))


def describe(exc: BaseException | None, base_url: str | None = None) -> str:
    """A short, secret-free description of a failed attempt (naming the host when it is known)."""
    if exc is None:
        return "unknown error"
    if _is_tls_error(exc):
        cause = _ssl_cause(exc)
        if cause is None or isinstance(cause, ssl.SSLCertVerificationError):
            return "TLS certificate verification failed"
        return f"TLS handshake failed ({cause})"
    if isinstance(exc, (TransientHTTPError, TransientDataError, DeadlineExceeded)):
        return str(exc)
    if _is_requests_error(exc, "ChunkedEncodingError"):
        return f"connection broken mid-response ({type(exc).__name__})"
    if (
        isinstance(exc, UndecodableBody)
        or _is_requests_error(exc, "ContentDecodingError")
        or _is_httpx_error(exc, "DecodingError")
    ):
        return f"undecodable response body ({type(exc).__name__})"
    if _is_requests_error(exc, "Timeout") or type(exc).__name__.endswith("Timeout"):
        return f"timed out ({type(exc).__name__})"
    if _is_requests_error(exc, "ConnectionError") or _is_httpx_transport_error(exc):
        network = network_cause(exc)
        if network is not None:
            return f"connection failed: {cause_text(network, base_url)} ({type(exc).__name__})"
        return f"connection failed ({type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}"


def hint_kind(exc: BaseException) -> str:
    """Which advice of :func:`~.advice.check_hint` fits a final failure."""
    if _is_tls_error(exc):
        cause = _ssl_cause(exc)
        return (
            "tls-handshake"
            if cause is not None and not isinstance(cause, ssl.SSLCertVerificationError)
            else "tls-certificate"
        )
    if network_cause(exc) is not None:
        return "address"
    if (
        isinstance(exc, DeadlineExceeded)
        or _is_requests_error(exc, "Timeout")
        or _is_httpx_error(exc, "TimeoutException")
    ):
        return "timeout"
    if isinstance(exc, TransientHTTPError) and exc.status == 429:
        return "rate-limit"
    if isinstance(exc, TransientDataError):
        return "not-json"
    return ""


def unreachable(exc: BaseException | None) -> bool:
    """A connection refused, a host name that does not resolve, a network that cannot reach it."""
    return exc is not None and network_cause(exc) is not None


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: ``max_retries`` extra attempts, waits from Retry-After or backoff."""

    max_retries: int = 5
    wait_initial: float = 0.5
    wait_max: float = 30.0
    retry_after_cap: float = 60.0
    unreachable_retries: int | None = None  # fewer retries when no connection can be made (logins)
    rate_limit_wait: float = 600.0  # seconds one call may wait out answers 429 (they use no retry)
    not_after: float | None = None  # Unix time no wait may pass (the task's execution_timeout)

    @property
    def max_attempts(self) -> int:
        return self.max_retries + 1

    def attempts_for(self, exc: BaseException | None) -> int:
        """Attempts allowed for a failure like ``exc`` (fewer when no connection can be made)."""
        if self.unreachable_retries is not None and unreachable(exc):
            return min(self.unreachable_retries, self.max_retries) + 1
        return self.max_attempts

    def waits(self) -> RateLimitWaits:
        """A fresh tally of one call's waiting out of 429s (its time budget)."""
        return RateLimitWaits(self.rate_limit_wait, self.not_after)

    def _kwargs(self, label: str, waits: RateLimitWaits) -> dict[str, Any]:
        def log_retry(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            if is_rate_limited(exc):
                log.warning(
                    "Butlr %s: %s; rate-limited for %.0f s of the %.0f s allowed (%d answer(s) 429), "
                    "retrying in %.2f s",
                    label,
                    describe(exc),
                    waits.waited(),
                    waits.budget,
                    waits.answers,
                    delay,
                )
                return
            log.warning(
                "Butlr %s: %s; attempt %d of %d, retrying in %.2f s",
                label,
                describe(exc),
                waits.others,
                self.attempts_for(exc),
                delay,
            )

        def stop(state: tenacity.RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            if is_rate_limited(exc):  # waited out within a time budget: not an attempt that counts
                return waits.spent(getattr(exc, "retry_after", None), state.upcoming_sleep)
            waits.others += 1
            return waits.others >= self.attempts_for(exc)

        return {
            "stop": stop,
            "wait": wait_retry_after_or_backoff(
                initial=self.wait_initial, maximum=self.wait_max, retry_after_cap=self.retry_after_cap
            ),
            "retry": tenacity.retry_if_exception(is_transient),
            "before_sleep": log_retry,
            "reraise": True,
        }

    def retrying(
        self,
        label: str,
        *,
        sleep: Callable[[float], None] | None = None,
        waits: RateLimitWaits | None = None,
    ) -> tenacity.Retrying:
        """A fresh sync controller; ``label`` (e.g. ``POST /api/v3/reporting``) names the call in logs."""
        kwargs = self._kwargs(label, waits or self.waits())
        if sleep is not None:
            kwargs["sleep"] = sleep
        return tenacity.Retrying(**kwargs)

    def async_retrying(self, label: str, *, waits: RateLimitWaits | None = None) -> tenacity.AsyncRetrying:
        """The async twin, for the trigger's httpx client."""
        return tenacity.AsyncRetrying(**self._kwargs(label, waits or self.waits()))


def is_rate_limited(exc: BaseException | None) -> bool:
    """An answer 429 (waited out within a time budget, not counted as a failed attempt)."""
    return isinstance(exc, TransientHTTPError) and exc.status == 429


def give_up_error(
    exc: BaseException,
    *,
    method: str,
    endpoint: str,
    attempts: int,
    max_retries: int,
    base_url: str | None = None,
    conn_id: str = "",
    waits: RateLimitWaits | None = None,
) -> BaseException:
    """The user-facing error once the retry budget is spent (``exc`` itself if it is not transient):
    one line with the call, the cause and what to check on which connection.

    Shared by the sync hook and the async hook, so both report an exhausted budget the same way.
    """
    if isinstance(exc, ButlrError):
        return exc
    where = f"{endpoint} at {base_url}" if base_url else endpoint  # "connection refused" names the host
    hint = check_hint(hint_kind(exc), conn_id)
    if not is_transient(exc):
        if _is_requests_error(exc, "RequestException") or _is_httpx_error(exc, "RequestError"):
            # e.g. TLS: users catch ButlrError only
            return ButlrAPIError(
                f"Butlr {method} {where} failed: {describe(exc, base_url)}{hint}",
                method=method,
                endpoint=endpoint,
                attempts=attempts,
            )
        return exc
    message = (
        f"Butlr {method} {where} failed after {attempts} attempt(s) "
        f"({max_retries} retries allowed): {describe(exc, base_url)}{hint}"
    )
    if isinstance(exc, TransientHTTPError) and exc.status == 429:
        if waits is not None and waits.answers:
            message = (
                f"Butlr {method} {where} was still rate-limited (HTTP 429) after {attempts} attempt(s): "
                f"{waits.describe()}{hint}"
            )
        return ButlrRateLimitError(
            message,
            retry_after=exc.retry_after,
            status=429,
            method=method,
            endpoint=endpoint,
            attempts=attempts,
        )
    if isinstance(exc, TransientHTTPError):
        return ButlrAPIError(message, status=exc.status, method=method, endpoint=endpoint, attempts=attempts)
    if isinstance(exc, TransientDataError):
        return ButlrDataError(message)
    return ButlrAPIError(message, method=method, endpoint=endpoint, attempts=attempts)


def status_error(status: int, detail: str, *, method: str, endpoint: str) -> ButlrAPIError:
    """The error for a final (non-retryable) 4xx/5xx answer: ButlrAuthError for 401/403."""
    message = f"Butlr {method} {endpoint} failed with HTTP {status}" + (f": {detail}" if detail else "")
    error_cls = ButlrAuthError if status in (401, 403) else ButlrAPIError
    return error_cls(message, status=status, method=method, endpoint=endpoint, body=detail)


def _final_error(
    exc: BaseException,
    retrying: tenacity.BaseRetrying,
    policy: RetryPolicy,
    label: Label,
    waits: RateLimitWaits | None = None,
) -> BaseException:
    attempts = retrying.statistics.get("attempt_number", 1)
    return give_up_error(
        exc,
        method=label[0],
        endpoint=label[1],
        base_url=label[2],
        conn_id=label[3],
        attempts=attempts,
        max_retries=policy.attempts_for(exc) - 1,
        waits=waits,
    )


def _final(
    exc: Exception,
    retrying: tenacity.BaseRetrying,
    policy: RetryPolicy,
    label: Label,
    waits: RateLimitWaits | None = None,
) -> Exception:
    """What to raise for a final failure: the one-line ButlrError that describes it.

    A ButlrError is raised without the retry machinery's frames and chained to nothing it does not
    explain (its message holds the cause); the whole chain stays in a DEBUG record. Anything else
    (a bug) is raised as it is, traceback and all.
    """
    error = _final_error(exc, retrying, policy, label, waits)
    if not isinstance(error, ButlrError):
        return exc
    log.debug("Butlr %s %s: the final failure in full", label[0], label[1], exc_info=exc)
    error.__suppress_context__ = True
    if error is not exc:
        error.__cause__ = None
    return error.with_traceback(None)


Label = tuple[str, str, str, str]  # method, endpoint, base URL, connection id ('' during a connection test)


def with_retries(
    attempt: Callable[[], T],
    policy: RetryPolicy,
    method: str,
    endpoint: str,
    base_url: str,
    conn_id: str = "",
) -> T:
    """Run ``attempt`` under the retry policy; a final failure becomes a ButlrError naming the call."""
    waits = policy.waits()
    retrying = policy.retrying(f"{method} {endpoint}", waits=waits)
    try:
        return retrying(attempt)
    except Exception as exc:
        raise _final(exc, retrying, policy, (method, endpoint, base_url, conn_id), waits)  # noqa: B904


async def awith_retries(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    method: str,
    endpoint: str,
    base_url: str,
    conn_id: str = "",
) -> T:
    """The async twin of :func:`with_retries`."""
    waits = policy.waits()
    retrying = policy.async_retrying(f"{method} {endpoint}", waits=waits)

    async def run_attempt() -> T:  # a coroutine function: tenacity runs plain callables synchronously
        return await attempt()

    try:
        return await retrying(run_attempt)
    except Exception as exc:
        raise _final(exc, retrying, policy, (method, endpoint, base_url, conn_id), waits)  # noqa: B904
