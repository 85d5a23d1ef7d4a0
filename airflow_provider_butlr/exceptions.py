"""The only error types users of this provider need to catch.

Messages never carry a secret: not the client secret, not the password, not a token.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowNotFoundException


class ButlrError(AirflowException):
    """Base class of every error raised by the Butlr provider."""


class ButlrConfigurationError(ButlrError, ValueError):
    """The connection or an operator/sensor argument is invalid; raised before any request is sent."""


class ButlrAPIError(ButlrError):
    """The Butlr API answered with an error (or not at all) after the retry budget was spent."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str | None = None,
        endpoint: str | None = None,
        attempts: int | None = None,
        body: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.method = method
        self.endpoint = endpoint
        self.attempts = attempts
        self.body = body


class ButlrAuthError(ButlrAPIError):
    """Login was refused, or the API kept rejecting the token (401/403)."""


class ButlrRateLimitError(ButlrAPIError):
    """HTTP 429 persisted beyond the retry budget."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ButlrGraphQLError(ButlrAPIError):
    """A GraphQL response carried ``errors`` (even alongside partial data)."""

    def __init__(
        self, message: str, *, errors: list[dict[str, Any]] | None = None, data: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.errors = errors if errors is not None else []  # a default: pickle re-creates it from message
        self.data = data


class ButlrDataError(ButlrError):
    """A response could not be interpreted (malformed JSON, unexpected shape, silent truncation)."""


class ButlrConnectionNotFoundError(ButlrConfigurationError, AirflowNotFoundException):
    """Airflow could not give the hook its connection; the message says where Airflow looked and why."""


class ButlrDeviceHealthError(ButlrError):
    """Device health passed a threshold the DAG author set (the report is in XCom ``device_health``)."""
