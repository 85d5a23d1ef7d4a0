"""How the triggers judge and describe a failed poll (shared by ButlrTrigger and the event trigger)."""

from __future__ import annotations

from airflow_provider_butlr.exceptions import (
    ButlrAPIError,
    ButlrAuthError,
    ButlrConfigurationError,
    ButlrError,
)

# 4xx answers that may heal by themselves; any other 4xx means the request itself is wrong.
HEALING_CLIENT_STATUSES = frozenset({401, 403, 408, 409, 425, 429})


def is_permanent(exc: BaseException) -> bool:
    """Errors another poll cannot fix: bad configuration, a 4xx the request itself caused, or a bug.

    Exhausted retries (5xx, network), auth refusals and unreadable answers count against the
    failure budget instead: they may heal before the deadline. The hooks turn every transport
    failure into a :class:`ButlrError` once their retries are spent, so anything else is a bug.
    """
    if isinstance(exc, ButlrConfigurationError):
        return True
    if isinstance(exc, ButlrAPIError) and not isinstance(exc, ButlrAuthError):
        status = exc.status
        return status is not None and 400 <= status < 500 and status not in HEALING_CLIENT_STATUSES
    return not isinstance(exc, ButlrError)


def describe_failure(exc: BaseException) -> str:
    """Short and secret-free: ButlrError messages are already sanitised; others get their type."""
    text = str(exc) if isinstance(exc, ButlrError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:400]
