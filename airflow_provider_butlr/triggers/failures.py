"""How the triggers judge and describe a failed poll (shared by ButlrTrigger and the event trigger)."""

from __future__ import annotations

from airflow_provider_butlr.exceptions import ButlrConfigurationError, ButlrError
from airflow_provider_butlr.polling.sharing import is_request_fault


def is_permanent(exc: BaseException) -> bool:
    """Errors another poll cannot fix: bad configuration, a 4xx the request itself caused, or a bug.

    Exhausted retries (5xx, network), auth refusals, 401/403/408/409/425/429 and unreadable answers
    count against the failure budget instead: they may heal before the deadline. The hooks turn
    every transport failure into a :class:`ButlrError` once their retries are spent, so anything
    else is a bug.
    """
    if isinstance(exc, ButlrConfigurationError) or is_request_fault(exc):
        return True
    return not isinstance(exc, ButlrError)


def describe_failure(exc: BaseException) -> str:
    """Short and secret-free: ButlrError messages are already sanitised; others get their type."""
    text = str(exc) if isinstance(exc, ButlrError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:400]
